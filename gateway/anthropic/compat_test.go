package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdk "github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"aigw/gateway"
	"aigw/gateway/providertest"
)

const userHi = `"messages":[{"role":"user","content":"hi"}]`

func TestParseRequestErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"not json", `nope`, "not a JSON object"},
		{"array", `[]`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
		{"extra field", `{"model":"m","max_tokens":1,` + userHi + `,"frequency_penalty":1}`, "frequency_penalty: Extra inputs are not permitted"},
		{"no model", `{"max_tokens":1,` + userHi + `}`, "model: Field required"},
		{"no max_tokens", `{"model":"m",` + userHi + `}`, "max_tokens: Field required"},
		{"no messages", `{"model":"m","max_tokens":1}`, "messages: Field required"},
		{"empty model", `{"model":"","max_tokens":1,` + userHi + `}`, "model: String should have at least 1 character"},
		{"model type", `{"model":3,"max_tokens":1,` + userHi + `}`, "model: Input should be a valid string"},
		{"zero max_tokens", `{"model":"m","max_tokens":0,` + userHi + `}`, "max_tokens: Input should be greater than or equal to 1"},
		{"fractional max_tokens", `{"model":"m","max_tokens":1.5,` + userHi + `}`, "max_tokens: Input should be a valid integer"},
		{"string max_tokens", `{"model":"m","max_tokens":"8",` + userHi + `}`, "max_tokens: Input should be a valid integer"},
		{"empty messages", `{"model":"m","max_tokens":1,"messages":[]}`, "at least one message"},
		{"system role", `{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}`, "messages.0.role: Input should be 'user' or 'assistant'"},
		{"empty content", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":""}]}`, "messages.0: all messages must have non-empty content"},
		{"empty blocks", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[]},{"role":"assistant","content":"x"}]}`, "messages.0: all messages must have non-empty content"},
		{"null content", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":null}]}`, "content must be a string or an array"},
		{"unknown block", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"video"}]}]}`, `messages.0.content.0.type: unknown content block type "video"`},
		{"empty text", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":""}]}]}`, "text content blocks must be non-empty"},
		{"image without source", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image"}]}]}`, "messages.0.content.0.source: Field required"},
		{"image media type", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/bmp","data":"AA"}}]}]}`, "media_type"},
		{"image url", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url"}}]}]}`, "source.url.url: Field required"},
		{"image text source", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"text","media_type":"text/plain","data":"x"}}]}]}`, "images take"},
		{"document type", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"image/png","data":"AA"}}]}]}`, "application/pdf"},
		{"source type", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"s3"}}]}]}`, "unknown source type"},
		{"tool_use in user", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]}]}`, "only allowed in assistant messages"},
		{"tool_use input", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":[1]}]}]}`, "input: Input should be a valid dictionary"},
		{"tool_use id", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","name":"f","input":{}}]}]}`, "need an id and a name"},
		{"tool_result in assistant", `{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_result","tool_use_id":"t"}]}]}`, "only allowed in user messages"},
		{"tool_result id", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}`, "tool_use_id: Field required"},
		{"tool_result block", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"tool_use","id":"a","name":"b","input":{}}]}]}]}`, "content.0.type"},
		{"thinking signature", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"thinking","thinking":"hm"}]}]}`, "signature: Field required"},
		{"thinking in user", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"thinking","thinking":"hm","signature":"s"}]}]}`, "only allowed in assistant"},
		{"redacted data", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"redacted_thinking"}]}]}`, "data: Field required"},
		{"system block", `{"model":"m","max_tokens":1,` + userHi + `,"system":[{"type":"image"}]}`, "system.0.type"},
		{"system type", `{"model":"m","max_tokens":1,` + userHi + `,"system":3}`, "content must be a string or an array"},
		{"temperature", `{"model":"m","max_tokens":1,` + userHi + `,"temperature":1.5}`, "temperature: Input should be between 0 and 1"},
		{"top_p", `{"model":"m","max_tokens":1,` + userHi + `,"top_p":-0.1}`, "top_p"},
		{"top_k", `{"model":"m","max_tokens":1,` + userHi + `,"top_k":-1}`, "top_k"},
		{"tool name", `{"model":"m","max_tokens":1,` + userHi + `,"tools":[{"name":"a b","input_schema":{"type":"object"}}]}`, "tools.0.name"},
		{"tool schema", `{"model":"m","max_tokens":1,` + userHi + `,"tools":[{"name":"f"}]}`, "tools.0.custom.input_schema: Field required"},
		{"tool schema type", `{"model":"m","max_tokens":1,` + userHi + `,"tools":[{"name":"f","input_schema":"object"}]}`, "valid dictionary"},
		{"tool_choice type", `{"model":"m","max_tokens":1,` + userHi + `,"tool_choice":{"type":"required"}}`, "tool_choice.type"},
		{"tool_choice name", `{"model":"m","max_tokens":1,` + userHi + `,"tool_choice":{"type":"tool"}}`, "tool_choice.tool.name: Field required"},
		{"thinking budget", `{"model":"m","max_tokens":4000,` + userHi + `,"thinking":{"type":"enabled","budget_tokens":500}}`, "budget_tokens: Input should be greater than or equal to 1024"},
		{"thinking over max", `{"model":"m","max_tokens":2000,` + userHi + `,"thinking":{"type":"enabled","budget_tokens":2000}}`, "max_tokens must be greater than thinking.budget_tokens"},
		{"thinking type", `{"model":"m","max_tokens":2000,` + userHi + `,"thinking":{}}`, "thinking.type: Field required"},
		{"user id", `{"model":"m","max_tokens":1,` + userHi + `,"metadata":{"user_id":"` + strings.Repeat("u", 257) + `"}}`, "metadata.user_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRequest([]byte(tc.body))
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("ParseRequest = %+v, %v; want a RequestError", r, err)
			}
			if re.Status != 400 || re.Type != TypeInvalidRequest || !strings.Contains(re.Message, tc.want) {
				t.Fatalf("error %d %s %q, want message with %q", re.Status, re.Type, re.Message, tc.want)
			}
		})
	}
}

func TestParseRequestValid(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"fixture", string(providertest.Fixture(t, "anthropic/request.json"))},
		{"fixture tool use", string(providertest.Fixture(t, "anthropic/request_tool_use.json"))},
		{"prefill", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":""}]}`},
		{"server tools", `{"model":"m","max_tokens":1,"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":5}],"messages":[{"role":"user","content":"x"},
			{"role":"assistant","content":[{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"q"}},{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]}]}]}`},
		{"documents", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"hi"},"title":"t","citations":{"enabled":true}},
			{"type":"document","source":{"type":"content","content":[{"type":"text","text":"a"}]}},{"type":"document","source":{"type":"file","file_id":"file_1"}},{"type":"search_result","source":"s","title":"t","content":[]}]}]}`},
		{"newer fields", `{"model":"m","max_tokens":1,` + userHi + `,"cache_control":{"type":"ephemeral"},"speed":"fast","inference_geo":"us","thinking":{"type":"adaptive","display":"summarized"},"output_config":{"effort":"high"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRequest([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			// What was decoded encodes back to the same JSON (fields this
			// package ignores aside).
			if tc.name == "fixture" || tc.name == "fixture tool use" || tc.name == "server tools" || tc.name == "documents" {
				b, _ := json.Marshal(r)
				if !jsonEqual(t, b, []byte(tc.body)) {
					t.Fatalf("re-encoded\n%s\nwant\n%s", b, tc.body)
				}
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, 529, "", "Overloaded")
	if rec.Code != 529 || rec.Header().Get("Content-Type") != "application/json" ||
		rec.Body.String() != `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}` {
		t.Fatalf("%d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	for status, typ := range map[int]string{400: TypeInvalidRequest, 401: TypeAuthentication, 402: TypeBilling, 403: TypePermission, 404: TypeNotFound,
		413: TypeRequestTooLarge, 429: TypeRateLimit, 500: TypeAPI, 502: TypeAPI, 503: TypeOverloaded, 504: TypeTimeout, 529: TypeOverloaded, 422: TypeInvalidRequest} {
		if got := TypeForStatus(status); got != typ {
			t.Errorf("TypeForStatus(%d) = %s, want %s", status, got, typ)
		}
		if status != 502 && status != 503 && status != 422 && StatusForType(typ) != status {
			t.Errorf("StatusForType(%s) = %d, want %d", typ, StatusForType(typ), status)
		}
	}
}

func TestToChat(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{
			name: "fixture",
			in:   string(providertest.Fixture(t, "anthropic/request.json")),
			want: `{"model":"claude-sonnet-4-5","stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":1024,"temperature":0.5,"top_p":0.9,
				"stop":"\n\nHuman:","user":"13803d75-b4b5-4c3e-b2a2-6f21399b021b","messages":[
				{"role":"system","content":"You are a helpful assistant."},
				{"role":"user","content":"Hello, Claude"},
				{"role":"assistant","content":"Hello!"},
				{"role":"user","content":[{"type":"text","text":"What is in this image?"},
					{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}},
					{"type":"image_url","image_url":{"url":"https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"}}]}]}`,
		},
		{
			name: "fixture tool use",
			in:   string(providertest.Fixture(t, "anthropic/request_tool_use.json")),
			want: `{"model":"claude-sonnet-4-5","max_completion_tokens":4096,"messages":[
				{"role":"user","content":"What's the weather like in San Francisco?"},
				{"role":"assistant","content":"I'll check the current weather in San Francisco for you.","tool_calls":[{"id":"toolu_01A09q90qw90lq917835lq9","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}"}}]},
				{"role":"tool","content":"15 degrees","tool_call_id":"toolu_01A09q90qw90lq917835lq9"},
				{"role":"user","content":"And is that warm?"}],
				"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the current weather in a given location","parameters":{"type":"object","properties":{"location":{"type":"string","description":"The city and state, e.g. San Francisco, CA"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location"]}}}],
				"tool_choice":"auto","parallel_tool_calls":false}`,
		},
		{
			name: "tool results with errors, blocks and images",
			in: `{"model":"m","max_tokens":9,"system":[{"type":"text","text":"A"},{"type":"text","text":"B"}],"messages":[
				{"role":"user","content":"go"},
				{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"shot","input":{}},{"type":"tool_use","id":"t2","name":"run","input":{"cmd":"ls"}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"here"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]},
					{"type":"tool_result","tool_use_id":"t2","is_error":true,"content":"no such file"},
					{"type":"tool_result","tool_use_id":"t3"}]}],
				"tools":[{"name":"shot","input_schema":{"type":"object"}},{"type":"custom","name":"run","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"}}`,
			want: `{"model":"m","max_completion_tokens":9,"messages":[{"role":"system","content":"A\nB"},{"role":"user","content":"go"},
				{"role":"assistant","content":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"shot","arguments":"{}"}},{"id":"t2","type":"function","function":{"name":"run","arguments":"{\"cmd\":\"ls\"}"}}]},
				{"role":"tool","content":"here","tool_call_id":"t1"},
				{"role":"tool","content":"Error: no such file","tool_call_id":"t2"},
				{"role":"tool","content":"","tool_call_id":"t3"},
				{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],
				"tools":[{"type":"function","function":{"name":"shot","parameters":{"type":"object"}}},{"type":"function","function":{"name":"run","parameters":{"type":"object"}}}],
				"tool_choice":"required"}`,
		},
		{
			name: "named tool, documents, dropped blocks, output format",
			in: `{"model":"m","max_tokens":2000,"top_k":5,"thinking":{"type":"enabled","budget_tokens":1024},"service_tier":"auto","messages":[
				{"role":"user","content":[{"type":"document","title":"r.pdf","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"}},
					{"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain"}},
					{"type":"document","source":{"type":"content","content":[{"type":"text","text":"c1"},{"type":"text","text":"c2"}]}},
					{"type":"text","text":"summarize","cache_control":{"type":"ephemeral"}}]},
				{"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"sig"},{"type":"redacted_thinking","data":"xx"}]},
				{"role":"assistant","content":[{"type":"server_tool_use","id":"s","name":"web_search","input":{}},{"type":"text","text":"Done"},{"type":"text","text":" here."}]}],
				"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f"},
				"output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}}}`,
			want: `{"model":"m","max_completion_tokens":2000,"messages":[
				{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBE","filename":"r.pdf"}},{"type":"text","text":"plain"},{"type":"text","text":"c1\nc2"},{"type":"text","text":"summarize"}]},
				{"role":"assistant","content":"Done here."}],
				"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}},
				"response_format":{"type":"json_schema","json_schema":{"name":"response","schema":{"type":"object"}}}}`,
		},
		{
			name: "tool choice none",
			in:   `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"none"},"output_format":{"type":"json_schema","schema":{"type":"object"}}}`,
			want: `{"model":"m","max_completion_tokens":9,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"none",
				"response_format":{"type":"json_schema","json_schema":{"name":"response","schema":{"type":"object"}}}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRequest([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ToChat(r)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(got)
			if !jsonEqual(t, b, []byte(tc.want)) {
				t.Fatalf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
}

func TestToChatErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"server tool", `{"model":"m","max_tokens":1,` + userHi + `,"tools":[{"type":"web_search_20250305","name":"web_search"}]}`, "server tool"},
		{"mcp", `{"model":"m","max_tokens":1,` + userHi + `,"mcp_servers":[{"type":"url","url":"https://x","name":"x"}]}`, "mcp_servers"},
		{"file image", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}`, "file sources"},
		{"url document", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"url","url":"https://x/a.pdf"}}]}]}`, "url sources"},
		{"search result", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"search_result","source":"s","title":"t","content":[]}]}]}`, "search_result blocks"},
		{"output format", `{"model":"m","max_tokens":1,` + userHi + `,"output_format":{"type":"json_schema"}}`, "output_format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRequest([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			_, err = ToChat(r)
			var re *RequestError
			if !errors.As(err, &re) || re.Status != 400 || !strings.Contains(re.Message, tc.want) {
				t.Fatalf("err %v, want a 400 about %q", err, tc.want)
			}
		})
	}
}

