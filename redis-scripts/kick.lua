-- kick.lua: close a live tunnel from anywhere in the cluster (management
-- API, dashboard, tunnelctl; docs/INTERNALS.md).
-- KEYS[1] = tunnel:route:<name>
-- ARGV    = scope ("tunnel" or "session"), reason (may be empty), by
--           (who asked, for logs), tombstone_ms, expected session (may be
--           empty: whoever holds the name)
-- If the route exists: deletes it at once (nginx answers 404 from now on:
-- tunnel:invalidate), publishes tunnel:close "<session>\t<name>\t<scope>
-- \t<by>\t<reason>" so the node holding the session closes the tunnel (or
-- the whole SSH session) and tells its client why, and leaves a tombstone
-- tunnel:kicked:<name> = session for tombstone_ms so that a heartbeat or
-- re-registration of that same session cannot bring the route back before
-- the close message is handled.  A new session may claim the name at once
-- (a kick is not a ban).
-- Returns {1, session, node, user}, {0} (not live) or {2, session} (held
-- by another session than the one expected: the name changed hands after
-- the caller checked who owns it; nothing is done).

local key = KEYS[1]
local scope, reason, by, tomb = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local expect = ARGV[5] or ''
local name = string.sub(key, string.len('tunnel:route:') + 1)

local cur = redis.call('HMGET', key, 'session', 'node', 'user')
if not cur[1] then
    return {0}
end

if expect ~= '' and cur[1] ~= expect then
    return {2, cur[1]}
end

redis.call('DEL', key)
redis.call('ZREM', 'tunnel:index', name)
redis.call('SET', 'tunnel:kicked:' .. name, cur[1], 'PX', tomb)
redis.call('PUBLISH', 'tunnel:invalidate', name)
redis.call('PUBLISH', 'tunnel:close',
           cur[1] .. '\t' .. name .. '\t' .. scope .. '\t' .. by .. '\t'
           .. reason)

return {1, cur[1], cur[2] or '', cur[3] or ''}
