package providertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// GeminiAPIKey is the API key the Gemini fake accepts.
const GeminiAPIKey = "AIzaSyTest-gemini-0123456789abcdefghij"

// GeminiEmbeddingDims is the size of the Gemini fake's embeddings when the
// request sets no outputDimensionality.
const GeminiEmbeddingDims = 16

// NewGemini starts a fake of the Gemini API: POST
// /{version}/models/{model}:generateContent, :streamGenerateContent (SSE
// with alt=sse, else a JSON array) and :batchEmbedContents. The key comes
// in x-goog-api-key or ?key=; none is a 403 PERMISSION_DENIED, a wrong one
// a 400 API_KEY_INVALID, in Google's error shape. Request bodies are
// decoded strictly (an unknown field is a 400, as the real API answers),
// but only the lowerCamelCase field names are known.
//
// Answers replay testdata/providers/gemini with the model substituted:
// generate.json and stream.sse, or generate_tool_call.json and
// stream_tool_call.sse (calling the first declared function) when the
// request declares functions and its last turn is user text. Stream
// events are written "data: {...}\r\n\r\n" as Google's servers write them.
// Embeddings are deterministic vectors derived from each text.
//
// Faults from Push apply per request: Status answers with Google's error
// body (status name from Type, or the status's canonical one); RetryAfter
// sets Retry-After and, when it is a number of seconds, a
// google.rpc.RetryInfo detail; CutAfter and MalformedAt cut or corrupt the
// stream (or the JSON body of a non-streamed answer); ErrorEventAt sends an
// error object as that event and ends the stream.
//
// SPEC: https://ai.google.dev/api/generate-content
// SPEC: https://ai.google.dev/api/embeddings
func NewGemini(t testing.TB) *Server {
	gen := Fixture(t, "gemini/generate.json")
	genTool := Fixture(t, "gemini/generate_tool_call.json")
	stream := geminiEvents(Fixture(t, "gemini/stream.sse"))
	streamTool := geminiEvents(Fixture(t, "gemini/stream_tool_call.sse"))
	return newServer(t, func(s *Server, w http.ResponseWriter, r *http.Request, body []byte, f Fault) {
		key := r.Header.Get("x-goog-api-key")
		if key == "" {
			key = r.URL.Query().Get("key")
		}
		switch key {
		case GeminiAPIKey:
		case "":
			geminiError(w, http.StatusForbidden, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", "", "")
			return
		default:
			geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", "API_KEY_INVALID", "")
			return
		}
		version, coll, model, method, ok := geminiPath(r.URL.Path)
		if !ok || r.Method != http.MethodPost {
			geminiError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Method not found: %s %s", r.Method, r.URL.Path), "", "")
			return
		}
		if f.Status != 0 {
			geminiFault(w, f)
			return
		}
		switch method {
		case "generateContent", "streamGenerateContent":
			var req geminiGenerateRequest
			if msg := geminiDecode(body, &req); msg != "" {
				geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", msg, "", "")
				return
			}
			if msg := req.validate(); msg != "" {
				geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", msg, "", "")
				return
			}
			resp, events := gen, stream
			if fn := req.toolToCall(); fn != "" {
				name, _ := json.Marshal(fn)
				from := []byte(`"name": "get_current_weather"`)
				to := append([]byte(`"name": `), name...)
				resp = bytes.ReplaceAll(genTool, from, to)
				events = make([][]byte, len(streamTool))
				for i, ev := range streamTool {
					events[i] = bytes.ReplaceAll(ev, from, to)
				}
			}
			mv, _ := json.Marshal(model)
			if method == "generateContent" {
				geminiJSON(w, f, geminiModel(resp, mv))
				return
			}
			if r.URL.Query().Get("alt") != "sse" {
				var b bytes.Buffer
				b.WriteString("[")
				for i, ev := range events {
					if i > 0 {
						b.WriteString(",\r\n")
					}
					b.Write(geminiModel(bytes.TrimPrefix(ev, []byte("data: ")), mv))
				}
				b.WriteString("]")
				geminiJSON(w, f, b.Bytes())
				return
			}
			geminiStream(w, f, events, mv)
		case "batchEmbedContents":
			var req geminiBatchEmbedRequest
			if msg := geminiDecode(body, &req); msg != "" {
				geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", msg, "", "")
				return
			}
			if msg := req.validate(coll + "/" + model); msg != "" {
				geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", msg, "", "")
				return
			}
			geminiJSON(w, f, req.answer())
		default:
			geminiError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("models/%s is not found for API version %s, or is not supported for %s.", model, version, method), "", "")
		}
	})
}

