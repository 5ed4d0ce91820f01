package a2a

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore is a TaskStore in Redis, shared by gateway replicas and kept
// across restarts. Each method is one command or one Lua script (one
// round trip), so transitions, budget allocations and idempotency claims
// are atomic across replicas.
//
// Keys are prefix + "{tenant}:h:<hop id>" (a hash per hop),
// "{tenant}:c:<hop id>" (a list of its children) and "{tenant}:k:<key>"
// (an idempotency key: "p:<hop id>" while its request is in flight,
// "d:<hop id>" once answered). The tenant is the hash tag, so a script's
// keys share one cluster slot. Every key expires after the retention
// period from its last change.
type RedisStore struct {
	c         redis.UniversalClient
	prefix    string
	retention time.Duration
}

var _ TaskStore = (*RedisStore)(nil)

// NewRedisStore returns a store on c whose keys start with prefix,
// keeping hops for retention after their last change (0:
// DefaultRetention).
func NewRedisStore(c redis.UniversalClient, prefix string, retention time.Duration) *RedisStore {
	if retention <= 0 {
		retention = DefaultRetention
	}
	return &RedisStore{c: c, prefix: prefix, retention: retention}
}

func (s *RedisStore) key(tenant, kind, id string) string {
	return s.prefix + "{" + tenant + "}:" + kind + ":" + id
}

// Hash fields of a hop.
const (
	fClaims    = "claims"
	fToken     = "token"
	fCallerKey = "caller_key"
	fCallback  = "callback"
	fCreated   = "created"
	fUpdated   = "updated"
	fState     = "state"
	fUpstream  = "upstream"
	fContext   = "context"
	fResult    = "result"
	fPush      = "push"
	fRemUSD    = "rem_usd"
	fRemTok    = "rem_tok"
)

// beginScript: KEYS = hop, idempotency key, [parent hop, parent's
// children]; ARGV = hop id, ttl (ms), nano-USD and tokens taken from the
// parent, then field/value pairs. It returns {status, holder}.
var beginScript = redis.NewScript(`
local v = redis.call('GET', KEYS[2])
if v then return {'held', v} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', ''} end
local ttl = tonumber(ARGV[2])
if KEYS[3] then
  local r = redis.call('HMGET', KEYS[3], 'rem_usd', 'rem_tok')
  if not r[1] then return {'noparent', ''} end
  local usd, tok = tonumber(r[1]), tonumber(r[2])
  local au, at = tonumber(ARGV[3]), tonumber(ARGV[4])
  if usd >= 0 and (au < 0 or au > usd) then return {'exhausted', ''} end
  if tok >= 0 and (at < 0 or at > tok) then return {'exhausted', ''} end
  if usd >= 0 then usd = usd - au end
  if tok >= 0 then tok = tok - at end
  redis.call('HSET', KEYS[3], 'rem_usd', string.format('%d', usd), 'rem_tok', string.format('%d', tok))
  redis.call('RPUSH', KEYS[4], ARGV[1])
  redis.call('PEXPIRE', KEYS[4], ttl)
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('SET', KEYS[2], 'p:' .. ARGV[1], 'PX', ttl)
return {'ok', ''}
`)

