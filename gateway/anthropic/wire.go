package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
)

// Request is a Messages API request (POST /v1/messages).
//
// SPEC: https://docs.anthropic.com/en/api/messages
type Request struct {
	Model         string      `json:"model"`
	Messages      []Message   `json:"messages"`
	MaxTokens     int         `json:"max_tokens"`
	System        *Content    `json:"system,omitempty"` // a string or an array of text blocks
	Metadata      *Metadata   `json:"metadata,omitempty"`
	StopSequences []string    `json:"stop_sequences,omitempty"`
	Stream        bool        `json:"stream,omitempty"`
	Temperature   *float64    `json:"temperature,omitempty"`
	TopP          *float64    `json:"top_p,omitempty"`
	TopK          *int        `json:"top_k,omitempty"`
	Tools         []Tool      `json:"tools,omitempty"`
	ToolChoice    *ToolChoice `json:"tool_choice,omitempty"`
	Thinking      *Thinking   `json:"thinking,omitempty"`

	// Fields the API defines that ToChat does not translate; they are kept
	// so a request re-encodes as it came.
	ServiceTier       string          `json:"service_tier,omitempty"`
	Container         json.RawMessage `json:"container,omitempty"`
	MCPServers        json.RawMessage `json:"mcp_servers,omitempty"`
	ContextManagement json.RawMessage `json:"context_management,omitempty"`
	// OutputFormat (beta structured outputs) and OutputConfig.Format ask
	// for JSON matching a schema; ToChat maps them to response_format.
	OutputFormat *OutputFormat `json:"output_format,omitempty"`
	OutputConfig *OutputConfig `json:"output_config,omitempty"`
}

// Message is one conversation turn.
type Message struct {
	Role    string  `json:"role"` // user, assistant
	Content Content `json:"content"`
}

// Roles of a message.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Metadata describes the request.
type Metadata struct {
	UserID string `json:"user_id,omitempty"`
}

// Thinking configures extended thinking.
type Thinking struct {
	Type         string `json:"type"` // enabled, disabled, adaptive
	BudgetTokens int    `json:"budget_tokens,omitempty"`
}

// OutputFormat asks for output matching a JSON schema.
type OutputFormat struct {
	Type   string          `json:"type"` // json_schema
	Schema json.RawMessage `json:"schema,omitempty"`
}

// OutputConfig configures the output; only Format is interpreted, other
// fields (effort) are kept raw.
type OutputConfig struct {
	Format *OutputFormat   `json:"format,omitempty"`
	Effort json.RawMessage `json:"effort,omitempty"`
}

