package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
)

// ChatRequest is an OpenAI Chat Completions request, the shape every
// provider translates from. Fields OpenAI defines but the gateway does not
// interpret are kept as raw JSON and passed to OpenAI-shaped upstreams as
// they came.
//
// SPEC: https://platform.openai.com/docs/api-reference/chat/create
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *StreamOptions  `json:"stream_options,omitempty"`
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	N                   *int            `json:"n,omitempty"`
	Stop                *Stop           `json:"stop,omitempty"`
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"` // "none" | "auto" | "required" | {"type":"function","function":{"name":...}}
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty,omitempty"`
	PresencePenalty     *float64        `json:"presence_penalty,omitempty"`
	User                string          `json:"user,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`

	// Passed through to OpenAI-shaped upstreams, not interpreted.
	LogitBias        json.RawMessage `json:"logit_bias,omitempty"`
	Logprobs         *bool           `json:"logprobs,omitempty"`
	TopLogprobs      *int            `json:"top_logprobs,omitempty"`
	Metadata         json.RawMessage `json:"metadata,omitempty"`
	Store            *bool           `json:"store,omitempty"`
	ServiceTier      string          `json:"service_tier,omitempty"`
	Modalities       json.RawMessage `json:"modalities,omitempty"`
	Audio            json.RawMessage `json:"audio,omitempty"`
	Prediction       json.RawMessage `json:"prediction,omitempty"`
	WebSearchOptions json.RawMessage `json:"web_search_options,omitempty"`
	Verbosity        string          `json:"verbosity,omitempty"`
	PromptCacheKey   string          `json:"prompt_cache_key,omitempty"`
	SafetyIdentifier string          `json:"safety_identifier,omitempty"`
	FunctionCall     json.RawMessage `json:"function_call,omitempty"` // deprecated by OpenAI, still accepted
	Functions        json.RawMessage `json:"functions,omitempty"`     // deprecated by OpenAI, still accepted
}

// MaxOutputTokens is the output limit the request asks for, or 0.
func (r *ChatRequest) MaxOutputTokens() int {
	if r.MaxCompletionTokens != nil {
		return *r.MaxCompletionTokens
	}
	if r.MaxTokens != nil {
		return *r.MaxTokens
	}
	return 0
}

// WantsUsage reports whether a streaming client asked for the usage chunk.
func (r *ChatRequest) WantsUsage() bool {
	return r.StreamOptions != nil && r.StreamOptions.IncludeUsage
}

// StreamOptions are the options of a streamed completion.
type StreamOptions struct {
	IncludeUsage       bool  `json:"include_usage,omitempty"`
	IncludeObfuscation *bool `json:"include_obfuscation,omitempty"`
}

// Stop is a stop sequence, given as a string or an array of strings.
type Stop struct {
	Sequences []string
	array     bool
}

func (s Stop) MarshalJSON() ([]byte, error) {
	if !s.array && len(s.Sequences) == 1 {
		return json.Marshal(s.Sequences[0])
	}
	if s.Sequences == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(s.Sequences)
}

func (s *Stop) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = Stop{Sequences: []string{one}}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("stop must be a string or an array of strings")
	}
	*s = Stop{Sequences: many, array: true}
	return nil
}

