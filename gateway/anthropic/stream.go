package anthropic

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"aigw/gateway"
)

// blockKind is what a content block of a stream becomes in chunks.
type blockKind uint8

const (
	kindOther    blockKind = iota // not translated (server tool blocks, redacted thinking)
	kindText                      // content
	kindThinking                  // reasoning_content
	kindTool                      // a tool call
	kindJSON                      // the response tool: its input is content
)

type blockState struct {
	kind blockKind
	tool int // the tool call's index among the message's tool calls
}

// maxBlocks bounds the content blocks of one streamed message.
const maxBlocks = 1 << 14

// stream translates a Messages event stream into chat.completion.chunk
// values, one event at a time.
type stream struct {
	provider string
	body     io.ReadCloser
	sse      *gateway.SSEReader
	pl       plan
	created  int64

	id, model string
	started   bool // message_start seen
	finished  bool // the finish reason chunk was made
	done      bool // message_stop seen
	usageSent bool
	err       error
	blocks    []blockState
	tools     int
	usage     usageAcc

	closeOnce sync.Once
	closeErr  error
}

var _ gateway.Stream = (*stream)(nil)

func newStream(provider string, body io.ReadCloser, pl plan, created int64) *stream {
	return &stream{provider: provider, body: body, sse: gateway.NewSSEReader(body, 0), pl: pl, created: created}
}