// Tool is a tool the model may use. Client tools have Type "custom" or
// none; server tools name a versioned type (web_search_20250305, ...) and
// keep their JSON in Raw.
type Tool struct {
	Type         string          `json:"type,omitempty"`
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"input_schema,omitempty"`
	CacheControl *CacheControl   `json:"cache_control,omitempty"`

	// Raw is a server tool's JSON, encoded back as it came.
	Raw json.RawMessage `json:"-"`
}

type toolFields Tool

// IsCustom reports whether the tool is a client tool (the caller runs it).
func (t *Tool) IsCustom() bool { return t.Type == "" || t.Type == "custom" }

// MarshalJSON encodes a client tool's fields, or a server tool's Raw.
func (t Tool) MarshalJSON() ([]byte, error) {
	if t.Raw != nil && !t.IsCustom() {
		return t.Raw, nil
	}
	return json.Marshal(toolFields(t))
}

// UnmarshalJSON decodes a tool; a server tool keeps its JSON in Raw.
func (t *Tool) UnmarshalJSON(data []byte) error {
	var f toolFields
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	*t = Tool(f)
	if !t.IsCustom() {
		t.Raw = append(json.RawMessage(nil), data...)
	}
	return nil
}

// ToolChoice says how the model uses the tools.
type ToolChoice struct {
	Type                   string `json:"type"` // auto, any, tool, none
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse *bool  `json:"disable_parallel_tool_use,omitempty"`
}

// Tool choice types.
const (
	ToolChoiceAuto = "auto"
	ToolChoiceAny  = "any"
	ToolChoiceTool = "tool"
	ToolChoiceNone = "none"
)

// CacheControl marks a prompt cache breakpoint.
type CacheControl struct {
	Type string `json:"type"`          // ephemeral
	TTL  string `json:"ttl,omitempty"` // 5m, 1h
}

// Content is a message's content: a string or an array of content blocks.
// It encodes back to the form it was decoded from.
type Content struct {
	Text   string
	Blocks []ContentBlock
	// IsBlocks: the content is an array (Blocks); otherwise a string (Text).
	IsBlocks bool
}

// TextContent returns string content.
func TextContent(s string) Content { return Content{Text: s} }

// BlockContent returns array content.
func BlockContent(blocks ...ContentBlock) Content { return Content{Blocks: blocks, IsBlocks: true} }

// MarshalJSON encodes the content as a string or an array.
func (c Content) MarshalJSON() ([]byte, error) {
	if !c.IsBlocks {
		return json.Marshal(c.Text)
	}
	if c.Blocks == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(c.Blocks)
}

// UnmarshalJSON decodes a string or an array of content blocks.
func (c *Content) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		*c = Content{}
		return json.Unmarshal(b, &c.Text)
	case len(b) > 0 && b[0] == '[':
		*c = Content{IsBlocks: true}
		return json.Unmarshal(b, &c.Blocks)
	}
	return errors.New("content must be a string or an array of content blocks")
}

// Content block types.
const (
	BlockText             = "text"
	BlockImage            = "image"
	BlockDocument         = "document"
	BlockToolUse          = "tool_use"
	BlockToolResult       = "tool_result"
	BlockThinking         = "thinking"
	BlockRedactedThinking = "redacted_thinking"
)

// rawBlockTypes are the content block types the API defines that this
// package does not model: they decode with Raw set and encode back as they
// came (server tool blocks, search results, MCP and container blocks).
var rawBlockTypes = map[string]bool{
	"search_result":                          true,
	"server_tool_use":                        true,
	"web_search_tool_result":                 true,
	"web_fetch_tool_result":                  true,
	"code_execution_tool_result":             true,
	"bash_code_execution_tool_result":        true,
	"text_editor_code_execution_tool_result": true,
	"tool_search_tool_result":                true,
	"mcp_tool_use":                           true,
	"mcp_tool_result":                        true,
	"container_upload":                       true,
}

// ContentBlock is one block of content. Which fields apply depends on Type;
// blocks of a type this package does not model keep their JSON in Raw.
type ContentBlock struct {
	Type string `json:"type"`

	// text
	Text string `json:"text,omitempty"`
	// Citations are a text block's citations, or a document block's
	// citation config; kept raw.
	Citations json.RawMessage `json:"citations,omitempty"`

	// image, document
	Source  *Source `json:"source,omitempty"`
	Title   string  `json:"title,omitempty"`
	Context string  `json:"context,omitempty"`

	// tool_use
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`

	// tool_result
	ToolUseID string   `json:"tool_use_id,omitempty"`
	Content   *Content `json:"content,omitempty"`
	IsError   *bool    `json:"is_error,omitempty"`

	// thinking
	Thinking  string `json:"thinking,omitempty"`
	Signature string `json:"signature,omitempty"`

	// redacted_thinking
	Data string `json:"data,omitempty"`

	CacheControl *CacheControl `json:"cache_control,omitempty"`

	// Raw is the block's JSON for types this package does not model.
	Raw json.RawMessage `json:"-"`
}

// blockFields is ContentBlock without its methods, for the default
// encoding and decoding.
type blockFields ContentBlock

// MarshalJSON encodes the block with the fields its type requires (a text
// block always has "text", a tool_use block "input", a thinking block
// "thinking" and "signature").
func (b ContentBlock) MarshalJSON() ([]byte, error) {
	if b.Raw != nil && !modeledBlock(b.Type) {
		return b.Raw, nil
	}
	switch b.Type {
	case BlockText:
		return json.Marshal(struct {
			Type         string          `json:"type"`
			Text         string          `json:"text"`
			Citations    json.RawMessage `json:"citations,omitempty"`
			CacheControl *CacheControl   `json:"cache_control,omitempty"`
		}{b.Type, b.Text, b.Citations, b.CacheControl})
	case BlockToolUse:
		input := b.Input
		if len(input) == 0 {
			input = json.RawMessage("{}")
		}
		return json.Marshal(struct {
			Type         string          `json:"type"`
			ID           string          `json:"id"`
			Name         string          `json:"name"`
			Input        json.RawMessage `json:"input"`
			CacheControl *CacheControl   `json:"cache_control,omitempty"`
		}{b.Type, b.ID, b.Name, input, b.CacheControl})
	case BlockThinking:
		return json.Marshal(struct {
			Type      string `json:"type"`
			Thinking  string `json:"thinking"`
			Signature string `json:"signature"`
		}{b.Type, b.Thinking, b.Signature})
	case BlockRedactedThinking:
		return json.Marshal(struct {
			Type string `json:"type"`
			Data string `json:"data"`
		}{b.Type, b.Data})
	}
	return json.Marshal(blockFields(b))
}

