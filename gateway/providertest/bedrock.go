package providertest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/google/uuid"
)

// The credentials and region the Bedrock fake accepts. The keys are AWS's
// documentation examples, never real ones.
const (
	BedrockAccessKey = "AKIAIOSFODNN7EXAMPLE"
	BedrockSecretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	BedrockRegion    = "us-east-1"
)

// bedrockService is the SigV4 signing name of bedrock-runtime.
const bedrockService = "bedrock"

// bedrockMaxSkew is how far a request's X-Amz-Date may be from the fake's
// clock, as AWS allows.
const bedrockMaxSkew = 5 * time.Minute

// bedrockEvent is one line of a recorded ConverseStream: the event type
// (the :event-type header) and its JSON payload.
type bedrockEvent struct {
	Event   string          `json:"event"`
	Payload json.RawMessage `json:"payload"`
}

// NewBedrock starts a fake Bedrock runtime speaking Converse
// (POST /model/{modelId}/converse) and ConverseStream
// (POST /model/{modelId}/converse-stream).
//
// SPEC: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
// SPEC: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html
//
// It checks each request's SigV4 signature by recomputing it with the test
// credentials (BedrockAccessKey, BedrockSecretKey, BedrockRegion, service
// bedrock) and refuses a missing or wrong one with 403 in Bedrock's error
// shape (an x-amzn-ErrorType header and {"message": ...}). It validates the
// conversation as Bedrock does (a user turn first, alternating roles, no
// blank text, toolResult blocks answering the previous turn's toolUse
// blocks, a toolConfig when tool blocks are present) and answers 400
// ValidationException otherwise.
//
// It answers Converse with testdata/providers/bedrock/converse.json, or
// converse_tool_use.json when the request declares tools and its last turn
// holds no toolResult (the tool named by toolChoice, or the first tool, is
// the one called). ConverseStream replays converse_stream.jsonl (or
// converse_stream_tool_use.jsonl) in the binary event-stream framing
// (application/vnd.amazon.eventstream).
//
// Faults: Status answers with that status and its Bedrock exception (429
// ThrottlingException, 503 ServiceUnavailableException, 500
// InternalServerException, ...; Type overrides it); RetryAfter sets the
// Retry-After header; CutAfter closes the connection after that many
// events; MalformedAt sends that event with a bad message CRC; ErrorEventAt
// sends an exception frame as that event (Type names it, e.g.
// throttlingException; default internalServerException) and ends the
// stream.
func NewBedrock(t testing.TB) *Server {
	t.Helper()
	converse := Fixture(t, "bedrock/converse.json")
	toolUse := Fixture(t, "bedrock/converse_tool_use.json")
	stream := bedrockEvents(t, "bedrock/converse_stream.jsonl")
	toolStream := bedrockEvents(t, "bedrock/converse_stream_tool_use.jsonl")
	return newServer(t, func(s *Server, w http.ResponseWriter, r *http.Request, body []byte, f Fault) {
		op, _, ok := bedrockRoute(r)
		if !ok {
			bedrockError(w, http.StatusNotFound, "UnknownOperationException", "Unknown operation", "")
			return
		}
		if typ, msg := bedrockVerifySigV4(r, body, time.Now()); typ != "" {
			bedrockError(w, http.StatusForbidden, typ, msg, "")
			return
		}
		if f.Status != 0 {
			typ, msg := bedrockFaultError(f)
			bedrockError(w, f.Status, typ, msg, f.RetryAfter)
			return
		}
		req, msg := bedrockValidate(body)
		if msg != "" {
			bedrockError(w, http.StatusBadRequest, "ValidationException", msg, "")
			return
		}
		callTool := req.callsTool()
		if op == "converse" {
			answer := converse
			if callTool != "" {
				answer = bedrockRenameTool(toolUse, callTool)
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Amzn-Requestid", uuid.NewString())
			w.Write(answer)
			return
		}
		events := stream
		if callTool != "" {
			events = bedrockRenameStreamTool(toolStream, callTool)
		}
		bedrockStream(r.Context(), w, events, f)
	})
}

// bedrockRoute parses /model/{modelId}/converse[-stream]. The SDK
// path-escapes the model id (its ':' and, in ARNs, '/'), so the escaped path
// is split before the id is unescaped.
func bedrockRoute(r *http.Request) (op, model string, ok bool) {
	if r.Method != http.MethodPost {
		return "", "", false
	}
	parts := strings.Split(r.URL.EscapedPath(), "/")
	if len(parts) != 4 || parts[0] != "" || parts[1] != "model" || parts[2] == "" {
		return "", "", false
	}
	if parts[3] != "converse" && parts[3] != "converse-stream" {
		return "", "", false
	}
	model, err := url.PathUnescape(parts[2])
	if err != nil {
		return "", "", false
	}
	return parts[3], model, true
}

// bedrockVerifySigV4 recomputes the request's SigV4 signature with the test
// credentials. It returns the error type and message of a refusal, or "".
func bedrockVerifySigV4(r *http.Request, body []byte, now time.Time) (typ, msg string) {
	const mismatch = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return "MissingAuthenticationTokenException", "Missing Authentication Token"
	}
	algo, rest, _ := strings.Cut(auth, " ")
	if algo != "AWS4-HMAC-SHA256" {
		return "IncompleteSignatureException", "Unsupported signing algorithm " + algo
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		fields[k] = v
	}
	cred, signedHeaders, sig := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	if cred == "" || signedHeaders == "" || sig == "" {
		return "IncompleteSignatureException", "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters."
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return "IncompleteSignatureException", "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term"
	}
	if scope[0] != BedrockAccessKey {
		return "UnrecognizedClientException", "The security token included in the request is invalid."
	}
	if scope[2] != BedrockRegion || scope[3] != bedrockService {
		return "InvalidSignatureException", fmt.Sprintf("Credential should be scoped to a valid region and service (%s/%s).", BedrockRegion, bedrockService)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	signedAt, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return "IncompleteSignatureException", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
	}
	if scope[1] != signedAt.Format("20060102") {
		return "InvalidSignatureException", "Credential should be scoped to a valid date."
	}
	if d := now.Sub(signedAt); d > bedrockMaxSkew || d < -bedrockMaxSkew {
		return "InvalidSignatureException", fmt.Sprintf("Signature expired: %s is now earlier or later than %s by more than 5 min.", amzDate, now.UTC().Format("20060102T150405Z"))
	}
	signed := strings.Split(signedHeaders, ";")
	if !slices.Contains(signed, "host") || !slices.Contains(signed, "x-amz-date") {
		return "InvalidSignatureException", mismatch
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	if v := r.Header.Get("X-Amz-Content-Sha256"); v != "" && v != payloadHash {
		return "InvalidSignatureException", mismatch
	}
	// Rebuild the request from what the client signed, sign it with the
	// known secret at the client's time, and compare.
	again := &http.Request{
		Method: r.Method,
		URL:    &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		Host:   r.Host,
		Header: http.Header{},
	}
	for _, h := range signed {
		switch h {
		case "host":
		case "content-length":
			again.ContentLength = int64(len(body))
		default:
			vals := r.Header.Values(h)
			if len(vals) == 0 {
				return "InvalidSignatureException", mismatch
			}
			again.Header[http.CanonicalHeaderKey(h)] = vals
		}
	}
	creds := aws.Credentials{AccessKeyID: BedrockAccessKey, SecretAccessKey: BedrockSecretKey, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, payloadHash, bedrockService, BedrockRegion, signedAt); err != nil {
		return "InvalidSignatureException", mismatch
	}
	_, want, _ := strings.Cut(again.Header.Get("Authorization"), "Signature=")
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return "InvalidSignatureException", mismatch
	}
	return "", ""
}

