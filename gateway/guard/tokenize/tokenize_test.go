package tokenize

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"aigw/gateway"

	"github.com/tiktoken-go/tokenizer"
)

// Token ids published in OpenAI's cookbook "How to count tokens with
// tiktoken" (openai/openai-cookbook examples/How_to_count_tokens_with_tiktoken.ipynb),
// computed there with OpenAI's own tiktoken.
var cookbookTokens = []struct {
	enc  Encoding
	text string
	ids  []uint
}{
	{O200kBase, "tiktoken is great!", []uint{83, 8251, 2488, 382, 2212, 0}},
	{Cl100kBase, "antidisestablishmentarianism", []uint{519, 85342, 34500, 479, 8997, 2191}},
	{O200kBase, "antidisestablishmentarianism", []uint{493, 129901, 376, 160388, 21203, 2367}},
	{Cl100kBase, "2 + 2 = 4", []uint{17, 489, 220, 17, 284, 220, 19}},
	{O200kBase, "2 + 2 = 4", []uint{17, 659, 220, 17, 314, 220, 19}},
	{Cl100kBase, "お誕生日おめでとう", []uint{33334, 45918, 243, 21990, 9080, 33334, 62004, 16556, 78699}},
	{O200kBase, "お誕生日おめでとう", []uint{8930, 9697, 243, 128225, 8930, 17693, 4344, 48669}},
}

func TestTextMatchesTiktoken(t *testing.T) {
	for _, c := range cookbookTokens {
		if got := Text(c.enc, c.text); got != len(c.ids) {
			t.Errorf("Text(%s, %q) = %d; want %d", c.enc, c.text, got, len(c.ids))
		}
		refInit()
		ids, _, err := refs.codecs[c.enc].Encode(c.text)
		if err != nil || fmt.Sprint(ids) != fmt.Sprint(c.ids) {
			t.Errorf("Encode(%s, %q) = %v, %v; want %v", c.enc, c.text, ids, err, c.ids)
		}
	}
	// Stable values computed with the library (not published by OpenAI):
	// they pin the vocabulary version and catch a changed split regexp.
	for _, c := range []struct {
		enc  Encoding
		text string
		want int
	}{
		{O200kBase, "", 0},
		{O200kBase, "Hello, world!", 4},
		{Cl100kBase, "Hello, world!", 4},
		{O200kBase, "The quick brown fox jumps over the lazy dog.", 10},
		{O200kBase, "<|endoftext|>", 7}, // special tokens in user text are plain text
		{O200kBase, "func main() {\n\tfmt.Println(\"héllo 🦊\")\n}\n", 14},
		{Cl100kBase, "func main() {\n\tfmt.Println(\"héllo 🦊\")\n}\n", 15},
	} {
		if got := Text(c.enc, c.text); got != c.want {
			t.Errorf("Text(%s, %q) = %d; want %d", c.enc, c.text, got, c.want)
		}
	}
}

// The cookbook's example conversation: the OpenAI API reported 129 prompt
// tokens for gpt-3.5-turbo and gpt-4, and 124 for gpt-4o and gpt-4o-mini.
func cookbookMessages() []gateway.Message {
	return []gateway.Message{
		{Role: "system", Content: gateway.TextContent("You are a helpful, pattern-following assistant that translates corporate jargon into plain English.")},
		{Role: "system", Name: "example_user", Content: gateway.TextContent("New synergies will help drive top-line growth.")},
		{Role: "system", Name: "example_assistant", Content: gateway.TextContent("Things working well together will increase revenue.")},
		{Role: "system", Name: "example_user", Content: gateway.TextContent("Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.")},
		{Role: "system", Name: "example_assistant", Content: gateway.TextContent("Let's talk later when we're less busy about how to do better.")},
		{Role: "user", Content: gateway.TextContent("This late pivot means we don't have time to boil the ocean for the client deliverable.")},
	}
}

