-- Decide a pending approval, once, and announce it.
--
-- KEYS     1 the approval's hash, 2 the tenant's pending set
-- ARGV     1 tenant, 2 status (approved or rejected), 3 by, 4 why,
--          5 decision time (RFC 3339), 6 the approval id, 7 the channel
--          the decision is published on (the message is KEYS[1])
-- Returns  {0} if there is no such approval of the tenant; else {1, hash}
--          when decided now, {2, hash} when it was already decided (hash:
--          the approval's fields and values).
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then
  return {0}
end
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then
  return {2, redis.call('HGETALL', KEYS[1])}
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'by', ARGV[3], 'why', ARGV[4], 'decided', ARGV[5])
redis.call('ZREM', KEYS[2], ARGV[6])
redis.call('PUBLISH', ARGV[7], KEYS[1])
return {1, redis.call('HGETALL', KEYS[1])}
