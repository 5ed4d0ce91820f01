package a2a

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aigw/ledger"

	"github.com/redis/go-redis/v9"
)

// newStoreFunc returns an empty store private to t.
type newStoreFunc func(t *testing.T) TaskStore

// runStoreConformance checks that stores made by newStore behave as a
// TaskStore.
func runStoreConformance(t *testing.T, newStore newStoreFunc) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, TaskStore)
	}{
		{"BeginThenGet", testCreateGet},
		{"BeginTwiceRefused", testCreateTwice},
		{"BeginHeldKeyStoresNothing", testBeginHeld},
		{"NotFound", testNotFound},
		{"TenantsIsolated", testTenantsIsolated},
		{"Transitions", testTransitions},
		{"RefusedTransitionChangesNothing", testRefusedTransition},
		{"UpstreamTaskBoundOnce", testBindOnce},
		{"ResultContextAndPush", testResultAndPush},
		{"Children", testChildren},
		{"AllocateAllOrNothing", testAllocate},
		{"AllocateUnlimited", testAllocateUnlimited},
		{"AllocateConcurrentExactlyN", testAllocateConcurrent},
		{"ParentGone", testParentGone},
		{"TokenSetLater", testTokenLater},
		{"Refund", testRefund},
		{"ClaimOnce", testClaim},
		{"ClaimConcurrentOneWinner", testClaimConcurrent},
		{"SettleAndRelease", testSettleRelease},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

var bg = context.Background()

// testHop returns a hop of tenant with a fresh id under parent.
func testHop(tenant, parent string, budget Budget) *Hop {
	id := ledger.NewEventID()
	return &Hop{
		Claims: Claims{Version: 1, Issuer: "aigw", Tenant: tenant, HopID: id, TaskID: id, ParentHop: parent, RootTask: id,
			Caller: "a", Callee: "b", Chain: []string{"a", "b"}, Depth: 1, MaxDepth: 4, Scopes: []string{"tool:*"},
			Budget: budget, IssuedAt: 1, Expires: 2},
		Token: "tok-" + id, CallerKey: "key_1", Remaining: budget, CallbackToken: "cb",
	}
}

// mustCreate begins h with a key of its own.
func mustCreate(t *testing.T, s TaskStore, h *Hop) {
	t.Helper()
	if c, err := s.Begin(bg, h, "key-"+h.ID()); err != nil || !c.Fresh {
		t.Fatalf("Begin = %+v, %v", c, err)
	}
}

func testCreateGet(t *testing.T, s TaskStore) {
	h := testHop("acme", "", Budget{NanoUSD: 100, Tokens: Unlimited})
	h.Result = json.RawMessage(`{"kind":"task","id":"x"}`)
	h.Push = &PushNotificationConfig{ID: "p", URL: "http://h/x", Token: "0123456789012345678901234", Authentication: &PushAuthentication{Schemes: []string{"Bearer"}}}
	mustCreate(t, s, h)
	got, err := s.Get(bg, "acme", h.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Claims.Chain, h.Claims.Chain) || !slices.Equal(got.Claims.Scopes, h.Claims.Scopes) || got.Claims.HopID != h.ID() ||
		got.Token != h.Token || got.CallerKey != "key_1" || got.Remaining != h.Remaining || got.CallbackToken != "cb" ||
		string(got.Result) != string(h.Result) || got.Push == nil || got.Push.URL != h.Push.URL || got.Push.Token != h.Push.Token ||
		got.Push.Authentication == nil || got.State != "" || got.Created.IsZero() {
		t.Errorf("Get = %+v; want %+v", got, h)
	}
	// The store keeps its own copy.
	got.Claims.Scopes[0] = "changed"
	again, _ := s.Get(bg, "acme", h.ID())
	if again.Claims.Scopes[0] != "tool:*" {
		t.Errorf("a returned hop aliases the stored one")
	}
}

func testCreateTwice(t *testing.T, s TaskStore) {
	h := testHop("acme", "", UnlimitedBudget)
	mustCreate(t, s, h)
	if _, err := s.Begin(bg, h, "another key"); !errors.Is(err, ErrExists) {
		t.Errorf("second Begin = %v; want ErrExists", err)
	}
	if c, _ := s.Claim(bg, "acme", "another key", "x"); !c.Fresh {
		t.Errorf("a refused Begin claimed its key")
	}
}

func testBeginHeld(t *testing.T, s TaskStore) {
	p := testHop("acme", "", Budget{NanoUSD: 10, Tokens: 10})
	mustCreate(t, s, p)
	first := testHop("acme", p.ID(), Budget{NanoUSD: 3, Tokens: 3})
	if c, err := s.Begin(bg, first, "msg"); err != nil || !c.Fresh || c.HopID != first.ID() {
		t.Fatalf("Begin = %+v, %v", c, err)
	}
	retry := testHop("acme", p.ID(), Budget{NanoUSD: 3, Tokens: 3})
	c, err := s.Begin(bg, retry, "msg")
	if err != nil || c.Fresh || c.Done || c.HopID != first.ID() {
		t.Fatalf("Begin with a held key = %+v, %v; want held by the first hop", c, err)
	}
	if _, err := s.Get(bg, "acme", retry.ID()); !errors.Is(err, ErrNotFound) {
		t.Errorf("the retry's hop was stored")
	}
	got, _ := s.Get(bg, "acme", p.ID())
	kids, _ := s.Children(bg, "acme", p.ID())
	if got.Remaining != (Budget{NanoUSD: 7, Tokens: 7}) || len(kids) != 1 {
		t.Errorf("parent after a held Begin: remaining %+v, children %v; want one allocation", got.Remaining, kids)
	}
	if _, _, err := s.Update(bg, "acme", first.ID(), Update{State: StateWorking, Settle: "msg"}); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Begin(bg, retry, "msg"); c.Fresh || !c.Done || c.HopID != first.ID() {
		t.Errorf("Begin after settling = %+v; want done by the first hop", c)
	}
}

func testParentGone(t *testing.T, s TaskStore) {
	h := testHop("acme", ledger.NewEventID(), UnlimitedBudget)
	if _, err := s.Begin(bg, h, "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Begin under a missing parent = %v; want ErrNotFound", err)
	}
	if c, _ := s.Claim(bg, "acme", "k", "x"); !c.Fresh {
		t.Errorf("a refused Begin claimed its key")
	}
}

