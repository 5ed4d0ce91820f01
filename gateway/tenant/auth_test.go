package tenant_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"aigw/gateway/tenant"
)

// newAuth returns an Authenticator over s on clock c.
func newAuth(t testing.TB, s *tenant.Store, c *clock, cfg tenant.AuthConfig) *tenant.Authenticator {
	t.Helper()
	cfg.Now = c.Now
	a, err := tenant.NewAuthenticator(s, cfg)
	if err != nil {
		t.Fatalf("NewAuthenticator: %v", err)
	}
	return a
}

// lookups returns the Store lookups a has made.
func lookups(a *tenant.Authenticator) int64 { return a.Stats().Lookups }

func TestAuthConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  tenant.AuthConfig
		ok   bool
	}{
		{"Zero", tenant.AuthConfig{}, true},
		{"Set", tenant.AuthConfig{TTL: time.Second, NegativeTTL: time.Second, MaxEntries: 10, MaxLookups: 1}, true},
		{"NegativeTTL", tenant.AuthConfig{TTL: -1}, false},
		{"NegativeNegativeTTL", tenant.AuthConfig{NegativeTTL: -1}, false},
		{"NegativeEntries", tenant.AuthConfig{MaxEntries: -1}, false},
		{"NegativeLookups", tenant.AuthConfig{MaxLookups: -1}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v; want ok=%v", err, tt.ok)
			}
		})
	}
	if _, err := tenant.NewAuthenticator(nil, tenant.AuthConfig{}); err == nil {
		t.Error("NewAuthenticator(nil) succeeded")
	}
}

func TestAuthenticate(t *testing.T) {
	each(t, func(t *testing.T, db database) {
		s := db.open(t)
		ctx := t.Context()
		mustTenant(t, s, "acme")
		mustTenant(t, s, "off")
		expires := db.clock.Now().Add(time.Hour)
		live, liveKey := mustKey(t, s, "acme", tenant.KeySpec{Name: "live", Models: []string{"gpt-*"}, ExpiresAt: &expires})
		revoked, revokedKey := mustKey(t, s, "acme", tenant.KeySpec{Name: "revoked"})
		if _, err := s.RevokeKey(ctx, "acme", revokedKey.ID); err != nil {
			t.Fatal(err)
		}
		off, offKey := mustKey(t, s, "off", tenant.KeySpec{})
		if err := s.SetTenantDisabled(ctx, "off", true); err != nil {
			t.Fatal(err)
		}
		unknown := string(tenant.NewSecret())
		good := string(live)

		a := newAuth(t, s, db.clock, tenant.AuthConfig{})
		for _, tt := range []struct {
			name      string
			secret    string
			want      error
			wantKey   string // key returned, with or without an error
			wantQuery bool   // whether the Store is asked
		}{
			{"Live", good, nil, liveKey.ID, true},
			{"LiveCached", good, nil, liveKey.ID, false},
			{"Revoked", string(revoked), tenant.ErrKeyRevoked, revokedKey.ID, true},
			{"RevokedCached", string(revoked), tenant.ErrKeyRevoked, revokedKey.ID, false},
			{"TenantDisabled", string(off), tenant.ErrTenantDisabled, offKey.ID, true},
			{"Unknown", unknown, tenant.ErrInvalidKey, "", true},
			{"UnknownCached", unknown, tenant.ErrInvalidKey, "", false},
			{"Empty", "", tenant.ErrInvalidKey, "", false},
			{"PrefixOnly", "aigw_", tenant.ErrInvalidKey, "", false},
			{"OtherPrefix", "sk-p" + good[4:], tenant.ErrInvalidKey, "", false},
			{"Truncated", good[:len(good)-1], tenant.ErrInvalidKey, "", false},
			{"Extended", good + "A", tenant.ErrInvalidKey, "", false},
			{"BadCharacter", good[:30] + "+" + good[31:], tenant.ErrInvalidKey, "", false},
			{"Bearer", "Bearer " + good, tenant.ErrInvalidKey, "", false},
			{"CaseChanged", strings.ToUpper(good[:5]) + good[5:], tenant.ErrInvalidKey, "", false},
		} {
			t.Run(tt.name, func(t *testing.T) {
				before := lookups(a)
				k, tn, err := a.Authenticate(ctx, tt.secret)
				if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
					t.Errorf("Authenticate: error %v; want %v", err, tt.want)
				}
				if k.ID != tt.wantKey || (tt.wantKey != "" && tn.ID != k.Tenant) {
					t.Errorf("Authenticate = key %q of %q; want key %q", k.ID, tn.ID, tt.wantKey)
				}
				if queried := lookups(a) > before; queried != tt.wantQuery {
					t.Errorf("Authenticate asked the Store: %v; want %v", queried, tt.wantQuery)
				}
				if err != nil && tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
					t.Errorf("error %q holds the secret", err)
				}
			})
		}
		k, _, _ := a.Authenticate(ctx, good)
		if !k.Allows("gpt-4o") || k.Allows("claude-3") {
			t.Errorf("the authenticated key's Models %q do not allow gpt-4o but not claude-3", k.Models)
		}
	})
}

