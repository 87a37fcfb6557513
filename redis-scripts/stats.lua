-- stats.lua: publish live counters of held routes, many per call, for the
-- management API and the dashboard (docs/INTERNALS.md).
-- KEYS    = tunnel:route:<name>, one per route (N keys)
-- ARGV    = N groups of 8: session, fingerprint, bytes_in, bytes_out,
--           requests, streams, open_streams, last_request (unix seconds,
--           0: none yet)
-- A group is written only while its session still holds the key: a
-- released, expired or kicked route is never re-created here (that is
-- claim.lua's and refresh.lua's job, with a TTL).  Returns the number of
-- routes written.

local nf = 8
local written = 0

if #ARGV ~= nf * #KEYS then
    return redis.error_reply('stats.lua: expected 8 fields per key')
end

for i, key in ipairs(KEYS) do
    local a = (i - 1) * nf
    if redis.call('HGET', key, 'session') == ARGV[a + 1] then
        redis.call('HSET', key, 'fingerprint', ARGV[a + 2],
                   'bytes_in', ARGV[a + 3], 'bytes_out', ARGV[a + 4],
                   'requests', ARGV[a + 5], 'streams', ARGV[a + 6],
                   'open_streams', ARGV[a + 7], 'last_request', ARGV[a + 8])
        written = written + 1
    end
end

return written
