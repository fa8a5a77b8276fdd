-- WorkQueue::append with back-pressure, when a length check is due (most
-- appends are a plain XADD; see queue.rs); trimming.lua is prepended.
-- KEYS[1]: the stream. ARGV[1]: the most entries the stream may hold;
-- ARGV[2]: the payload; ARGV[3]: the trim mode, '=' or '~'.
-- Answers the new entry's id, or nil when the stream is full. Consumers
-- trim now and then (trim.lua); a stream that looks full is trimmed here
-- first, so that whatever was acknowledged makes room at once. Still full
-- means consumers are behind.
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  trim(KEYS[1], ARGV[3])
  if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
    return false
  end
end
return redis.call('XADD', KEYS[1], '*', 'p', ARGV[2])
