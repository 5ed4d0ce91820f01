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
	"unicode/utf8"

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
	// RawAttrs, when not nil, replaces Attrs: a JSON object, canonicalized
	// when the entry is built. It is cheaper than Attrs on hot paths, and it
	// is what ParseEntry returns.
	RawAttrs []byte
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
func ValidLogName(s string) bool { return isLogName([]byte(s)) }

func validKind(s string) bool { return isKind([]byte(s)) }

func validHex(s string, n int) bool { return isLowerHex([]byte(s), n) }

// ValidEventID reports whether s is a UUIDv7 in canonical lowercase form.
func ValidEventID(s string) bool { return isEventID([]byte(s)) }

const maxTextField = 256

// CheckText reports whether s can be a free-text field of an event (actor
// ids, policy): at most the field limit, no control or invalid characters.
func CheckText(field, s string) error { return validText(field, s) }

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
	if err := validText("actor.key_id", ev.Actor.KeyID); err != nil {
		return err
	}
	if err := validText("actor.agent_id", ev.Actor.AgentID); err != nil {
		return err
	}
	return validText("policy", ev.Policy)
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
	return ev.AppendEntry(make([]byte, 0, 256+len(ev.RawAttrs)))
}

// AppendEntry appends the entry (see [Event.Entry]) to dst.
func (ev *Event) AppendEntry(dst []byte) ([]byte, error) {
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	base := len(dst)
	out := append(dst, '{')
	var err error
	if ev.Actor.AgentID != "" || ev.Actor.KeyID != "" {
		out = append(out, `"actor":{`...)
		if ev.Actor.AgentID != "" {
			out = append(out, `"agent_id":`...)
			out, _ = appendString(out, ev.Actor.AgentID) // validated above
			if ev.Actor.KeyID != "" {
				out = append(out, ',')
			}
		}
		if ev.Actor.KeyID != "" {
			out = append(out, `"key_id":`...)
			out, _ = appendString(out, ev.Actor.KeyID)
		}
		out = append(out, "},"...)
	}
	switch {
	case ev.RawAttrs != nil:
		mark := len(out)
		out = append(out, `"attrs":`...)
		valStart := len(out)
		if out, err = AppendCanonical(out, ev.RawAttrs); err != nil {
			return nil, badField("attrs", "%v", err)
		}
		switch {
		case out[valStart] != '{':
			return nil, badField("attrs", "must be a JSON object")
		case len(out)-valStart == 2: // {} is omitted
			out = out[:mark]
		default:
			out = append(out, ',')
		}
	case len(ev.Attrs) > 0:
		out = append(out, `"attrs":`...)
		if out, err = appendAttrs(out, ev.Attrs, 1); err != nil {
			return nil, badField("attrs", "%v", err)
		}
		out = append(out, ',')
	}
	out = append(out, `"id":"`...)
	out = append(out, ev.ID...)
	out = append(out, `","kind":"`...)
	out = append(out, ev.Kind...)
	out = append(out, `",`...)
	if ev.PayloadSHA256 != "" {
		out = append(out, `"payload_sha256":"`...)
		out = append(out, ev.PayloadSHA256...)
		out = append(out, `",`...)
	}
	if ev.Policy != "" {
		out = append(out, `"policy":`...)
		out, _ = appendString(out, ev.Policy)
		out = append(out, ',')
	}
	out = append(out, `"tenant":"`...)
	out = append(out, ev.Tenant...)
	out = append(out, `","time":"`...)
	out = ev.Time.UTC().AppendFormat(out, TimeFormat)
	out = append(out, `",`...)
	if ev.TraceID != "" {
		out = append(out, `"trace_id":"`...)
		out = append(out, ev.TraceID...)
		out = append(out, `",`...)
	}
	out = append(out, `"v":`+strconv.Itoa(EntryVersion)+`}`...)
	if n := len(out) - base; n > MaxEntrySize {
		return nil, &EventError{Reason: fmt.Sprintf("entry is %d bytes, over the %d-byte limit (put large data in the payload)", n, MaxEntrySize)}
	}
	return out, nil
}