// TestAuthenticateExpiry checks that expiry applies at the instant, to a
// cached key too.
func TestAuthenticateExpiry(t *testing.T) {
	each(t, func(t *testing.T, db database) {
		s := db.open(t)
		mustTenant(t, s, "acme")
		expires := db.clock.Now().Add(time.Minute)
		secret, k := mustKey(t, s, "acme", tenant.KeySpec{ExpiresAt: &expires})
		a := newAuth(t, s, db.clock, tenant.AuthConfig{TTL: time.Hour})
		for _, tt := range []struct {
			advance time.Duration
			want    error
		}{
			{0, nil},
			{time.Minute - time.Nanosecond, nil},
			{time.Nanosecond, tenant.ErrKeyExpired},
			{time.Hour, tenant.ErrKeyExpired}, // past the TTL: read again, still expired
		} {
			db.clock.Advance(tt.advance)
			got, _, err := a.Authenticate(t.Context(), string(secret))
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) || got.ID != k.ID {
				t.Errorf("at %v: Authenticate = %s, %v; want %s, %v", db.clock.Now(), got.ID, err, k.ID, tt.want)
			}
		}
		if n := lookups(a); n != 2 {
			t.Errorf("%d Store lookups; want 2 (one per TTL)", n)
		}
	})
}

// TestRevocation checks that a revocation, and a tenant's disabling, apply
// at once in the process that makes them and within the TTL in another
// process (a second Store and Authenticator on the same database).
func TestRevocation(t *testing.T) {
	each(t, func(t *testing.T, db database) {
		ctx := t.Context()
		const ttl = 10 * time.Second
		s1, s2 := db.open(t), db.open(t)
		a1 := newAuth(t, s1, db.clock, tenant.AuthConfig{TTL: ttl})
		a2 := newAuth(t, s2, db.clock, tenant.AuthConfig{TTL: ttl})
		mustTenant(t, s1, "acme")
		secret, k := mustKey(t, s1, "acme", tenant.KeySpec{})
		other, otherKey := mustKey(t, s1, "acme", tenant.KeySpec{})

		// authAt checks what both Authenticators say of secret.
		authAt := func(step, secret string, want1, want2 error) {
			t.Helper()
			for i, c := range []struct {
				a    *tenant.Authenticator
				want error
			}{{a1, want1}, {a2, want2}} {
				_, _, err := c.a.Authenticate(ctx, secret)
				if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
					t.Errorf("%s: replica %d: Authenticate: %v; want %v", step, i+1, err, c.want)
				}
			}
		}
		authAt("before", string(secret), nil, nil)
		authAt("before", string(other), nil, nil)

		db.clock.Advance(ttl / 2)
		if _, err := a1.Revoke(ctx, "acme", k.ID); err != nil {
			t.Fatal(err)
		}
		authAt("just revoked", string(secret), tenant.ErrKeyRevoked, nil)
		db.clock.Advance(ttl/2 - time.Nanosecond)
		authAt("TTL not passed", string(secret), tenant.ErrKeyRevoked, nil)
		db.clock.Advance(time.Nanosecond)
		authAt("TTL passed", string(secret), tenant.ErrKeyRevoked, tenant.ErrKeyRevoked)

		// A revocation through the Store, then Invalidate by key id.
		authAt("other, cached afresh", string(other), nil, nil)
		if _, err := s1.RevokeKey(ctx, "acme", otherKey.ID); err != nil {
			t.Fatal(err)
		}
		authAt("revoked in the Store", string(other), nil, nil)
		a1.Invalidate(otherKey.ID)
		authAt("invalidated by id", string(other), tenant.ErrKeyRevoked, nil)
		a2.Invalidate(otherKey.Hash)
		authAt("invalidated by hash", string(other), tenant.ErrKeyRevoked, tenant.ErrKeyRevoked)

		// Disabling and enabling the tenant.
		live, _ := mustKey(t, s1, "acme", tenant.KeySpec{})
		authAt("new key", string(live), nil, nil)
		if err := a1.SetTenantDisabled(ctx, "acme", true); err != nil {
			t.Fatal(err)
		}
		authAt("just disabled", string(live), tenant.ErrTenantDisabled, nil)
		db.clock.Advance(ttl)
		authAt("disabled, TTL passed", string(live), tenant.ErrTenantDisabled, tenant.ErrTenantDisabled)
		if err := a2.SetTenantDisabled(ctx, "acme", false); err != nil {
			t.Fatal(err)
		}
		authAt("just enabled", string(live), tenant.ErrTenantDisabled, nil)
		db.clock.Advance(ttl)
		authAt("enabled, TTL passed", string(live), nil, nil)

		wantErr(t, "SetTenantDisabled(unknown)", a1.SetTenantDisabled(ctx, "nobody", true), tenant.ErrNotFound)
	})
}

