-- A token bucket (SharedState::take_token); bucket.lua is prepended.
-- KEYS[1]: the bucket. ARGV[1]: tokens per second; ARGV[2]: burst (the
-- most the bucket holds).
-- Answers {1, "0"} when a token was taken, or {0, seconds until one is
-- available} (a string: Lua numbers would be truncated to integers).
-- Server time, not the callers', so that every process agrees on it.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = now_us()
local tokens = refilled(redis.call('MGET', KEYS[1])[1], now, rate, burst)
local left, retry = take(tokens, rate)
store(KEYS[1], left, now, rate, burst)
if retry == 0 then
  return {1, '0'}
end
return {0, string.format('%.17g', retry)}
