-- WorkQueue::claim_stale. KEYS[1]: the stream.
-- ARGV[1]: group; ARGV[2]: consumer; ARGV[3]: least idle time in ms;
-- ARGV[4]: most entries to take.
-- Answers {id, payload, deliveries, id, payload, deliveries, ...}.
-- XAUTOCLAIM does not answer delivery counts, so they are read from the
-- pending list right after the claim, in the same atomic script.
local max = tonumber(ARGV[4])
local answer = {}
local claimed = 0
local cursor = '0-0'
-- Bounded: each round scans at most 10 x COUNT pending entries.
for _ = 1, 100 do
  local reply = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], cursor, 'COUNT', max - claimed)
  cursor = reply[1]
  for _, entry in ipairs(reply[2]) do
    local id, fields = entry[1], entry[2]
    local payload = nil
    if type(fields) == 'table' then
      for i = 1, #fields, 2 do
        if fields[i] == 'p' then
          payload = fields[i + 1]
        end
      end
    end
    if payload ~= nil then
      local deliveries = 2
      local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
      if pending[1] ~= nil then
        deliveries = pending[1][4]
      end
      table.insert(answer, id)
      table.insert(answer, payload)
      table.insert(answer, deliveries)
      claimed = claimed + 1
    end
  end
  if cursor == '0-0' or claimed >= max then
    break
  end
end
return answer
