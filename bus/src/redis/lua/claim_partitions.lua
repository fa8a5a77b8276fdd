-- SharedState::claim_partitions.
-- KEYS[1]: the group's members (sorted set, member -> end of life in ms);
-- KEYS[2]: the group's leases (hash, partition -> "<end in ms>:<holder>").
-- ARGV[1]: member; ARGV[2]: number of partitions; ARGV[3]: ttl in ms.
-- Answers {share, held partition, ...}. Times are the server's (TIME), so
-- members with skewed clocks agree on when a lease runs out.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local count = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local ends = now + ttl
local value = ends .. ':' .. member

redis.call('ZADD', KEYS[1], ends, member)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local share = math.ceil(count / redis.call('ZCARD', KEYS[1]))

local leases = {}
local raw = redis.call('HGETALL', KEYS[2])
for i = 1, #raw, 2 do
  leases[tonumber(raw[i])] = raw[i + 1]
end

local held = {}
local free = {}
for p = 0, count - 1 do
  local lease = leases[p]
  local live = false
  if lease then
    local sep = string.find(lease, ':', 1, true)
    if sep and tonumber(string.sub(lease, 1, sep - 1)) > now then
      live = true
      if string.sub(lease, sep + 1) == member then
        held[#held + 1] = p
      end
    end
  end
  if not live then
    free[#free + 1] = p
  end
end
for _, p in ipairs(free) do
  if #held >= share then
    break
  end
  held[#held + 1] = p
end

if #held > 0 then
  local fields = {}
  for _, p in ipairs(held) do
    fields[#fields + 1] = p
    fields[#fields + 1] = value
  end
  redis.call('HSET', KEYS[2], unpack(fields))
end
-- Keys of a group whose members all stopped go away by themselves.
redis.call('PEXPIRE', KEYS[1], ttl * 3)
redis.call('PEXPIRE', KEYS[2], ttl * 3)
table.insert(held, 1, share)
return held