// Begin stores a new hop and claims its key.
func (s *RedisStore) Begin(ctx context.Context, h *Hop, key string) (Claim, error) {
	claims, err := json.Marshal(h.Claims)
	if err != nil {
		return Claim{}, fmt.Errorf("begin hop %s: encode claims: %w", h.ID(), err)
	}
	now := time.Now()
	b := h.Claims.Budget
	args := []any{h.ID(), s.retention.Milliseconds(), b.NanoUSD, b.Tokens,
		fClaims, claims, fToken, h.Token, fCallerKey, h.CallerKey, fCallback, h.CallbackToken,
		fCreated, now.UnixMicro(), fUpdated, now.UnixMicro(), fState, string(h.State),
		fUpstream, h.UpstreamTaskID, fContext, h.ContextID,
		fRemUSD, h.Remaining.NanoUSD, fRemTok, h.Remaining.Tokens,
	}
	if h.Result != nil {
		args = append(args, fResult, []byte(h.Result))
	}
	if h.Push != nil {
		p, err := json.Marshal(h.Push)
		if err != nil {
			return Claim{}, fmt.Errorf("begin hop %s: encode push config: %w", h.ID(), err)
		}
		args = append(args, fPush, p)
	}
	if key == "" {
		key = "-" + h.ID() // no key: a key of its own
	}
	keys := []string{s.key(h.Tenant(), "h", h.ID()), s.key(h.Tenant(), "k", key)}
	if p := h.Claims.ParentHop; p != "" {
		keys = append(keys, s.key(h.Tenant(), "h", p), s.key(h.Tenant(), "c", p))
	}
	res, err := beginScript.Run(ctx, s.c, keys, args...).StringSlice()
	if err != nil {
		return Claim{}, fmt.Errorf("begin hop %s: redis: %w", h.ID(), err)
	}
	if len(res) != 2 {
		return Claim{}, fmt.Errorf("begin hop %s: redis: short script answer", h.ID())
	}
	switch res[0] {
	case "held":
		state, hop, ok := strings.Cut(res[1], ":")
		if !ok {
			return Claim{}, fmt.Errorf("begin hop %s: stored claim %q is not a claim", h.ID(), truncate(res[1], 40))
		}
		return Claim{HopID: hop, Done: state == "d"}, nil
	case "exists":
		return Claim{}, fmt.Errorf("begin hop %s: %w", h.ID(), ErrExists)
	case "noparent":
		return Claim{}, fmt.Errorf("begin hop %s: parent %s: %w", h.ID(), h.Claims.ParentHop, ErrNotFound)
	case "exhausted":
		return Claim{}, fmt.Errorf("begin hop %s: %w", h.ID(), ErrBudgetExhausted)
	}
	return Claim{HopID: h.ID(), Fresh: true}, nil
}

// decodeHop reads a hop's hash.
func decodeHop(id string, m map[string]string) (*Hop, error) {
	var h Hop
	if err := json.Unmarshal([]byte(m[fClaims]), &h.Claims); err != nil {
		return nil, fmt.Errorf("hop %s: stored claims: %w", id, err)
	}
	h.Token, h.CallerKey, h.CallbackToken = m[fToken], m[fCallerKey], m[fCallback]
	h.State, h.UpstreamTaskID, h.ContextID = TaskState(m[fState]), m[fUpstream], m[fContext]
	if r, ok := m[fResult]; ok && r != "" {
		h.Result = json.RawMessage(r)
	}
	if p, ok := m[fPush]; ok && p != "" {
		h.Push = &PushNotificationConfig{}
		if err := json.Unmarshal([]byte(p), h.Push); err != nil {
			return nil, fmt.Errorf("hop %s: stored push config: %w", id, err)
		}
	}
	var err error
	num := func(f string) int64 {
		v, e := strconv.ParseInt(m[f], 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("hop %s: stored %s: %w", id, f, e)
		}
		return v
	}
	h.Remaining = Budget{NanoUSD: num(fRemUSD), Tokens: num(fRemTok)}
	h.Created, h.Updated = time.UnixMicro(num(fCreated)), time.UnixMicro(num(fUpdated))
	if err != nil {
		return nil, err
	}
	return &h, nil
}

// Get returns a hop.
func (s *RedisStore) Get(ctx context.Context, tenant, id string) (*Hop, error) {
	m, err := s.c.HGetAll(ctx, s.key(tenant, "h", id)).Result()
	if err != nil {
		return nil, fmt.Errorf("hop %s: redis: %w", id, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("hop %s: %w", id, ErrNotFound)
	}
	return decodeHop(id, m)
}

// updateScript: KEYS = hop, [idempotency key to settle]; ARGV = state,
// allowed previous states ("|s1|s2|", the pending state as "-"),
// upstream task id, context id, has result, result, push ("" none),
// clear push, now (µs), ttl (ms), token ("" none), hop id. It returns
// {status, previous state, hash...}.
var updateScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'claims', 'state', 'upstream')
if not r[1] then return {'notfound', ''} end
local cur = r[2] or ''
if ARGV[1] ~= '' then
  local c = cur
  if c == '' then c = '-' end
  if not string.find(ARGV[2], '|' .. c .. '|', 1, true) then return {'transition', cur} end
end
local set = {'updated', ARGV[9]}
local function put(f, v) set[#set+1] = f; set[#set+1] = v end
if ARGV[3] ~= '' then
  local up = r[3] or ''
  if up ~= '' and up ~= ARGV[3] then return {'conflict', cur} end
  put('upstream', ARGV[3])
end
if ARGV[1] ~= '' then put('state', ARGV[1]) end
if ARGV[4] ~= '' then put('context', ARGV[4]) end
if ARGV[5] == '1' then put('result', ARGV[6]) end
if ARGV[7] ~= '' then put('push', ARGV[7]) elseif ARGV[8] == '1' then redis.call('HDEL', KEYS[1], 'push') end
if ARGV[11] ~= '' then put('token', ARGV[11]) end
redis.call('HSET', KEYS[1], unpack(set))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[10]))
if KEYS[2] and redis.call('GET', KEYS[2]) == 'p:' .. ARGV[12] then
  redis.call('SET', KEYS[2], 'd:' .. ARGV[12], 'PX', tonumber(ARGV[10]))