// Next returns the next chunk; io.EOF after message_stop (and the usage
// chunk), an error wrapping gateway.ErrStreamCut when the stream ends
// before message_stop, gateway.ErrStreamMalformed for an event that does
// not parse, and a *gateway.ProviderError for an error event.
func (s *stream) Next() (*gateway.ChatChunk, error) {
	if s.err != nil {
		return nil, s.err
	}
	for {
		if s.done {
			if !s.usageSent {
				s.usageSent = true
				if u := s.usage.usage(); u != nil {
					c := s.chunk()
					c.Choices = []gateway.ChunkChoice{}
					c.Usage = u
					return c, nil
				}
			}
			return nil, io.EOF
		}
		ev, err := s.sse.Next()
		if err != nil {
			s.err = s.cut(err)
			return nil, s.err
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

// cut is the error of a stream whose reading failed with err: it ended
// before message_stop.
func (s *stream) cut(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: %w", s.provider, gateway.ErrStreamCut)
	}
	return fmt.Errorf("%s: read stream: %w: %w", s.provider, gateway.ErrStreamCut, err)
}

// event translates one event into a chunk, or nil when it makes none.
func (s *stream) event(ev gateway.SSEEvent) (*gateway.ChatChunk, error) {
	var e StreamEvent
	if err := json.Unmarshal(ev.Data, &e); err != nil {
		return nil, s.malformed(ev.Event, err)
	}
	if e.Type == "" {
		e.Type = ev.Event
	}
	return s.translate(&e)
}

// translate translates one decoded event into a chunk, or nil when it
// makes none; the chunk's text pointers point into e.
func (s *stream) translate(e *StreamEvent) (*gateway.ChatChunk, error) {
	switch e.Type {
	case EventPing:
		return nil, nil
	case EventError:
		pe := &gateway.ProviderError{Provider: s.provider, Status: StatusOverloaded, Type: TypeOverloaded}
		if e.Error != nil {
			pe.Type, pe.Message, pe.Status = e.Error.Type, e.Error.Message, StatusForType(e.Error.Type)
		}
		return nil, pe
	case EventMessageStart:
		if s.started || e.Message == nil {
			return nil, s.malformed(e.Type, errors.New("unexpected message_start"))
		}
		s.started = true
		s.id, s.model = e.Message.ID, e.Message.Model
		s.usage.start(e.Message.Usage)
		c := s.chunk()
		empty := ""
		c.Choices[0].Delta = gateway.Delta{Role: "assistant", Content: &empty}
		return c, nil
	}
	if !s.started {
		if isKnownEvent(e.Type) {
			return nil, s.malformed(e.Type, errors.New("event before message_start"))
		}
		return nil, nil
	}
	switch e.Type {
	case EventContentBlockStart:
		return s.blockStart(e)
	case EventContentBlockDelta:
		return s.blockDelta(e)
	case EventContentBlockStop:
		if e.Index < 0 || e.Index >= len(s.blocks) {
			return nil, s.malformed(e.Type, fmt.Errorf("no content block %d", e.Index))
		}
		return nil, nil
	case EventMessageDelta:
		s.usage.delta(e.Usage)
		if e.Delta == nil || e.Delta.StopReason == "" || s.finished {
			return nil, nil // a later message_delta only updates usage
		}
		s.finished = true
		finish := finishReason(e.Delta.StopReason)
		if finish == gateway.FinishToolCalls && s.tools == 0 {
			finish = gateway.FinishStop // the forced response tool was the answer
		}
		c := s.chunk()
		c.Choices[0].FinishReason = &finish
		return c, nil
	case EventMessageStop:
		s.done = true
		return nil, nil
	}
	return nil, nil // an event type added after this code: ignored, as the API asks
}

func isKnownEvent(t string) bool {
	switch t {
	case EventContentBlockStart, EventContentBlockDelta, EventContentBlockStop, EventMessageDelta, EventMessageStop:
		return true
	}
	return false
}

func (s *stream) blockStart(e *StreamEvent) (*gateway.ChatChunk, error) {
	if e.ContentBlock == nil || e.Index != len(s.blocks) || e.Index >= maxBlocks {
		return nil, s.malformed(e.Type, fmt.Errorf("content block %d out of order", e.Index))
	}
	b := e.ContentBlock
	st := blockState{}
	var c *gateway.ChatChunk
	switch b.Type {
	case BlockText:
		if s.pl.responseTool != "" {
			break // the answer is the response tool's input alone
		}
		st.kind = kindText
		if b.Text != "" {
			c = s.chunk()
			c.Choices[0].Delta.Content = &b.Text
		}
	case BlockThinking:
		st.kind = kindThinking
		if b.Thinking != "" {
			c = s.chunk()
			c.Choices[0].Delta.ReasoningContent = &b.Thinking
		}
	case BlockToolUse:
		args := ""
		if in := compactInput(b.Input); string(in) != "{}" {
			args = string(in)
		}
		if s.pl.responseTool != "" && b.Name == s.pl.responseTool {
			st.kind = kindJSON
			if args != "" {
				c = s.chunk()
				c.Choices[0].Delta.Content = &args
			}
			break
		}
		st.kind, st.tool = kindTool, s.tools
		s.tools++
		idx := st.tool
		c = s.chunk()
		c.Choices[0].Delta.ToolCalls = []gateway.ToolCall{{
			Index:    &idx,
			ID:       b.ID,
			Type:     "function",
			Function: gateway.FunctionCall{Name: b.Name, Arguments: args},
		}}
	}
	s.blocks = append(s.blocks, st)
	return c, nil
}

func (s *stream) blockDelta(e *StreamEvent) (*gateway.ChatChunk, error) {
	if e.Index < 0 || e.Index >= len(s.blocks) || e.Delta == nil {
		return nil, s.malformed(e.Type, fmt.Errorf("delta for no content block %d", e.Index))
	}
	st := s.blocks[e.Index]
	d := e.Delta
	switch {
	case d.Type == DeltaText && st.kind == kindText && d.Text != "":
		c := s.chunk()
		c.Choices[0].Delta.Content = &d.Text
		return c, nil
	case d.Type == DeltaThinking && st.kind == kindThinking && d.Thinking != "":
		c := s.chunk()
		c.Choices[0].Delta.ReasoningContent = &d.Thinking
		return c, nil
	case d.Type == DeltaInputJSON && st.kind == kindJSON && d.PartialJSON != "":
		c := s.chunk()
		c.Choices[0].Delta.Content = &d.PartialJSON
		return c, nil
	case d.Type == DeltaInputJSON && st.kind == kindTool && d.PartialJSON != "":
		idx := st.tool
		c := s.chunk()
		c.Choices[0].Delta.ToolCalls = []gateway.ToolCall{{Index: &idx, Function: gateway.FunctionCall{Arguments: d.PartialJSON}}}
		return c, nil
	}
	return nil, nil // signature and citation deltas, deltas of untranslated blocks
}

// chunk returns a chunk of the message with one empty choice.
func (s *stream) chunk() *gateway.ChatChunk {
	return &gateway.ChatChunk{
		ID:      s.id,
		Object:  "chat.completion.chunk",
		Created: s.created,
		Model:   s.model,
		Choices: []gateway.ChunkChoice{{Index: 0}},
	}
}

func (s *stream) malformed(event string, err error) error {
	return fmt.Errorf("%s: %s event: %w: %v", s.provider, event, gateway.ErrStreamMalformed, err)
}

// Usage returns the usage reported by message_start and message_delta
// events, once Next returned io.EOF.
func (s *stream) Usage() *gateway.Usage {
	if !s.done {
		return nil
	}
	return s.usage.usage()
}

// Close releases the stream; it may be called from any goroutine, at any
// time, more than once.
func (s *stream) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.body.Close() })
	return s.closeErr
}