func TestCountMatchesOpenAIUsage(t *testing.T) {
	req := &gateway.ChatRequest{Messages: cookbookMessages()}
	for model, want := range map[string]int{
		"gpt-4o": 124, "gpt-4o-mini": 124, "openai/gpt-4o-2024-08-06": 124, "gpt-5": 124, "o3-mini": 124,
		"gpt-4": 129, "gpt-4-0613": 129, "gpt-3.5-turbo": 129, "azure/gpt-35-turbo": 129,
	} {
		if got := Count(model, req); got != want {
			t.Errorf("Count(%q, cookbook messages) = %d; want %d", model, got, want)
		}
	}
	// The same text as array content parts counts the same.
	parts := &gateway.ChatRequest{Messages: cookbookMessages()}
	for i := range parts.Messages {
		c := parts.Messages[i].Content
		parts.Messages[i].Content = gateway.Content{IsParts: true, Parts: []gateway.ContentPart{{Type: "text", Text: c.Text}}}
	}
	if got := Count("gpt-4o", parts); got != 124 {
		t.Errorf("Count(gpt-4o, parts) = %d; want 124", got)
	}
}

// With the cookbook's weather tool the API reported 101 prompt tokens for
// gpt-4o and 105 for gpt-4. Counting the declaration's JSON is an upper
// estimate: never below the API's count, and not far above it.
func TestCountToolsByJSON(t *testing.T) {
	var tools []gateway.Tool
	err := json.Unmarshal([]byte(`[{"type":"function","function":{"name":"get_current_weather",
		"description":"Get the current weather in a given location",
		"parameters":{"type":"object","properties":{
			"location":{"type":"string","description":"The city and state, e.g. San Francisco, CA"},
			"unit":{"type":"string","description":"The unit of temperature to return","enum":["celsius","fahrenheit"]}},
			"required":["location"]}}}]`), &tools)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []gateway.Message{
		{Role: "system", Content: gateway.TextContent("You are a helpful assistant that can answer to questions about the weather.")},
		{Role: "user", Content: gateway.TextContent("What's the weather like in San Francisco?")},
	}
	for model, api := range map[string]int{"gpt-4o": 101, "gpt-4": 105} {
		without := Count(model, &gateway.ChatRequest{Messages: msgs})
		with := Count(model, &gateway.ChatRequest{Messages: msgs, Tools: tools})
		b, _ := json.Marshal(tools[0])
		if with-without != Text(FamilyOf(model).Encoding, string(b)) {
			t.Errorf("%s: tools add %d tokens; want the tokens of their JSON", model, with-without)
		}
		if with < api || with > api*3/2 {
			t.Errorf("Count(%s, with tools) = %d; want between the API's %d and %d", model, with, api, api*3/2)
		}
	}
}

func TestCountOtherFields(t *testing.T) {
	base := Count("gpt-4o", &gateway.ChatRequest{Messages: []gateway.Message{{Role: "user", Content: gateway.TextContent("hi")}}})
	if base != 3+3+1+1 { // priming, message, "user", "hi"
		t.Fatalf("Count(one message) = %d; want 8", base)
	}
	call := &gateway.ChatRequest{Messages: []gateway.Message{
		{Role: "assistant", Content: gateway.Content{Null: true}, ToolCalls: []gateway.ToolCall{{ID: "call_1", Type: "function",
			Function: gateway.FunctionCall{Name: "get_invoice", Arguments: `{"id":"INV-42"}`}}}},
		{Role: "tool", ToolCallID: "call_1", Content: gateway.TextContent(`{"amount":12.5}`)},
	}}
	want := 3 + (3 + Text(O200kBase, "assistant") + 3 + Text(O200kBase, "get_invoice") + Text(O200kBase, `{"id":"INV-42"}`)) +
		(3 + Text(O200kBase, "tool") + Text(O200kBase, "call_1") + Text(O200kBase, `{"amount":12.5}`))
	if got := Count("gpt-4o", call); got != want {
		t.Errorf("Count(tool call and result) = %d; want %d", got, want)
	}
	schema := &gateway.ChatRequest{
		Messages:       []gateway.Message{{Role: "user", Content: gateway.TextContent("hi")}},
		ResponseFormat: &gateway.ResponseFormat{Type: "json_schema", JSONSchema: &gateway.JSONSchema{Name: "answer", Schema: json.RawMessage(`{"type":"object","properties":{"a":{"type":"string"}}}`)}},
	}
	if got, want := Count("gpt-4o", schema), base+Text(O200kBase, "answer")+Text(O200kBase, `{"type":"object","properties":{"a":{"type":"string"}}}`); got != want {
		t.Errorf("Count(json_schema) = %d; want %d", got, want)
	}
	if Count("gpt-4o", nil) != 0 {
		t.Error("Count(nil) != 0")
	}
}

