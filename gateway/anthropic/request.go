package anthropic

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"aigw/gateway"
)

// Thinking budgets for OpenAI's reasoning_effort values.
var effortBudget = map[string]int{
	"minimal": 1024,
	"low":     2048,
	"medium":  8192,
	"high":    16384,
}

// minThinkingBudget is the smallest budget_tokens the API accepts.
const minThinkingBudget = 1024

// DefaultResponseToolName names the tool a json_schema response format
// becomes when its schema has no name.
const DefaultResponseToolName = "json_response"

// plan is what the translation of a request decided that the translation of
// its answer needs to know.
type plan struct {
	// responseTool names the forced tool standing for a json_schema
	// response format: its input is the answer's content, not a tool call.
	responseTool string
}

// fromChat translates an OpenAI-shaped request into a Messages request.
// It copies what it takes from req and never modifies it. Errors are
// *gateway.Error with status 400: the request cannot be expressed.
func fromChat(req *gateway.ChatRequest, defaultMaxTokens int, stream bool) (*Request, plan, error) {
	var pl plan
	out := &Request{Model: req.Model, Stream: stream, TopP: req.TopP}
	if req.N != nil && *req.N > 1 {
		return nil, pl, gateway.Errorf("n", "n greater than 1 is not supported by Anthropic models")
	}

	// Output limit and extended thinking.
	out.MaxTokens = req.MaxOutputTokens()
	explicitMax := out.MaxTokens > 0
	if !explicitMax {
		out.MaxTokens = defaultMaxTokens
	}
	if e := req.ReasoningEffort; e != "" && e != "none" {
		budget, ok := effortBudget[e]
		if !ok {
			return nil, pl, gateway.Errorf("reasoning_effort", "reasoning_effort %q is not one of none, minimal, low, medium, high", e)
		}
		if !explicitMax && out.MaxTokens <= budget {
			out.MaxTokens = budget + defaultMaxTokens
		}
		// The budget counts in max_tokens, as OpenAI's reasoning tokens
		// count in max_completion_tokens; below the API's minimum there is
		// no room to think.
		budget = min(budget, out.MaxTokens-1)
		if budget >= minThinkingBudget {
			out.Thinking = &Thinking{Type: "enabled", BudgetTokens: budget}
		}
	}
	if out.Thinking != nil {
		// Thinking accepts neither temperature nor top_p below 0.95.
		if out.TopP != nil && *out.TopP < 0.95 {
			out.TopP = nil
		}
	} else if req.Temperature != nil {
		t := min(*req.Temperature, 1) // OpenAI's range is 0-2, Anthropic's 0-1
		out.Temperature = &t
	}
	if req.Stop != nil && len(req.Stop.Sequences) > 0 {
		out.StopSequences = append([]string(nil), req.Stop.Sequences...)
	}
	if req.User != "" {
		out.Metadata = &Metadata{UserID: req.User}
	} else if req.SafetyIdentifier != "" {
		out.Metadata = &Metadata{UserID: req.SafetyIdentifier}
	}

	// Messages.
	var system []ContentBlock
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer":
			blocks, err := textBlocks(m.Content, fmt.Sprintf("messages[%d].content", i))
			if err != nil {
				return nil, pl, err
			}
			system = append(system, blocks...)
		case "user":
			blocks, err := userBlocks(m.Content, i)
			if err != nil {
				return nil, pl, err
			}
			out.Messages = appendTurn(out.Messages, RoleUser, blocks)
		case "assistant":
			blocks, err := assistantBlocks(&m, i)
			if err != nil {
				return nil, pl, err
			}
			out.Messages = appendTurn(out.Messages, RoleAssistant, blocks)
		case "tool":
			blocks, err := toolResultBlock(&m, i)
			if err != nil {
				return nil, pl, err
			}
			out.Messages = appendTurn(out.Messages, RoleUser, blocks)
		default:
			return nil, pl, gateway.Errorf(fmt.Sprintf("messages[%d].role", i), "role %q is not supported by Anthropic models", m.Role)
		}
	}
	if len(out.Messages) == 0 {
		return nil, pl, gateway.Errorf("messages", "messages must hold at least one user or assistant message with content")
	}

	// Tools.
	for i, t := range req.Tools {
		if t.Type != "function" {
			return nil, pl, gateway.Errorf(fmt.Sprintf("tools[%d].type", i), "tool type %q is not supported by Anthropic models", t.Type)
		}
		schema := t.Function.Parameters
		if len(bytes.TrimSpace(schema)) == 0 || string(bytes.TrimSpace(schema)) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, Tool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	if len(out.Tools) > 0 {
		tc, err := toolChoice(req.ToolChoice)
		if err != nil {
			return nil, pl, err
		}
		if req.ParallelToolCalls != nil && !*req.ParallelToolCalls {
			if tc == nil {
				tc = &ToolChoice{Type: ToolChoiceAuto}
			}
			if tc.Type != ToolChoiceNone {
				t := true
				tc.DisableParallelToolUse = &t
			}
		}
		out.ToolChoice = tc
	}

	// Response format: a json_schema becomes a forced tool whose input is
	// the answer when nothing else competes for tool_choice (no tools, no
	// thinking, which forced tool use excludes); otherwise, and for
	// json_object, the format becomes an instruction in the system prompt.
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
		case "json_schema":
			if rf.JSONSchema == nil || len(bytes.TrimSpace(rf.JSONSchema.Schema)) == 0 {
				return nil, pl, gateway.Errorf("response_format.json_schema", "response_format json_schema needs a schema")
			}
			if len(out.Tools) == 0 && out.Thinking == nil {
				name := rf.JSONSchema.Name
				if name == "" {
					name = DefaultResponseToolName
				}
				desc := rf.JSONSchema.Description
				if desc == "" {
					desc = "Respond with a JSON value matching this schema."
				}
				out.Tools = []Tool{{Name: name, Description: desc, InputSchema: rf.JSONSchema.Schema}}
				out.ToolChoice = &ToolChoice{Type: ToolChoiceTool, Name: name}
				pl.responseTool = name
			} else {
				var schema bytes.Buffer
				if err := json.Compact(&schema, rf.JSONSchema.Schema); err != nil {
					return nil, pl, gateway.Errorf("response_format.json_schema.schema", "schema is not valid JSON")
				}
				system = append(system, ContentBlock{Type: BlockText, Text: "Respond only with a JSON value that conforms to this JSON Schema, with no other text: " + schema.String()})
			}
		case "json_object":
			system = append(system, ContentBlock{Type: BlockText, Text: "Respond only with a valid JSON object, with no other text."})
		default:
			return nil, pl, gateway.Errorf("response_format.type", "response_format type %q is not supported", rf.Type)
		}
	}
	if len(system) > 0 {
		s := BlockContent(system...)
		out.System = &s
	}
	return out, pl, nil
}

