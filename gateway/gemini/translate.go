package gemini

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"aigw/gateway"
)

// skipSignature is the placeholder thought signature Google documents for
// function calls whose real signature is not available (a conversation the
// gateway translated from the OpenAI shape, which cannot carry it).
//
// SPEC: https://ai.google.dev/gemini-api/docs/thought-signatures
const skipSignature = "skip_thought_signature_validator"

// translateRequest turns an OpenAI chat request into a
// GenerateContentRequest. It does not modify req. Requests Gemini cannot
// express are a 400 *gateway.Error.
func translateRequest(req *gateway.ChatRequest) (*generateRequest, error) {
	if isSet(req.Functions) || isSet(req.FunctionCall) {
		return nil, gateway.Errorf("functions", "functions and function_call are deprecated and not supported for Gemini; use tools and tool_choice")
	}
	if len(req.Messages) == 0 {
		return nil, gateway.Errorf("messages", "messages must not be empty")
	}
	gr := &generateRequest{}
	sign := !legacyModel(req.Model)
	var system []part
	callNames := make(map[string]string) // tool call id → function name
	for i := range req.Messages {
		m := &req.Messages[i]
		switch m.Role {
		case "system", "developer":
			parts, err := textParts(i, m.Content)
			if err != nil {
				return nil, err
			}
			system = append(system, parts...)
		case "user":
			parts, err := userParts(i, m.Content)
			if err != nil {
				return nil, err
			}
			if len(parts) == 0 {
				return nil, gateway.Errorf(fmt.Sprintf("messages[%d].content", i), "messages[%d]: user message has no content; Gemini refuses empty turns", i)
			}
			gr.add("user", parts)
		case "assistant":
			parts, err := assistantParts(i, m, sign, callNames)
			if err != nil {
				return nil, err
			}
			if len(parts) > 0 { // an empty assistant turn says nothing; Gemini refuses it
				gr.add("model", parts)
			}
		case "tool":
			name := callNames[m.ToolCallID]
			if name == "" {
				name = m.Name
			}
			if name == "" {
				return nil, gateway.Errorf(fmt.Sprintf("messages[%d].tool_call_id", i), "messages[%d]: tool_call_id %q answers no earlier assistant tool call", i, m.ToolCallID)
			}
			gr.add("user", []part{{FunctionResponse: &functionResponse{
				ID:       m.ToolCallID,
				Name:     name,
				Response: toolResponse(m.Content.String()),
			}}})
		default:
			return nil, gateway.Errorf(fmt.Sprintf("messages[%d].role", i), "messages[%d]: role %q is not supported", i, m.Role)
		}
	}
	if len(gr.Contents) == 0 {
		return nil, gateway.Errorf("messages", "messages must include a user message")
	}
	if len(system) > 0 {
		gr.SystemInstruction = &content{Parts: system}
	}
	if err := translateTools(req, gr); err != nil {
		return nil, err
	}
	gc, err := translateConfig(req)
	if err != nil {
		return nil, err
	}
	gr.GenerationConfig = gc
	return gr, nil
}

// add appends a turn, merging it into the previous one if it has the same
// role (the tool results of one model turn become one user turn).
func (gr *generateRequest) add(role string, parts []part) {
	if n := len(gr.Contents); n > 0 && gr.Contents[n-1].Role == role {
		gr.Contents[n-1].Parts = append(gr.Contents[n-1].Parts, parts...)
		return
	}
	gr.Contents = append(gr.Contents, content{Role: role, Parts: parts})
}

func isSet(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && string(raw) != "null"
}

// textParts returns the text of a system message; other parts are refused.
func textParts(i int, c gateway.Content) ([]part, error) {
	if !c.IsParts {
		if c.Text == "" {
			return nil, nil
		}
		return []part{{Text: c.Text}}, nil
	}
	var parts []part
	for j, p := range c.Parts {
		if p.Type != "text" {
			return nil, gateway.Errorf(fmt.Sprintf("messages[%d].content[%d].type", i, j), "messages[%d]: a system message takes only text parts, not %q", i, p.Type)
		}
		if p.Text != "" {
			parts = append(parts, part{Text: p.Text})
		}
	}
	return parts, nil
}

