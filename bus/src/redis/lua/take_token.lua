-- A token bucket, refilled lazily on each call (SharedState::take_tokens).
-- KEYS[1]: the bucket, a hash {tokens, at}; `at` is the server time of the
--          last update in microseconds.
-- ARGV[1]: tokens per second; ARGV[2]: burst (the most the bucket holds);
-- ARGV[3]: tokens to take, all or none (absent: 1; over the burst: never).
-- Answers {1, "0"} when they were taken, or {0, seconds until they are
-- available} (a string: Lua numbers would be truncated to integers).
-- Server time, not the callers', so that every process agrees on it.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local count = tonumber(ARGV[3]) or 1
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
local elapsed = math.max(0, now - at) / 1000000
tokens = math.min(burst, tokens + elapsed * rate)
local allowed = 0
local retry = 0
if count <= burst and tokens >= count then
  tokens = tokens - count
  allowed = 1
else
  retry = math.max(0, math.min(count, burst) - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.17g', now))
-- A full bucket is the same as none: let it vanish once it would be full
-- again, so idle users cost no memory. Bounded for absurdly slow rates.
local full_in_ms = math.min(math.ceil((burst - tokens) / rate * 1000) + 1, 2592000000)
redis.call('PEXPIRE', KEYS[1], full_in_ms)
return {allowed, string.format('%.17g', retry)}
