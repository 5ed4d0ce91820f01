package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Defaults for the zero values of [FakeConfig].
const (
	DefaultFakeModel          = "gpt-4o-mini"
	DefaultFakeEmbeddingModel = "text-embedding-3-small"
	DefaultFakeChunks         = 8
	DefaultFakeEmbeddingDims  = 64
	DefaultFakePromptTokens   = 12
)

// FakeConfig shapes the answers of a [FakeUpstream].
type FakeConfig struct {
	// Model is the model named in chat responses and listed by
	// /v1/models; "" means DefaultFakeModel.
	Model string
	// EmbeddingModel is named in embedding responses and listed by
	// /v1/models; "" means DefaultFakeEmbeddingModel.
	EmbeddingModel string
	// Chunks is the number of content chunks in a stream (one word and
	// one completion token each); 0 means DefaultFakeChunks.
	Chunks int
	// ChunkDelay is the pause before each content chunk of a stream, to
	// hold streams open; 0 writes the whole stream at once.
	ChunkDelay time.Duration
	// EmbeddingDims is the length of the embedding vector; 0 means
	// DefaultFakeEmbeddingDims.
	EmbeddingDims int
	// PromptTokens is the usage's prompt_tokens; 0 means
	// DefaultFakePromptTokens.
	PromptTokens int
}

// FakeUpstream is an OpenAI-compatible upstream that answers at once with
// precomputed bytes, cheap enough not to be the bottleneck of a benchmark:
//
//   - POST /v1/chat/completions: a chat.completion with usage, or with
//     "stream": true an SSE stream of chat.completion.chunk events (the
//     role, the content chunks, the finish reason, a usage chunk with empty
//     choices when stream_options.include_usage is true, then
//     "data: [DONE]");
//   - POST /v1/embeddings: a list with one embedding and usage;
//   - GET /v1/models: the two models.
//
// It reads every request body to its end but does not parse it as JSON: it
// looks for "stream": true and "include_usage": true textually. It checks
// no credentials. Anything else gets an OpenAI-shaped error (400 for an
// empty body, 404, 405). It is safe for concurrent use.
//
// SPEC: https://platform.openai.com/docs/api-reference/chat
type FakeUpstream struct {
	cfg FakeConfig

	chat, embeddings, models   []byte
	chatLen, embLen, modelsLen []string // Content-Length values

	// Streams, without and with include_usage: whole, and in parts for
	// ChunkDelay (head: the role chunk; content; tail: finish, usage and
	// [DONE]).
	stream, streamUsage   []byte
	head, headUsage       []byte
	content, contentUsage [][]byte
	tail, tailUsage       []byte

	bufs sync.Pool // *bytes.Buffer for request bodies
}

var (
	ctJSON  = []string{"application/json"}
	ctSSE   = []string{"text/event-stream; charset=utf-8"}
	noCache = []string{"no-cache"}
)

// fakeWords are the streamed content, one per chunk, cycled.
var fakeWords = []string{"The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", "."}

