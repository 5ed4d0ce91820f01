package gateway

import (
	"bufio"
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

func TestEventBuffered(t *testing.T) {
	for _, tt := range []struct {
		in             string
		data, anyEvent bool
	}{
		{"", false, false},
		{"data: a", false, false},
		{"data: a\n", false, false},
		{"data: a\n\n", true, true},
		{"data: a\r\n\r\n", true, true},
		{"data: a\r\rdata", true, true},
		{"data: a\r\r", false, false}, // the reader peeks past a \r for a \n
		{"data: a\r", false, false},
		{"data: a\r\n\r", false, false},
		{"data\n\n", true, true}, // a data line without a colon
		{": keep-alive\n\n", false, true},
		{": keep-alive\n\ndata: a\n", false, true},
		{": keep-alive\n\ndata: a\n\n", true, true},
		{"event: ping\n\n", false, true},
		{"event: x\ndata: {}\n\ndata: b", true, true},
		{"dataX: a\n\n", false, true},
	} {
		r := bufio.NewReader(strings.NewReader(tt.in))
		r.Peek(1)
		if got := EventBuffered(r, true); got != tt.data {
			t.Errorf("EventBuffered(%q, data) = %v; want %v", tt.in, got, tt.data)
		}
		if got := EventBuffered(r, false); got != tt.anyEvent {
			t.Errorf("EventBuffered(%q, any) = %v; want %v", tt.in, got, tt.anyEvent)
		}
	}
}

var errWouldBlock = errors.New("would block")

// onceReader returns its bytes in one read, then errWouldBlock: what a
// connection with nothing more received would do.
type onceReader struct{ b []byte }

func (o *onceReader) Read(p []byte) (int, error) {
	if o.b == nil {
		return 0, errWouldBlock
	}
	n := copy(p, o.b)
	o.b = nil
	return n, nil
}

// FuzzSSEBuffered: when the reader says the next event is buffered, Next
// returns without reading from the network again.
func FuzzSSEBuffered(f *testing.F) {
	for _, s := range []string{"data: a\n\n", ": c\n\ndata: b\r\n\r\n", "data: a\r", "event: x\n\ndata: y\n\n", "data: a\n\ndata: b\n\n"} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, skip uint8) {
		if len(in) > 4<<10 {
			in = in[:4<<10] // what one read of the reader's buffer takes
		}
		s := NewSSEReader(&onceReader{b: in}, 1<<16)
		s.r.Peek(1)
		s.started = true     // as after a first event (a BOM is not looked for)
		for range skip % 4 { // and at any later event
			if !s.Buffered() {
				return
			}
			if _, err := s.Next(); err != nil {
				return
			}
		}
		if s.Buffered() {
			if _, err := s.Next(); errors.Is(err, errWouldBlock) {
				t.Fatalf("Buffered, but Next read again: %q", in)
			}
		}
	})
}
