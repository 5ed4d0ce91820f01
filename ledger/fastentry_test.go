package ledger

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func sampleEvents() []*Event {
	at := time.Date(2026, 11, 27, 7, 43, 40, 123456789, time.UTC)
	base := func() *Event {
		return &Event{ID: "01936b2e-8f4a-7c3d-9e2f-0123456789ab", Tenant: "acme", Kind: KindRequest, Time: at}
	}
	var out []*Event
	out = append(out, base())
	ev := base()
	ev.Actor = Actor{KeyID: "key_1"}
	out = append(out, ev)
	ev = base()
	ev.Actor = Actor{AgentID: "agent-7"}
	ev.Policy = "sha256:abc"
	out = append(out, ev)
	ev = base()
	ev.Actor = Actor{KeyID: "key_1", AgentID: "agent-7"}
	ev.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ev.PayloadSHA256 = strings.Repeat("ab", 32)
	ev.Attrs = map[string]any{
		"model": "gpt-4o", "tokens": 12, "neg": -5, "zero": 0, "big": int64(999999999999999), "cost": 0.0125,
		"tiny": 1e-7, "huge": 1e21, "third": 1.0 / 3, "ok": true, "no": false, "nil": nil,
		"list": []any{1, "a", []any{}, map[string]any{}}, "nested": map[string]any{"b": map[string]any{"c": []any{1.5}}},
		"": "empty key", "A": "upper sorts first", "<&>": "html",
	}
	out = append(out, ev)
	ev = base()
	ev.Time = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	ev.Kind = "x.y_z9"
	ev.Attrs = map[string]any{"max_safe": int64(1) << 53, "sixteen": int64(1234567890123456)}
	out = append(out, ev)
	return out
}

func TestFastEntryAcceptsWhatEntryWrites(t *testing.T) {
	for _, ev := range sampleEvents() {
		e, err := ev.Entry()
		if err != nil {
			t.Fatal(err)
		}
		f, ok := fastEntry(e)
		if !ok {
			t.Errorf("fastEntry(%s) = false; want true", e)
			continue
		}
		if string(f.id) != ev.ID || string(f.tenant) != ev.Tenant || string(f.payload) != ev.PayloadSHA256 {
			t.Errorf("fastEntry(%s) = %q %q %q", e, f.id, f.tenant, f.payload)
		}
		if _, err := ParseEntry(e); err != nil {
			t.Errorf("ParseEntry(%s) = %v", e, err)
		}
	}
}

func TestFastEntryDefersOutsideItsSubset(t *testing.T) {
	// Valid entries the fast path leaves to ParseEntry: they must still pass checkEntry.
	for _, attrs := range []map[string]any{
		{"name": "Zoë"},
		{"quote": `say "hi"`},
		{"nl": "a\nb"},
		{"del": "\x7f"},
	} {
		ev := sampleEvents()[0]
		ev.Attrs = attrs
		e, err := ev.Entry()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fastEntry(e); ok {
			t.Errorf("fastEntry(%s) = true; want a fallback", e)
		}
		if _, err := checkEntryAcme(e); err != nil {
			t.Errorf("checkEntryAcme(%s) = %v", e, err)
		}
	}
	good, _ := sampleEvents()[0].Entry()
	deep := strings.Replace(string(good), `{"id"`, `{"attrs":`+strings.Repeat(`{"a":`, 40)+"1"+strings.Repeat("}", 40)+`,"id"`, 1)
	if _, ok := fastEntry([]byte(deep)); ok {
		t.Errorf("fastEntry(40 levels deep) = true; want a fallback")
	}
	if _, err := checkEntryAcme([]byte(deep)); err != nil {
		t.Errorf("checkEntryAcme(40 levels deep) = %v", err)
	}
}

