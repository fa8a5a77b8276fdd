-- SharedState::renew_worker_id. KEYS[1]: the id's key.
-- ARGV[1]: owner; ARGV[2]: ttl in ms. Extends the lease only if it is
-- still the owner's; answers 1 if it did.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