func TestFamilies(t *testing.T) {
	for model, want := range map[string]Family{
		"gpt-4o":                   {"openai", O200kBase, 1},
		"GPT-4.1-mini":             {"openai", O200kBase, 1},
		"o1":                       {"openai", O200kBase, 1},
		"o4-mini-2025-04-16":       {"openai", O200kBase, 1},
		"gpt-5-nano":               {"openai", O200kBase, 1},
		"ft:gpt-4o-mini:acme::abc": {"openai", O200kBase, 1},
		"gpt-4-turbo":              {"openai", Cl100kBase, 1},
		"gpt-3.5-turbo-0125":       {"openai", Cl100kBase, 1},
		"claude-sonnet-4-5":        {"anthropic", O200kBase, 1.30},
		"us.anthropic.claude-3-5-haiku-20241022-v1:0": {"anthropic", O200kBase, 1.30},
		"gemini-2.5-pro":                  {"google", O200kBase, 1.10},
		"meta.llama3-1-70b-instruct-v1:0": {"meta", O200kBase, 1.15},
		"mistral-large-latest":            {"mistral", O200kBase, 1.25},
		"vllm/Qwen/Qwen2.5-72B-Instruct":  {"qwen", O200kBase, 1.15},
		"deepseek-chat":                   {"deepseek", O200kBase, 1.15},
		"ollama/olmo-2":                   otherFamily,
		"my-alias":                        otherFamily,
		"o10n":                            otherFamily,
	} {
		if got := FamilyOf(model); got != want {
			t.Errorf("FamilyOf(%q) = %+v; want %+v", model, got, want)
		}
	}
	req := &gateway.ChatRequest{Messages: cookbookMessages()}
	for _, model := range []string{"claude-opus-4-1", "gemini-2.5-flash", "llama-3.3-70b", "mistral-small", "some-local-model"} {
		f := FamilyOf(model)
		if got, want := Count(model, req), int(math.Ceil(124*f.Factor)); got != want {
			t.Errorf("Count(%q) = %d; want 124 × %v = %d", model, got, f.Factor, want)
		}
	}
}

func pngDataURL(t *testing.T, w, h int) string {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes())
}

func TestImageTokens(t *testing.T) {
	// OpenAI's worked examples: 1024×1024 high → 765; 2048×4096 → 1105; low → 85.
	for _, c := range []struct {
		url, detail string
		want        int
	}{
		{pngDataURL(t, 1024, 1024), "high", 765},
		{pngDataURL(t, 2048, 4096), "auto", 1105},
		{pngDataURL(t, 2048, 4096), "low", 85},
		{pngDataURL(t, 100, 100), "", 255},
		{"https://example.com/cat.png", "high", ImageUnknownTokens},
		{"data:image/png;base64,bm90IGFuIGltYWdl", "", ImageUnknownTokens},
	} {
		if got := ImageTokens(c.url, c.detail); got != c.want {
			t.Errorf("ImageTokens(%.40q, %q) = %d; want %d", c.url, c.detail, got, c.want)
		}
	}
	req := &gateway.ChatRequest{Messages: []gateway.Message{{Role: "user", Content: gateway.Content{IsParts: true, Parts: []gateway.ContentPart{
		{Type: "text", Text: "hi"},
		{Type: "image_url", ImageURL: &gateway.ImageURL{URL: pngDataURL(t, 1024, 1024)}},
	}}}}}
	if got := Count("gpt-4o", req); got != 8+765 {
		t.Errorf("Count(text + image) = %d; want %d", got, 8+765)
	}
}

// Splitting a long prompt must not change its count, and a long run of one
// character must stay linear (merges use a heap for long pieces), as must
// runs the pre-tokenizer scans more than once.
func TestLongInputs(t *testing.T) {
	for _, s := range []string{strings.Repeat(" ", 1<<16), strings.Repeat("a", 1<<16), strings.Repeat("7", 1<<16), strings.Repeat("日本", 1<<15),
		strings.Repeat("\n ", 1<<15), strings.Repeat("\u02b0"+strings.Repeat("A", 100), 1<<9)} {
		if n := Text(O200kBase, s); n <= 0 || n > len(s) {
			t.Errorf("Text(%d × %q) = %d", len(s), s[:1], n)
		}
	}
}

