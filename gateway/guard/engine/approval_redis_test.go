package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"aigw/gateway"

	"github.com/redis/go-redis/v9"
)

const redisAddr = "127.0.0.1:6379"

// newRedisClient connects to the machine's Redis; a missing server fails
// the test (tests use real parts).
func newRedisClient(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: 32})
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v (tests need a running Redis)", redisAddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testPrefix returns a key prefix private to t, whose keys are deleted when
// t ends.
func testPrefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	prefix := fmt.Sprintf("aigwtest:approvals:%x:", rand.Uint64())
	t.Cleanup(func() {
		ctx := context.Background()
		keys, err := c.Keys(ctx, prefix+"*").Result()
		if err != nil {
			t.Errorf("keys %s*: %v", prefix, err)
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("delete %d test keys: %v", len(keys), err)
			}
		}
	})
	return prefix
}

// newRedisStores returns two stores on one prefix, each with its own
// client (two replicas), closed when t ends; poll is their poll interval.
func newRedisStores(t *testing.T, ttl, poll time.Duration) (a, b *RedisApprovals, prefix string) {
	c1, c2 := newRedisClient(t), newRedisClient(t)
	prefix = testPrefix(t, c1)
	a, b = NewRedisApprovals(c1, prefix, ttl, poll), NewRedisApprovals(c2, prefix, ttl, poll)
	t.Cleanup(func() {
		for _, s := range []*RedisApprovals{a, b} {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	})
	return a, b, prefix
}

func TestRedisApprovals(t *testing.T) {
	runApprovalStore(t, func(t *testing.T, ttl time.Duration) (ApprovalStore, ApprovalStore) {
		a, b, _ := newRedisStores(t, ttl, 0)
		return a, b
	})
}

// waitSubscribed waits until n stores are subscribed to prefix's decisions.
func waitSubscribed(t testing.TB, c *redis.Client, prefix string, n int64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		m, err := c.PubSubNumSub(context.Background(), prefix+"decided").Result()
		if err == nil && m[prefix+"decided"] == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d stores subscribed to %sdecided, want %d (%v)", m[prefix+"decided"], prefix, n, err)
		}
	}
}

// TestRedisApprovalsWokenByMessage: a decision made on another replica
// wakes the waiter through pub/sub (the waiter does not poll in this test).
func TestRedisApprovalsWokenByMessage(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b, prefix := newRedisStores(t, 0, time.Hour)
	waitSubscribed(t, newRedisClient(t), prefix, 2)
	for range 3 {
		ap := mustAdd(t, a, newApproval("acme"))
		errc := make(chan error, 1)
		go func() {
			w, err := a.Wait(ctx, "acme", ap.ID)
			if err == nil && w.Status != ApprovalApproved {
				err = fmt.Errorf("woken with %+v", w)
			}
			errc <- err
		}()
		if _, err := b.Decide(ctx, "acme", ap.ID, true, "Ada", "ok"); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("Wait: %v (not woken by the decision's message)", err)
		}
	}
}

// TestRedisApprovalsLostMessage: a decision whose message is lost (written
// without one) reaches the waiter through its polling.
func TestRedisApprovalsLostMessage(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, _, _ := newRedisStores(t, 0, 10*time.Millisecond)
	ap := mustAdd(t, a, newApproval("acme"))
	errc := make(chan error, 1)
	go func() {
		w, err := a.Wait(ctx, "acme", ap.ID)
		if err == nil && (w.Status != ApprovalApproved || w.By != "Ada") {
			err = fmt.Errorf("woken with %+v", w)
		}
		errc <- err
	}()
	// The decision as the script writes it, with no message published.
	if err := a.c.HSet(ctx, a.key("acme", ap.ID), "status", ApprovalApproved, "by", "Ada").Err(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

// TestRedisApprovalsKeys: an approval's keys are under its tenant's hash
// tag and expire.
func TestRedisApprovalsKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, _, prefix := newRedisStores(t, 0, 0)
	ap := mustAdd(t, a, newApproval("acme:{x}"))
	keys, err := a.c.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{prefix + "{acme%3A%7Bx%7D}:a:" + ap.ID: true, prefix + "{acme%3A%7Bx%7D}:pending": true}
	if len(keys) != len(want) {
		t.Fatalf("keys %v; want %v", keys, want)
	}
	for _, k := range keys {
		if !want[k] {
			t.Errorf("key %q; want one of %v", k, want)
		}
		ttl, err := a.c.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > approvalTTL {
			t.Errorf("key %q expires in %v (%v); want within %v", k, ttl, err, approvalTTL)
		}
	}
}

// TestEngineApprovalsRedisURL: an engine configured with
// approvals.redis_url shares approvals with another engine on the same
// prefix, and closes its own store.
func TestEngineApprovalsRedisURL(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newRedisClient(t)
	prefix := testPrefix(t, c)
	cfg := Config{
		Policies: []PolicyConfig{{Name: "payments", Checks: []CheckConfig{{ID: "transfers", Type: TypeContent,
			Stages: []string{StageInput}, Action: ActionApprove, ApprovalWaitMS: 300_000, Phrases: []string{"wire transfer"}}}}},
		Approvals: ApprovalsConfig{RedisURL: "redis://" + redisAddr + "/0", Prefix: prefix, PollMS: 50},
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ins := holdCall(t, ctx, a)
	done := make(chan error, 1)
	go func() {
		if gerr := ins.Hold.Wait(ctx); gerr != nil {
			done <- gerr
			return
		}
		done <- nil
	}()
	if ok, err := b.Decide(ctx, "acme", ins.Hold.ID, true, "Ada", "ok"); !ok || err != nil {
		t.Fatalf("B could not decide: %v %v", ok, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the held call: %v", err)
	}
	for _, e := range []*Engine{a, b} {
		if err := e.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	for _, bad := range []ApprovalsConfig{{RedisURL: "http://nope"}, {PollMS: -1}} {
		if _, err := New(Config{Approvals: bad}, nil); err == nil {
			t.Errorf("New with approvals %+v succeeded", bad)
		}
	}
}

// TestEngineApprovalsUnavailable: when the store cannot keep the approval,
// the call is refused (503), not let through, and the event says why.
func TestEngineApprovalsUnavailable(t *testing.T) {
	t.Parallel()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1}) // nothing listens there
	t.Cleanup(func() { c.Close() })
	s := NewRedisApprovals(c, "aigwtest:approvals:down:", 0, 0)
	t.Cleanup(func() { s.Close() })
	e := approvalEngine(t, s, 300_000)
	ins, _ := e.Input(context.Background(), gateway.Caller{Tenant: "acme"}, "chat.completions", "m", chatReq("please make a wire transfer of 100 EUR"))
	if ins == nil || ins.Hold != nil || ins.Block == nil || ins.Block.Status != 503 || ins.Block.Code != "approval_unavailable" {
		t.Fatalf("with the store down: %+v; want refused with 503 approval_unavailable", ins)
	}
	if ev := ins.Events[len(ins.Events)-1]; ev["verdict"] != ActionBlock || ev["error"] == nil {
		t.Errorf("event %v; want a block with the error", ev)
	}
	retry := gateway.WithApprovalRef(context.Background(), newApprovalID())
	if ins, _ := e.Input(retry, gateway.Caller{Tenant: "acme"}, "chat.completions", "m", chatReq("please make a wire transfer of 100 EUR")); ins == nil || ins.Block == nil {
		t.Fatalf("a retry with an approval, the store down: %+v; want refused", ins)
	}
}
