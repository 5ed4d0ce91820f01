package anthropic

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"

	"aigw/gateway"
)

// InspectedStream reads a Messages event stream that passes through to a
// client of the same API while a guard inspects it, the guard's
// gateway.StreamInspector being run by gateway.Pipeline.Pump.
//
// As a gateway.Stream it yields one chunk per event: the chunk the
// translation makes (text, reasoning, tool calls with the tool's name and
// id, the finish; message_start's carries the role, not text), or one
// without choices for an event that makes none (ping, content_block_start
// of an empty block, content_block_stop, signatures, citations, usage,
// event types added after this code). The inspector holds back every
// chunk that follows text it holds, and releases chunks in order; Release
// gives back the bytes of the events up to a released chunk exactly as the
// upstream sent them, so that nothing after held text reaches the client
// before it, and nothing held is lost or reordered. Only a text event
// whose text the inspector changed (redaction) is encoded again, with the
// new text (a content_block_delta left without text is not sent).
//
// message_stop makes no chunk: Next returns io.EOF there, and it waits for
// Rest, which the writer calls once the call's outcome is recorded. An
// InspectedStream is not safe for concurrent use, except Close.
type InspectedStream struct {
	tr     stream // the translation to chunks, and the usage
	events eventReader
	body   io.Closer
	queue  []heldEvent // events read and not yet released
	err    error
	errRaw []byte // the upstream's error event that ended the stream

	// output so far (bytes and runes of the text, reasoning and tool
	// input read), to estimate the usage of a stream cut short before
	// message_delta reported it (final says it did)
	outBytes, outRunes int
	final              bool

	closeOnce sync.Once
	closeErr  error
}

var _ gateway.Stream = (*InspectedStream)(nil)

// heldEvent is one event of the stream, as received.
type heldEvent struct {
	raw   []byte
	chunk *gateway.ChatChunk // nil for message_stop

	// For an event that carries answer text (text_delta, or a text
	// block's content_block_start): the chunk's text, which the inspector
	// may change in place, the text as received, and the event.
	text  *string
	orig  string
	index int
	block *ContentBlock // content_block_start's block; nil for a delta
	// assigned: out is the text to send, settled when the text of an
	// earlier event was redacted together with this one's.
	assigned bool
	out      string
}

// NewInspectedStream reads the stream whose first bytes, already read,
// are head, and the rest body (which Close closes). provider names the
// upstream in errors.
func NewInspectedStream(provider string, head []byte, body io.ReadCloser) *InspectedStream {
	s := &InspectedStream{body: body}
	s.tr.provider = provider
	s.events = eventReader{r: bufio.NewReaderSize(io.MultiReader(bytes.NewReader(head), body), 16<<10), max: gateway.DefaultSSEMaxEvent}
	return s
}

// Next returns the next chunk: io.EOF after message_stop, an error
// wrapping gateway.ErrStreamCut when the stream ends before it,
// gateway.ErrStreamMalformed for an event that does not parse, and a
// *gateway.ProviderError for an error event (see ErrorEvent).
func (s *InspectedStream) Next() (*gateway.ChatChunk, error) {
	for {
		if s.err != nil {
			return nil, s.err
		}
		if s.tr.done {
			return nil, io.EOF
		}
		ev, err := s.events.next()
		if err != nil {
			s.err = s.tr.cut(err)
			return nil, s.err
		}
		if !ev.hasData { // comments, or a stray blank line
			c := emptyChunk()
			s.queue = append(s.queue, heldEvent{raw: ev.raw, chunk: c})
			return c, nil
		}
		c, err := s.event(ev)
		if err != nil {
			s.err = err
			return nil, err
		}
		if c != nil {
			return c, nil
		}
	}
}

// emptyChunk is the chunk of an event that makes none: no choices, so no
// text to inspect.
func emptyChunk() *gateway.ChatChunk {
	return &gateway.ChatChunk{Object: "chat.completion.chunk", Choices: []gateway.ChunkChoice{}}
}