// geminiPath splits /{version}/{models|tunedModels}/{model}:{method}.
func geminiPath(p string) (version, coll, model, method string, ok bool) {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(segs) != 3 || (segs[1] != "models" && segs[1] != "tunedModels") {
		return "", "", "", "", false
	}
	switch segs[0] {
	case "v1", "v1beta", "v1alpha":
	default:
		return "", "", "", "", false
	}
	i := strings.LastIndexByte(segs[2], ':')
	if i <= 0 {
		return "", "", "", "", false
	}
	return segs[0], segs[1], segs[2][:i], segs[2][i+1:], true
}

// geminiStatus is the google.rpc.Code name of each HTTP status.
var geminiStatus = map[int]string{
	400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
	409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
	501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}

// geminiMessage is the message Google sends with each status name.
var geminiMessage = map[string]string{
	"INVALID_ARGUMENT":   "Request contains an invalid argument.",
	"UNAUTHENTICATED":    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
	"PERMISSION_DENIED":  "The caller does not have permission",
	"NOT_FOUND":          "Requested entity was not found.",
	"RESOURCE_EXHAUSTED": "You exceeded your current quota, please check your plan and billing details.",
	"INTERNAL":           "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
	"UNAVAILABLE":        "The model is overloaded. Please try again later.",
	"DEADLINE_EXCEEDED":  "The request timed out. Please try again.",
}

// geminiFault answers with the fault's error status.
func geminiFault(w http.ResponseWriter, f Fault) {
	status := f.Type
	if status == "" {
		status = geminiStatus[f.Status]
	}
	if status == "" {
		status = "UNKNOWN"
	}
	msg := f.Message
	if msg == "" {
		msg = geminiMessage[status]
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	delay := ""
	if _, err := strconv.Atoi(f.RetryAfter); err == nil {
		delay = f.RetryAfter + "s"
	}
	geminiError(w, f.Status, status, msg, "", delay)
}

// geminiErrorBody builds Google's error body, with an ErrorInfo detail if
// reason is set and a RetryInfo detail if retryDelay is.
func geminiErrorBody(code int, status, message, reason, retryDelay string) []byte {
	var details []any
	if reason != "" {
		details = append(details, map[string]any{
			"@type":    "type.googleapis.com/google.rpc.ErrorInfo",
			"reason":   reason,
			"domain":   "googleapis.com",
			"metadata": map[string]string{"service": "generativelanguage.googleapis.com"},
		})
	}
	if retryDelay != "" {
		details = append(details, map[string]any{
			"@type":      "type.googleapis.com/google.rpc.RetryInfo",
			"retryDelay": retryDelay,
		})
	}
	e := map[string]any{"code": code, "message": message, "status": status}
	if details != nil {
		e["details"] = details
	}
	b, _ := json.MarshalIndent(map[string]any{"error": e}, "", "  ")
	return b
}

func geminiError(w http.ResponseWriter, code int, status, message, reason, retryDelay string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	w.Write(geminiErrorBody(code, status, message, reason, retryDelay))
	w.Write([]byte("\n"))
}

// geminiJSON writes a JSON answer, cut or corrupted as the fault says.
func geminiJSON(w http.ResponseWriter, f Fault, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	switch {
	case f.MalformedAt > 0:
		body = body[:len(body)/2]
	case f.CutAfter > 0:
		w.WriteHeader(http.StatusOK)
		w.Write(body[:len(body)/2])
		Cut(w)
		return
	}
	w.Write(body)
}

// geminiStream writes SSE events as Google does: "data: {...}\r\n\r\n".
func geminiStream(w http.ResponseWriter, f Fault, events [][]byte, model []byte) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Content-Disposition", "attachment")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	flush := func() {
		if fl != nil {
			fl.Flush()
		}
	}
	for i, ev := range events {
		n := i + 1
		if f.CutAfter > 0 && n > f.CutAfter {
			Cut(w)
			return
		}
		switch {
		case f.ErrorEventAt == n:
			status, msg := f.Type, f.Message
			if status == "" {
				status = "INTERNAL"
			}
			if msg == "" {
				msg = geminiMessage[status]
			}
			code := 500
			for c, s := range geminiStatus {
				if s == status {
					code = c
				}
			}
			var b bytes.Buffer
			json.Compact(&b, geminiErrorBody(code, status, msg, "", ""))
			w.Write([]byte("data: "))
			w.Write(b.Bytes())
			w.Write([]byte("\r\n\r\n"))
			flush()
			return
		case f.MalformedAt == n:
			ev = []byte(`data: {"candidates": [{"content": {"parts": [{"text": "Hel`)
		default:
			ev = geminiModel(ev, model)
		}
		w.Write(ev)
		w.Write([]byte("\r\n\r\n"))
		flush()
	}
	if f.CutAfter > 0 { // cut after the last event: the answer is whole, the close is not
		Cut(w)
	}
}

