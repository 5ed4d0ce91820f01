package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"aigw/gateway"
)

// newStoresFunc returns two stores that share their approvals (two
// replicas' views of one store), keeping them for ttl (0: the default),
// private to t.
type newStoresFunc func(t *testing.T, ttl time.Duration) (a, b ApprovalStore)

// runApprovalStore checks that stores made by newStores behave as an
// ApprovalStore.
func runApprovalStore(t *testing.T, newStores newStoresFunc) {
	for _, test := range []struct {
		name string
		fn   func(t *testing.T, newStores newStoresFunc)
	}{
		{"AddGet", testApprovalAddGet},
		{"MalformedID", testApprovalMalformedID},
		{"DecideOnce", testApprovalDecideOnce},
		{"ConsumeOnce", testApprovalConsumeOnce},
		{"Pending", testApprovalPending},
		{"TenantIsolation", testApprovalTenantIsolation},
		{"WaitReleased", testApprovalWaitReleased},
		{"WaitDeadline", testApprovalWaitDeadline},
		{"Expiry", testApprovalExpiry},
		{"ConcurrentDecide", testApprovalConcurrentDecide},
		{"ConcurrentConsume", testApprovalConcurrentConsume},
		{"EnginesShareApprovals", testEnginesShareApprovals},
	} {
		t.Run(test.name, func(t *testing.T) {
			t.Parallel()
			test.fn(t, newStores)
		})
	}
}

func TestMemoryApprovals(t *testing.T) {
	runApprovalStore(t, func(t *testing.T, ttl time.Duration) (ApprovalStore, ApprovalStore) {
		s := NewMemoryApprovals(ttl)
		return s, s
	})
}

// newApproval returns a pending approval of the tenant for check "transfers".
func newApproval(tenant string) Approval {
	return Approval{ID: newApprovalID(), Tenant: tenant, Check: "transfers", Stage: StageInput,
		Reason: "the request mentions wire transfer", Status: ApprovalPending, Created: time.Now().UTC()}
}

func mustAdd(t *testing.T, s ApprovalStore, a Approval) Approval {
	t.Helper()
	if err := s.Add(context.Background(), a); err != nil {
		t.Fatalf("Add(%s): %v", a.ID, err)
	}
	return a
}

func sameApproval(t *testing.T, what string, got, want Approval) {
	t.Helper()
	if !got.Created.Equal(want.Created) {
		t.Errorf("%s: created %v, want %v", what, got.Created, want.Created)
	}
	got.Created, want.Created = time.Time{}, time.Time{}
	if got != want {
		t.Errorf("%s = %+v; want %+v", what, got, want)
	}
}