// bedrockError answers with Bedrock's error shape: the exception name in
// x-amzn-ErrorType and {"message": ...}.
func bedrockError(w http.ResponseWriter, status int, typ, msg, retryAfter string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Amzn-Errortype", typ+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	h.Set("X-Amzn-Requestid", uuid.NewString())
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// bedrockExceptions are the exception and default message Bedrock answers a
// status with.
var bedrockExceptions = map[int][2]string{
	http.StatusBadRequest:          {"ValidationException", "Malformed input request, please reformat your input and try again."},
	http.StatusForbidden:           {"AccessDeniedException", "You don't have access to the model with the specified model ID."},
	http.StatusNotFound:            {"ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier."},
	http.StatusRequestTimeout:      {"ModelTimeoutException", "Model has timed out in processing the request. Try your request again."},
	http.StatusFailedDependency:    {"ModelErrorException", "The model encountered an error processing the request. Try your request again."},
	http.StatusTooManyRequests:     {"ThrottlingException", "Too many requests, please wait before trying again."},
	http.StatusInternalServerError: {"InternalServerException", "The server encountered an internal error while processing the request."},
	http.StatusServiceUnavailable:  {"ServiceUnavailableException", "Bedrock is unable to process your request."},
}

func bedrockFaultError(f Fault) (typ, msg string) {
	def, ok := bedrockExceptions[f.Status]
	if !ok {
		def = bedrockExceptions[http.StatusBadRequest]
		if f.Status >= 500 {
			def = bedrockExceptions[http.StatusInternalServerError]
		}
	}
	typ, msg = def[0], def[1]
	if f.Type != "" {
		typ = strings.ToUpper(f.Type[:1]) + f.Type[1:]
	}
	if f.Message != "" {
		msg = f.Message
	}
	return typ, msg
}

// bedrockStream writes events in the event-stream framing, applying the
// stream faults.
func bedrockStream(ctx context.Context, w http.ResponseWriter, events []bedrockEvent, f Fault) {
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.Header().Set("X-Amzn-Requestid", uuid.NewString())
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := eventstream.NewEncoder()
	var buf bytes.Buffer
	for i, ev := range events {
		n := i + 1
		if f.CutAfter > 0 && n > f.CutAfter {
			Cut(w)
			return
		}
		var msg eventstream.Message
		if n == f.ErrorEventAt {
			msg = bedrockExceptionFrame(f)
		} else {
			msg.Headers.Set(":event-type", eventstream.StringValue(ev.Event))
			msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
			msg.Headers.Set(":message-type", eventstream.StringValue("event"))
			msg.Payload = ev.Payload
		}
		buf.Reset()
		if err := enc.Encode(&buf, msg); err != nil {
			panic(fmt.Sprintf("providertest: encode bedrock event: %v", err))
		}
		b := buf.Bytes()
		if n == f.MalformedAt {
			b[len(b)-1] ^= 0xff // the message CRC no longer matches
		}
		if _, err := w.Write(b); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		if n == f.ErrorEventAt || ctx.Err() != nil {
			return
		}
	}
}

// bedrockExceptionFrame is an in-stream exception: :message-type exception
// and :exception-type naming the stream's exception member.
func bedrockExceptionFrame(f Fault) eventstream.Message {
	typ := "internalServerException"
	if f.Type != "" {
		typ = strings.ToLower(f.Type[:1]) + f.Type[1:]
	}
	text := f.Message
	if text == "" {
		text = "The server encountered an internal error while processing the request."
		for _, def := range bedrockExceptions {
			if strings.EqualFold(def[0], typ) {
				text = def[1]
			}
		}
	}
	if typ == "modelStreamErrorException" && f.Message == "" {
		text = "An error occurred while streaming the response. Retry your request."
	}
	payload := map[string]any{"message": text}
	if typ == "modelStreamErrorException" {
		payload["originalStatusCode"] = 500
		payload["originalMessage"] = "model stream failed"
	}
	var msg eventstream.Message
	msg.Headers.Set(":exception-type", eventstream.StringValue(typ))
	msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	msg.Headers.Set(":message-type", eventstream.StringValue("exception"))
	msg.Payload, _ = json.Marshal(payload)
	return msg
}

// bedrockEvents reads a recorded ConverseStream, one JSON event a line.
func bedrockEvents(t testing.TB, name string) []bedrockEvent {
	t.Helper()
	var events []bedrockEvent
	sc := bufio.NewScanner(bytes.NewReader(Fixture(t, name)))
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev bedrockEvent
		if err := json.Unmarshal(line, &ev); err != nil || ev.Event == "" {
			t.Fatalf("fixture %s: bad event line %q: %v", name, line, err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, ev.Payload); err != nil {
			t.Fatalf("fixture %s: bad payload: %v", name, err)
		}
		ev.Payload = compact.Bytes()
		events = append(events, ev)
	}
	return events
}

// bedrockRenameTool returns the tool use answer calling tool.
func bedrockRenameTool(answer []byte, tool string) []byte {
	var v map[string]any
	if json.Unmarshal(answer, &v) != nil {
		return answer
	}
	out, _ := v["output"].(map[string]any)
	msg, _ := out["message"].(map[string]any)
	content, _ := msg["content"].([]any)
	for _, c := range content {
		if use, ok := c.(map[string]any)["toolUse"].(map[string]any); ok {
			use["name"] = tool
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return answer
	}
	return b
}

// bedrockRenameStreamTool returns the tool use stream calling tool.
func bedrockRenameStreamTool(events []bedrockEvent, tool string) []bedrockEvent {
	out := make([]bedrockEvent, len(events))
	copy(out, events)
	for i, ev := range out {
		if ev.Event != "contentBlockStart" {
			continue
		}
		var v map[string]any
		if json.Unmarshal(ev.Payload, &v) != nil {
			continue
		}
		start, _ := v["start"].(map[string]any)
		if use, ok := start["toolUse"].(map[string]any); ok {
			use["name"] = tool
			out[i].Payload, _ = json.Marshal(v)
		}
	}
	return out
}

// bedrockRequest is the part of a Converse request body the fake checks.
type bedrockRequest struct {
	Messages []struct {
		Role    string                       `json:"role"`
		Content []map[string]json.RawMessage `json:"content"`
	} `json:"messages"`
	System          []map[string]json.RawMessage `json:"system"`
	InferenceConfig *struct {
		MaxTokens     *int     `json:"maxTokens"`
		Temperature   *float64 `json:"temperature"`
		TopP          *float64 `json:"topP"`
		StopSequences []string `json:"stopSequences"`
	} `json:"inferenceConfig"`
	ToolConfig *struct {
		Tools []struct {
			ToolSpec *struct {
				Name        string `json:"name"`
				Description string `json:"description"`
				InputSchema struct {
					JSON json.RawMessage `json:"json"`
				} `json:"inputSchema"`
			} `json:"toolSpec"`
		} `json:"tools"`
		ToolChoice map[string]json.RawMessage `json:"toolChoice"`
	} `json:"toolConfig"`
	OutputConfig *struct {
		TextFormat *struct {
			Type      string `json:"type"`
			Structure struct {
				JSONSchema *struct {
					Schema string `json:"schema"`
				} `json:"jsonSchema"`
			} `json:"structure"`
		} `json:"textFormat"`
		Effort string `json:"effort"`
	} `json:"outputConfig"`
}

// callsTool names the tool the fake's model calls: the tool toolChoice
// forces or the first one, when tools are declared and the last turn holds
// no toolResult; "" otherwise.
func (req *bedrockRequest) callsTool() string {
	if req.ToolConfig == nil || len(req.ToolConfig.Tools) == 0 || req.ToolConfig.Tools[0].ToolSpec == nil {
		return ""
	}
	last := req.Messages[len(req.Messages)-1]
	for _, block := range last.Content {
		if _, ok := block["toolResult"]; ok {
			return ""
		}
	}
	if raw, ok := req.ToolConfig.ToolChoice["tool"]; ok {
		var forced struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(raw, &forced) == nil && forced.Name != "" {
			return forced.Name
		}
	}
	return req.ToolConfig.Tools[0].ToolSpec.Name
}

var bedrockToolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// bedrockContentKinds are the members of a message's ContentBlock union.
var bedrockContentKinds = []string{"text", "image", "document", "video", "audio", "toolUse", "toolResult", "guardContent", "cachePoint", "reasoningContent", "citationsContent", "searchResult"}

// bedrockValidate parses a Converse request and checks it as Bedrock
// would; it returns the ValidationException message of a refusal, or "".
func bedrockValidate(body []byte) (*bedrockRequest, string) {
	var req bedrockRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, "Malformed input request: " + err.Error()
	}
	if len(req.Messages) == 0 {
		return nil, "The model returned the following errors: messages: at least one message is required"
	}
	if req.Messages[0].Role != "user" {
		return nil, "A conversation must start with a user message. Try again with a conversation that starts with a user message."
	}
	for i, s := range req.System {
		if text, ok := s["text"]; ok && bedrockBlank(text) {
			return nil, fmt.Sprintf("The text field in the SystemContentBlock object at system.%d is blank. Add text to the text field, and try again.", i)
		}
	}
	hasToolBlocks := false
	var pendingUses []string // toolUse ids of the previous assistant turn
	for i, m := range req.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return nil, fmt.Sprintf("messages.%d.role: member must satisfy enum value set: [user, assistant]", i)
		}
		if i > 0 && m.Role == req.Messages[i-1].Role {
			return nil, "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again."
		}
		if len(m.Content) == 0 {
			return nil, fmt.Sprintf("The content field in the Message object at messages.%d is empty. Add a ContentBlock object to the content field and try again.", i)
		}
		var uses, results []string
		for j, block := range m.Content {
			kinds := 0
			for _, k := range bedrockContentKinds {
				if _, ok := block[k]; ok {
					kinds++
				}
			}
			if kinds != 1 || len(block) != 1 {
				return nil, fmt.Sprintf("messages.%d.content.%d: a ContentBlock must set exactly one member", i, j)
			}
			if msg := bedrockCheckBlock(block, i, j, m.Role, &uses, &results); msg != "" {
				return nil, msg
			}
		}
		hasToolBlocks = hasToolBlocks || len(uses) > 0 || len(results) > 0
		if m.Role == "user" {
			if len(results) > len(pendingUses) {
				return nil, fmt.Sprintf("The number of toolResult blocks at messages.%d.content exceeds the number of toolUse blocks of previous turn.", i)
			}
			for _, id := range pendingUses {
				if !slices.Contains(results, id) {
					return nil, fmt.Sprintf("Expected toolResult blocks at messages.%d.content for the following Ids: %s", i, id)
				}
			}
		}
		pendingUses = uses
	}
	if len(pendingUses) > 0 {
		return nil, "The conversation ends with toolUse blocks that have no toolResult."
	}
	if hasToolBlocks && (req.ToolConfig == nil || len(req.ToolConfig.Tools) == 0) {
		return nil, "The toolConfig field must be defined when using toolUse and toolResult content blocks."
	}
	if msg := bedrockCheckConfig(&req); msg != "" {
		return nil, msg
	}
	return &req, ""
}