// userParts translates a user message's content.
func userParts(i int, c gateway.Content) ([]part, error) {
	if !c.IsParts {
		if c.Text == "" {
			return nil, nil
		}
		return []part{{Text: c.Text}}, nil
	}
	parts := make([]part, 0, len(c.Parts))
	for j, p := range c.Parts {
		param := fmt.Sprintf("messages[%d].content[%d]", i, j)
		switch p.Type {
		case "text":
			if p.Text != "" {
				parts = append(parts, part{Text: p.Text})
			}
		case "image_url":
			if p.ImageURL == nil {
				return nil, gateway.Errorf(param+".image_url", "%s: image_url part without image_url", param)
			}
			ip, err := imagePart(param, p.ImageURL.URL)
			if err != nil {
				return nil, err
			}
			parts = append(parts, ip)
		case "input_audio":
			ap, err := audioPart(param, p.InputAudio)
			if err != nil {
				return nil, err
			}
			parts = append(parts, ap)
		case "file":
			fp, err := filePart(param, p.File)
			if err != nil {
				return nil, err
			}
			parts = append(parts, fp)
		default:
			return nil, gateway.Errorf(param+".type", "%s: content part type %q is not supported for Gemini", param, p.Type)
		}
	}
	return parts, nil
}

// imagePart translates an image URL: data: URLs are sent inline, http(s)
// and gs:// URLs by reference (the gateway does not fetch them).
func imagePart(param, u string) (part, error) {
	if strings.HasPrefix(u, "data:") {
		mt, data, err := parseDataURL(u)
		if err != nil {
			return part{}, gateway.Errorf(param+".image_url.url", "%s: %v", param, err)
		}
		return part{InlineData: &blob{MIMEType: mt, Data: data}}, nil
	}
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" || (pu.Scheme != "https" && pu.Scheme != "http" && pu.Scheme != "gs") {
		return part{}, gateway.Errorf(param+".image_url.url", "%s: image_url must be a base64 data: URL, or an http(s) or gs:// URL Gemini can read", param)
	}
	return part{FileData: &fileData{MIMEType: mimeByExt[strings.ToLower(path.Ext(pu.Path))], FileURI: u}}, nil
}

// mimeByExt guesses the MIME type of a referenced file; a fixed table, so
// the result does not depend on the host's mime.types.
var mimeByExt = map[string]string{
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
	".heic": "image/heic", ".heif": "image/heif", ".gif": "image/gif", ".pdf": "application/pdf",
}

// parseDataURL splits a base64 data: URL into its media type and data.
func parseDataURL(u string) (mediaType, data string, err error) {
	meta, data, ok := strings.Cut(strings.TrimPrefix(u, "data:"), ",")
	if !ok {
		return "", "", errors.New("data: URL without a comma")
	}
	params := strings.Split(meta, ";")
	if params[len(params)-1] != "base64" {
		return "", "", errors.New("data: URL must be base64 encoded")
	}
	mediaType = strings.TrimSpace(params[0])
	if mediaType == "" || mediaType == "base64" || !strings.Contains(mediaType, "/") {
		return "", "", errors.New("data: URL must name its media type")
	}
	if data == "" {
		return "", "", errors.New("data: URL holds no data")
	}
	return strings.ToLower(mediaType), data, nil
}

// audioPart translates an input_audio part ({"data": base64, "format"}).
func audioPart(param string, raw json.RawMessage) (part, error) {
	var a struct {
		Data   string `json:"data"`
		Format string `json:"format"`
	}
	if err := json.Unmarshal(raw, &a); err != nil || a.Data == "" || a.Format == "" {
		return part{}, gateway.Errorf(param+".input_audio", "%s: input_audio needs data and format", param)
	}
	return part{InlineData: &blob{MIMEType: "audio/" + strings.ToLower(a.Format), Data: a.Data}}, nil
}

// filePart translates a file part given inline (file_data, a data: URL);
// OpenAI file ids mean nothing to Gemini.
func filePart(param string, raw json.RawMessage) (part, error) {
	var f struct {
		FileData string `json:"file_data"`
		FileID   string `json:"file_id"`
	}
	if err := json.Unmarshal(raw, &f); err != nil || f.FileData == "" {
		return part{}, gateway.Errorf(param+".file", "%s: Gemini needs files inline as file_data (a base64 data: URL); file_id is not supported", param)
	}
	mt, data, err := parseDataURL(f.FileData)
	if err != nil {
		return part{}, gateway.Errorf(param+".file.file_data", "%s: %v", param, err)
	}
	return part{InlineData: &blob{MIMEType: mt, Data: data}}, nil
}

