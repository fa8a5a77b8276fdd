-- SharedState::connection_alive. KEYS: user set, shard set.
-- ARGV[1]: user; ARGV[2]: connection; ARGV[3]: ttl in ms.
-- Only a live connection is extended: an expired one may already have
-- made its user offline, and reviving it would skip the online event.
local now = now_ms()
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
if score and tonumber(score) > now then
  local expires = now + tonumber(ARGV[3])
  redis.call('ZADD', KEYS[1], expires, ARGV[2])
  redis.call('ZADD', KEYS[2], expires, ARGV[1] .. '\0' .. ARGV[2])
end
return 0
