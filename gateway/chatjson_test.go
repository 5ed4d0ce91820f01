package gateway

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"aigw/gateway/internal/jsonscan"
)

// Chunks as OpenAI and OpenAI-compatible hosts stream them.
//
// SPEC: https://platform.openai.com/docs/api-reference/chat-streaming/streaming
var chatChunkDocs = []string{
	// role delta, then content deltas, finish, usage (stream_options.include_usage)
	`{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}`,
	`{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","service_tier":"default","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"3bWnCa"}`,
	`{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Line one\nsaid \"two\" \u00e9t\u00e9 \ud83d\ude00 caf\u00e9 \\ \/ \t\b\f\r — ✓"},"logprobs":null,"finish_reason":null}]}`,
	`{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}`,
	`{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}`,
	// tool calls: the first delta names the call, the next carry arguments
	`{"id":"chatcmpl-456","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_current_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}`,
	`{"id":"chatcmpl-456","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"location\": \"Boston, MA\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}`,
	`{"id":"chatcmpl-456","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":"{}"}},{"index":1,"id":"call_b","type":"function","function":{"name":"g","arguments":"{\"x\":1}"}}]},"logprobs":null,"finish_reason":null}]}`,
	`{"id":"chatcmpl-456","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}`,
	`{"id":"chatcmpl-456","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99}}`,
	// logprobs, refusal, reasoning (DeepSeek, vLLM), two choices
	`{"id":"chatcmpl-789","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":{"content":[{"token":"Hello","logprob":-0.31725305,"bytes":[72,101,108,108,111],"top_logprobs":[{"token":"Hello","logprob":-0.31725305,"bytes":[72,101,108,108,111]},{"token":"Hi","logprob":-1.3190403,"bytes":null}]}],"refusal":null},"finish_reason":null}]}`,
	`{"id":"chatcmpl-789","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o","choices":[{"index":0,"delta":{"refusal":"I'm sorry, I can't help with that."},"logprobs":null,"finish_reason":null}]}`,
	`{"id":"0193c3b4","object":"chat.completion.chunk","created":1736400000,"model":"deepseek-reasoner","system_fingerprint":"fp_7e73fd9a08","choices":[{"index":0,"delta":{"content":null,"reasoning_content":"Okay, the user"},"logprobs":null,"finish_reason":null}]}`,
	`{"id":"cmpl-2","object":"chat.completion.chunk","created":1736400000,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"logprobs":null,"finish_reason":null,"stop_reason":null},{"index":1,"delta":{"content":"b"},"logprobs":null,"finish_reason":"length","stop_reason":null}]}`,
	// Azure's filter results, Groq's x_groq
	`{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false}}}]}`,
	`{"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"delta":{"content":"Hi"},"finish_reason":null,"index":0,"logprobs":null}],"created":1720000000,"id":"chatcmpl-9","model":"gpt-4o-2024-05-13","object":"chat.completion.chunk","system_fingerprint":"fp_abc"}`,
	`{"id":"chatcmpl-g","object":"chat.completion.chunk","created":1720000000,"model":"llama-3.1-8b-instant","system_fingerprint":"fp_9cb648b966","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"x_groq":{"id":"req_01j","usage":{"queue_time":0.018,"prompt_tokens":40,"prompt_time":0.002,"completion_tokens":12,"completion_time":0.01,"total_tokens":52,"total_time":0.012}}}`,
	"{\n  \"id\" : \"x\" ,\t\"choices\" : [ { \"index\" : 0 , \"delta\" : { \"content\" : \"y\" } , \"logprobs\" : { \"a\" : [ 1 , 2.5e-3 , true , false , null ] } } ] \r\n}\n",
}

