-- SharedState::admit: the rate limits and idempotency claims of a batch of
-- actions in one script (bucket.lua is prepended), so a router batch costs
-- one round trip and, per action, one SET per claim, and one SET per
-- bucket key for the whole batch (a send's budget and send rate are lanes
-- of one key); the keys are read with one MGET for the whole batch.
-- Per action: tokens from the buckets charged to every action, then the
-- claim, then, unless the claim found its key taken (a repeat, answered
-- with the live value), tokens from the rest; a refusal there deletes the
-- claim just made, within the script, so nobody ever sees it.
-- KEYS: every bucket key, then every claim key (see ARGV).
-- ARGV: the number of actions, then per action: the number of its buckets
-- b, how many of them come before its claim, then b triples (lane, tokens
-- per second, burst), then 1 and (value, ttl in ms) when it claims a key,
-- else 0. The keys are taken from KEYS in that order (buckets first:
-- KEYS[1..B]; claims after them).
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
  arg = arg + 2 + 3 * b
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

local dirty = {}
local order = {}

-- A token from each of an action's buckets `from` to `to` - 1 (its first
-- key is KEYS[first_key], its first triple at ARGV[first_arg]), up to the
-- first refusal; answers {bucket number, seconds} for a refusal, else nil.
local function take_each(first_key, first_arg, from, to)
  for i = from, to - 1 do
    local key = KEYS[first_key + i]
    local a = first_arg + 3 * i
    local lane, rate, burst = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local current = refilled(lanes[key][lane], now, rate, burst)
    local left, retry = take(current, rate)
    set_lane(lanes[key], lane, left, now, rate, burst)
    if not dirty[key] then
      dirty[key] = true
      table.insert(order, key)
    end
    if retry > 0 then
      return {i, retry}
    end
  end
  return nil
end

local answer = {}
arg = 2
local key_index = 1
local claim_index = bucket_keys + 1
for _ = 1, actions do
  local b = tonumber(ARGV[arg])
  local before_claim = tonumber(ARGV[arg + 1])
  local first_key, first_arg = key_index, arg + 2
  key_index = key_index + b
  arg = arg + 2 + 3 * b
  local claim_key, value, ttl = nil, nil, nil
  if ARGV[arg] == '1' then
    claim_key, value, ttl = KEYS[claim_index], ARGV[arg + 1], ARGV[arg + 2]
    claim_index = claim_index + 1
    arg = arg + 3
  else
    arg = arg + 1
  end

  local limited = take_each(first_key, first_arg, 0, before_claim)
  local existing = false
  if limited == nil and claim_key ~= nil then
    existing = redis.call('SET', claim_key, value, 'NX', 'PX', ttl, 'GET')
  end
  if limited == nil and not existing then
    limited = take_each(first_key, first_arg, before_claim, b)
    if limited ~= nil and claim_key ~= nil then
      redis.call('DEL', claim_key)
    end
  end

  if limited ~= nil then
    table.insert(answer, 0)
    table.insert(answer, string.format('%.17g', limited[2]))
    table.insert(answer, limited[1])
  else
    table.insert(answer, 1)
    table.insert(answer, '')
    table.insert(answer, existing)
  end
end

for _, key in ipairs(order) do
  store(key, lanes[key], now)
end
return answer