func testTokenLater(t *testing.T, s TaskStore) {
	h := testHop("acme", "", UnlimitedBudget)
	h.Token = ""
	mustCreate(t, s, h)
	if got, _, err := s.Update(bg, "acme", h.ID(), Update{Token: "signed"}); err != nil || got.Token != "signed" {
		t.Errorf("Update(Token) = %+v, %v", got, err)
	}
	if got, _, _ := s.Update(bg, "acme", h.ID(), Update{State: StateWorking}); got.Token != "signed" {
		t.Errorf("an update without a token dropped it")
	}
}

func testNotFound(t *testing.T, s TaskStore) {
	id := ledger.NewEventID()
	if _, err := s.Get(bg, "acme", id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get = %v; want ErrNotFound", err)
	}
	if _, _, err := s.Update(bg, "acme", id, Update{State: StateWorking}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update = %v; want ErrNotFound", err)
	}
	if _, err := s.Children(bg, "acme", id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Children = %v; want ErrNotFound", err)
	}
	if err := s.Refund(bg, "acme", id, Budget{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Refund = %v; want ErrNotFound", err)
	}
}

func testTenantsIsolated(t *testing.T, s TaskStore) {
	h := testHop("acme", "", UnlimitedBudget)
	mustCreate(t, s, h)
	if _, err := s.Get(bg, "other", h.ID()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get from another tenant = %v; want ErrNotFound", err)
	}
	if c, err := s.Claim(bg, "acme", "k", h.ID()); err != nil || !c.Fresh {
		t.Fatalf("Claim = %+v, %v", c, err)
	}
	if c, err := s.Claim(bg, "other", "k", "x"); err != nil || !c.Fresh {
		t.Errorf("Claim of the same key in another tenant = %+v, %v; want fresh", c, err)
	}
}

func testTransitions(t *testing.T, s TaskStore) {
	all := []TaskState{StateSubmitted, StateWorking, StateInputRequired, StateAuthRequired, StateCompleted, StateFailed, StateCanceled, StateRejected}
	for _, from := range append([]TaskState{""}, all...) {
		for _, to := range append(all, "unknown", "") {
			if to == "" {
				continue
			}
			h := testHop("acme", "", UnlimitedBudget)
			mustCreate(t, s, h)
			if from != "" {
				// Reach from by a path the spec allows.
				path := []TaskState{from}
				if from == StateInputRequired || from == StateAuthRequired {
					path = []TaskState{StateWorking, from}
				}
				for _, st := range path {
					if _, _, err := s.Update(bg, "acme", h.ID(), Update{State: st}); err != nil {
						t.Fatalf("reach %s: %v", from, err)
					}
				}
			}
			got, prev, err := s.Update(bg, "acme", h.ID(), Update{State: to})
			want := CanTransition(from, to)
			if want != (err == nil) {
				t.Errorf("%s → %s: err = %v; want allowed=%v", stateName(from), to, err, want)
				continue
			}
			if !want {
				if !errors.Is(err, ErrInvalidTransition) {
					t.Errorf("%s → %s: err = %v; want ErrInvalidTransition", stateName(from), to, err)
				}
				continue
			}
			if got.State != to || prev != from {
				t.Errorf("%s → %s: state %s, prev %s", stateName(from), to, got.State, prev)
			}
		}
	}
}

func testRefusedTransition(t *testing.T, s TaskStore) {
	h := testHop("acme", "", UnlimitedBudget)
	mustCreate(t, s, h)
	if _, _, err := s.Update(bg, "acme", h.ID(), Update{State: StateCompleted, Result: json.RawMessage(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	_, prev, err := s.Update(bg, "acme", h.ID(), Update{State: StateWorking, Result: json.RawMessage(`{"a":2}`), UpstreamTaskID: "u"})
	if !errors.Is(err, ErrInvalidTransition) || prev != StateCompleted {
		t.Fatalf("completed → working = %v (prev %s); want ErrInvalidTransition", err, prev)
	}
	got, _ := s.Get(bg, "acme", h.ID())
	if got.State != StateCompleted || string(got.Result) != `{"a":1}` || got.UpstreamTaskID != "" {
		t.Errorf("after a refused transition: %s %s %q; want it unchanged", got.State, got.Result, got.UpstreamTaskID)
	}
}

func testBindOnce(t *testing.T, s TaskStore) {
	h := testHop("acme", "", UnlimitedBudget)
	mustCreate(t, s, h)
	if got, _, err := s.Update(bg, "acme", h.ID(), Update{UpstreamTaskID: "up-1", ContextID: "ctx"}); err != nil || got.UpstreamTaskID != "up-1" || got.ContextID != "ctx" {
		t.Fatalf("bind = %+v, %v", got, err)
	}
	if _, _, err := s.Update(bg, "acme", h.ID(), Update{UpstreamTaskID: "up-1", State: StateWorking}); err != nil {
		t.Errorf("same id again = %v", err)
	}
	if _, _, err := s.Update(bg, "acme", h.ID(), Update{UpstreamTaskID: "up-2"}); !errors.Is(err, ErrConflict) {
		t.Errorf("another id = %v; want ErrConflict", err)
	}
}

func testResultAndPush(t *testing.T, s TaskStore) {
	h := testHop("acme", "", UnlimitedBudget)
	mustCreate(t, s, h)
	push := &PushNotificationConfig{ID: "1", URL: "https://hook.example/x", Token: "secret-secret-secret-secret"}
	got, _, err := s.Update(bg, "acme", h.ID(), Update{Result: json.RawMessage(`{"kind":"task"}`), Push: push})
	if err != nil || string(got.Result) != `{"kind":"task"}` || got.Push == nil || *got.Push != *push {
		t.Fatalf("Update = %+v, %v", got, err)
	}
	if got, _, err = s.Update(bg, "acme", h.ID(), Update{ClearPush: true}); err != nil || got.Push != nil || got.Result == nil {
		t.Errorf("ClearPush = %+v, %v; want no push, result kept", got, err)
	}
	if !got.Updated.After(got.Created) && !got.Updated.Equal(got.Created) {
		t.Errorf("Updated %v before Created %v", got.Updated, got.Created)
	}
}

func testChildren(t *testing.T, s TaskStore) {
	p := testHop("acme", "", UnlimitedBudget)
	mustCreate(t, s, p)
	if kids, err := s.Children(bg, "acme", p.ID()); err != nil || len(kids) != 0 {
		t.Fatalf("Children of a new hop = %v, %v", kids, err)
	}
	var want []string
	for range 3 {
		c := testHop("acme", p.ID(), UnlimitedBudget)
		mustCreate(t, s, c)
		want = append(want, c.ID())
	}
	if kids, err := s.Children(bg, "acme", p.ID()); err != nil || !slices.Equal(kids, want) {
		t.Errorf("Children = %v, %v; want %v in order", kids, err, want)
	}
}

// child begins a hop under p asking b; it reports the error.
func child(s TaskStore, p *Hop, b Budget) error {
	h := testHop(p.Tenant(), p.ID(), b)
	_, err := s.Begin(bg, h, "k-"+h.ID())
	return err
}

func testAllocate(t *testing.T, s TaskStore) {
	h := testHop("acme", "", Budget{NanoUSD: 100, Tokens: 10})
	mustCreate(t, s, h)
	if err := child(s, h, Budget{NanoUSD: 60, Tokens: 4}); err != nil {
		t.Fatal(err)
	}
	for _, ask := range []Budget{{NanoUSD: 41, Tokens: 1}, {NanoUSD: 1, Tokens: 7}, {NanoUSD: Unlimited, Tokens: 0}, {NanoUSD: 0, Tokens: Unlimited}} {
		if err := child(s, h, ask); !errors.Is(err, ErrBudgetExhausted) {
			t.Errorf("Begin asking %+v = %v; want ErrBudgetExhausted", ask, err)
		}
	}
	got, _ := s.Get(bg, "acme", h.ID())
	kids, _ := s.Children(bg, "acme", h.ID())
	if got.Remaining != (Budget{NanoUSD: 40, Tokens: 6}) || len(kids) != 1 {
		t.Errorf("Remaining = %+v, children %v; want {40 6}, one child (refusals change nothing)", got.Remaining, kids)
	}
	if err := child(s, h, Budget{NanoUSD: 40, Tokens: 6}); err != nil {
		t.Errorf("Begin asking all = %v", err)
	}
}

func testAllocateUnlimited(t *testing.T, s TaskStore) {
	h := testHop("acme", "", Budget{NanoUSD: Unlimited, Tokens: 5})
	mustCreate(t, s, h)
	if err := child(s, h, Budget{NanoUSD: Unlimited, Tokens: 5}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(bg, "acme", h.ID())
	if got.Remaining != (Budget{NanoUSD: Unlimited, Tokens: 0}) {
		t.Errorf("Remaining = %+v; want {-1 0}", got.Remaining)
	}
}

func testAllocateConcurrent(t *testing.T, s TaskStore) {
	h := testHop("acme", "", Budget{NanoUSD: 10, Tokens: Unlimited})
	mustCreate(t, s, h)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			err := child(s, h, Budget{NanoUSD: 1, Tokens: 1})
			switch {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, ErrBudgetExhausted):
				t.Errorf("Begin: %v", err)
			}
		})
	}
	wg.Wait()
	kids, _ := s.Children(bg, "acme", h.ID())
	if ok.Load() != 10 || len(kids) != 10 {
		t.Errorf("%d children of 1 from 10 begun (%d listed); want exactly 10", ok.Load(), len(kids))
	}
}

func testRefund(t *testing.T, s TaskStore) {
	h := testHop("acme", "", Budget{NanoUSD: 10, Tokens: Unlimited})
	mustCreate(t, s, h)
	child(s, h, Budget{NanoUSD: 7, Tokens: 3})
	if err := s.Refund(bg, "acme", h.ID(), Budget{NanoUSD: 7, Tokens: 3}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(bg, "acme", h.ID())
	if got.Remaining != (Budget{NanoUSD: 10, Tokens: Unlimited}) {
		t.Errorf("Remaining after refund = %+v; want {10 -1}", got.Remaining)
	}
}

func testClaim(t *testing.T, s TaskStore) {
	if c, err := s.Lookup(bg, "acme", "key"); err != nil || c.HopID != "" {
		t.Fatalf("Lookup of a free key = %+v, %v", c, err)
	}
	c, err := s.Claim(bg, "acme", "key", "hop-1")
	if err != nil || !c.Fresh || c.HopID != "hop-1" {
		t.Fatalf("first Claim = %+v, %v", c, err)
	}
	c, err = s.Claim(bg, "acme", "key", "hop-2")
	if err != nil || c.Fresh || c.Done || c.HopID != "hop-1" {
		t.Errorf("second Claim = %+v, %v; want held by hop-1, pending", c, err)
	}
	if c, err := s.Lookup(bg, "acme", "key"); err != nil || c.HopID != "hop-1" || c.Fresh || c.Done {
		t.Errorf("Lookup = %+v, %v; want held by hop-1", c, err)
	}
}

func testClaimConcurrent(t *testing.T, s TaskStore) {
	var fresh atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			c, err := s.Claim(bg, "acme", "race", fmt.Sprint("hop-", i))
			if err != nil {
				t.Error(err)
			}
			if c.Fresh {
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	if fresh.Load() != 1 {
		t.Errorf("%d claims won; want 1", fresh.Load())
	}
}

func testSettleRelease(t *testing.T, s TaskStore) {
	s.Claim(bg, "acme", "k1", "hop-1")
	s.Release(bg, "acme", "k1", "hop-other") // not its holder: nothing
	if c, _ := s.Claim(bg, "acme", "k1", "hop-2"); c.Fresh {
		t.Fatal("Release by another hop freed the key")
	}
	if err := s.Release(bg, "acme", "k1", "hop-1"); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Claim(bg, "acme", "k1", "hop-2"); !c.Fresh {
		t.Fatal("a released key cannot be claimed again")
	}
	h := testHop("acme", "", UnlimitedBudget)
	mustCreate(t, s, h)
	s.Release(bg, "acme", "k1", "hop-2")
	s.Claim(bg, "acme", "k1", h.ID())
	if _, _, err := s.Update(bg, "acme", h.ID(), Update{Settle: "k1"}); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Claim(bg, "acme", "k1", "hop-3"); c.Fresh || !c.Done || c.HopID != h.ID() {
		t.Errorf("Claim of a settled key = %+v; want done by %s", c, h.ID())
	}
	s.Release(bg, "acme", "k1", h.ID()) // settled: kept
	if c, _ := s.Claim(bg, "acme", "k1", "hop-3"); c.Fresh {
		t.Errorf("Release freed a settled key")
	}
}

func TestMemoryStore(t *testing.T) {
	runStoreConformance(t, func(t *testing.T) TaskStore { return NewMemoryStore(0) })
}

func TestMemoryStoreExpires(t *testing.T) {
	s := NewMemoryStore(time.Minute)
	now := time.Now()
	s.now = func() time.Time { return now }
	h := testHop("acme", "", UnlimitedBudget)
	mustCreate(t, s, h)
	now = now.Add(2 * time.Minute)
	if _, err := s.Get(bg, "acme", h.ID()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after retention = %v; want ErrNotFound", err)
	}
	if c, _ := s.Claim(bg, "acme", "key-"+h.ID(), "x"); !c.Fresh {
		t.Errorf("an expired key is still held")
	}
	// Writes drop expired entries a few at a time; a refreshed one stays.
	s = NewMemoryStore(time.Minute)
	s.now = func() time.Time { return now }
	var old []*Hop
	for range 10 {
		h := testHop("acme", "", UnlimitedBudget)
		mustCreate(t, s, h)
		old = append(old, h)
	}
	now = now.Add(50 * time.Second)
	s.Update(bg, "acme", old[0].ID(), Update{State: StateWorking})
	now = now.Add(20 * time.Second)
	for range 10 {
		mustCreate(t, s, testHop("acme", "", UnlimitedBudget))
	}
	s.mu.Lock()
	hops, claims, queue := len(s.hops), len(s.claims), len(s.queue)-s.head
	s.mu.Unlock()
	if hops != 11 || claims != 10 {
		t.Errorf("after expiry: %d hops, %d keys (queue %d); want 11 (10 new, 1 refreshed) and 10", hops, claims, queue)
	}
	if _, err := s.Get(bg, "acme", old[0].ID()); err != nil {
		t.Errorf("the refreshed hop expired: %v", err)
	}
}

const redisAddr = "127.0.0.1:6379"

// newRedisClient connects to the machine's Redis; a missing server fails
// the test (tests use real parts).
func newRedisClient(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: 64})
	if err := c.Ping(bg).Err(); err != nil {
		t.Fatalf("redis at %s: %v (tests need a running Redis)", redisAddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testPrefix returns a key prefix private to t, whose keys are deleted
// when t ends.
func testPrefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	prefix := fmt.Sprintf("aigwtest:a2a:%x:", rand.Uint64())
	t.Cleanup(func() {
		iter := c.Scan(bg, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(bg) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("scan %s*: %v", prefix, err)
		}
		if len(keys) > 0 {
			if err := c.Del(bg, keys...).Err(); err != nil {
				t.Errorf("delete %d test keys: %v", len(keys), err)
			}
		}
	})
	return prefix
}

func TestRedisStore(t *testing.T) {
	c := newRedisClient(t)
	runStoreConformance(t, func(t *testing.T) TaskStore { return NewRedisStore(c, testPrefix(t, c), 0) })
}

func TestRedisStoreSharedAndDurable(t *testing.T) {
	c := newRedisClient(t)
	prefix := testPrefix(t, c)
	one := NewRedisStore(c, prefix, time.Hour)
	h := testHop("acme", "", Budget{NanoUSD: 5, Tokens: 5})
	mustCreate(t, one, h)
	// Another client (another replica, or the gateway after a restart).
	c2 := newRedisClient(t)
	two := NewRedisStore(c2, prefix, time.Hour)
	if _, _, err := two.Update(bg, "acme", h.ID(), Update{State: StateWorking, UpstreamTaskID: "u"}); err != nil {
		t.Fatal(err)
	}
	got, err := one.Get(bg, "acme", h.ID())
	if err != nil || got.State != StateWorking || got.UpstreamTaskID != "u" {
		t.Errorf("Get on the first store = %+v, %v; want the second's update", got, err)
	}
	if ttl := c.PTTL(bg, prefix+"{acme}:h:"+h.ID()).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("hop key TTL = %v; want within the retention", ttl)
	}
}
