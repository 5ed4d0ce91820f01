package bedrock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"aigw/gateway"
)

// pngDataURL is a 1x1 PNG as a data: URL; pngBase64 its bytes as the SDK
// sends them.
const (
	pngBase64  = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
	pngDataURL = "data:image/png;base64," + pngBase64
)

func parseRequest(t *testing.T, s string) *gateway.ChatRequest {
	t.Helper()
	var req gateway.ChatRequest
	if err := json.Unmarshal([]byte(s), &req); err != nil {
		t.Fatalf("request %s: %v", s, err)
	}
	if req.Model == "" {
		req.Model = testModel
	}
	return &req
}

// TestRequestTranslation sends OpenAI-shaped requests through the provider
// and compares the Converse body the fake Bedrock received (as the SDK
// serialised it) with the expected one.
func TestRequestTranslation(t *testing.T) {
	tests := []struct {
		name string
		req  string
		want string
	}{
		{"user string",
			`{"messages":[{"role":"user","content":"Hello"}]}`,
			`{"messages":[{"role":"user","content":[{"text":"Hello"}]}]}`},
		{"system, developer and inference parameters",
			`{"messages":[{"role":"system","content":"Be brief."},{"role":"developer","content":[{"type":"text","text":"Answer in English."}]},{"role":"user","content":"Hi"}],
			  "max_tokens":256,"temperature":0.5,"top_p":0.25,"stop":"END"}`,
			`{"system":[{"text":"Be brief."},{"text":"Answer in English."}],
			  "messages":[{"role":"user","content":[{"text":"Hi"}]}],
			  "inferenceConfig":{"maxTokens":256,"temperature":0.5,"topP":0.25,"stopSequences":["END"]}}`},
		{"max_completion_tokens wins, stop array",
			`{"messages":[{"role":"user","content":"Hi"}],"max_tokens":10,"max_completion_tokens":20,"stop":["a","b"]}`,
			`{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":20,"stopSequences":["a","b"]}}`},
		{"text and image parts",
			`{"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"` + pngDataURL + `","detail":"high"}}]}]}`,
			`{"messages":[{"role":"user","content":[{"text":"What is this?"},{"image":{"format":"png","source":{"bytes":"` + pngBase64 + `"}}}]}]}`},
		{"jpeg image with media type parameters",
			`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/jpeg;charset=binary;base64,` + pngBase64 + `"}}]}]}`,
			`{"messages":[{"role":"user","content":[{"image":{"format":"jpeg","source":{"bytes":"` + pngBase64 + `"}}}]}]}`},
		{"consecutive user messages merge",
			`{"messages":[{"role":"user","content":"one"},{"role":"user","content":"two"}]}`,
			`{"messages":[{"role":"user","content":[{"text":"one"},{"text":"two"}]}]}`},
		{"tool round trip",
			`{"messages":[
			   {"role":"user","content":"Top songs on WZPZ and WKRP?"},
			   {"role":"assistant","content":"Looking them up.","tool_calls":[
			     {"id":"call_1","type":"function","function":{"name":"top_song","arguments":"{\"sign\":\"WZPZ\",\"limit\":12345678901234567890}"}},
			     {"id":"call_2","type":"function","function":{"name":"top_song","arguments":""}}]},
			   {"role":"tool","tool_call_id":"call_1","content":"Elemental Hotel"},
			   {"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"no"},{"type":"text","text":"data"}]},
			   {"role":"user","content":"Thanks, and?"}],
			  "tools":[{"type":"function","function":{"name":"top_song","description":"Most popular song of a station.","parameters":{"type":"object","properties":{"sign":{"type":"string"},"limit":{"type":"integer","maximum":1e3}},"required":["sign"]}}}],
			  "tool_choice":"auto"}`,
			`{"messages":[
			   {"role":"user","content":[{"text":"Top songs on WZPZ and WKRP?"}]},
			   {"role":"assistant","content":[{"text":"Looking them up."},
			     {"toolUse":{"toolUseId":"call_1","name":"top_song","input":{"sign":"WZPZ","limit":12345678901234567890}}},
			     {"toolUse":{"toolUseId":"call_2","name":"top_song","input":{}}}]},
			   {"role":"user","content":[
			     {"toolResult":{"toolUseId":"call_1","content":[{"text":"Elemental Hotel"}]}},
			     {"toolResult":{"toolUseId":"call_2","content":[{"text":"no"},{"text":"data"}]}},
			     {"text":"Thanks, and?"}]}],
			  "toolConfig":{"tools":[{"toolSpec":{"name":"top_song","description":"Most popular song of a station.","inputSchema":{"json":{"type":"object","properties":{"sign":{"type":"string"},"limit":{"type":"integer","maximum":1e3}},"required":["sign"]}}}}],
			    "toolChoice":{"auto":{}}}}`},
		{"tool_choice required, no parameters, strict",
			`{"messages":[{"role":"user","content":"now"}],"tools":[{"type":"function","function":{"name":"clock","strict":true}}],"tool_choice":"required"}`,
			`{"messages":[{"role":"user","content":[{"text":"now"}]}],
			  "toolConfig":{"tools":[{"toolSpec":{"name":"clock","strict":true,"inputSchema":{"json":{"type":"object","properties":{}}}}}],"toolChoice":{"any":{}}}}`},
		{"tool_choice function",
			`{"messages":[{"role":"user","content":"now"}],"tools":[{"type":"function","function":{"name":"clock"}},{"type":"function","function":{"name":"date","parameters":null}}],
			  "tool_choice":{"type":"function","function":{"name":"date"}}}`,
			`{"messages":[{"role":"user","content":[{"text":"now"}]}],
			  "toolConfig":{"tools":[{"toolSpec":{"name":"clock","inputSchema":{"json":{"type":"object","properties":{}}}}},{"toolSpec":{"name":"date","inputSchema":{"json":{"type":"object","properties":{}}}}}],
			    "toolChoice":{"tool":{"name":"date"}}}}`},
		{"tool_choice none leaves tools out",
			`{"messages":[{"role":"user","content":"now"}],"tools":[{"type":"function","function":{"name":"clock"}}],"tool_choice":"none"}`,
			`{"messages":[{"role":"user","content":[{"text":"now"}]}]}`},
		{"tool_choice none keeps tools the history needs",
			`{"messages":[{"role":"user","content":"now"},
			   {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"clock","arguments":"{}"}}]},
			   {"role":"tool","tool_call_id":"c","content":"noon"}],
			  "tools":[{"type":"function","function":{"name":"clock"}}],"tool_choice":"none"}`,
			`{"messages":[{"role":"user","content":[{"text":"now"}]},
			   {"role":"assistant","content":[{"toolUse":{"toolUseId":"c","name":"clock","input":{}}}]},
			   {"role":"user","content":[{"toolResult":{"toolUseId":"c","content":[{"text":"noon"}]}}]}],
			  "toolConfig":{"tools":[{"toolSpec":{"name":"clock","inputSchema":{"json":{"type":"object","properties":{}}}}}]}}`},
		{"assistant parts and refusal",
			`{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"text","text":"b"},{"type":"refusal","refusal":"no"}],"reasoning_content":"hidden"},{"role":"user","content":"c"}]}`,
			`{"messages":[{"role":"user","content":[{"text":"a"}]},{"role":"assistant","content":[{"text":"b"},{"text":"no"}]},{"role":"user","content":[{"text":"c"}]}]}`},
		{"json_schema response format and reasoning effort",
			`{"messages":[{"role":"user","content":"Extract."}],"reasoning_effort":"medium",
			  "response_format":{"type":"json_schema","json_schema":{"name":"person","description":"A person.","strict":true,"schema":{"type":"object", "properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}}}}`,
			`{"messages":[{"role":"user","content":[{"text":"Extract."}]}],
			  "outputConfig":{"effort":"medium","textFormat":{"type":"json_schema","structure":{"jsonSchema":{"name":"person","description":"A person.",
			    "schema":"{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}},\"required\":[\"name\"],\"additionalProperties\":false}"}}}}}`},
		{"json_object and ignored OpenAI fields",
			`{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_object"},"seed":1,"presence_penalty":0.5,"user":"u1","n":1,"reasoning_effort":"none","logprobs":true}`,
			`{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}`},
	}
	p, srv := newTestProvider(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := parseRequest(t, tt.req)
			before, _ := json.Marshal(req)
			if _, err := p.Chat(context.Background(), req); err != nil {
				t.Fatalf("Chat: %v", err)
			}
			if after, _ := json.Marshal(req); string(after) != string(before) {
				t.Errorf("Chat modified the request:\n%s\n%s", before, after)
			}
			reqs := srv.Requests()
			got := reqs[len(reqs)-1].Body
			if !jsonEqual(t, got, []byte(tt.want)) {
				t.Errorf("Converse body:\n got %s\nwant %s", got, compactJSON(t, tt.want))
			}
		})
	}
}

