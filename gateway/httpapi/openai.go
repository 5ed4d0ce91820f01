package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"aigw/gateway"

	"github.com/gin-gonic/gin"
)

func (s *server) chat(c *gin.Context) {
	const endpoint = "chat.completions"
	caller, req, body, ok := admit(s, c, endpoint, func(b []byte) (*gateway.ChatRequest, string, *gateway.Error) {
		req, err := DecodeChat(b)
		return req, modelOf(req, func(r *gateway.ChatRequest) string { return r.Model }), err
	})
	if !ok {
		return
	}
	tid := traceID(c)
	if req.Stream {
		w := &sseWriter{c: c}
		err := s.p.Stream(c.Request.Context(), caller, req, body, tid, w)
		s.stats.add(endpoint, w.status())
		if err != nil {
			s.logError(c, err)
		}
		return
	}
	_, out, err := s.p.Chat(c.Request.Context(), caller, req, body, tid)
	if err != nil {
		s.logError(c, err)
		s.stats.add(endpoint, gateway.AsError(err).Status)
		writeError(c, err)
		return
	}
	s.stats.add(endpoint, 200)
	c.Data(http.StatusOK, "application/json", out)
}

// admit authenticates a call and reads and decodes its body; decode also
// names the model asked for ("" if unknown). A call of a stopped agent or
// to a stopped route (human oversight) is refused. Any refusal is answered
// here (and recorded in the caller's log when the tenant is known); ok is
// false then.
func admit[T any](s *server, c *gin.Context, endpoint string, decode func([]byte) (*T, string, *gateway.Error)) (caller gateway.Caller, req *T, body []byte, ok bool) {
	caller, ok = s.authenticate(c)
	if !ok {
		s.stats.add(endpoint, 401)
		return caller, nil, nil, false
	}
	body, gerr := s.readBody(c)
	model := ""
	if gerr == nil {
		req, model, gerr = decode(body)
		if gerr == nil {
			gerr = s.checkModel(caller, model)
		}
		if gerr == nil {
			gerr = s.checkStops(c.Request.Context(), caller, model)
		}
	}
	if gerr != nil {
		s.stats.add(endpoint, gerr.Status)
		s.reject(c, caller, endpoint, model, body, gerr)
		return caller, nil, nil, false
	}
	return caller, req, body, true
}

// modelOf is the model of a decoded request, "" when there is none.
func modelOf[T any](req *T, model func(*T) string) string {
	if req == nil {
		return ""
	}
	return model(req)
}

func (s *server) logError(c *gin.Context, err error) {
	e := gateway.AsError(err)
	if e.Status >= 500 {
		s.log.Warn("call failed", "path", c.Request.URL.Path, "status", e.Status, "trace_id", c.Writer.Header().Get("X-Aigw-Trace-Id"), "err", err)
	}
}

// checkModel refuses a model that is not a route or that the key may not
// use, with the same answer either way (a key learns nothing of routes it
// cannot use).
func (s *server) checkModel(caller gateway.Caller, model string) *gateway.Error {
	if !s.p.Router().Has(model) || caller.Allows != nil && !caller.Allows(model) {
		return &gateway.Error{Status: 404, Type: gateway.TypeInvalidRequest, Code: "model_not_found", Param: "model",
			Message: fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", truncate(model, 256))}
	}
	return nil
}

var unknownField = regexp.MustCompile(`^json: unknown field "(.*)"$`)

// decodeStrict decodes a JSON object into v, refusing unknown fields and
// trailing data, with OpenAI's error messages.
func decodeStrict(body []byte, v any) *gateway.Error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
			return &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Param: m[1], Message: "Unrecognized request argument supplied: " + m[1]}
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Param: te.Field, Code: "invalid_type",
				Message: fmt.Sprintf("Invalid type for '%s': expected %s, but got %s.", te.Field, jsonTypeName(te.Type.Kind().String()), te.Value)}
		}
		var se *json.SyntaxError
		if errors.As(err, &se) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest,
				Message: "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"}
		}
		return &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Message: "Invalid request body: " + truncate(err.Error(), 300)}
	}
	if d.More() {
		return &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Message: "We could not parse the JSON body of your request: unexpected data after the JSON object."}
	}
	return nil
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	case "float64", "float32":
		return "a decimal"
	}
	if strings.HasPrefix(kind, "int") || strings.HasPrefix(kind, "uint") {
		return "an integer"
	}
	return kind
}