// Completions as OpenAI and OpenAI-compatible hosts answer them (the
// first seven), then unusual ones.
//
// SPEC: https://platform.openai.com/docs/api-reference/chat/object
var chatResponseDocs = []string{
	`{
  "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
  "object": "chat.completion",
  "created": 1741569952,
  "model": "gpt-4.1-2025-04-14",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "Hello! How can I assist you today?",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 19,
    "completion_tokens": 10,
    "total_tokens": 29,
    "prompt_tokens_details": {
      "cached_tokens": 0,
      "audio_tokens": 0
    },
    "completion_tokens_details": {
      "reasoning_tokens": 0,
      "audio_tokens": 0,
      "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0
    }
  },
  "service_tier": "default"
}`,
	`{"id":"chatcmpl-abc123","object":"chat.completion","created":1699896916,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_abc123","type":"function","function":{"name":"get_current_weather","arguments":"{\n\"location\": \"Boston, MA\"\n}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99,"completion_tokens_details":{"reasoning_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}`,
	`{"id":"chatcmpl-r","object":"chat.completion","created":1741569952,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't assist with that."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":8,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":0,"cache_creation_tokens":5}},"system_fingerprint":"fp_1"}`,
	`{"id":"d1","object":"chat.completion","created":1736400000,"model":"deepseek-reasoner","choices":[{"index":0,"message":{"role":"assistant","content":"42","reasoning_content":"Let me think.\nSix times seven."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":20},"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":12},"system_fingerprint":"fp_7e73fd9a08"}`,
	`{"id":"chatcmpl-a","object":"chat.completion","created":1729018505,"model":"gpt-4o-audio-preview","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"audio":{"id":"audio_6710","data":"UklGRuY2AgBXQVZF","expires_at":1729018505,"transcript":"Yes."}},"finish_reason":"stop"}],"usage":{"prompt_tokens":17,"completion_tokens":181,"total_tokens":198,"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":168,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}`,
	`{"id":"chatcmpl-f","object":"chat.completion","created":1,"model":"gpt-3.5-turbo-0613","choices":[{"index":0,"message":{"role":"assistant","content":null,"function_call":{"name":"get_weather","arguments":"{ \"city\": \"Paris\" }"}},"finish_reason":"function_call"}]}`,
	`{"id":"chatcmpl-l","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","annotations":[{"type":"url_citation","url_citation":{"start_index":0,"end_index":2,"title":"t","url":"https://example.com/?q=1&r=2"}}]},"logprobs":{"content":[{"token":"Hi","logprob":0,"bytes":[72,105],"top_logprobs":[]}],"refusal":null},"finish_reason":"stop"},{"index":1,"message":{"role":"assistant","content":"Hello","name":"bot","tool_call_id":""},"logprobs":null,"finish_reason":"length"}],"usage":null}`,
	`{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"text","text":"parts"}]},"finish_reason":"stop"}]}`,
	`{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":5},"finish_reason":"stop"}]}`,
	`{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant"},"finish_reason":"stop"}]}`,
	`{"id":"x","choices":[{"index":null,"message":null,"finish_reason":null,"logprobs":null},null],"usage":{"prompt_tokens":null,"prompt_tokens_details":null,"completion_tokens_details":null}}`,
	`{"choices":[{"message":{"role":null,"content":null,"name":null,"tool_calls":null,"tool_call_id":null,"refusal":null,"reasoning_content":null,"audio":null,"function_call":null}}]}`,
	`{"choices":[{"message":{"tool_calls":[]}}],"usage":{}}`,
}

