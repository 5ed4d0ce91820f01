package ledger

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func testEvent() *Event {
	return &Event{
		ID:      "01936b2e-8f4a-7c3d-9e2f-0123456789ab",
		Tenant:  "acme",
		Kind:    KindRequest,
		Time:    time.Date(2026, 11, 27, 7, 43, 40, 123456789, time.UTC),
		Actor:   Actor{KeyID: "key_1", AgentID: "agent-7"},
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		Policy:  "sha256:abc",
		Attrs:   map[string]any{"model": "gpt-4o", "tokens": 12, "z": []any{1.5, "<&>"}, "a": nil},
	}
}

func TestEntryGolden(t *testing.T) {
	ev := testEvent()
	ev.PayloadSHA256, _ = Commit([]byte("hello"), make([]byte, SaltSize))
	got, err := ev.Entry()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"actor":{"agent_id":"agent-7","key_id":"key_1"},"attrs":{"a":null,"model":"gpt-4o","tokens":12,"z":[1.5,"<&>"]},` +
		`"id":"01936b2e-8f4a-7c3d-9e2f-0123456789ab","kind":"request",` +
		`"payload_sha256":"` + ev.PayloadSHA256 + `","policy":"sha256:abc","tenant":"acme",` +
		`"time":"2026-11-27T07:43:40.123456Z","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","v":1}`
	if string(got) != want {
		t.Errorf("Entry() =\n%s\nwant\n%s", got, want)
	}
	back, err := ParseEntry(got)
	if err != nil {
		t.Fatalf("ParseEntry(Entry()) = %v", err)
	}
	again, _ := back.Entry()
	if string(again) != want {
		t.Errorf("round trip changed the entry:\n%s", again)
	}
}

func TestEntryMinimal(t *testing.T) {
	ev := &Event{ID: NewEventID(), Tenant: "system", Kind: KindKey, Time: time.Unix(1800000000, 0)}
	got, err := ev.Entry()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"` + ev.ID + `","kind":"key","tenant":"system","time":"2027-01-15T08:00:00.000000Z","v":1}`
	if string(got) != want {
		t.Errorf("Entry() = %s, want %s", got, want)
	}
}

func TestEventRejected(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Event)
		field string
	}{
		{"IDNotV7", func(e *Event) { e.ID = "6ba7b810-9dad-41d1-80b4-00c04fd430c8" }, "id"},
		{"IDUpper", func(e *Event) { e.ID = strings.ToUpper(e.ID) }, "id"},
		{"TenantEmpty", func(e *Event) { e.Tenant = "" }, "tenant"},
		{"TenantSlash", func(e *Event) { e.Tenant = "a/b" }, "tenant"},
		{"TenantUpper", func(e *Event) { e.Tenant = "Acme" }, "tenant"},
		{"KindSpace", func(e *Event) { e.Kind = "tool call" }, "kind"},
		{"NoTime", func(e *Event) { e.Time = time.Time{} }, "time"},
		{"TraceShort", func(e *Event) { e.TraceID = "abc" }, "trace_id"},
		{"BadCommitment", func(e *Event) { e.PayloadSHA256 = "zz" }, "payload_sha256"},
		{"ControlInPolicy", func(e *Event) { e.Policy = "a\nb" }, "policy"},
		{"HugeInteger", func(e *Event) { e.Attrs = map[string]any{"n": uint64(1) << 60} }, "attrs"},
		{"InvalidUTF8", func(e *Event) { e.Attrs = map[string]any{"s": "\xff"} }, ""},
		{"TooLarge", func(e *Event) { e.Attrs = map[string]any{"s": strings.Repeat("x", MaxEntrySize)} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := testEvent()
			tc.edit(ev)
			_, err := ev.Entry()
			var ee *EventError
			if !errors.As(err, &ee) || !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("Entry() error = %v, want *EventError", err)
			}
			if tc.field != "" && ee.Field != tc.field {
				t.Errorf("field = %q, want %q (%v)", ee.Field, tc.field, err)
			}
		})
	}
}

