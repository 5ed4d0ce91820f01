package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"aigw/gateway"
)

// RequestError is a request the Messages API would refuse; WriteError
// writes it in the API's error shape.
type RequestError struct {
	Status  int
	Type    string
	Message string
}

// Error describes the refusal.
func (e *RequestError) Error() string { return "anthropic: " + e.Type + ": " + e.Message }

func invalid(format string, args ...any) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Type: TypeInvalidRequest, Message: fmt.Sprintf(format, args...)}
}

// WriteError writes an error response in the Messages API's shape:
// {"type":"error","error":{"type":...,"message":...}}. An empty typ is the
// API's type for the status.
func WriteError(w http.ResponseWriter, status int, typ, message string) {
	if typ == "" {
		typ = TypeForStatus(status)
	}
	b, _ := json.Marshal(ErrorBody{Type: "error", Error: ErrorDetail{Type: typ, Message: message}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// requestFields are the top-level fields of a Messages request, which the
// API refuses others than: those of its reference and of anthropic-sdk-go
// v2.15, beta ones included (a beta header admits them). ToChat translates
// the first row; it drops the others, but refuses mcp_servers.
var requestFields = map[string]bool{
	"model": true, "messages": true, "max_tokens": true, "system": true, "metadata": true, "stop_sequences": true,
	"stream": true, "temperature": true, "top_p": true, "tools": true, "tool_choice": true, "output_format": true, "output_config": true,

	"top_k": true, "thinking": true, "service_tier": true, "container": true, "mcp_servers": true,
	"context_management": true, "cache_control": true, "inference_geo": true, "speed": true, "diagnostics": true,
	"compaction": true, "thread": true, "fallbacks": true, "billing_policy": true, "fallback_credit_token": true,
}

var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

// imageTypes are the media types of base64 images.
var imageTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// ParseRequest decodes and validates a Messages request as the API does:
// the body is a JSON object with only the API's top-level fields; model,
// max_tokens (at least 1) and messages (not empty, roles user and
// assistant, content not empty but for a final assistant turn) are
// required; content blocks have known types with their required fields,
// tool_use and thinking only in assistant turns, tool_result only in user
// turns. Errors are *RequestError.
func ParseRequest(body []byte) (*Request, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, invalid("request body is not a JSON object")
	}
	var extra []string
	for k := range top {
		if !requestFields[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, invalid("%s: Extra inputs are not permitted", extra[0])
	}
	for _, k := range []string{"model", "max_tokens", "messages"} {
		if _, ok := top[k]; !ok {
			return nil, invalid("%s: Field required", k)
		}
	}
	var r Request
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, invalid("%s", decodeError(err))
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// decodeError describes a decoding error without Go type names.
func decodeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "body"
		}
		return fmt.Sprintf("%s: Input should be a valid %s, not a JSON %s", field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "int", "int64", "int32", "uint", "uint64":
		return "integer"
	case "float64", "float32":
		return "number"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "list"
	}
	return "object"
}

func (r *Request) validate() error {
	if r.Model == "" {
		return invalid("model: String should have at least 1 character")
	}
	if r.MaxTokens < 1 {
		return invalid("max_tokens: Input should be greater than or equal to 1")
	}
	if len(r.Messages) == 0 {
		return invalid("messages: at least one message is required")
	}
	for i := range r.Messages {
		m := &r.Messages[i]
		if m.Role != RoleUser && m.Role != RoleAssistant {
			return invalid("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
		final := i == len(r.Messages)-1 && m.Role == RoleAssistant
		if !m.Content.IsBlocks {
			if m.Content.Text == "" && !final {
				return invalid("messages.%d: all messages must have non-empty content except for the optional final assistant message", i)
			}
			continue
		}
		if len(m.Content.Blocks) == 0 && !final {
			return invalid("messages.%d: all messages must have non-empty content except for the optional final assistant message", i)
		}
		for j := range m.Content.Blocks {
			if err := validateBlock(&m.Content.Blocks[j], m.Role, fmt.Sprintf("messages.%d.content.%d", i, j)); err != nil {
				return err
			}
		}
	}
	if r.System != nil && r.System.IsBlocks {
		for j, b := range r.System.Blocks {
			if b.Type != BlockText {
				return invalid("system.%d.type: Input should be 'text'", j)
			}
			if b.Text == "" {
				return invalid("system: text content blocks must be non-empty")
			}
		}
	}
	if t := r.Temperature; t != nil && (*t < 0 || *t > 1) {
		return invalid("temperature: Input should be between 0 and 1")
	}
	if p := r.TopP; p != nil && (*p < 0 || *p > 1) {
		return invalid("top_p: Input should be between 0 and 1")
	}
	if k := r.TopK; k != nil && *k < 0 {
		return invalid("top_k: Input should be greater than or equal to 0")
	}
	if r.Metadata != nil && len(r.Metadata.UserID) > 256 {
		return invalid("metadata.user_id: String should have at most 256 characters")
	}
	for i, t := range r.Tools {
		if !toolName.MatchString(t.Name) {
			return invalid("tools.%d.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'", i)
		}
		if t.IsCustom() {
			s := bytes.TrimSpace(t.InputSchema)
			if len(s) == 0 {
				return invalid("tools.%d.custom.input_schema: Field required", i)
			}
			if s[0] != '{' {
				return invalid("tools.%d.custom.input_schema: Input should be a valid dictionary", i)
			}
		}
	}
	if tc := r.ToolChoice; tc != nil {
		switch tc.Type {
		case ToolChoiceAuto, ToolChoiceAny, ToolChoiceNone:
		case ToolChoiceTool:
			if tc.Name == "" {
				return invalid("tool_choice.tool.name: Field required")
			}
		default:
			return invalid("tool_choice.type: Input tag '%s' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'", tc.Type)
		}
	}
	if th := r.Thinking; th != nil {
		switch th.Type {
		case "enabled":
			if th.BudgetTokens < minThinkingBudget {
				return invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to %d", minThinkingBudget)
			}
			if th.BudgetTokens >= r.MaxTokens {
				return invalid("max_tokens must be greater than thinking.budget_tokens")
			}
		case "":
			return invalid("thinking.type: Field required")
		}
	}
	return nil
}

// validateBlock checks a content block of a turn with the given role.
func validateBlock(b *ContentBlock, role, path string) error {
	switch b.Type {
	case BlockText:
		if b.Text == "" {
			return invalid("%s: text content blocks must be non-empty", path)
		}
	case BlockImage:
		if err := validateSource(b.Source, path, true); err != nil {
			return err
		}
	case BlockDocument:
		if err := validateSource(b.Source, path, false); err != nil {
			return err
		}
	case BlockToolUse:
		if role != RoleAssistant {
			return invalid("%s: tool_use blocks are only allowed in assistant messages", path)
		}
		if b.ID == "" || b.Name == "" {
			return invalid("%s: tool_use blocks need an id and a name", path)
		}
		if in := bytes.TrimSpace(b.Input); len(in) == 0 || in[0] != '{' {
			return invalid("%s.input: Input should be a valid dictionary", path)
		}
	case BlockToolResult:
		if role != RoleUser {
			return invalid("%s: tool_result blocks are only allowed in user messages", path)
		}
		if b.ToolUseID == "" {
			return invalid("%s.tool_use_id: Field required", path)
		}
		if b.Content != nil && b.Content.IsBlocks {
			for k := range b.Content.Blocks {
				c := &b.Content.Blocks[k]
				p := fmt.Sprintf("%s.content.%d", path, k)
				switch c.Type {
				case BlockText, BlockImage, BlockDocument, "search_result":
				default:
					return invalid("%s.type: Input tag '%s' found using 'type' does not match any of the expected tags: 'text', 'image', 'document', 'search_result'", p, c.Type)
				}
				if err := validateBlock(c, role, p); err != nil {
					return err
				}
			}
		}
	case BlockThinking:
		if role != RoleAssistant {
			return invalid("%s: thinking blocks are only allowed in assistant messages", path)
		}
		if b.Signature == "" {
			return invalid("%s.signature: Field required", path)
		}
	case BlockRedactedThinking:
		if role != RoleAssistant {
			return invalid("%s: redacted_thinking blocks are only allowed in assistant messages", path)
		}
		if b.Data == "" {
			return invalid("%s.data: Field required", path)
		}
	default:
		if !rawBlockTypes[b.Type] {
			return invalid("%s.type: unknown content block type %q", path, b.Type)
		}
	}
	return nil
}

func validateSource(s *Source, path string, image bool) error {
	if s == nil {
		return invalid("%s.source: Field required", path)
	}
	switch s.Type {
	case SourceBase64:
		if image && !imageTypes[s.MediaType] {
			return invalid("%s.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'", path)
		}
		if !image && s.MediaType != "application/pdf" {
			return invalid("%s.source.base64.media_type: Input should be 'application/pdf'", path)
		}
		if s.Data == "" {
			return invalid("%s.source.base64.data: Field required", path)
		}
	case SourceURL:
		if s.URL == "" {
			return invalid("%s.source.url.url: Field required", path)
		}
	case SourceFile:
		if s.FileID == "" {
			return invalid("%s.source.file.file_id: Field required", path)
		}
	case SourceText:
		if image {
			return invalid("%s.source.type: images take a base64, url or file source", path)
		}
		if s.MediaType != "text/plain" {
			return invalid("%s.source.text.media_type: Input should be 'text/plain'", path)
		}
	case SourceContent:
		if image {
			return invalid("%s.source.type: images take a base64, url or file source", path)
		}
		if len(bytes.TrimSpace(s.Content)) == 0 {
			return invalid("%s.source.content.content: Field required", path)
		}
	default:
		return invalid("%s.source.type: unknown source type %q", path, s.Type)
	}
	return nil
}

// ToChat translates a validated Messages request into the OpenAI shape,
// for an upstream that is not Anthropic. Dropped, as OpenAI has no
// equivalent: top_k, thinking (and thinking and redacted_thinking blocks
// of earlier turns: their signatures mean nothing elsewhere),
// cache_control, citations, service_tier, container and context
// management, server tool blocks of earlier assistant turns, and document
// titles and context. Refused with a *RequestError: server tools, MCP
// servers, file and URL sources that only Anthropic can read, and other
// block types of user turns. A tool_result with is_error has its content
// prefixed with "Error: "; images in a tool result follow the tool
// messages in a user message (OpenAI tool messages hold text only). The
// system prompt's text blocks, and a user turn's when it holds only text,
// are joined by newlines into string content; an assistant turn's text
// blocks are concatenated. max_tokens becomes max_completion_tokens, a
// streamed request asks for the usage chunk.
func ToChat(r *Request) (*gateway.ChatRequest, error) {
	out := &gateway.ChatRequest{Model: r.Model, Stream: r.Stream, Temperature: r.Temperature, TopP: r.TopP}
	maxTokens := r.MaxTokens
	out.MaxCompletionTokens = &maxTokens
	if r.Stream {
		out.StreamOptions = &gateway.StreamOptions{IncludeUsage: true}
	}
	if len(r.StopSequences) > 0 {
		out.Stop = &gateway.Stop{Sequences: append([]string(nil), r.StopSequences...)}
	}
	if r.Metadata != nil {
		out.User = r.Metadata.UserID
	}
	if len(bytes.TrimSpace(r.MCPServers)) > 0 && string(bytes.TrimSpace(r.MCPServers)) != "[]" && string(bytes.TrimSpace(r.MCPServers)) != "null" {
		return nil, invalid("mcp_servers: MCP servers are not supported by this model's upstream")
	}
	if r.System != nil {
		if s := contentText(*r.System, "\n"); s != "" {
			out.Messages = append(out.Messages, gateway.Message{Role: "system", Content: gateway.TextContent(s)})
		}
	}
	for i := range r.Messages {
		var err error
		if r.Messages[i].Role == RoleUser {
			out.Messages, err = appendUser(out.Messages, &r.Messages[i], i)
		} else {
			out.Messages, err = appendAssistant(out.Messages, &r.Messages[i], i)
		}
		if err != nil {
			return nil, err
		}
	}
	for i, t := range r.Tools {
		if !t.IsCustom() {
			return nil, invalid("tools.%d: server tool %q is not supported by this model's upstream", i, t.Type)
		}
		out.Tools = append(out.Tools, gateway.Tool{Type: "function", Function: gateway.FunctionDecl{
			Name: t.Name, Description: t.Description, Parameters: t.InputSchema,
		}})
	}
	if tc := r.ToolChoice; tc != nil && len(out.Tools) > 0 {
		switch tc.Type {
		case ToolChoiceAuto:
			out.ToolChoice = json.RawMessage(`"auto"`)
		case ToolChoiceAny:
			out.ToolChoice = json.RawMessage(`"required"`)
		case ToolChoiceNone:
			out.ToolChoice = json.RawMessage(`"none"`)
		case ToolChoiceTool:
			b, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}})
			out.ToolChoice = b
		}
		if tc.DisableParallelToolUse != nil && *tc.DisableParallelToolUse {
			f := false
			out.ParallelToolCalls = &f
		}
	}
	format := r.OutputFormat
	if r.OutputConfig != nil && r.OutputConfig.Format != nil {
		format = r.OutputConfig.Format
	}
	if format != nil {
		if format.Type != "json_schema" || len(bytes.TrimSpace(format.Schema)) == 0 {
			return nil, invalid("output_format: only a json_schema format with a schema is supported")
		}
		out.ResponseFormat = &gateway.ResponseFormat{Type: "json_schema", JSONSchema: &gateway.JSONSchema{Name: "response", Schema: format.Schema}}
	}
	return out, nil
}

// contentText is the text of content, text blocks joined by sep.
func contentText(c Content, sep string) string {
	if !c.IsBlocks {
		return c.Text
	}
	var b strings.Builder
	for _, bl := range c.Blocks {
		if bl.Type == BlockText && bl.Text != "" {
			if b.Len() > 0 {
				b.WriteString(sep)
			}
			b.WriteString(bl.Text)
		}
	}
	return b.String()
}

// appendUser translates a user turn: its tool results become tool
// messages (first, as OpenAI wants them right after the assistant's
// calls), the rest one user message.
func appendUser(msgs []gateway.Message, m *Message, i int) ([]gateway.Message, error) {
	if !m.Content.IsBlocks {
		return append(msgs, gateway.Message{Role: "user", Content: gateway.TextContent(m.Content.Text)}), nil
	}
	var parts, toolImages []gateway.ContentPart
	allText := true
	for j := range m.Content.Blocks {
		b := &m.Content.Blocks[j]
		path := fmt.Sprintf("messages.%d.content.%d", i, j)
		if b.Type == BlockToolResult {
			tm, images, err := toolMessage(b, path)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, tm)
			toolImages = append(toolImages, images...)
			continue
		}
		p, err := userPart(b, path)
		if err != nil {
			return nil, err
		}
		if p.Type != "text" {
			allText = false
		}
		parts = append(parts, p)
	}
	if len(toolImages) > 0 {
		msgs = append(msgs, gateway.Message{Role: "user", Content: gateway.Content{IsParts: true, Parts: toolImages}})
	}
	switch {
	case len(parts) == 0:
	case allText:
		texts := make([]string, len(parts))
		for k, p := range parts {
			texts[k] = p.Text
		}
		msgs = append(msgs, gateway.Message{Role: "user", Content: gateway.TextContent(strings.Join(texts, "\n"))})
	default:
		msgs = append(msgs, gateway.Message{Role: "user", Content: gateway.Content{IsParts: true, Parts: parts}})
	}
	return msgs, nil
}