// assistantParts translates an assistant message: its text, then a
// functionCall part per tool call, recording each call's function name for
// the tool messages that answer it. If sign, the first call carries the
// placeholder thought signature.
func assistantParts(i int, m *gateway.Message, sign bool, callNames map[string]string) ([]part, error) {
	var parts []part
	if m.Content.IsParts {
		for _, p := range m.Content.Parts {
			if p.Type == "text" && p.Text != "" { // refusal parts are not replayed
				parts = append(parts, part{Text: p.Text})
			}
		}
	} else if m.Content.Text != "" {
		parts = append(parts, part{Text: m.Content.Text})
	}
	for j, tc := range m.ToolCalls {
		param := fmt.Sprintf("messages[%d].tool_calls[%d]", i, j)
		if tc.Type != "" && tc.Type != "function" {
			return nil, gateway.Errorf(param+".type", "%s: tool call type %q is not supported", param, tc.Type)
		}
		if tc.Function.Name == "" {
			return nil, gateway.Errorf(param+".function.name", "%s: tool call without a function name", param)
		}
		args := bytes.TrimSpace([]byte(tc.Function.Arguments))
		if len(args) == 0 {
			args = []byte("{}")
		}
		if args[0] != '{' || !json.Valid(args) {
			return nil, gateway.Errorf(param+".function.arguments", "%s: arguments must be a JSON object", param)
		}
		p := part{FunctionCall: &functionCall{ID: tc.ID, Name: tc.Function.Name, Args: args}}
		if j == 0 && sign {
			p.ThoughtSignature = skipSignature
		}
		parts = append(parts, p)
		if tc.ID != "" {
			callNames[tc.ID] = tc.Function.Name
		}
	}
	return parts, nil
}

// toolResponse is a functionResponse's response: the tool's result if it
// is a JSON object, else {"content": result} (result parsed if it is other
// JSON, as a string if it is not JSON).
func toolResponse(result string) json.RawMessage {
	b := bytes.TrimSpace([]byte(result))
	if json.Valid(b) {
		if b[0] == '{' {
			return b
		}
		return append(append([]byte(`{"content":`), b...), '}')
	}
	s, _ := json.Marshal(result)
	return append(append([]byte(`{"content":`), s...), '}')
}

// translateTools sets the function declarations and tool config.
func translateTools(req *gateway.ChatRequest, gr *generateRequest) error {
	var decls []functionDeclaration
	for i, t := range req.Tools {
		if t.Type != "function" {
			return gateway.Errorf(fmt.Sprintf("tools[%d].type", i), "tools[%d]: tool type %q is not supported for Gemini", i, t.Type)
		}
		if t.Function.Name == "" {
			return gateway.Errorf(fmt.Sprintf("tools[%d].function.name", i), "tools[%d]: function name is required", i)
		}
		d := functionDeclaration{Name: t.Function.Name, Description: t.Function.Description}
		if isSet(t.Function.Parameters) {
			d.ParametersJSONSchema = t.Function.Parameters
		}
		decls = append(decls, d)
	}
	if len(decls) > 0 {
		gr.Tools = []tool{{FunctionDeclarations: decls}}
	}
	if !isSet(req.ToolChoice) {
		return nil
	}
	var mode string
	var allowed []string
	var s string
	if json.Unmarshal(req.ToolChoice, &s) == nil {
		switch s {
		case "none":
			mode = "NONE"
		case "auto":
			mode = "AUTO"
		case "required":
			mode = "ANY"
		default:
			return gateway.Errorf("tool_choice", "tool_choice %q is not none, auto or required", s)
		}
	} else {
		var obj struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if err := json.Unmarshal(req.ToolChoice, &obj); err != nil || obj.Type != "function" || obj.Function.Name == "" {
			return gateway.Errorf("tool_choice", `tool_choice must be "none", "auto", "required" or {"type":"function","function":{"name":...}}`)
		}
		if !slices.ContainsFunc(decls, func(d functionDeclaration) bool { return d.Name == obj.Function.Name }) {
			return gateway.Errorf("tool_choice", "tool_choice names function %q, which tools do not declare", obj.Function.Name)
		}
		mode, allowed = "ANY", []string{obj.Function.Name}
	}
	if len(decls) == 0 {
		if mode == "ANY" {
			return gateway.Errorf("tool_choice", "tool_choice %s needs tools", string(req.ToolChoice))
		}
		return nil // none or auto without tools: nothing to configure
	}
	gr.ToolConfig = &toolConfig{FunctionCallingConfig: functionCallingConfig{Mode: mode, AllowedFunctionNames: allowed}}
	return nil
}

