package spend

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// counterGrace is how long after its window a counter is kept.
const counterGrace = 7 * 24 * time.Hour

// Redis is a Counter in Redis, shared by gateway replicas: each operation
// is one Lua script, so a reservation's check and increment on all its
// lines are one atomic step. A tenant's keys share a hash tag (one slot in
// Redis Cluster).
//
// Layout per budget window (K = prefix + "{" + tenant + "}:" + line key):
// hash K {su, st, ru, rt} (spent and reserved money and tokens), hash K:h
// (reservation id -> "-usd -tokens", the amounts to undo), sorted set K:x
// (reservation id by expiry in ms); string prefix{tenant}:s:ID marks a
// settled reservation for 48 hours. Amounts are integers in nano-USD;
// scripts pass them to HINCRBY as the decimal strings they received, so no
// amount goes through a Lua float (comparisons do: exact below 2^53 nano-USD,
// about nine million dollars per window).
type Redis struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedis returns a counter store in Redis under a key prefix (e.g.
// "aigw:budget:").
func NewRedis(c redis.UniversalClient, prefix string) *Redis {
	return &Redis{c: c, prefix: prefix}
}

func (r *Redis) key(tenant, k string) string { return r.prefix + "{" + tenant + "}:" + k }

// sweep releases a line's expired reservations (used by every script).
const sweep = `
local function sweep(k, now)
  local ids = redis.call('ZRANGEBYSCORE', k..':x', '-inf', now)
  for _, id in ipairs(ids) do
    local v = redis.call('HGET', k..':h', id)
    if v then
      local sp = string.find(v, ' ')
      redis.call('HINCRBY', k, 'ru', string.sub(v, 1, sp-1))
      redis.call('HINCRBY', k, 'rt', string.sub(v, sp+1))
      redis.call('HDEL', k..':h', id)
    end
    redis.call('ZREM', k..':x', id)
  end
end
local function state(k)
  local s = redis.call('HMGET', k, 'su', 'ru', 'st', 'rt')
  for i = 1, 4 do if not s[i] then s[i] = '0' end end
  return s
end
`

// reserveScript: KEYS = lines; ARGV = now_ms, id, until_ms, usd, tokens,
// -usd, -tokens, then per line limit_usd, limit_tokens, expire_at_s.
var reserveScript = redis.NewScript(sweep + `
local now, id, untilms = ARGV[1], ARGV[2], ARGV[3]
local usd, tok = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
for i, k in ipairs(KEYS) do
  sweep(k, now)
  local s = state(k)
  out[i] = s
  local lu, lt = tonumber(ARGV[8+3*(i-1)]), tonumber(ARGV[9+3*(i-1)])
  local su, ru, st, rt = tonumber(s[1]), tonumber(s[2]), tonumber(s[3]), tonumber(s[4])
  if lu > 0 then
    if su + usd > lu then return {'exceeded', i, 0, out} end
    if su + ru + usd > lu then return {'reserved', i, 0, out} end
  end
  if lt > 0 then
    if st + tok > lt then return {'exceeded', i, 1, out} end
    if st + rt + tok > lt then return {'reserved', i, 1, out} end
  end
end
for i, k in ipairs(KEYS) do
  redis.call('HINCRBY', k, 'ru', ARGV[4])
  redis.call('HINCRBY', k, 'rt', ARGV[5])
  redis.call('HSET', k..':h', id, ARGV[6]..' '..ARGV[7])
  redis.call('ZADD', k..':x', untilms, id)
  local exp = ARGV[10+3*(i-1)]
  redis.call('EXPIREAT', k, exp)
  redis.call('EXPIREAT', k..':h', exp)
  redis.call('EXPIREAT', k..':x', exp)
  out[i] = state(k)
end
return {'ok', 0, 0, out}
`)

// settleScript: KEYS = settled marker, lines; ARGV = now_ms, id, usd,
// tokens, marker ttl s, expire_at_s.
var settleScript = redis.NewScript(sweep + `
local now, id = ARGV[1], ARGV[2]
local dup = 0
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[5]) then dup = 1 end
local out = {}
for i = 2, #KEYS do
  local k = KEYS[i]
  sweep(k, now)
  if dup == 0 then
    local v = redis.call('HGET', k..':h', id)
    if v then
      local sp = string.find(v, ' ')
      redis.call('HINCRBY', k, 'ru', string.sub(v, 1, sp-1))
      redis.call('HINCRBY', k, 'rt', string.sub(v, sp+1))
      redis.call('HDEL', k..':h', id)
      redis.call('ZREM', k..':x', id)
    end
    redis.call('HINCRBY', k, 'su', ARGV[3])
    redis.call('HINCRBY', k, 'st', ARGV[4])
    if redis.call('TTL', k) < 0 then redis.call('EXPIREAT', k, ARGV[6]) end
  end
  out[i-1] = state(k)
end
return {dup, out}
`)

// readScript: KEYS = lines; ARGV = now_ms.
var readScript = redis.NewScript(sweep + `
local out = {}
for i, k in ipairs(KEYS) do
  sweep(k, ARGV[1])
  out[i] = state(k)
end
return out
`)

// Reserve implements Counter.
func (r *Redis) Reserve(ctx context.Context, tenant, id string, lines []Line, usd, tokens int64, hold time.Duration) (Admission, error) {
	now := time.Now()
	keys := make([]string, len(lines))
	args := make([]any, 0, 7+3*len(lines))
	args = append(args, now.UnixMilli(), id, now.Add(hold).UnixMilli(),
		strconv.FormatInt(usd, 10), strconv.FormatInt(tokens, 10), strconv.FormatInt(-usd, 10), strconv.FormatInt(-tokens, 10))
	for i, l := range lines {
		keys[i] = r.key(tenant, l.Key)
		args = append(args, l.LimitUSD, l.LimitTokens, l.Expires.Unix())
	}
	v, err := reserveScript.Run(ctx, r.c, keys, args...).Slice()
	if err != nil {
		return Admission{}, fmt.Errorf("spend: redis reserve: %w", err)
	}
	if len(v) != 4 {
		return Admission{}, fmt.Errorf("spend: redis reserve: unexpected reply %v", v)
	}
	states, err := parseStates(v[3])
	if err != nil {
		return Admission{}, err
	}
	reason, _ := v[0].(string)
	line, _ := v[1].(int64)
	tok, _ := v[2].(int64)
	adm := Admission{States: make([]State, len(lines))}
	copy(adm.States, states)
	if reason == "ok" {
		adm.OK = true
		return adm, nil
	}
	adm.Line, adm.Reason, adm.Tokens = int(line)-1, reason, tok == 1
	return adm, nil
}

// Settle implements Counter.
func (r *Redis) Settle(ctx context.Context, tenant, id string, keys []string, usd, tokens int64) ([]State, bool, error) {
	now := time.Now()
	ks := make([]string, 0, 1+len(keys))
	ks = append(ks, r.prefix+"{"+tenant+"}:s:"+id)
	for _, k := range keys {
		ks = append(ks, r.key(tenant, k))
	}
	v, err := settleScript.Run(ctx, r.c, ks, now.UnixMilli(), id, strconv.FormatInt(usd, 10), strconv.FormatInt(tokens, 10),
		int64(settledTTL/time.Second), now.Add(counterGrace+31*24*time.Hour).Unix()).Slice()
	if err != nil {
		return nil, false, fmt.Errorf("spend: redis settle: %w", err)
	}
	if len(v) != 2 {
		return nil, false, fmt.Errorf("spend: redis settle: unexpected reply %v", v)
	}
	states, err := parseStates(v[1])
	if err != nil {
		return nil, false, err
	}
	dup, _ := v[0].(int64)
	return states, dup == 1, nil
}

// Read implements Counter.
func (r *Redis) Read(ctx context.Context, tenant string, keys []string) ([]State, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	ks := make([]string, len(keys))
	for i, k := range keys {
		ks[i] = r.key(tenant, k)
	}
	v, err := readScript.Run(ctx, r.c, ks, time.Now().UnixMilli()).Result()
	if err != nil {
		return nil, fmt.Errorf("spend: redis read: %w", err)
	}
	return parseStates(v)
}

func parseStates(v any) ([]State, error) {
	rows, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("spend: redis: unexpected states %v", v)
	}
	out := make([]State, len(rows))
	for i, row := range rows {
		f, ok := row.([]any)
		if !ok || len(f) != 4 {
			return nil, fmt.Errorf("spend: redis: unexpected state %v", row)
		}
		var n [4]int64
		for j := range n {
			s, _ := f[j].(string)
			x, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("spend: redis: bad counter %q", s)
			}
			n[j] = x
		}
		out[i] = State{SpentUSD: n[0], ReservedUSD: n[1], SpentTokens: n[2], ReservedTokens: n[3]}
	}
	return out, nil
}
