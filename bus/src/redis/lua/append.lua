-- WorkQueue::append with back-pressure. KEYS[1]: the stream.
-- ARGV[1]: the most entries the stream may hold; ARGV[2]: the payload.
-- Answers the new entry's id, or nil when the stream is full. Entries are
-- only trimmed once every group is done with them (ack.lua), so a full
-- stream means consumers are behind.
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return false
end
return redis.call('XADD', KEYS[1], '*', 'p', ARGV[2])
