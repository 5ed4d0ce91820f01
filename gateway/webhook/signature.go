package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks headers.
const (
	// HeaderID carries the message id: the same on every attempt, so
	// receivers deduplicate on it.
	HeaderID = "webhook-id"
	// HeaderTimestamp carries the attempt's time in Unix seconds.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature carries space-separated signatures, each
	// "<version>,<base64>"; symmetric ones are version "v1".
	HeaderSignature = "webhook-signature"
)

// SecretPrefix marks a secret serialized as Standard Webhooks does:
// "whsec_" followed by the key in standard base64.
const SecretPrefix = "whsec_"

// MinSecretBytes is the shortest key a Sender accepts (the specification
// asks for at least 24 random bytes).
const MinSecretBytes = 24

// DefaultTolerance is the tolerance of Verify when given none: how far a
// timestamp may be from now, either way.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify.
var (
	ErrMissingHeaders      = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrInvalidTimestamp    = errors.New("webhook: webhook-timestamp is not an integer")
	ErrTimestampTooOld     = errors.New("webhook: webhook-timestamp too old")
	ErrTimestampTooNew     = errors.New("webhook: webhook-timestamp too new")
	ErrNoMatchingSignature = errors.New("webhook: no matching signature")
)

const redacted = "REDACTED"

// Secret is a signing key. fmt (every verb) and slog print it as
// "REDACTED".
type Secret struct {
	key []byte
}

// ParseSecret parses a secret: "whsec_<base64>" (the Standard Webhooks
// serialization) is its base64-decoded key; any other non-empty string is
// used as the key as it is (its bytes). Note that the reference libraries
// base64-decode an unprefixed secret: give receivers using them the
// "whsec_" form.
func ParseSecret(s string) (Secret, error) {
	if rest, ok := strings.CutPrefix(s, SecretPrefix); ok {
		key, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return Secret{}, errors.New("webhook: secret: whsec_ secret is not valid base64")
		}
		if len(key) == 0 {
			return Secret{}, errors.New("webhook: secret: empty key")
		}
		return Secret{key: key}, nil
	}
	if s == "" {
		return Secret{}, errors.New("webhook: secret: empty key")
	}
	return Secret{key: []byte(s)}, nil
}

// NewSecret returns a fresh secret in the Standard Webhooks form:
// SecretPrefix and 32 random bytes in standard base64.
func NewSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("webhook: new secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:]), nil
}

// Len is the key's length in bytes.
func (s Secret) Len() int { return len(s.key) }

// String returns "REDACTED".
func (Secret) String() string { return redacted }

// Format writes "REDACTED" whatever the verb.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue logs the secret as "REDACTED".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// mac is the HMAC-SHA256 of "{msgID}.{ts}.{body}".
func (s Secret) mac(msgID string, ts int64, body []byte) [sha256.Size]byte {
	h := hmac.New(sha256.New, s.key)
	var b [24]byte
	h.Write([]byte(msgID))
	h.Write(strconv.AppendInt(append(b[:0], '.'), ts, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// Sign returns the v1 signature of a message sent at ts:
// "v1,<base64 of HMAC-SHA256(key, msgID.unix-seconds.body)>", the value
// of the webhook-signature header.
func (s Secret) Sign(msgID string, ts time.Time, body []byte) string {
	sum := s.mac(msgID, ts.Unix(), body)
	var b [3 + 44]byte // "v1," and the base64 of 32 bytes
	copy(b[:], "v1,")
	base64.StdEncoding.Encode(b[3:], sum[:])
	return string(b[:])
}

// Verify checks a received message: its headers are present, its
// timestamp is within tolerance of now (either way; tolerance <= 0 means
// DefaultTolerance), and one of the v1 signatures of webhook-signature
// (other versions are skipped) is the message's, compared in constant
// time. body must be the raw bytes received, not a re-encoding.
func (s Secret) Verify(h http.Header, body []byte, tolerance time.Duration) error {
	return s.verify(h, body, tolerance, time.Now())
}

func (s Secret) verify(h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	id, tsv, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsv == "" || sigs == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(tsv, 10, 64)
	if err != nil {
		return ErrInvalidTimestamp
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	tol := int64(tolerance / time.Second)
	switch n := now.Unix(); {
	case ts < n-tol:
		return ErrTimestampTooOld
	case ts > n+tol:
		return ErrTimestampTooNew
	}
	want := s.mac(id, ts, body)
	var got [sha256.Size + 2]byte // room to notice a longer value
	for sig := range strings.FieldsSeq(sigs) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" || base64.StdEncoding.DecodedLen(len(b64)) > len(got) {
			continue
		}
		n, err := base64.StdEncoding.Decode(got[:], []byte(b64))
		if err == nil && hmac.Equal(got[:n], want[:]) {
			return nil
		}
	}
	return ErrNoMatchingSignature
}

// Verify checks a received message with secret (as ParseSecret reads
// it); see Secret.Verify. Receivers and tests use it:
//
//	body, _ := io.ReadAll(r.Body)
//	if err := webhook.Verify(secret, r.Header, body, 5*time.Minute); err != nil {
//		http.Error(w, "bad signature", http.StatusUnauthorized)
//		return
//	}
func Verify(secret string, h http.Header, body []byte, tolerance time.Duration) error {
	s, err := ParseSecret(secret)
	if err != nil {
		return err
	}
	return s.Verify(h, body, tolerance)
}