func TestParseEntryRejectsNonCanonical(t *testing.T) {
	good, err := testEvent().Entry()
	if err != nil {
		t.Fatal(err)
	}
	s := string(good)
	for name, bad := range map[string]string{
		"Empty":          "",
		"NotJSON":        "hello",
		"Spaces":         strings.Replace(s, `"kind":"request"`, `"kind": "request"`, 1),
		"Reordered":      `{"v":1,` + strings.TrimPrefix(strings.TrimSuffix(s, `,"v":1}`), "{") + "}",
		"UnknownField":   strings.Replace(s, `"v":1}`, `"v":1,"x":1}`, 1),
		"Version2":       strings.Replace(s, `"v":1}`, `"v":2}`, 1),
		"TimeNoMicros":   strings.Replace(s, "07:43:40.123456Z", "07:43:40Z", 1),
		"EscapedSlash":   strings.Replace(s, `sha256:abc`, `sha256:\u0061bc`, 1),
		"DuplicateAttrs": strings.Replace(s, `"attrs":{"a":null`, `"attrs":{"a":null,"a":null`, 1),
		"Trailing":       s + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseEntry([]byte(bad)); !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("ParseEntry accepted %q (err %v)", bad, err)
			}
		})
	}
}

func TestCommit(t *testing.T) {
	c1, salt := Commit([]byte("prompt"), nil)
	if len(salt) != SaltSize {
		t.Fatalf("salt is %d bytes", len(salt))
	}
	c2, _ := Commit([]byte("prompt"), salt)
	c3, _ := Commit([]byte("prompt"), nil)
	if c1 != c2 {
		t.Error("same salt and payload gave different commitments")
	}
	if c1 == c3 {
		t.Error("fresh salts gave the same commitment")
	}
}

func BenchmarkEntry(b *testing.B) {
	ev := testEvent()
	ev.Attrs["padding"] = strings.Repeat("0123456789abcdef", 48)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ev.Entry(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEntry(b *testing.B) {
	ev := testEvent()
	ev.Attrs["padding"] = strings.Repeat("0123456789abcdef", 48)
	e, _ := ev.Entry()
	b.SetBytes(int64(len(e)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEntry(e); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAttrsEncoderMatchesCanonicalize: the direct attribute encoder gives
// exactly what encoding/json followed by Canonicalize gives.
func TestAttrsEncoderMatchesCanonicalize(t *testing.T) {
	for _, m := range []map[string]any{
		{"a": 1, "b": -2.5, "c": 1e21, "d": 1e-7, "e": "x\"y\\z\n\u2028<&>", "f": nil, "g": true, "h": false},
		{"nested": map[string]any{"z": []any{1, "two", 3.0, nil, map[string]any{"k": "v"}}, "a": []string{"p", "q"}}},
		{"\u00e9": 1, "e": 2, "\U0001F600": 3, "\uff61": 4, "": 5},
		{"i64": int64(1) << 52, "u64": uint64(12345), "i32": int32(-7), "num": json.Number("4.50"), "raw": json.RawMessage(`{"b":1,"a":2}`)},
		{"struct": struct {
			A int    `json:"a"`
			B string `json:"b"`
		}{1, "x"}},
	} {
		got, err := appendAttrs(nil, m, 1)
		if err != nil {
			t.Fatalf("appendAttrs(%v) = %v", m, err)
		}
		raw, err := marshalNoEscape(m)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Canonicalize(raw)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("appendAttrs = %s\nCanonicalize(json) = %s", got, want)
		}
	}
	for _, bad := range []map[string]any{{"n": int64(1) << 60}, {"n": uint64(1) << 60}, {"s": "\xff"}, {"\xff": 1}} {
		if got, err := appendAttrs(nil, bad, 1); err == nil {
			t.Errorf("appendAttrs(%v) = %s, want an error", bad, got)
		}
	}
}
