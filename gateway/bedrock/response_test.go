package bedrock

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"aigw/gateway"
)

func message(blocks ...types.ContentBlock) types.ConverseOutput {
	return &types.ConverseOutputMemberMessage{Value: types.Message{Role: types.ConversationRoleAssistant, Content: blocks}}
}

func textBlock(s string) types.ContentBlock { return &types.ContentBlockMemberText{Value: s} }

func toolUseBlock(id, name string, input any) types.ContentBlock {
	b := types.ToolUseBlock{ToolUseId: aws.String(id), Name: aws.String(name)}
	if input != nil {
		b.Input = document.NewLazyDocument(input)
	}
	return &types.ContentBlockMemberToolUse{Value: b}
}

func TestResponseTranslation(t *testing.T) {
	tests := []struct {
		name string
		out  bedrockruntime.ConverseOutput
		want string // the choice and usage, as JSON
	}{
		{"text",
			bedrockruntime.ConverseOutput{Output: message(textBlock("Hello")), StopReason: types.StopReasonEndTurn,
				Usage: &types.TokenUsage{InputTokens: aws.Int32(5), OutputTokens: aws.Int32(2), TotalTokens: aws.Int32(7)}},
			`{"choice":{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"},
			  "usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`},
		{"text blocks join",
			bedrockruntime.ConverseOutput{Output: message(textBlock("Hel"), textBlock("lo")), StopReason: types.StopReasonStopSequence},
			`{"choice":{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}}`},
		{"text and tool use",
			bedrockruntime.ConverseOutput{Output: message(textBlock("Looking."),
				toolUseBlock("tooluse_1", "top_song", map[string]any{"sign": "WZPZ"}),
				toolUseBlock("tooluse_2", "clock", nil)), StopReason: types.StopReasonToolUse},
			`{"choice":{"index":0,"message":{"role":"assistant","content":"Looking.","tool_calls":[
			   {"id":"tooluse_1","type":"function","function":{"name":"top_song","arguments":"{\"sign\":\"WZPZ\"}"}},
			   {"id":"tooluse_2","type":"function","function":{"name":"clock","arguments":"{}"}}]},"finish_reason":"tool_calls"}}`},
		{"tool use only has null content",
			bedrockruntime.ConverseOutput{Output: message(toolUseBlock("t", "f", map[string]any{"a": []any{1, 2}})), StopReason: types.StopReasonToolUse},
			`{"choice":{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
			   {"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\":[1,2]}"}}]},"finish_reason":"tool_calls"}}`},
		{"reasoning",
			bedrockruntime.ConverseOutput{Output: message(
				&types.ContentBlockMemberReasoningContent{Value: &types.ReasoningContentBlockMemberReasoningText{Value: types.ReasoningTextBlock{Text: aws.String("Think."), Signature: aws.String("sig")}}},
				&types.ContentBlockMemberReasoningContent{Value: &types.ReasoningContentBlockMemberRedactedContent{Value: []byte("x")}},
				textBlock("Done.")), StopReason: types.StopReasonEndTurn},
			`{"choice":{"index":0,"message":{"role":"assistant","content":"Done.","reasoning_content":"Think."},"finish_reason":"stop"}}`},
		{"empty answer",
			bedrockruntime.ConverseOutput{Output: message(), StopReason: types.StopReasonMaxTokens},
			`{"choice":{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"length"}}`},
		{"guardrail",
			bedrockruntime.ConverseOutput{Output: message(textBlock("Sorry.")), StopReason: types.StopReasonGuardrailIntervened},
			`{"choice":{"index":0,"message":{"role":"assistant","content":"Sorry."},"finish_reason":"content_filter"}}`},
		{"cache usage",
			bedrockruntime.ConverseOutput{Output: message(textBlock("x")), StopReason: types.StopReasonEndTurn,
				Usage: &types.TokenUsage{InputTokens: aws.Int32(10), OutputTokens: aws.Int32(3), TotalTokens: aws.Int32(1513),
					CacheReadInputTokens: aws.Int32(1000), CacheWriteInputTokens: aws.Int32(500)}},
			`{"choice":{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":"stop"},
			  "usage":{"prompt_tokens":1510,"completion_tokens":3,"total_tokens":1513,"prompt_tokens_details":{"cached_tokens":1000,"cache_creation_tokens":500}}}`},
		{"cache read of zero",
			bedrockruntime.ConverseOutput{Output: message(textBlock("x")), StopReason: types.StopReasonEndTurn,
				Usage: &types.TokenUsage{InputTokens: aws.Int32(10), OutputTokens: aws.Int32(3), CacheReadInputTokens: aws.Int32(0)}},
			`{"choice":{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":"stop"},
			  "usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":0}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := chatResponse("chatcmpl-1", testModel, 42, &tt.out)
			if err != nil {
				t.Fatalf("chatResponse: %v", err)
			}
			if resp.ID != "chatcmpl-1" || resp.Object != "chat.completion" || resp.Model != testModel || resp.Created != 42 || len(resp.Choices) != 1 {
				t.Fatalf("envelope = %s", mustJSON(resp))
			}
			got, _ := json.Marshal(struct {
				Choice gateway.Choice `json:"choice"`
				Usage  *gateway.Usage `json:"usage,omitempty"`
			}{resp.Choices[0], resp.Usage})
			if !jsonEqual(t, got, []byte(tt.want)) {
				t.Errorf("got  %s\nwant %s", got, compactJSON(t, tt.want))
			}
		})
	}
	if _, err := chatResponse("id", testModel, 0, &bedrockruntime.ConverseOutput{}); err == nil {
		t.Error("an answer without a message translated")
	}
}

func TestFinishReason(t *testing.T) {
	want := map[types.StopReason]string{
		types.StopReasonEndTurn:                    gateway.FinishStop,
		types.StopReasonStopSequence:               gateway.FinishStop,
		types.StopReasonMaxTokens:                  gateway.FinishLength,
		types.StopReasonModelContextWindowExceeded: gateway.FinishLength,
		types.StopReasonToolUse:                    gateway.FinishToolCalls,
		types.StopReasonGuardrailIntervened:        gateway.FinishContentFilter,
		types.StopReasonContentFiltered:            gateway.FinishContentFilter,
		types.StopReasonMalformedModelOutput:       gateway.FinishStop,
		types.StopReasonMalformedToolUse:           gateway.FinishStop,
		"a_new_reason":                             gateway.FinishStop,
	}
	for _, r := range types.StopReason("").Values() {
		if _, ok := want[r]; !ok {
			t.Errorf("stop reason %q has no expected mapping", r)
		}
	}
	for r, fr := range want {
		if got := finishReason(r); got != fr {
			t.Errorf("finishReason(%q) = %q, want %q", r, got, fr)
		}
	}
}

// TestChatToolUse runs the tool use answer through the SDK's own decoding.
func TestChatToolUse(t *testing.T) {
	p, _ := newTestProvider(t)
	req := userRequest("What is the most popular song on WZPZ?")
	req.Tools = []gateway.Tool{
		{Type: "function", Function: gateway.FunctionDecl{Name: "top_song", Parameters: json.RawMessage(`{"type":"object","properties":{"sign":{"type":"string"}}}`)}},
		{Type: "function", Function: gateway.FunctionDecl{Name: "top_album"}},
	}
	req.ToolChoice = json.RawMessage(`{"type":"function","function":{"name":"top_album"}}`)
	resp, err := p.Chat(context.Background(), req)
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	c := resp.Choices[0]
	if c.FinishReason != gateway.FinishToolCalls || !strings.HasPrefix(c.Message.Content.Text, "I'll look up") || len(c.Message.ToolCalls) != 1 {
		t.Fatalf("choice = %s", mustJSON(c))
	}
	tc := c.Message.ToolCalls[0]
	if tc.ID != "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q" || tc.Type != "function" || tc.Function.Name != "top_album" || tc.Function.Arguments != `{"limit":1,"sign":"WZPZ"}` {
		t.Errorf("tool call = %s", mustJSON(tc))
	}
	if want := (&gateway.Usage{PromptTokens: 375, CompletionTokens: 36, TotalTokens: 411}); !usageEqual(resp.Usage, want) {
		t.Errorf("usage = %s", mustJSON(resp.Usage))
	}
}

func TestTranslatorEvents(t *testing.T) {
	start := &types.ConverseStreamOutputMemberMessageStart{Value: types.MessageStartEvent{Role: types.ConversationRoleAssistant}}
	textDelta := func(i int32, s string) types.ConverseStreamOutput {
		return &types.ConverseStreamOutputMemberContentBlockDelta{Value: types.ContentBlockDeltaEvent{ContentBlockIndex: aws.Int32(i), Delta: &types.ContentBlockDeltaMemberText{Value: s}}}
	}
	toolStart := func(i int32, id, name string) types.ConverseStreamOutput {
		return &types.ConverseStreamOutputMemberContentBlockStart{Value: types.ContentBlockStartEvent{ContentBlockIndex: aws.Int32(i),
			Start: &types.ContentBlockStartMemberToolUse{Value: types.ToolUseBlockStart{ToolUseId: aws.String(id), Name: aws.String(name)}}}}
	}
	toolDelta := func(i int32, s string) types.ConverseStreamOutput {
		return &types.ConverseStreamOutputMemberContentBlockDelta{Value: types.ContentBlockDeltaEvent{ContentBlockIndex: aws.Int32(i),
			Delta: &types.ContentBlockDeltaMemberToolUse{Value: types.ToolUseBlockDelta{Input: aws.String(s)}}}}
	}
	reasoning := func(d types.ReasoningContentBlockDelta) types.ConverseStreamOutput {
		return &types.ConverseStreamOutputMemberContentBlockDelta{Value: types.ContentBlockDeltaEvent{ContentBlockIndex: aws.Int32(0),
			Delta: &types.ContentBlockDeltaMemberReasoningContent{Value: d}}}
	}
	blockStop := func(i int32) types.ConverseStreamOutput {
		return &types.ConverseStreamOutputMemberContentBlockStop{Value: types.ContentBlockStopEvent{ContentBlockIndex: aws.Int32(i)}}
	}
	stop := func(r types.StopReason) types.ConverseStreamOutput {
		return &types.ConverseStreamOutputMemberMessageStop{Value: types.MessageStopEvent{StopReason: r}}
	}
	meta := func(u *types.TokenUsage) types.ConverseStreamOutput {
		return &types.ConverseStreamOutputMemberMetadata{Value: types.ConverseStreamMetadataEvent{Usage: u,
			Metrics: &types.ConverseStreamMetrics{LatencyMs: aws.Int64(10)}}}
	}
	tests := []struct {
		name      string
		events    []types.ConverseStreamOutput
		want      []string // the chunks' choices (or usage for a usage chunk), as JSON
		malformed bool
		done      bool
	}{
		{"reasoning then text",
			[]types.ConverseStreamOutput{start,
				reasoning(&types.ReasoningContentBlockDeltaMemberText{Value: "Let me think."}),
				reasoning(&types.ReasoningContentBlockDeltaMemberSignature{Value: "sig"}),
				reasoning(&types.ReasoningContentBlockDeltaMemberRedactedContent{Value: []byte("r")}),
				blockStop(0), textDelta(1, "Answer."), textDelta(1, ""), blockStop(1),
				stop(types.StopReasonMaxTokens), meta(&types.TokenUsage{InputTokens: aws.Int32(4), OutputTokens: aws.Int32(6), TotalTokens: aws.Int32(10)})},
			[]string{
				`[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]`,
				`[{"index":0,"delta":{"reasoning_content":"Let me think."},"finish_reason":null}]`,
				`[{"index":0,"delta":{"content":"Answer."},"finish_reason":null}]`,
				`[{"index":0,"delta":{},"finish_reason":"length"}]`,
				`{"prompt_tokens":4,"completion_tokens":6,"total_tokens":10}`,
			}, false, true},
		{"two tools",
			[]types.ConverseStreamOutput{start, toolStart(1, "t1", "a"), toolDelta(1, `{"x":`), toolDelta(1, `1}`), blockStop(1),
				toolStart(3, "t2", "b"), toolDelta(3, `{}`), stop(types.StopReasonToolUse), meta(nil)},
			[]string{
				`[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]`,
				`[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"a","arguments":""}}]},"finish_reason":null}]`,
				`[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]},"finish_reason":null}]`,
				`[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]},"finish_reason":null}]`,
				`[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"t2","type":"function","function":{"name":"b","arguments":""}}]},"finish_reason":null}]`,
				`[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]},"finish_reason":null}]`,
				`[{"index":0,"delta":{},"finish_reason":"tool_calls"}]`,
			}, false, true},
		{"guardrail, unknown event skipped",
			[]types.ConverseStreamOutput{start, &types.UnknownUnionMember{Tag: "future", Value: []byte("{}")}, stop(types.StopReasonGuardrailIntervened)},
			[]string{
				`[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]`,
				`[{"index":0,"delta":{},"finish_reason":"content_filter"}]`,
			}, false, false},
		{"event before messageStart", []types.ConverseStreamOutput{textDelta(0, "x")}, nil, true, false},
		{"second messageStart", []types.ConverseStreamOutput{start, start}, []string{`[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]`}, true, false},
		{"second tool start for a block", []types.ConverseStreamOutput{start, toolStart(1, "a", "a"), toolStart(1, "b", "b")},
			[]string{`[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]`, `[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"a","arguments":""}}]},"finish_reason":null}]`}, true, false},
		{"second metadata", []types.ConverseStreamOutput{start, stop(types.StopReasonEndTurn), meta(nil), meta(nil)},
			[]string{`[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]`, `[{"index":0,"delta":{},"finish_reason":"stop"}]`}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTranslator("chatcmpl-x", testModel, 7)
			var got []string
			var err error
			for _, ev := range tt.events {
				var chunks []*gateway.ChatChunk
				chunks, err = tr.event(ev)
				if err != nil {
					break
				}
				for _, c := range chunks {
					if c.ID != "chatcmpl-x" || c.Object != "chat.completion.chunk" || c.Model != testModel || c.Created != 7 {
						t.Errorf("chunk envelope = %s", mustJSON(c))
					}
					if c.Usage != nil {
						got = append(got, mustJSON(c.Usage))
					} else {
						got = append(got, mustJSON(c.Choices))
					}
				}
			}
			if tt.malformed != errors.Is(err, gateway.ErrStreamMalformed) || (err != nil && !tt.malformed) {
				t.Fatalf("err = %v, want malformed %t", err, tt.malformed)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("chunks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for i := range got {
				if !jsonEqual(t, []byte(got[i]), []byte(tt.want[i])) {
					t.Errorf("chunk %d = %s, want %s", i, got[i], tt.want[i])
				}
			}
			if tr.done() != tt.done {
				t.Errorf("done = %t, want %t", tr.done(), tt.done)
			}
		})
	}
}