// appendTurn adds blocks to the conversation, merging them into the last
// message when it has the same role (Anthropic's roles alternate: a run of
// tool results, or tool results and the user's next words, make one user
// turn). Empty blocks lists add nothing.
func appendTurn(msgs []Message, role string, blocks []ContentBlock) []Message {
	if len(blocks) == 0 {
		return msgs
	}
	if n := len(msgs); n > 0 && msgs[n-1].Role == role {
		msgs[n-1].Content.Blocks = append(msgs[n-1].Content.Blocks, blocks...)
		return msgs
	}
	return append(msgs, Message{Role: role, Content: BlockContent(blocks...)})
}

// textBlocks translates text-only content (system and tool messages).
func textBlocks(c gateway.Content, param string) ([]ContentBlock, error) {
	if !c.IsParts {
		if c.Text == "" {
			return nil, nil
		}
		return []ContentBlock{{Type: BlockText, Text: c.Text}}, nil
	}
	var out []ContentBlock
	for j, p := range c.Parts {
		switch p.Type {
		case "text":
			if p.Text != "" {
				out = append(out, ContentBlock{Type: BlockText, Text: p.Text})
			}
		default:
			return nil, gateway.Errorf(fmt.Sprintf("%s[%d].type", param, j), "content part type %q is not supported here", p.Type)
		}
	}
	return out, nil
}

