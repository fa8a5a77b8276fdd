-- WorkQueue::ack, then trimming. KEYS[1]: the stream.
-- ARGV[1]: group; ARGV[2]: '=' (exact) or '~' (whole nodes only, cheaper);
-- ARGV[3..]: entry ids.
--
-- Trims only what every group of the stream is done with: entries below
-- each group's oldest pending entry and up to its last delivered one. No
-- group, no trimming (nobody has consumed anything yet).
local acked = 0
local batch = 1000
for i = 3, #ARGV, batch do
  local last = math.min(i + batch - 1, #ARGV)
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, i, last))
end

if redis.call('EXISTS', KEYS[1]) == 0 then
  return acked
end

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

local floor = nil
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
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
    needed = redis.call('XPENDING', KEYS[1], name, '-', '+', 1)[1][1]
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
  redis.call('XTRIM', KEYS[1], 'MINID', ARGV[2], floor)
end
return acked
