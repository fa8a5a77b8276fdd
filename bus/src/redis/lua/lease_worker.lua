-- SharedState::lease_worker_id.
-- KEYS[1]: the first id's key (routing only: every id's key shares its hash
-- tag, so the whole range is in one slot and one script sees it).
-- ARGV[1]: key prefix of the ids; ARGV[2]: owner; ARGV[3]: ttl in ms;
-- ARGV[4]: the id to try first; ARGV[5]: how many ids there are.
-- Answers the id leased, or -1 when every id is taken.
local count = tonumber(ARGV[5])
local start = tonumber(ARGV[4])
for i = 0, count - 1 do
  local id = (start + i) % count
  if redis.call('SET', ARGV[1] .. id, ARGV[2], 'NX', 'PX', ARGV[3]) then
    return id
  end
end
return -1