func TestConcurrentCount(t *testing.T) {
	req := &gateway.ChatRequest{Messages: cookbookMessages()}
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := range 16 {
		wg.Go(func() {
			model := "gpt-4o"
			want := 124
			if i%2 == 1 {
				model, want = "gpt-4", 129
			}
			for range 20 {
				if Count(model, req) != want {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d concurrent counts were wrong", bad.Load())
	}
}

// The vocabularies are compiled in: the tokenizer module imports no network
// package, and a fresh process whose every HTTP request and DNS lookup
// fails builds both encoders and counts correctly.
func TestNoNetwork(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/tiktoken-go/tokenizer").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "net" || strings.HasPrefix(dep, "net/") || dep == "crypto/tls" || dep == "os/exec" {
			t.Errorf("github.com/tiktoken-go/tokenizer depends on %s", dep)
		}
	}
	if !strings.Contains(string(out), "github.com/tiktoken-go/tokenizer/codec") {
		t.Fatalf("go list -deps looks wrong:\n%s", out)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestNoNetworkChild$", "-test.v")
	cmd.Env = append(os.Environ(), "TOKENIZE_NO_NETWORK_CHILD=1", "HTTP_PROXY=http://127.0.0.1:1", "HTTPS_PROXY=http://127.0.0.1:1",
		"TIKTOKEN_CACHE_DIR="+t.TempDir())
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "child counted offline") {
		t.Fatalf("child: %v\n%s", err, b)
	}
}

func TestNoNetworkChild(t *testing.T) {
	if os.Getenv("TOKENIZE_NO_NETWORK_CHILD") != "1" {
		t.Skip("runs in the child process of TestNoNetwork")
	}
	var attempts atomic.Int32
	errNet := errors.New("network used")
	http.DefaultTransport = roundTripFunc(func(*http.Request) (*http.Response, error) { attempts.Add(1); return nil, errNet })
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) { attempts.Add(1); return nil, errNet }}
	if o200k != nil || cl100k != nil {
		t.Fatal("encoders built before the test")
	}
	req := &gateway.ChatRequest{Messages: cookbookMessages()}
	if got := Count("gpt-4o", req); got != 124 {
		t.Errorf("Count(gpt-4o) = %d; want 124", got)
	}
	if got := Count("gpt-4", req); got != 129 {
		t.Errorf("Count(gpt-4) = %d; want 129", got)
	}
	if n := attempts.Load(); n != 0 {
		t.Fatalf("%d network attempts", n)
	}
	// tokenizer.ForModel shares the compiled vocabularies too.
	if _, err := tokenizer.ForModel(tokenizer.GPT4o); err != nil {
		t.Fatal(err)
	}
	t.Log("child counted offline")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// prompt4K is a 4 KiB English and code prompt.
func prompt4K() string {
	const para = "The gateway counts prompt tokens before it calls the model, so that rate limits can reserve them. " +
		"func Count(model string, req *gateway.ChatRequest) int { return n } // 2025-06-01, 42 ms, ünïcode ✓\n"
	s := strings.Repeat(para, 4096/len(para)+1)
	return s[:4096]
}

func BenchmarkText4KiB(b *testing.B) {
	s := prompt4K()
	for _, enc := range []Encoding{O200kBase, Cl100kBase} {
		b.Run(string(enc), func(b *testing.B) {
			Text(enc, s)
			b.SetBytes(int64(len(s)))
			b.ReportAllocs()
			for b.Loop() {
				Text(enc, s)
			}
		})
	}
}

func BenchmarkCount4KiB(b *testing.B) {
	req := &gateway.ChatRequest{Messages: []gateway.Message{
		{Role: "system", Content: gateway.TextContent("You are a billing assistant.")},
		{Role: "user", Content: gateway.TextContent(prompt4K())},
	}}
	for _, model := range []string{"gpt-4o", "claude-sonnet-4-5"} {
		b.Run(model, func(b *testing.B) {
			Count(model, req)
			b.SetBytes(4096)
			b.ReportAllocs()
			for b.Loop() {
				Count(model, req)
			}
		})
	}
}
