-- SharedState::connections_alive, for the connections of one presence
-- shard. KEYS[1]: the shard set; KEYS[1 + i]: the user set of connection
-- i. ARGV[1]: ttl in ms; ARGV[2i], ARGV[2i + 1]: user and connection i.
-- Only a live connection is extended: an expired one may already have
-- made its user offline, and reviving it would skip the online event.
-- The shard set holds every connection with the same end of life as its
-- user set, so one ZMSCORE on it tells which of the batch are live, and
-- one ZADD extends them all there: a batch costs one command per
-- connection (its user set's ZADD) and two for the shard. Returns the
-- positions (from 1) of the connections not extended, for the caller to
-- open again.
local now = now_ms()
local expires = now + tonumber(ARGV[1])
local members = {}
for i = 2, #KEYS do
  members[i - 1] = ARGV[2 * i - 2] .. '\0' .. ARGV[2 * i - 1]
end
if #members == 0 then
  return {}
end
local scores = redis.call('ZMSCORE', KEYS[1], unpack(members))
local extended = {}
local not_live = {}
for i = 1, #members do
  local score = scores[i]
  if score and tonumber(score) > now then
    redis.call('ZADD', KEYS[i + 1], expires, ARGV[2 * i + 1])
    table.insert(extended, expires)
    table.insert(extended, members[i])
  else
    table.insert(not_live, i)
  end
end
if #extended > 0 then
  redis.call('ZADD', KEYS[1], unpack(extended))
end
return not_live