func TestFastEntryRejectsNonCanonical(t *testing.T) {
	good, err := sampleEvents()[0].Entry()
	if err != nil {
		t.Fatal(err)
	}
	g := string(good)
	withAttrs := func(a string) string { return strings.Replace(g, `{"id"`, `{"attrs":`+a+`,"id"`, 1) }
	for name, e := range map[string]string{
		"EmptyAttrs":       withAttrs(`{}`),
		"NullAttrs":        withAttrs(`null`),
		"UnsortedKeys":     withAttrs(`{"b":1,"a":2}`),
		"DuplicateKeys":    withAttrs(`{"a":1,"a":2}`),
		"NegativeZero":     withAttrs(`{"a":-0}`),
		"TrailingZero":     withAttrs(`{"a":1.0}`),
		"Exponent":         withAttrs(`{"a":1e2}`),
		"UpperExponent":    withAttrs(`{"a":1E30}`),
		"BeyondMaxSafe":    withAttrs(`{"a":9007199254740993}`),
		"HugeInteger":      withAttrs(`{"a":12345678901234567890}`),
		"LeadingZero":      withAttrs(`{"a":01}`),
		"Whitespace":       withAttrs(`{"a": 1}`),
		"Escape":           withAttrs(`{"a":"\u0041"}`),
		"EmptyActor":       strings.Replace(g, `{"id"`, `{"actor":{},"id"`, 1),
		"EmptyAgent":       strings.Replace(g, `{"id"`, `{"actor":{"agent_id":""},"id"`, 1),
		"ActorKeysSwapped": strings.Replace(g, `{"id"`, `{"actor":{"key_id":"k","agent_id":"a"},"id"`, 1),
		"Version2":         strings.Replace(g, `"v":1}`, `"v":2}`, 1),
		"TrailingSpace":    g + " ",
		"TrailingValue":    g + "{}",
		"BadYear":          strings.Replace(g, `"2026-`, `"1999-`, 1),
		"BadDay":           strings.Replace(g, `-11-27T`, `-02-30T`, 1),
		"FiveFraction":     strings.Replace(g, `.123456Z`, `.12345Z`, 1),
		"UpperID":          strings.Replace(g, `01936b2e-8f4a`, `01936B2E-8f4a`, 1),
		"NotV7":            strings.Replace(g, `-7c3d-`, `-4c3d-`, 1),
		"BadTenant":        strings.Replace(g, `"tenant":"acme"`, `"tenant":"Acme"`, 1),
		"BadKind":          strings.Replace(g, `"kind":"request"`, `"kind":"Request"`, 1),
		"EmptyPolicy":      strings.Replace(g, `"tenant"`, `"policy":"","tenant"`, 1),
		"ShortTrace":       strings.Replace(g, `"v":1`, `"trace_id":"abc","v":1`, 1),
		"UnknownMember":    strings.Replace(g, `"v":1`, `"w":1,"v":1`, 1),
	} {
		if _, ok := fastEntry([]byte(e)); ok {
			t.Errorf("%s: fastEntry(%s) = true", name, e)
		}
		if _, err := ParseEntry([]byte(e)); err == nil {
			t.Errorf("%s: ParseEntry(%s) accepted it: the fixture is wrong", name, e)
		}
	}
}

// FuzzFastEntry checks that the fast path never accepts an entry that
// ParseEntry refuses, and agrees with it on the fields it returns.
func FuzzFastEntry(f *testing.F) {
	for _, ev := range sampleEvents() {
		e, _ := ev.Entry()
		f.Add(e)
	}
	f.Add([]byte(`{"attrs":{"a":1e21,"b":-0.5,"c":[1,2,{"d":null}]},"id":"01936b2e-8f4a-7c3d-9e2f-0123456789ab","kind":"k","tenant":"t","time":"2026-11-27T07:43:40.123456Z","v":1}`))
	f.Fuzz(func(t *testing.T, e []byte) {
		fe, ok := fastEntry(e)
		if !ok {
			return
		}
		ev, err := ParseEntry(e)
		if err != nil {
			t.Fatalf("fastEntry accepted %q, ParseEntry refused it: %v", e, err)
		}
		if string(fe.id) != ev.ID || string(fe.tenant) != ev.Tenant || string(fe.payload) != ev.PayloadSHA256 {
			t.Fatalf("fastEntry(%q) = %q %q %q; ParseEntry says %q %q %q", e, fe.id, fe.tenant, fe.payload, ev.ID, ev.Tenant, ev.PayloadSHA256)
		}
	})
}