func bedrockCheckBlock(block map[string]json.RawMessage, i, j int, role string, uses, results *[]string) string {
	at := fmt.Sprintf("messages.%d.content.%d", i, j)
	switch {
	case block["text"] != nil:
		if bedrockBlank(block["text"]) {
			return fmt.Sprintf("The text field in the ContentBlock object at %s is blank. Add text to the text field, and try again.", at)
		}
	case block["image"] != nil:
		var img struct {
			Format string `json:"format"`
			Source struct {
				Bytes string `json:"bytes"`
			} `json:"source"`
		}
		if json.Unmarshal(block["image"], &img) != nil || !slices.Contains([]string{"png", "jpeg", "gif", "webp"}, img.Format) {
			return at + ".image.format: member must satisfy enum value set: [png, jpeg, gif, webp]"
		}
		if b, err := base64.StdEncoding.DecodeString(img.Source.Bytes); err != nil || len(b) == 0 {
			return at + ".image.source.bytes: the image bytes are missing or not base64"
		}
	case block["toolUse"] != nil:
		var use struct {
			ToolUseID string          `json:"toolUseId"`
			Name      string          `json:"name"`
			Input     json.RawMessage `json:"input"`
		}
		if role != "assistant" {
			return at + ": toolUse blocks are only allowed in assistant messages"
		}
		if json.Unmarshal(block["toolUse"], &use) != nil || use.ToolUseID == "" || !bedrockToolName.MatchString(use.Name) || len(use.Input) == 0 {
			return at + ".toolUse: toolUseId, a valid name and input are required"
		}
		*uses = append(*uses, use.ToolUseID)
	case block["toolResult"] != nil:
		var res struct {
			ToolUseID string                       `json:"toolUseId"`
			Content   []map[string]json.RawMessage `json:"content"`
		}
		if role != "user" {
			return at + ": toolResult blocks are only allowed in user messages"
		}
		if json.Unmarshal(block["toolResult"], &res) != nil || res.ToolUseID == "" || res.Content == nil {
			return at + ".toolResult: toolUseId and content are required"
		}
		*results = append(*results, res.ToolUseID)
	}
	return ""
}