// Documents encoding/json reads in ways the fast path must not guess at.
var chatTrickyDocs = []string{
	``, ` `, `null`, ` null `, `[]`, `"x"`, `1`, `{`, `{}`, ` {} `, `{}x`, `{} {}`, `{"id":"a"}}`, `{"id":"a",}`, `{,}`, `{"id" "a"}`,
	`{"id":"a","id":"b"}`, `{"id":"a","ID":"b"}`, `{"Id":"x"}`, `{"ID":"x","id":"y"}`, `{"iD":1}`,
	`{"usage":{"prompt_tokens":1},"usage":{"completion_tokens":2}}`,
	`{"choices":[{"index":0}],"choices":[{"delta":{}}]}`,
	`{"choices":[{"delta":{"content":"a","content":"b"}}]}`,
	`{"\u0069d":"x"}`, `{"i\nd":"x"}`, `{"ſervice_tier":"x"}`, `{"usage":{"prompt_tokens_details":{"cached_to` + "\u212a" + `ens":1}}}`,
	`{"é":1,"id":"y"}`, `{"Raw":"x","raw":1,"-":2}`, `{"usage":{"Estimated":true}}`,
	`{"created":1e2}`, `{"created":-0}`, `{"created":-0.0}`, `{"created":1.0}`, `{"created":1E2}`, `{"created":01}`, `{"created":-}`,
	`{"created":999999999999999999}`, `{"created":9223372036854775807}`, `{"created":9223372036854775808}`,
	`{"created":-9223372036854775808}`, `{"created":99999999999999999999999}`, `{"created":"1"}`, `{"created":true}`,
	`{"created":[]}`, `{"created":{}}`, `{"created":-1}`,
	`{"id":null,"object":null,"created":null,"model":null,"choices":null,"usage":null,"system_fingerprint":null,"service_tier":null}`,
	`{"choices":[{"index":null,"delta":null,"finish_reason":null,"logprobs":null}]}`,
	`{"choices":[null]}`, `{"choices":[1]}`, `{"choices":{}}`, `{"choices":"x"}`, `{"choices":[{}],"usage":5}`,
	`{"choices":[{"delta":{"role":null,"content":null,"reasoning_content":null,"tool_calls":null,"refusal":null}}]}`,
	`{"choices":[{"delta":{"tool_calls":[{"index":null,"id":null,"type":null,"function":null}]}}]}`,
	`{"choices":[{"delta":{"tool_calls":[{"index":-3,"function":{"name":null,"arguments":null}},{"index":1.5}]}}]}`,
	`{"choices":[{"delta":{"tool_calls":[null,{"index":2}]}}]}`,
	`{"choices":[{"delta":{"role":5}}]}`, `{"choices":[{"delta":{"content":true}}]}`, `{"choices":[{"delta":[]}]}`,
	`{"choices":[{"finish_reason":1,"index":"0"}]}`,
	`{"id":"\u0000"}`, `{"id":"\ud83d\ude00"}`, `{"id":"\ud83d"}`, `{"id":"\ude00"}`, `{"id":"\ud83d\u0041"}`, `{"id":"\ud83dx"}`,
	`{"id":"\ud83d\ud83d\ude00"}`, `{"id":"\uD83D\uDE00\u00E9"}`, `{"id":"\u12"}`, `{"id":"\x"}`, `{"id":"\'"}`,
	"{\"id\":\"\xff\"}", "{\"id\":\"a\xed\xa0\x80b\"}", "{\"id\":\"\xc0\xaf\"}", "{\"id\":\"\xe2\x82\"}", "{\"id\":\"\\n\xff\"}",
	"{\"id\":\"\t\"}", "{\"id\":\"\x7f\"}", "{\"x\":\"\xff\",\"id\":\"ok\"}", "{\"choices\":[{\"logprobs\":\"\xff\"}]}",
	"\xef\xbb\xbf{}", "{\"id\":\"a\"}\x00",
	`{"x":{"a":[1,2,{"b":null}],"c":"\u1234"},"id":"y"}`,
	`{"x":` + strings.Repeat(`[`, 300) + strings.Repeat(`]`, 300) + `,"id":"deep"}`,
	`{"x":` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001) + `}`,
	`{"choices":[{"logprobs":"x"}]}`, `{"choices":[{"logprobs":true}]}`, `{"choices":[{"logprobs":-1.5e+3}]}`, `{"choices":[{"logprobs":[]}]}`,
	`{"choices":[{"logprobs":{"a":1,"a":2}}]}`, `{"choices":[{"logprobs":nul}]}`, `{"choices":[{"logprobs":tru}]}`,
	`{"choices":[{"message":{"content":"a"},"message":{"role":"b"}}]}`,
	`{"choices":[{"message":{"content":""}}]}`, `{"choices":[{"message":{"content":{}}}]}`, `{"choices":[{"message":{"content":[]}}]}`,
	`{"choices":[{"message":{"audio":{"id":"a"},"function_call":[1]}}]}`,
	`{"choices":[{"message":{"content":"\ud800"}}]}`, `{"choices":[{"message":{"content":" \"\\"}}]}`,
	// found by the fuzzers
	`{"id":"\ud800\u000A"}`, `{"id":"\ud800\ud800"}`, `{"id":"\ud8000\ud800"}`, `{"00000":{},"00000":{}}`, `{"":0E0}`,
	"{\"choices\":[{\"messAge\":{\"\x81\xb2\xc9\":\"\"}}],\"usage\":null}",
	"{\"choices\":[{\"delta\":{\"refusal\":\"\xf30000000000000000\"}}]}",
	"{\"choices\":[{\"message\":{\"role\":\"\x910\",\"Content\":\"\",\"Content\":\"\\b0\"}}]}",
}

