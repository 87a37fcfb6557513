-- claim.lua: claim a tunnel name for an SSH session (docs/INTERNALS.md).
-- KEYS[1] = tunnel:route:<name>
-- ARGV    = socket, user, user_id, session, node, started, client, ttl_ms
-- Returns {status, detail}:
--   {"claimed", ""}          free, or already held by this same session
--   {"takeover", <old sess>} held by another session of the same user_id:
--                            overwritten, the old session is kicked
--   {"taken", <user>}        held by another user: nothing written
-- Also publishes tunnel:invalidate <name> whenever the route changes hands
-- (takeover, or a free name claimed: nginx may cache "no such tunnel"),
-- and adds the name to tunnel:index (list.lua).

local key = KEYS[1]
local socket, user, user_id, session = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local node, started, client, ttl = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local name = string.sub(key, string.len('tunnel:route:') + 1)

local cur = redis.call('HMGET', key, 'session', 'user_id', 'user')
local status, detail = 'claimed', ''

if cur[1] and cur[1] ~= session then
    if cur[2] ~= user_id then
        return {'taken', cur[3] or ''}
    end
    status, detail = 'takeover', cur[1]
end

redis.call('DEL', key)
redis.call('HSET', key, 'socket', socket, 'user', user, 'user_id', user_id,
           'session', session, 'node', node, 'started', started,
           'client', client)
redis.call('PEXPIRE', key, ttl)
redis.call('ZADD', 'tunnel:index', 0, name)

if status == 'takeover' then
    redis.call('PUBLISH', 'tunnel:kick', detail)
end

if cur[1] ~= session then
    redis.call('PUBLISH', 'tunnel:invalidate', name)
end

return {status, detail}
