-- Complete (settle or release) a reservation, once.
--
-- KEYS     the reservation's counter hashes (see reserve.lua), then its
--          completion marker
-- ARGV     1 now in ms (0: the server's TIME), 2 window ms, 3 day ms,
--          4 the reservation's bucket index, 5 its day index, 6 tokens
--          reserved, 7 tokens actually used (0 to release), 8 requests to
--          take back (1 to release, else 0), 9 marker TTL ms, then per
--          counter i: 1 if it keeps a daily count, else 0
-- Returns  1, or 0 if the reservation was already completed (the marker
--          exists). Mirrors Memory.complete: a positive difference is
--          counted now; a negative one, and a released request, are taken
--          back from the reservation's bucket and day while they are still
--          in the window, never below zero.
local nk = #KEYS - 1
if not redis.call('SET', KEYS[nk + 1], '1', 'NX', 'PX', ARGV[9]) then
  return 0
end
local now = tonumber(ARGV[1])
if now <= 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local win, dayms = tonumber(ARGV[2]), tonumber(ARGV[3])
local ridx, rday = tonumber(ARGV[4]), tonumber(ARGV[5])
local delta, reqs = tonumber(ARGV[7]) - tonumber(ARGV[6]), tonumber(ARGV[8])
local idx, day = math.floor(now / win), math.floor(now / dayms)
local function int(x) return string.format('%d', x) end

for i = 1, nk do
  local key, hasDay = KEYS[i], ARGV[9 + i] == '1'
  if delta > 0 then
    local cs = tostring(idx % 2)
    local v = redis.call('HMGET', key, 'i' .. cs, 'd')
    if tonumber(v[1]) == idx then
      redis.call('HINCRBY', key, 't' .. cs, int(delta))
    else
      redis.call('HSET', key, 'i' .. cs, int(idx), 'r' .. cs, '0', 't' .. cs, int(delta))
    end
    local ttl = 2 * win + 1000
    if hasDay then
      if tonumber(v[2]) == day then
        redis.call('HINCRBY', key, 'dt', int(delta))
      else
        redis.call('HSET', key, 'd', int(day), 'dt', int(delta))
      end
      ttl = math.max(ttl, (day + 1) * dayms - now + win)
    end
    redis.call('PEXPIRE', key, int(ttl))
  elseif delta < 0 or reqs > 0 then
    local toks = -delta
    if ridx >= idx - 1 then
      local s = tostring(ridx % 2)
      local v = redis.call('HMGET', key, 'i' .. s, 'r' .. s, 't' .. s)
      if tonumber(v[1]) == ridx then
        redis.call('HSET', key, 'r' .. s, int(math.max(0, (tonumber(v[2]) or 0) - reqs)),
          't' .. s, int(math.max(0, (tonumber(v[3]) or 0) - toks)))
      end
    end
    if hasDay and rday == day and toks > 0 then
      local v = redis.call('HMGET', key, 'd', 'dt')
      if tonumber(v[1]) == rday then
        redis.call('HSET', key, 'dt', int(math.max(0, (tonumber(v[2]) or 0) - toks)))
      end
    end
  end
end
return 1
