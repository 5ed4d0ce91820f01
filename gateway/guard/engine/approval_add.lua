-- Add a pending approval, unless its id is in use.
--
-- KEYS     1 the approval's hash, 2 the tenant's pending set (a sorted set
--          of approval ids by creation time in ms)
-- ARGV     1 TTL in ms, 2 the approval id, 3 its creation time in ms,
--          4 the creation time in ms before which approvals have expired,
--          then the hash's field and value pairs
-- Returns  1, or 0 if the hash exists (the id is in use).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