// chatLongDoc is a completion longer than chatShareMax, whose strings do
// not share a copy of it.
var chatLongDoc = `{"id":"chatcmpl-long","object":"chat.completion","created":1741569952,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"` +
	strings.Repeat(`A line of a long answer, with \"quotes\", caf\u00e9 and é.\n`, 80) + `","reasoning_content":"` +
	strings.Repeat("plain text ", 300) + `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":900,"total_tokens":919}}`

func allChatDocs() []string {
	var docs []string
	docs = append(docs, chatChunkDocs...)
	docs = append(docs, chatResponseDocs...)
	return append(docs, chatTrickyDocs...)
}

// checkDecodeChat checks that DecodeChatChunk and DecodeChatResponse give
// what json.Unmarshal gives for data, and keep no reference to data.
func checkDecodeChat(t *testing.T, data []byte) {
	t.Helper()
	var wantC ChatChunk
	werr := json.Unmarshal(data, &wantC)
	in := append([]byte(nil), data...)
	gotC := ChatChunk{Raw: []byte("stale"), ID: "stale"}
	gerr := DecodeChatChunk(in, &gotC)
	clear(in)
	compareDecoded(t, "DecodeChatChunk", data, gotC, wantC, gerr, werr)

	var wantR ChatResponse
	werr = json.Unmarshal(data, &wantR)
	in = append(in[:0], data...)
	gotR := ChatResponse{Model: "stale", Usage: &Usage{}}
	gerr = DecodeChatResponse(in, &gotR)
	clear(in)
	compareDecoded(t, "DecodeChatResponse", data, gotR, wantR, gerr, werr)
}

func compareDecoded(t *testing.T, fn string, data []byte, got, want any, gerr, werr error) {
	t.Helper()
	if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		t.Fatalf("%s(%q): error %v; json.Unmarshal: %v", fn, data, gerr, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s(%q) =\n%#v\njson.Unmarshal:\n%#v", fn, data, got, want)
	}
}

func TestDecodeChat(t *testing.T) {
	for _, doc := range allChatDocs() {
		checkDecodeChat(t, []byte(doc))
	}
	checkDecodeChat(t, []byte(chatLongDoc))
}

// TestDecodeChatFast checks that the realistic documents take the fast
// path (TestDecodeChat checks what it gives).
func TestDecodeChatFast(t *testing.T) {
	for _, doc := range chatChunkDocs {
		d := chatDecoder{Scanner: jsonscan.Scanner{B: []byte(doc)}}
		var c ChatChunk
		if !d.top() || !d.chunk(&c) || !d.end() {
			t.Errorf("chunk %s: fast path gave up at %d", doc, d.I)
		}
	}
	for _, doc := range append(chatResponseDocs[:7:7], chatLongDoc) {
		d := chatDecoder{Scanner: jsonscan.Scanner{B: []byte(doc)}}
		var r ChatResponse
		if !d.top() || !d.response(&r) || !d.end() {
			t.Errorf("response %s: fast path gave up at %d", doc, d.I)
		}
	}
}

func FuzzDecodeChatChunk(f *testing.F) {
	for _, doc := range allChatDocs() {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkDecodeChat(t, data) })
}

