package ledger

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// EntryVersion is the value of the "v" member of every entry this package writes.
const EntryVersion = 1

// MaxEntrySize is the largest entry, in bytes, that a log accepts. C2SP
// tlog-tiles entry bundles prefix each entry with a 16-bit length, so no entry
// can be larger; payloads live beside the entry and are not limited by it.
//
// SPEC: https://c2sp.org/tlog-tiles#log-entries
const MaxEntrySize = 1<<16 - 1

// SaltSize is the size of the random salt mixed into a payload commitment.
const SaltSize = 32

// SystemLog is the name of the log that holds admin and key events.
const SystemLog = "system"

// Core event kinds. The set is open: any kind matching [a-z][a-z0-9_.]{0,63}
// is accepted; these are the ones aigw itself writes and FORMATS.md documents.
const (
	KindRequest    = "request"
	KindRoute      = "route"
	KindAttempt    = "attempt"
	KindGuardrail  = "guardrail"
	KindResponse   = "response"
	KindError      = "error"
	KindToolCall   = "tool_call"
	KindDelegation = "delegation"
	KindApproval   = "approval"
	KindAdmin      = "admin"
	KindKey        = "key"
	KindErasure    = "erasure"
)

// Actor says who caused an event: the gateway key and, when known, the agent.
type Actor struct {
	KeyID   string `json:"key_id,omitempty"`
	AgentID string `json:"agent_id,omitempty"`
}

// Event is one audit record before it is sequenced. Its canonical encoding
// ([Event.Entry]) is what a log stores and hashes.
type Event struct {
	// ID is a UUIDv7 in its canonical lowercase text form. It is unique per
	// log: an event appended twice (a redelivery, a producer retry) is stored once.
	ID string
	// Tenant names the log the event belongs to ([SystemLog] for admin and key events).
	Tenant string
	// Kind is one of the Kind constants or another lowercase identifier.
	Kind string
	// Time is when the event happened; it is stored in UTC with microsecond precision.
	// Order in a log comes from the index, never from Time.
	Time time.Time
	// Actor is who caused the event.
	Actor Actor
	// TraceID ties together the events of one call (32 lowercase hex digits, W3C trace-context).
	TraceID string
	// Policy references the policy version in force (opaque, e.g. a hash).
	Policy string
	// Attrs holds kind-specific attributes. Values must be JSON-encodable;
	// integers beyond ±2^53 must be strings.
	Attrs map[string]any
	// PayloadSHA256 is the hex SHA-256 commitment to the payload stored
	// beside the entry (see [Commit]); empty when the event has no payload.
	PayloadSHA256 string
}

// NewEventID returns a new UUIDv7 event id.
func NewEventID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// Commit returns the salted commitment to a payload, SHA-256(salt ‖ payload),
// as lowercase hex, and the salt it used (fresh random bytes when salt is nil).
// The salt is stored with the payload, not in the entry, so that once both are
// erased nothing links the entry to the payload's content.
func Commit(payload, salt []byte) (commitment string, usedSalt []byte) {
	if salt == nil {
		salt = make([]byte, SaltSize)
		if _, err := io.ReadFull(rand.Reader, salt); err != nil {
			panic("ledger: reading random salt: " + err.Error())
		}
	}
	h := sha256.New()
	h.Write(salt)
	h.Write(payload)
	return hex.EncodeToString(h.Sum(nil)), salt
}

// EventError says why an event or entry was refused.
type EventError struct {
	Field  string
	Reason string
}

func (e *EventError) Error() string {
	if e.Field == "" {
		return "invalid event: " + e.Reason
	}
	return "invalid event: " + e.Field + ": " + e.Reason
}

// ErrInvalidEvent is matched by every *EventError with errors.Is.
var ErrInvalidEvent = errors.New("invalid event")

func (e *EventError) Is(target error) bool { return target == ErrInvalidEvent }

