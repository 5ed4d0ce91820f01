package anthropic

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"aigw/gateway"
)

// ErrStreamFinished is returned by a StreamWriter used after Finish or
// Fail.
var ErrStreamFinished = errors.New("anthropic: stream already finished")

// StreamWriter writes OpenAI chunks to a client of the Anthropic-compatible
// endpoint as the Messages API's event stream: message_start, then per
// text or tool call a content_block_start, its deltas and a
// content_block_stop (indexes from 0, in order), then message_delta with
// the stop reason and usage, and message_stop; or an error event on Fail.
// Each event is framed "event: X\ndata: {json}\n\n". OpenAI reports usage
// at the end only, so message_start carries zero usage and message_delta
// the whole of it (input, cache and output tokens, which the API allows
// there as cumulative counts).
//
// Reasoning content is not written (see FromChat). Tool call deltas are
// matched to their call by the chunk's tool call index. Anthropic streams
// one block at a time, so a call that starts while the open call's
// arguments are not yet complete JSON (an upstream interleaving parallel
// calls, which OpenAI does not do) is held back, its arguments buffered,
// until the open call's arguments complete or the stream ends; a delta for
// a call already stopped, which only a broken upstream sends, is written
// at that call's index. A StreamWriter is not safe for concurrent use.
type StreamWriter struct {
	w     io.Writer
	flush func()
	model string
	id    string

	buf      []byte
	started  bool
	finished bool
	err      error

	next     int       // index of the next block
	open     int       // index of the open block, -1 when none
	openKind blockKind // kindText or kindTool
	openTool *toolCallState
	tools    map[int]*toolCallState // by the chunks' tool call index
	queue    []*toolCallState       // calls waiting for the open call to complete
	toolUse  bool
	refusal  bool
	finish   string
	usage    *gateway.Usage
}

// NewStreamWriter returns a writer of events to w; flush, if not nil, is
// called after each write (an http.Flusher's Flush).
func NewStreamWriter(w io.Writer, flush func(), model, msgID string) *StreamWriter {
	return &StreamWriter{w: w, flush: flush, model: model, id: msgID, open: -1, tools: map[int]*toolCallState{}}
}

// WriteChunk writes what a chunk adds: its first choice's text, refusal and
// tool calls. Its finish reason and usage are kept for Finish.
func (s *StreamWriter) WriteChunk(c *gateway.ChatChunk) error {
	if err := s.usable(); err != nil {
		return err
	}
	s.buf = s.buf[:0]
	s.start()
	if c.Usage != nil {
		s.usage = c.Usage
	}
	for i := range c.Choices {
		ch := &c.Choices[i]
		if ch.Index != 0 {
			continue
		}
		if d := ch.Delta.Content; d != nil && *d != "" {
			s.text(*d)
		}
		if d := ch.Delta.Refusal; d != nil && *d != "" {
			s.text(*d)
			s.refusal = true
		}
		for j := range ch.Delta.ToolCalls {
			s.toolCall(&ch.Delta.ToolCalls[j])
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.finish = *ch.FinishReason
		}
	}
	return s.write()
}

// Finish ends the message: it stops the open block and writes
// message_delta (stop reason, usage) and message_stop. usage, if not nil,
// replaces the usage the chunks carried.
func (s *StreamWriter) Finish(usage *gateway.Usage) error {
	if err := s.usable(); err != nil {
		return err
	}
	s.buf = s.buf[:0]
	s.start()
	s.drain(true)
	s.stopOpen()
	if usage != nil {
		s.usage = usage
	}
	stop := stopReason(s.finish, s.toolUse)
	if s.refusal && !s.toolUse {
		stop = StopRefusal
	}
	var u Usage
	if s.usage != nil {
		u = anthropicUsage(s.usage)
	}
	s.event(EventMessageDelta, struct {
		Type  string `json:"type"`
		Delta struct {
			StopReason   string  `json:"stop_reason"`
			StopSequence *string `json:"stop_sequence"`
		} `json:"delta"`
		Usage Usage `json:"usage"`
	}{Type: EventMessageDelta, Delta: struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	}{StopReason: stop}, Usage: u})
	s.event(EventMessageStop, struct {
		Type string `json:"type"`
	}{EventMessageStop})
	s.finished = true
	return s.write()
}

// Fail ends the stream with an error event of the given type (an
// Anthropic error type such as overloaded_error; empty means api_error).
func (s *StreamWriter) Fail(typ, message string) error {
	if err := s.usable(); err != nil {
		return err
	}
	if typ == "" {
		typ = TypeAPI
	}
	s.buf = s.buf[:0]
	s.event(EventError, ErrorBody{Type: EventError, Error: ErrorDetail{Type: typ, Message: message}})
	s.finished = true
	return s.write()
}

func (s *StreamWriter) usable() error {
	if s.err != nil {
		return s.err
	}
	if s.finished {
		return ErrStreamFinished
	}
	return nil
}

// start writes message_start once.
func (s *StreamWriter) start() {
	if s.started {
		return
	}
	s.started = true
	s.event(EventMessageStart, struct {
		Type    string   `json:"type"`
		Message Response `json:"message"`
	}{EventMessageStart, Response{ID: s.id, Type: "message", Role: RoleAssistant, Model: s.model}})
}

