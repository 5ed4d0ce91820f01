-- Use up an approved approval, once.
--
-- KEYS     1 the approval's hash
-- ARGV     1 tenant, 2 check
-- Returns  {0} if there is no such approval of the tenant and check; else
--          {1, hash} when used up now, {2, hash} when it is not approved,
--          {3, hash} when it was already used (hash: the approval's fields
--          and values).
local h = redis.call('HMGET', KEYS[1], 'tenant', 'check', 'status', 'consumed')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] then
  return {0}
end
if h[3] ~= 'approved' then
  return {2, redis.call('HGETALL', KEYS[1])}
end
if h[4] == '1' then
  return {3, redis.call('HGETALL', KEYS[1])}
end
redis.call('HSET', KEYS[1], 'consumed', '1')
return {1, redis.call('HGETALL', KEYS[1])}
