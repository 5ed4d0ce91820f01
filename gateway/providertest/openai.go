package providertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// OpenAIKey is the API key the OpenAI fake accepts.
const OpenAIKey = "sk-test-openai-0123456789"

// NewOpenAI starts a fake of the OpenAI API (also what OpenAI-compatible
// hosts speak): POST /v1/chat/completions (streamed or not), POST
// /v1/embeddings and GET /v1/models, with bearer-key auth. Answers replay
// testdata/providers/openai with the requested model substituted; a request
// that declares tools gets a tool call. Faults from Push apply per request.
//
// SPEC: https://platform.openai.com/docs/api-reference/chat
func NewOpenAI(t testing.TB) *Server {
	chat := Fixture(t, "openai/chat.json")
	chatTool := Fixture(t, "openai/chat_tool_call.json")
	stream := sseEvents(Fixture(t, "openai/chat_stream.sse"))
	streamTool := sseEvents(Fixture(t, "openai/chat_stream_tool_call.sse"))
	return newServer(t, func(s *Server, w http.ResponseWriter, r *http.Request, body []byte, f Fault) {
		if got := r.Header.Get("Authorization"); got != "Bearer "+OpenAIKey {
			openAIError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.", "")
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"}]}`))
			return
		case r.Method != http.MethodPost:
			openAIError(w, http.StatusMethodNotAllowed, "invalid_request_error", "", "method not allowed", "")
			return
		}
		var req struct {
			Model         string            `json:"model"`
			Messages      []json.RawMessage `json:"messages"`
			Stream        bool              `json:"stream"`
			StreamOptions *struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
			Tools []json.RawMessage `json:"tools"`
			Input json.RawMessage   `json:"input"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			openAIError(w, http.StatusBadRequest, "invalid_request_error", "", "We could not parse the JSON body of your request.", "")
			return
		}
		if f.Status != 0 {
			faultOpenAI(w, f)
			return
		}
		if req.Model == "" {
			openAIError(w, http.StatusBadRequest, "invalid_request_error", "", "you must provide a model parameter", "model")
			return
		}
		switch r.URL.Path {
		case "/v1/embeddings":
			var texts []string
			if err := json.Unmarshal(req.Input, &texts); err != nil {
				texts = []string{""}
			}
			w.Header().Set("Content-Type", "application/json")
			var b bytes.Buffer
			b.WriteString(`{"object":"list","data":[`)
			for i, txt := range texts {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `{"object":"embedding","index":%d,"embedding":[%d.5,-0.25,0.125]}`, i, len(txt)%7)
			}
			fmt.Fprintf(&b, `],"model":%q,"usage":{"prompt_tokens":%d,"total_tokens":%d}}`, req.Model, 8*len(texts), 8*len(texts))
			w.Write(b.Bytes())
			return
		case "/v1/chat/completions":
		default:
			openAIError(w, http.StatusNotFound, "invalid_request_error", "unknown_url", "Invalid URL (POST "+r.URL.Path+")", "")
			return
		}
		if len(req.Messages) == 0 {
			openAIError(w, http.StatusBadRequest, "invalid_request_error", "empty_array", "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "messages")
			return
		}
		model, _ := json.Marshal(req.Model)
		if !req.Stream {
			resp := chat
			if len(req.Tools) > 0 {
				resp = chatTool
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(substituteModel(resp, model))
			return
		}
		events := stream
		if len(req.Tools) > 0 {
			events = streamTool
		}
		includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		fl, _ := w.(http.Flusher)
		n := 0
		for _, ev := range events {
			if !includeUsage && bytes.Contains(ev, []byte(`"choices":[]`)) {
				continue
			}
			n++
			if f.CutAfter > 0 && n > f.CutAfter {
				Cut(w)
				return
			}
			switch {
			case f.MalformedAt == n:
				ev = []byte(`data: {"id":"chatcmpl-123","object":"chat.completion.chunk","choices":[{"delta":{"content":"Hel`)
			case f.ErrorEventAt == n:
				w.Write([]byte(`data: {"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}` + "\n\n"))
				if fl != nil {
					fl.Flush()
				}
				return
			}
			w.Write(substituteModel(ev, model))
			w.Write([]byte("\n\n"))
			if fl != nil {
				fl.Flush()
			}
		}
	})
}

// sseEvents splits an SSE fixture into its events (without the blank line).
func sseEvents(b []byte) [][]byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	var out [][]byte
	for _, ev := range bytes.Split(b, []byte("\n\n")) {
		if ev = bytes.TrimSpace(ev); len(ev) > 0 {
			out = append(out, ev)
		}
	}
	return out
}

func substituteModel(b, model []byte) []byte {
	i := bytes.Index(b, []byte(`"model"`))
	if i < 0 {
		return b
	}
	j := i + len(`"model"`)
	for j < len(b) && (b[j] == ' ' || b[j] == ':') {
		j++
	}
	if j >= len(b) || b[j] != '"' {
		return b
	}
	k := bytes.IndexByte(b[j+1:], '"')
	if k < 0 {
		return b
	}
	out := make([]byte, 0, len(b)+len(model))
	out = append(out, b[:j]...)
	out = append(out, model...)
	return append(out, b[j+k+2:]...)
}

func faultOpenAI(w http.ResponseWriter, f Fault) {
	typ, code, msg := f.Type, "", f.Message
	switch f.Status {
	case http.StatusTooManyRequests:
		typ, code = orDefault(typ, "requests"), "rate_limit_exceeded"
		msg = orDefault(msg, "Rate limit reached for gpt-4o-mini in organization org-test on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.")
	case http.StatusBadRequest:
		typ, msg = orDefault(typ, "invalid_request_error"), orDefault(msg, "Invalid request.")
	case http.StatusServiceUnavailable:
		typ, msg = orDefault(typ, "server_error"), orDefault(msg, "The engine is currently overloaded, please try again later")
	default:
		typ, msg = orDefault(typ, "server_error"), orDefault(msg, "The server had an error while processing your request. Sorry about that!")
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	openAIError(w, f.Status, typ, code, msg, "")
}

func openAIError(w http.ResponseWriter, status int, typ, code, msg, param string) {
	e := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
	if code != "" {
		e["code"] = code
	}
	if param != "" {
		e["param"] = param
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}
