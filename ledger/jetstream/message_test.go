package jetstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"testing"
	"time"

	"aigw/ledger"
)

// encodeBody returns the message body of an entry; with hasPayload, the
// envelope of entry, salt and payload: the format appendBody writes,
// spelled out for the tests.
func encodeBody(entry, salt, payload []byte, hasPayload bool) []byte {
	if !hasPayload {
		return entry
	}
	b := make([]byte, 0, envelopeOverhead+len(entry)+len(salt)+len(payload))
	b = append(b, envelopeMagic[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(entry)))
	b = append(b, entry...)
	b = append(b, byte(len(salt)))
	b = append(b, salt...)
	return append(b, payload...)
}

func TestDecodeBody(t *testing.T) {
	entry := []byte(`{"id":"x","v":1}`)
	salt := bytes.Repeat([]byte{7}, 32)
	for _, tt := range []struct {
		name                 string
		body                 []byte
		entry, salt, payload []byte
		bad                  bool
	}{
		{name: "BareEntry", body: entry, entry: entry},
		{name: "Envelope", body: encodeBody(entry, salt, []byte("prompt"), true), entry: entry, salt: salt, payload: []byte("prompt")},
		{name: "EnvelopeEmptyPayload", body: encodeBody(entry, salt, []byte{}, true), entry: entry, salt: salt, payload: []byte{}},
		{name: "EnvelopeEmptySalt", body: encodeBody(entry, nil, []byte("p"), true), entry: entry, salt: []byte{}, payload: []byte("p")},
		{name: "ErrEmpty", body: nil, bad: true},
		{name: "ErrNotJSON", body: []byte("hello"), bad: true},
		{name: "ErrWrongVersion", body: []byte{0, 2, 0, 0, 0, 0, 0}, bad: true},
		{name: "ErrShortHeader", body: []byte{0, 1, 0, 0}, bad: true},
		{name: "ErrEntryPastEnd", body: []byte{0, 1, 0, 0, 0, 9, '{', '}', 0}, bad: true},
		{name: "ErrNoSaltLength", body: []byte{0, 1, 0, 0, 0, 2, '{', '}'}, bad: true},
		{name: "ErrSaltPastEnd", body: []byte{0, 1, 0, 0, 0, 2, '{', '}', 5, 1}, bad: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, s, p, err := decodeBody(tt.body)
			if tt.bad {
				if !errors.Is(err, errBody) {
					t.Fatalf("decodeBody(%x) = %v; want an error wrapping errBody", tt.body, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeBody(%x) = %v", tt.body, err)
			}
			if !bytes.Equal(e, tt.entry) || !bytes.Equal(s, tt.salt) || !bytes.Equal(p, tt.payload) || (s == nil) != (tt.salt == nil) || (p == nil) != (tt.payload == nil) {
				t.Errorf("decodeBody(%x) = %q, %x, %q; want %q, %x, %q", tt.body, e, s, p, tt.entry, tt.salt, tt.payload)
			}
		})
	}
}

// FuzzDecodeBody checks that decoding outside bytes never panics, and that
// what decodes re-encodes to the same bytes.
func FuzzDecodeBody(f *testing.F) {
	f.Add([]byte(`{"v":1}`))
	f.Add(encodeBody([]byte(`{"v":1}`), bytes.Repeat([]byte{1}, 32), []byte("payload"), true))
	f.Add([]byte{0, 1, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 1, 255, 255, 255, 255, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		e, s, p, err := decodeBody(body)
		if err != nil {
			return
		}
		again := encodeBody(e, s, p, s != nil)
		if !bytes.Equal(again, body) {
			t.Fatalf("decodeBody(%x) then encodeBody = %x", body, again)
		}
	})
}

func BenchmarkDecodeBody(b *testing.B) {
	body := encodeBody(bytes.Repeat([]byte("x"), 1024), bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte("p"), 4096), true)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := decodeBody(body); err != nil {
			b.Fatal(err)
		}
	}
}

func TestStreamConfig(t *testing.T) {
	var c StreamConfig
	if got := c.Subject("acme"); got != "aigw.audit.0.acme" {
		t.Errorf("Subject(acme) = %q; want aigw.audit.0.acme", got)
	}
	c.Partitions = 8
	counts := make([]int, 8)
	for _, log := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "acme", "globex", "initech", "system"} {
		p := c.Partition(log)
		counts[p]++
		if want := fnvMod(log, 8); p != want {
			t.Errorf("Partition(%q) = %d; want %d", log, p, want)
		}
		if got, want := c.Subject(log), "aigw.audit."+string(rune('0'+p))+"."+log; got != want {
			t.Errorf("Subject(%q) = %q; want %q", log, got, want)
		}
	}
	if got := c.PartitionFilter(3); got != "aigw.audit.3.>" {
		t.Errorf("PartitionFilter(3) = %q", got)
	}
	for _, tt := range []struct {
		name string
		cfg  StreamConfig
	}{
		{"ErrBadName", StreamConfig{Name: "A.B"}},
		{"ErrBadPrefix", StreamConfig{SubjectPrefix: "a.*"}},
		{"ErrEmptyPrefixToken", StreamConfig{SubjectPrefix: "a..b"}},
		{"ErrPartitions", StreamConfig{Partitions: -1}},
		{"ErrReplicas", StreamConfig{Replicas: 7}},
		{"ErrMaxAgeUnderWindow", StreamConfig{MaxAge: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); err == nil {
				t.Errorf("Validate(%+v) = nil; want an error", tt.cfg)
			}
		})
	}
}

