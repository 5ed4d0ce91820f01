package tenant_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"aigw/gateway/tenant"
	"aigw/ledger"
)

func stop(tenantID, typ, target string) tenant.Stop {
	return tenant.Stop{Tenant: tenantID, TargetType: typ, Target: target, By: "Ada Lovelace", Reason: "runaway tool calls\nsee ticket 7", EventID: ledger.NewEventID()}
}

// TestStopsStore: stops are added, read, listed and removed per tenant,
// refused when invalid, and survive reopening the database.
func TestStopsStore(t *testing.T) {
	each(t, func(t *testing.T, db database) {
		ctx := t.Context()
		s := db.open(t)
		mustTenant(t, s, "acme")
		mustTenant(t, s, "globex")

		want := stop("acme", tenant.StopAgent, "planner-7")
		got, err := s.AddStop(ctx, want)
		if err != nil {
			t.Fatalf("AddStop: %v", err)
		}
		want.StoppedAt = db.clock.Now()
		if got != want {
			t.Errorf("AddStop = %+v; want %+v", got, want)
		}
		if _, err := s.AddStop(ctx, stop("acme", tenant.StopRoute, "gpt-4o-mini")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddStop(ctx, stop("acme", tenant.StopRoute, "claude-sonnet")); err != nil {
			t.Fatal(err)
		}
		again := stop("acme", tenant.StopAgent, "planner-7")
		again.By = "someone else"
		_, err = s.AddStop(ctx, again)
		wantErr(t, "AddStop(stopped already)", err, tenant.ErrExists)
		if st, err := s.GetStop(ctx, "acme", tenant.StopAgent, "planner-7"); err != nil || st != want {
			t.Errorf("GetStop after a second stop = %+v, %v; want the first %+v", st, err, want)
		}
		_, err = s.AddStop(ctx, stop("nobody", tenant.StopAgent, "a"))
		wantErr(t, "AddStop(unknown tenant)", err, tenant.ErrNotFound)

		for _, bad := range []struct {
			name string
			edit func(*tenant.Stop)
		}{
			{"BadType", func(s *tenant.Stop) { s.TargetType = "trace" }},
			{"EmptyTarget", func(s *tenant.Stop) { s.Target = "" }},
			{"LongAgent", func(s *tenant.Stop) { s.Target = strings.Repeat("a", 129) }},
			{"LongRoute", func(s *tenant.Stop) { s.TargetType, s.Target = tenant.StopRoute, strings.Repeat("r", 257) }},
			{"ControlChar", func(s *tenant.Stop) { s.Target = "a\tb" }},
			{"BadTenant", func(s *tenant.Stop) { s.Tenant = "system" }},
			{"BadEventID", func(s *tenant.Stop) { s.EventID = "x" }},
			{"LongReason", func(s *tenant.Stop) { s.Reason = strings.Repeat("x", tenant.MaxStopReasonLen+1) }},
			{"LongBy", func(s *tenant.Stop) { s.By = strings.Repeat("x", tenant.MaxStopByLen+1) }},
		} {
			st := stop("acme", tenant.StopAgent, "other")
			bad.edit(&st)
			_, err := s.AddStop(ctx, st)
			wantErr(t, "AddStop("+bad.name+")", err, tenant.ErrInvalid)
		}

		// Isolation: globex has no stops, and cannot see or resume acme's.
		if list, err := s.ListStops(ctx, "globex"); err != nil || len(list) != 0 {
			t.Errorf("ListStops(globex) = %v, %v; want none", list, err)
		}
		_, err = s.GetStop(ctx, "globex", tenant.StopAgent, "planner-7")
		wantErr(t, "GetStop(globex, acme's agent)", err, tenant.ErrNotFound)
		_, err = s.RemoveStop(ctx, "globex", tenant.StopAgent, "planner-7")
		wantErr(t, "RemoveStop(globex, acme's agent)", err, tenant.ErrNotFound)
		_, err = s.ListStops(ctx, "nobody")
		wantErr(t, "ListStops(unknown tenant)", err, tenant.ErrNotFound)

		// Reopening keeps them, listed agents first, then by target.
		s2 := db.open(t)
		list, err := s2.ListStops(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, st := range list {
			names = append(names, st.TargetType+":"+st.Target)
		}
		if got := strings.Join(names, " "); got != "agent:planner-7 route:claude-sonnet route:gpt-4o-mini" {
			t.Errorf("ListStops after reopening = %s", got)
		}
		if list[0] != want {
			t.Errorf("stop after reopening = %+v; want %+v", list[0], want)
		}

		// Resume.
		if st, err := s2.RemoveStop(ctx, "acme", tenant.StopAgent, "planner-7"); err != nil || st != want {
			t.Errorf("RemoveStop = %+v, %v; want %+v", st, err, want)
		}
		_, err = s2.RemoveStop(ctx, "acme", tenant.StopAgent, "planner-7")
		wantErr(t, "RemoveStop(resumed already)", err, tenant.ErrNotFound)
		_, err = s.GetStop(ctx, "acme", tenant.StopAgent, "planner-7")
		wantErr(t, "GetStop(resumed)", err, tenant.ErrNotFound)
		// A resumed target can be stopped again.
		if _, err := s.AddStop(ctx, stop("acme", tenant.StopAgent, "planner-7")); err != nil {
			t.Errorf("AddStop after resume: %v", err)
		}
	})
}

// TestStopsCache: a stop or resume applies at once in the Authenticator
// that makes it, and within the TTL in another process; tenants are
// isolated.
func TestStopsCache(t *testing.T) {
	each(t, func(t *testing.T, db database) {
		ctx := t.Context()
		const ttl = 10 * time.Second
		s1, s2 := db.open(t), db.open(t)
		a1 := newAuth(t, s1, db.clock, tenant.AuthConfig{TTL: ttl})
		a2 := newAuth(t, s2, db.clock, tenant.AuthConfig{TTL: ttl})
		mustTenant(t, s1, "acme")
		mustTenant(t, s1, "globex")

		// stoppedAt checks whether both replicas see the agent stopped in acme
		// (and never in globex).
		stoppedAt := func(step string, want1, want2 bool) {
			t.Helper()
			for i, c := range []struct {
				a    *tenant.Authenticator
				want bool
			}{{a1, want1}, {a2, want2}} {
				st, err := c.a.Stops(ctx, "acme")
				if err != nil {
					t.Fatalf("%s: replica %d: Stops: %v", step, i+1, err)
				}
				if _, got := st.Agent("bot"); got != c.want {
					t.Errorf("%s: replica %d: agent stopped = %v; want %v", step, i+1, got, c.want)
				}
				other, err := c.a.Stops(ctx, "globex")
				if err != nil || other.Len() != 0 {
					t.Errorf("%s: replica %d: globex's stops = %d, %v; want none", step, i+1, other.Len(), err)
				}
			}
		}
		stoppedAt("before", false, false)
		if _, err := a1.Stop(ctx, stop("acme", tenant.StopAgent, "bot")); err != nil {
			t.Fatal(err)
		}
		stoppedAt("just stopped", true, false)
		db.clock.Advance(ttl - time.Nanosecond)
		stoppedAt("TTL not passed", true, false)
		db.clock.Advance(time.Nanosecond)
		stoppedAt("TTL passed", true, true)

		if _, err := a2.Resume(ctx, "acme", tenant.StopAgent, "bot"); err != nil {
			t.Fatal(err)
		}
		stoppedAt("just resumed", true, false)
		db.clock.Advance(ttl)
		stoppedAt("resumed, TTL passed", false, false)
		_, err := a2.Resume(ctx, "acme", tenant.StopAgent, "bot")
		wantErr(t, "Resume(not stopped)", err, tenant.ErrNotFound)

		// A change through the Store shows after InvalidateStops.
		if _, err := s1.AddStop(ctx, stop("acme", tenant.StopAgent, "bot")); err != nil {
			t.Fatal(err)
		}
		stoppedAt("stopped in the Store", false, false)
		a1.InvalidateStops("acme")
		stoppedAt("invalidated", true, false)

		// A route stop is a route stop only.
		if _, err := a1.Stop(ctx, stop("acme", tenant.StopRoute, "gpt-4o")); err != nil {
			t.Fatal(err)
		}
		st, _ := a1.Stops(ctx, "acme")
		if _, ok := st.Route("gpt-4o"); !ok {
			t.Error("route gpt-4o not stopped")
		}
		if _, ok := st.Agent("gpt-4o"); ok {
			t.Error("a route stop stops the agent of the same name")
		}
		if _, ok := st.Route("gpt-4o-mini"); ok {
			t.Error("a route stop stops another route")
		}
		var none *tenant.Stops
		if _, ok := none.Agent("bot"); ok || none.Len() != 0 {
			t.Error("a nil *Stops holds a stop")
		}
	})
}

// TestStopsConcurrent: concurrent readers and writers of the stops cache
// (run with -race) end with the Store's state once the writers are done.
func TestStopsConcurrent(t *testing.T) {
	each(t, func(t *testing.T, db database) {
		ctx := t.Context()
		s := db.open(t)
		a := newAuth(t, s, db.clock, tenant.AuthConfig{})
		mustTenant(t, s, "acme")
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				target := string(rune('a' + i))
				for range 5 {
					if _, err := a.Stop(ctx, stop("acme", tenant.StopAgent, target)); err != nil {
						t.Errorf("Stop: %v", err)
					}
					if _, err := a.Resume(ctx, "acme", tenant.StopAgent, target); err != nil {
						t.Errorf("Resume: %v", err)
					}
				}
				if _, err := a.Stop(ctx, stop("acme", tenant.StopAgent, target)); err != nil {
					t.Errorf("Stop: %v", err)
				}
			})
			wg.Go(func() {
				for range 50 {
					if _, err := a.Stops(ctx, "acme"); err != nil {
						t.Errorf("Stops: %v", err)
					}
				}
			})
		}
		wg.Wait()
		st, err := a.Stops(ctx, "acme")
		if err != nil || st.Len() != 4 {
			t.Fatalf("Stops after the writers = %d, %v; want 4", st.Len(), err)
		}
	})
}