// userPart translates a block of a user turn into a content part.
func userPart(b *ContentBlock, path string) (gateway.ContentPart, error) {
	if (b.Type == BlockImage || b.Type == BlockDocument) && b.Source == nil {
		return gateway.ContentPart{}, invalid("%s.source: Field required", path)
	}
	switch b.Type {
	case BlockText:
		return gateway.ContentPart{Type: "text", Text: b.Text}, nil
	case BlockImage:
		switch b.Source.Type {
		case SourceBase64:
			return gateway.ContentPart{Type: "image_url", ImageURL: &gateway.ImageURL{URL: "data:" + b.Source.MediaType + ";base64," + b.Source.Data}}, nil
		case SourceURL:
			return gateway.ContentPart{Type: "image_url", ImageURL: &gateway.ImageURL{URL: b.Source.URL}}, nil
		}
	case BlockDocument:
		switch b.Source.Type {
		case SourceBase64:
			name := b.Title
			if name == "" {
				name = "document.pdf"
			}
			f, _ := json.Marshal(map[string]string{"filename": name, "file_data": "data:" + b.Source.MediaType + ";base64," + b.Source.Data})
			return gateway.ContentPart{Type: "file", File: f}, nil
		case SourceText:
			return gateway.ContentPart{Type: "text", Text: b.Source.Data}, nil
		case SourceContent:
			var c Content
			if err := json.Unmarshal(b.Source.Content, &c); err != nil {
				return gateway.ContentPart{}, invalid("%s.source.content: %v", path, err)
			}
			return gateway.ContentPart{Type: "text", Text: contentText(c, "\n")}, nil
		}
	default:
		return gateway.ContentPart{}, invalid("%s: %s blocks are not supported by this model's upstream", path, b.Type)
	}
	return gateway.ContentPart{}, invalid("%s.source: %s sources are not supported by this model's upstream", path, b.Source.Type)
}