// UnmarshalJSON decodes a block; a type this package does not model keeps
// its JSON in Raw.
func (b *ContentBlock) UnmarshalJSON(data []byte) error {
	var f blockFields
	if err := json.Unmarshal(data, &f); err != nil {
		// A type this package does not model may use a field name for
		// something else (search_result's source is a string).
		var t struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(data, &t) != nil || modeledBlock(t.Type) {
			return err
		}
		f = blockFields{Type: t.Type}
	}
	*b = ContentBlock(f)
	if !modeledBlock(b.Type) {
		b.Raw = append(json.RawMessage(nil), data...)
	}
	return nil
}

func modeledBlock(typ string) bool {
	switch typ {
	case BlockText, BlockImage, BlockDocument, BlockToolUse, BlockToolResult, BlockThinking, BlockRedactedThinking:
		return true
	}
	return false
}

// Source is the source of an image or document block.
type Source struct {
	Type      string `json:"type"` // base64, url, text, content, file
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
	FileID    string `json:"file_id,omitempty"`
	// Content is a content source's content (a string or blocks), raw.
	Content json.RawMessage `json:"content,omitempty"`
}

// Source types.
const (
	SourceBase64  = "base64"
	SourceURL     = "url"
	SourceText    = "text"
	SourceContent = "content"
	SourceFile    = "file"
)

// Response is a Message object, the answer of a non-streamed request and
// the message of a stream's message_start event.
type Response struct {
	ID      string         `json:"id"`
	Type    string         `json:"type"` // message
	Role    string         `json:"role"` // assistant
	Content []ContentBlock `json:"content"`
	Model   string         `json:"model"`
	// StopReason and StopSequence encode as null when empty.
	StopReason   string `json:"stop_reason"`
	StopSequence string `json:"stop_sequence"`
	Usage        Usage  `json:"usage"`
}