// Message is one chat message.
type Message struct {
	Role       string     `json:"role"` // system, developer, user, assistant, tool
	Content    Content    `json:"content"`
	Name       string     `json:"name,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
	Refusal    string     `json:"refusal,omitempty"`
	// ReasoningContent carries a reasoning model's thinking text where the
	// upstream returns it (DeepSeek, vLLM, Anthropic thinking translated).
	ReasoningContent string `json:"reasoning_content,omitempty"`
	// Audio and FunctionCall are passed through, not interpreted.
	Audio        json.RawMessage `json:"audio,omitempty"`
	FunctionCall json.RawMessage `json:"function_call,omitempty"`
}

// Content is a message's content: a string, an array of parts, or null.
// It encodes back to the form it was decoded from.
type Content struct {
	Text  string
	Parts []ContentPart
	// IsParts: the content is an array (Parts); otherwise a string (Text).
	IsParts bool
	// Null: the content was null or absent (an assistant message with only
	// tool calls).
	Null bool
}

// TextContent returns string content.
func TextContent(s string) Content { return Content{Text: s} }

// String returns the text of the content: the string, or the text parts
// joined by newlines.
func (c Content) String() string {
	if !c.IsParts {
		return c.Text
	}
	var b []byte
	for _, p := range c.Parts {
		if p.Type == "text" {
			if len(b) > 0 {
				b = append(b, '\n')
			}
			b = append(b, p.Text...)
		}
	}
	return string(b)
}

func (c Content) MarshalJSON() ([]byte, error) {
	switch {
	case c.Null:
		return []byte("null"), nil
	case c.IsParts:
		if c.Parts == nil {
			return []byte("[]"), nil
		}
		return json.Marshal(c.Parts)
	default:
		return json.Marshal(c.Text)
	}
}

func (c *Content) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*c = Content{Null: true}
		return nil
	case b[0] == '"':
		*c = Content{}
		return json.Unmarshal(b, &c.Text)
	case b[0] == '[':
		*c = Content{IsParts: true}
		return json.Unmarshal(b, &c.Parts)
	}
	return errors.New("content must be a string, an array of content parts or null")
}

// ContentPart is one part of array content.
type ContentPart struct {
	Type       string          `json:"type"` // text, image_url, input_audio, file, refusal
	Text       string          `json:"text,omitempty"`
	ImageURL   *ImageURL       `json:"image_url,omitempty"`
	InputAudio json.RawMessage `json:"input_audio,omitempty"`
	File       json.RawMessage `json:"file,omitempty"`
	Refusal    string          `json:"refusal,omitempty"`
}

// ImageURL is an image given by URL or data: URL.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// Tool is a tool the model may call.
type Tool struct {
	Type     string       `json:"type"` // "function"
	Function FunctionDecl `json:"function"`
}

// FunctionDecl declares a function tool.
type FunctionDecl struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"` // JSON Schema
	Strict      *bool           `json:"strict,omitempty"`
}

// ToolCall is a call the model makes. In stream chunks Index says which call
// a delta extends, and ID, Type and Name come only with a call's first delta.
type ToolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"` // "function"
	Function FunctionCall `json:"function"`
}

// FunctionCall names the function called and its JSON arguments.
type FunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// ResponseFormat asks for text, any JSON object or JSON matching a schema.
type ResponseFormat struct {
	Type       string      `json:"type"` // text, json_object, json_schema
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
}

// JSONSchema is the schema of a json_schema response format.
type JSONSchema struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ChatResponse is a chat.completion object.
type ChatResponse struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"` // "chat.completion"
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	Choices           []Choice `json:"choices"`
	Usage             *Usage   `json:"usage,omitempty"`
	SystemFingerprint string   `json:"system_fingerprint,omitempty"`
	ServiceTier       string   `json:"service_tier,omitempty"`
	// Raw, when set by an OpenAI-shaped provider, is the upstream's JSON
	// of this response exactly; it is what the agent receives, unless the
	// gateway changes the response (then it must clear Raw).
	Raw []byte `json:"-"`
}

// Choice is one completion choice.
type Choice struct {
	Index        int             `json:"index"`
	Message      Message         `json:"message"`
	FinishReason string          `json:"finish_reason"` // stop, length, tool_calls, content_filter
	Logprobs     json.RawMessage `json:"logprobs,omitempty"`
}

// Finish reasons.
const (
	FinishStop          = "stop"
	FinishLength        = "length"
	FinishToolCalls     = "tool_calls"
	FinishContentFilter = "content_filter"
)

