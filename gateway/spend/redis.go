package spend

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// counterGrace is how long after its window a counter is kept.
const counterGrace = 7 * 24 * time.Hour

// Redis is a Counter in Redis, shared by gateway replicas: each operation
// is one Lua script, so a reservation's check and increment on all its
// lines are one atomic step.
//
// Layout: all of a tenant's counters are one hash, prefix + "{" + tenant +
// "}:counters" (one slot in Redis Cluster), so that a reservation on any
// number of budgets reads them with one HMGET and writes them with one
// HSET: on Redis 7.0 each command a script sends costs a few microseconds
// of its own (arguments made into objects, the reply turned into Lua
// values), more than the work of the command. Its fields:
//
//   - c:LINE, a budget window's counter: the little-endian float64s spent
//     usd, spent tokens, reserved usd, reserved tokens and the time (Unix
//     ms) the counter may be forgotten;
//   - h:ID, a reservation held: float64s usd, tokens and until (Unix ms),
//     then the names of its c: fields separated by "\n";
//   - x, the earliest time (Unix ms, float64) a hold or a counter expires:
//     the first operation after it sweeps the hash, releasing the expired
//     holds and forgetting the expired counters (a hash field has no TTL of
//     its own before Redis 7.4);
//   - e, the hash's own expiry (Unix ms, float64): the latest of its
//     counters'.
//
// The string prefix{tenant}:s:ID marks a settled reservation for 48 hours.
//
// Numbers are binary float64s, read and written with Lua's struct library:
// Lua 5.1 holds every number as a double, and parsing or formatting one as
// decimal text (tonumber, string.format) costs more than the HMGET that
// fetched it. Amounts are integers in nano-USD, exact below 2^53 (about
// nine million dollars per budget window). The scripts take their numbers
// the same way, packed in one argument, and answer a flat array of
// integers (no strings to parse in Go).
//
// A reservation on n budgets sends 2 commands (HMGET, HSET), a settlement
// 4 (SET NX of the marker, HMGET, HSET, HDEL of the hold); the sweep,
// about once per hold period (HGETALL, HDEL, HSET), and a new window
// (PEXPIREAT) are rare. Keys of the layout before the tenant hash (one
// hash per budget window) are not read: after an upgrade, the windows
// under way count from zero (use a new prefix, or keep the old gateways
// until the windows end).
type Redis struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedis returns a counter store in Redis under a key prefix (e.g.
// "aigw:budget:").
func NewRedis(c redis.UniversalClient, prefix string) *Redis {
	return &Redis{c: c, prefix: prefix}
}

// countersKey is the hash of a tenant's counters.
func (r *Redis) countersKey(tenant string) string {
	return r.prefix + "{" + tenant + "}:counters"
}

// lib is shared by the scripts (KEYS[1] is the counters hash): decode
// and encode a counter, sweep the hash, read the counter fields packed in
// an argument (after x and e), and load fields (sweeping first if one is
// due).
const lib = `
local C = KEYS[1]
local spack, sunpack = struct.pack, struct.unpack
local function decode(v, le)
  if v then
    local su, st, ru, rt, e = sunpack('<ddddd', v)
    return {su, st, ru, rt, e}
  end
  return {0, 0, 0, 0, le, new = true}
end
local function encode(l) return spack('<ddddd', l[1], l[2], l[3], l[4], l[5]) end
local function chunked(cmd, list)
  for i = 1, #list, 1000 do
    redis.call(cmd, C, unpack(list, i, math.min(i + 999, #list)))
  end
end
local function sweep(now)
  local all = redis.call('HGETALL', C)
  local v = {}
  for i = 1, #all, 2 do v[all[i]] = all[i+1] end
  local lines, live, del, set, nx = {}, {}, {}, {}, nil
  for f, s in pairs(v) do
    if string.sub(f, 1, 2) == 'h:' then
      local hu, ht, u = sunpack('<ddd', s)
      local expired = u <= now
      if expired then del[#del+1] = f elseif not nx or u < nx then nx = u end
      for lf in string.gmatch(string.sub(s, 25), '[^\n]+') do
        if expired then
          local l = lines[lf]
          if l == nil and v[lf] then l = decode(v[lf]); lines[lf] = l end
          if l then l[3], l[4] = l[3] - hu, l[4] - ht end
        else
          live[lf] = true
        end
      end
    end
  end
  for f, s in pairs(v) do
    if string.sub(f, 1, 2) == 'c:' then
      local l = lines[f] or decode(s)
      if l[5] <= now and not live[f] then
        del[#del+1] = f
      else
        if l[5] > now and (not nx or l[5] < nx) then nx = l[5] end
        if lines[f] then set[#set+1] = f; set[#set+1] = encode(l) end
      end
    end
  end
  if nx then set[#set+1] = 'x'; set[#set+1] = spack('<d', nx) else del[#del+1] = 'x' end
  chunked('HDEL', del)
  chunked('HSET', set)
end
local function linefields(A, pos)
  local fields = {'x', 'e'}
  while pos <= #A do
    local f
    f, pos = sunpack('<Hc0', A, pos)
    fields[#fields+1] = f
  end
  return fields
end
local function load(fields, now)
  local r = redis.call('HMGET', C, unpack(fields))
  if r[1] and sunpack('<d', r[1]) <= now then
    sweep(now)
    r = redis.call('HMGET', C, unpack(fields))
  end
  return r
end
`

// script is a Lua script run by EVALSHA (EVAL when Redis has not cached
// it yet).
type script struct {
	src, sha string
	args     [2]any // "evalsha", sha: boxed once
}

func newScript(src string) *script {
	h := sha1.Sum([]byte(src))
	s := &script{src: src, sha: hex.EncodeToString(h[:])}
	s.args = [2]any{"evalsha", s.sha}
	return s
}

// reserveScript: KEYS = counters; ARGV[1] = float64s now_ms, until_ms,
// usd, tokens, then per line limit_usd, limit_tokens, expire_ms and its
// field (uint16 length, bytes); ARGV[2] = id. Reply: refused (0 ok, 1
// exceeded, 2 reserved), line (1-based), tokens (1: the token limit
// refused), then per line spent usd, spent tokens, reserved usd, reserved
// tokens (after the reservation, or before it if refused). A reservation
// already held (a retried command) is not added twice.
var reserveScript = newScript(lib + `
local A = ARGV[1]
local now, untilms, usd, tok, pos = sunpack('<dddd', A)
local fields, lim = {'x', 'e'}, {}
while pos <= #A do
  local lu, lt, le, f
  lu, lt, le, f, pos = sunpack('<dddHc0', A, pos)
  fields[#fields+1] = f
  lim[#lim+1] = {lu, lt, le}
end
local n = #lim
local hold = 'h:'..ARGV[2]
fields[n+3] = hold
local r = load(fields, now)
local res, ls = {0, 0, 0}, {}
for i = 1, n do
  local l = decode(r[2+i], lim[i][3])
  ls[i] = l
  res[4*i], res[4*i+1], res[4*i+2], res[4*i+3] = l[1], l[2], l[3], l[4]
end
if r[n+3] then return res end
for i = 1, n do
  local l, lu, lt = ls[i], lim[i][1], lim[i][2]
  local why, unit = 0, 0
  if lu > 0 and l[1] + usd > lu then why = 1
  elseif lu > 0 and l[1] + l[3] + usd > lu then why = 2
  elseif lt > 0 and l[2] + tok > lt then why, unit = 1, 1
  elseif lt > 0 and l[2] + l[4] + tok > lt then why, unit = 2, 1 end
  if why > 0 then
    res[1], res[2], res[3] = why, i, unit
    return res
  end
end
local x = r[1] and sunpack('<d', r[1])
local e = r[2] and sunpack('<d', r[2]) or 0
local set, ne = {}, e
for i = 1, n do
  local l = ls[i]
  l[3], l[4] = l[3] + usd, l[4] + tok
  if lim[i][3] > l[5] then l[5] = lim[i][3] end
  if l[5] > ne then ne = l[5] end
  if not x or l[5] < x then x = l[5] end
  set[2*i-1], set[2*i] = fields[2+i], encode(l)
  res[4*i+2], res[4*i+3] = l[3], l[4]
end
if not x or untilms < x then x = untilms end
set[2*n+1], set[2*n+2] = 'x', spack('<d', x)
set[2*n+3], set[2*n+4] = hold, spack('<ddd', usd, tok, untilms)..table.concat(fields, '\n', 3, n+2)
if ne > e then set[2*n+5], set[2*n+6] = 'e', spack('<d', ne) end
redis.call('HSET', C, unpack(set))
if ne > e then redis.call('PEXPIREAT', C, ne) end
return res
`)

// settleScript: KEYS = counters, settled marker; ARGV[1] = float64s
// now_ms, usd, tokens, expire_ms (of a counter the settlement creates),
// marker ttl (s), then each line's field (uint16 length, bytes); ARGV[2] =
// id. It releases the hold from every line it is on (normally the lines
// settled) and adds the spend to the lines settled. Reply: dup (1: settled
// before, nothing done), then per line spent usd, spent tokens, reserved
// usd, reserved tokens after.
var settleScript = newScript(lib + `
local A = ARGV[1]
local now, usd, tok, le, ttl, pos = sunpack('<ddddd', A)
local fields = linefields(A, pos)
local n = #fields - 2
local hold = 'h:'..ARGV[2]
fields[n+3] = hold
local dup = not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ttl)
local r = load(fields, now)
local res = {dup and 1 or 0}
if dup then
  for i = 1, n do
    local l = decode(r[2+i], 0)
    res[4*i-2], res[4*i-1], res[4*i], res[4*i+1] = l[1], l[2], l[3], l[4]
  end
  return res
end
local h = r[n+3]
local hu, ht, extra = 0, 0, nil
if h then
  hu, ht = sunpack('<dd', h)
  local held = string.sub(h, 25)
  if held ~= table.concat(fields, '\n', 3, n+2) then
    -- the hold is on other lines too: release it there as well
    local settled = {}
    for i = 3, n+2 do settled[fields[i]] = true end
    extra = {}
    for lf in string.gmatch(held, '[^\n]+') do
      if not settled[lf] then extra[#extra+1] = lf end
    end
  end
end
local x = r[1] and sunpack('<d', r[1])
local e = r[2] and sunpack('<d', r[2]) or 0
local set, ne, nx = {}, e, x
for i = 1, n do
  local l = decode(r[2+i], le)
  l[1], l[2] = l[1] + usd, l[2] + tok
  if h and not l.new then l[3], l[4] = l[3] - hu, l[4] - ht end
  if l.new then
    if l[5] > ne then ne = l[5] end
    if not nx or l[5] < nx then nx = l[5] end
  end
  set[2*i-1], set[2*i] = fields[2+i], encode(l)
  res[4*i-2], res[4*i-1], res[4*i], res[4*i+1] = l[1], l[2], l[3], l[4]
end
if extra and #extra > 0 then
  local v = redis.call('HMGET', C, unpack(extra))
  for i, lf in ipairs(extra) do
    if v[i] then
      local l = decode(v[i])
      l[3], l[4] = l[3] - hu, l[4] - ht
      set[#set+1] = lf; set[#set+1] = encode(l)
    end
  end
end
if nx ~= x then set[#set+1] = 'x'; set[#set+1] = spack('<d', nx) end
if ne > e then set[#set+1] = 'e'; set[#set+1] = spack('<d', ne) end
redis.call('HSET', C, unpack(set))
if h then redis.call('HDEL', C, hold) end
if ne > e then redis.call('PEXPIREAT', C, ne) end
return res
`)

// readScript: KEYS = counters; ARGV[1] = float64 now_ms, then each
// line's field (uint16 length, bytes). Reply: per line spent usd, spent
// tokens, reserved usd, reserved tokens.
var readScript = newScript(lib + `
local A = ARGV[1]
local now, pos = sunpack('<d', A)
local fields = linefields(A, pos)
local r = load(fields, now)
local res = {}
for i = 1, #fields - 2 do
  local l = decode(r[2+i], 0)
  res[4*i-3], res[4*i-2], res[4*i-1], res[4*i] = l[1], l[2], l[3], l[4]
end
return res
`)

// run runs a script and returns its integers.
func (r *Redis) run(ctx context.Context, s *script, keys []string, args ...any) ([]int64, error) {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, s.args[0], s.args[1], len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, args...)
	cmd := redis.NewIntSliceCmd(ctx, cmdArgs...)
	cmd.SetFirstKeyPos(3)
	err := r.c.Process(ctx, cmd)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// Not cached (a restarted or flushed Redis): EVAL caches it.
		cmdArgs[0], cmdArgs[1] = "eval", s.src
		cmd = redis.NewIntSliceCmd(ctx, cmdArgs...)
		cmd.SetFirstKeyPos(3)
		err = r.c.Process(ctx, cmd)
	}
	return cmd.Val(), err
}

