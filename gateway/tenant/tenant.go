// Package tenant holds the gateway's tenants and their API keys: a [Store]
// on SQLite or PostgreSQL, and the [Authenticator] that turns the secret of
// every request into its [Key] and [Tenant]. The Store also keeps the
// agents and routes of a tenant that a human stopped ([Stop]), which the
// Authenticator caches ([Authenticator.Stops]) for the gateway's admission
// of every call.
//
// A tenant is a slug ([ValidID]) that also names its ledger log, so it
// follows the ledger's log names and may never be "system", the ledger's
// admin log. A key's secret is "aigw_" and 43 base64url characters of 32
// random bytes ([NewSecret]); it is shown to its owner once, by
// [Store.CreateKey], and never stored: the store keeps its SHA-256 ([Hash])
// and its first 12 characters ([Key.Prefix]) to recognise it by.
//
// Plain SHA-256, with no salt and no slow key-derivation function, is the
// right hash here: a salt or a KDF defends low-entropy secrets (passwords)
// against guessing, and a 256-bit random secret cannot be guessed, so the
// hash of one is as good as unbreakable and lets a key be found by an
// indexed equality lookup on every request.
//
// Values that hold a secret ([Secret]) or its hash ([Key]) implement
// [slog.LogValuer] so that logging them never writes the secret.
package tenant

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"aigw/ledger"
)

// Errors the Store and the Authenticator wrap; callers branch on them with
// errors.Is.
var (
	// ErrNotFound: no such tenant, no such key in the tenant named, or no
	// such stop.
	ErrNotFound = errors.New("not found")
	// ErrExists: a tenant with that id already exists, or the agent or
	// route is stopped already.
	ErrExists = errors.New("already exists")
	// ErrInvalid: an argument (id, name, model pattern, expiry) is invalid.
	ErrInvalid = errors.New("invalid argument")
	// ErrInvalidKey: the secret is malformed or belongs to no key.
	ErrInvalidKey = errors.New("invalid API key")
	// ErrKeyExpired: the key's ExpiresAt has passed.
	ErrKeyExpired = errors.New("API key expired")
	// ErrKeyRevoked: the key was revoked.
	ErrKeyRevoked = errors.New("API key revoked")
	// ErrTenantDisabled: the key's tenant is disabled.
	ErrTenantDisabled = errors.New("tenant disabled")
)

// Limits on what a tenant or a key may hold.
const (
	MaxNameLen    = 256 // bytes of a tenant's or a key's Name
	MaxModels     = 64  // patterns in a key's Models
	MaxPatternLen = 128 // bytes of one model pattern
)

// The shape of secrets and key ids.
const (
	SecretPrefix   = "aigw_"
	SecretLen      = len(SecretPrefix) + 43 // "aigw_" and 32 bytes in unpadded base64url
	KeyPrefixLen   = 12                     // characters of the secret kept in Key.Prefix
	keyIDPrefix    = "key_"
	keyIDRandomLen = 16 // lowercase hex characters after "key_"
)

// Tenant is a customer of the gateway. Its ID names its ledger log.
type Tenant struct {
	// ID is the tenant's slug: [ValidID].
	ID string
	// Name is a display name, at most MaxNameLen bytes of printable UTF-8.
	Name string
	// CreatedAt is set by the Store when the tenant is created.
	CreatedAt time.Time
	// Disabled tenants keep their keys, which stop authenticating.
	Disabled bool
}

// ValidID reports whether id can name a tenant: 1 to 63 characters of
// [a-z0-9_-] starting with a letter or digit (a ledger log name), and not
// "system", the ledger's admin log.
func ValidID(id string) bool {
	return ledger.ValidLogName(id) && id != ledger.SystemLog
}

// Key is an API key of a tenant, without its secret. Models and the time
// pointers are shared with the Authenticator's cache: do not modify them.
type Key struct {
	// ID is "key_" and 16 random lowercase hex characters.
	ID string
	// Tenant is the ID of the tenant the key belongs to.
	Tenant string
	// Name is a label chosen by the tenant (at most MaxNameLen bytes).
	Name string
	// Prefix is the first KeyPrefixLen characters of the secret, shown in
	// listings so that a holder can tell which key a secret is.
	Prefix string
	// Hash is the lowercase hex SHA-256 of the secret ([Hash]).
	Hash string
	// Models are glob patterns of the models or routes the key may call
	// ("gpt-4o*", "claude-?-haiku"); empty allows every model. See [Key.Allows].
	Models []string
	// CreatedAt is set by the Store when the key is created.
	CreatedAt time.Time
	// ExpiresAt, if set, is the instant from which the key no longer
	// authenticates.
	ExpiresAt *time.Time
	// Team is the key's team ("" for none): budgets and spend are kept
	// per team.
	Team string
	// RevokedAt, if set, is when the key was revoked. Revocation is final.
	RevokedAt *time.Time
}