var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// DecodeChat decodes and validates a chat completion request as OpenAI
// does: unknown parameters, wrong types and out-of-range values are 400s
// naming the parameter.
func DecodeChat(body []byte) (*gateway.ChatRequest, *gateway.Error) {
	var req gateway.ChatRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	bad := func(param, format string, args ...any) (*gateway.ChatRequest, *gateway.Error) {
		return &req, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Param: param, Code: "invalid_value", Message: fmt.Sprintf(format, args...)}
	}
	if req.Model == "" {
		return bad("model", "you must provide a model parameter")
	}
	if req.Messages == nil {
		return bad("messages", "Missing required parameter: 'messages'.")
	}
	if len(req.Messages) == 0 {
		return bad("messages", "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.")
	}
	for i, m := range req.Messages {
		p := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case "system", "developer", "user":
			if m.Content.Null {
				return bad(p+".content", "Invalid value for '%s.content': expected a string or an array, got null.", p)
			}
		case "assistant":
			if m.Content.Null && len(m.ToolCalls) == 0 && m.FunctionCall == nil && m.Refusal == "" && m.Audio == nil {
				return bad(p+".content", "Invalid value for '%s.content': expected a string, got null.", p)
			}
		case "tool":
			if m.ToolCallID == "" {
				return bad(p+".tool_call_id", "Missing required parameter: '%s.tool_call_id'.", p)
			}
		case "function":
		case "":
			return bad(p+".role", "Missing required parameter: '%s.role'.", p)
		default:
			return bad(p+".role", "Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.", truncate(m.Role, 64))
		}
		for j, part := range m.Content.Parts {
			switch part.Type {
			case "text", "image_url", "input_audio", "file", "refusal":
			default:
				return bad(fmt.Sprintf("%s.content[%d].type", p, j), "Invalid value: '%s'. Supported values are: 'text', 'image_url', 'input_audio', 'refusal', and 'file'.", truncate(part.Type, 64))
			}
			if part.Type == "image_url" && (part.ImageURL == nil || part.ImageURL.URL == "") {
				return bad(fmt.Sprintf("%s.content[%d].image_url", p, j), "Missing required parameter: '%s.content[%d].image_url.url'.", p, j)
			}
		}
	}
	if t := req.Temperature; t != nil && (*t < 0 || *t > 2) {
		return bad("temperature", "Invalid 'temperature': expected a value between 0 and 2, but got %v instead.", *t)
	}
	if t := req.TopP; t != nil && (*t < 0 || *t > 1) {
		return bad("top_p", "Invalid 'top_p': expected a value between 0 and 1, but got %v instead.", *t)
	}
	if n := req.N; n != nil && (*n < 1 || *n > 128) {
		return bad("n", "Invalid 'n': expected a value between 1 and 128, but got %d instead.", *n)
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"frequency_penalty", req.FrequencyPenalty}, {"presence_penalty", req.PresencePenalty}} {
		if f.v != nil && (*f.v < -2 || *f.v > 2) {
			return bad(f.name, "Invalid '%s': expected a value between -2 and 2, but got %v instead.", f.name, *f.v)
		}
	}
	if m := req.MaxTokens; m != nil && *m < 1 {
		return bad("max_tokens", "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got %d instead.", *m)
	}
	if m := req.MaxCompletionTokens; m != nil && *m < 1 {
		return bad("max_completion_tokens", "Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1, but got %d instead.", *m)
	}
	if req.StreamOptions != nil && !req.Stream {
		return bad("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
	}
	if req.Stop != nil && len(req.Stop.Sequences) > 4 {
		return bad("stop", "Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length %d instead.", len(req.Stop.Sequences))
	}
	for i, t := range req.Tools {
		p := fmt.Sprintf("tools[%d]", i)
		if t.Type != "function" {
			return bad(p+".type", "Invalid value: '%s'. Supported values are: 'function'.", truncate(t.Type, 64))
		}
		if !toolName.MatchString(t.Function.Name) {
			return bad(p+".function.name", "Invalid '%s.function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$' of at most 64 characters.", p)
		}
		if len(t.Function.Parameters) > 0 && !isJSONObject(t.Function.Parameters) {
			return bad(p+".function.parameters", "Invalid '%s.function.parameters': expected an object.", p)
		}
	}
	if tc := req.ToolChoice; len(tc) > 0 {
		switch s := string(tc); {
		case s == `"none"`, s == `"auto"`, s == `"required"`:
		case isJSONObject(tc):
			var f struct {
				Type     string `json:"type"`
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			}
			if json.Unmarshal(tc, &f) != nil || f.Type != "function" || f.Function.Name == "" {
				return bad("tool_choice", "Invalid 'tool_choice': expected 'none', 'auto', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}.")
			}
			if len(req.Tools) == 0 {
				return bad("tool_choice", "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.")
			}
		default:
			return bad("tool_choice", "Invalid 'tool_choice': expected 'none', 'auto', 'required' or an object.")
		}
	}
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text", "json_object":
		case "json_schema":
			if rf.JSONSchema == nil || rf.JSONSchema.Name == "" {
				return bad("response_format.json_schema", "Missing required parameter: 'response_format.json_schema'.")
			}
			if len(rf.JSONSchema.Schema) > 0 && !isJSONObject(rf.JSONSchema.Schema) {
				return bad("response_format.json_schema.schema", "Invalid 'response_format.json_schema.schema': expected an object.")
			}
		default:
			return bad("response_format.type", "Invalid value: '%s'. Supported values are: 'json_object', 'json_schema', and 'text'.", truncate(rf.Type, 64))
		}
	}
	return &req, nil
}

