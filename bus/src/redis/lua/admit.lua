-- SharedState::admit: the rate limits and idempotency claims of a batch of
-- actions in one script (bucket.lua is prepended), so a router batch costs
-- one round trip and, per action, one SET per claim, and one SET per
-- bucket key for the whole batch (a send's budget and send rate are lanes
-- of one key); the keys are read with one MGET for the whole batch.
-- KEYS: every bucket key, then every claim key (see ARGV).
-- ARGV: the number of actions, then per action: the number of its buckets
-- b, then b triples (lane, tokens per second, burst), then 1 and (value,
-- ttl in ms) when it claims a key, else 0. The keys are taken from KEYS in
-- that order (buckets first: KEYS[1..B]; claims after them).
-- Answers per action three values: 1 (admitted), '', the live value of its
-- claim key or false; or 0 (limited), the seconds until a token as a
-- string, the number of the refusing bucket (from 0).
local now = now_us()
local actions = tonumber(ARGV[1])

-- First pass: count the bucket keys, so the claims' keys can be found.
local arg = 2
local bucket_keys = 0
for _ = 1, actions do
  local b = tonumber(ARGV[arg])
  bucket_keys = bucket_keys + b
  arg = arg + 1 + 3 * b
  if ARGV[arg] == '1' then
    arg = arg + 3
  else
    arg = arg + 1
  end
end

-- Each key's lanes, as read, then as the batch leaves them.
local lanes = {}
if bucket_keys > 0 then
  local values = redis.call('MGET', unpack(KEYS, 1, bucket_keys))
  for i = 1, bucket_keys do
    if lanes[KEYS[i]] == nil then
      lanes[KEYS[i]] = lanes_of(values[i])
    end
  end
end

local answer = {}
local dirty = {}
local order = {}
arg = 2
local key_index = 1
local claim_index = bucket_keys + 1
for _ = 1, actions do
  local b = tonumber(ARGV[arg])
  arg = arg + 1
  local limited = nil
  for i = 0, b - 1 do
    local lane = ARGV[arg]
    local rate = tonumber(ARGV[arg + 1])
    local burst = tonumber(ARGV[arg + 2])
    arg = arg + 3
    local key = KEYS[key_index]
    key_index = key_index + 1
    if limited == nil then
      local current = refilled(lanes[key][lane], now, rate, burst)
      local left, retry = take(current, rate)
      set_lane(lanes[key], lane, left, now, rate, burst)
      if not dirty[key] then
        dirty[key] = true
        table.insert(order, key)
      end
      if retry > 0 then
        limited = {i, retry}
      end
    end
  end
  local claims = ARGV[arg] == '1'
  arg = arg + 1
  local value, ttl = nil, nil
  if claims then
    value, ttl = ARGV[arg], ARGV[arg + 1]
    arg = arg + 2
  end
  if limited ~= nil then
    table.insert(answer, 0)
    table.insert(answer, string.format('%.17g', limited[2]))
    table.insert(answer, limited[1])
    if claims then
      claim_index = claim_index + 1
    end
  else
    table.insert(answer, 1)
    table.insert(answer, '')
    if claims then
      local existing = redis.call('SET', KEYS[claim_index], value, 'NX', 'PX', ttl, 'GET')
      claim_index = claim_index + 1
      table.insert(answer, existing)
    else
      table.insert(answer, false)
    end
  end
end

for _, key in ipairs(order) do
  store(key, lanes[key], now)
end
return answer