func TestRequestTranslationErrors(t *testing.T) {
	tests := []struct {
		name      string
		req       string
		wantParam string
		wantMsg   string
	}{
		{"http image URL", `{"messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}`,
			"messages[0].content[1].image_url.url", "data: URL"},
		{"unsupported image type", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,Qk0="}}]}]}`,
			"messages[0].content[0].image_url.url", "png, jpeg, gif or webp"},
		{"data URL not base64", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,rawbytes"}}]}]}`,
			"messages[0].content[0].image_url.url", "base64"},
		{"bad base64", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,@@@"}}]}]}`,
			"messages[0].content[0].image_url.url", "valid base64"},
		{"file part", `{"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"f"}}]}]}`,
			"messages[0].content[0].type", `"file"`},
		{"image in system message", `{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"` + pngDataURL + `"}}]},{"role":"user","content":"x"}]}`,
			"messages[0].content[0].type", "only text"},
		{"n > 1", `{"messages":[{"role":"user","content":"x"}],"n":2}`, "n", "one choice"},
		{"no messages", `{"messages":[]}`, "messages", "must not be empty"},
		{"only a system message", `{"messages":[{"role":"system","content":"x"}]}`, "messages", "at least one user message"},
		{"empty user message", `{"messages":[{"role":"user","content":""}]}`, "messages[0].content", "needs content"},
		{"empty assistant message", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":null}]}`, "messages[1].content", "needs content or tool calls"},
		{"unknown role", `{"messages":[{"role":"robot","content":"x"}]}`, "messages[0].role", `"robot"`},
		{"function role", `{"messages":[{"role":"user","content":"x"},{"role":"function","name":"f","content":"y"}]}`, "messages[1].role", "deprecated"},
		{"tool message without id", `{"messages":[{"role":"user","content":"x"},{"role":"tool","content":"y"}]}`, "messages[1].tool_call_id", "required"},
		{"bad tool arguments", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{nope"}}]}]}`,
			"messages[1].tool_calls[0].function.arguments", "not valid JSON"},
		{"trailing data in tool arguments", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}}"}}]}]}`,
			"messages[1].tool_calls[0].function.arguments", "not valid JSON"},
		{"tool call without id", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]}`,
			"messages[1].tool_calls[0]", "needs an id"},
		{"required without tools", `{"messages":[{"role":"user","content":"x"}],"tool_choice":"required"}`, "tool_choice", "needs tools"},
		{"forced tool not declared", `{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":{"type":"function","function":{"name":"b"}}}`,
			"tool_choice", `"b"`},
		{"bad tool_choice", `{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":"always"}`, "tool_choice", `"always"`},
		{"bad tool_choice object", `{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":{"type":"allowed_tools"}}`, "tool_choice", "must be none"},
		{"custom tool", `{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom","function":{"name":"a"}}]}`, "tools[0].type", `"custom"`},
		{"tool without name", `{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{}}]}`, "tools[0].function.name", "required"},
		{"bad tool parameters", `{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a","parameters":"{"}}]}`, "tools[0].function.parameters", "JSON Schema object"},
		{"json_schema without schema", `{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"n"}}}`,
			"response_format.json_schema.schema", "needs a schema"},
		{"bad response format", `{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}}`, "response_format.type", `"yaml"`},
		{"bad reasoning effort", `{"messages":[{"role":"user","content":"x"}],"reasoning_effort":"extreme"}`, "reasoning_effort", `"extreme"`},
		{"negative max tokens", `{"messages":[{"role":"user","content":"x"}],"max_tokens":-1}`, "max_completion_tokens", "positive"},
	}
	p, srv := newTestProvider(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, stream := range []bool{false, true} {
				var err error
				if stream {
					_, err = p.ChatStream(context.Background(), parseRequest(t, tt.req))
				} else {
					_, err = p.Chat(context.Background(), parseRequest(t, tt.req))
				}
				var ge *gateway.Error
				if !errors.As(err, &ge) {
					t.Fatalf("stream=%t: err = %v, want a *gateway.Error", stream, err)
				}
				if ge.Status != http.StatusBadRequest || ge.Type != gateway.TypeInvalidRequest || ge.Param != tt.wantParam || !strings.Contains(ge.Message, tt.wantMsg) {
					t.Errorf("stream=%t: error = %d %s param %q: %q; want param %q containing %q", stream, ge.Status, ge.Type, ge.Param, ge.Message, tt.wantParam, tt.wantMsg)
				}
				if _, retryable, _ := gateway.Classify(err); retryable {
					t.Errorf("stream=%t: a translation error is retryable", stream)
				}
			}
			if n := len(srv.Requests()); n != 0 {
				t.Errorf("%d requests reached Bedrock", n)
			}
		})
	}
}

