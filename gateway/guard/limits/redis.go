package limits

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed reserve.lua
var reserveLua string

//go:embed complete.lua
var completeLua string

var (
	reserveScript  = redis.NewScript(reserveLua)
	completeScript = redis.NewScript(completeLua)
)

// MarkerTTL is how long the Redis limiter remembers that a reservation was
// completed, so that a retried Settle or Release is not applied twice.
const MarkerTTL = 10 * time.Minute

// Redis is a Limiter shared by gateway replicas through one Redis server
// (or cluster). Each Reserve, Settle and Release is one EVALSHA of a Lua
// script that reads and writes every counter involved, so checks and
// increments are atomic across scopes and replicas. Time is the Redis
// server's (TIME, inside the script): the replicas' clocks do not matter.
//
// Keys are prefix + "{tenant}:t", "{tenant}:k:<key>", "{tenant}:r:<route>"
// (one hash per counter; the names are percent-encoded) and
// "{tenant}:done:<id>" (completion markers). The tenant is the hash tag, so
// all of a call's keys are in one cluster slot. Counter keys expire two
// minutes after their last write (at the end of the UTC day for counters
// with a daily limit), markers after MarkerTTL.
type Redis struct {
	c      redis.Scripter
	prefix string
	rules  rules
	now    func() time.Time // nil: the server's TIME
	w      window
}

// NewRedis returns a limiter enforcing rules with counters in c under
// prefix (for example "aigw:limits:").
func NewRedis(c redis.Scripter, prefix string, rs []Rule, opts ...Option) (*Redis, error) {
	idx, err := newRules(rs)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errors.New("limits: nil redis client")
	}
	o := buildOptions(opts)
	return &Redis{c: c, prefix: prefix, rules: idx, now: o.now, w: o.window}, nil
}

func (l *Redis) nowArg() int64 {
	if l.now == nil {
		return 0
	}
	return l.now().UnixMilli()
}

// Reserve implements Limiter.
func (l *Redis) Reserve(ctx context.Context, subj Subject, tokens int64) (*Reservation, error) {
	plans, err := l.rules.plan(subj, tokens)
	if err != nil {
		return nil, err
	}
	if len(plans) == 0 { // nothing to count: no round trip, the local clock
		now := time.Now().UnixMilli()
		if l.now != nil {
			now = l.now().UnixMilli()
		}
		return l.w.newReservation(l, subj, tokens, now, nil), nil
	}
	keys := make([]string, len(plans))
	args := make([]any, 0, 4+3*len(plans))
	args = append(args, l.nowArg(), l.w.win, l.w.day, tokens)
	for i, p := range plans {
		keys[i] = l.prefix + p.key
		args = append(args, p.rule.RPM, p.rule.TPM, p.rule.TokensPerDay)
	}
	res, err := reserveScript.Run(ctx, l.c, keys, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("limits: reserve in redis: %w", err)
	}
	if len(res) != 2+5*len(plans) {
		return nil, fmt.Errorf("limits: reserve in redis: %d values returned, want %d", len(res), 2+5*len(plans))
	}
	now := res[1]
	sts := make([]state, len(plans))
	for i := range sts {
		v := res[2+5*i:]
		sts[i] = state{cr: v[0], ct: v[1], pr: v[2], pt: v[3], dt: v[4]}
	}
	if res[0] == 0 {
		if le := l.w.check(plans, sts, tokens, now); le != nil {
			return nil, le
		}
		return nil, errors.New("limits: redis refused a reservation no limit refuses (script and Go disagree)")
	}
	r := l.w.newReservation(l, subj, tokens, now, plans)
	r.id = strconv.FormatUint(rand.Uint64(), 36) + strconv.FormatUint(rand.Uint64(), 36)
	l.w.quotas(r, plans, sts, now)
	return r, nil
}

// Settle implements Limiter.
func (l *Redis) Settle(ctx context.Context, r *Reservation, actual int64) error {
	return l.complete(ctx, r, actual, false)
}

// Release implements Limiter.
func (l *Redis) Release(ctx context.Context, r *Reservation) error {
	return l.complete(ctx, r, 0, true)
}

func (l *Redis) complete(ctx context.Context, r *Reservation, actual int64, release bool) error {
	if err := checkReservation(l, r, actual); err != nil {
		return err
	}
	if len(r.scopes) == 0 {
		if !r.done.CompareAndSwap(false, true) {
			return ErrDone
		}
		return nil
	}
	keys := make([]string, 0, len(r.scopes)+1)
	var reqs int64
	if release {
		reqs = 1
	}
	args := make([]any, 0, 9+len(r.scopes))
	args = append(args, l.nowArg(), l.w.win, l.w.day, r.minute, r.day, r.Tokens, actual, reqs, MarkerTTL.Milliseconds())
	for _, ref := range r.scopes {
		keys = append(keys, l.prefix+ref.key)
		if ref.day {
			args = append(args, 1)
		} else {
			args = append(args, 0)
		}
	}
	keys = append(keys, l.prefix+"{"+escape(r.Subject.Tenant)+"}:done:"+r.id)
	tried := r.tried.Swap(true)
	applied, err := completeScript.Run(ctx, l.c, keys, args...).Int64()
	if err != nil {
		return fmt.Errorf("limits: complete reservation in redis: %w", err)
	}
	if applied == 0 && !tried {
		return ErrDone // completed by another call
	}
	// applied, or applied by an earlier attempt of ours whose answer was lost
	r.done.Store(true)
	return nil
}
