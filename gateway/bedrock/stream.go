package bedrock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"

	"aigw/gateway"
)

// errClosed is returned by Next after Close.
var errClosed = errors.New("stream closed")

// stream is a ConverseStream answer read as chat.completion.chunk values.
//
// It ends with io.EOF only when Bedrock closed the stream after both
// messageStop and metadata (which carries the usage; Bedrock always sends
// it last, so a stream without it is treated as cut). A transport error
// after both is ignored: the answer is complete. An in-stream exception is
// a *gateway.ProviderError with the status the API reference gives it; a
// connection cut before the end wraps gateway.ErrStreamCut (and the
// transport error, if any); a frame that does not decode (bad CRC, bad
// JSON, an event out of order) wraps gateway.ErrStreamMalformed.
type stream struct {
	provider string
	ctxErr   func() error
	es       *bedrockruntime.ConverseStreamEventStream
	rec      *bodyRecorder
	tr       *translator

	pending []*gateway.ChatChunk
	err     error

	closed    atomic.Bool
	closeOnce sync.Once
}

var _ gateway.Stream = (*stream)(nil)

func newStream(ctx context.Context, provider string, es *bedrockruntime.ConverseStreamEventStream, rec *bodyRecorder, tr *translator) *stream {
	return &stream{provider: provider, ctxErr: ctx.Err, es: es, rec: rec, tr: tr}
}

// Next returns the next chunk, io.EOF after a clean end, or the stream's
// error.
func (s *stream) Next() (*gateway.ChatChunk, error) {
	for {
		if len(s.pending) > 0 {
			c := s.pending[0]
			s.pending = s.pending[1:]
			return c, nil
		}
		if s.err != nil {
			return nil, s.err
		}
		ev, ok := <-s.es.Events()
		if !ok {
			s.err = s.end()
			continue
		}
		chunks, err := s.tr.event(ev)
		if err != nil {
			s.err = fmt.Errorf("%s: converse stream: %w", s.provider, err)
			s.Close()
			continue
		}
		s.pending = append(s.pending, chunks...)
	}
}

// end says why the event channel closed.
func (s *stream) end() error {
	if s.closed.Load() {
		return fmt.Errorf("%s: converse stream: %w", s.provider, errClosed)
	}
	if err := s.ctxErr(); err != nil {
		return fmt.Errorf("%s: converse stream: %w", s.provider, err)
	}
	transport := s.rec.get()
	if err := s.es.Err(); err != nil {
		var api smithy.APIError
		switch {
		case errors.As(err, &api):
			return exceptionError(s.provider, api)
		case transport != nil && s.tr.done():
			return io.EOF
		case transport != nil:
			return fmt.Errorf("%s: converse stream: %w: %w", s.provider, gateway.ErrStreamCut, transport)
		default:
			return fmt.Errorf("%s: converse stream: %w: %v", s.provider, gateway.ErrStreamMalformed, err)
		}
	}
	if !s.tr.done() {
		if transport != nil {
			return fmt.Errorf("%s: converse stream: %w: %w", s.provider, gateway.ErrStreamCut, transport)
		}
		return fmt.Errorf("%s: converse stream: %w (messageStop seen: %t, metadata seen: %t)", s.provider, gateway.ErrStreamCut, s.tr.stopped, s.tr.metadata)
	}
	return io.EOF
}

// Usage returns the usage of the metadata event, nil before it.
func (s *stream) Usage() *gateway.Usage { return s.tr.usage }

// Close releases the stream and its connection.
func (s *stream) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.es.Close()
	})
	return nil
}

// translator turns ConverseStream events into chat.completion.chunk values.
type translator struct {
	id, model string
	created   int64
	// tools maps a toolUse content block's index to its tool call index.
	tools    map[int32]int
	started  bool
	stopped  bool
	metadata bool
	usage    *gateway.Usage
}

func newTranslator(id, model string, created int64) *translator {
	return &translator{id: id, model: model, created: created, tools: map[int32]int{}}
}

// done reports whether the stream's end markers, messageStop and metadata,
// were seen.
func (t *translator) done() bool { return t.stopped && t.metadata }