// geminiModel puts the requested model into a fixture's modelVersion.
func geminiModel(b, model []byte) []byte {
	return bytes.ReplaceAll(b, []byte(`"modelVersion": "gemini-2.5-flash"`), append([]byte(`"modelVersion": `), model...))
}

// geminiEvents splits an SSE fixture into its events (each "data: ..."
// without the blank line that ends it).
func geminiEvents(b []byte) [][]byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	var out [][]byte
	for _, ev := range bytes.Split(b, []byte("\n\n")) {
		if ev = bytes.TrimSpace(ev); len(ev) > 0 {
			out = append(out, ev)
		}
	}
	return out
}

// geminiDecode decodes a request body strictly; it returns Google's
// message for a body that does not parse, or "".
func geminiDecode(body []byte, v any) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return "Invalid JSON payload received. " + err.Error()
	}
	if dec.More() {
		return "Invalid JSON payload received. Unexpected token after the request."
	}
	return ""
}

// The request shapes the fake knows (a subset of the API's; unknown fields
// are refused, as the real API refuses them).
type geminiGenerateRequest struct {
	Contents          []geminiContent `json:"contents"`
	SystemInstruction *geminiContent  `json:"systemInstruction"`
	Tools             []struct {
		FunctionDeclarations []struct {
			Name                 string          `json:"name"`
			Description          string          `json:"description"`
			Parameters           json.RawMessage `json:"parameters"`
			ParametersJSONSchema json.RawMessage `json:"parametersJsonSchema"`
		} `json:"functionDeclarations"`
		GoogleSearch  json.RawMessage `json:"googleSearch"`
		CodeExecution json.RawMessage `json:"codeExecution"`
	} `json:"tools"`
	ToolConfig *struct {
		FunctionCallingConfig struct {
			Mode                 string   `json:"mode"`
			AllowedFunctionNames []string `json:"allowedFunctionNames"`
		} `json:"functionCallingConfig"`
	} `json:"toolConfig"`
	SafetySettings   json.RawMessage `json:"safetySettings"`
	CachedContent    string          `json:"cachedContent"`
	GenerationConfig *struct {
		StopSequences      []string        `json:"stopSequences"`
		ResponseMIMEType   string          `json:"responseMimeType"`
		ResponseSchema     json.RawMessage `json:"responseSchema"`
		ResponseJSONSchema json.RawMessage `json:"responseJsonSchema"`
		ResponseModalities []string        `json:"responseModalities"`
		CandidateCount     *int            `json:"candidateCount"`
		MaxOutputTokens    *int            `json:"maxOutputTokens"`
		Temperature        *float64        `json:"temperature"`
		TopP               *float64        `json:"topP"`
		TopK               *int            `json:"topK"`
		Seed               *int32          `json:"seed"`
		PresencePenalty    *float64        `json:"presencePenalty"`
		FrequencyPenalty   *float64        `json:"frequencyPenalty"`
		ResponseLogprobs   *bool           `json:"responseLogprobs"`
		Logprobs           *int            `json:"logprobs"`
		ThinkingConfig     *struct {
			IncludeThoughts *bool   `json:"includeThoughts"`
			ThinkingBudget  *int    `json:"thinkingBudget"`
			ThinkingLevel   *string `json:"thinkingLevel"`
		} `json:"thinkingConfig"`
	} `json:"generationConfig"`
}

type geminiContent struct {
	Role  string       `json:"role"`
	Parts []geminiPart `json:"parts"`
}

