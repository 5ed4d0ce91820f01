// Package mock is the built-in provider of the embedded default: it answers
// in process, deterministically and at once, so a fresh `aigw serve` works
// with no provider account. It echoes the last user message, calls the
// first declared tool when the request requires a tool call, streams word
// by word, and reports exact usage (its own token count).
package mock

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"aigw/gateway"
)

// Provider is the mock provider.
type Provider struct {
	name string
	n    atomic.Uint64
}

var (
	_ gateway.Provider = (*Provider)(nil)
	_ gateway.Embedder = (*Provider)(nil)
)

// New returns a mock provider called name.
func New(name string) *Provider { return &Provider{name: name} }

func (p *Provider) id(prefix string) string {
	return prefix + strconv.FormatUint(p.n.Add(1), 36)
}

// answer is what the mock says to req: text, or a tool call.
func answer(req *gateway.ChatRequest) (text string, call *gateway.ToolCall) {
	last := ""
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == "user" || req.Messages[i].Role == "tool" {
			last = req.Messages[i].Content.String()
			break
		}
	}
	if len(req.Tools) > 0 && (string(req.ToolChoice) == `"required"` || strings.HasPrefix(string(req.ToolChoice), "{")) {
		name := req.Tools[0].Function.Name
		var forced struct {
			Function struct{ Name string } `json:"function"`
		}
		if json.Unmarshal(req.ToolChoice, &forced) == nil && forced.Function.Name != "" {
			name = forced.Function.Name
		}
		args, _ := json.Marshal(map[string]string{"input": last})
		return "", &gateway.ToolCall{ID: "call_mock_" + shortHash(last), Type: "function", Function: gateway.FunctionCall{Name: name, Arguments: string(args)}}
	}
	if req.ResponseFormat != nil && req.ResponseFormat.Type != "text" {
		b, _ := json.Marshal(map[string]string{"echo": last})
		return string(b), nil
	}
	if len(last) > 200 {
		last = last[:200]
	}
	text = "This is the aigw mock provider. You said: " + last
	if n := req.MaxOutputTokens(); n > 0 {
		words := strings.Fields(text)
		if len(words) > n {
			text = strings.Join(words[:n], " ")
		}
	}
	return text, nil
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%x", h[:6])
}

func finish(req *gateway.ChatRequest, text string, call *gateway.ToolCall) string {
	switch {
	case call != nil:
		return gateway.FinishToolCalls
	case req.MaxOutputTokens() > 0 && len(strings.Fields(text)) >= req.MaxOutputTokens():
		return gateway.FinishLength
	}
	return gateway.FinishStop
}

func usage(req *gateway.ChatRequest, text string, call *gateway.ToolCall) *gateway.Usage {
	out := len(strings.Fields(text))
	if call != nil {
		out = gateway.EstimateTokens(call.Function.Name + call.Function.Arguments)
	}
	in := gateway.EstimatePromptTokens(req)
	return &gateway.Usage{PromptTokens: in, CompletionTokens: out, TotalTokens: in + out}
}

// Chat answers at once.
func (p *Provider) Chat(ctx context.Context, req *gateway.ChatRequest) (*gateway.ChatResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	text, call := answer(req)
	msg := gateway.Message{Role: "assistant", Content: gateway.TextContent(text)}
	if call != nil {
		msg.Content = gateway.Content{Null: true}
		msg.ToolCalls = []gateway.ToolCall{*call}
	}
	return &gateway.ChatResponse{
		ID: p.id("chatcmpl-mock-"), Object: "chat.completion", Created: time.Now().Unix(), Model: req.Model,
		Choices: []gateway.Choice{{Index: 0, Message: msg, FinishReason: finish(req, text, call)}},
		Usage:   usage(req, text, call),
	}, nil
}

// ChatStream streams the answer word by word.
func (p *Provider) ChatStream(ctx context.Context, req *gateway.ChatRequest) (gateway.Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	text, call := answer(req)
	s := &stream{ctx: ctx, id: p.id("chatcmpl-mock-"), model: req.Model, created: time.Now().Unix(), usage: usage(req, text, call)}
	role := "assistant"
	empty := ""
	s.deltas = append(s.deltas, gateway.Delta{Role: role, Content: &empty})
	if call != nil {
		zero := 0
		c := *call
		c.Index = &zero
		s.deltas = append(s.deltas, gateway.Delta{ToolCalls: []gateway.ToolCall{c}})
	} else {
		for i, w := range strings.Fields(text) {
			if i > 0 {
				w = " " + w
			}
			s.deltas = append(s.deltas, gateway.Delta{Content: &w})
		}
	}
	s.finish = finish(req, text, call)
	return s, nil
}

type stream struct {
	ctx     context.Context
	id      string
	model   string
	created int64
	deltas  []gateway.Delta
	finish  string
	usage   *gateway.Usage
	i       int
}

func (s *stream) Next() (*gateway.ChatChunk, error) {
	if err := s.ctx.Err(); err != nil {
		return nil, err
	}
	c := &gateway.ChatChunk{ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model}
	switch {
	case s.i < len(s.deltas):
		c.Choices = []gateway.ChunkChoice{{Delta: s.deltas[s.i]}}
	case s.i == len(s.deltas):
		f := s.finish
		c.Choices = []gateway.ChunkChoice{{FinishReason: &f}}
	case s.i == len(s.deltas)+1:
		c.Choices = []gateway.ChunkChoice{}
		u := *s.usage
		c.Usage = &u
	default:
		return nil, io.EOF
	}
	s.i++
	return c, nil
}

func (s *stream) Usage() *gateway.Usage {
	if s.i > len(s.deltas)+1 {
		return s.usage
	}
	return nil
}

func (s *stream) Close() error { return nil }

// Embed returns deterministic unit vectors of 8 dimensions (or the
// requested dimensions) derived from each input's SHA-256.
func (p *Provider) Embed(ctx context.Context, req *gateway.EmbeddingRequest) (*gateway.EmbeddingResponse, error) {
	if req.Input.Raw != nil {
		return nil, gateway.Errorf("input", "the mock provider embeds text input only")
	}
	dims := 8
	if req.Dimensions != nil && *req.Dimensions > 0 && *req.Dimensions <= 4096 {
		dims = *req.Dimensions
	}
	out := &gateway.EmbeddingResponse{Object: "list", Model: req.Model}
	for i, t := range req.Input.Texts {
		vec := make([]float64, dims)
		var norm float64
		for d := range vec {
			h := sha256.Sum256([]byte(strconv.Itoa(d) + "\x00" + t))
			vec[d] = float64(int32(binary.BigEndian.Uint32(h[:4]))) / math.MaxInt32
			norm += vec[d] * vec[d]
		}
		for d := range vec {
			vec[d] /= math.Sqrt(norm)
		}
		b, _ := json.Marshal(vec)
		out.Data = append(out.Data, gateway.Embedding{Object: "embedding", Index: i, Embedding: b})
		out.Usage.PromptTokens += gateway.EstimateTokens(t)
	}
	out.Usage.TotalTokens = out.Usage.PromptTokens
	return out, nil
}
