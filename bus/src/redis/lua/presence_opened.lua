-- SharedState::connection_opened. KEYS: user set, shard set.
-- ARGV[1]: user; ARGV[2]: connection; ARGV[3]: ttl in ms.
-- Answers 1 when the user had no live connection.
local now = now_ms()
local was_offline = live(KEYS[1], now) == 0
-- Expired connections are dead; this one takes the user over, so their
-- expiry is not reported by a sweep either.
purge(KEYS[1], KEYS[2], ARGV[1], now)
local expires = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], expires, ARGV[2])
redis.call('ZADD', KEYS[2], expires, ARGV[1] .. '\0' .. ARGV[2])
if was_offline then
  return 1
end
return 0