// NewFakeUpstream precomputes every answer of cfg.
func NewFakeUpstream(cfg FakeConfig) *FakeUpstream {
	if cfg.Model == "" {
		cfg.Model = DefaultFakeModel
	}
	if cfg.EmbeddingModel == "" {
		cfg.EmbeddingModel = DefaultFakeEmbeddingModel
	}
	if cfg.Chunks <= 0 {
		cfg.Chunks = DefaultFakeChunks
	}
	if cfg.EmbeddingDims <= 0 {
		cfg.EmbeddingDims = DefaultFakeEmbeddingDims
	}
	if cfg.PromptTokens <= 0 {
		cfg.PromptTokens = DefaultFakePromptTokens
	}
	f := &FakeUpstream{cfg: cfg}
	f.bufs.New = func() any { return new(bytes.Buffer) }

	const id, fingerprint = "chatcmpl-aigwloadgen0000000000000", "fp_aigw_loadgen"
	created := time.Now().Unix()
	words := make([]string, cfg.Chunks)
	for i := range words {
		words[i] = fakeWords[i%len(fakeWords)]
	}
	var text bytes.Buffer
	for _, w := range words {
		text.WriteString(w)
	}
	usage := fakeUsage{PromptTokens: cfg.PromptTokens, CompletionTokens: cfg.Chunks, TotalTokens: cfg.PromptTokens + cfg.Chunks}
	stop := "stop"

	f.chat = mustJSON(fakeCompletion{
		ID: id, Object: "chat.completion", Created: created, Model: cfg.Model,
		Choices: []fakeChoice{{Message: fakeMessage{Role: "assistant", Content: text.String()}, FinishReason: "stop"}},
		Usage:   usage, SystemFingerprint: fingerprint,
	})

	chunk := func(d fakeDelta, finish *string, withUsage bool) []byte {
		c := fakeChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: cfg.Model, SystemFingerprint: fingerprint,
			Choices: []fakeChunkChoice{{Delta: d, FinishReason: finish}}}
		if withUsage {
			c.Usage = json.RawMessage("null")
		}
		return event(mustJSON(c))
	}
	empty := ""
	for _, withUsage := range []bool{false, true} {
		head := chunk(fakeDelta{Role: "assistant", Content: &empty}, nil, withUsage)
		content := make([][]byte, len(words))
		for i := range words {
			content[i] = chunk(fakeDelta{Content: &words[i]}, nil, withUsage)
		}
		tail := chunk(fakeDelta{}, &stop, withUsage)
		if withUsage {
			u := mustJSON(usage)
			tail = append(tail, event(mustJSON(fakeChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: cfg.Model,
				SystemFingerprint: fingerprint, Choices: []fakeChunkChoice{}, Usage: u}))...)
		}
		tail = append(tail, "data: [DONE]\n\n"...)
		whole := bytes.Join(append(append([][]byte{head}, content...), tail), nil)
		if withUsage {
			f.headUsage, f.contentUsage, f.tailUsage, f.streamUsage = head, content, tail, whole
		} else {
			f.head, f.content, f.tail, f.stream = head, content, tail, whole
		}
	}

	vec := make([]float64, cfg.EmbeddingDims)
	for i := range vec {
		vec[i] = float64((i*7919)%2000-1000) / 10000 // deterministic, in [-0.1, 0.1)
	}
	f.embeddings = mustJSON(fakeEmbeddings{
		Object: "list", Data: []fakeEmbedding{{Object: "embedding", Embedding: vec}}, Model: cfg.EmbeddingModel,
		Usage: fakeEmbeddingUsage{PromptTokens: cfg.PromptTokens, TotalTokens: cfg.PromptTokens},
	})
	f.models = mustJSON(fakeModels{Object: "list", Data: []fakeModel{
		{ID: cfg.Model, Object: "model", Created: created, OwnedBy: "system"},
		{ID: cfg.EmbeddingModel, Object: "model", Created: created, OwnedBy: "system"},
	}})
	f.chatLen = []string{strconv.Itoa(len(f.chat))}
	f.embLen = []string{strconv.Itoa(len(f.embeddings))}
	f.modelsLen = []string{strconv.Itoa(len(f.models))}
	return f
}

// ServeHTTP answers one request; see [FakeUpstream].
func (f *FakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/chat/completions":
		if r.Method != http.MethodPost {
			fakeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method "+r.Method+" not allowed")
			return
		}
		buf := f.bufs.Get().(*bytes.Buffer)
		defer f.bufs.Put(buf)
		buf.Reset()
		if _, err := buf.ReadFrom(r.Body); err != nil {
			fakeError(w, http.StatusBadRequest, "invalid_request_error", "could not read the request body")
			return
		}
		body := buf.Bytes()
		if len(body) == 0 {
			fakeError(w, http.StatusBadRequest, "invalid_request_error", "we could not parse the JSON body of your request")
			return
		}
		if !jsonTrue(body, `"stream"`) {
			h := w.Header()
			h["Content-Type"], h["Content-Length"] = ctJSON, f.chatLen
			w.Write(f.chat)
			return
		}
		f.serveStream(w, r, jsonTrue(body, `"include_usage"`))
	case "/v1/embeddings":
		if r.Method != http.MethodPost {
			fakeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method "+r.Method+" not allowed")
			return
		}
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil || n == 0 {
			fakeError(w, http.StatusBadRequest, "invalid_request_error", "we could not parse the JSON body of your request")
			return
		}
		h := w.Header()
		h["Content-Type"], h["Content-Length"] = ctJSON, f.embLen
		w.Write(f.embeddings)
	case "/v1/models":
		if r.Method != http.MethodGet {
			fakeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method "+r.Method+" not allowed")
			return
		}
		h := w.Header()
		h["Content-Type"], h["Content-Length"] = ctJSON, f.modelsLen
		w.Write(f.models)
	default:
		io.Copy(io.Discard, r.Body)
		fakeError(w, http.StatusNotFound, "invalid_request_error", "unknown url "+r.URL.Path)
	}
}

