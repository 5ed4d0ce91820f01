package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	sdk "github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/packages/ssestream"

	"aigw/gateway"
)

func ptr[T any](v T) *T { return &v }

// textChunk, toolChunk and finishChunk build OpenAI chunks.
func textChunk(s string) *gateway.ChatChunk {
	return &gateway.ChatChunk{Object: "chat.completion.chunk", Choices: []gateway.ChunkChoice{{Delta: gateway.Delta{Content: &s}}}}
}

func toolChunk(calls ...gateway.ToolCall) *gateway.ChatChunk {
	return &gateway.ChatChunk{Object: "chat.completion.chunk", Choices: []gateway.ChunkChoice{{Delta: gateway.Delta{ToolCalls: calls}}}}
}

func call(index int, id, name, args string) gateway.ToolCall {
	tc := gateway.ToolCall{Index: &index, ID: id, Function: gateway.FunctionCall{Name: name, Arguments: args}}
	if id != "" {
		tc.Type = "function"
	}
	return tc
}

func finishChunk(reason string) *gateway.ChatChunk {
	return &gateway.ChatChunk{Object: "chat.completion.chunk", Choices: []gateway.ChunkChoice{{FinishReason: &reason}}}
}

func usageChunk(u gateway.Usage) *gateway.ChatChunk {
	return &gateway.ChatChunk{Object: "chat.completion.chunk", Choices: []gateway.ChunkChoice{}, Usage: &u}
}

// checkGrammar decodes a stream with the gateway's SSE decoder and checks
// Anthropic's event grammar: message_start, then blocks started in index
// order, each with deltas and a stop while it is the open block, then
// message_delta and message_stop (or an error event anywhere, last). It
// returns the event names.
func checkGrammar(t *testing.T, out []byte, lenient bool) []string {
	t.Helper()
	r := gateway.NewSSEReader(bytes.NewReader(out), 0)
	var names []string
	open, next := -1, 0
	for {
		ev, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		var e StreamEvent
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			t.Fatalf("event %s data %s: %v", ev.Event, ev.Data, err)
		}
		if e.Type != ev.Event {
			t.Fatalf("event %q carries type %q", ev.Event, e.Type)
		}
		if len(names) > 0 && (names[len(names)-1] == EventMessageStop || names[len(names)-1] == EventError) {
			t.Fatalf("%s after the end", ev.Event)
		}
		switch ev.Event {
		case EventMessageStart:
			if len(names) != 0 || e.Message == nil || e.Message.Type != "message" || e.Message.Role != "assistant" {
				t.Fatalf("bad message_start %s", ev.Data)
			}
		case EventContentBlockStart:
			if open != -1 || e.Index != next {
				t.Fatalf("block %d starts with %d open, next %d", e.Index, open, next)
			}
			open, next = e.Index, next+1
		case EventContentBlockDelta:
			if e.Index != open && !(lenient && e.Index < next) {
				t.Fatalf("delta for block %d with %d open", e.Index, open)
			}
		case EventContentBlockStop:
			if e.Index != open {
				t.Fatalf("stop of block %d with %d open", e.Index, open)
			}
			open = -1
		case EventMessageDelta:
			if open != -1 || e.Delta == nil || e.Delta.StopReason == "" || e.Usage == nil {
				t.Fatalf("bad message_delta %s (open %d)", ev.Data, open)
			}
		case EventMessageStop:
			if names[len(names)-1] != EventMessageDelta {
				t.Fatal("message_stop not after message_delta")
			}
		case EventError:
		default:
			t.Fatalf("unexpected event %s", ev.Event)
		}
		names = append(names, ev.Event)
	}
	if len(names) == 0 {
		t.Fatal("no events")
	}
	return names
}

// sdkMessage accumulates a stream with Anthropic's SDK.
func sdkMessage(t *testing.T, out []byte) (sdk.Message, error) {
	t.Helper()
	res := &http.Response{Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(bytes.NewReader(out))}
	s := ssestream.NewStream[sdk.MessageStreamEventUnion](ssestream.NewDecoder(res), nil)
	var m sdk.Message
	for s.Next() {
		if err := m.Accumulate(s.Current()); err != nil {
			t.Fatalf("accumulate: %v", err)
		}
	}
	return m, s.Err()
}

