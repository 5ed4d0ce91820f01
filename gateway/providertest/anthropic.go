package providertest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
)

// AnthropicKey is the API key the Anthropic fake accepts.
const AnthropicKey = "sk-ant-test-0123456789"

// The model and tool the Anthropic fixtures name; the fake replaces them
// with the requested model and the request's tool.
const (
	anthropicFixtureModel = `"claude-sonnet-4-5-20250929"`
	anthropicFixtureTool  = `"get_weather"`
	anthropicRequestID    = "req_011CSHoEeqs5C35K2UUqR7Fy"
)

// NewAnthropic starts a fake of Anthropic's Messages API: POST
// /v1/messages, streamed or not, with x-api-key auth (AnthropicKey) and a
// required anthropic-version header. It validates what the real API
// requires (model, max_tokens of at least 1, non-empty messages with user
// and assistant roles and content) and answers from
// testdata/providers/anthropic with the requested model substituted: a
// request that declares tools and ends with a user's text, or forces a
// tool, gets a tool_use of its tool (the forced one, else the first);
// others get text (the streamed one opens with a signed thinking block).
// Faults from Push apply per request: Status answers with Anthropic's error
// body (529 is overloaded_error), CutAfter, MalformedAt and ErrorEventAt
// count stream events from 1 (ping included), and an error event is an
// overloaded_error unless the Fault names a Type.
//
// SPEC: https://docs.anthropic.com/en/api/messages
// SPEC: https://docs.anthropic.com/en/docs/build-with-claude/streaming
func NewAnthropic(t testing.TB) *Server {
	msg := Fixture(t, "anthropic/message.json")
	msgTool := Fixture(t, "anthropic/message_tool_use.json")
	stream := anthropicEvents(Fixture(t, "anthropic/message_stream.sse"))
	streamTool := anthropicEvents(Fixture(t, "anthropic/message_stream_tool_use.sse"))
	return newServer(t, func(s *Server, w http.ResponseWriter, r *http.Request, body []byte, f Fault) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
			anthropicError(w, http.StatusNotFound, "not_found_error", "Not found", "")
			return
		}
		switch key := r.Header.Get("x-api-key"); {
		case key == "":
			anthropicError(w, http.StatusUnauthorized, "authentication_error", "x-api-key header is required", "")
			return
		case key != AnthropicKey:
			anthropicError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key", "")
			return
		}
		if r.Header.Get("anthropic-version") == "" {
			anthropicError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required", "")
			return
		}
		if f.Status != 0 {
			anthropicFault(w, f)
			return
		}
		var req struct {
			Model     string `json:"model"`
			MaxTokens *int   `json:"max_tokens"`
			Messages  []struct {
				Role    string          `json:"role"`
				Content json.RawMessage `json:"content"`
			} `json:"messages"`
			Stream bool `json:"stream"`
			Tools  []struct {
				Name string `json:"name"`
			} `json:"tools"`
			ToolChoice *struct {
				Type string `json:"type"`
				Name string `json:"name"`
			} `json:"tool_choice"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			anthropicError(w, http.StatusBadRequest, "invalid_request_error", "There was an error parsing the body of your request: "+err.Error(), "")
			return
		}
		if problem := anthropicValidate(req.Model, req.MaxTokens, len(req.Messages)); problem != "" {
			anthropicError(w, http.StatusBadRequest, "invalid_request_error", problem, "")
			return
		}
		for i, m := range req.Messages {
			if m.Role != "user" && m.Role != "assistant" {
				anthropicError(w, http.StatusBadRequest, "invalid_request_error", "messages."+strconv.Itoa(i)+".role: Input should be 'user' or 'assistant'", "")
				return
			}
			if c := bytes.TrimSpace(m.Content); len(c) == 0 || string(c) == "null" {
				anthropicError(w, http.StatusBadRequest, "invalid_request_error", "messages."+strconv.Itoa(i)+".content: Field required", "")
				return
			}
		}

		tool := ""
		if len(req.Tools) > 0 {
			last := req.Messages[len(req.Messages)-1]
			switch tc := req.ToolChoice; {
			case tc != nil && tc.Type == "tool":
				tool = tc.Name
			case tc != nil && tc.Type == "none":
			case last.Role == "user" && anthropicHasText(last.Content):
				tool = req.Tools[0].Name
			}
		}
		model, _ := json.Marshal(req.Model)
		name, _ := json.Marshal(tool)
		subst := func(b []byte) []byte {
			b = bytes.ReplaceAll(b, []byte(anthropicFixtureModel), model)
			if tool != "" {
				b = bytes.ReplaceAll(b, []byte(anthropicFixtureTool), name)
			}
			return b
		}
		w.Header().Set("request-id", anthropicRequestID)
		if !req.Stream {
			resp := msg
			if tool != "" {
				resp = msgTool
			}
			resp = subst(resp)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(resp)))
			w.Write(resp)
			return
		}
		events := stream
		if tool != "" {
			events = streamTool
		}
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		fl, _ := w.(http.Flusher)
		for i, ev := range events {
			n := i + 1
			if f.CutAfter > 0 && n > f.CutAfter {
				Cut(w)
				return
			}
			switch {
			case f.MalformedAt == n:
				ev = []byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel")
			case f.ErrorEventAt == n:
				etype, emsg := f.Type, f.Message
				if etype == "" {
					etype, emsg = "overloaded_error", "Overloaded"
				}
				data, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": etype, "message": emsg}})
				w.Write([]byte("event: error\ndata: "))
				w.Write(data)
				w.Write([]byte("\n\n"))
				if fl != nil {
					fl.Flush()
				}
				return
			default:
				ev = subst(ev)
			}
			w.Write(ev)
			w.Write([]byte("\n\n"))
			if fl != nil {
				fl.Flush()
			}
		}
	})
}

// anthropicValidate checks a request's required fields as the API does; ""
// when they are right.
func anthropicValidate(model string, maxTokens *int, messages int) string {
	switch {
	case model == "":
		return "model: Field required"
	case maxTokens == nil:
		return "max_tokens: Field required"
	case *maxTokens < 1:
		return "max_tokens: Input should be greater than or equal to 1"
	case messages == 0:
		return "messages: at least one message is required"
	}
	return ""
}

// anthropicHasText reports whether content is a string or holds a text
// block and no tool result (a user's words, not a tool's answer).
func anthropicHasText(content json.RawMessage) bool {
	var s string
	if json.Unmarshal(content, &s) == nil {
		return s != ""
	}
	var blocks []struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(content, &blocks) != nil {
		return false
	}
	text := false
	for _, b := range blocks {
		switch b.Type {
		case "tool_result":
			return false
		case "text":
			text = true
		}
	}
	return text
}

// anthropicEvents splits an SSE fixture into its events (without the blank
// line).
func anthropicEvents(b []byte) [][]byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	var out [][]byte
	for _, ev := range bytes.Split(b, []byte("\n\n")) {
		if ev = bytes.TrimSpace(ev); len(ev) > 0 {
			out = append(out, ev)
		}
	}
	return out
}

// anthropicFault answers with a Fault's status in Anthropic's error shape.
func anthropicFault(w http.ResponseWriter, f Fault) {
	typ, msg := f.Type, f.Message
	var defType, defMsg string
	switch f.Status {
	case http.StatusBadRequest:
		defType, defMsg = "invalid_request_error", "Invalid request."
	case http.StatusUnauthorized:
		defType, defMsg = "authentication_error", "invalid x-api-key"
	case http.StatusPaymentRequired:
		defType, defMsg = "billing_error", "Your credit balance is too low to access the Anthropic API."
	case http.StatusForbidden:
		defType, defMsg = "permission_error", "Your API key does not have permission to use the specified resource."
	case http.StatusNotFound:
		defType, defMsg = "not_found_error", "The requested resource could not be found."
	case http.StatusRequestEntityTooLarge:
		defType, defMsg = "request_too_large", "Request exceeds the maximum allowed number of bytes."
	case http.StatusTooManyRequests:
		defType, defMsg = "rate_limit_error", "This request would exceed the rate limit for your organization of 50 requests per minute."
	case http.StatusGatewayTimeout:
		defType, defMsg = "timeout_error", "Request timed out."
	case 529:
		defType, defMsg = "overloaded_error", "Overloaded"
	default:
		if f.Status >= 500 {
			defType, defMsg = "api_error", "Internal server error"
		} else {
			defType, defMsg = "invalid_request_error", "Invalid request."
		}
	}
	if typ == "" {
		typ = defType
	}
	if msg == "" {
		msg = defMsg
	}
	anthropicError(w, f.Status, typ, msg, f.RetryAfter)
}

// anthropicError writes {"type":"error","error":{...},"request_id":...}.
func anthropicError(w http.ResponseWriter, status int, typ, msg, retryAfter string) {
	b, _ := json.Marshal(map[string]any{
		"type":       "error",
		"error":      map[string]string{"type": typ, "message": msg},
		"request_id": anthropicRequestID,
	})
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.Header().Set("request-id", anthropicRequestID)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