// text writes a text delta, in the open text block or a new one.
func (s *StreamWriter) text(t string) {
	if s.open < 0 || s.openKind != kindText {
		s.drain(true)
		s.stopOpen()
		s.open, s.openKind = s.next, kindText
		s.next++
		s.event(EventContentBlockStart, struct {
			Type         string `json:"type"`
			Index        int    `json:"index"`
			ContentBlock struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content_block"`
		}{Type: EventContentBlockStart, Index: s.open, ContentBlock: struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}{Type: BlockText}})
	}
	s.delta(s.open, deltaEvent{Type: DeltaText, Text: &t})
}

// toolCallState is a tool call being streamed.
type toolCallState struct {
	key      int
	block    int // -1 until its block starts
	id, name string
	args     []byte // the arguments so far
	sent     int    // how many bytes of args were written
}

// complete reports whether the call's arguments may be whole: empty (a
// call streamed in order whose arguments never came) or valid JSON.
func (c *toolCallState) complete() bool { return len(c.args) == 0 || json.Valid(c.args) }

// toolCall writes a tool call delta: a new call starts a tool_use block
// (or waits for the open call to complete), its arguments are
// input_json_delta events.
func (s *StreamWriter) toolCall(tc *gateway.ToolCall) {
	key := len(s.tools)
	switch {
	case tc.Index != nil:
		key = *tc.Index
	case tc.ID == "" && s.openTool != nil:
		key = s.openTool.key
	}
	c, ok := s.tools[key]
	if !ok {
		c = &toolCallState{key: key, block: -1, id: tc.ID, name: tc.Function.Name}
		if c.id == "" {
			c.id = fmt.Sprintf("toolu_%s_%d", s.id, key)
		}
		s.tools[key] = c
		s.toolUse = true
		if s.openTool != nil && (len(s.queue) > 0 || !s.openTool.complete()) {
			s.queue = append(s.queue, c)
		} else {
			s.startTool(c)
		}
	}
	c.args = append(c.args, tc.Function.Arguments...)
	if c.block >= 0 && c.sent < len(c.args) {
		a := string(c.args[c.sent:])
		c.sent = len(c.args)
		s.delta(c.block, deltaEvent{Type: DeltaInputJSON, PartialJSON: &a})
	}
	if c == s.openTool && len(s.queue) > 0 {
		s.drain(false)
	}
}

// startTool stops the open block and starts c's, with the arguments
// buffered so far.
func (s *StreamWriter) startTool(c *toolCallState) {
	s.stopOpen()
	c.block = s.next
	s.next++
	s.open, s.openKind, s.openTool = c.block, kindTool, c
	s.event(EventContentBlockStart, struct {
		Type         string       `json:"type"`
		Index        int          `json:"index"`
		ContentBlock ContentBlock `json:"content_block"`
	}{EventContentBlockStart, c.block, ContentBlock{Type: BlockToolUse, ID: c.id, Name: c.name, Input: json.RawMessage("{}")}})
	if c.sent < len(c.args) {
		a := string(c.args[c.sent:])
		c.sent = len(c.args)
		s.delta(c.block, deltaEvent{Type: DeltaInputJSON, PartialJSON: &a})
	}
}

// drain starts the calls held back, in order: while the open call is
// complete, or all of them when all is set.
func (s *StreamWriter) drain(all bool) {
	for len(s.queue) > 0 && (all || s.openTool == nil || s.openTool.complete()) {
		c := s.queue[0]
		s.queue = s.queue[1:]
		s.startTool(c)
	}
}

// stopOpen writes content_block_stop for the open block.
func (s *StreamWriter) stopOpen() {
	if s.open < 0 {
		return
	}
	s.event(EventContentBlockStop, struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	}{EventContentBlockStop, s.open})
	s.open, s.openTool = -1, nil
}

type deltaEvent struct {
	Type        string  `json:"type"`
	Text        *string `json:"text,omitempty"`
	PartialJSON *string `json:"partial_json,omitempty"`
}

func (s *StreamWriter) delta(index int, d deltaEvent) {
	s.event(EventContentBlockDelta, struct {
		Type  string     `json:"type"`
		Index int        `json:"index"`
		Delta deltaEvent `json:"delta"`
	}{EventContentBlockDelta, index, d})
}

// event appends one framed event to the buffer.
func (s *StreamWriter) event(name string, v any) {
	data, err := json.Marshal(v)
	if err != nil { // cannot happen: the event types always encode
		panic(fmt.Sprintf("anthropic: encode %s event: %v", name, err))
	}
	s.buf = append(s.buf, "event: "...)
	s.buf = append(s.buf, name...)
	s.buf = append(s.buf, "\ndata: "...)
	s.buf = append(s.buf, data...)
	s.buf = append(s.buf, "\n\n"...)
}

// write sends the buffered events and flushes.
func (s *StreamWriter) write() error {
	if len(s.buf) == 0 {
		return nil
	}
	if _, err := s.w.Write(s.buf); err != nil {
		s.err = fmt.Errorf("anthropic: write stream: %w", err)
		return s.err
	}
	if s.flush != nil {
		s.flush()
	}
	return nil
}