func TestStreamWriterExactBytes(t *testing.T) {
	var buf bytes.Buffer
	flushes := 0
	w := NewStreamWriter(&buf, func() { flushes++ }, "claude-alias", "msg_1")
	role := &gateway.ChatChunk{Choices: []gateway.ChunkChoice{{Delta: gateway.Delta{Role: "assistant", Content: ptr("")}}}}
	for _, c := range []*gateway.ChatChunk{role, textChunk("Hel"), textChunk("lo <b>"), finishChunk("stop"), usageChunk(gateway.Usage{PromptTokens: 12, CompletionTokens: 3, TotalTokens: 15})} {
		if err := w.WriteChunk(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(nil); err != nil {
		t.Fatal(err)
	}
	want := "event: message_start\n" +
		`data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-alias","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}` + "\n\n" +
		"event: content_block_start\n" + `data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}` + "\n\n" +
		"event: content_block_delta\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}` + "\n\n" +
		"event: content_block_delta\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo \u003cb\u003e"}}` + "\n\n" +
		"event: content_block_stop\n" + `data: {"type":"content_block_stop","index":0}` + "\n\n" +
		"event: message_delta\n" + `data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":12,"output_tokens":3,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}` + "\n\n" +
		"event: message_stop\n" + `data: {"type":"message_stop"}` + "\n\n"
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
	if flushes != 4 { // role (message_start), two texts, Finish; finish and usage chunks write nothing
		t.Fatalf("%d flushes", flushes)
	}
	if err := w.WriteChunk(textChunk("more")); !errors.Is(err, ErrStreamFinished) {
		t.Fatalf("after Finish: %v", err)
	}
	if err := w.Finish(nil); !errors.Is(err, ErrStreamFinished) {
		t.Fatalf("Finish twice: %v", err)
	}
}

