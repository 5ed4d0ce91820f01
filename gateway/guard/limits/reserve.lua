-- Reserve: check and count one request and ARGV[4] tokens in every counter
-- of KEYS, all or nothing (the script runs atomically).
--
-- KEYS[i]  counter hash of scope i: fields i0 r0 t0 / i1 r1 t1 (bucket index,
--          requests, tokens of the two minute buckets; slot = index mod 2),
--          d dt (UTC day index, tokens that day)
-- ARGV     1 now in ms (0: the server's TIME), 2 window ms, 3 day ms,
--          4 tokens, then per scope i: rpm, tpm, tpd (0: no limit)
-- Returns  {ok (1 or 0), now, then per scope cr ct pr pt dt}: the counters
--          before this reservation, from which the caller derives quotas or
--          the refusal. The arithmetic mirrors window.fits in limits.go.
local now = tonumber(ARGV[1])
if now <= 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local win, dayms, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local idx = math.floor(now / win)
local el = now - idx * win
local day = math.floor(now / dayms)
local cs, ps = tostring(idx % 2), tostring((idx + 1) % 2)
local function int(x) return string.format('%d', x) end
local function fits(l, k, c, p) return p * (win - el) + (c + k) * win <= l * win end

local out, ok = {1, now}, true
for i = 1, #KEYS do
  local b = 4 + (i - 1) * 3
  local rpm, tpm, tpd = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local v = redis.call('HMGET', KEYS[i], 'i' .. cs, 'r' .. cs, 't' .. cs, 'i' .. ps, 'r' .. ps, 't' .. ps, 'd', 'dt')
  local cr, ct, pr, pt, dt = 0, 0, 0, 0, 0
  if tonumber(v[1]) == idx then cr, ct = tonumber(v[2]) or 0, tonumber(v[3]) or 0 end
  if tonumber(v[4]) == idx - 1 then pr, pt = tonumber(v[5]) or 0, tonumber(v[6]) or 0 end
  if tpd > 0 and tonumber(v[7]) == day then dt = tonumber(v[8]) or 0 end
  if (rpm > 0 and not fits(rpm, 1, cr, pr)) or (tpm > 0 and not fits(tpm, n, ct, pt)) or (tpd > 0 and dt + n > tpd) then
    ok = false
  end
  local o = #out
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = cr, ct, pr, pt, dt
end
if not ok then
  out[1] = 0
  return out
end
for i = 1, #KEYS do
  local tpd = tonumber(ARGV[4 + (i - 1) * 3 + 3])
  local o = 2 + (i - 1) * 5
  local ttl = 2 * win + 1000
  if tpd > 0 then
    redis.call('HSET', KEYS[i], 'i' .. cs, int(idx), 'r' .. cs, int(out[o + 1] + 1), 't' .. cs, int(out[o + 2] + n),
      'd', int(day), 'dt', int(out[o + 5] + n))
    ttl = math.max(ttl, (day + 1) * dayms - now + win)
  else
    redis.call('HSET', KEYS[i], 'i' .. cs, int(idx), 'r' .. cs, int(out[o + 1] + 1), 't' .. cs, int(out[o + 2] + n))
  end
  redis.call('PEXPIRE', KEYS[i], int(ttl))
end
return out