// toolMessage translates a tool_result block into a tool message, and the
// images it holds into parts for a user message.
func toolMessage(b *ContentBlock, path string) (gateway.Message, []gateway.ContentPart, error) {
	var text string
	var images []gateway.ContentPart
	if b.Content != nil {
		if !b.Content.IsBlocks {
			text = b.Content.Text
		} else {
			var texts []string
			for k := range b.Content.Blocks {
				c := &b.Content.Blocks[k]
				p, err := userPart(c, fmt.Sprintf("%s.content.%d", path, k))
				if err != nil {
					return gateway.Message{}, nil, err
				}
				if p.Type == "text" {
					texts = append(texts, p.Text)
				} else {
					images = append(images, p)
				}
			}
			text = strings.Join(texts, "\n")
		}
	}
	if b.IsError != nil && *b.IsError {
		text = "Error: " + text
	}
	return gateway.Message{Role: "tool", ToolCallID: b.ToolUseID, Content: gateway.TextContent(text)}, images, nil
}

// appendAssistant translates an assistant turn: text blocks make the
// content, tool_use blocks the tool calls; thinking and server tool blocks
// are dropped. A turn left empty adds no message.
func appendAssistant(msgs []gateway.Message, m *Message, i int) ([]gateway.Message, error) {
	if !m.Content.IsBlocks {
		if m.Content.Text == "" {
			return msgs, nil
		}
		return append(msgs, gateway.Message{Role: "assistant", Content: gateway.TextContent(m.Content.Text)}), nil
	}
	out := gateway.Message{Role: "assistant"}
	var text strings.Builder
	for _, b := range m.Content.Blocks {
		switch b.Type {
		case BlockText:
			text.WriteString(b.Text)
		case BlockToolUse:
			out.ToolCalls = append(out.ToolCalls, gateway.ToolCall{ID: b.ID, Type: "function",
				Function: gateway.FunctionCall{Name: b.Name, Arguments: string(compactInput(b.Input))}})
		}
	}
	switch {
	case text.Len() > 0:
		out.Content = gateway.TextContent(text.String())
	case len(out.ToolCalls) > 0:
		out.Content = gateway.Content{Null: true}
	default:
		return msgs, nil
	}
	return append(msgs, out), nil
}

