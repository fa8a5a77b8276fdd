-- SharedState::connection_closed. KEYS: user set, shard set.
-- ARGV[1]: user; ARGV[2]: connection.
-- Answers 1 when this removed the user's last connection while none of
-- the others is live (their expiry then is reported here, not by a sweep).
local now = now_ms()
local removed = redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1] .. '\0' .. ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return removed
end
if live(KEYS[1], now) > 0 then
  return 0
end
if purge(KEYS[1], KEYS[2], ARGV[1], now) then
  return 1
end
return 0
