-- WorkQueue::trim (trimming.lua is prepended). KEYS[1]: the stream.
-- ARGV[1]: '=' (exact) or '~' (whole nodes only, cheaper).
trim(KEYS[1], ARGV[1])
return 1
