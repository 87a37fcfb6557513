-- node_lost.lua: drop the routes a killed process of this node left
-- behind, so that they do not wait for their TTL (docs/INTERNALS.md,
-- "Workers"): nginx then answers 404 at once instead of the offline page,
-- and the management API (the dashboard's "tunnels up") stops counting
-- them.  Run by a tunneld that replaces a killed one (sshd/live.c).
-- KEYS    = none (reads tunnel:index and tunnel:route:*)
-- ARGV    = session prefix ("NODE/": a whole tunneld; "NODE/PID/": one
--           worker), before (unix seconds: only routes claimed earlier,
--           never one of a live process, which started later), after
--           (names > after; "" from the start), budget (index entries to
--           look at in this call)
-- Returns {next, removed}: next is the last name looked at when the budget
-- is spent (call again with after = next), or "" at the end.

local prefix, before, after = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local budget = tonumber(ARGV[4])
local min = '-'

if after ~= '' then
    min = '(' .. after
end

local names = redis.call('ZRANGEBYLEX', 'tunnel:index', min, '+',
                         'LIMIT', 0, budget)
local removed = 0

for _, name in ipairs(names) do
    local key = 'tunnel:route:' .. name
    local h = redis.call('HMGET', key, 'session', 'started')

    if not h[1] then
        redis.call('ZREM', 'tunnel:index', name)

    elseif string.sub(h[1], 1, string.len(prefix)) == prefix
           and (tonumber(h[2]) or before) < before
    then
        redis.call('DEL', key)
        redis.call('ZREM', 'tunnel:index', name)
        redis.call('PUBLISH', 'tunnel:invalidate', name)
        removed = removed + 1
    end
end

local nxt = ''

if #names == budget then
    nxt = names[#names]
end

return {nxt, removed}