func bedrockCheckConfig(req *bedrockRequest) string {
	if ic := req.InferenceConfig; ic != nil {
		if ic.MaxTokens != nil && *ic.MaxTokens < 1 {
			return "inferenceConfig.maxTokens: member must have value greater than or equal to 1"
		}
		if ic.Temperature != nil && (*ic.Temperature < 0 || *ic.Temperature > 1) {
			return "inferenceConfig.temperature: member must have value between 0 and 1"
		}
		if ic.TopP != nil && (*ic.TopP < 0 || *ic.TopP > 1) {
			return "inferenceConfig.topP: member must have value between 0 and 1"
		}
	}
	if tc := req.ToolConfig; tc != nil {
		if len(tc.Tools) == 0 {
			return "toolConfig.tools: member must have length greater than or equal to 1"
		}
		for i, tool := range tc.Tools {
			if tool.ToolSpec == nil || !bedrockToolName.MatchString(tool.ToolSpec.Name) {
				return fmt.Sprintf("toolConfig.tools.%d.toolSpec.name: member must satisfy regular expression pattern: [a-zA-Z0-9_-]+", i)
			}
			var schema map[string]any
			if json.Unmarshal(tool.ToolSpec.InputSchema.JSON, &schema) != nil {
				return fmt.Sprintf("toolConfig.tools.%d.toolSpec.inputSchema.json: the JSON schema must be an object", i)
			}
		}
	}
	if oc := req.OutputConfig; oc != nil && oc.TextFormat != nil {
		js := oc.TextFormat.Structure.JSONSchema
		if oc.TextFormat.Type != "json_schema" || js == nil || !json.Valid([]byte(js.Schema)) {
			return "outputConfig.textFormat: a json_schema type and a valid JSON schema string are required"
		}
	}
	return ""
}

// bedrockBlank reports whether a JSON string is empty or only whitespace.
func bedrockBlank(raw json.RawMessage) bool {
	var s string
	return json.Unmarshal(raw, &s) != nil || strings.TrimSpace(s) == ""
}