// event queues one event and returns its chunk (nil for message_stop).
func (s *InspectedStream) event(ev rawEvent) (*gateway.ChatChunk, error) {
	e := new(StreamEvent)
	if err := json.Unmarshal(ev.data, e); err != nil {
		return nil, s.tr.malformed(ev.name, err)
	}
	if e.Type == "" {
		e.Type = ev.name
	}
	c, err := s.tr.translate(e)
	if err != nil {
		if e.Type == EventError {
			s.errRaw = ev.raw
		}
		return nil, err
	}
	if e.Type == EventMessageDelta && e.Usage != nil {
		s.final = true
	}
	switch {
	case e.Type == EventMessageStop:
		s.queue = append(s.queue, heldEvent{raw: ev.raw})
		return nil, nil
	case c == nil:
		c = emptyChunk()
	case e.Type == EventMessageStart:
		c.Choices[0].Delta.Content = nil // text it is not
	}
	h := heldEvent{raw: ev.raw, chunk: c}
	if len(c.Choices) > 0 {
		d := &c.Choices[0].Delta
		if d.Content != nil {
			h.text, h.orig, h.index = d.Content, *d.Content, e.Index
			if e.Type == EventContentBlockStart {
				h.block = e.ContentBlock
			}
		}
		s.count(d)
	}
	s.queue = append(s.queue, h)
	return c, nil
}

// count adds a chunk's output to the estimate of a stream cut short.
func (s *InspectedStream) count(d *gateway.Delta) {
	add := func(t string) {
		s.outBytes += len(t)
		s.outRunes += utf8.RuneCountInString(t)
	}
	if d.Content != nil {
		add(*d.Content)
	}
	if d.ReasoningContent != nil {
		add(*d.ReasoningContent)
	}
	for _, tc := range d.ToolCalls {
		add(tc.Function.Name)
		add(tc.Function.Arguments)
	}
}

// Usage returns the usage the upstream reported, final once message_delta
// reported it. Before (a stream a guard blocked, or that failed), it is
// message_start's input and cache counts with, when more than the
// upstream reported so far, the output read estimated (marked Estimated);
// nil if the upstream reported none.
func (s *InspectedStream) Usage() *gateway.Usage {
	u := s.tr.usage.usage()
	if u == nil || s.final {
		return u
	}
	est := (s.outRunes + 3) / 4
	if s.outRunes != s.outBytes { // as gateway.EstimateTokens counts
		est = (s.outRunes*2 + 2) / 3
	}
	if est > u.CompletionTokens {
		u.TotalTokens += est - u.CompletionTokens
		u.CompletionTokens, u.Estimated = est, true
	}
	return u
}

// Buffered reports whether the next event has arrived whole (Next makes a
// chunk of every event, an empty one for a comment), so that Next returns
// without waiting for the network.
func (s *InspectedStream) Buffered() bool { return gateway.EventBuffered(s.events.r, false) }

// Close closes the upstream's body; it may be called from any goroutine,
// at any time, more than once.
func (s *InspectedStream) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.body.Close() })
	return s.closeErr
}

// Err is the error Next returned, nil before one.
func (s *InspectedStream) Err() error { return s.err }

// ErrorEvent is the upstream's error event, as received, when one ended
// the stream (Next returned its *gateway.ProviderError); nil otherwise.
func (s *InspectedStream) ErrorEvent() []byte { return s.errRaw }

// Release returns the bytes to send now that the inspector released c:
// its event's (and those of any earlier event not released yet). It
// returns nil for a chunk this stream did not make or already released.
func (s *InspectedStream) Release(c *gateway.ChatChunk) []byte {
	if c == nil {
		return nil
	}
	for i := range s.queue {
		if s.queue[i].chunk == c {
			return s.send(i + 1)
		}
	}
	return nil
}