// FromChat translates a chat.completion into a Message for a client of the
// Anthropic-compatible endpoint; model is the model the client asked for.
// The first choice's text (or refusal) makes a text block, its tool calls
// tool_use blocks; arguments that are not a JSON object become the input
// {} (the client's tool then fails validation and the model can retry,
// where an unparsable input would break the client's decoder). Reasoning
// content is dropped: a thinking block needs a signature Anthropic would
// check if the conversation later went there. The ID is the completion's,
// prefixed with "msg_" when it lacks it.
func FromChat(resp *gateway.ChatResponse, model string) *Response {
	out := &Response{Type: "message", Role: RoleAssistant, Model: model, Content: []ContentBlock{}, StopReason: StopEndTurn}
	if resp == nil {
		return out
	}
	out.ID = messageID(resp.ID)
	if resp.Usage != nil {
		out.Usage = anthropicUsage(resp.Usage)
	}
	if len(resp.Choices) == 0 {
		return out
	}
	ch := &resp.Choices[0]
	if text := ch.Message.Content.String(); text != "" {
		out.Content = append(out.Content, ContentBlock{Type: BlockText, Text: text})
	} else if ch.Message.Refusal != "" {
		out.Content = append(out.Content, ContentBlock{Type: BlockText, Text: ch.Message.Refusal})
	}
	for _, tc := range ch.Message.ToolCalls {
		out.Content = append(out.Content, ContentBlock{Type: BlockToolUse, ID: tc.ID, Name: tc.Function.Name, Input: inputOf(tc.Function.Arguments)})
	}
	out.StopReason = stopReason(ch.FinishReason, len(ch.Message.ToolCalls) > 0)
	if ch.Message.Refusal != "" && ch.Message.Content.String() == "" {
		out.StopReason = StopRefusal
	}
	return out
}