type geminiPart struct {
	Text       *string `json:"text"`
	InlineData *struct {
		MIMEType string `json:"mimeType"`
		Data     string `json:"data"`
	} `json:"inlineData"`
	FileData *struct {
		MIMEType string `json:"mimeType"`
		FileURI  string `json:"fileUri"`
	} `json:"fileData"`
	FunctionCall *struct {
		ID   string          `json:"id"`
		Name string          `json:"name"`
		Args json.RawMessage `json:"args"`
	} `json:"functionCall"`
	FunctionResponse *struct {
		ID       string          `json:"id"`
		Name     string          `json:"name"`
		Response json.RawMessage `json:"response"`
	} `json:"functionResponse"`
	Thought          bool   `json:"thought"`
	ThoughtSignature string `json:"thoughtSignature"`
}

// validate checks what the real API refuses; it returns Google's message,
// or "" for a valid request.
func (r *geminiGenerateRequest) validate() string {
	if len(r.Contents) == 0 {
		return "* GenerateContentRequest.contents: contents is not specified\n"
	}
	check := func(field string, c geminiContent) string {
		if len(c.Parts) == 0 {
			return fmt.Sprintf("* GenerateContentRequest.%s.parts: contents.parts must not be empty.\n", field)
		}
		for j, p := range c.Parts {
			n := 0
			for _, set := range []bool{p.Text != nil, p.InlineData != nil, p.FileData != nil, p.FunctionCall != nil, p.FunctionResponse != nil} {
				if set {
					n++
				}
			}
			switch {
			case n != 1:
				return fmt.Sprintf("* GenerateContentRequest.%s.parts[%d].data: required oneof field 'data' must have one initialized field\n", field, j)
			case p.Text != nil && *p.Text == "":
				return "Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again."
			case p.InlineData != nil && (p.InlineData.MIMEType == "" || p.InlineData.Data == ""):
				return fmt.Sprintf("* GenerateContentRequest.%s.parts[%d].inline_data: mime_type and data are required\n", field, j)
			case p.FileData != nil && p.FileData.FileURI == "":
				return fmt.Sprintf("* GenerateContentRequest.%s.parts[%d].file_data.file_uri: file_uri is required\n", field, j)
			case p.FunctionCall != nil && p.FunctionCall.Name == "":
				return fmt.Sprintf("* GenerateContentRequest.%s.parts[%d].function_call.name: Name cannot be empty.\n", field, j)
			case p.FunctionCall != nil && len(p.FunctionCall.Args) > 0 && p.FunctionCall.Args[0] != '{':
				return fmt.Sprintf("Invalid value at '%s.parts[%d].function_call.args' (type.googleapis.com/google.protobuf.Struct), not an object", field, j)
			case p.FunctionResponse != nil && p.FunctionResponse.Name == "":
				return fmt.Sprintf("* GenerateContentRequest.%s.parts[%d].function_response.name: Name cannot be empty.\n", field, j)
			case p.FunctionResponse != nil && (len(p.FunctionResponse.Response) == 0 || p.FunctionResponse.Response[0] != '{'):
				return fmt.Sprintf("Invalid value at '%s.parts[%d].function_response.response' (type.googleapis.com/google.protobuf.Struct), not an object", field, j)
			}
		}
		return ""
	}
	for i, c := range r.Contents {
		if c.Role != "" && c.Role != "user" && c.Role != "model" {
			return "Please use a valid role: user, model."
		}
		if msg := check(fmt.Sprintf("contents[%d]", i), c); msg != "" {
			return msg
		}
	}
	if r.SystemInstruction != nil {
		if msg := check("system_instruction", *r.SystemInstruction); msg != "" {
			return msg
		}
	}
	for i, t := range r.Tools {
		for j, d := range t.FunctionDeclarations {
			if d.Name == "" {
				return fmt.Sprintf("* GenerateContentRequest.tools[%d].function_declarations[%d].name: Name cannot be empty.\n", i, j)
			}
			if d.Parameters != nil && d.ParametersJSONSchema != nil {
				return fmt.Sprintf("* GenerateContentRequest.tools[%d].function_declarations[%d]: parameters and parameters_json_schema cannot both be set.\n", i, j)
			}
		}
	}
	if tc := r.ToolConfig; tc != nil {
		switch tc.FunctionCallingConfig.Mode {
		case "", "AUTO", "ANY", "NONE", "VALIDATED":
		default:
			return fmt.Sprintf("Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), %q", tc.FunctionCallingConfig.Mode)
		}
		if len(tc.FunctionCallingConfig.AllowedFunctionNames) > 0 && tc.FunctionCallingConfig.Mode != "ANY" {
			return "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: allowed_function_names should only be set when the Mode is ANY.\n"
		}
	}
	if gc := r.GenerationConfig; gc != nil {
		if gc.ResponseJSONSchema != nil && gc.ResponseMIMEType != "application/json" {
			return "* GenerateContentRequest.generation_config.response_mime_type: must be application/json when response_json_schema is set.\n"
		}
		if tc := gc.ThinkingConfig; tc != nil && tc.ThinkingBudget != nil && tc.ThinkingLevel != nil {
			return "* GenerateContentRequest.generation_config.thinking_config: thinking_budget and thinking_level cannot both be set.\n"
		}
		if gc.CandidateCount != nil && (*gc.CandidateCount < 1 || *gc.CandidateCount > 8) {
			return "* GenerateContentRequest.generation_config.candidate_count: must be between 1 and 8.\n"
		}
	}
	return ""
}

