package evidence

import (
	"encoding/json"
	"testing"
	"time"

	"aigw/ledger"
)

// checkFields compares parseFields with encoding/json on an entry.
func checkFields(t *testing.T, e []byte) {
	t.Helper()
	var want struct {
		ID      string          `json:"id"`
		Kind    string          `json:"kind"`
		Time    string          `json:"time"`
		TraceID string          `json:"trace_id"`
		Policy  string          `json:"policy"`
		Attrs   json.RawMessage `json:"attrs"`
		Actor   json.RawMessage `json:"actor"`
	}
	if err := json.Unmarshal(e, &want); err != nil {
		t.Fatal(err)
	}
	f := parseFields(e)
	if string(f.id) != want.ID || string(f.kind) != want.Kind || string(f.time) != want.Time ||
		string(f.traceID) != want.TraceID || unquote(f.policy) != want.Policy {
		t.Errorf("entry %s:\nparsed id=%q kind=%q time=%q trace=%q policy=%q", e, f.id, f.kind, f.time, f.traceID, unquote(f.policy))
	}
	if string(f.attrs) != string(want.Attrs) {
		t.Errorf("entry %s: attrs %q, want %q", e, f.attrs, want.Attrs)
	}
	if string(f.actor) != string(want.Actor) {
		t.Errorf("entry %s: actor %q, want %q", e, f.actor, want.Actor)
	}
}

func TestParseFields(t *testing.T) {
	at := time.Date(2026, 11, 27, 1, 2, 3, 456789000, time.UTC)
	for _, ev := range []ledger.Event{
		{Kind: "request"},
		{Kind: "response", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Policy: "v1", PayloadSHA256: "5e0c5e0c5e0c5e0c5e0c5e0c5e0c5e0c5e0c5e0c5e0c5e0c5e0c5e0c5e0c5e0c"},
		{Kind: "admin", Actor: ledger.Actor{KeyID: "admin"}, Attrs: map[string]any{"id": "x", "kind": "nested", "policy": "p", "time": "t", "tenant": "other", "v": 1}},
		{Kind: "error", Actor: ledger.Actor{AgentID: `a"},"x":{`, KeyID: `k\"`}, Policy: `pol "quoted" \ and },"tenant":"x"`, Attrs: map[string]any{"status": 403, "nested": map[string]any{"id": "inner"}}},
		{Kind: "tool_call.v2", Policy: `\`, TraceID: "00000000000000000000000000000001"},
		{Kind: "x", Policy: `ends with backslash \\`},
	} {
		ev.ID = "019a3c00-0000-7000-8000-000000000001"
		ev.Tenant = "acme"
		ev.Time = at
		e, err := ev.Entry()
		if err != nil {
			t.Fatal(err)
		}
		checkFields(t, e)
		if _, _, ok := parseTail(e); !ok {
			t.Errorf("entry %s: not read by the fast path", e)
		}
	}
}

func FuzzParseFields(f *testing.F) {
	f.Add("request", "key", "agent", "policy", `{"a":1}`, true)
	f.Add("x.y_z", `k"`, `},"id":"`, `p\"`, `{"id":"q","kind":"r"}`, false)
	f.Fuzz(func(t *testing.T, kind, key, agent, policy, attrs string, trace bool) {
		ev := ledger.Event{ID: "019a3c00-0000-7000-8000-000000000001", Tenant: "acme", Kind: kind, Time: time.Unix(1e9, 0),
			Actor: ledger.Actor{KeyID: key, AgentID: agent}, Policy: policy, RawAttrs: []byte(attrs)}
		if trace {
			ev.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		}
		e, err := ev.Entry()
		if err != nil {
			return
		}
		checkFields(t, e)
	})
}

func TestMicros(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 11, 27, 1, 2, 3, 456789000, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 23, 59, 59, 999999000, time.UTC),
		time.Date(2100, 3, 1, 12, 0, 0, 1000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
	} {
		got, ok := micros([]byte(tm.Format(ledger.TimeFormat)))
		if !ok || got != tm.UnixMicro() {
			t.Errorf("%s: %d %v, want %d", tm, got, ok, tm.UnixMicro())
		}
	}
	if _, ok := micros([]byte("2026-11-27 01:02:03.456789Z")); ok {
		t.Error("a malformed time parsed")
	}
}
