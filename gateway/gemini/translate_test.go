package gemini

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"aigw/gateway"
)

// jsonEqual compares two JSON documents by value.
func jsonEqual(t *testing.T, got, want []byte) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want is not JSON: %v\n%s", err, want)
	}
	return reflect.DeepEqual(g, w)
}

func parseChatRequest(t testing.TB, s string) *gateway.ChatRequest {
	t.Helper()
	var req gateway.ChatRequest
	if err := json.Unmarshal([]byte(s), &req); err != nil {
		t.Fatalf("request %s: %v", s, err)
	}
	return &req
}

func TestTranslateRequest(t *testing.T) {
	for _, test := range []struct {
		name string
		req  string // OpenAI chat request
		want string // Gemini GenerateContentRequest
	}{
		{
			name: "SystemAndUser",
			req:  `{"model":"gemini-2.5-flash","messages":[{"role":"system","content":"Be brief."},{"role":"developer","content":[{"type":"text","text":"Speak French."}]},{"role":"user","content":"Hello!"}]}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"Hello!"}]}],"systemInstruction":{"parts":[{"text":"Be brief."},{"text":"Speak French."}]}}`,
		},
		{
			name: "ConversationMergesSameRoleTurns",
			req:  `{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"b"},{"type":"text","text":""}]},{"role":"assistant","content":"c"},{"role":"assistant","content":null},{"role":"user","content":"d"}]}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"a"},{"text":"b"}]},{"role":"model","parts":[{"text":"c"}]},{"role":"user","parts":[{"text":"d"}]}]}`,
		},
		{
			name: "Images",
			req: `{"model":"m","messages":[{"role":"user","content":[
				{"type":"text","text":"What is in these?"},
				{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
				{"type":"image_url","image_url":{"url":"https://example.com/cat.JPG?size=large","detail":"high"}},
				{"type":"image_url","image_url":{"url":"https://generativelanguage.googleapis.com/v1beta/files/abc123"}},
				{"type":"image_url","image_url":{"url":"gs://bucket/dog.webp"}}]}]}`,
			want: `{"contents":[{"role":"user","parts":[
				{"text":"What is in these?"},
				{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}},
				{"fileData":{"mimeType":"image/jpeg","fileUri":"https://example.com/cat.JPG?size=large"}},
				{"fileData":{"fileUri":"https://generativelanguage.googleapis.com/v1beta/files/abc123"}},
				{"fileData":{"mimeType":"image/webp","fileUri":"gs://bucket/dog.webp"}}]}]}`,
		},
		{
			name: "AudioAndFile",
			req: `{"model":"m","messages":[{"role":"user","content":[
				{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}},
				{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0="}}]}]}`,
			want: `{"contents":[{"role":"user","parts":[
				{"inlineData":{"mimeType":"audio/wav","data":"UklGRg=="}},
				{"inlineData":{"mimeType":"application/pdf","data":"JVBERi0="}}]}]}`,
		},
		{
			name: "ToolRoundTrip",
			req: `{"model":"m","messages":[
				{"role":"user","content":"Weather in Boston and Paris?"},
				{"role":"assistant","content":"Let me check.","tool_calls":[
					{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Boston\"}"}},
					{"id":"call_2","type":"function","function":{"name":"get_weather","arguments":""}}]},
				{"role":"tool","tool_call_id":"call_1","content":"{\"temp\": 20}"},
				{"role":"tool","tool_call_id":"call_2","content":"sunny, 25C"},
				{"role":"assistant","content":null,"tool_calls":[{"id":"call_3","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
				{"role":"tool","tool_call_id":"call_3","content":[{"type":"text","text":"[1, 2]"}]},
				{"role":"tool","tool_call_id":"call_x","name":"legacy","content":"\"quoted\""}]}`,
			want: `{"contents":[
				{"role":"user","parts":[{"text":"Weather in Boston and Paris?"}]},
				{"role":"model","parts":[{"text":"Let me check."},
					{"functionCall":{"id":"call_1","name":"get_weather","args":{"city":"Boston"}},"thoughtSignature":"skip_thought_signature_validator"},
					{"functionCall":{"id":"call_2","name":"get_weather","args":{}}}]},
				{"role":"user","parts":[
					{"functionResponse":{"id":"call_1","name":"get_weather","response":{"temp":20}}},
					{"functionResponse":{"id":"call_2","name":"get_weather","response":{"content":"sunny, 25C"}}}]},
				{"role":"model","parts":[{"functionCall":{"id":"call_3","name":"get_time","args":{}},"thoughtSignature":"skip_thought_signature_validator"}]},
				{"role":"user","parts":[
					{"functionResponse":{"id":"call_3","name":"get_time","response":{"content":[1,2]}}},
					{"functionResponse":{"id":"call_x","name":"legacy","response":{"content":"quoted"}}}]}]}`,
		},
		{
			name: "ToolCallUnsignedForGemini2",
			req: `{"model":"gemini-2.5-pro","messages":[{"role":"user","content":"x"},
				{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
				{"role":"tool","tool_call_id":"c1","content":"{}"}]}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"x"}]},
				{"role":"model","parts":[{"functionCall":{"id":"c1","name":"f","args":{}}}]},
				{"role":"user","parts":[{"functionResponse":{"id":"c1","name":"f","response":{}}}]}]}`,
		},
		{
			name: "ToolsAuto",
			req: `{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"auto","parallel_tool_calls":false,"tools":[
				{"type":"function","function":{"name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false},"strict":true}},
				{"type":"function","function":{"name":"now"}}]}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],
				"tools":[{"functionDeclarations":[
					{"name":"get_weather","description":"Weather of a city","parametersJsonSchema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}},
					{"name":"now"}]}],
				"toolConfig":{"functionCallingConfig":{"mode":"AUTO"}}}`,
		},
		{
			name: "ToolChoiceNone",
			req:  `{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"none","tools":[{"type":"function","function":{"name":"f"}}]}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":[{"functionDeclarations":[{"name":"f"}]}],"toolConfig":{"functionCallingConfig":{"mode":"NONE"}}}`,
		},
		{
			name: "ToolChoiceRequired",
			req:  `{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"required","tools":[{"type":"function","function":{"name":"f"}}]}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":[{"functionDeclarations":[{"name":"f"}]}],"toolConfig":{"functionCallingConfig":{"mode":"ANY"}}}`,
		},
		{
			name: "ToolChoiceFunction",
			req:  `{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":{"type":"function","function":{"name":"g"}},"tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"g"}}]}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":[{"functionDeclarations":[{"name":"f"},{"name":"g"}]}],"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["g"]}}}`,
		},
		{
			name: "ToolChoiceWithoutTools",
			req:  `{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"none"}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`,
		},
		{
			name: "GenerationConfig",
			req:  `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":50,"max_completion_tokens":100,"temperature":0.5,"top_p":0.9,"stop":"END","n":2,"seed":42,"presence_penalty":0.1,"frequency_penalty":-0.2,"user":"u1","logprobs":true,"metadata":{"a":"b"}}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":100,"temperature":0.5,"topP":0.9,"stopSequences":["END"],"candidateCount":2,"seed":42,"presencePenalty":0.1,"frequencyPenalty":-0.2}}`,
		},
		{
			name: "StopArrayAndZeroTemperature",
			req:  `{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["a","b"],"temperature":0,"max_tokens":7}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":7,"temperature":0,"stopSequences":["a","b"]}}`,
		},
		{
			name: "JSONObject",
			req:  `{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"responseMimeType":"application/json"}}`,
		},
		{
			name: "JSONSchema",
			req:  `{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"r","strict":true,"schema":{"type":"object","properties":{"x":{"type":"integer"}}}}}}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"responseMimeType":"application/json","responseJsonSchema":{"type":"object","properties":{"x":{"type":"integer"}}}}}`,
		},
		{
			name: "TextFormat",
			req:  `{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"text"}}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`,
		},
		{
			name: "ReasoningBudget",
			req:  `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}],"reasoning_effort":"medium"}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"thinkingConfig":{"includeThoughts":true,"thinkingBudget":8192}}}`,
		},
		{
			name: "ReasoningNone",
			req:  `{"model":"models/gemini-2.5-flash-lite","messages":[{"role":"user","content":"hi"}],"reasoning_effort":"none"}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"thinkingConfig":{"thinkingBudget":0}}}`,
		},
		{
			name: "ReasoningLevel",
			req:  `{"model":"gemini-3-pro-preview","messages":[{"role":"user","content":"hi"}],"reasoning_effort":"low"}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"thinkingConfig":{"includeThoughts":true,"thinkingLevel":"LOW"}}}`,
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			req := parseChatRequest(t, test.req)
			before, _ := json.Marshal(req)
			gr, err := translateRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(gr)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, got, []byte(test.want)) {
				t.Errorf("got  %s\nwant %s", got, test.want)
			}
			if after, _ := json.Marshal(req); string(after) != string(before) {
				t.Errorf("the request was modified:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestTranslateRequestErrors(t *testing.T) {
	tools := `"tools":[{"type":"function","function":{"name":"f"}}]`
	for _, test := range []struct {
		name, req, param string
	}{
		{"NoMessages", `{"model":"m","messages":[]}`, "messages"},
		{"OnlySystem", `{"model":"m","messages":[{"role":"system","content":"x"}]}`, "messages"},
		{"EmptyUser", `{"model":"m","messages":[{"role":"user","content":""}]}`, "messages[0].content"},
		{"UnknownRole", `{"model":"m","messages":[{"role":"function","name":"f","content":"x"}]}`, "messages[0].role"},
		{"SystemImage", `{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/a.png"}}]},{"role":"user","content":"x"}]}`, "messages[0].content[0].type"},
		{"UnknownPart", `{"model":"m","messages":[{"role":"user","content":[{"type":"video","text":"x"}]}]}`, "messages[0].content[0].type"},
		{"ImageWithoutURL", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, "messages[0].content[0].image_url"},
		{"ImageFileScheme", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"file:///etc/passwd"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"ImageNotBase64", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"ImageNoMediaType", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:;base64,abc"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"AudioNoFormat", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"abc"}}]}]}`, "messages[0].content[0].input_audio"},
		{"FileID", `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-abc"}}]}]}`, "messages[0].content[0].file"},
		{"UnknownToolCallID", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","tool_call_id":"call_9","content":"r"}]}`, "messages[1].tool_call_id"},
		{"ToolCallArgsNotObject", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[1].tool_calls[0].function.arguments"},
		{"ToolCallArgsBroken", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]}]}`, "messages[1].tool_calls[0].function.arguments"},
		{"ToolCallNoName", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"arguments":"{}"}}]}]}`, "messages[1].tool_calls[0].function.name"},
		{"ToolCallType", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"custom","function":{"name":"f"}}]}]}`, "messages[1].tool_calls[0].type"},
		{"ToolType", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search"}]}`, "tools[0].type"},
		{"ToolNoName", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{}}]}`, "tools[0].function.name"},
		{"ToolChoiceUnknown", `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"always",` + tools + `}`, "tool_choice"},
		{"ToolChoiceBadObject", `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"allowed_tools"},` + tools + `}`, "tool_choice"},
		{"ToolChoiceUndeclared", `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","function":{"name":"g"}},` + tools + `}`, "tool_choice"},
		{"RequiredWithoutTools", `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"required"}`, "tool_choice"},
		{"SchemaMissing", `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"r"}}}`, "response_format.json_schema.schema"},
		{"FormatUnknown", `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}}`, "response_format.type"},
		{"EffortUnknown", `{"model":"m","messages":[{"role":"user","content":"x"}],"reasoning_effort":"max"}`, "reasoning_effort"},
		{"SeedRange", `{"model":"m","messages":[{"role":"user","content":"x"}],"seed":4294967296}`, "seed"},
		{"Functions", `{"model":"m","messages":[{"role":"user","content":"x"}],"functions":[{"name":"f"}]}`, "functions"},
	} {
		t.Run(test.name, func(t *testing.T) {
			_, err := translateRequest(parseChatRequest(t, test.req))
			var ge *gateway.Error
			if !errors.As(err, &ge) || ge.Status != http.StatusBadRequest || ge.Type != gateway.TypeInvalidRequest || ge.Param != test.param {
				t.Fatalf("err = %#v; want a 400 on %s", err, test.param)
			}
		})
	}
}

