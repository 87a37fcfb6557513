-- release.lua: drop a route if, and only if, this session still holds it
-- (docs/INTERNALS.md).
-- KEYS[1] = tunnel:route:<name>
-- ARGV[1] = session
-- Returns 1 if deleted (and tunnel:invalidate <name> published), else 0.

local key = KEYS[1]

if redis.call('HGET', key, 'session') ~= ARGV[1] then
    return 0
end

redis.call('DEL', key)
redis.call('PUBLISH', 'tunnel:invalidate',
           string.sub(key, string.len('tunnel:route:') + 1))

return 1
