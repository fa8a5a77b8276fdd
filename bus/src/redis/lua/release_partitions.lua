-- SharedState::release_partitions.
-- KEYS[1]: the group's members; KEYS[2]: the group's leases (see
-- claim_partitions.lua). ARGV[1]: member; ARGV[2]: "1" when it leaves the
-- group; ARGV[3..]: partitions to give back. Only the holder's own leases
-- are removed.
for i = 3, #ARGV do
  local lease = redis.call('HGET', KEYS[2], ARGV[i])
  if lease then
    local sep = string.find(lease, ':', 1, true)
    if sep and string.sub(lease, sep + 1) == ARGV[1] then
      redis.call('HDEL', KEYS[2], ARGV[i])
    end
  end
end
if ARGV[2] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