// appendNum appends v as a little-endian float64 (the scripts' numbers).
func appendNum(b []byte, v int64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(v)))
}

// appendLineField appends a counter's field name, length first.
func appendLineField(b []byte, key string) ([]byte, error) {
	if len(key) > math.MaxUint16-2 || strings.IndexByte(key, '\n') >= 0 {
		return nil, fmt.Errorf("spend: invalid counter key %.40q (at most 65533 bytes, no newline)", key)
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(2+len(key)))
	b = append(b, "c:"...)
	return append(b, key...), nil
}

// Reserve implements Counter.
func (r *Redis) Reserve(ctx context.Context, tenant, id string, lines []Line, usd, tokens int64, hold time.Duration) (Admission, error) {
	now := time.Now()
	n := 32
	for _, l := range lines {
		n += 28 + len(l.Key)
	}
	a := make([]byte, 0, n)
	a = appendNum(a, now.UnixMilli())
	a = appendNum(a, now.Add(hold).UnixMilli())
	a = appendNum(a, usd)
	a = appendNum(a, tokens)
	var err error
	for _, l := range lines {
		a = appendNum(a, l.LimitUSD)
		a = appendNum(a, l.LimitTokens)
		a = appendNum(a, l.Expires.UnixMilli())
		if a, err = appendLineField(a, l.Key); err != nil {
			return Admission{}, err
		}
	}
	v, err := r.run(ctx, reserveScript, []string{r.countersKey(tenant)}, a, id)
	if err != nil {
		return Admission{}, fmt.Errorf("spend: redis reserve: %w", err)
	}
	if len(v) != 3+4*len(lines) {
		return Admission{}, fmt.Errorf("spend: redis reserve: unexpected reply %v", v)
	}
	adm := Admission{States: make([]State, len(lines))}
	states(adm.States, v[3:])
	switch v[0] {
	case 0:
		adm.OK = true
	case 1:
		adm.Reason = Exceeded
	default:
		adm.Reason = Reserved
	}
	adm.Line, adm.Tokens = int(v[1])-1, v[2] == 1
	if adm.OK {
		adm.Line = 0
	}
	return adm, nil
}

