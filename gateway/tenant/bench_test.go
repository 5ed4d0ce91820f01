package tenant_test

import (
	"path/filepath"
	"testing"
	"time"

	"aigw/gateway/tenant"
)

// benchAuth returns an Authenticator of cfg over a SQLite Store holding
// tenant acme with one key, whose secret it returns.
func benchAuth(b *testing.B, cfg tenant.AuthConfig) (*tenant.Authenticator, string) {
	b.Helper()
	s, err := tenant.Open(b.Context(), tenant.Config{Driver: tenant.DriverSQLite, DSN: filepath.Join(b.TempDir(), "t.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if _, err := s.CreateTenant(b.Context(), tenant.Tenant{ID: "acme"}); err != nil {
		b.Fatal(err)
	}
	secret, _, err := s.CreateKey(b.Context(), "acme", tenant.KeySpec{Models: []string{"gpt-4o*"}})
	if err != nil {
		b.Fatal(err)
	}
	a, err := tenant.NewAuthenticator(s, cfg)
	if err != nil {
		b.Fatal(err)
	}
	return a, string(secret)
}

// BenchmarkAuthenticate measures the hot path of every request: a cached
// key, an unknown secret refused from the negative cache, a malformed one,
// and, uncached, a SQLite lookup every time (TTL of 1 ns).
func BenchmarkAuthenticate(b *testing.B) {
	b.Run("cached", func(b *testing.B) {
		a, secret := benchAuth(b, tenant.AuthConfig{})
		if _, _, err := a.Authenticate(b.Context(), secret); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := a.Authenticate(b.Context(), secret); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unknown-cached", func(b *testing.B) {
		a, _ := benchAuth(b, tenant.AuthConfig{})
		unknown := string(tenant.NewSecret())
		a.Authenticate(b.Context(), unknown)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := a.Authenticate(b.Context(), unknown); err == nil {
				b.Fatal("unknown secret authenticated")
			}
		}
	})
	b.Run("malformed", func(b *testing.B) {
		a, secret := benchAuth(b, tenant.AuthConfig{})
		bad := secret[:len(secret)-1]
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := a.Authenticate(b.Context(), bad); err == nil {
				b.Fatal("malformed secret authenticated")
			}
		}
	})
	b.Run("uncached-sqlite", func(b *testing.B) {
		a, secret := benchAuth(b, tenant.AuthConfig{TTL: time.Nanosecond})
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := a.Authenticate(b.Context(), secret); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAuthenticateParallel is the cached hot path from every core at once.
func BenchmarkAuthenticateParallel(b *testing.B) {
	a, secret := benchAuth(b, tenant.AuthConfig{})
	if _, _, err := a.Authenticate(b.Context(), secret); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := a.Authenticate(b.Context(), secret); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkAllows(b *testing.B) {
	k := tenant.Key{Models: []string{"claude-*", "gemini-?.?-pro", "gpt-4o*"}}
	b.ReportAllocs()
	for b.Loop() {
		if !k.Allows("gpt-4o-mini-2024-07-18") {
			b.Fatal("not allowed")
		}
	}
}
