package tenant_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aigw/gateway/tenant"
	"aigw/ledger"
)

func TestValidID(t *testing.T) {
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{"acme", true},
		{"0", true},
		{"a-b_c9", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{"system", false},
		{"systems", true},
		{"-a", false},
		{"_a", false},
		{"A", false},
		{"a.b", false},
		{"a b", false},
		{"é", false},
		{strings.Repeat("a", 64), false},
	} {
		if got := tenant.ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v; want %v", tt.id, got, tt.want)
		}
		// Every tenant names a ledger log.
		if tenant.ValidID(tt.id) && !ledger.ValidLogName(tt.id) {
			t.Errorf("ValidID(%q) but not a ledger log name", tt.id)
		}
	}
}

func TestAllows(t *testing.T) {
	for _, tt := range []struct {
		models []string
		model  string
		want   bool
	}{
		{nil, "anything", true},
		{[]string{"gpt-4o*"}, "gpt-4o", true},
		{[]string{"gpt-4o*"}, "gpt-4o-mini", true},
		{[]string{"gpt-4o*"}, "gpt-4", false},
		{[]string{"gpt-4o*"}, "xgpt-4o", false},
		{[]string{"gpt-4o"}, "gpt-4o-mini", false},
		{[]string{"*"}, "meta/llama-3", true},
		{[]string{"*"}, "", true},
		{[]string{"claude-?-haiku"}, "claude-3-haiku", true},
		{[]string{"claude-?-haiku"}, "claude-35-haiku", false},
		{[]string{"*-mini"}, "gpt-4o-mini", true},
		{[]string{"*-mini"}, "gpt-4o-mini-2024", false},
		{[]string{"a*b*c"}, "aXbYbZc", true},
		{[]string{"a*b*c"}, "aXbYbZ", false},
		{[]string{"a**"}, "a", true},
		{[]string{"openai/*"}, "openai/gpt-4o", true},
		{[]string{"openai/*"}, "anthropic/claude", false},
		{[]string{"x", "claude-*"}, "claude-sonnet-4", true},
		{[]string{"[ab]"}, "a", false}, // no character classes
		{[]string{"[ab]"}, "[ab]", true},
		{[]string{"*a*a*a*a*a*a*b"}, strings.Repeat("a", 100), false},
	} {
		if got := (tenant.Key{Models: tt.models}).Allows(tt.model); got != tt.want {
			t.Errorf("Key{Models: %q}.Allows(%q) = %v; want %v", tt.models, tt.model, got, tt.want)
		}
	}
}

func TestNewSecret(t *testing.T) {
	seen := map[tenant.Secret]bool{}
	for range 100 {
		s := tenant.NewSecret()
		raw := string(s)
		if len(raw) != tenant.SecretLen || !strings.HasPrefix(raw, tenant.SecretPrefix) || !tenant.WellFormed(raw) {
			t.Fatalf("NewSecret() = %q; want aigw_ and 43 base64url characters", raw)
		}
		if seen[s] {
			t.Fatal("NewSecret returned the same secret twice")
		}
		seen[s] = true
	}
}

func TestWellFormed(t *testing.T) {
	good := string(tenant.NewSecret())
	for _, tt := range []struct {
		name, secret string
		want         bool
	}{
		{"Good", good, true},
		{"Empty", "", false},
		{"PrefixOnly", "aigw_", false},
		{"OtherPrefix", "sk-_" + good[4:], false},
		{"Short", good[:len(good)-1], false},
		{"Long", good + "A", false},
		{"Plus", good[:20] + "+" + good[21:], false},
		{"Slash", good[:20] + "/" + good[21:], false},
		{"Padding", good[:len(good)-1] + "=", false},
		{"Space", good[:20] + " " + good[21:], false},
		{"Bearer", "Bearer " + good, false},
	} {
		if got := tenant.WellFormed(tt.secret); got != tt.want {
			t.Errorf("%s: WellFormed(%q) = %v; want %v", tt.name, tt.secret, got, tt.want)
		}
	}
}

// TestSecretRedacted logs and prints a freshly created key and its secret in
// every way a caller might, and checks that the secret (and the key's hash)
// never shows.
func TestSecretRedacted(t *testing.T) {
	t.Parallel()
	db := database{driver: tenant.DriverSQLite, dsn: filepath.Join(t.TempDir(), "t.db"), clock: newClock()}
	s := db.open(t)
	mustTenant(t, s, "acme")
	expires := db.clock.Now().Add(time.Hour)
	secret, k := mustKey(t, s, "acme", tenant.KeySpec{Name: "ci", ExpiresAt: &expires})
	raw := string(secret)

	var buf, structs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		log := slog.New(h)
		log.Info("created key", "key", k, "secret", secret)
		log.Info("created key", "secrets", []tenant.Secret{secret})
		log.With("secret", secret).Info("with")
		log.Info("group", slog.Group("g", "secret", secret, "key", k))
	}
	// A struct holding the secret is encoded by the handler (JSON, fmt)
	// without LogValue; the secret stays redacted. (The hash shows: it is
	// not a secret, only the LogValue of a Key leaves it out.)
	for _, h := range []slog.Handler{slog.NewJSONHandler(&structs, nil), slog.NewTextHandler(&structs, nil)} {
		slog.New(h).Info("created key", slog.Any("pair", struct {
			Secret tenant.Secret
			Key    tenant.Key
		}{secret, k}))
	}
	auth := newAuth(t, s, db.clock, tenant.AuthConfig{})
	if _, err := auth.Revoke(t.Context(), "acme", k.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err := auth.Authenticate(t.Context(), raw)
	fmt.Fprintln(&buf, err)
	_, _, err = auth.Authenticate(t.Context(), raw[:len(raw)-1]+"x")
	fmt.Fprintln(&buf, err)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10.3s"} {
		fmt.Fprintf(&buf, verb+"\n", secret)
	}
	j, err := json.Marshal(map[string]any{"secret": secret})
	if err != nil {
		t.Fatal(err)
	}
	buf.Write(j)
	out := buf.String()
	t.Logf("output:\n%s%s", out, structs.String())
	if !strings.Contains(out, k.ID) || !strings.Contains(out, k.Prefix) || !strings.Contains(out, "REDACTED") {
		t.Fatalf("the output does not name the key by id and prefix, or has no REDACTED: not a log of it")
	}
	if strings.Contains(out+structs.String(), raw[tenant.KeyPrefixLen:]) {
		t.Error("the secret shows in the output")
	}
	if strings.Contains(out, k.Hash) {
		t.Error("the key's hash shows in the output of its LogValue")
	}
}
