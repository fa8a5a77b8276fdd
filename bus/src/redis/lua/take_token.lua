-- A token bucket (SharedState::take_tokens); bucket.lua is prepended.
-- KEYS[1]: the key of the bucket. ARGV[1]: its lane; ARGV[2]: tokens per
-- second; ARGV[3]: burst (the most the bucket holds); ARGV[4]: tokens to
-- take, all or none (absent: 1; over the burst: never).
-- Answers {1, "0"} when they were taken, or {0, seconds until they are
-- available} (a string: Lua numbers would be truncated to integers).
-- Server time, not the callers', so that every process agrees on it.
local lane = ARGV[1]
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local count = tonumber(ARGV[4]) or 1
local now = now_us()
local lanes = lanes_of(redis.call('MGET', KEYS[1])[1])
local tokens = refilled(lanes[lane], now, rate, burst)
local left, retry = take(tokens, rate, count, burst)
set_lane(lanes, lane, left, now, rate, burst)
store(KEYS[1], lanes, now)
if retry == 0 then
  return {1, '0'}
end
return {0, string.format('%.17g', retry)}
