-- SharedState::online, for the users of one presence shard.
-- KEYS: their user sets. Answers 1 or 0 per key.
local now = now_ms()
local answers = {}
for i, key in ipairs(KEYS) do
  answers[i] = 0
  if live(key, now) > 0 then
    answers[i] = 1
  end
end
return answers