// TestUpstreamValidation: requests the provider translates faithfully but
// Bedrock refuses come back as Bedrock's 400.
func TestUpstreamValidation(t *testing.T) {
	tests := []struct{ name, req, want string }{
		{"starts with assistant", `{"messages":[{"role":"assistant","content":"hi"},{"role":"user","content":"x"}]}`, "must start with a user message"},
		{"blank text", `{"messages":[{"role":"user","content":"  "}]}`, "is blank"},
		{"tool result without tool use", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"y"},{"role":"tool","tool_call_id":"c","content":"z"}],"tools":[{"type":"function","function":{"name":"a"}}]}`, "exceeds the number of toolUse blocks"},
		{"tool blocks without tools", `{"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"a","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"z"}]}`, "toolConfig field must be defined"},
		{"temperature out of range", `{"messages":[{"role":"user","content":"x"}],"temperature":1.5}`, "temperature"},
	}
	p, _ := newTestProvider(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Chat(context.Background(), parseRequest(t, tt.req))
			var pe *gateway.ProviderError
			if !errors.As(err, &pe) || pe.Status != 400 || pe.Type != "ValidationException" || !strings.Contains(pe.Message, tt.want) {
				t.Fatalf("err = %v, want a 400 ValidationException about %q", err, tt.want)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	// Numbers compare as written, so a large integer that lost precision
	// does not pass.
	decode := func(p []byte) any {
		dec := json.NewDecoder(bytes.NewReader(p))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("invalid JSON %s: %v", p, err)
		}
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}

func compactJSON(t *testing.T, s string) string {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("invalid JSON %s: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