// Rest returns the bytes of every event not released yet: at the end of
// a stream the inspector passed, message_stop and what was held with it.
func (s *InspectedStream) Rest() []byte { return s.send(len(s.queue)) }

// send returns the first n queued events' bytes and drops them.
func (s *InspectedStream) send(n int) []byte {
	var out []byte
	for i := 0; i < n; i++ {
		if b := s.bytesOf(0); out == nil {
			out = b // no copy: an event's bytes are its own, unused once sent
		} else {
			out = append(out, b...)
		}
		s.queue[0] = heldEvent{}
		s.queue = s.queue[1:]
	}
	return out
}

// bytesOf returns the bytes of queued event i: as received, unless the
// inspector changed its text (nil: nothing to send).
func (s *InspectedStream) bytesOf(i int) []byte {
	h := &s.queue[i]
	if h.text == nil {
		return h.raw
	}
	text := s.textOf(i)
	switch {
	case text == h.orig:
		return h.raw
	case h.block != nil:
		b := *h.block
		b.Text = text
		return appendEvent(nil, EventContentBlockStart, struct {
			Type         string       `json:"type"`
			Index        int          `json:"index"`
			ContentBlock ContentBlock `json:"content_block"`
		}{EventContentBlockStart, h.index, b})
	case text == "":
		return nil
	}
	ev := textDeltaEvent{Type: EventContentBlockDelta, Index: h.index}
	ev.Delta.Type, ev.Delta.Text = DeltaText, text
	return appendEvent(nil, EventContentBlockDelta, ev)
}

