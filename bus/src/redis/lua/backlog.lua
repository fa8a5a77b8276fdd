-- WorkQueue::backlog. KEYS[1]: the stream; ARGV[1]: the group.
-- Answers {entries, oldest}: how many entries the group has not
-- acknowledged (pending with a consumer, or not handed out yet), and the id
-- of the oldest of them ('' when none).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, ''}
end

local function first_from(start)
  local first = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 1)
  if #first > 0 then
    return first[1][1]
  end
  return ''
end

for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local fields = {}
  for i = 1, #group, 2 do
    fields[group[i]] = group[i + 1]
  end
  if fields['name'] == ARGV[1] then
    local pending = fields['pending']
    local lag = fields['lag']
    if not lag then
      -- Redis cannot tell (entries were deleted mid-stream): count what
      -- is left after the last delivered entry.
      lag = #redis.call('XRANGE', KEYS[1], '(' .. fields['last-delivered-id'], '+')
    end
    local oldest = ''
    if pending > 0 then
      oldest = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1)[1][1]
    elseif lag > 0 then
      oldest = first_from('(' .. fields['last-delivered-id'])
    end
    return {pending + lag, oldest}
  end
end
-- No such group yet: the whole stream waits for it.
return {redis.call('XLEN', KEYS[1]), first_from('-')}