// toolToCall is the function the fake calls: the first declared one when
// the last turn is user text, "" otherwise.
func (r *geminiGenerateRequest) toolToCall() string {
	last := r.Contents[len(r.Contents)-1]
	if last.Role != "user" || last.Parts[len(last.Parts)-1].Text == nil {
		return ""
	}
	for _, t := range r.Tools {
		for _, d := range t.FunctionDeclarations {
			return d.Name
		}
	}
	return ""
}

type geminiBatchEmbedRequest struct {
	Requests []geminiEmbedContentRequest `json:"requests"`
}

type geminiEmbedContentRequest struct {
	Model                string        `json:"model"`
	Content              geminiContent `json:"content"`
	TaskType             string        `json:"taskType"`
	Title                string        `json:"title"`
	OutputDimensionality *int          `json:"outputDimensionality"`
}

func (r *geminiBatchEmbedRequest) validate(model string) string {
	switch {
	case len(r.Requests) == 0:
		return "* BatchEmbedContentsRequest.requests: requests is not specified\n"
	case len(r.Requests) > 100:
		return "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n"
	}
	for i, q := range r.Requests {
		switch {
		case q.Model != model:
			return fmt.Sprintf("* BatchEmbedContentsRequest.requests[%d].model: the model %q must be the batch's model %q\n", i, q.Model, model)
		case len(q.Content.Parts) == 0:
			return fmt.Sprintf("* BatchEmbedContentsRequest.requests[%d].content.parts: contents.parts must not be empty.\n", i)
		case q.OutputDimensionality != nil && *q.OutputDimensionality <= 0:
			return fmt.Sprintf("* BatchEmbedContentsRequest.requests[%d].output_dimensionality: must be positive\n", i)
		}
		for _, p := range q.Content.Parts {
			if p.Text == nil {
				return fmt.Sprintf("* BatchEmbedContentsRequest.requests[%d].content.parts: only text parts are supported\n", i)
			}
		}
	}
	return ""
}

// answer returns the batch's embeddings, as Google writes them.
func (r *geminiBatchEmbedRequest) answer() []byte {
	var b bytes.Buffer
	b.WriteString("{\n  \"embeddings\": [")
	for i, q := range r.Requests {
		if i > 0 {
			b.WriteByte(',')
		}
		var text strings.Builder
		for _, p := range q.Content.Parts {
			text.WriteString(*p.Text)
		}
		dims := GeminiEmbeddingDims
		if q.OutputDimensionality != nil {
			dims = *q.OutputDimensionality
		}
		b.WriteString("\n    {\n      \"values\": [")
		for d, v := range GeminiEmbedding(text.String(), dims) {
			if d > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
		}
		b.WriteString("]\n    }")
	}
	b.WriteString("\n  ]\n}\n")
	return b.Bytes()
}

// GeminiEmbedding returns the vector the Gemini fake answers for text:
// dims values (GeminiEmbeddingDims if dims is 0 or less) in [-1, 1) from a
// xorshift generator seeded with the text's FNV-1a hash.
func GeminiEmbedding(text string, dims int) []float32 {
	if dims <= 0 {
		dims = GeminiEmbeddingDims
	}
	h := fnv.New64a()
	h.Write([]byte(text))
	x := h.Sum64() | 1
	v := make([]float32, dims)
	for i := range v {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		v[i] = float32(float64(x>>11)/(1<<53)*2 - 1)
	}
	return v
}
