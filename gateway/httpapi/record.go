package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"aigw/gateway"
	"aigw/ledger"
)

// recordTimeout bounds the wait for the ledger's acknowledgement of an
// event recorded outside a call.
const recordTimeout = 5 * time.Second

// recordEvent writes ev, one event of any kind in any log, with its payload
// (nil: none), and waits for the ledger's acknowledgement. It sets ev's ID
// and Time when unset. An event the ledger would refuse (too large, a field
// it cannot hold) is answered 400 or 413 and never recorded, even
// fail-open; an outage is answered 503 ledger_unavailable unless failOpen,
// when it is logged and nil returned.
func recordEvent(ctx context.Context, rec gateway.Recorder, failOpen bool, lg *slog.Logger, ev *ledger.Event, payload []byte) error {
	if ev.ID == "" {
		ev.ID = ledger.NewEventID()
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC().Truncate(time.Microsecond)
	}
	if _, err := ev.Entry(); err != nil {
		return &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "invalid_record",
			Message: "The ledger cannot record this: " + truncate(err.Error(), 300) + ".", Err: err}
	}
	var err error
	if hc, ok := rec.(gateway.HealthChecker); ok && !failOpen {
		err = hc.Healthy()
	}
	if err == nil {
		var pend gateway.Pending
		if pend, err = rec.Publish([]*ledger.Event{ev}, [][]byte{payload}); err == nil {
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
			defer cancel()
			err = pend.Wait(wctx)
		}
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, ledger.ErrInvalidEvent) {
		return &gateway.Error{Status: http.StatusRequestEntityTooLarge, Type: gateway.TypeInvalidRequest, Code: "request_too_large",
			Message: "The ledger cannot take this record: " + truncate(err.Error(), 300) + ".", Err: err}
	}
	lg.Error("event not recorded in the ledger", "log", ev.Tenant, "kind", ev.Kind, "event_id", ev.ID, "action", ev.Attrs["action"], "err", err)
	if failOpen {
		return nil
	}
	return &gateway.Error{Status: 503, Type: gateway.TypeUnavailable, Code: "ledger_unavailable", RetryAfter: time.Second,
		Message: "The audit ledger cannot record this change now; retry later.", Err: err}
}

// eventJSON is a recorded event as the API answers it.
type eventJSON struct {
	Object  string         `json:"object"`
	ID      string         `json:"id"`
	Log     string         `json:"log"`
	Kind    string         `json:"kind"`
	Time    time.Time      `json:"time"`
	TraceID string         `json:"trace_id,omitempty"`
	Actor   ledger.Actor   `json:"actor"`
	Attrs   map[string]any `json:"attrs"`
	// PayloadBytes is the size of the payload stored beside the entry.
	PayloadBytes *int `json:"payload_bytes,omitempty"`
}

func eventOut(ev *ledger.Event, payload []byte) eventJSON {
	out := eventJSON{Object: "ledger.event", ID: ev.ID, Log: ev.Tenant, Kind: ev.Kind, Time: ev.Time.UTC(), TraceID: ev.TraceID, Actor: ev.Actor, Attrs: ev.Attrs}
	if payload != nil {
		n := len(payload)
		out.PayloadBytes = &n
	}
	return out
}

// Limits on the fields of records.
const (
	maxShortText = 256     // names, titles, roles, ids: ledger.CheckText's limit
	maxLongText  = 8 << 10 // statements, reasons, descriptions, disclosure texts
	maxListItems = 100     // controls, related traces
	maxClockSkew = 5 * time.Minute
)

// form validates the fields of a request, keeping the first error.
type form struct{ err *gateway.Error }

func (f *form) fail(param, format string, args ...any) {
	if f.err == nil {
		f.err = &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "invalid_value", Param: param, Message: fmt.Sprintf(format, args...)}
	}
}

// present reports whether v is set, failing if it is required and not.
func (f *form) present(param, v string, required bool) bool {
	if strings.TrimSpace(v) != "" {
		return true
	}
	if required {
		f.fail(param, "Missing required parameter: '%s'.", param)
	} else if v != "" {
		f.fail(param, "Invalid '%s': only white space.", param)
	}
	return false
}

// short checks a short text: at most maxShortText bytes, no control
// characters (what the ledger records in its own text fields).
func (f *form) short(param, v string, required bool) {
	if !f.present(param, v, required) {
		return
	}
	if len(v) > maxShortText {
		f.fail(param, "Invalid '%s': at most %d bytes, got %d.", param, maxShortText, len(v))
	} else if ledger.CheckText(param, v) != nil {
		f.fail(param, "Invalid '%s': control characters are not allowed.", param)
	}
}

// long checks a longer text: at most maxLongText bytes, no control
// characters but line breaks and tabs.
func (f *form) long(param, v string, required bool) {
	if !f.present(param, v, required) {
		return
	}
	if len(v) > maxLongText {
		f.fail(param, "Invalid '%s': at most %d bytes, got %d.", param, maxLongText, len(v))
		return
	}
	for _, r := range v {
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' || r == 0x7f || r == utf8.RuneError {
			f.fail(param, "Invalid '%s': control characters other than line breaks and tabs are not allowed.", param)
			return
		}
	}
}

// oneOf checks a required value from a fixed set.
func (f *form) oneOf(param, v string, allowed ...string) {
	if !f.present(param, v, true) {
		return
	}
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	f.fail(param, "Invalid '%s': '%s'. Supported values are: '%s'.", param, truncate(v, 64), strings.Join(allowed, "', '"))
}

// time parses an RFC 3339 time; the zero time if absent.
func (f *form) time(param, v string, required bool) time.Time {
	if !f.present(param, v, required) {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		f.fail(param, "Invalid '%s': %q is not an RFC 3339 time (e.g. 2026-03-01T14:30:00Z).", param, truncate(v, 64))
		return time.Time{}
	}
	if y := t.UTC().Year(); y < 2000 || y > 9999 {
		f.fail(param, "Invalid '%s': year %d is out of range.", param, y)
		return time.Time{}
	}
	return t.UTC()
}

// past parses an RFC 3339 time that must not be in the future.
func (f *form) past(param, v string, required bool) time.Time {
	t := f.time(param, v, required)
	if !t.IsZero() && t.After(time.Now().Add(maxClockSkew)) {
		f.fail(param, "Invalid '%s': %s is in the future.", param, stamp(t))
	}
	return t
}

var (
	traceIDPattern = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
	tokenPattern   = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)
	idPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
)

// traceID checks a W3C trace id (32 hex digits, not all zero) and returns
// it in lowercase.
func (f *form) traceID(param, v string, required bool) string {
	if !f.present(param, v, required) {
		return ""
	}
	if !traceIDPattern.MatchString(v) || strings.Trim(v, "0") == "" {
		f.fail(param, "Invalid '%s': expected a W3C trace id (32 hex digits, not all zero).", param)
		return ""
	}
	return strings.ToLower(v)
}

// stamp formats a time for event attributes: RFC 3339, UTC.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// putText sets attrs[name] to v when v is not empty.
func putText(attrs map[string]any, name, v string) {
	if v != "" {
		attrs[name] = v
	}
}

// putTime sets attrs[name] to t (RFC 3339, UTC) when t is set.
func putTime(attrs map[string]any, name string, t time.Time) {
	if !t.IsZero() {
		attrs[name] = stamp(t)
	}
}
