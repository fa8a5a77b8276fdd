-- Presence: shared helpers, prepended to each presence script.
--
-- Per user, a sorted set connection -> end of life (ms, server time), in
-- KEYS[1]; per presence shard, a sorted set "user\0connection" -> end of
-- life, in KEYS[2], which the sweep walks. Both sit in one hash slot (the
-- shard's hash tag), so each script is atomic on a cluster too. A user's
-- set exists while they have a connection, live or expired-but-unswept; the
-- call that empties it is the one that reports the user offline.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function live(user_key, now)
  return redis.call('ZCOUNT', user_key, '(' .. now, '+inf')
end

-- Drops the expired connections of a user from both sets; answers whether
-- the user has no connection left.
local function purge(user_key, shard_key, user, now)
  local dead = redis.call('ZRANGEBYSCORE', user_key, '-inf', now)
  for _, connection in ipairs(dead) do
    redis.call('ZREM', shard_key, user .. '\0' .. connection)
  end
  if #dead > 0 then
    redis.call('ZREMRANGEBYSCORE', user_key, '-inf', now)
  end
  return redis.call('EXISTS', user_key) == 0
end