func badField(field, format string, args ...any) error {
	return &EventError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ValidLogName reports whether s can name a log (a tenant): 1 to 63
// characters of [a-z0-9_-], starting with a letter or digit.
func ValidLogName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

func validKind(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func validHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidEventID reports whether s is a UUIDv7 in canonical lowercase form.
func ValidEventID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	// version nibble 7, variant 10xx
	return s[14] == '7' && (s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b')
}

const maxTextField = 256

func validText(field, s string) error {
	if len(s) > maxTextField {
		return badField(field, "longer than %d bytes", maxTextField)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return badField(field, "contains a control or invalid character")
		}
	}
	return nil
}

// Validate checks the event's fields. It does not check the size of the
// encoded entry; [Event.Entry] does.
func (ev *Event) Validate() error {
	if !ValidEventID(ev.ID) {
		return badField("id", "%q is not a lowercase UUIDv7", ev.ID)
	}
	if !ValidLogName(ev.Tenant) {
		return badField("tenant", "%q is not a valid log name ([a-z0-9][a-z0-9_-]{0,62})", ev.Tenant)
	}
	if !validKind(ev.Kind) {
		return badField("kind", "%q is not a valid kind ([a-z][a-z0-9_.]{0,63})", ev.Kind)
	}
	if ev.Time.IsZero() {
		return badField("time", "missing")
	}
	if y := ev.Time.UTC().Year(); y < 2000 || y > 9999 {
		return badField("time", "year %d out of range", y)
	}
	if ev.TraceID != "" && !validHex(ev.TraceID, 32) {
		return badField("trace_id", "must be 32 lowercase hex digits")
	}
	if ev.PayloadSHA256 != "" && !validHex(ev.PayloadSHA256, 64) {
		return badField("payload_sha256", "must be 64 lowercase hex digits")
	}
	for field, s := range map[string]string{"actor.key_id": ev.Actor.KeyID, "actor.agent_id": ev.Actor.AgentID, "policy": ev.Policy} {
		if err := validText(field, s); err != nil {
			return err
		}
	}
	return nil
}

// TimeFormat is the layout of the "time" member: UTC, always six fractional digits.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// Entry validates the event and returns its canonical entry bytes: RFC 8785
// JSON of the members below, in this (sorted) order, empty optional members
// omitted:
//
//	{"actor":{"agent_id":..,"key_id":..},"attrs":{..},"id":..,"kind":..,
//	 "payload_sha256":..,"policy":..,"tenant":..,"time":..,"trace_id":..,"v":1}
func (ev *Event) Entry() ([]byte, error) {
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(256)
	buf.WriteByte('{')
	if ev.Actor.AgentID != "" || ev.Actor.KeyID != "" {
		buf.WriteString(`"actor":{`)
		if ev.Actor.AgentID != "" {
			buf.WriteString(`"agent_id":`)
			writeString(&buf, ev.Actor.AgentID)
			if ev.Actor.KeyID != "" {
				buf.WriteByte(',')
			}
		}
		if ev.Actor.KeyID != "" {
			buf.WriteString(`"key_id":`)
			writeString(&buf, ev.Actor.KeyID)
		}
		buf.WriteString("},")
	}
	if len(ev.Attrs) > 0 {
		raw, err := marshalNoEscape(ev.Attrs)
		if err != nil {
			return nil, badField("attrs", "%v", err)
		}
		canon, err := Canonicalize(raw)
		if err != nil {
			return nil, badField("attrs", "%v", err)
		}
		buf.WriteString(`"attrs":`)
		buf.Write(canon)
		buf.WriteByte(',')
	}
	buf.WriteString(`"id":"`)
	buf.WriteString(ev.ID)
	buf.WriteString(`","kind":"`)
	buf.WriteString(ev.Kind)
	buf.WriteString(`",`)
	if ev.PayloadSHA256 != "" {
		buf.WriteString(`"payload_sha256":"`)
		buf.WriteString(ev.PayloadSHA256)
		buf.WriteString(`",`)
	}
	if ev.Policy != "" {
		buf.WriteString(`"policy":`)
		writeString(&buf, ev.Policy)
		buf.WriteByte(',')
	}
	buf.WriteString(`"tenant":"`)
	buf.WriteString(ev.Tenant)
	buf.WriteString(`","time":"`)
	buf.WriteString(ev.Time.UTC().Format(TimeFormat))
	buf.WriteString(`",`)
	if ev.TraceID != "" {
		buf.WriteString(`"trace_id":"`)
		buf.WriteString(ev.TraceID)
		buf.WriteString(`",`)
	}
	buf.WriteString(`"v":` + strconv.Itoa(EntryVersion) + `}`)
	if buf.Len() > MaxEntrySize {
		return nil, &EventError{Reason: fmt.Sprintf("entry is %d bytes, over the %d-byte limit (put large data in the payload)", buf.Len(), MaxEntrySize)}
	}
	return buf.Bytes(), nil
}

func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// wireEvent is the JSON shape of an entry, for decoding.
type wireEvent struct {
	V             *int            `json:"v"`
	ID            string          `json:"id"`
	Tenant        string          `json:"tenant"`
	Kind          string          `json:"kind"`
	Time          string          `json:"time"`
	Actor         *Actor          `json:"actor"`
	TraceID       string          `json:"trace_id"`
	Policy        string          `json:"policy"`
	Attrs         json.RawMessage `json:"attrs"`
	PayloadSHA256 string          `json:"payload_sha256"`
}

// ParseEntry decodes and validates an entry. It accepts only the exact
// canonical bytes that [Event.Entry] produces for the decoded event, so one
// event has one entry and one leaf hash.
func ParseEntry(entry []byte) (*Event, error) {
	if len(entry) == 0 {
		return nil, &EventError{Reason: "empty entry"}
	}
	if len(entry) > MaxEntrySize {
		return nil, &EventError{Reason: fmt.Sprintf("entry is %d bytes, over the %d-byte limit", len(entry), MaxEntrySize)}
	}
	dec := json.NewDecoder(bytes.NewReader(entry))
	dec.DisallowUnknownFields()
	var w wireEvent
	if err := dec.Decode(&w); err != nil {
		return nil, &EventError{Reason: "not a JSON event object: " + err.Error()}
	}
	if w.V == nil || *w.V != EntryVersion {
		return nil, badField("v", "unsupported entry version")
	}
	t, err := time.Parse(TimeFormat, w.Time)
	if err != nil {
		return nil, badField("time", "want %s, got %q", TimeFormat, w.Time)
	}
	ev := &Event{ID: w.ID, Tenant: w.Tenant, Kind: w.Kind, Time: t, TraceID: w.TraceID, Policy: w.Policy, PayloadSHA256: w.PayloadSHA256}
	if w.Actor != nil {
		ev.Actor = *w.Actor
	}
	if len(w.Attrs) > 0 {
		d := json.NewDecoder(bytes.NewReader(w.Attrs))
		d.UseNumber()
		if err := d.Decode(&ev.Attrs); err != nil {
			return nil, badField("attrs", "must be an object: %v", err)
		}
		if ev.Attrs == nil {
			return nil, badField("attrs", "must be an object")
		}
	}
	again, err := ev.Entry()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, entry) {
		return nil, &EventError{Reason: "entry is not in canonical form (RFC 8785, members as FORMATS.md lists them)"}
	}
	return ev, nil
}