// FuzzDecodeChatResponse is FuzzDecodeChatChunk seeded with responses
// only, so that the fuzzer spends its time on their shapes.
func FuzzDecodeChatResponse(f *testing.F) {
	for _, doc := range chatResponseDocs {
		f.Add([]byte(doc))
	}
	for _, doc := range chatTrickyDocs {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkDecodeChat(t, data) })
}

// chatValueTemplates place one JSON value (or key) where each reader of
// the fast path reads it.
var chatValueTemplates = [][2]string{
	{`{"id":`, `}`},
	{`{"created":`, `,"id":"x"}`},
	{`{"choices":[{"delta":{"content":`, `}}]}`},
	{`{"choices":[{"delta":{"role":"assistant","tool_calls":[{"index":`, `,"function":{"arguments":""}}]}}]}`},
	{`{"choices":[{"index":0,"logprobs":`, ` ,"finish_reason":null}]}`},
	{`{"choices":[{"message":{"content":`, `},"finish_reason":"stop"}]}`},
	{`{"choices":[{"delta":`, `}]}`},
	{`{"choices":[`, `]}`},
	{`{"usage":`, `}`},
	{`{"x":`, `,"id":"y"}`},
	{`{"`, `":"v","id":"y"}`},
	{`{"choices":[{"delta":{"`, `":null}}]}`},
}

// FuzzDecodeChatValue checks the decoders on documents of a realistic
// shape with the fuzzed bytes as one value or key, so that the fuzzer
// reaches the fast path's value readers more often than by mutating
// whole documents.
func FuzzDecodeChatValue(f *testing.F) {
	for _, v := range []string{
		`"x"`, `""`, `null`, `0`, `-0`, `1e2`, `1.0`, `12345678901234567890`, `true`, `[]`, `{}`, `[null]`,
		`"a\nb\"c\\d\/e\u00e9\ud83d\ude00"`, `"\ud83d"`, `"\ude00x"`, `"\u0000"`, "\"\xff\"", "\"é—✓\"",
		`{"content":"x","role":"assistant"}`, `{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"prompt_tokens_details":{"cached_tokens":1}}`,
		`{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}`, `[{"type":"text","text":"x"}]`, ` "x" `, `"x" "y"`,
		`id`, `ID`, `content`, `Content`, `choices`, `x`, `\u0069d`,
	} {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		for _, tpl := range chatValueTemplates {
			checkDecodeChat(t, []byte(tpl[0]+string(v)+tpl[1]))
		}
	})
}

func BenchmarkDecodeChatChunk(b *testing.B) {
	for _, doc := range []struct{ name, data string }{
		{"role", chatChunkDocs[0]},
		{"content", chatChunkDocs[1]},
		{"escaped", chatChunkDocs[2]},
		{"tool_call", chatChunkDocs[5]},
		{"usage", chatChunkDocs[4]},
	} {
		data := []byte(doc.data)
		b.Run(doc.name+"/json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var c ChatChunk
				if err := json.Unmarshal(data, &c); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(doc.name+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var c ChatChunk
				if err := DecodeChatChunk(data, &c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeChatResponse(b *testing.B) {
	long, _ := json.Marshal(ChatResponse{
		ID: "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", Object: "chat.completion", Created: 1741569952, Model: "gpt-4.1-2025-04-14",
		Choices: []Choice{{Message: Message{Role: "assistant", Content: TextContent(strings.Repeat("Here is a line of an answer, with \"quotes\" and a tab\t.\n", 40))}, FinishReason: "stop"}},
		Usage:   &Usage{PromptTokens: 19, CompletionTokens: 600, TotalTokens: 619, PromptTokensDetails: &PromptTokensDetails{}, CompletionTokensDetails: &CompletionTokensDetails{}},
	})
	for _, doc := range []struct{ name, data string }{
		{"text", chatResponseDocs[0]},
		{"tool_call", chatResponseDocs[1]},
		{"long", string(long)},
		{"longer", chatLongDoc},
	} {
		data := []byte(doc.data)
		b.Run(doc.name+"/json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var r ChatResponse
				if err := json.Unmarshal(data, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(doc.name+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var r ChatResponse
				if err := DecodeChatResponse(data, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