// messageID makes a completion ID look like a message ID.
func messageID(id string) string {
	if id == "" || strings.HasPrefix(id, "msg_") {
		return id
	}
	return "msg_" + id
}

// inputOf parses tool call arguments into a tool_use input: a compact JSON
// object, or {} when they are not one.
func inputOf(args string) json.RawMessage {
	in, err := toolInput(args)
	if err != nil {
		return json.RawMessage("{}")
	}
	return in
}

// stopReason maps an OpenAI finish reason to a stop reason; a message with
// tool calls stops for tool use whatever the upstream said.
func stopReason(finish string, toolCalls bool) string {
	if toolCalls && finish != gateway.FinishLength {
		return StopToolUse
	}
	switch finish {
	case gateway.FinishLength:
		return StopMaxTokens
	case gateway.FinishToolCalls, "function_call":
		return StopToolUse
	case gateway.FinishContentFilter:
		return StopRefusal
	}
	return StopEndTurn
}

// anthropicUsage translates usage back: input_tokens excludes cached and
// cache-written tokens.
func anthropicUsage(u *gateway.Usage) Usage {
	out := Usage{OutputTokens: u.CompletionTokens}
	in := u.PromptTokens
	if d := u.PromptTokensDetails; d != nil {
		out.CacheReadInputTokens = d.CachedTokens
		out.CacheCreationInputTokens = d.CacheCreationTokens
		in -= d.CachedTokens + d.CacheCreationTokens
	}
	out.InputTokens = max(in, 0)
	return out
}
