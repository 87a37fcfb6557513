-- refresh.lua: heartbeat of a held route, and re-registration after Redis
-- came back (docs/INTERNALS.md).
-- KEYS[1] = tunnel:route:<name>
-- ARGV    = socket, user, user_id, session, node, started, client, ttl_ms
--           (the same as claim.lua)
-- Returns {status, detail}:
--   {"refreshed", ""}        held by this session: TTL pushed back
--   {"claimed", ""}          key was missing (expired, Redis restarted):
--                            re-created, tunnel:invalidate published
--   {"lost", <session>}      held by another session: nothing written

local key = KEYS[1]
local session, ttl = ARGV[4], ARGV[8]
local name = string.sub(key, string.len('tunnel:route:') + 1)

local cur = redis.call('HGET', key, 'session')

if cur == session then
    redis.call('PEXPIRE', key, ttl)
    return {'refreshed', ''}
end

if cur then
    return {'lost', cur}
end

redis.call('DEL', key)
redis.call('HSET', key, 'socket', ARGV[1], 'user', ARGV[2],
           'user_id', ARGV[3], 'session', session, 'node', ARGV[5],
           'started', ARGV[6], 'client', ARGV[7])
redis.call('PEXPIRE', key, ttl)
redis.call('PUBLISH', 'tunnel:invalidate', name)

return {'claimed', ''}