func (f *FakeUpstream) serveStream(w http.ResponseWriter, r *http.Request, withUsage bool) {
	h := w.Header()
	h["Content-Type"], h["Cache-Control"] = ctSSE, noCache
	rc := http.NewResponseController(w)
	if f.cfg.ChunkDelay <= 0 {
		whole := f.stream
		if withUsage {
			whole = f.streamUsage
		}
		w.Write(whole)
		rc.Flush() // chunked, as a real upstream streams
		return
	}
	head, content, tail := f.head, f.content, f.tail
	if withUsage {
		head, content, tail = f.headUsage, f.contentUsage, f.tailUsage
	}
	w.Write(head)
	rc.Flush()
	t := time.NewTimer(f.cfg.ChunkDelay)
	defer t.Stop()
	for i, c := range content {
		if i > 0 {
			t.Reset(f.cfg.ChunkDelay)
		}
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		w.Write(c)
		if i < len(content)-1 {
			rc.Flush()
		}
	}
	w.Write(tail)
	rc.Flush()
}

// jsonTrue reports whether key (quoted) is followed by ": true" somewhere
// in body. It is a textual check, not a JSON parser: enough for requests a
// benchmark sends.
func jsonTrue(body []byte, key string) bool {
	for {
		i := bytes.Index(body, []byte(key))
		if i < 0 {
			return false
		}
		body = body[i+len(key):]
		rest := bytes.TrimLeft(body, " \t\r\n")
		if len(rest) > 0 && rest[0] == ':' {
			if bytes.HasPrefix(bytes.TrimLeft(rest[1:], " \t\r\n"), []byte("true")) {
				return true
			}
		}
	}
}

// fakeError writes an error in OpenAI's shape.
func fakeError(w http.ResponseWriter, status int, typ, msg string) {
	b := mustJSON(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
	h := w.Header()
	h["Content-Type"] = ctJSON
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func event(data []byte) []byte {
	return fmt.Appendf(nil, "data: %s\n\n", data)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the fixed shapes below always marshal
	}
	return b
}

// OpenAI wire shapes, for the precomputed answers.
type (
	fakeUsage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	}
	fakeMessage struct {
		Role    string  `json:"role"`
		Content string  `json:"content"`
		Refusal *string `json:"refusal"`
	}
	fakeChoice struct {
		Index        int         `json:"index"`
		Message      fakeMessage `json:"message"`
		Logprobs     *struct{}   `json:"logprobs"`
		FinishReason string      `json:"finish_reason"`
	}
	fakeCompletion struct {
		ID                string       `json:"id"`
		Object            string       `json:"object"`
		Created           int64        `json:"created"`
		Model             string       `json:"model"`
		Choices           []fakeChoice `json:"choices"`
		Usage             fakeUsage    `json:"usage"`
		SystemFingerprint string       `json:"system_fingerprint"`
	}
	fakeDelta struct {
		Role    string  `json:"role,omitempty"`
		Content *string `json:"content,omitempty"`
	}
	fakeChunkChoice struct {
		Index        int       `json:"index"`
		Delta        fakeDelta `json:"delta"`
		Logprobs     *struct{} `json:"logprobs"`
		FinishReason *string   `json:"finish_reason"`
	}
	fakeChunk struct {
		ID                string            `json:"id"`
		Object            string            `json:"object"`
		Created           int64             `json:"created"`
		Model             string            `json:"model"`
		SystemFingerprint string            `json:"system_fingerprint"`
		Choices           []fakeChunkChoice `json:"choices"`
		Usage             json.RawMessage   `json:"usage,omitempty"`
	}
	fakeEmbedding struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	}
	fakeEmbeddingUsage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	}
	fakeEmbeddings struct {
		Object string             `json:"object"`
		Data   []fakeEmbedding    `json:"data"`
		Model  string             `json:"model"`
		Usage  fakeEmbeddingUsage `json:"usage"`
	}
	fakeModel struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	fakeModels struct {
		Object string      `json:"object"`
		Data   []fakeModel `json:"data"`
	}
)