// event translates one event into the chunks it yields, none for an event
// without an OpenAI counterpart (contentBlockStop, signatures, events newer
// than the SDK). An event out of order is an error wrapping
// gateway.ErrStreamMalformed.
func (t *translator) event(ev types.ConverseStreamOutput) ([]*gateway.ChatChunk, error) {
	if _, start := ev.(*types.ConverseStreamOutputMemberMessageStart); !start && !t.started {
		if _, unknown := ev.(*types.UnknownUnionMember); !unknown {
			return nil, fmt.Errorf("%w: %T before messageStart", gateway.ErrStreamMalformed, ev)
		}
	}
	switch e := ev.(type) {
	case *types.ConverseStreamOutputMemberMessageStart:
		if t.started {
			return nil, fmt.Errorf("%w: second messageStart", gateway.ErrStreamMalformed)
		}
		t.started = true
		role := string(e.Value.Role)
		if role == "" {
			role = "assistant"
		}
		empty := ""
		return t.chunk(gateway.Delta{Role: role, Content: &empty}, nil), nil

	case *types.ConverseStreamOutputMemberContentBlockStart:
		use, ok := e.Value.Start.(*types.ContentBlockStartMemberToolUse)
		if !ok {
			return nil, nil
		}
		idx := deref(e.Value.ContentBlockIndex)
		if _, dup := t.tools[idx]; dup {
			return nil, fmt.Errorf("%w: second toolUse start for content block %d", gateway.ErrStreamMalformed, idx)
		}
		n := len(t.tools)
		t.tools[idx] = n
		return t.chunk(gateway.Delta{ToolCalls: []gateway.ToolCall{{
			Index:    &n,
			ID:       deref(use.Value.ToolUseId),
			Type:     "function",
			Function: gateway.FunctionCall{Name: deref(use.Value.Name)},
		}}}, nil), nil

	case *types.ConverseStreamOutputMemberContentBlockDelta:
		switch d := e.Value.Delta.(type) {
		case *types.ContentBlockDeltaMemberText:
			if d.Value == "" {
				return nil, nil
			}
			text := d.Value
			return t.chunk(gateway.Delta{Content: &text}, nil), nil
		case *types.ContentBlockDeltaMemberToolUse:
			idx := deref(e.Value.ContentBlockIndex)
			n, ok := t.tools[idx]
			if !ok {
				return nil, fmt.Errorf("%w: toolUse delta for content block %d without a toolUse start", gateway.ErrStreamMalformed, idx)
			}
			return t.chunk(gateway.Delta{ToolCalls: []gateway.ToolCall{{
				Index:    &n,
				Function: gateway.FunctionCall{Arguments: deref(d.Value.Input)},
			}}}, nil), nil
		case *types.ContentBlockDeltaMemberReasoningContent:
			r, ok := d.Value.(*types.ReasoningContentBlockDeltaMemberText)
			if !ok || r.Value == "" {
				return nil, nil // signatures and redacted reasoning have no OpenAI counterpart
			}
			text := r.Value
			return t.chunk(gateway.Delta{ReasoningContent: &text}, nil), nil
		}
		return nil, nil

	case *types.ConverseStreamOutputMemberMessageStop:
		if t.stopped {
			return nil, fmt.Errorf("%w: second messageStop", gateway.ErrStreamMalformed)
		}
		t.stopped = true
		fr := finishReason(e.Value.StopReason)
		return t.chunk(gateway.Delta{}, &fr), nil

	case *types.ConverseStreamOutputMemberMetadata:
		if t.metadata {
			return nil, fmt.Errorf("%w: second metadata event", gateway.ErrStreamMalformed)
		}
		t.metadata = true
		t.usage = usage(e.Value.Usage)
		if t.usage == nil {
			return nil, nil
		}
		u := *t.usage
		if u.PromptTokensDetails != nil {
			d := *u.PromptTokensDetails
			u.PromptTokensDetails = &d
		}
		return []*gateway.ChatChunk{{
			ID:      t.id,
			Object:  "chat.completion.chunk",
			Created: t.created,
			Model:   t.model,
			Choices: []gateway.ChunkChoice{},
			Usage:   &u,
		}}, nil
	}
	return nil, nil // contentBlockStop, unknown events
}

func (t *translator) chunk(d gateway.Delta, finish *string) []*gateway.ChatChunk {
	return []*gateway.ChatChunk{{
		ID:      t.id,
		Object:  "chat.completion.chunk",
		Created: t.created,
		Model:   t.model,
		Choices: []gateway.ChunkChoice{{Index: 0, Delta: d, FinishReason: finish}},
	}}
}