// textDeltaEvent is a content_block_delta event of text.
type textDeltaEvent struct {
	Type  string `json:"type"`
	Index int    `json:"index"`
	Delta struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"delta"`
}

// appendEvent appends one framed event.
func appendEvent(out []byte, name string, v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // cannot happen: the event types always encode
		panic(fmt.Sprintf("anthropic: encode %s event: %v", name, err))
	}
	out = append(out, "event: "...)
	out = append(out, name...)
	out = append(out, "\ndata: "...)
	out = append(out, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
	return append(out, "\n\n"...)
}

// textOf is the text queued event i (a text event, the first of the
// queue) is to carry.
//
// The inspector redacts the text it holds as a whole: it puts the result
// into the first text chunk it holds and empties the others (and it holds
// every chunk after the first it holds). So the text of an event covers,
// beside its own text as received (unless an earlier event's text already
// covered it), the text as received of the emptied events that follow it
// and that no earlier text covered: those make its group. The group's new
// text is spread back over its events, each keeping its own text where
// the redaction did not change it, so that text stays in its content
// block where it can.
func (s *InspectedStream) textOf(i int) string {
	h := &s.queue[i]
	cur := *h.text
	own := !h.assigned && h.orig != ""
	if !own && cur == "" {
		return h.out // "" when unassigned
	}
	var group []int
	if own {
		group = append(group, i)
	}
	for j := i + 1; j < len(s.queue); j++ {
		o := &s.queue[j]
		if o.text == nil || o.assigned || o.orig == "" && *o.text == "" {
			continue
		}
		if *o.text != "" || o.orig == "" {
			break
		}
		group = append(group, j)
	}
	switch {
	case len(group) == 0: // nothing else to cover: the text is this event's
		h.out += cur
	case len(group) == 1 && own && cur == h.orig: // unchanged
		h.out = cur
	default:
		s.spread(cur, group)
	}
	h.assigned = true
	return h.out
}

// spread sets the text of the events of group (queue indexes) from text,
// the redaction of their texts as received joined: the text before the
// first change and after the last stays in its own event, the changed
// part goes to the event where the change starts.
func (s *InspectedStream) spread(text string, group []int) {
	var joined []byte
	for _, j := range group {
		joined = append(joined, s.queue[j].orig...)
	}
	orig := string(joined)
	// The longest common prefix and suffix, on character boundaries.
	p := 0
	for p < len(orig) && p < len(text) && orig[p] == text[p] {
		p++
	}
	for p > 0 && (p < len(orig) && !utf8.RuneStart(orig[p]) || p < len(text) && !utf8.RuneStart(text[p])) {
		p--
	}
	n := 0
	for n < len(orig)-p && n < len(text)-p && orig[len(orig)-1-n] == text[len(text)-1-n] {
		n++
	}
	for n > 0 && !(utf8.RuneStart(orig[len(orig)-n]) && utf8.RuneStart(text[len(text)-n])) {
		n--
	}
	end := len(orig) - n // the changed part is orig[p:end], now text[p:len(text)-n]
	repl := text[p : len(text)-n]
	at, placed := 0, false
	for k, j := range group {
		h := &s.queue[j]
		a, b := at, at+len(h.orig)
		at = b
		var out []byte
		out = append(out, orig[a:clamp(p, a, b)]...)
		if !placed && (p < b || k == len(group)-1) {
			out = append(out, repl...)
			placed = true
		}
		out = append(out, orig[clamp(end, a, b):b]...)
		h.out, h.assigned = string(out), true
	}
}

func clamp(v, lo, hi int) int { return min(max(v, lo), hi) }

// eventReader splits an event stream into its events, keeping the bytes
// of each exactly as they came (its lines with their line ends, and the
// blank line that ends it).
//
// SPEC: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
type eventReader struct {
	r       *bufio.Reader
	max     int
	raw     []byte
	started bool
}

// rawEvent is one event: its bytes, and its event and data fields.
type rawEvent struct {
	raw     []byte
	name    string
	data    []byte
	hasData bool
}

// next returns the next event (everything up to and including a blank
// line). At the end of the input it returns io.EOF on an event boundary,
// io.ErrUnexpectedEOF inside an event.
func (r *eventReader) next() (rawEvent, error) {
	r.raw = nil
	var ev rawEvent
	for {
		line, err := r.line()
		if err != nil {
			if errors.Is(err, io.EOF) && len(r.raw) > 0 {
				return rawEvent{}, io.ErrUnexpectedEOF
			}
			return rawEvent{}, err
		}
		if !r.started {
			r.started = true
			line = bytes.TrimPrefix(line, []byte("\xEF\xBB\xBF")) // a UTF-8 BOM
		}
		if len(line) == 0 {
			ev.raw = r.raw
			return ev, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value := gateway.SSEField(line)
		switch string(field) {
		case "event":
			ev.name = string(value)
		case "data":
			if ev.hasData {
				ev.data = append(ev.data, '\n')
			}
			ev.data = append(ev.data, value...)
			ev.hasData = true
		}
	}
}

// line reads one line into r.raw and returns it without its line end
// (\n, \r\n or \r).
func (r *eventReader) line() ([]byte, error) {
	start := len(r.raw)
	for {
		if r.r.Buffered() == 0 {
			if _, err := r.r.Peek(1); err != nil {
				if errors.Is(err, io.EOF) && len(r.raw) > start {
					return nil, io.ErrUnexpectedEOF
				}
				return nil, err
			}
		}
		buf, _ := r.r.Peek(r.r.Buffered())
		n := len(buf)
		if i := bytes.IndexAny(buf, "\r\n"); i >= 0 {
			n = i + 1
		}
		r.raw = append(r.raw, buf[:n]...)
		r.r.Discard(n)
		if len(r.raw) > r.max {
			return nil, fmt.Errorf("%w: event over %d bytes", gateway.ErrSSETooLarge, r.max)
		}
		end := len(r.raw) - 1
		switch r.raw[end] {
		case '\n':
			return r.raw[start:end], nil
		case '\r':
			if nb, err := r.r.Peek(1); err == nil && nb[0] == '\n' {
				r.r.Discard(1)
				r.raw = append(r.raw, '\n')
			}
			return r.raw[start:end], nil
		}
	}
}
