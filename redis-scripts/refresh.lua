-- refresh.lua: heartbeat of held routes, and re-registration after Redis
-- came back, for many routes in one call (docs/INTERNALS.md).
-- KEYS    = tunnel:route:<name>, one per route (N keys)
-- ARGV[1] = ttl_ms
-- ARGV[2] = fields per route: "1" (heartbeat: session only) or "7"
--           (re-registration: socket, user, user_id, session, node,
--           started, client, as claim.lua without ttl_ms)
-- ARGV[3..] = N groups of that many fields, in KEYS order
-- Each key is handled on its own:
--   held by this session: TTL pushed back ("refreshed")
--   missing (expired, Redis restarted): re-created with the 7 fields and
--                            tunnel:invalidate published ("claimed"), or,
--                            given the session only, nothing written
--                            ("missing": send it again with its fields)
--   held by another session: nothing written ("lost", that session)
--   missing and kicked (tunnel:kicked:<name> names this session, see
--                            kick.lua): nothing written ("lost", "kicked")
-- Returns a flat array of {index, status, detail} (index into KEYS from
-- 1) for every key not simply refreshed: empty when all were, which keeps
-- the heartbeat's answer small.

local ttl = ARGV[1]
local nf = tonumber(ARGV[2])
local prefix = string.len('tunnel:route:')
local out = {}

if nf ~= 1 and nf ~= 7 then
    return redis.error_reply('refresh.lua: fields per route must be 1 or 7')
end

if #ARGV ~= 2 + nf * #KEYS then
    return redis.error_reply('refresh.lua: expected ' .. nf .. ' fields '
                             .. 'per key')
end

for i, key in ipairs(KEYS) do
    local a = 2 + (i - 1) * nf
    local session = (nf == 1) and ARGV[a + 1] or ARGV[a + 4]
    local cur = redis.call('HGET', key, 'session')

    if cur == session then
        redis.call('PEXPIRE', key, ttl)

    elseif cur then
        out[#out + 1] = i
        out[#out + 1] = 'lost'
        out[#out + 1] = cur

    elseif redis.call('GET', 'tunnel:kicked:' .. string.sub(key, prefix + 1))
           == session then
        out[#out + 1] = i
        out[#out + 1] = 'lost'
        out[#out + 1] = 'kicked'

    elseif nf == 1 then
        out[#out + 1] = i
        out[#out + 1] = 'missing'
        out[#out + 1] = ''

    else
        redis.call('DEL', key)
        redis.call('HSET', key, 'socket', ARGV[a + 1], 'user', ARGV[a + 2],
                   'user_id', ARGV[a + 3], 'session', session,
                   'node', ARGV[a + 5], 'started', ARGV[a + 6],
                   'client', ARGV[a + 7])
        redis.call('PEXPIRE', key, ttl)
        redis.call('ZADD', 'tunnel:index', 0, string.sub(key, prefix + 1))
        redis.call('PUBLISH', 'tunnel:invalidate',
                   string.sub(key, prefix + 1))
        out[#out + 1] = i
        out[#out + 1] = 'claimed'
        out[#out + 1] = ''
    end
end

return out