func testApprovalAddGet(t *testing.T, newStores newStoresFunc) {
	ctx := context.Background()
	a, b := newStores(t, 0)
	want := newApproval("acme")
	want.Status = "something else" // Add makes it pending
	mustAdd(t, a, want)
	want.Status = ApprovalPending
	got, err := b.Get(ctx, "acme", want.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameApproval(t, "Get", got, want)
	if err := b.Add(ctx, want); err == nil {
		t.Error("Add with an id in use succeeded")
	}
}

func testApprovalMalformedID(t *testing.T, newStores newStoresFunc) {
	ctx := context.Background()
	a, _ := newStores(t, 0)
	bad := newApproval("acme")
	bad.ID = "apr_*"
	if err := a.Add(ctx, bad); err == nil {
		t.Error("Add with a malformed id succeeded")
	}
	for _, id := range []string{"", "*", "apr_", "apr_0123456789ABCDEF", "apr_0123456789abcdef0", "xyz_0123456789abcdef"} {
		if _, err := a.Get(ctx, "acme", id); !errors.Is(err, ErrApprovalNotFound) {
			t.Errorf("Get(%q) = %v; want ErrApprovalNotFound", id, err)
		}
		if _, err := a.Decide(ctx, "acme", id, true, "Ada", "ok"); !errors.Is(err, ErrApprovalNotFound) {
			t.Errorf("Decide(%q) = %v; want ErrApprovalNotFound", id, err)
		}
	}
}

func testApprovalDecideOnce(t *testing.T, newStores newStoresFunc) {
	ctx := context.Background()
	a, b := newStores(t, 0)
	ap := mustAdd(t, a, newApproval("acme"))
	got, err := b.Decide(ctx, "acme", ap.ID, true, "Ada", "within policy")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != ApprovalApproved || got.By != "Ada" {
		t.Errorf("Decide = %+v; want approved by Ada", got)
	}
	got, err = a.Decide(ctx, "acme", ap.ID, false, "Mallory", "no")
	if !errors.Is(err, ErrApprovalDecided) {
		t.Fatalf("second Decide: %v; want ErrApprovalDecided", err)
	}
	if got.Status != ApprovalApproved || got.By != "Ada" {
		t.Errorf("second Decide returned %+v; want the first decision", got)
	}
	if got, _ := a.Get(ctx, "acme", ap.ID); got.Status != ApprovalApproved || got.By != "Ada" {
		t.Errorf("after two decisions: %+v; want the first", got)
	}
}

func testApprovalConsumeOnce(t *testing.T, newStores newStoresFunc) {
	ctx := context.Background()
	a, b := newStores(t, 0)
	ap := mustAdd(t, a, newApproval("acme"))
	if got, err := b.Consume(ctx, "acme", ap.ID, "transfers"); !errors.Is(err, ErrApprovalNotApproved) || got.Status != ApprovalPending {
		t.Fatalf("Consume while pending = %+v, %v; want pending, ErrApprovalNotApproved", got, err)
	}
	if _, err := a.Decide(ctx, "acme", ap.ID, true, "Ada", "ok"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Consume(ctx, "acme", ap.ID, "other-check"); !errors.Is(err, ErrApprovalNotFound) {
		t.Fatalf("Consume for another check: %v; want ErrApprovalNotFound", err)
	}
	if _, err := b.Consume(ctx, "acme", ap.ID, "transfers"); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	for _, s := range []ApprovalStore{a, b} {
		if got, err := s.Consume(ctx, "acme", ap.ID, "transfers"); !errors.Is(err, ErrApprovalUsed) || got.Status != ApprovalApproved {
			t.Fatalf("second Consume = %+v, %v; want approved, ErrApprovalUsed", got, err)
		}
	}
	rej := mustAdd(t, a, newApproval("acme"))
	if _, err := b.Decide(ctx, "acme", rej.ID, false, "Ada", "no"); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Consume(ctx, "acme", rej.ID, "transfers"); !errors.Is(err, ErrApprovalNotApproved) || got.Status != ApprovalRejected || got.By != "Ada" {
		t.Fatalf("Consume of a rejected approval = %+v, %v; want rejected by Ada, ErrApprovalNotApproved", got, err)
	}
}

func testApprovalPending(t *testing.T, newStores newStoresFunc) {
	ctx := context.Background()
	a, b := newStores(t, 0)
	if ps, err := b.Pending(ctx, "acme"); err != nil || len(ps) != 0 {
		t.Fatalf("Pending of an empty store = %v, %v", ps, err)
	}
	base := time.Now().UTC()
	var ids []string
	for i := range 4 {
		ap := newApproval("acme")
		ap.Created = base.Add(time.Duration(3-i) * time.Millisecond) // added newest first
		mustAdd(t, a, ap)
		ids = append(ids, ap.ID)
	}
	mustAdd(t, a, newApproval("globex"))
	if _, err := b.Decide(ctx, "acme", ids[1], false, "Ada", "no"); err != nil {
		t.Fatal(err)
	}
	ps, err := b.Pending(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.ID)
		if p.Tenant != "acme" || p.Status != ApprovalPending {
			t.Errorf("Pending listed %+v", p)
		}
	}
	if want := []string{ids[3], ids[2], ids[0]}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Pending = %v; want %v (oldest first, the decided one left out)", got, want)
	}
}

