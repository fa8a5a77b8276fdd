-- The token bucket rule, prepended to take_token.lua and admit.lua.
-- A bucket is a string key holding "<tokens> <at>", `at` the server time
-- of its last update in microseconds; it is refilled lazily by each call
-- and expires once it would be full again, so idle users cost no memory.
-- Read with MGET (never an error: a key of another type, such as a bucket
-- of an older version kept in a hash, reads as absent, i.e. full, and is
-- replaced by the next write).

-- The server's time in microseconds (one TIME per script).
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- The bucket held in `value` (nil: none) at `now`, refilled: tokens.
local function refilled(value, now, rate, burst)
  local tokens, at = nil, nil
  if type(value) == 'string' then
    local t, a = string.match(value, '^(%S+) (%S+)$')
    tokens, at = tonumber(t), tonumber(a)
  end
  if tokens == nil or at == nil then
    return burst
  end
  local elapsed = math.max(0, now - at) / 1000000
  return math.min(burst, tokens + elapsed * rate)
end

-- Takes `count` tokens (absent: 1) from `tokens`, all or none; more than
-- the burst never. Answers the tokens left and 0 when allowed, or `tokens`
-- unchanged and the seconds until they are available (more than 0; for a
-- count over the burst, the wait for a full bucket, at least a microsecond).
local function take(tokens, rate, count, burst)
  count = count or 1
  if tokens >= count and (burst == nil or count <= burst) then
    return tokens - count, 0
  end
  local wanted = count
  if burst ~= nil then
    wanted = math.min(count, burst)
  end
  return tokens, math.max(0.000001, (wanted - tokens) / rate)
end

-- Writes a bucket back with its expiry (when it would be full again;
-- bounded for absurdly slow rates).
local function store(key, tokens, now, rate, burst)
  local full_in_ms = math.min(math.ceil((burst - tokens) / rate * 1000) + 1, 2592000000)
  redis.call('SET', key, string.format('%.17g %.17g', tokens, now), 'PX', full_in_ms)
end
