-- release.lua: drop a route if, and only if, this session still holds it
-- (docs/INTERNALS.md).
-- KEYS[1] = tunnel:route:<name>
-- ARGV[1] = session
-- Returns 1 if deleted (and tunnel:invalidate <name> published, the name
-- taken out of tunnel:index), else 0.

local key = KEYS[1]

if redis.call('HGET', key, 'session') ~= ARGV[1] then
    return 0
end

local name = string.sub(key, string.len('tunnel:route:') + 1)

redis.call('DEL', key)
redis.call('ZREM', 'tunnel:index', name)
redis.call('PUBLISH', 'tunnel:invalidate', name)

return 1