// translateConfig builds the generationConfig, nil if nothing is set.
func translateConfig(req *gateway.ChatRequest) (*generationConfig, error) {
	gc := &generationConfig{
		Temperature:      req.Temperature,
		TopP:             req.TopP,
		CandidateCount:   req.N,
		PresencePenalty:  req.PresencePenalty,
		FrequencyPenalty: req.FrequencyPenalty,
	}
	set := gc.Temperature != nil || gc.TopP != nil || gc.CandidateCount != nil || gc.PresencePenalty != nil || gc.FrequencyPenalty != nil
	if n := req.MaxOutputTokens(); n > 0 {
		gc.MaxOutputTokens, set = &n, true
	}
	if req.Stop != nil && len(req.Stop.Sequences) > 0 {
		gc.StopSequences, set = req.Stop.Sequences, true
	}
	if req.Seed != nil {
		if *req.Seed < math.MinInt32 || *req.Seed > math.MaxInt32 {
			return nil, gateway.Errorf("seed", "seed %d is out of Gemini's 32-bit range", *req.Seed)
		}
		s := int32(*req.Seed)
		gc.Seed, set = &s, true
	}
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
		case "json_object":
			gc.ResponseMIMEType, set = "application/json", true
		case "json_schema":
			if rf.JSONSchema == nil || !isSet(rf.JSONSchema.Schema) {
				return nil, gateway.Errorf("response_format.json_schema.schema", "response_format json_schema needs a schema")
			}
			gc.ResponseMIMEType, gc.ResponseJSONSchema, set = "application/json", rf.JSONSchema.Schema, true
		default:
			return nil, gateway.Errorf("response_format.type", "response_format type %q is not supported", rf.Type)
		}
	}
	if req.ReasoningEffort != "" {
		tc, err := thinking(req.Model, req.ReasoningEffort)
		if err != nil {
			return nil, err
		}
		gc.ThinkingConfig, set = tc, true
	}
	if !set {
		return nil, nil
	}
	return gc, nil
}