func testApprovalTenantIsolation(t *testing.T, newStores newStoresFunc) {
	ctx := context.Background()
	a, b := newStores(t, 0)
	ap := mustAdd(t, a, newApproval("acme"))
	for _, other := range []string{"globex", "", "ACME", "acme ", "{acme}", "acme}:a:" + ap.ID + ":{acme"} {
		if _, err := b.Get(ctx, other, ap.ID); !errors.Is(err, ErrApprovalNotFound) {
			t.Errorf("Get by tenant %q: %v; want ErrApprovalNotFound", other, err)
		}
		if _, err := b.Decide(ctx, other, ap.ID, true, "Mallory", "mine now"); !errors.Is(err, ErrApprovalNotFound) {
			t.Errorf("Decide by tenant %q: %v; want ErrApprovalNotFound", other, err)
		}
		if _, err := b.Consume(ctx, other, ap.ID, "transfers"); !errors.Is(err, ErrApprovalNotFound) {
			t.Errorf("Consume by tenant %q: %v; want ErrApprovalNotFound", other, err)
		}
		if _, err := b.Wait(ctx, other, ap.ID); !errors.Is(err, ErrApprovalNotFound) {
			t.Errorf("Wait by tenant %q: %v; want ErrApprovalNotFound", other, err)
		}
		if ps, err := b.Pending(ctx, other); err != nil || len(ps) != 0 {
			t.Errorf("Pending of tenant %q = %v, %v; want none", other, ps, err)
		}
	}
	if got, err := a.Get(ctx, "acme", ap.ID); err != nil || got.Status != ApprovalPending {
		t.Errorf("acme's approval after the others' attempts: %+v, %v; want pending", got, err)
	}
	// The same id under two tenants are two approvals.
	other := ap
	other.Tenant = "globex"
	mustAdd(t, b, other)
	if _, err := a.Decide(ctx, "globex", ap.ID, false, "Grace", "no"); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Get(ctx, "acme", ap.ID); got.Status != ApprovalPending {
		t.Errorf("globex's decision reached acme's approval: %+v", got)
	}
}

func testApprovalWaitReleased(t *testing.T, newStores newStoresFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := newStores(t, 0)
	ap := mustAdd(t, a, newApproval("acme"))
	got := make(chan Approval, 1)
	errc := make(chan error, 1)
	go func() {
		w, err := a.Wait(ctx, "acme", ap.ID)
		got <- w
		errc <- err
	}()
	if _, err := b.Decide(ctx, "acme", ap.ID, false, "Ada", "too large"); err != nil {
		t.Fatal(err)
	}
	w, err := <-got, <-errc
	if err != nil || w.Status != ApprovalRejected || w.By != "Ada" {
		t.Fatalf("Wait = %+v, %v; want rejected by Ada", w, err)
	}
	// Once decided, a Wait returns at once.
	if w, err := b.Wait(ctx, "acme", ap.ID); err != nil || w.Status != ApprovalRejected {
		t.Fatalf("Wait after the decision = %+v, %v", w, err)
	}
	if _, err := a.Wait(ctx, "acme", newApprovalID()); !errors.Is(err, ErrApprovalNotFound) {
		t.Fatalf("Wait for no approval: %v; want ErrApprovalNotFound", err)
	}
}

func testApprovalWaitDeadline(t *testing.T, newStores newStoresFunc) {
	a, _ := newStores(t, 0)
	ap := mustAdd(t, a, newApproval("acme"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	w, err := a.Wait(ctx, "acme", ap.ID)
	if !errors.Is(err, context.DeadlineExceeded) || w.ID != ap.ID || w.Status != ApprovalPending {
		t.Fatalf("Wait past its deadline = %+v, %v; want the pending approval, DeadlineExceeded", w, err)
	}
}

func testApprovalExpiry(t *testing.T, newStores newStoresFunc) {
	ctx := context.Background()
	const ttl = 50 * time.Millisecond
	a, b := newStores(t, ttl)
	ap := mustAdd(t, a, newApproval("acme"))
	decided := mustAdd(t, a, newApproval("acme"))
	if _, err := b.Decide(ctx, "acme", decided.ID, true, "Ada", "ok"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err1 := b.Get(ctx, "acme", ap.ID)
		_, err2 := b.Get(ctx, "acme", decided.ID)
		if errors.Is(err1, ErrApprovalNotFound) && errors.Is(err2, ErrApprovalNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("approvals kept for %v still there: %v, %v", ttl, err1, err2)
		}
	}
	if _, err := b.Decide(ctx, "acme", ap.ID, true, "Ada", "late"); !errors.Is(err, ErrApprovalNotFound) {
		t.Errorf("Decide of an expired approval: %v; want ErrApprovalNotFound", err)
	}
	if _, err := a.Consume(ctx, "acme", decided.ID, "transfers"); !errors.Is(err, ErrApprovalNotFound) {
		t.Errorf("Consume of an expired approval: %v; want ErrApprovalNotFound", err)
	}
	if ps, err := a.Pending(ctx, "acme"); err != nil || len(ps) != 0 {
		t.Errorf("Pending after expiry = %v, %v; want none", ps, err)
	}
}

// raceStores runs n goroutines calling fn, alternately on a and b, and
// returns the approvals and errors they got.
func raceStores(a, b ApprovalStore, n int, fn func(s ApprovalStore, i int) (Approval, error)) ([]Approval, []error) {
	got, errs := make([]Approval, n), make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			<-start
			got[i], errs[i] = fn(s, i)
		})
	}
	close(start)
	wg.Wait()
	return got, errs
}

