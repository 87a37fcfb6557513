-- list.lua: one page of the live tunnels of the cluster, in name order,
-- for the management API (docs/INTERNALS.md).
-- KEYS    = none (reads tunnel:index and tunnel:route:*)
-- ARGV    = after (names > after; "" from the start), prefix (names that
--           start with it; "" for all), user ("" for any), node ("" for
--           any), limit (tunnels to return), budget (index entries to look
--           at in this call)
-- tunnel:index is a sorted set of names (score 0, lexicographic) kept by
-- claim.lua, refresh.lua, release.lua and kick.lua.  A route that expired
-- (its node died) leaves its name there: it is removed here when seen.
-- Returns {next, {name, {field, value, ...}}, ...}: next is the last name
-- looked at when the page is full or the budget is spent (call again with
-- after = next), or "" when the index has no more names.

local after, prefix, user, node = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local limit, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local out = {''}
local min = '-'
local max = '+'

if prefix ~= '' then
    min = '[' .. prefix
    max = '[' .. prefix .. '\255'
end

if after ~= '' and (prefix == '' or after >= prefix) then
    min = '(' .. after
end

local names = redis.call('ZRANGEBYLEX', 'tunnel:index', min, max,
                         'LIMIT', 0, budget)
local found = 0

for i, name in ipairs(names) do
    local h = redis.call('HGETALL', 'tunnel:route:' .. name)

    if #h == 0 then
        redis.call('ZREM', 'tunnel:index', name)
    else
        local ok = true
        if user ~= '' or node ~= '' then
            local f = {}
            for j = 1, #h, 2 do
                f[h[j]] = h[j + 1]
            end
            ok = (user == '' or f['user'] == user)
                 and (node == '' or f['node'] == node)
        end
        if ok then
            out[#out + 1] = {name, h}
            found = found + 1
        end
    end

    if found == limit then
        if i < #names or #names == budget then
            out[1] = name
        end
        return out
    end
end

if #names == budget then
    out[1] = names[#names]
end

return out
