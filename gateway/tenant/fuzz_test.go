package tenant_test

import (
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"aigw/gateway/tenant"
)

// FuzzAllows checks the glob matcher of Key.Allows against the same
// pattern translated to a regular expression.
func FuzzAllows(f *testing.F) {
	for _, s := range [][2]string{
		{"gpt-4o*", "gpt-4o-mini"}, {"claude-?-haiku", "claude-3-haiku"}, {"*", ""},
		{"a*b*c", "aXbYbZc"}, {"*-mini", "gpt-4o-mini-2024"}, {"[ab]", "a"}, {"**a?*", "ba"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, model string) {
		if pattern == "" {
			return // empty Models allow all; an empty pattern is refused by CreateKey
		}
		var re strings.Builder
		re.WriteString(`(?s)\A`)
		for i := 0; i < len(pattern); i++ {
			switch c := pattern[i]; c {
			case '*':
				re.WriteString(`[\x00-\xff]*`)
			case '?':
				re.WriteString(`[\x00-\xff]`)
			default:
				re.WriteString(regexp.QuoteMeta(string([]byte{c})))
			}
		}
		re.WriteString(`\z`)
		// Match bytes as Latin-1 runes so that '?' is one byte, as in Allows.
		latin1 := func(s string) string {
			r := make([]rune, len(s))
			for i := 0; i < len(s); i++ {
				r[i] = rune(s[i])
			}
			return string(r)
		}
		want, err := regexp.MatchString(latin1(re.String()), latin1(model))
		if err != nil {
			t.Skip() // a pattern byte the translation cannot express
		}
		if got := (tenant.Key{Models: []string{pattern}}).Allows(model); got != want {
			t.Errorf("Allows: pattern %q, model %q = %v; regexp says %v", pattern, model, got, want)
		}
	})
}

// FuzzAuthenticate sends arbitrary secrets: each is refused with
// ErrInvalidKey (before any lookup if malformed), and only the key's own
// secret authenticates.
func FuzzAuthenticate(f *testing.F) {
	db := database{driver: tenant.DriverSQLite, dsn: filepath.Join(f.TempDir(), "t.db"), clock: newClock()}
	s := db.open(f)
	if _, err := s.CreateTenant(f.Context(), tenant.Tenant{ID: "acme"}); err != nil {
		f.Fatal(err)
	}
	secret, k, err := s.CreateKey(f.Context(), "acme", tenant.KeySpec{})
	if err != nil {
		f.Fatal(err)
	}
	a := newAuth(f, s, db.clock, tenant.AuthConfig{MaxEntries: 1000})
	raw := string(secret)
	for _, seed := range []string{raw, raw[:47], raw + "x", "", "aigw_", "Bearer " + raw, strings.ToUpper(raw), string(tenant.NewSecret())} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		before := a.Stats().Lookups
		got, _, err := a.Authenticate(t.Context(), in)
		if in == raw {
			if err != nil || got.ID != k.ID {
				t.Fatalf("the key's secret: %s, %v", got.ID, err)
			}
			return
		}
		if !errors.Is(err, tenant.ErrInvalidKey) {
			t.Fatalf("Authenticate(%q): %v; want ErrInvalidKey", in, err)
		}
		if !tenant.WellFormed(in) && a.Stats().Lookups != before {
			t.Fatalf("Authenticate(%q) looked a malformed secret up", in)
		}
	})
}
