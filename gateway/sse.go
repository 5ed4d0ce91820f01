package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// SSEEvent is one server-sent event.
type SSEEvent struct {
	Event string // the event field; "" means "message"
	Data  []byte // data lines joined by "\n"; valid until the next call to Next
	ID    string
}

// SSEReader decodes a text/event-stream.
//
// SPEC: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
type SSEReader struct {
	r       *bufio.Reader
	max     int
	data    []byte
	line    []byte
	started bool
}

// DefaultSSEMaxEvent bounds one event's size.
const DefaultSSEMaxEvent = 8 << 20

// NewSSEReader returns a decoder of r; events larger than maxEvent bytes
// (0: DefaultSSEMaxEvent) are an error.
func NewSSEReader(r io.Reader, maxEvent int) *SSEReader {
	if maxEvent <= 0 {
		maxEvent = DefaultSSEMaxEvent
	}
	// 4 KiB: chunks are a few hundred bytes and lines are read byte by byte,
	// so the buffer only sets how many bytes one read takes (it is one
	// allocation per stream).
	return &SSEReader{r: bufio.NewReaderSize(r, 4<<10), max: maxEvent}
}

// ErrSSETooLarge is returned for an event over the size limit.
var ErrSSETooLarge = errors.New("server-sent event too large")

// Next returns the next event with data (events without data lines are
// skipped, as the spec says). At the end of input it returns io.EOF if the
// input ended on an event boundary, and io.ErrUnexpectedEOF if it ended
// inside an event (a cut stream: the partial event is dropped).
func (s *SSEReader) Next() (SSEEvent, error) {
	var ev SSEEvent
	s.data = s.data[:0]
	hasData := false
	pending := false // some field line seen since the last dispatch
	for {
		line, err := s.readLine()
		if err != nil {
			if err == io.EOF && pending {
				return SSEEvent{}, io.ErrUnexpectedEOF
			}
			return SSEEvent{}, err
		}
		if len(line) == 0 { // dispatch
			if hasData {
				ev.Data = s.data
				return ev, nil
			}
			ev, pending = SSEEvent{}, false
			continue
		}
		pending = true
		if line[0] == ':' { // comment
			continue
		}
		field, value := SSEField(line)
		switch string(field) {
		case "data":
			if hasData {
				s.data = append(s.data, '\n')
			}
			if len(s.data)+len(value) > s.max {
				return SSEEvent{}, ErrSSETooLarge
			}
			s.data = append(s.data, value...)
			hasData = true
		case "event":
			ev.Event = string(value)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				ev.ID = string(value)
			}
		}
	}
}

// Buffered reports whether the next event with data has been received
// whole, so that Next returns it without waiting for the network.
func (s *SSEReader) Buffered() bool { return EventBuffered(s.r, true) }

// EventBuffered reports whether r's buffer holds a whole server-sent event
// (its dispatching blank line received), or with dataOnly a whole event
// with a data line (events without one are skipped by readers such as
// [SSEReader]). It reads nothing from the network. r must be positioned at
// the start of an event. A "\r" that ends the buffer makes it say no (a
// reader looks past it for a "\n"); saying no is never wrong, the caller
// only flushes what it holds one write earlier.
func EventBuffered(r *bufio.Reader, dataOnly bool) bool {
	b, _ := r.Peek(r.Buffered())
	hasData := false
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			return false // a line not yet ended
		}
		line := b[:i]
		if b[i] == '\r' {
			if i+1 == len(b) {
				return false
			}
			if b[i+1] == '\n' {
				i++
			}
		}
		b = b[i+1:]
		if len(line) == 0 {
			if hasData || !dataOnly {
				return true
			}
			continue
		}
		if field, _, _ := bytes.Cut(line, []byte(":")); string(field) == "data" {
			hasData = true
		}
	}
	return false
}

// readLine returns one line without its terminator (\n, \r\n or \r).
func (s *SSEReader) readLine() ([]byte, error) {
	s.line = s.line[:0]
	for {
		b, err := s.r.ReadByte()
		if err != nil {
			if err == io.EOF && len(s.line) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if !s.started {
			s.started = true
			if b == 0xEF { // UTF-8 BOM at the start of the stream
				if b2, _ := s.r.Peek(2); len(b2) == 2 && b2[0] == 0xBB && b2[1] == 0xBF {
					s.r.Discard(2)
					continue
				}
			}
		}
		switch b {
		case '\n':
			return s.line, nil
		case '\r':
			if nb, err := s.r.Peek(1); err == nil && nb[0] == '\n' {
				s.r.Discard(1)
			}
			return s.line, nil
		}
		if len(s.line) >= s.max {
			return nil, fmt.Errorf("%w: line over %d bytes", ErrSSETooLarge, s.max)
		}
		s.line = append(s.line, b)
	}
}

// SSEField splits a server-sent event line that is not a comment into its
// field name and value (one space after the colon dropped; a line without
// a colon is a field with an empty value), as the HTML Living Standard's
// event stream interpretation does.
func SSEField(line []byte) (field, value []byte) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return line, nil
	}
	field, value = line[:i], line[i+1:]
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	return field, value
}