func TestStreamWriter(t *testing.T) {
	type block struct{ typ, text, id, name, input string }
	for _, tc := range []struct {
		name    string
		chunks  []*gateway.ChatChunk
		usage   *gateway.Usage
		lenient bool
		stop    string
		blocks  []block
		in, out int64
	}{
		{
			name: "text then parallel tool calls",
			chunks: []*gateway.ChatChunk{textChunk("Let me look."),
				toolChunk(call(0, "call_a", "get_weather", "")), toolChunk(call(0, "", "", `{"loc`)), toolChunk(call(0, "", "", `ation":"Paris"}`)),
				toolChunk(call(1, "call_b", "get_time", `{"tz":`)), toolChunk(call(1, "", "", `"CET"}`)),
				finishChunk("tool_calls"), usageChunk(gateway.Usage{PromptTokens: 50, CompletionTokens: 20, PromptTokensDetails: &gateway.PromptTokensDetails{CachedTokens: 30}})},
			stop: "tool_use",
			blocks: []block{{typ: "text", text: "Let me look."}, {typ: "tool_use", id: "call_a", name: "get_weather", input: `{"location":"Paris"}`},
				{typ: "tool_use", id: "call_b", name: "get_time", input: `{"tz":"CET"}`}},
			in: 20, out: 20,
		},
		{
			name:   "whole calls in one chunk, finish says stop",
			chunks: []*gateway.ChatChunk{toolChunk(call(0, "c1", "f", `{"a":1}`), call(1, "c2", "g", `{}`)), finishChunk("stop")},
			usage:  &gateway.Usage{PromptTokens: 9, CompletionTokens: 4},
			stop:   "tool_use",
			blocks: []block{{typ: "tool_use", id: "c1", name: "f", input: `{"a":1}`}, {typ: "tool_use", id: "c2", name: "g", input: `{}`}},
			in:     9, out: 4,
		},
		{
			name: "text after a tool call opens a new block",
			chunks: []*gateway.ChatChunk{toolChunk(call(0, "c1", "f", `{}`)), textChunk("and "), textChunk("more"),
				{Choices: []gateway.ChunkChoice{{Delta: gateway.Delta{ReasoningContent: ptr("hidden")}}}}, finishChunk("length")},
			stop:   "max_tokens",
			blocks: []block{{typ: "tool_use", id: "c1", name: "f", input: `{}`}, {typ: "text", text: "and more"}},
		},
		{
			name: "interleaved calls are held back until the open one completes",
			chunks: []*gateway.ChatChunk{toolChunk(call(0, "c1", "f", `{"a":`)), toolChunk(call(1, "c2", "g", `{"b"`)), toolChunk(call(2, "c3", "h", `{}`)),
				toolChunk(call(1, "", "", `:3}`)), toolChunk(call(0, "", "", `2}`)), finishChunk("tool_calls")},
			stop: "tool_use",
			blocks: []block{{typ: "tool_use", id: "c1", name: "f", input: `{"a":2}`}, {typ: "tool_use", id: "c2", name: "g", input: `{"b":3}`},
				{typ: "tool_use", id: "c3", name: "h", input: `{}`}},
		},
		{
			name:   "held back calls flushed at the end",
			chunks: []*gateway.ChatChunk{toolChunk(call(0, "c1", "f", `{"a":`)), toolChunk(call(1, "c2", "g", `{}`)), finishChunk("tool_calls")},
			stop:   "tool_use",
			// The SDK empties the input that never completed.
			blocks: []block{{typ: "tool_use", id: "c1", name: "f", input: `{}`}, {typ: "tool_use", id: "c2", name: "g", input: `{}`}},
		},
		{
			name:   "held back calls flushed by text",
			chunks: []*gateway.ChatChunk{toolChunk(call(0, "c1", "f", `{"a":`)), toolChunk(call(1, "c2", "g", `{}`)), textChunk("t"), finishChunk("stop")},
			stop:   "tool_use",
			blocks: []block{{typ: "tool_use", id: "c1", name: "f", input: `{}`}, {typ: "tool_use", id: "c2", name: "g", input: `{}`}, {typ: "text", text: "t"}},
		},
		{
			name:    "arguments after a call ended (broken upstream)",
			chunks:  []*gateway.ChatChunk{toolChunk(call(0, "c1", "f", `{}`)), toolChunk(call(1, "c2", "g", `{}`)), toolChunk(call(0, "", "", ` `)), finishChunk("tool_calls")},
			lenient: true,
			stop:    "tool_use",
			blocks:  []block{{typ: "tool_use", id: "c1", name: "f", input: `{}`}, {typ: "tool_use", id: "c2", name: "g", input: `{}`}},
		},
		{
			name:   "refusal",
			chunks: []*gateway.ChatChunk{{Choices: []gateway.ChunkChoice{{Delta: gateway.Delta{Refusal: ptr("I can't.")}}}}, finishChunk("stop")},
			stop:   "refusal",
			blocks: []block{{typ: "text", text: "I can't."}},
		},
		{
			name:   "content filter",
			chunks: []*gateway.ChatChunk{textChunk("Partial"), finishChunk("content_filter")},
			stop:   "refusal",
			blocks: []block{{typ: "text", text: "Partial"}},
		},
		{
			name: "nothing",
			stop: "end_turn",
		},
		{
			name:   "other choices ignored, call without index or id",
			chunks: []*gateway.ChatChunk{{Choices: []gateway.ChunkChoice{{Index: 1, Delta: gateway.Delta{Content: ptr("other")}}, {Delta: gateway.Delta{ToolCalls: []gateway.ToolCall{{Function: gateway.FunctionCall{Name: "f", Arguments: `{"x"`}}}}}}}, toolChunk(gateway.ToolCall{Function: gateway.FunctionCall{Arguments: `:1}`}})},
			stop:   "tool_use",
			blocks: []block{{typ: "tool_use", id: "toolu_msg_1_0", name: "f", input: `{"x":1}`}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewStreamWriter(&buf, nil, "claude-alias", "msg_1")
			for _, c := range tc.chunks {
				if err := w.WriteChunk(c); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Finish(tc.usage); err != nil {
				t.Fatal(err)
			}
			checkGrammar(t, buf.Bytes(), tc.lenient)
			m, err := sdkMessage(t, buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if m.ID != "msg_1" || m.Model != "claude-alias" || string(m.StopReason) != tc.stop || m.Usage.InputTokens != tc.in || m.Usage.OutputTokens != tc.out {
				t.Fatalf("message %s", m.RawJSON())
			}
			if len(m.Content) != len(tc.blocks) {
				t.Fatalf("blocks %s", m.RawJSON())
			}
			for i, want := range tc.blocks {
				got := m.Content[i]
				if got.Type != want.typ || got.Text != want.text || got.ID != want.id || got.Name != want.name {
					t.Fatalf("block %d: %s", i, got.RawJSON())
				}
				if want.input != "" && !jsonEqual(t, got.Input, []byte(want.input)) {
					t.Fatalf("block %d input %s, want %s", i, got.Input, want.input)
				}
			}
		})
	}
}

func TestStreamWriterFail(t *testing.T) {
	for _, before := range []int{0, 2} {
		t.Run(fmt.Sprint(before), func(t *testing.T) {
			var buf bytes.Buffer
			w := NewStreamWriter(&buf, nil, "m", "msg_1")
			for i := 0; i < before; i++ {
				w.WriteChunk(textChunk("x"))
			}
			if err := w.Fail(TypeOverloaded, "Overloaded"); err != nil {
				t.Fatal(err)
			}
			names := checkGrammar(t, buf.Bytes(), false)
			if names[len(names)-1] != EventError {
				t.Fatalf("events %v", names)
			}
			if !bytes.HasSuffix(buf.Bytes(), []byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")) {
				t.Fatalf("output %s", buf.Bytes())
			}
			_, err := sdkMessage(t, buf.Bytes())
			if err == nil || !strings.Contains(err.Error(), "overloaded_error") {
				t.Fatalf("SDK error %v", err)
			}
			if err := w.Fail("", "again"); !errors.Is(err, ErrStreamFinished) {
				t.Fatalf("Fail twice: %v", err)
			}
		})
	}
	var buf bytes.Buffer
	w := NewStreamWriter(&buf, nil, "m", "msg_1")
	w.Fail("", "boom")
	if !strings.Contains(buf.String(), `"type":"api_error"`) {
		t.Fatalf("default type: %s", buf.String())
	}
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("client gone")
	}
	f.n--
	return len(p), nil
}

func TestStreamWriterWriteError(t *testing.T) {
	w := NewStreamWriter(&failingWriter{n: 1}, nil, "m", "msg_1")
	if err := w.WriteChunk(textChunk("a")); err != nil {
		t.Fatal(err)
	}
	err := w.WriteChunk(textChunk("b"))
	if err == nil || !strings.Contains(err.Error(), "client gone") {
		t.Fatalf("err %v", err)
	}
	if again := w.Finish(nil); again != err {
		t.Fatalf("error not sticky: %v", again)
	}
}
