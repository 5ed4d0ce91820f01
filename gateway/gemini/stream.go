package gemini

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"aigw/gateway"
)

// stream is a streamed completion read from streamGenerateContent?alt=sse:
// each data event is a whole GenerateContentResponse carrying the parts
// generated since the previous one.
//
// Gemini sends no end marker: the stream is complete when every candidate
// seen has a finishReason (or the prompt was blocked) and the body then
// ends on an event boundary. Anything else is an error wrapping
// gateway.ErrStreamCut; an event that does not parse wraps
// gateway.ErrStreamMalformed; an error object in the stream is a
// *gateway.ProviderError.
type stream struct {
	p       *Provider
	body    io.ReadCloser
	sse     *gateway.SSEReader
	id      string
	model   string
	created int64

	cands    map[int]*candidateState
	blocked  bool
	usage    *gateway.Usage
	eof      bool // the body ended cleanly after the end; the usage chunk may follow
	usageOut bool // the usage chunk was returned
	err      error
	close    sync.Once
}

var _ gateway.Stream = (*stream)(nil)

// candidateState is what a stream knows of one candidate.
type candidateState struct {
	roleSent  bool
	toolCalls int // tool calls so far: the next call's index
	finished  bool
}

func newStream(p *Provider, body io.ReadCloser, model string) *stream {
	return &stream{
		p:       p,
		body:    body,
		sse:     gateway.NewSSEReader(body, 0),
		model:   model,
		created: time.Now().Unix(),
		cands:   make(map[int]*candidateState),
	}
}

// Next returns the next chunk; io.EOF after a complete stream.
func (s *stream) Next() (*gateway.ChatChunk, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.eof {
		if s.usage != nil && !s.usageOut {
			s.usageOut = true
			return s.chunk(nil, s.usage), nil
		}
		return nil, io.EOF
	}
	for {
		ev, err := s.sse.Next()
		if err != nil {
			return s.end(err)
		}
		var gr generateResponse
		if err := json.Unmarshal(ev.Data, &gr); err != nil {
			return nil, s.fail(fmt.Errorf("gemini %s: %w: %w", s.p.name, gateway.ErrStreamMalformed, err))
		}
		if gr.Error != nil {
			return nil, s.fail(s.p.apiError(gr.Error, 0, nil))
		}
		if c := s.translate(&gr); c != nil {
			return c, nil
		}
	}
}

// end handles the end of the body: a clean end after the last candidate
// finished is the stream's end; anything else is a failure.
func (s *stream) end(err error) (*gateway.ChatChunk, error) {
	switch {
	case err == io.EOF && s.complete():
		s.eof = true
		s.Close()
		return s.Next()
	case err == io.EOF:
		return nil, s.fail(fmt.Errorf("gemini %s: %w: the body ended before a finishReason", s.p.name, gateway.ErrStreamCut))
	case errors.Is(err, gateway.ErrSSETooLarge):
		return nil, s.fail(fmt.Errorf("gemini %s: %w: %w", s.p.name, gateway.ErrStreamMalformed, err))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, s.fail(fmt.Errorf("gemini %s: read stream: %w", s.p.name, err))
	}
	return nil, s.fail(fmt.Errorf("gemini %s: %w: %w", s.p.name, gateway.ErrStreamCut, err))
}

// complete reports whether the answer is whole: the prompt was blocked, or
// candidates came and all of them finished.
func (s *stream) complete() bool {
	if s.blocked {
		return true
	}
	if len(s.cands) == 0 {
		return false
	}
	for _, c := range s.cands {
		if !c.finished {
			return false
		}
	}
	return true
}

func (s *stream) fail(err error) error {
	s.err = err
	s.Close()
	return err
}

// translate turns one event into a chunk; nil if it adds nothing.
func (s *stream) translate(gr *generateResponse) *gateway.ChatChunk {
	if s.id == "" {
		s.id = gr.ResponseID
		if s.id == "" {
			s.id = newID("chatcmpl-")
		}
	}
	if gr.ModelVersion != "" {
		s.model = gr.ModelVersion
	}
	if gr.UsageMetadata != nil {
		s.usage = convertUsage(gr.UsageMetadata)
	}
	var choices []gateway.ChunkChoice
	for i := range gr.Candidates {
		c := &gr.Candidates[i]
		st := s.cands[c.Index]
		if st == nil {
			st = &candidateState{}
			s.cands[c.Index] = st
		}
		text, reasoning, calls := readParts(c.Content, func() int { st.toolCalls++; return st.toolCalls - 1 })
		var ch gateway.ChunkChoice
		ch.Index = c.Index
		if !st.roleSent {
			ch.Delta.Role, st.roleSent = "assistant", true
		}
		if text != "" {
			ch.Delta.Content = &text
		}
		if reasoning != "" {
			ch.Delta.ReasoningContent = &reasoning
		}
		ch.Delta.ToolCalls = calls
		if fr := finishReason(c.FinishReason, st.toolCalls > 0); fr != "" {
			ch.FinishReason, st.finished = &fr, true
		}
		if ch.Delta.Role == "" && ch.Delta.Content == nil && ch.Delta.ReasoningContent == nil && len(calls) == 0 && ch.FinishReason == nil {
			continue
		}
		choices = append(choices, ch)
	}
	if len(gr.Candidates) == 0 && gr.PromptFeedback != nil && gr.PromptFeedback.BlockReason != "" && !s.blocked {
		// The prompt was blocked: an empty answer, filtered.
		s.blocked = true
		empty, fr := "", gateway.FinishContentFilter
		ch := gateway.ChunkChoice{Delta: gateway.Delta{Content: &empty}, FinishReason: &fr}
		if st := s.cands[0]; st == nil || !st.roleSent {
			ch.Delta.Role = "assistant"
		}
		choices = append(choices, ch)
	}
	if len(choices) == 0 {
		return nil
	}
	return s.chunk(choices, nil)
}

func (s *stream) chunk(choices []gateway.ChunkChoice, u *gateway.Usage) *gateway.ChatChunk {
	if choices == nil {
		choices = []gateway.ChunkChoice{}
	}
	return &gateway.ChatChunk{
		ID:      s.id,
		Object:  "chat.completion.chunk",
		Created: s.created,
		Model:   s.model,
		Choices: choices,
		Usage:   u,
	}
}

// Usage returns the usage of the last usageMetadata, nil if none came.
func (s *stream) Usage() *gateway.Usage { return s.usage }

// Close releases the connection; it may be called more than once. It does
// not drain the body: a stream closed early may have much left, or hang.
func (s *stream) Close() error {
	s.close.Do(func() { s.body.Close() })
	return nil
}