// fnvMod is the documented partition function, with hash/fnv.
func fnvMod(s string, n uint32) int {
	h := fnv.New32a()
	h.Write([]byte(s))
	return int(h.Sum32() % n)
}

// TestAppendBatch: the batch body encoded in place is the batch of the
// events' own bodies (encodeBody of Entry, with the payload's commitment
// under the salt the batch carries), and a bad event fails the batch.
func TestAppendBatch(t *testing.T) {
	evs := []*ledger.Event{
		{ID: ledger.NewEventID(), Tenant: "acme", Kind: ledger.KindRequest, Time: time.Now(), Attrs: map[string]any{"model": "m"}},
		{ID: ledger.NewEventID(), Tenant: "acme", Kind: ledger.KindRoute, Time: time.Now(), RawAttrs: []byte(`{"route":"r"}`)},
		{ID: ledger.NewEventID(), Tenant: "acme", Kind: ledger.KindResponse, Time: time.Now()},
		{ID: ledger.NewEventID(), Tenant: "acme", Kind: ledger.KindResponse, Time: time.Now()},
	}
	payloads := [][]byte{[]byte(`{"messages":[]}`), nil, []byte{}}
	payload := func(i int) []byte {
		if i < len(payloads) {
			return payloads[i]
		}
		return nil
	}
	got, err := appendBatch([]byte("prefix"), evs, payload)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("appendBatch dropped dst: %q", got[:8])
	}
	got = got[len("prefix"):]
	var bodies [][]byte
	i := 0
	if err := splitBatch(got, func(b []byte) error {
		_, salt, pl, err := decodeBody(b)
		if err != nil {
			return err
		}
		ev := *evs[i]
		if p := payload(i); p != nil {
			if !bytes.Equal(pl, p) || len(salt) != ledger.SaltSize {
				t.Errorf("event %d: payload %q salt %d bytes; want %q and %d", i, pl, len(salt), p, ledger.SaltSize)
			}
			ev.PayloadSHA256, _ = ledger.Commit(p, salt)
		}
		entry, err := ev.Entry()
		if err != nil {
			return err
		}
		bodies = append(bodies, encodeBody(entry, salt, pl, payload(i) != nil))
		i++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if i != len(evs) {
		t.Fatalf("batch holds %d events; want %d", i, len(evs))
	}
	if want := encodeBatch(bodies); !bytes.Equal(got, want) {
		t.Fatalf("appendBatch =\n%q\nwant\n%q", got, want)
	}
	if evs[0].PayloadSHA256 != "" {
		t.Error("appendBatch changed the caller's event")
	}

	other := *evs[1]
	other.Tenant = "globex"
	bad := *evs[1]
	bad.Kind = ""
	for name, batch := range map[string][]*ledger.Event{
		"another log":   {evs[0], &other},
		"invalid event": {evs[0], &bad},
		"nil event":     {evs[0], nil},
	} {
		var ee *ledger.EventError
		if _, err := appendBatch(nil, batch, payload); !errors.As(err, &ee) {
			t.Errorf("%s: appendBatch = %v; want an *EventError", name, err)
		}
	}
}

// BenchmarkBatchBody encodes a call's four events (two with payloads) as a
// batch body: each event's body on its own, then the batch of them (how
// the producer did it), against appendBatch.
func BenchmarkBatchBody(b *testing.B) {
	now := time.Now()
	evs := []*ledger.Event{
		{ID: ledger.NewEventID(), Tenant: "acme", Kind: ledger.KindRequest, Time: now, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Attrs: map[string]any{"endpoint": "chat.completions", "model": "m", "stream": false, "bytes": 300}},
		{ID: ledger.NewEventID(), Tenant: "acme", Kind: ledger.KindRoute, Time: now, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Attrs: map[string]any{"route": "m", "strategy": "ordered", "candidates": []any{"fake/m"}, "reason": "first healthy"}},
		{ID: ledger.NewEventID(), Tenant: "acme", Kind: ledger.KindAttempt, Time: now, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Attrs: map[string]any{"n": 1, "target": "fake/m", "provider": "fake", "model": "m", "outcome": "ok", "duration_us": 120}},
		{ID: ledger.NewEventID(), Tenant: "acme", Kind: ledger.KindResponse, Time: now, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Attrs: map[string]any{"status": 200, "prompt_tokens": 12, "completion_tokens": 30, "latency_us": 400}},
	}
	payloads := [][]byte{bytes.Repeat([]byte("q"), 300), nil, nil, bytes.Repeat([]byte("a"), 400)}
	payload := func(i int) []byte { return payloads[i] }
	b.Run("per-event", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			bodies := make([][]byte, len(evs))
			for i, ev := range evs {
				e := *ev
				var salt []byte
				if p := payload(i); p != nil {
					e.PayloadSHA256, salt = ledger.Commit(p, nil)
				}
				entry, err := e.Entry()
				if err != nil {
					b.Fatal(err)
				}
				bodies[i] = encodeBody(entry, salt, payload(i), payload(i) != nil)
			}
			_ = encodeBatch(bodies)
		}
	})
	b.Run("in-place", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := appendBatch(nil, evs, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}
