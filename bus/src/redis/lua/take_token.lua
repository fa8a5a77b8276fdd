-- A token bucket (SharedState::take_tokens); bucket.lua is prepended.
-- KEYS[1]: the bucket. ARGV[1]: tokens per second; ARGV[2]: burst (the
-- most the bucket holds); ARGV[3]: tokens to take, all or none (absent: 1;
-- over the burst: never).
-- Answers {1, "0"} when they were taken, or {0, seconds until they are
-- available} (a string: Lua numbers would be truncated to integers).
-- Server time, not the callers', so that every process agrees on it.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local count = tonumber(ARGV[3]) or 1
local now = now_us()
local tokens = refilled(redis.call('MGET', KEYS[1])[1], now, rate, burst)
local left, retry = take(tokens, rate, count, burst)
store(KEYS[1], left, now, rate, burst)
if retry == 0 then
  return {1, '0'}
end
return {0, string.format('%.17g', retry)}