// userBlocks translates a user message's content.
func userBlocks(c gateway.Content, i int) ([]ContentBlock, error) {
	if !c.IsParts {
		if c.Text == "" {
			return nil, nil
		}
		return []ContentBlock{{Type: BlockText, Text: c.Text}}, nil
	}
	var out []ContentBlock
	for j, p := range c.Parts {
		param := fmt.Sprintf("messages[%d].content[%d]", i, j)
		switch p.Type {
		case "text":
			if p.Text != "" {
				out = append(out, ContentBlock{Type: BlockText, Text: p.Text})
			}
		case "image_url":
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return nil, gateway.Errorf(param+".image_url", "image_url needs a url")
			}
			src, err := imageSource(p.ImageURL.URL)
			if err != nil {
				return nil, gateway.Errorf(param+".image_url.url", "%v", err)
			}
			out = append(out, ContentBlock{Type: BlockImage, Source: src})
		case "file":
			b, err := fileBlock(p.File)
			if err != nil {
				return nil, gateway.Errorf(param+".file", "%v", err)
			}
			out = append(out, b)
		default:
			return nil, gateway.Errorf(param+".type", "content part type %q is not supported by Anthropic models", p.Type)
		}
	}
	return out, nil
}

// imageSource makes an image source of a data: URL (base64) or an http(s)
// URL.
func imageSource(u string) (*Source, error) {
	if strings.HasPrefix(u, "data:") {
		mt, data, err := parseDataURL(u)
		if err != nil {
			return nil, err
		}
		return &Source{Type: SourceBase64, MediaType: mt, Data: data}, nil
	}
	if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		return &Source{Type: SourceURL, URL: u}, nil
	}
	return nil, fmt.Errorf("image url must be an http(s) or base64 data: URL")
}

// parseDataURL splits a base64 data: URL into its media type and data.
func parseDataURL(u string) (mediaType, data string, err error) {
	meta, data, ok := strings.Cut(strings.TrimPrefix(u, "data:"), ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		return "", "", fmt.Errorf("data: URL must be base64 encoded")
	}
	mediaType, _, _ = strings.Cut(meta, ";")
	if mediaType == "" {
		return "", "", fmt.Errorf("data: URL needs a media type")
	}
	return mediaType, data, nil
}