// TestToChatRoundTrip checks that what ToChat makes, the provider turns back
// into the request it came from (for what both shapes express).
func TestToChatRoundTrip(t *testing.T) {
	in := `{"model":"m","max_tokens":100,"system":[{"type":"text","text":"S"}],"stop_sequences":["x","y"],"metadata":{"user_id":"u"},"temperature":0.3,
		"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image","source":{"type":"url","url":"https://x/i.png"}}]},
		{"role":"assistant","content":[{"type":"text","text":"b"},{"type":"tool_use","id":"t","name":"f","input":{"k":[1,2]}}]},
		{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"r"},{"type":"text","text":"c"}]}],
		"tools":[{"name":"f","description":"d","input_schema":{"type":"object"}}],"tool_choice":{"type":"any","disable_parallel_tool_use":true}}`
	r, err := ParseRequest([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ToChat(r)
	if err != nil {
		t.Fatal(err)
	}
	back, _, err := fromChat(c, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(back)
	if !jsonEqual(t, b, []byte(in)) {
		t.Fatalf("round trip\n%s\nwant\n%s", b, in)
	}
}

func TestFromChatResponse(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{
			name: "text and cached usage",
			in: `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"Hello","reasoning_content":"hidden"},"finish_reason":"stop"}],
				"usage":{"prompt_tokens":100,"completion_tokens":7,"total_tokens":107,"prompt_tokens_details":{"cached_tokens":60,"cache_creation_tokens":10}}}`,
			want: `{"id":"msg_chatcmpl-1","type":"message","role":"assistant","model":"alias","content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn","stop_sequence":null,
				"usage":{"input_tokens":30,"output_tokens":7,"cache_creation_input_tokens":10,"cache_read_input_tokens":60}}`,
		},
		{
			name: "tool calls, one with broken arguments",
			in: `{"id":"msg_2","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
				{"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"a\": 1}"}},
				{"id":"call_b","type":"function","function":{"name":"g","arguments":"{\"a\": "}},
				{"id":"call_c","type":"function","function":{"name":"h","arguments":"[1]"}}]},"finish_reason":"stop"}]}`,
			want: `{"id":"msg_2","type":"message","role":"assistant","model":"alias","content":[{"type":"tool_use","id":"call_a","name":"f","input":{"a":1}},
				{"type":"tool_use","id":"call_b","name":"g","input":{}},{"type":"tool_use","id":"call_c","name":"h","input":{}}],"stop_reason":"tool_use","stop_sequence":null,
				"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`,
		},
		{
			name: "length with parts",
			in:   `{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`,
			want: `{"id":"msg_x","type":"message","role":"assistant","model":"alias","content":[{"type":"text","text":"a\nb"}],"stop_reason":"max_tokens","stop_sequence":null,
				"usage":{"input_tokens":3,"output_tokens":4,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`,
		},
		{
			name: "content filter",
			in:   `{"id":"msg_x","choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"content_filter"}]}`,
			want: `{"id":"msg_x","type":"message","role":"assistant","model":"alias","content":[],"stop_reason":"refusal","stop_sequence":null,
				"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`,
		},
		{
			name: "refusal",
			in:   `{"id":"msg_x","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}`,
			want: `{"id":"msg_x","type":"message","role":"assistant","model":"alias","content":[{"type":"text","text":"I can't help with that."}],"stop_reason":"refusal","stop_sequence":null,
				"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`,
		},
		{
			name: "no choices",
			in:   `{"id":"msg_x","choices":[]}`,
			want: `{"id":"msg_x","type":"message","role":"assistant","model":"alias","content":[],"stop_reason":"end_turn","stop_sequence":null,
				"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var resp gateway.ChatResponse
			if err := json.Unmarshal([]byte(tc.in), &resp); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(FromChat(&resp, "alias"))
			if !jsonEqual(t, b, []byte(tc.want)) {
				t.Fatalf("got  %s\nwant %s", b, tc.want)
			}
			// The SDK reads it.
			var m sdk.Message
			if err := json.Unmarshal(b, &m); err != nil || m.Type != "message" {
				t.Fatalf("SDK decode: %v", err)
			}
		})
	}
	if r := FromChat(nil, "m"); r.Type != "message" || r.StopReason != StopEndTurn {
		t.Fatalf("nil response: %+v", r)
	}
}

// compatServer is a minimal Anthropic-compatible endpoint over an
// OpenAI-shaped upstream, as the gateway builds it from this package.
func compatServer(t *testing.T, upstream gateway.Provider) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := ParseRequest(body)
		if err == nil {
			var creq *gateway.ChatRequest
			creq, err = ToChat(req)
			if err == nil {
				serveChat(w, r, req, creq, upstream)
				return
			}
		}
		writeErr(w, err)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func writeErr(w http.ResponseWriter, err error) {
	var re *RequestError
	var pe *gateway.ProviderError
	switch {
	case errors.As(err, &re):
		WriteError(w, re.Status, re.Type, re.Message)
	case errors.As(err, &pe):
		WriteError(w, pe.Status, pe.Type, pe.Message)
	default:
		WriteError(w, 500, TypeAPI, err.Error())
	}
}

func serveChat(w http.ResponseWriter, r *http.Request, req *Request, creq *gateway.ChatRequest, upstream gateway.Provider) {
	if !req.Stream {
		resp, err := upstream.Chat(r.Context(), creq)
		if err != nil {
			writeErr(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(FromChat(resp, req.Model))
		return
	}
	st, err := upstream.ChatStream(r.Context(), creq)
	if err != nil {
		writeErr(w, err)
		return
	}
	defer st.Close()
	w.Header().Set("Content-Type", "text/event-stream")
	sw := NewStreamWriter(w, w.(http.Flusher).Flush, req.Model, "msg_gateway_1")
	for {
		c, err := st.Next()
		if err == io.EOF {
			sw.Finish(st.Usage())
			return
		}
		if err != nil {
			var pe *gateway.ProviderError
			if errors.As(err, &pe) {
				sw.Fail(pe.Type, pe.Message)
			} else {
				sw.Fail(TypeAPI, "upstream stream failed")
			}
			return
		}
		sw.WriteChunk(c)
	}
}

func sdkClient(url string) sdk.Client {
	return sdk.NewClient(option.WithoutEnvironmentDefaults(), option.WithBaseURL(url), option.WithAPIKey("client-key"), option.WithMaxRetries(0))
}

// TestSDKThroughTranslations drives the whole loop with Anthropic's SDK:
// SDK → ParseRequest → ToChat → Provider → Anthropic fake → chunks →
// FromChat/StreamWriter → SDK.
func TestSDKThroughTranslations(t *testing.T) {
	p, fake := newProvider(t)
	srv := compatServer(t, p)
	client := sdkClient(srv.URL)
	ctx := context.Background()
	weather := sdk.ToolUnionParamOfTool(sdk.ToolInputSchemaParam{Properties: map[string]any{"location": map[string]any{"type": "string"}}}, "get_weather")

	t.Run("message", func(t *testing.T) {
		m, err := client.Messages.New(ctx, sdk.MessageNewParams{Model: "claude-alias", MaxTokens: 256,
			System:   []sdk.TextBlockParam{{Text: "Be kind."}},
			Messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("Hello"))}})
		if err != nil {
			t.Fatal(err)
		}
		if m.Model != "claude-alias" || len(m.Content) != 1 || m.Content[0].Text != "Hi! My name is Claude." || m.StopReason != sdk.StopReasonEndTurn ||
			m.Usage.InputTokens != 2095 || m.Usage.CacheReadInputTokens != 1800 || m.Usage.CacheCreationInputTokens != 120 || m.Usage.OutputTokens != 503 {
			t.Fatalf("message %s", m.RawJSON())
		}
	})

	t.Run("stream", func(t *testing.T) {
		s := client.Messages.NewStreaming(ctx, sdk.MessageNewParams{Model: "claude-alias", MaxTokens: 256,
			Messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("27*453?"))}})
		var m sdk.Message
		for s.Next() {
			if err := m.Accumulate(s.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if m.ID != "msg_gateway_1" || len(m.Content) != 1 || m.Content[0].Text != "27 * 453 = 12,231" || m.StopReason != sdk.StopReasonEndTurn ||
			m.Usage.InputTokens != 25 || m.Usage.OutputTokens != 15 {
			t.Fatalf("message %s", m.RawJSON())
		}
	})

	t.Run("stream tool use", func(t *testing.T) {
		s := client.Messages.NewStreaming(ctx, sdk.MessageNewParams{Model: "claude-alias", MaxTokens: 256, Tools: []sdk.ToolUnionParam{weather},
			Messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("Weather in SF?"))}})
		var m sdk.Message
		for s.Next() {
			if err := m.Accumulate(s.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if len(m.Content) != 2 || m.Content[0].Text != "Okay, let's check the weather for San Francisco, CA:" || m.StopReason != sdk.StopReasonToolUse {
			t.Fatalf("message %s", m.RawJSON())
		}
		tu := m.Content[1].AsToolUse()
		if tu.ID != "toolu_01T1x1fJ34qAmk2tNTrN7Up6" || tu.Name != "get_weather" || !jsonEqual(t, tu.Input, []byte(`{"location":"San Francisco, CA","unit":"fahrenheit"}`)) {
			t.Fatalf("tool use %s", m.Content[1].RawJSON())
		}
	})

	t.Run("tool result turn", func(t *testing.T) {
		m, err := client.Messages.New(ctx, sdk.MessageNewParams{Model: "claude-alias", MaxTokens: 256, Tools: []sdk.ToolUnionParam{weather},
			Messages: []sdk.MessageParam{
				sdk.NewUserMessage(sdk.NewTextBlock("Weather in SF?")),
				sdk.NewAssistantMessage(sdk.NewTextBlock("Checking."), sdk.NewToolUseBlock("toolu_1", map[string]any{"location": "SF"}, "get_weather")),
				sdk.NewUserMessage(sdk.NewToolResultBlock("toolu_1", "15C", false), sdk.NewImageBlockBase64("image/png", "iVBORw0K")),
			}})
		if err != nil {
			t.Fatal(err)
		}
		if m.StopReason != sdk.StopReasonEndTurn {
			t.Fatalf("message %s", m.RawJSON())
		}
		reqs := fake.Requests()
		got := reqs[len(reqs)-1].Body
		var sent Request
		json.Unmarshal(got, &sent)
		last := sent.Messages[len(sent.Messages)-1]
		if len(sent.Messages) != 3 || last.Role != RoleUser || len(last.Content.Blocks) != 2 ||
			last.Content.Blocks[0].Type != BlockToolResult || last.Content.Blocks[0].ToolUseID != "toolu_1" ||
			last.Content.Blocks[1].Type != BlockImage || last.Content.Blocks[1].Source.Data != "iVBORw0K" {
			t.Fatalf("upstream got %s", got)
		}
	})

	t.Run("upstream overloaded", func(t *testing.T) {
		fake.Push(providertest.Fault{Status: 529})
		_, err := client.Messages.New(ctx, sdk.MessageNewParams{Model: "claude-alias", MaxTokens: 256,
			Messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("Hello"))}})
		var ae *sdk.Error
		if !errors.As(err, &ae) || ae.StatusCode != 529 || ae.Type() != "overloaded_error" {
			t.Fatalf("err %v", err)
		}
	})

	t.Run("error event mid-stream", func(t *testing.T) {
		fake.Push(providertest.Fault{ErrorEventAt: 6})
		s := client.Messages.NewStreaming(ctx, sdk.MessageNewParams{Model: "claude-alias", MaxTokens: 256,
			Messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("Hello"))}})
		n := 0
		for s.Next() {
			n++
		}
		if err := s.Err(); err == nil || !strings.Contains(err.Error(), "overloaded_error") || n == 0 {
			t.Fatalf("%d events, err %v", n, err)
		}
	})

	t.Run("invalid request", func(t *testing.T) {
		_, err := client.Messages.New(ctx, sdk.MessageNewParams{Model: "claude-alias", MaxTokens: 256,
			Messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("Hello"))}}, option.WithJSONSet("bogus", 1))
		var ae *sdk.Error
		if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Type() != "invalid_request_error" || !strings.Contains(ae.RawJSON(), "bogus: Extra inputs are not permitted") {
			t.Fatalf("err %v", err)
		}
	})
}