// Allows reports whether the key may call model: whether Models is empty or
// one of its patterns matches model. In a pattern, '*' matches any run of
// bytes ('/' included) and '?' any one byte; every other byte matches itself.
func (k Key) Allows(model string) bool {
	if len(k.Models) == 0 {
		return true
	}
	for _, p := range k.Models {
		if matchGlob(p, model) {
			return true
		}
	}
	return false
}

// Expired reports whether the key has expired at now.
func (k Key) Expired(now time.Time) bool {
	return k.ExpiresAt != nil && !now.Before(*k.ExpiresAt)
}

// LogValue logs the key by id, tenant, name and prefix, never by hash.
func (k Key) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("id", k.ID),
		slog.String("tenant_id", k.Tenant),
		slog.String("name", k.Name),
		slog.String("prefix", k.Prefix),
	}
	if k.ExpiresAt != nil {
		attrs = append(attrs, slog.Time("expires_at", *k.ExpiresAt))
	}
	if k.RevokedAt != nil {
		attrs = append(attrs, slog.Time("revoked_at", *k.RevokedAt))
	}
	return slog.GroupValue(attrs...)
}

// KeySpec is what [Store.CreateKey] needs to create a key.
type KeySpec struct {
	// Name labels the key (at most MaxNameLen bytes of printable UTF-8).
	Name string
	// Models are the allowed model patterns (at most MaxModels, each at
	// most MaxPatternLen bytes of printable ASCII); empty allows all.
	Models []string
	// ExpiresAt, if set, must be in the future.
	ExpiresAt *time.Time
	// Team, if set, puts the key in a team (see ValidTeam).
	Team string
}

// Secret is an API key's secret. It is a string, but fmt (every verb),
// slog and the text and JSON encoders print it as "REDACTED", so that a
// Secret that ends up in a log line or a struct being logged stays secret.
// Convert it with string(s) only to hand it to its owner.
type Secret string

const redacted = "REDACTED"

// String returns "REDACTED".
func (Secret) String() string { return redacted }

// Format writes "REDACTED" whatever the verb.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue logs the secret as "REDACTED".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText encodes the secret as "REDACTED" (for encoding/json, too):
// a response that shows a new secret to its owner must hold string(s).
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// NewSecret returns a fresh secret: SecretPrefix and 32 bytes of
// crypto/rand in unpadded base64url, SecretLen characters in all.
func NewSecret() Secret {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand.Read crashes the program instead)
	return Secret(SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:]))
}

// Hash returns the lowercase hex SHA-256 of secret, as stored in Key.Hash.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// WellFormed reports whether secret has the shape of a secret: SecretPrefix
// followed by 43 base64url characters. It does not say whether a key has it.
func WellFormed(secret string) bool {
	if len(secret) != SecretLen || secret[:len(SecretPrefix)] != SecretPrefix {
		return false
	}
	var bad byte
	for i := len(SecretPrefix); i < len(secret); i++ {
		bad |= notBase64URL[secret[i]]
	}
	return bad == 0
}

// notBase64URL is 1 for the bytes outside the base64url alphabet.
var notBase64URL = func() (t [256]byte) {
	for c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			t[c] = 1
		}
	}
	return t
}()

// newKeyID returns "key_" and 16 random lowercase hex characters.
func newKeyID() string {
	var b [keyIDRandomLen / 2]byte
	rand.Read(b[:])
	return keyIDPrefix + hex.EncodeToString(b[:])
}

// ValidKeyID reports whether id has the shape of a key id.
func ValidKeyID(id string) bool {
	return len(id) == len(keyIDPrefix)+keyIDRandomLen && strings.HasPrefix(id, keyIDPrefix) &&
		isLowerHex(id[len(keyIDPrefix):])
}

// validHash reports whether h is a lowercase hex SHA-256.
func validHash(h string) bool { return len(h) == 2*sha256.Size && isLowerHex(h) }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validName checks a tenant's or a key's display name.
func validName(what, s string) error {
	if len(s) > MaxNameLen {
		return fmt.Errorf("%s is longer than %d bytes: %w", what, MaxNameLen, ErrInvalid)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8: %w", what, ErrInvalid)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%s holds the unprintable character %U: %w", what, r, ErrInvalid)
		}
	}
	return nil
}

// validModels checks the model patterns of a KeySpec.
func validModels(models []string) error {
	if len(models) > MaxModels {
		return fmt.Errorf("%d model patterns, more than %d: %w", len(models), MaxModels, ErrInvalid)
	}
	for _, p := range models {
		if p == "" || len(p) > MaxPatternLen {
			return fmt.Errorf("model pattern %q is empty or longer than %d bytes: %w", p, MaxPatternLen, ErrInvalid)
		}
		for i := 0; i < len(p); i++ {
			if p[i] <= ' ' || p[i] > '~' {
				return fmt.Errorf("model pattern %q holds a byte that is not printable ASCII: %w", p, ErrInvalid)
			}
		}
	}
	return nil
}

// matchGlob reports whether s matches pattern, where '*' matches any run of
// bytes and '?' any one byte. It runs in O(len(pattern)·len(s)) at worst,
// backtracking only to the last '*'.
func matchGlob(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case star >= 0:
			mark++
			p, i = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