end
local out = {'ok', cur}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do out[#out+1] = all[i] end
return out
`)

// Update applies u to a hop.
func (s *RedisStore) Update(ctx context.Context, tenant, id string, u Update) (*Hop, TaskState, error) {
	allowed := ""
	if u.State != "" {
		var b strings.Builder
		b.WriteByte('|')
		for _, st := range allowedFrom(u.State) {
			if st == "" {
				b.WriteString("-|")
			} else {
				b.WriteString(string(st) + "|")
			}
		}
		allowed = b.String()
	}
	hasResult, push, clear := "0", "", "0"
	if u.Result != nil {
		hasResult = "1"
	}
	if u.Push != nil {
		p, err := json.Marshal(u.Push)
		if err != nil {
			return nil, "", fmt.Errorf("update hop %s: encode push config: %w", id, err)
		}
		push = string(p)
	}
	if u.ClearPush {
		clear = "1"
	}
	keys := []string{s.key(tenant, "h", id)}
	if u.Settle != "" {
		keys = append(keys, s.key(tenant, "k", u.Settle))
	}
	res, err := updateScript.Run(ctx, s.c, keys,
		string(u.State), allowed, u.UpstreamTaskID, u.ContextID, hasResult, []byte(u.Result), push, clear,
		time.Now().UnixMicro(), s.retention.Milliseconds(), u.Token, id).StringSlice()
	if err != nil {
		return nil, "", fmt.Errorf("update hop %s: redis: %w", id, err)
	}
	if len(res) < 2 {
		return nil, "", fmt.Errorf("update hop %s: redis: short script answer", id)
	}
	prev := TaskState(res[1])
	switch res[0] {
	case "notfound":
		return nil, "", fmt.Errorf("update hop %s: %w", id, ErrNotFound)
	case "transition":
		return nil, prev, fmt.Errorf("hop %s: %s → %s: %w", id, stateName(prev), u.State, ErrInvalidTransition)
	case "conflict":
		return nil, prev, fmt.Errorf("hop %s: %w", id, ErrConflict)
	}
	m := make(map[string]string, (len(res)-2)/2)
	for i := 2; i+1 < len(res); i += 2 {
		m[res[i]] = res[i+1]
	}
	h, err := decodeHop(id, m)
	return h, prev, err
}

// Children returns the ids of a hop's children.
func (s *RedisStore) Children(ctx context.Context, tenant, id string) ([]string, error) {
	pipe := s.c.Pipeline()
	ex := pipe.Exists(ctx, s.key(tenant, "h", id))
	ls := pipe.LRange(ctx, s.key(tenant, "c", id), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("children of hop %s: redis: %w", id, err)
	}
	if ex.Val() == 0 {
		return nil, fmt.Errorf("children of hop %s: %w", id, ErrNotFound)
	}
	return ls.Val(), nil
}

var refundScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 'notfound' end
local usd = tonumber(redis.call('HGET', KEYS[1], 'rem_usd'))
local tok = tonumber(redis.call('HGET', KEYS[1], 'rem_tok'))
local au, at = tonumber(ARGV[1]), tonumber(ARGV[2])
if usd >= 0 and au > 0 then usd = usd + au end
if tok >= 0 and at > 0 then tok = tok + at end
redis.call('HSET', KEYS[1], 'rem_usd', string.format('%d', usd), 'rem_tok', string.format('%d', tok))
return 'ok'
`)

// Refund gives b back to a hop's remaining budget.
func (s *RedisStore) Refund(ctx context.Context, tenant, id string, b Budget) error {
	res, err := refundScript.Run(ctx, s.c, []string{s.key(tenant, "h", id)}, b.NanoUSD, b.Tokens).Text()
	if err != nil {
		return fmt.Errorf("refund to hop %s: redis: %w", id, err)
	}
	if res == "notfound" {
		return fmt.Errorf("refund to hop %s: %w", id, ErrNotFound)
	}
	return nil
}