func TestTranslateResponse(t *testing.T) {
	for _, test := range []struct {
		name string
		resp string // Gemini GenerateContentResponse
		want string // chat.completion, without id and created
	}{
		{
			name: "Text",
			resp: `{"candidates":[{"content":{"parts":[{"text":"Hello"},{"text":", world"}],"role":"model"},"finishReason":"STOP","index":0}],
				"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":3,"totalTokenCount":12},"modelVersion":"gemini-2.5-flash","responseId":"r1"}`,
			want: `{"id":"r1","object":"chat.completion","model":"gemini-2.5-flash","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, world"},"finish_reason":"stop"}],
				"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`,
		},
		{
			name: "ThoughtsAndCache",
			resp: `{"candidates":[{"content":{"parts":[{"text":"Let me think.","thought":true},{"text":"42","thoughtSignature":"c2ln"}],"role":"model"},"finishReason":"STOP"}],
				"usageMetadata":{"promptTokenCount":100,"cachedContentTokenCount":80,"toolUsePromptTokenCount":5,"candidatesTokenCount":2,"thoughtsTokenCount":30,"totalTokenCount":137}}`,
			want: `{"id":"","object":"chat.completion","model":"req-model","choices":[{"index":0,"message":{"role":"assistant","content":"42","reasoning_content":"Let me think."},"finish_reason":"stop"}],
				"usage":{"prompt_tokens":105,"completion_tokens":32,"total_tokens":137,"prompt_tokens_details":{"cached_tokens":80},"completion_tokens_details":{"reasoning_tokens":30}}}`,
		},
		{
			name: "FunctionCalls",
			resp: `{"candidates":[{"content":{"parts":[{"functionCall":{"id":"fc-1","name":"get_weather","args":{"city": "Boston", "units": ["c"]}},"thoughtSignature":"c2ln"},{"functionCall":{"id":"fc-2","name":"now"}}],"role":"model"},"finishReason":"STOP","index":0}],"responseId":"r2"}`,
			want: `{"id":"r2","object":"chat.completion","model":"req-model","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
				{"id":"fc-1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Boston\",\"units\":[\"c\"]}"}},
				{"id":"fc-2","type":"function","function":{"name":"now","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`,
		},
		{
			name: "TextAndFunctionCallCutByLength",
			resp: `{"candidates":[{"content":{"parts":[{"text":"Checking."},{"functionCall":{"id":"a","name":"f","args":{}}}],"role":"model"},"finishReason":"MAX_TOKENS"}],"responseId":"r3"}`,
			want: `{"id":"r3","object":"chat.completion","model":"req-model","choices":[{"index":0,"message":{"role":"assistant","content":"Checking.","tool_calls":[
				{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"length"}]}`,
		},
		{
			name: "CandidatesInIndexOrder",
			resp: `{"candidates":[{"content":{"parts":[{"text":"B"}],"role":"model"},"finishReason":"SAFETY","index":1},{"content":{"parts":[{"text":"A"}],"role":"model"},"finishReason":"OTHER"}],"responseId":"r4"}`,
			want: `{"id":"r4","object":"chat.completion","model":"req-model","choices":[
				{"index":0,"message":{"role":"assistant","content":"A"},"finish_reason":"stop"},
				{"index":1,"message":{"role":"assistant","content":"B"},"finish_reason":"content_filter"}]}`,
		},
		{
			name: "EmptyCandidateFiltered",
			resp: `{"candidates":[{"finishReason":"PROHIBITED_CONTENT","index":0}],"responseId":"r5"}`,
			want: `{"id":"r5","object":"chat.completion","model":"req-model","choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"content_filter"}]}`,
		},
		{
			name: "PromptBlocked",
			resp: `{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[{"category":"HARM_CATEGORY_DANGEROUS_CONTENT","probability":"HIGH"}]},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7},"modelVersion":"gemini-2.5-pro","responseId":"r6"}`,
			want: `{"id":"r6","object":"chat.completion","model":"gemini-2.5-pro","choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"content_filter"}],
				"usage":{"prompt_tokens":7,"completion_tokens":0,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`,
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			var gr generateResponse
			if err := json.Unmarshal([]byte(test.resp), &gr); err != nil {
				t.Fatal(err)
			}
			resp, err := translateResponse(&gr, "req-model")
			if err != nil {
				t.Fatal(err)
			}
			if resp.Created == 0 || resp.ID == "" {
				t.Errorf("id %q, created %d", resp.ID, resp.Created)
			}
			if !strings.Contains(test.want, `"id":"r`) {
				if !strings.HasPrefix(resp.ID, "chatcmpl-") {
					t.Errorf("generated id %q", resp.ID)
				}
				resp.ID = ""
			}
			resp.Created = 0
			got, _ := json.Marshal(resp)
			want := strings.Replace(test.want, `"model"`, `"created":0,"model"`, 1)
			if !jsonEqual(t, got, []byte(want)) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestTranslateResponseGeneratesCallIDs(t *testing.T) {
	var gr generateResponse
	json.Unmarshal([]byte(`{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{"a":1}}},{"functionCall":{"name":"g","args":{}}}]},"finishReason":"STOP"}]}`), &gr)
	resp, err := translateResponse(&gr, "m")
	if err != nil {
		t.Fatal(err)
	}
	calls := resp.Choices[0].Message.ToolCalls
	if len(calls) != 2 || calls[0].ID == calls[1].ID {
		t.Fatalf("calls = %+v", calls)
	}
	for _, c := range calls {
		if !strings.HasPrefix(c.ID, "call_") || len(c.ID) < 20 || c.Index != nil {
			t.Errorf("call %+v", c)
		}
	}
}

func TestTranslateResponseNoCandidates(t *testing.T) {
	if _, err := translateResponse(&generateResponse{ResponseID: "x"}, "m"); err == nil {
		t.Fatal("a response with neither candidates nor a block reason translated")
	}
}

func TestFinishReason(t *testing.T) {
	for _, test := range []struct {
		in    string
		tools bool
		want  string
	}{
		{"", false, ""},
		{"STOP", false, "stop"},
		{"STOP", true, "tool_calls"},
		{"MAX_TOKENS", true, "length"},
		{"SAFETY", false, "content_filter"},
		{"RECITATION", false, "content_filter"},
		{"BLOCKLIST", false, "content_filter"},
		{"PROHIBITED_CONTENT", false, "content_filter"},
		{"SPII", false, "content_filter"},
		{"IMAGE_SAFETY", false, "content_filter"},
		{"MALFORMED_FUNCTION_CALL", false, "stop"},
		{"LANGUAGE", false, "stop"},
		{"OTHER", false, "stop"},
		{"FINISH_REASON_UNSPECIFIED", false, "stop"},
	} {
		if got := finishReason(test.in, test.tools); got != test.want {
			t.Errorf("finishReason(%q, %v) = %q; want %q", test.in, test.tools, got, test.want)
		}
	}
}

func TestResource(t *testing.T) {
	for _, test := range []struct {
		model, want string
	}{
		{"gemini-2.5-flash", "models/gemini-2.5-flash"},
		{"models/gemini-2.5-flash", "models/gemini-2.5-flash"},
		{"tunedModels/my-model-123", "tunedModels/my-model-123"},
		{"gemini-embedding-001", "models/gemini-embedding-001"},
		{"", ""},
		{"../v1/files", ""},
		{"models/a/b", ""},
		{"gemini?key=x", ""},
		{"a:generateContent", ""},
		{"projects/p/models/x", ""},
	} {
		got, err := resource(test.model)
		if got != test.want || (err == nil) != (test.want != "") {
			t.Errorf("resource(%q) = %q, %v; want %q", test.model, got, err, test.want)
		}
	}
}