// MarshalJSON encodes the message with null for an empty stop_reason and
// stop_sequence, and [] for no content, as the API does.
func (r Response) MarshalJSON() ([]byte, error) {
	content := r.Content
	if content == nil {
		content = []ContentBlock{}
	}
	return json.Marshal(struct {
		ID           string         `json:"id"`
		Type         string         `json:"type"`
		Role         string         `json:"role"`
		Content      []ContentBlock `json:"content"`
		Model        string         `json:"model"`
		StopReason   *string        `json:"stop_reason"`
		StopSequence *string        `json:"stop_sequence"`
		Usage        Usage          `json:"usage"`
	}{r.ID, r.Type, r.Role, content, r.Model, nullable(r.StopReason), nullable(r.StopSequence), r.Usage})
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Stop reasons.
const (
	StopEndTurn                    = "end_turn"
	StopMaxTokens                  = "max_tokens"
	StopStopSequence               = "stop_sequence"
	StopToolUse                    = "tool_use"
	StopPauseTurn                  = "pause_turn"
	StopRefusal                    = "refusal"
	StopModelContextWindowExceeded = "model_context_window_exceeded"
)

// Usage counts a message's tokens. InputTokens excludes the tokens read
// from or written to the prompt cache.
type Usage struct {
	InputTokens              int `json:"input_tokens"`
	OutputTokens             int `json:"output_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
}

// DeltaUsage is a message_delta event's usage: cumulative counts, the input
// ones present only when the API reports them there.
type DeltaUsage struct {
	OutputTokens             int  `json:"output_tokens"`
	InputTokens              *int `json:"input_tokens,omitempty"`
	CacheCreationInputTokens *int `json:"cache_creation_input_tokens,omitempty"`
	CacheReadInputTokens     *int `json:"cache_read_input_tokens,omitempty"`
}

// Stream event types.
//
// SPEC: https://docs.anthropic.com/en/docs/build-with-claude/streaming
const (
	EventMessageStart      = "message_start"
	EventContentBlockStart = "content_block_start"
	EventContentBlockDelta = "content_block_delta"
	EventContentBlockStop  = "content_block_stop"
	EventMessageDelta      = "message_delta"
	EventMessageStop       = "message_stop"
	EventPing              = "ping"
	EventError             = "error"
)

// Delta types of content_block_delta events.
const (
	DeltaText      = "text_delta"
	DeltaInputJSON = "input_json_delta"
	DeltaThinking  = "thinking_delta"
	DeltaSignature = "signature_delta"
	DeltaCitations = "citations_delta"
)

// StreamEvent is the data of one stream event; which fields apply depends
// on Type.
type StreamEvent struct {
	Type string `json:"type"`
	// message_start
	Message *Response `json:"message,omitempty"`
	// content_block_start, content_block_delta, content_block_stop
	Index        int           `json:"index"`
	ContentBlock *ContentBlock `json:"content_block,omitempty"`
	// content_block_delta, message_delta
	Delta *EventDelta `json:"delta,omitempty"`
	// message_delta
	Usage *DeltaUsage `json:"usage,omitempty"`
	// error
	Error *ErrorDetail `json:"error,omitempty"`
}

// EventDelta is the delta of a content_block_delta event (Type says which)
// or of a message_delta event (StopReason, StopSequence).
type EventDelta struct {
	Type        string `json:"type,omitempty"`
	Text        string `json:"text,omitempty"`
	PartialJSON string `json:"partial_json,omitempty"`
	Thinking    string `json:"thinking,omitempty"`
	Signature   string `json:"signature,omitempty"`

	StopReason   string `json:"stop_reason,omitempty"`
	StopSequence string `json:"stop_sequence,omitempty"`
}

// ErrorBody is the body of an error response and the data of an error
// event: {"type":"error","error":{"type":...,"message":...}}.
//
// SPEC: https://docs.anthropic.com/en/api/errors
type ErrorBody struct {
	Type  string      `json:"type"` // error
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong.
type ErrorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// Error types.
const (
	TypeInvalidRequest  = "invalid_request_error"
	TypeAuthentication  = "authentication_error"
	TypeBilling         = "billing_error"
	TypePermission      = "permission_error"
	TypeNotFound        = "not_found_error"
	TypeRequestTooLarge = "request_too_large"
	TypeRateLimit       = "rate_limit_error"
	TypeAPI             = "api_error"
	TypeTimeout         = "timeout_error"
	TypeOverloaded      = "overloaded_error"
)

// StatusOverloaded is the status of an overloaded_error.
const StatusOverloaded = 529

// TypeForStatus is the error type the API uses for an HTTP status.
func TypeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return TypeInvalidRequest
	case http.StatusUnauthorized:
		return TypeAuthentication
	case http.StatusPaymentRequired:
		return TypeBilling
	case http.StatusForbidden:
		return TypePermission
	case http.StatusNotFound:
		return TypeNotFound
	case http.StatusRequestEntityTooLarge:
		return TypeRequestTooLarge
	case http.StatusTooManyRequests:
		return TypeRateLimit
	case http.StatusGatewayTimeout:
		return TypeTimeout
	case StatusOverloaded, http.StatusServiceUnavailable:
		return TypeOverloaded
	}
	if status >= 500 {
		return TypeAPI
	}
	return TypeInvalidRequest
}

// StatusForType is the HTTP status the API answers an error type with (500
// for a type it does not know).
func StatusForType(typ string) int {
	switch typ {
	case TypeInvalidRequest:
		return http.StatusBadRequest
	case TypeAuthentication:
		return http.StatusUnauthorized
	case TypeBilling:
		return http.StatusPaymentRequired
	case TypePermission:
		return http.StatusForbidden
	case TypeNotFound:
		return http.StatusNotFound
	case TypeRequestTooLarge:
		return http.StatusRequestEntityTooLarge
	case TypeRateLimit:
		return http.StatusTooManyRequests
	case TypeTimeout:
		return http.StatusGatewayTimeout
	case TypeOverloaded:
		return StatusOverloaded
	}
	return http.StatusInternalServerError
}