// TestAuthenticateFlood sends many distinct well-formed unknown secrets:
// the cache stays within MaxEntries, keeps the live keys, asks the Store
// once per distinct secret, never more than MaxLookups at a time, and not
// again for a repeated secret within NegativeTTL.
func TestAuthenticateFlood(t *testing.T) {
	each(t, func(t *testing.T, db database) {
		s := db.open(t)
		mustTenant(t, s, "acme")
		const maxEntries, maxLookups, workers, perWorker = 64, 2, 8, 100
		a := newAuth(t, s, db.clock, tenant.AuthConfig{MaxEntries: maxEntries, MaxLookups: maxLookups, NegativeTTL: time.Second})
		var goods []string
		for range maxEntries / 4 {
			secret, _ := mustKey(t, s, "acme", tenant.KeySpec{})
			goods = append(goods, string(secret))
			if _, _, err := a.Authenticate(t.Context(), string(secret)); err != nil {
				t.Fatal(err)
			}
		}
		base := lookups(a)

		var wg sync.WaitGroup
		last := make([]string, workers)
		for w := range workers {
			wg.Go(func() {
				for range perWorker {
					last[w] = string(tenant.NewSecret())
					if _, _, err := a.Authenticate(t.Context(), last[w]); !errors.Is(err, tenant.ErrInvalidKey) {
						t.Errorf("Authenticate(unknown): %v; want ErrInvalidKey", err)
						return
					}
				}
			})
		}
		wg.Wait()
		st := a.Stats()
		if st.Keys+st.Unknown > maxEntries {
			t.Errorf("cache holds %d keys and %d unknown secrets; want at most %d in all", st.Keys, st.Unknown, maxEntries)
		}
		if got := st.Lookups - base; got != workers*perWorker {
			t.Errorf("%d Store lookups for %d distinct secrets; want one each", got, workers*perWorker)
		}
		if st.PeakLookups > maxLookups {
			t.Errorf("%d Store lookups at once; want at most %d", st.PeakLookups, maxLookups)
		}

		// The live keys were not evicted by the flood.
		base = lookups(a)
		for _, g := range goods {
			if _, _, err := a.Authenticate(t.Context(), g); err != nil {
				t.Fatal(err)
			}
		}
		if n := lookups(a) - base; n != 0 {
			t.Errorf("%d Store lookups for cached keys after the flood; want 0", n)
		}

		// A repeated unknown secret is refused from memory until NegativeTTL.
		repeat := string(tenant.NewSecret())
		base = lookups(a)
		for range 100 {
			a.Authenticate(t.Context(), repeat)
		}
		if n := lookups(a) - base; n != 1 {
			t.Errorf("%d Store lookups for one unknown secret sent 100 times; want 1", n)
		}
		db.clock.Advance(time.Second)
		a.Authenticate(t.Context(), repeat)
		if n := lookups(a) - base; n != 2 {
			t.Errorf("%d Store lookups after NegativeTTL; want 2", n)
		}
	})
}

// TestAuthenticateCollapsesMisses sends one uncached secret from many
// goroutines at once: the Store is asked once.
func TestAuthenticateCollapsesMisses(t *testing.T) {
	each(t, func(t *testing.T, db database) {
		s := db.open(t)
		mustTenant(t, s, "acme")
		secret, k := mustKey(t, s, "acme", tenant.KeySpec{})
		unknown := string(tenant.NewSecret())
		a := newAuth(t, s, db.clock, tenant.AuthConfig{})
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 64 {
			wg.Go(func() {
				<-start
				if i%2 == 0 {
					if got, _, err := a.Authenticate(t.Context(), string(secret)); err != nil || got.ID != k.ID {
						t.Errorf("Authenticate = %s, %v; want %s", got.ID, err, k.ID)
					}
				} else if _, _, err := a.Authenticate(t.Context(), unknown); !errors.Is(err, tenant.ErrInvalidKey) {
					t.Errorf("Authenticate(unknown): %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := lookups(a); n != 2 {
			t.Errorf("%d Store lookups for 2 secrets sent by 64 goroutines; want 2", n)
		}
	})
}

// TestAuthenticateCanceled checks that a caller whose context ends stops
// waiting, without failing the lookup other callers share.
func TestAuthenticateCanceled(t *testing.T) {
	t.Parallel()
	db := database{driver: tenant.DriverSQLite, dsn: t.TempDir() + "/t.db", clock: newClock()}
	s := db.open(t)
	mustTenant(t, s, "acme")
	secret, _ := mustKey(t, s, "acme", tenant.KeySpec{})
	a := newAuth(t, s, db.clock, tenant.AuthConfig{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	// Either the lookup won the race with the canceled context or it did not;
	// both are fine, but a canceled caller never gets a wrong answer.
	if _, _, err := a.Authenticate(ctx, string(secret)); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Authenticate(canceled): %v; want success or context.Canceled", err)
	}
	if _, _, err := a.Authenticate(t.Context(), string(secret)); err != nil {
		t.Errorf("Authenticate after a canceled caller: %v", err)
	}
}