func BenchmarkCheckEntry(b *testing.B) {
	ev := sampleEvents()[0]
	ev.Actor = Actor{KeyID: "key_0a1b2c3d", AgentID: "agent-invoice-reconciler"}
	ev.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ev.Policy = "sha256:9f2c7a1e0b6d4c3f"
	ev.Attrs = map[string]any{"model": "gpt-4o-2024-08-06", "provider": "openai", "status": 200, "latency_ms": 187, "stream": true,
		"tokens": map[string]any{"prompt": 812, "completion": 97}, "request": map[string]any{"method": "POST", "path": "/v1/chat/completions"}}
	realistic, _ := ev.Entry()
	floats, _ := sampleEvents()[3].Entry()
	for _, c := range []struct {
		name  string
		entry []byte
		check func([]byte) error
	}{
		{"realistic/fast", realistic, func(e []byte) error { _, err := checkEntryAcme(e); return err }},
		{"realistic/ParseEntry", realistic, func(e []byte) error { _, err := ParseEntry(e); return err }},
		{"floats/fast", floats, func(e []byte) error { _, err := checkEntryAcme(e); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.entry)))
			for b.Loop() {
				if err := c.check(c.entry); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestValidTimeAgreesWithTimeParse(t *testing.T) {
	for _, ts := range []string{
		"2026-11-27T07:43:40.123456Z", "2000-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z",
		"2024-02-29T12:00:00.000000Z", "2023-02-29T12:00:00.000000Z", "2100-02-29T12:00:00.000000Z", "2000-02-29T12:00:00.000000Z",
		"1999-12-31T23:59:59.999999Z", "2026-13-01T00:00:00.000000Z", "2026-00-01T00:00:00.000000Z", "2026-04-31T00:00:00.000000Z",
		"2026-04-00T00:00:00.000000Z", "2026-01-01T24:00:00.000000Z", "2026-01-01T00:60:00.000000Z", "2026-01-01T00:00:60.000000Z",
		"2026-01-01T00:00:00.00000Z", "2026-01-01T00:00:00.0000000Z", "2026-01-01 00:00:00.000000Z", "2026-01-01T00:00:00.000000z",
		"+026-01-01T00:00:00.000000Z", "2026-1-01T00:00:00.0000000Z",
	} {
		parsed, err := time.Parse(TimeFormat, ts)
		want := err == nil && parsed.Year() >= 2000 && parsed.Year() <= 9999 && parsed.Format(TimeFormat) == ts
		if got := validTime([]byte(ts)); got != want {
			t.Errorf("validTime(%q) = %v; time.Parse says %v", ts, got, want)
		}
	}
}

func TestPlainASCII(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := c >= 0x20 && c <= 0x7e && c != '\\'
		for pos := 0; pos < 19; pos++ {
			v := []byte(strings.Repeat("a", 19))
			v[pos] = byte(c)
			if got := plainASCII(v); got != want {
				t.Fatalf("plainASCII(byte %#x at %d) = %v; want %v", c, pos, got, want)
			}
		}
	}
}

func TestByteValidatorsAgreeWithLedger(t *testing.T) {
	for _, s := range []string{"", "a", "acme", "a-b_c", "-a", "_a", "A", "a.b", strings.Repeat("a", 63), strings.Repeat("a", 64), "0", "a b"} {
		if isLogName([]byte(s)) != ValidLogName(s) {
			t.Errorf("isLogName(%q) = %v; ledger says %v", s, !ValidLogName(s), ValidLogName(s))
		}
	}
	for _, s := range []string{"01936b2e-8f4a-7c3d-9e2f-0123456789ab", "01936b2e-8f4a-7c3d-cе2f-0123456789ab", "01936b2e-8f4a-4c3d-9e2f-0123456789ab",
		"01936b2e-8f4a-7c3d-ce2f-0123456789ab", "01936B2E-8f4a-7c3d-9e2f-0123456789ab", "01936b2e8f4a-7c3d-9e2f-0123456789ab-", "", "01936b2e-8f4a-7c3d-bf2f-0123456789ab"} {
		if isEventID([]byte(s)) != ValidEventID(s) {
			t.Errorf("isEventID(%q) = %v; ledger says %v", s, !ValidEventID(s), ValidEventID(s))
		}
	}
}

func checkEntryAcme(e []byte) (EntryInfo, error) {
	info, err := CheckEntry(e)
	if err == nil && info.Tenant != "acme" {
		err = fmt.Errorf("tenant %q", info.Tenant)
	}
	return info, err
}
