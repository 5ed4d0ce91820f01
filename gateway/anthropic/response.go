package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"aigw/gateway"
)

// toChatResponse translates a Message into a chat.completion. Text blocks
// make the content (joined as they come), tool_use blocks the tool calls,
// thinking blocks the reasoning content; redacted thinking, which carries
// nothing readable, is dropped. Under a json_schema plan the response
// tool's input alone is the content (text beside it would make the JSON
// invalid; a forced tool gets none anyway) and is not a tool call.
func toChatResponse(r *Response, pl plan, now time.Time) *gateway.ChatResponse {
	msg := gateway.Message{Role: "assistant"}
	var text, reasoning strings.Builder
	hasText := false
	for _, b := range r.Content {
		switch b.Type {
		case BlockText:
			if pl.responseTool != "" {
				continue // the answer is the response tool's input alone
			}
			text.WriteString(b.Text)
			hasText = true
		case BlockThinking:
			reasoning.WriteString(b.Thinking)
		case BlockToolUse:
			if pl.responseTool != "" && b.Name == pl.responseTool {
				text.Write(compactInput(b.Input))
				hasText = true
				continue
			}
			msg.ToolCalls = append(msg.ToolCalls, gateway.ToolCall{
				ID:       b.ID,
				Type:     "function",
				Function: gateway.FunctionCall{Name: b.Name, Arguments: string(compactInput(b.Input))},
			})
		}
	}
	switch {
	case hasText || len(msg.ToolCalls) == 0:
		msg.Content = gateway.TextContent(text.String())
	default:
		msg.Content = gateway.Content{Null: true}
	}
	msg.ReasoningContent = reasoning.String()
	finish := finishReason(r.StopReason)
	if finish == gateway.FinishToolCalls && len(msg.ToolCalls) == 0 {
		finish = gateway.FinishStop // the forced response tool was the answer
	}
	u := chatUsage(r.Usage)
	return &gateway.ChatResponse{
		ID:      r.ID,
		Object:  "chat.completion",
		Created: now.Unix(),
		Model:   r.Model,
		Choices: []gateway.Choice{{Index: 0, Message: msg, FinishReason: finish}},
		Usage:   &u,
	}
}

// compactInput is a tool input as compact JSON ({} when absent).
func compactInput(in json.RawMessage) []byte {
	if len(bytes.TrimSpace(in)) == 0 {
		return []byte("{}")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, in); err != nil {
		return in
	}
	return b.Bytes()
}

// finishReason maps a stop reason to an OpenAI finish reason.
func finishReason(stop string) string {
	switch stop {
	case StopMaxTokens, StopModelContextWindowExceeded:
		return gateway.FinishLength
	case StopToolUse:
		return gateway.FinishToolCalls
	case StopRefusal:
		return gateway.FinishContentFilter
	}
	return gateway.FinishStop // end_turn, stop_sequence, pause_turn
}

// chatUsage translates usage: the prompt counts every input token, cached
// or not.
func chatUsage(u Usage) gateway.Usage {
	prompt := u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
	return gateway.Usage{
		PromptTokens:     prompt,
		CompletionTokens: u.OutputTokens,
		TotalTokens:      prompt + u.OutputTokens,
		PromptTokensDetails: &gateway.PromptTokensDetails{
			CachedTokens:        u.CacheReadInputTokens,
			CacheCreationTokens: u.CacheCreationInputTokens,
		},
	}
}

// usageAcc accumulates a stream's usage: message_start's, then the
// cumulative counts of each message_delta.
type usageAcc struct {
	u    Usage
	seen bool
}

func (a *usageAcc) start(u Usage) { a.u, a.seen = u, true }

func (a *usageAcc) delta(d *DeltaUsage) {
	if d == nil {
		return
	}
	a.seen = true
	a.u.OutputTokens = d.OutputTokens
	if d.InputTokens != nil {
		a.u.InputTokens = *d.InputTokens
	}
	if d.CacheCreationInputTokens != nil {
		a.u.CacheCreationInputTokens = *d.CacheCreationInputTokens
	}
	if d.CacheReadInputTokens != nil {
		a.u.CacheReadInputTokens = *d.CacheReadInputTokens
	}
}

// usage is the accumulated usage, nil if none was reported.
func (a *usageAcc) usage() *gateway.Usage {
	if !a.seen {
		return nil
	}
	u := chatUsage(a.u)
	return &u
}

// ChatResponseOf reads a native Messages API answer in the OpenAI shape
// (for the gateway's output inspection of a passed-through answer).
func ChatResponseOf(body []byte) (*gateway.ChatResponse, error) {
	var r Response
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("anthropic: response does not parse: %w", err)
	}
	if r.Type != "message" {
		return nil, fmt.Errorf("anthropic: response is a %q, not a message", r.Type)
	}
	return toChatResponse(&r, plan{}, time.Now()), nil
}
