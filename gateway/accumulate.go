package gateway

import "strings"

// Accumulator assembles a streamed answer from its chunks: the message of
// each choice (content, reasoning, tool calls with their arguments joined),
// finish reasons and usage. The result is what the ledger commits for a
// stream and what output guardrails inspect.
type Accumulator struct {
	id, model string
	created   int64
	choices   []accChoice
	usage     *Usage
	sawUsage  bool
}

type accChoice struct {
	role      string
	content   strings.Builder
	reasoning strings.Builder
	refusal   strings.Builder
	calls     []ToolCall
	finish    string
}

// Add adds a chunk.
func (a *Accumulator) Add(c *ChatChunk) {
	if a.id == "" {
		a.id, a.model, a.created = c.ID, c.Model, c.Created
	}
	if c.Usage != nil {
		u := *c.Usage
		a.usage, a.sawUsage = &u, true
	}
	for i := range c.Choices {
		ch := &c.Choices[i]
		if ch.Index < 0 || ch.Index > 127 {
			continue
		}
		for len(a.choices) <= ch.Index {
			a.choices = append(a.choices, accChoice{})
		}
		ac := &a.choices[ch.Index]
		d := &ch.Delta
		if d.Role != "" {
			ac.role = d.Role
		}
		if d.Content != nil {
			ac.content.WriteString(*d.Content)
		}
		if d.ReasoningContent != nil {
			ac.reasoning.WriteString(*d.ReasoningContent)
		}
		if d.Refusal != nil {
			ac.refusal.WriteString(*d.Refusal)
		}
		for _, tc := range d.ToolCalls {
			idx := len(ac.calls)
			if tc.Index != nil {
				idx = *tc.Index
			}
			if idx < 0 || idx > 255 {
				continue
			}
			for len(ac.calls) <= idx {
				ac.calls = append(ac.calls, ToolCall{Type: "function"})
			}
			call := &ac.calls[idx]
			if tc.ID != "" {
				call.ID = tc.ID
			}
			if tc.Type != "" {
				call.Type = tc.Type
			}
			call.Function.Name += tc.Function.Name
			call.Function.Arguments += tc.Function.Arguments
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			ac.finish = *ch.FinishReason
		}
	}
}

// Finish is the first choice's finish reason so far.
func (a *Accumulator) Finish() string {
	if len(a.choices) == 0 {
		return ""
	}
	return a.choices[0].finish
}

// Text is the first choice's content so far.
func (a *Accumulator) Text() string {
	if len(a.choices) == 0 {
		return ""
	}
	return a.choices[0].content.String()
}

// Response returns the assembled answer as a chat.completion.
func (a *Accumulator) Response(u *Usage) *ChatResponse {
	r := &ChatResponse{ID: a.id, Object: "chat.completion", Created: a.created, Model: a.model, Usage: u, Choices: make([]Choice, len(a.choices))}
	for i := range a.choices {
		ac := &a.choices[i]
		m := Message{Role: ac.role, Content: TextContent(ac.content.String()), ReasoningContent: ac.reasoning.String(), Refusal: ac.refusal.String(), ToolCalls: ac.calls}
		if m.Role == "" {
			m.Role = "assistant"
		}
		if len(ac.calls) > 0 && ac.content.Len() == 0 {
			m.Content = Content{Null: true}
		}
		r.Choices[i] = Choice{Index: i, Message: m, FinishReason: ac.finish}
	}
	return r
}

// Estimate counts the usage of the answer so far when the upstream
// reported none (req may be nil when unknown).
func (a *Accumulator) Estimate(req *ChatRequest) *Usage {
	if a.usage != nil {
		return a.usage
	}
	u := &Usage{Estimated: true}
	if req != nil {
		u.PromptTokens = EstimatePromptTokens(req)
	}
	for i := range a.choices {
		ac := &a.choices[i]
		u.CompletionTokens += EstimateTokens(ac.content.String()) + EstimateTokens(ac.reasoning.String())
		for _, tc := range ac.calls {
			u.CompletionTokens += EstimateTokens(tc.Function.Name) + EstimateTokens(tc.Function.Arguments)
		}
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// UsageChunk returns the final usage-only chunk OpenAI sends when the
// client asked for usage.
func (a *Accumulator) UsageChunk(u *Usage) *ChatChunk {
	return &ChatChunk{ID: a.id, Object: "chat.completion.chunk", Created: a.created, Model: a.model, Choices: []ChunkChoice{}, Usage: u}
}
