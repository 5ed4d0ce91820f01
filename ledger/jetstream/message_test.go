package jetstream

import (
	"bytes"
	"errors"
	"hash/fnv"
	"testing"
)

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
