-- SharedState::expired_connections, for one presence shard.
-- KEYS[1]: the shard set. ARGV[1]: most connections to remove; ARGV[2]: the
-- prefix of the shard's user sets (they share KEYS[1]'s hash tag, so they
-- are in its slot).
-- Answers {connections removed, users made offline...}: a user is
-- answered by the sweep that removes their last connection.
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local answer = {#due}
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local sep = string.find(member, '\0', 1, true)
  if sep then
    local user = string.sub(member, 1, sep - 1)
    local connection = string.sub(member, sep + 1)
    local user_key = ARGV[2] .. user
    local score = redis.call('ZSCORE', user_key, connection)
    if score and tonumber(score) <= now then
      redis.call('ZREM', user_key, connection)
      if redis.call('EXISTS', user_key) == 0 then
        table.insert(answer, user)
      end
    end
  end
end
return answer