// checkJSONStrings refuses strings that encoding/json would silently alter
// (invalid UTF-8 becomes U+FFFD) anywhere in v.
func checkJSONStrings(v any, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested deeper than %d", maxDepth)
	}
	switch t := v.(type) {
	case string:
		if !utf8.ValidString(t) {
			return errors.New("string is not valid UTF-8")
		}
	case map[string]any:
		for k, e := range t {
			if !utf8.ValidString(k) {
				return errors.New("key is not valid UTF-8")
			}
			if err := checkJSONStrings(e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range t {
			if err := checkJSONStrings(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
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

// DecodeAttrs decodes the event's attributes (from RawAttrs when set), with
// numbers as json.Number.
func (ev *Event) DecodeAttrs() (map[string]any, error) {
	if ev.RawAttrs == nil {
		return ev.Attrs, nil
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(ev.RawAttrs))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// ParseEntry decodes and validates an entry. It accepts only the exact
// canonical bytes that [Event.Entry] produces for the decoded event, so one
// event has one entry and one leaf hash. The returned event carries its
// attributes as RawAttrs (canonical JSON); [Event.DecodeAttrs] decodes them.
func ParseEntry(entry []byte) (*Event, error) {
	if len(entry) == 0 {
		return nil, &EventError{Reason: "empty entry"}
	}
	if len(entry) > MaxEntrySize {
		return nil, &EventError{Reason: fmt.Sprintf("entry is %d bytes, over the %d-byte limit", len(entry), MaxEntrySize)}
	}
	p := canonParser{s: entry, out: make([]byte, 0, len(entry))}
	if p.s[0] != '{' {
		return nil, &EventError{Reason: "entry is not a JSON object"}
	}
	// Canonical top level: {"k":v,...} with no white space. Walk it member
	// by member, canonicalizing each value into p.out to find its extent.
	ev := &Event{}
	p.i = 1
	var version string
	var prev []byte
	for first := true; ; first = false {
		if p.i >= len(entry) {
			return nil, &EventError{Reason: "truncated entry"}
		}
		if entry[p.i] == '}' && first {
			return nil, &EventError{Reason: "empty entry object"}
		}
		if entry[p.i] != '"' {
			return nil, &EventError{Reason: "entry is not in canonical form"}
		}
		kb, err := p.str()
		if err != nil {
			return nil, &EventError{Reason: err.Error()}
		}
		key := string(kb)
		if !first && !lessUTF16(prev, kb) {
			return nil, &EventError{Reason: "entry members are not in canonical order"}
		}
		prev = kb
		if p.i >= len(entry) || entry[p.i] != ':' {
			return nil, &EventError{Reason: "entry is not in canonical form"}
		}
		p.i++
		vs := p.i
		if err := p.value(1); err != nil {
			return nil, &EventError{Reason: err.Error()}
		}
		val := entry[vs:p.i]
		switch key {
		case "actor":
			var a Actor
			if err := strictUnmarshal(val, &a); err != nil {
				return nil, badField("actor", "%v", err)
			}
			ev.Actor = a
		case "attrs":
			ev.RawAttrs = val
		case "id":
			ev.ID, err = jsonStringField(key, val)
		case "kind":
			ev.Kind, err = jsonStringField(key, val)
		case "payload_sha256":
			ev.PayloadSHA256, err = jsonStringField(key, val)
		case "policy":
			ev.Policy, err = jsonStringField(key, val)
		case "tenant":
			ev.Tenant, err = jsonStringField(key, val)
		case "time":
			var ts string
			if ts, err = jsonStringField(key, val); err == nil {
				if ev.Time, err = time.Parse(TimeFormat, ts); err != nil {
					err = badField("time", "want %s, got %q", TimeFormat, ts)
				}
			}
		case "trace_id":
			ev.TraceID, err = jsonStringField(key, val)
		case "v":
			version = string(val)
		default:
			return nil, badField(key, "unknown member")
		}
		if err != nil {
			return nil, err
		}
		if p.i >= len(entry) {
			return nil, &EventError{Reason: "truncated entry"}
		}
		if entry[p.i] == '}' {
			p.i++
			break
		}
		if entry[p.i] != ',' {
			return nil, &EventError{Reason: "entry is not in canonical form"}
		}
		p.i++
	}
	if p.i != len(entry) {
		return nil, &EventError{Reason: "trailing bytes after the entry object"}
	}
	if version != strconv.Itoa(EntryVersion) {
		return nil, badField("v", "unsupported entry version %q", version)
	}
	// Re-encode and compare: the one definition of canonical is Entry itself.
	again, err := ev.AppendEntry(p.out[:0])
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, entry) {
		return nil, &EventError{Reason: "entry is not in canonical form (RFC 8785, members as FORMATS.md lists them)"}
	}
	return ev, nil
}

func jsonStringField(key string, val []byte) (string, error) {
	if len(val) < 2 || val[0] != '"' {
		return "", badField(key, "must be a string")
	}
	var s string
	if bytes.IndexByte(val, '\\') < 0 {
		s = string(val[1 : len(val)-1])
	} else if err := json.Unmarshal(val, &s); err != nil {
		return "", badField(key, "%v", err)
	}
	return s, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