// settleTimeout bounds a settlement, which does not stop when its call's
// context is canceled.
const settleTimeout = 5 * time.Second

// Settle implements Counter.
func (r *Redis) Settle(ctx context.Context, tenant, id string, keys []string, usd, tokens int64) ([]State, bool, error) {
	// The settlement must land even when the agent went away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	now := time.Now()
	n := 40
	for _, k := range keys {
		n += 4 + len(k)
	}
	a := make([]byte, 0, n)
	a = appendNum(a, now.UnixMilli())
	a = appendNum(a, usd)
	a = appendNum(a, tokens)
	a = appendNum(a, now.Add(counterGrace+31*24*time.Hour).UnixMilli())
	a = appendNum(a, int64(settledTTL/time.Second))
	var err error
	for _, k := range keys {
		if a, err = appendLineField(a, k); err != nil {
			return nil, false, err
		}
	}
	v, err := r.run(ctx, settleScript, []string{r.countersKey(tenant), r.prefix + "{" + tenant + "}:s:" + id}, a, id)
	if err != nil {
		return nil, false, fmt.Errorf("spend: redis settle: %w", err)
	}
	if len(v) != 1+4*len(keys) {
		return nil, false, fmt.Errorf("spend: redis settle: unexpected reply %v", v)
	}
	out := make([]State, len(keys))
	states(out, v[1:])
	return out, v[0] == 1, nil
}

// Read implements Counter.
func (r *Redis) Read(ctx context.Context, tenant string, keys []string) ([]State, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	a := appendNum(nil, time.Now().UnixMilli())
	var err error
	for _, k := range keys {
		if a, err = appendLineField(a, k); err != nil {
			return nil, err
		}
	}
	v, err := r.run(ctx, readScript, []string{r.countersKey(tenant)}, a)
	if err != nil {
		return nil, fmt.Errorf("spend: redis read: %w", err)
	}
	if len(v) != 4*len(keys) {
		return nil, fmt.Errorf("spend: redis read: unexpected reply %v", v)
	}
	out := make([]State, len(keys))
	states(out, v)
	return out, nil
}

// states fills dst from the scripts' per line spent usd, spent tokens,
// reserved usd, reserved tokens.
func states(dst []State, v []int64) {
	for i := range dst {
		dst[i] = State{SpentUSD: v[4*i], SpentTokens: v[4*i+1], ReservedUSD: v[4*i+2], ReservedTokens: v[4*i+3]}
	}
}