func testApprovalConcurrentDecide(t *testing.T, newStores newStoresFunc) {
	ctx := context.Background()
	a, b := newStores(t, 0)
	for range 5 {
		ap := mustAdd(t, a, newApproval("acme"))
		const n = 32
		got, errs := raceStores(a, b, n, func(s ApprovalStore, i int) (Approval, error) {
			return s.Decide(ctx, "acme", ap.ID, i%3 == 0, fmt.Sprintf("approver-%d", i), "raced")
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("two decisions won: approver-%d and approver-%d", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, ErrApprovalDecided):
				t.Fatalf("approver-%d: %v; want ErrApprovalDecided", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no decision won")
		}
		want := got[winner]
		if want.By != fmt.Sprintf("approver-%d", winner) || (want.Status == ApprovalApproved) != (winner%3 == 0) {
			t.Fatalf("the winner approver-%d got %+v", winner, want)
		}
		for i, g := range got {
			if g.By != want.By || g.Status != want.Status {
				t.Errorf("approver-%d was told %s by %s; the decision was %s by %s", i, g.Status, g.By, want.Status, want.By)
			}
		}
		if final, _ := b.Get(ctx, "acme", ap.ID); final.By != want.By || final.Status != want.Status {
			t.Errorf("stored %+v; the winner was %+v", final, want)
		}
	}
}

func testApprovalConcurrentConsume(t *testing.T, newStores newStoresFunc) {
	ctx := context.Background()
	a, b := newStores(t, 0)
	ap := mustAdd(t, a, newApproval("acme"))
	if _, err := b.Decide(ctx, "acme", ap.ID, true, "Ada", "ok"); err != nil {
		t.Fatal(err)
	}
	_, errs := raceStores(a, b, 32, func(s ApprovalStore, i int) (Approval, error) {
		return s.Consume(ctx, "acme", ap.ID, "transfers")
	})
	used := 0
	for i, err := range errs {
		switch {
		case err == nil:
			used++
		case !errors.Is(err, ErrApprovalUsed):
			t.Errorf("call %d: %v; want ErrApprovalUsed", i, err)
		}
	}
	if used != 1 {
		t.Fatalf("the approval was used %d times; want once", used)
	}
}

// approvalEngine returns an engine whose one check holds calls mentioning
// "wire transfer" for approval, waiting up to waitMS, with its approvals
// in store.
func approvalEngine(t *testing.T, store ApprovalStore, waitMS int) *Engine {
	t.Helper()
	e, err := New(Config{
		Policies: []PolicyConfig{{Name: "payments", Checks: []CheckConfig{{ID: "transfers", Type: TypeContent,
			Stages: []string{StageInput}, Action: ActionApprove, ApprovalWaitMS: waitMS, Phrases: []string{"wire transfer"}}}}},
		Approvals: ApprovalsConfig{Store: store},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func holdCall(t *testing.T, ctx context.Context, e *Engine) *gateway.Inspection {
	t.Helper()
	ins, _ := e.Input(ctx, gateway.Caller{Tenant: "acme"}, "chat.completions", "m", chatReq("please make a wire transfer of 100 EUR"))
	if ins == nil || ins.Block != nil || ins.Hold == nil {
		t.Fatalf("the call was not held: %+v", ins)
	}
	return ins
}

// testEnginesShareApprovals: two engines (replicas) on one store: a call
// held on one is released by a decision made on the other; a pending
// reference is polled on either, and used once on either.
func testEnginesShareApprovals(t *testing.T, newStores newStoresFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sa, sb := newStores(t, 0)
	a, b := approvalEngine(t, sa, 300_000), approvalEngine(t, sb, 300_000)
	for _, approved := range []bool{true, false} {
		ins := holdCall(t, ctx, a)
		done := make(chan *gateway.Error, 1)
		go func() { done <- ins.Hold.Wait(ctx) }()
		if ps := b.PendingApprovals("acme"); !slices.ContainsFunc(ps, func(p Approval) bool { return p.ID == ins.Hold.ID }) {
			t.Fatalf("pending on B = %+v; want %s among them", ps, ins.Hold.ID)
		}
		if !decide(t, b, "acme", ins.Hold.ID, approved, "Ada", "checked") {
			t.Fatal("B could not decide")
		}
		if decide(t, b, "acme", ins.Hold.ID, !approved, "Mallory", "again") || decide(t, a, "acme", ins.Hold.ID, !approved, "Mallory", "again") {
			t.Fatal("a second decision was taken")
		}
		gerr := <-done
		switch {
		case approved && gerr != nil:
			t.Fatalf("approved on B, the call held on A got %v", gerr)
		case !approved && (gerr == nil || gerr.Code != "approval_rejected" || !strings.Contains(gerr.Message, "Ada")):
			t.Fatalf("rejected on B, the call held on A got %v", gerr)
		}
		if approved {
			// The held call used its approval: it cannot be sent back.
			retry := gateway.WithApprovalRef(ctx, ins.Hold.ID)
			if again := holdCall(t, retry, b); again.Hold.ID == ins.Hold.ID {
				t.Fatal("held again under the used approval")
			}
		}
	}
	// Nobody decides in time: a pending reference.
	quick := approvalEngine(t, sa, 1)
	ins := holdCall(t, ctx, quick)
	if gerr := ins.Hold.Wait(ctx); gerr == nil || gerr.Code != "approval_pending" {
		t.Fatalf("undecided: %v; want approval_pending", gerr)
	}
	id := ins.Hold.ID
	if ap, ok := b.ApprovalStatus("acme", id); !ok || ap.Status != ApprovalPending {
		t.Fatalf("poll on B: %+v, %v; want pending", ap, ok)
	}
	if _, ok := b.ApprovalStatus("globex", id); ok {
		t.Fatal("another tenant polled acme's approval")
	}
	if decide(t, b, "globex", id, true, "Mallory", "mine") {
		t.Fatal("another tenant decided acme's approval")
	}
	if !decide(t, a, "acme", id, true, "Ada", "late but fine") {
		t.Fatal("A could not decide")
	}
	if ap, ok := b.ApprovalStatus("acme", id); !ok || ap.Status != ApprovalApproved || ap.By != "Ada" {
		t.Fatalf("poll on B after the decision: %+v, %v", ap, ok)
	}
	// The retry with the approval passes on B, once; then it holds again.
	retry := gateway.WithApprovalRef(ctx, id)
	ins, _ = b.Input(retry, gateway.Caller{Tenant: "acme"}, "chat.completions", "m", chatReq("please make a wire transfer of 100 EUR"))
	if ins == nil || ins.Block != nil || ins.Hold != nil {
		t.Fatalf("retry with the approval on B: %+v", ins)
	}
	if got := ins.Events[len(ins.Events)-1]; got["verdict"] != "approved" || got["approval_id"] != id {
		t.Fatalf("retry's event: %v", got)
	}
	again := holdCall(t, retry, a)
	if again.Hold.ID == id {
		t.Fatal("the approval was used twice")
	}
	// Another tenant cannot use it either.
	other, _ := a.Input(retry, gateway.Caller{Tenant: "globex"}, "chat.completions", "m", chatReq("please make a wire transfer of 100 EUR"))
	if other == nil || other.Hold == nil {
		t.Fatalf("globex's call with acme's approval: %+v; want held", other)
	}
}

// decide is Engine.Decide for tests: a store failure fails the test.
func decide(t *testing.T, e *Engine, tenant, id string, approved bool, by, reason string) bool {
	t.Helper()
	ok, err := e.Decide(t.Context(), tenant, id, approved, by, reason)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