func isJSONObject(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 1 && b[0] == '{'
}

// DecodeEmbeddings decodes and validates an embeddings request.
func DecodeEmbeddings(body []byte) (*gateway.EmbeddingRequest, *gateway.Error) {
	var req gateway.EmbeddingRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if req.Model == "" {
		return &req, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Param: "model", Message: "you must provide a model parameter"}
	}
	if req.Input.Len() == 0 {
		return &req, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Param: "input", Message: "'input' is a required property and must not be empty."}
	}
	if req.Input.Len() > 2048 {
		return &req, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Param: "input", Message: "'input' must have at most 2048 items."}
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		return &req, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Param: "encoding_format", Message: fmt.Sprintf("Invalid value: '%s'. Supported values are: 'float' and 'base64'.", truncate(req.EncodingFormat, 64))}
	}
	return &req, nil
}

func (s *server) embeddings(c *gin.Context) {
	const endpoint = "embeddings"
	caller, req, body, ok := admit(s, c, endpoint, func(b []byte) (*gateway.EmbeddingRequest, string, *gateway.Error) {
		req, err := DecodeEmbeddings(b)
		return req, modelOf(req, func(r *gateway.EmbeddingRequest) string { return r.Model }), err
	})
	if !ok {
		return
	}
	tid := traceID(c)
	out, err := s.p.Embed(c.Request.Context(), caller, req, body, tid)
	if err != nil {
		s.logError(c, err)
		s.stats.add(endpoint, gateway.AsError(err).Status)
		writeError(c, err)
		return
	}
	s.stats.add(endpoint, 200)
	c.Data(http.StatusOK, "application/json", out)
}

func (s *server) visibleModels(caller gateway.Caller) []gateway.Model {
	var out []gateway.Model
	for _, m := range s.p.Router().Models() {
		if caller.Allows == nil || caller.Allows(m.ID) {
			out = append(out, m)
		}
	}
	if out == nil {
		out = []gateway.Model{}
	}
	return out
}

func (s *server) models(c *gin.Context) {
	caller, ok := s.authenticate(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": s.visibleModels(caller)})
}

func (s *server) model(c *gin.Context) {
	caller, ok := s.authenticate(c)
	if !ok {
		return
	}
	id := strings.TrimPrefix(c.Param("model"), "/")
	for _, m := range s.visibleModels(caller) {
		if m.ID == id {
			c.JSON(http.StatusOK, m)
			return
		}
	}
	writeError(c, s.checkModel(gateway.Caller{Allows: func(string) bool { return false }}, id))
}

// sseWriter writes an OpenAI chat completion stream.
type sseWriter struct {
	c       *gin.Context
	started bool
	failed  int
	buf     []byte
}

func (w *sseWriter) status() int {
	if w.failed != 0 && !w.started {
		return w.failed
	}
	return 200
}

func (w *sseWriter) begin() {
	h := w.c.Writer.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.c.Writer.WriteHeader(http.StatusOK)
	w.started = true
}

func (w *sseWriter) WriteChunk(ch *gateway.ChatChunk, more bool) error {
	if !w.started {
		w.begin()
	}
	b := ch.Raw
	if b == nil {
		var err error
		if b, err = json.Marshal(ch); err != nil {
			return err
		}
	}
	w.buf = append(w.buf[:0], "data: "...)
	w.buf = append(w.buf, b...)
	w.buf = append(w.buf, "\n\n"...)
	if _, err := w.c.Writer.Write(w.buf); err != nil {
		return err
	}
	if !more {
		w.c.Writer.Flush()
	}
	return w.c.Request.Context().Err()
}

func (w *sseWriter) Flush() error {
	if w.started {
		w.c.Writer.Flush()
	}
	return w.c.Request.Context().Err()
}

func (w *sseWriter) Finish(*gateway.Usage) error {
	if !w.started {
		w.begin()
	}
	if _, err := w.c.Writer.Write([]byte("data: [DONE]\n\n")); err != nil {
		return err
	}
	w.c.Writer.Flush()
	return nil
}

// Fail ends the stream with an error event (the OpenAI SDKs raise it as an
// error) and no [DONE]; before the first chunk it answers the error status.
func (w *sseWriter) Fail(e *gateway.Error, started bool) error {
	if !w.started {
		w.failed = e.Status
		writeError(w.c, e)
		return e
	}
	b := append([]byte("data: "), bytes.TrimRight(errorBody(e), "\n")...)
	b = append(b, "\n\n"...)
	w.c.Writer.Write(b)
	w.c.Writer.Flush()
	return e
}
