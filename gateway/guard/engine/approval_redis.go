package engine

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed approval_add.lua
var approvalAddLua string

//go:embed approval_decide.lua
var approvalDecideLua string

//go:embed approval_consume.lua
var approvalConsumeLua string

var (
	approvalAddScript     = redis.NewScript(approvalAddLua)
	approvalDecideScript  = redis.NewScript(approvalDecideLua)
	approvalConsumeScript = redis.NewScript(approvalConsumeLua)
)

// DefaultApprovalPoll is how often RedisApprovals.Wait re-reads an
// approval by default, in case a decision's notification was lost.
const DefaultApprovalPoll = time.Second

// RedisApprovals is an ApprovalStore shared by gateway replicas through one
// Redis server (or cluster). Add, Decide and Consume are each one Lua
// script, so a decision and a use are atomic across replicas. Decide
// publishes the decision; every store subscribes, and wakes the calls
// waiting on it, which also re-read their approval every poll interval:
// a lost message delays a decision, never loses it.
//
// Keys are prefix + "{tenant}:a:<id>" (a hash per approval) and
// "{tenant}:pending" (the tenant's pending approval ids, a sorted set by
// creation time); the tenant, percent-encoded, is the hash tag, so an
// approval is reached only under its own tenant's key. Both expire after
// the TTL (the hash from its creation, the set from the tenant's last
// approval). Decisions are published on prefix + "decided", the message
// being the approval's key.
type RedisApprovals struct {
	c         redis.UniversalClient
	prefix    string
	ttl, poll time.Duration
	sub       *redis.PubSub
	done      chan struct{} // closed when the subscriber ends

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{} // by approval key
}

var _ ApprovalStore = (*RedisApprovals)(nil)

// NewRedisApprovals returns a store of approvals in c under prefix (for
// example DefaultApprovalsPrefix), kept for ttl (0: an hour), that waiting
// calls re-read every poll (0: DefaultApprovalPoll). It subscribes to the
// decisions at once, in the background, until Close; c stays the caller's.
func NewRedisApprovals(c redis.UniversalClient, prefix string, ttl, poll time.Duration) *RedisApprovals {
	if ttl <= 0 {
		ttl = approvalTTL
	}
	if poll <= 0 {
		poll = DefaultApprovalPoll
	}
	s := &RedisApprovals{c: c, prefix: prefix, ttl: ttl, poll: poll, done: make(chan struct{}),
		waiters: map[string]map[chan struct{}]struct{}{}}
	s.sub = c.Subscribe(context.Background())
	go s.subscribe()
	return s
}

// subscribe wakes the waiters of each decision published, until Close.
// (The subscription is made here, not in NewRedisApprovals, so that an
// unreachable Redis does not hold up the constructor; the client
// resubscribes after each reconnection.)
func (s *RedisApprovals) subscribe() {
	defer close(s.done)
	_ = s.sub.Subscribe(context.Background(), s.channel()) // retried on reconnection
	for msg := range s.sub.Channel() {
		s.mu.Lock()
		for w := range s.waiters[msg.Payload] {
			select {
			case w <- struct{}{}:
			default:
			}
		}
		s.mu.Unlock()
	}
}

// Close ends the subscription to decisions (not the client).
func (s *RedisApprovals) Close() error {
	err := s.sub.Close()
	<-s.done
	return err
}

func (s *RedisApprovals) channel() string { return s.prefix + "decided" }

func (s *RedisApprovals) tag(tenant string) string {
	return s.prefix + "{" + url.QueryEscape(tenant) + "}"
}

func (s *RedisApprovals) key(tenant, id string) string { return s.tag(tenant) + ":a:" + id }

func (s *RedisApprovals) pendingKey(tenant string) string { return s.tag(tenant) + ":pending" }