// Thinking budgets (Gemini 1 and 2 models) per reasoning effort, as
// Google's OpenAI compatibility layer maps them.
var thinkingBudgets = map[string]int{"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}

// Thinking levels (Gemini 3 and later) per reasoning effort; Gemini 3
// cannot turn thinking off, so none asks for the least.
var thinkingLevels = map[string]string{"none": "MINIMAL", "minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH", "xhigh": "HIGH"}

// legacyModel reports a Gemini 1 or 2 model: thinking is set by a budget,
// and thought signatures are not required. Any other model (Gemini 3 and
// later, and aliases such as gemini-flash-latest) is taken to be current.
func legacyModel(model string) bool {
	id := model[strings.LastIndexByte(model, '/')+1:]
	return strings.HasPrefix(id, "gemini-1") || strings.HasPrefix(id, "gemini-2")
}

// thinking maps reasoning_effort to a thinkingConfig for the model.
func thinking(model, effort string) (*thinkingConfig, error) {
	budget, ok := thinkingBudgets[effort]
	if !ok {
		return nil, gateway.Errorf("reasoning_effort", "reasoning_effort %q is not none, minimal, low, medium, high or xhigh", effort)
	}
	tc := &thinkingConfig{IncludeThoughts: effort != "none"}
	if legacyModel(model) {
		tc.ThinkingBudget = &budget
	} else {
		tc.ThinkingLevel = thinkingLevels[effort]
	}
	return tc, nil
}

// translateResponse turns a GenerateContentResponse into a chat.completion.
func translateResponse(gr *generateResponse, model string) (*gateway.ChatResponse, error) {
	resp := &gateway.ChatResponse{
		ID:      gr.ResponseID,
		Object:  "chat.completion",
		Created: time.Now().Unix(),
		Model:   gr.ModelVersion,
		Choices: make([]gateway.Choice, 0, max(len(gr.Candidates), 1)),
	}
	if resp.ID == "" {
		resp.ID = newID("chatcmpl-")
	}
	if resp.Model == "" {
		resp.Model = model
	}
	cands := slices.Clone(gr.Candidates)
	slices.SortStableFunc(cands, func(a, b candidate) int { return a.Index - b.Index })
	for _, c := range cands {
		text, reasoning, calls := readParts(c.Content, nil)
		msg := gateway.Message{Role: "assistant", Content: gateway.TextContent(text), ReasoningContent: reasoning, ToolCalls: calls}
		if text == "" && len(calls) > 0 {
			msg.Content = gateway.Content{Null: true}
		}
		fr := finishReason(c.FinishReason, len(calls) > 0)
		if fr == "" {
			fr = gateway.FinishStop
		}
		resp.Choices = append(resp.Choices, gateway.Choice{Index: c.Index, Message: msg, FinishReason: fr})
	}
	if len(resp.Choices) == 0 {
		if gr.PromptFeedback == nil || gr.PromptFeedback.BlockReason == "" {
			return nil, errors.New("response has neither candidates nor a block reason")
		}
		// The prompt was blocked: an empty answer, filtered.
		resp.Choices = append(resp.Choices, gateway.Choice{
			Message:      gateway.Message{Role: "assistant", Content: gateway.TextContent("")},
			FinishReason: gateway.FinishContentFilter,
		})
	}
	if gr.UsageMetadata != nil {
		resp.Usage = convertUsage(gr.UsageMetadata)
	}
	return resp, nil
}

// readParts collects a candidate's text, thought text and function calls.
// Tool calls get the part's id, or a generated call_ id. If next is not
// nil, each call gets Index next() (stream deltas).
func readParts(c *content, next func() int) (text, reasoning string, calls []gateway.ToolCall) {
	if c == nil {
		return "", "", nil
	}
	var tb, rb strings.Builder
	for _, p := range c.Parts {
		switch {
		case p.FunctionCall != nil:
			tc := gateway.ToolCall{
				ID:       p.FunctionCall.ID,
				Type:     "function",
				Function: gateway.FunctionCall{Name: p.FunctionCall.Name, Arguments: compactArgs(p.FunctionCall.Args)},
			}
			if tc.ID == "" {
				tc.ID = newID("call_")
			}
			if next != nil {
				n := next()
				tc.Index = &n
			}
			calls = append(calls, tc)
		case p.Thought:
			rb.WriteString(p.Text)
		default:
			tb.WriteString(p.Text)
		}
	}
	return tb.String(), rb.String(), calls
}

// compactArgs returns function call args as compact JSON, {} if absent.
func compactArgs(args json.RawMessage) string {
	if !isSet(args) {
		return "{}"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, args); err != nil {
		return string(args)
	}
	return b.String()
}

// finishReason maps a Gemini finish reason; "" (not finished) stays "".
func finishReason(r string, toolCalls bool) string {
	switch r {
	case "":
		return ""
	case "STOP":
		if toolCalls {
			return gateway.FinishToolCalls
		}
		return gateway.FinishStop
	case "MAX_TOKENS":
		return gateway.FinishLength
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT":
		return gateway.FinishContentFilter
	}
	return gateway.FinishStop
}

// convertUsage maps usageMetadata. Prompt tokens include tool-use prompt
// tokens (Gemini bills them as input) and, as in OpenAI's usage, cached
// tokens; completion tokens include thinking tokens, also given as
// reasoning_tokens.
func convertUsage(u *usageMetadata) *gateway.Usage {
	prompt := u.PromptTokenCount + u.ToolUsePromptTokenCount
	completion := u.CandidatesTokenCount + u.ThoughtsTokenCount
	total := u.TotalTokenCount
	if total == 0 {
		total = prompt + completion
	}
	return &gateway.Usage{
		PromptTokens:            prompt,
		CompletionTokens:        completion,
		TotalTokens:             total,
		PromptTokensDetails:     &gateway.PromptTokensDetails{CachedTokens: u.CachedContentTokenCount},
		CompletionTokensDetails: &gateway.CompletionTokensDetails{ReasoningTokens: u.ThoughtsTokenCount},
	}
}
