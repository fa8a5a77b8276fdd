-- The trimming rule, shared by trim.lua and append.lua (prepended to
-- both). trim(key, mode): mode '=' (exact) or '~' (whole nodes only,
-- cheaper).
--
-- Trims only what every group of the stream is done with: entries below
-- each group's oldest pending entry and up to its last delivered one. No
-- group, no trimming (nobody has consumed anything yet).
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms, seq
end

local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  if #am ~= #bm then
    return #am < #bm
  end
  if am ~= bm then
    return am < bm
  end
  return tonumber(as) < tonumber(bs)
end

local function trim(key, mode)
  if redis.call('EXISTS', key) == 0 then
    return
  end
  local floor = nil
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local name, pending, last
    for i = 1, #group, 2 do
      local field = group[i]
      if field == 'name' then
        name = group[i + 1]
      elseif field == 'pending' then
        pending = group[i + 1]
      elseif field == 'last-delivered-id' then
        last = group[i + 1]
      end
    end
    local needed = last
    if pending > 0 then
      needed = redis.call('XPENDING', key, name, '-', '+', 1)[1][1]
    else
      -- Everything up to `last` is acknowledged: keep from the next id on.
      local ms, seq = parse(last)
      if tonumber(seq) < 9007199254740991 then
        needed = ms .. '-' .. string.format('%d', tonumber(seq) + 1)
      end
    end
    if floor == nil or less(needed, floor) then
      floor = needed
    end
  end
  if floor ~= nil then
    redis.call('XTRIM', key, 'MINID', mode, floor)
  end
end
