package gateway

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func readAll(t testing.TB, in string, max int) ([]SSEEvent, error) {
	r := NewSSEReader(strings.NewReader(in), max)
	var out []SSEEvent
	for {
		ev, err := r.Next()
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			return out, err
		}
		ev.Data = append([]byte(nil), ev.Data...)
		out = append(out, ev)
	}
}

func TestSSEReader(t *testing.T) {
	for _, test := range []struct {
		name, in string
		want     []string // event:data
		err      error
	}{
		{"Simple", "data: a\n\ndata: b\n\n", []string{":a", ":b"}, nil},
		{"CRLF", "data: a\r\n\r\nevent: x\r\ndata: b\r\n\r\n", []string{":a", "x:b"}, nil},
		{"CR", "data: a\r\rdata: b\r\r", []string{":a", ":b"}, nil},
		{"MultiLine", "data: a\ndata: b\n\n", []string{":a\nb"}, nil},
		{"NoSpace", "data:a\n\n", []string{":a"}, nil},
		{"Comment", ": ping\n\ndata: a\n\n", []string{":a"}, nil},
		{"EventWithoutData", "event: ping\n\ndata: a\n\n", []string{":a"}, nil},
		{"BOM", "\xEF\xBB\xBFdata: a\n\n", []string{":a"}, nil},
		{"CutInEvent", "data: a\n\ndata: b\n", []string{":a"}, io.ErrUnexpectedEOF},
		{"CutInLine", "data: a\n\ndata: b", []string{":a"}, io.ErrUnexpectedEOF},
		{"TooLarge", "data: " + strings.Repeat("x", 100) + "\n\n", nil, ErrSSETooLarge},
	} {
		t.Run(test.name, func(t *testing.T) {
			evs, err := readAll(t, test.in, 64)
			var got []string
			for _, ev := range evs {
				got = append(got, ev.Event+":"+string(ev.Data))
			}
			if strings.Join(got, "|") != strings.Join(test.want, "|") || !errors.Is(err, test.err) {
				t.Fatalf("got %q, %v; want %q, %v", got, err, test.want, test.err)
			}
		})
	}
}

// FuzzSSEDecoder: the decoder never panics, never returns more data than
// it was given, and decodes the re-encoding of what it decoded to the same
// events.
func FuzzSSEDecoder(f *testing.F) {
	for _, s := range []string{"data: a\n\n", "event: x\r\ndata: {\"a\":1}\r\n\r\n", ": c\n\ndata: [DONE]\n\n", "data: a\ndata: b\n\n", "\xEF\xBB\xBFdata:x\r\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		evs, err := readAll(t, string(in), 1<<16)
		total := 0
		var enc bytes.Buffer
		for _, ev := range evs {
			total += len(ev.Data)
			if strings.ContainsAny(ev.Event, "\r\n") {
				t.Fatalf("event name %q holds a line break", ev.Event)
			}
			if ev.Event != "" {
				enc.WriteString("event: " + ev.Event + "\n")
			}
			for _, line := range bytes.Split(ev.Data, []byte("\n")) {
				enc.WriteString("data: ")
				enc.Write(line)
				enc.WriteString("\n")
			}
			enc.WriteString("\n")
		}
		if total > len(in) {
			t.Fatalf("decoded %d data bytes from %d input bytes", total, len(in))
		}
		if err != nil {
			return
		}
		again, err := readAll(t, enc.String(), 1<<16)
		if err != nil || len(again) != len(evs) {
			t.Fatalf("re-decoding: %d events, %v; want %d", len(again), err, len(evs))
		}
		for i := range evs {
			if again[i].Event != evs[i].Event || !bytes.Equal(again[i].Data, evs[i].Data) {
				t.Fatalf("event %d: %q/%q after a round trip; was %q/%q", i, again[i].Event, again[i].Data, evs[i].Event, evs[i].Data)
			}
		}
	})
}