// spendScript: KEYS = hop; ARGV = nano-USD, tokens, force ("1"). It
// returns {status, remaining nano-USD, remaining tokens}.
var spendScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'rem_usd', 'rem_tok', 'state')
if not r[1] then return {'notfound', '0', '0'} end
local usd, tok = tonumber(r[1]), tonumber(r[2])
local au, at = math.max(tonumber(ARGV[1]), 0), math.max(tonumber(ARGV[2]), 0)
if ARGV[3] == '1' then
  if usd >= 0 then usd = math.max(usd - au, 0) end
  if tok >= 0 then tok = math.max(tok - at, 0) end
else
  local st = r[3]
  if st == 'completed' or st == 'canceled' or st == 'failed' or st == 'rejected' then
    return {'ended', r[1], r[2]}
  end
  if (usd >= 0 and au > usd) or (tok >= 0 and at > tok) then return {'exhausted', r[1], r[2]} end
  if usd >= 0 then usd = usd - au end
  if tok >= 0 then tok = tok - at end
end
local su, stk = string.format('%d', usd), string.format('%d', tok)
redis.call('HSET', KEYS[1], 'rem_usd', su, 'rem_tok', stk)
return {'ok', su, stk}
`)

// Spend takes b from a hop's remaining budget.
func (s *RedisStore) Spend(ctx context.Context, tenant, id string, b Budget, force bool) (Budget, error) {
	f := "0"
	if force {
		f = "1"
	}
	res, err := spendScript.Run(ctx, s.c, []string{s.key(tenant, "h", id)}, b.NanoUSD, b.Tokens, f).StringSlice()
	if err != nil {
		return Budget{}, fmt.Errorf("spend of hop %s: redis: %w", id, err)
	}
	if len(res) != 3 {
		return Budget{}, fmt.Errorf("spend of hop %s: redis: short script answer", id)
	}
	if res[0] == "notfound" {
		return Budget{}, fmt.Errorf("spend of hop %s: %w", id, ErrNotFound)
	}
	usd, err1 := strconv.ParseInt(res[1], 10, 64)
	tok, err2 := strconv.ParseInt(res[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Budget{}, fmt.Errorf("spend of hop %s: stored budget: %w", id, err)
	}
	rem := Budget{NanoUSD: usd, Tokens: tok}
	switch res[0] {
	case "ended":
		return rem, fmt.Errorf("spend of hop %s: %w", id, ErrHopEnded)
	case "exhausted":
		return rem, fmt.Errorf("spend of hop %s: %w", id, ErrBudgetExhausted)
	}
	return rem, nil
}

// Claim claims an idempotency key.
func (s *RedisStore) Claim(ctx context.Context, tenant, key, hopID string) (Claim, error) {
	k := s.key(tenant, "k", key)
	for range 3 {
		ok, err := s.c.SetNX(ctx, k, "p:"+hopID, s.retention).Result()
		if err != nil {
			return Claim{}, fmt.Errorf("claim key: redis: %w", err)
		}
		if ok {
			return Claim{HopID: hopID, Fresh: true}, nil
		}
		v, err := s.c.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue // expired or released in between: claim again
		}
		if err != nil {
			return Claim{}, fmt.Errorf("claim key: redis: %w", err)
		}
		state, hop, ok := strings.Cut(v, ":")
		if !ok {
			return Claim{}, fmt.Errorf("claim key: stored value %q is not a claim", truncate(v, 40))
		}
		return Claim{HopID: hop, Done: state == "d"}, nil
	}
	return Claim{}, errors.New("claim key: the key kept changing; retry")
}

// Lookup returns who holds a key.
func (s *RedisStore) Lookup(ctx context.Context, tenant, key string) (Claim, error) {
	v, err := s.c.Get(ctx, s.key(tenant, "k", key)).Result()
	if errors.Is(err, redis.Nil) {
		return Claim{}, nil
	}
	if err != nil {
		return Claim{}, fmt.Errorf("lookup key: redis: %w", err)
	}
	state, hop, ok := strings.Cut(v, ":")
	if !ok {
		return Claim{}, fmt.Errorf("lookup key: stored value %q is not a claim", truncate(v, 40))
	}
	return Claim{HopID: hop, Done: state == "d"}, nil
}

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then redis.call('DEL', KEYS[1]) end
return 'ok'
`)

// Release frees a claimed key.
func (s *RedisStore) Release(ctx context.Context, tenant, key, hopID string) error {
	if err := releaseScript.Run(ctx, s.c, []string{s.key(tenant, "k", key)}, hopID).Err(); err != nil {
		return fmt.Errorf("release key: redis: %w", err)
	}
	return nil
}
