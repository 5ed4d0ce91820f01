package bedrock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"aigw/gateway"
)

// chatResponse translates a Converse answer into a chat.completion.
func chatResponse(id, model string, created int64, out *bedrockruntime.ConverseOutput) (*gateway.ChatResponse, error) {
	msg, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok {
		return nil, fmt.Errorf("answer has no message (output %T)", out.Output)
	}
	var text, reasoning strings.Builder
	var calls []gateway.ToolCall
	for _, block := range msg.Value.Content {
		switch b := block.(type) {
		case *types.ContentBlockMemberText:
			text.WriteString(b.Value)
		case *types.ContentBlockMemberToolUse:
			args, err := documentJSON(b.Value.Input)
			if err != nil {
				return nil, fmt.Errorf("tool use %q input: %w", deref(b.Value.ToolUseId), err)
			}
			calls = append(calls, gateway.ToolCall{
				ID:       deref(b.Value.ToolUseId),
				Type:     "function",
				Function: gateway.FunctionCall{Name: deref(b.Value.Name), Arguments: args},
			})
		case *types.ContentBlockMemberReasoningContent:
			if r, ok := b.Value.(*types.ReasoningContentBlockMemberReasoningText); ok {
				reasoning.WriteString(deref(r.Value.Text))
			}
		}
	}
	m := gateway.Message{Role: "assistant", ToolCalls: calls, ReasoningContent: reasoning.String()}
	if text.Len() > 0 || len(calls) == 0 {
		m.Content = gateway.TextContent(text.String())
	} else {
		m.Content = gateway.Content{Null: true}
	}
	return &gateway.ChatResponse{
		ID:      id,
		Object:  "chat.completion",
		Created: created,
		Model:   model,
		Choices: []gateway.Choice{{Index: 0, Message: m, FinishReason: finishReason(out.StopReason)}},
		Usage:   usage(out.Usage),
	}, nil
}

// finishReason maps a Converse stop reason to an OpenAI finish reason.
func finishReason(r types.StopReason) string {
	switch r {
	case types.StopReasonMaxTokens, types.StopReasonModelContextWindowExceeded:
		return gateway.FinishLength
	case types.StopReasonToolUse:
		return gateway.FinishToolCalls
	case types.StopReasonGuardrailIntervened, types.StopReasonContentFiltered:
		return gateway.FinishContentFilter
	default: // end_turn, stop_sequence, malformed_model_output, malformed_tool_use, new reasons
		return gateway.FinishStop
	}
}

// usage translates Converse token usage; nil when Bedrock reported none.
// Bedrock counts cache reads and writes apart from inputTokens; OpenAI's
// prompt_tokens holds them.
func usage(u *types.TokenUsage) *gateway.Usage {
	if u == nil {
		return nil
	}
	in, out := int(deref(u.InputTokens)), int(deref(u.OutputTokens))
	read, write := int(deref(u.CacheReadInputTokens)), int(deref(u.CacheWriteInputTokens))
	prompt := in + read + write
	g := &gateway.Usage{PromptTokens: prompt, CompletionTokens: out, TotalTokens: prompt + out}
	if u.CacheReadInputTokens != nil || u.CacheWriteInputTokens != nil {
		g.PromptTokensDetails = &gateway.PromptTokensDetails{CachedTokens: read, CacheCreationTokens: write}
	}
	return g
}

// documentJSON returns a tool input document as compact JSON; a missing
// input is an empty object.
func documentJSON(d document.Interface) (string, error) {
	if d == nil {
		return "{}", nil
	}
	b, err := d.MarshalSmithyDocument()
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return "", err
	}
	if buf.Len() == 0 || buf.String() == "null" {
		return "{}", nil
	}
	return buf.String(), nil
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