// Add implements ApprovalStore.
func (s *RedisApprovals) Add(ctx context.Context, a Approval) error {
	if !validApprovalID(a.ID) {
		return fmt.Errorf("guardrails: approval id %q is malformed", a.ID)
	}
	created := a.Created.UnixMilli()
	args := []any{s.ttl.Milliseconds(), a.ID, created, created - s.ttl.Milliseconds(),
		"id", a.ID, "tenant", a.Tenant, "check", a.Check, "stage", a.Stage, "reason", a.Reason,
		"status", ApprovalPending, "created", a.Created.UTC().Format(time.RFC3339Nano)}
	n, err := approvalAddScript.Run(ctx, s.c, []string{s.key(a.Tenant, a.ID), s.pendingKey(a.Tenant)}, args...).Int()
	if err != nil {
		return fmt.Errorf("guardrails: add approval %s in redis: %w", a.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("guardrails: approval id %s is in use", a.ID)
	}
	return nil
}

// Get implements ApprovalStore.
func (s *RedisApprovals) Get(ctx context.Context, tenant, id string) (Approval, error) {
	if !validApprovalID(id) {
		return Approval{}, ErrApprovalNotFound
	}
	m, err := s.c.HGetAll(ctx, s.key(tenant, id)).Result()
	if err != nil {
		return Approval{}, fmt.Errorf("guardrails: read approval %s in redis: %w", id, err)
	}
	if m["tenant"] != tenant || len(m) == 0 {
		return Approval{}, ErrApprovalNotFound
	}
	return approvalOf(m)
}

// Decide implements ApprovalStore.
func (s *RedisApprovals) Decide(ctx context.Context, tenant, id string, approved bool, by, reason string) (Approval, error) {
	if !validApprovalID(id) {
		return Approval{}, ErrApprovalNotFound
	}
	status := ApprovalRejected
	if approved {
		status = ApprovalApproved
	}
	res, err := approvalDecideScript.Run(ctx, s.c, []string{s.key(tenant, id), s.pendingKey(tenant)},
		tenant, status, by, reason, time.Now().UTC().Format(time.RFC3339Nano), id, s.channel()).Slice()
	if err != nil {
		return Approval{}, fmt.Errorf("guardrails: decide approval %s in redis: %w", id, err)
	}
	return scriptResult(res, map[int64]error{1: nil, 2: ErrApprovalDecided})
}

// Consume implements ApprovalStore.
func (s *RedisApprovals) Consume(ctx context.Context, tenant, id, check string) (Approval, error) {
	if !validApprovalID(id) {
		return Approval{}, ErrApprovalNotFound
	}
	res, err := approvalConsumeScript.Run(ctx, s.c, []string{s.key(tenant, id)}, tenant, check).Slice()
	if err != nil {
		return Approval{}, fmt.Errorf("guardrails: use approval %s in redis: %w", id, err)
	}
	return scriptResult(res, map[int64]error{1: nil, 2: ErrApprovalNotApproved, 3: ErrApprovalUsed})
}

// Pending implements ApprovalStore.
func (s *RedisApprovals) Pending(ctx context.Context, tenant string) ([]Approval, error) {
	since := time.Now().Add(-s.ttl).UnixMilli()
	ids, err := s.c.ZRangeByScore(ctx, s.pendingKey(tenant), &redis.ZRangeBy{Min: strconv.FormatInt(since, 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("guardrails: list pending approvals in redis: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.key(tenant, id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("guardrails: list pending approvals in redis: %w", err)
	}
	var out []Approval
	for _, cmd := range cmds {
		m := cmd.Val()
		if len(m) == 0 || m["tenant"] != tenant || m["status"] != ApprovalPending {
			continue // expired, or decided since the listing
		}
		a, err := approvalOf(m)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Wait implements ApprovalStore.
func (s *RedisApprovals) Wait(ctx context.Context, tenant, id string) (Approval, error) {
	if !validApprovalID(id) {
		return Approval{}, ErrApprovalNotFound
	}
	key := s.key(tenant, id)
	wake := make(chan struct{}, 1)
	s.mu.Lock()
	if s.waiters[key] == nil {
		s.waiters[key] = map[chan struct{}]struct{}{}
	}
	s.waiters[key][wake] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters[key], wake)
		if len(s.waiters[key]) == 0 {
			delete(s.waiters, key)
		}
		s.mu.Unlock()
	}()
	tick := time.NewTicker(s.poll)
	defer tick.Stop()
	var last Approval
	for {
		// Listening before reading: a decision published after this read
		// wakes the next.
		a, err := s.Get(ctx, tenant, id)
		switch {
		case errors.Is(err, ErrApprovalNotFound):
			return a, err
		case err == nil && a.Status != ApprovalPending:
			return a, nil
		case err == nil:
			last = a
		}
		// (A failed read is retried at the next wake-up or tick.)
		select {
		case <-wake:
		case <-tick.C:
		case <-ctx.Done():
			return last, ctx.Err()
		}
	}
}

// scriptResult reads a script's {code, hash} reply: code 0 is
// ErrApprovalNotFound, other codes as errs says.
func scriptResult(res []any, errs map[int64]error) (Approval, error) {
	if len(res) == 0 {
		return Approval{}, errors.New("guardrails: empty reply from the approval script")
	}
	code, _ := res[0].(int64)
	if code == 0 {
		return Approval{}, ErrApprovalNotFound
	}
	want, ok := errs[code]
	if !ok || len(res) != 2 {
		return Approval{}, fmt.Errorf("guardrails: unexpected reply from the approval script: %v", res)
	}
	kv, _ := res[1].([]any)
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		v, _ := kv[i+1].(string)
		m[k] = v
	}
	a, err := approvalOf(m)
	if err != nil {
		return Approval{}, err
	}
	return a, want
}

// approvalOf reads an approval's hash.
func approvalOf(m map[string]string) (Approval, error) {
	created, err := time.Parse(time.RFC3339Nano, m["created"])
	if err != nil {
		return Approval{}, fmt.Errorf("guardrails: approval %q in redis: bad creation time: %w", m["id"], err)
	}
	return Approval{ID: m["id"], Tenant: m["tenant"], Check: m["check"], Stage: m["stage"], Reason: m["reason"],
		Status: m["status"], By: m["by"], Created: created}, nil
}
