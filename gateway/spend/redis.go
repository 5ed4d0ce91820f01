package spend

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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
// Layout: one hash per budget window, K = prefix + "{" + tenant + "}:" +
// line key, with fields s = "spent_usd spent_tokens", r = "reserved_usd
// reserved_tokens", x = the earliest expiry (ms) of a hold it may still
// have, and h:ID = "usd tokens until_ms" for each reservation held; string
// prefix{tenant}:s:ID marks a settled reservation for 48 hours. Each call
// into Redis from a script costs a few microseconds, so the scripts read
// a line with one HMGET and write it with one HSET: a reservation on
// three budgets is about ten commands. Amounts are integers in nano-USD;
// Lua holds them as doubles, exact below 2^53 (about nine million dollars
// per budget window), and writes them with %d.
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

// lib is shared by the scripts: pairs parses "a b", load reads a line and
// releases its expired holds (rare: only when x has passed).
const lib = `
local function pair(v)
  if not v then return 0, 0 end
  local sp = string.find(v, ' ')
  return tonumber(string.sub(v, 1, sp-1)), tonumber(string.sub(v, sp+1))
end
local function fmt(a, b) return string.format('%d %d', a, b) end
local function load(k, now, extra)
  local v = redis.call('HMGET', k, 's', 'r', 'x', extra)
  local su, st = pair(v[1])
  local ru, rt = pair(v[2])
  local x = tonumber(v[3])
  if x and x <= now then
    local all = redis.call('HGETALL', k)
    local nx = nil
    for i = 1, #all, 2 do
      local f = all[i]
      if string.sub(f, 1, 2) == 'h:' then
        local a, b, c = string.match(all[i+1], '^(%S+) (%S+) (%S+)$')
        local untilms = tonumber(c)
        if untilms <= now then
          ru, rt = ru - tonumber(a), rt - tonumber(b)
          redis.call('HDEL', k, f)
          if f == 'h:'..extra then v[4] = false end
        elseif not nx or untilms < nx then
          nx = untilms
        end
      end
    end
    redis.call('HSET', k, 'r', fmt(ru, rt))
    if nx then redis.call('HSET', k, 'x', nx) else redis.call('HDEL', k, 'x') end
    x = nx
  end
  return {su = su, st = st, ru = ru, rt = rt, x = x, held = v[4], new = not v[1] and not v[2]}
end
local function out(l) return {fmt(l.su, l.st), fmt(l.ru, l.rt)} end
`

// reserveScript: KEYS = lines; ARGV = now_ms, id, until_ms, usd, tokens,
// then per line limit_usd, limit_tokens, expire_at_s.
var reserveScript = redis.NewScript(lib + `
local now, id, untilms = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local usd, tok = tonumber(ARGV[4]), tonumber(ARGV[5])
local lines, res = {}, {}
for i, k in ipairs(KEYS) do
  local l = load(k, now, 'h:'..id)
  lines[i] = l
  res[i] = out(l)
  local lu, lt = tonumber(ARGV[3+3*i]), tonumber(ARGV[4+3*i])
  if lu > 0 then
    if l.su + usd > lu then return {'exceeded', i, 0, res} end
    if l.su + l.ru + usd > lu then return {'reserved', i, 0, res} end
  end
  if lt > 0 then
    if l.st + tok > lt then return {'exceeded', i, 1, res} end
    if l.st + l.rt + tok > lt then return {'reserved', i, 1, res} end
  end
end
for i, k in ipairs(KEYS) do
  local l = lines[i]
  l.ru, l.rt = l.ru + usd, l.rt + tok
  local x = l.x
  if not x or untilms < x then x = untilms end
  redis.call('HSET', k, 'r', fmt(l.ru, l.rt), 'x', x, 'h:'..id, ARGV[4]..' '..ARGV[5]..' '..ARGV[3])
  if l.new then redis.call('EXPIREAT', k, ARGV[5+3*i]) end
  res[i] = out(l)
end
return {'ok', 0, 0, res}
`)

// settleScript: KEYS = settled marker, lines; ARGV = now_ms, id, usd,
// tokens, marker ttl s, expire_at_s.
var settleScript = redis.NewScript(lib + `
local now, id = tonumber(ARGV[1]), ARGV[2]
local usd, tok = tonumber(ARGV[3]), tonumber(ARGV[4])
local dup = 0
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[5]) then dup = 1 end
local res = {}
for i = 2, #KEYS do
  local k = KEYS[i]
  local l = load(k, now, 'h:'..id)
  if dup == 0 then
    l.su, l.st = l.su + usd, l.st + tok
    if l.held then
      local hu, ht = string.match(l.held, '^(%S+) (%S+)')
      l.ru, l.rt = l.ru - tonumber(hu), l.rt - tonumber(ht)
      redis.call('HDEL', k, 'h:'..id)
    end
    redis.call('HSET', k, 's', fmt(l.su, l.st), 'r', fmt(l.ru, l.rt))
    if l.new then redis.call('EXPIREAT', k, ARGV[6]) end
  end
  res[i-1] = out(l)
end
return {dup, res}
`)

// readScript: KEYS = lines; ARGV = now_ms.
var readScript = redis.NewScript(lib + `
local res = {}
for i, k in ipairs(KEYS) do
  res[i] = out(load(k, tonumber(ARGV[1]), 'h:'))
end
return res
`)

// Reserve implements Counter.
func (r *Redis) Reserve(ctx context.Context, tenant, id string, lines []Line, usd, tokens int64, hold time.Duration) (Admission, error) {
	now := time.Now()
	keys := make([]string, len(lines))
	args := make([]any, 0, 5+3*len(lines))
	args = append(args, now.UnixMilli(), id, now.Add(hold).UnixMilli(), strconv.FormatInt(usd, 10), strconv.FormatInt(tokens, 10))
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
		if !ok || len(f) != 2 {
			return nil, fmt.Errorf("spend: redis: unexpected state %v", row)
		}
		var n [4]int64
		for j := range 2 {
			s, _ := f[j].(string)
			a, b, ok := strings.Cut(s, " ")
			x, err1 := strconv.ParseInt(a, 10, 64)
			y, err2 := strconv.ParseInt(b, 10, 64)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("spend: redis: bad counter %q", s)
			}
			n[2*j], n[2*j+1] = x, y
		}
		// s = spent usd, tokens; r = reserved usd, tokens
		out[i] = State{SpentUSD: n[0], SpentTokens: n[1], ReservedUSD: n[2], ReservedTokens: n[3]}
	}
	return out, nil
}