// fileBlock translates an OpenAI file part given inline (file_data) into a
// document block: a PDF as a base64 source, plain text as a text source.
func fileBlock(raw json.RawMessage) (ContentBlock, error) {
	var f struct {
		FileData string `json:"file_data"`
		FileID   string `json:"file_id"`
		Filename string `json:"filename"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return ContentBlock{}, fmt.Errorf("file part does not parse")
	}
	if f.FileData == "" {
		return ContentBlock{}, fmt.Errorf("only inline file_data files are supported by Anthropic models, not file ids")
	}
	mt, data, err := parseDataURL(f.FileData)
	if err != nil {
		return ContentBlock{}, err
	}
	b := ContentBlock{Type: BlockDocument, Title: f.Filename}
	switch {
	case mt == "application/pdf":
		b.Source = &Source{Type: SourceBase64, MediaType: mt, Data: data}
	case strings.HasPrefix(mt, "text/"):
		text, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return ContentBlock{}, fmt.Errorf("file_data is not valid base64")
		}
		b.Source = &Source{Type: SourceText, MediaType: "text/plain", Data: string(text)}
	default:
		return ContentBlock{}, fmt.Errorf("file type %q is not supported by Anthropic models (PDF and text are)", mt)
	}
	return b, nil
}

// assistantBlocks translates an assistant message: its text, then its tool
// calls. Reasoning content is dropped: Anthropic accepts earlier thinking
// only as signed thinking blocks, which an OpenAI-shaped history lacks.
func assistantBlocks(m *gateway.Message, i int) ([]ContentBlock, error) {
	var out []ContentBlock
	if !m.Content.IsParts {
		if m.Content.Text != "" {
			out = append(out, ContentBlock{Type: BlockText, Text: m.Content.Text})
		}
	} else {
		for j, p := range m.Content.Parts {
			text := p.Text
			switch p.Type {
			case "text":
			case "refusal":
				text = p.Refusal
			default:
				return nil, gateway.Errorf(fmt.Sprintf("messages[%d].content[%d].type", i, j), "assistant content part type %q is not supported", p.Type)
			}
			if text != "" {
				out = append(out, ContentBlock{Type: BlockText, Text: text})
			}
		}
	}
	if len(out) == 0 && m.Refusal != "" {
		out = append(out, ContentBlock{Type: BlockText, Text: m.Refusal})
	}
	for j, tc := range m.ToolCalls {
		input, err := toolInput(tc.Function.Arguments)
		if err != nil {
			return nil, gateway.Errorf(fmt.Sprintf("messages[%d].tool_calls[%d].function.arguments", i, j), "%v", err)
		}
		if tc.ID == "" || tc.Function.Name == "" {
			return nil, gateway.Errorf(fmt.Sprintf("messages[%d].tool_calls[%d]", i, j), "a tool call needs an id and a function name")
		}
		out = append(out, ContentBlock{Type: BlockToolUse, ID: tc.ID, Name: tc.Function.Name, Input: input})
	}
	return out, nil
}

// toolInput parses a tool call's arguments into a tool_use input, which
// must be a JSON object ("" is the empty object).
func toolInput(args string) (json.RawMessage, error) {
	b := bytes.TrimSpace([]byte(args))
	if len(b) == 0 {
		return json.RawMessage("{}"), nil
	}
	if b[0] != '{' || !json.Valid(b) {
		return nil, fmt.Errorf("tool call arguments must be a JSON object")
	}
	var c bytes.Buffer
	json.Compact(&c, b)
	return c.Bytes(), nil
}

// toolResultBlock translates a tool message into a tool_result block.
func toolResultBlock(m *gateway.Message, i int) ([]ContentBlock, error) {
	if m.ToolCallID == "" {
		return nil, gateway.Errorf(fmt.Sprintf("messages[%d].tool_call_id", i), "a tool message needs a tool_call_id")
	}
	b := ContentBlock{Type: BlockToolResult, ToolUseID: m.ToolCallID}
	if m.Content.IsParts {
		blocks, err := textBlocks(m.Content, fmt.Sprintf("messages[%d].content", i))
		if err != nil {
			return nil, err
		}
		if len(blocks) > 0 {
			c := BlockContent(blocks...)
			b.Content = &c
		}
	} else if m.Content.Text != "" {
		c := TextContent(m.Content.Text)
		b.Content = &c
	}
	return []ContentBlock{b}, nil
}

// toolChoice translates OpenAI's tool_choice; nil when absent.
func toolChoice(raw json.RawMessage) (*ToolChoice, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		json.Unmarshal(raw, &s)
		switch s {
		case "none":
			return &ToolChoice{Type: ToolChoiceNone}, nil
		case "auto":
			return &ToolChoice{Type: ToolChoiceAuto}, nil
		case "required":
			return &ToolChoice{Type: ToolChoiceAny}, nil
		}
		return nil, gateway.Errorf("tool_choice", "tool_choice %q is not one of none, auto, required", s)
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Type != "function" || obj.Function.Name == "" {
		return nil, gateway.Errorf("tool_choice", "tool_choice must be none, auto, required or a function to call")
	}
	return &ToolChoice{Type: ToolChoiceTool, Name: obj.Function.Name}, nil
}