// Usage counts tokens.
type Usage struct {
	PromptTokens            int                      `json:"prompt_tokens"`
	CompletionTokens        int                      `json:"completion_tokens"`
	TotalTokens             int                      `json:"total_tokens"`
	PromptTokensDetails     *PromptTokensDetails     `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *CompletionTokensDetails `json:"completion_tokens_details,omitempty"`
	// Estimated: the gateway counted the tokens itself because the
	// upstream reported none (never sent to clients).
	Estimated bool `json:"-"`
}

// PromptTokensDetails breaks down prompt tokens.
type PromptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
	AudioTokens  int `json:"audio_tokens,omitempty"`
	// CacheCreationTokens counts tokens written to a prompt cache
	// (Anthropic, Bedrock); not an OpenAI field, omitted when zero.
	CacheCreationTokens int `json:"cache_creation_tokens,omitempty"`
}

// CompletionTokensDetails breaks down completion tokens.
type CompletionTokensDetails struct {
	ReasoningTokens          int `json:"reasoning_tokens"`
	AudioTokens              int `json:"audio_tokens,omitempty"`
	AcceptedPredictionTokens int `json:"accepted_prediction_tokens,omitempty"`
	RejectedPredictionTokens int `json:"rejected_prediction_tokens,omitempty"`
}

// ChatChunk is a chat.completion.chunk object of a stream.
type ChatChunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"` // "chat.completion.chunk"
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	Choices           []ChunkChoice `json:"choices"`
	Usage             *Usage        `json:"usage,omitempty"`
	SystemFingerprint string        `json:"system_fingerprint,omitempty"`
	ServiceTier       string        `json:"service_tier,omitempty"`
	// Raw, when set by an OpenAI-shaped provider, is the upstream's JSON of
	// this chunk exactly, written to an OpenAI client as is unless the
	// gateway changes the chunk (then it must clear Raw).
	Raw []byte `json:"-"`
}

// ChunkChoice is one choice's delta in a chunk.
type ChunkChoice struct {
	Index        int             `json:"index"`
	Delta        Delta           `json:"delta"`
	FinishReason *string         `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs,omitempty"`
}

// Delta is what a chunk adds to a choice's message.
type Delta struct {
	Role             string     `json:"role,omitempty"`
	Content          *string    `json:"content,omitempty"`
	ReasoningContent *string    `json:"reasoning_content,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
	Refusal          *string    `json:"refusal,omitempty"`
}

// EmbeddingRequest is an OpenAI embeddings request.
//
// SPEC: https://platform.openai.com/docs/api-reference/embeddings/create
type EmbeddingRequest struct {
	Model          string         `json:"model"`
	Input          EmbeddingInput `json:"input"`
	EncodingFormat string         `json:"encoding_format,omitempty"` // float, base64
	Dimensions     *int           `json:"dimensions,omitempty"`
	User           string         `json:"user,omitempty"`
}

// EmbeddingInput is the input to embed: a string, an array of strings, or
// token arrays (kept raw).
type EmbeddingInput struct {
	Texts []string
	// Raw is the input as given when it is not text (token ids).
	Raw   json.RawMessage
	array bool
}

func (in EmbeddingInput) MarshalJSON() ([]byte, error) {
	if in.Raw != nil {
		return in.Raw, nil
	}
	if !in.array && len(in.Texts) == 1 {
		return json.Marshal(in.Texts[0])
	}
	if in.Texts == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(in.Texts)
}

func (in *EmbeddingInput) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*in = EmbeddingInput{}
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		in.Texts = []string{s}
		return nil
	case len(b) > 0 && b[0] == '[':
		var ss []string
		if err := json.Unmarshal(b, &ss); err == nil {
			in.Texts, in.array = ss, true
			return nil
		}
		var toks []json.RawMessage
		if err := json.Unmarshal(b, &toks); err != nil {
			return errors.New("input must be a string, an array of strings or an array of token arrays")
		}
		in.Raw = append(json.RawMessage(nil), b...)
		in.array = true
		return nil
	}
	return errors.New("input must be a string, an array of strings or an array of token arrays")
}

// Len is the number of inputs.
func (in EmbeddingInput) Len() int {
	if in.Raw != nil {
		var toks []json.RawMessage
		json.Unmarshal(in.Raw, &toks)
		return len(toks)
	}
	return len(in.Texts)
}

// EmbeddingResponse is an OpenAI embeddings list.
type EmbeddingResponse struct {
	Object string      `json:"object"` // "list"
	Data   []Embedding `json:"data"`
	Model  string      `json:"model"`
	Usage  Usage       `json:"usage"`
}

// Embedding is one embedding; Embedding is a JSON array of floats or a
// base64 string, as the request's encoding_format asked.
type Embedding struct {
	Object    string          `json:"object"` // "embedding"
	Index     int             `json:"index"`
	Embedding json.RawMessage `json:"embedding"`
}

// Model is an entry of the model list.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "model"
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}
