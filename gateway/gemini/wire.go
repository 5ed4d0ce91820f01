package gemini

import "encoding/json"

// The Gemini API's wire types, as far as the gateway uses them. Field names
// follow the REST reference (lowerCamelCase proto JSON).
//
// SPEC: https://ai.google.dev/api/generate-content
// SPEC: https://ai.google.dev/api/caching#Content
// SPEC: https://ai.google.dev/api/embeddings

// generateRequest is a GenerateContentRequest (the model is in the path).
type generateRequest struct {
	Contents          []content         `json:"contents"`
	SystemInstruction *content          `json:"systemInstruction,omitempty"`
	Tools             []tool            `json:"tools,omitempty"`
	ToolConfig        *toolConfig       `json:"toolConfig,omitempty"`
	GenerationConfig  *generationConfig `json:"generationConfig,omitempty"`
}

// content is a Content: one turn of a conversation.
type content struct {
	Role  string `json:"role,omitempty"` // user, model
	Parts []part `json:"parts"`
}

// part is a Part; exactly one of its data fields is set. The gateway never
// sends an empty text part (the API refuses them), so Text can omit empty.
type part struct {
	Text             string            `json:"text,omitempty"`
	InlineData       *blob             `json:"inlineData,omitempty"`
	FileData         *fileData         `json:"fileData,omitempty"`
	FunctionCall     *functionCall     `json:"functionCall,omitempty"`
	FunctionResponse *functionResponse `json:"functionResponse,omitempty"`
	// Thought marks a part of the model's thinking (a thought summary).
	Thought bool `json:"thought,omitempty"`
	// ThoughtSignature is the opaque signature of the model's thinking
	// that Gemini 3 requires back on function-call turns.
	ThoughtSignature string `json:"thoughtSignature,omitempty"`
}

// blob is inline bytes, base64 encoded.
type blob struct {
	MIMEType string `json:"mimeType"`
	Data     string `json:"data"`
}

// fileData refers to data by URI (Files API, or a public URL).
type fileData struct {
	MIMEType string `json:"mimeType,omitempty"`
	FileURI  string `json:"fileUri"`
}

// functionCall is a call the model makes.
type functionCall struct {
	ID   string          `json:"id,omitempty"`
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

// functionResponse is the result of a function call.
type functionResponse struct {
	ID       string          `json:"id,omitempty"`
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

// tool is a Tool holding function declarations.
type tool struct {
	FunctionDeclarations []functionDeclaration `json:"functionDeclarations"`
}

// functionDeclaration declares a function; its parameters are given as
// plain JSON Schema (parametersJsonSchema), not the OpenAPI subset of
// "parameters", so OpenAI tool schemas pass unchanged.
type functionDeclaration struct {
	Name                 string          `json:"name"`
	Description          string          `json:"description,omitempty"`
	ParametersJSONSchema json.RawMessage `json:"parametersJsonSchema,omitempty"`
}

type toolConfig struct {
	FunctionCallingConfig functionCallingConfig `json:"functionCallingConfig"`
}

type functionCallingConfig struct {
	Mode                 string   `json:"mode"` // AUTO, ANY, NONE
	AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
}

type generationConfig struct {
	StopSequences      []string        `json:"stopSequences,omitempty"`
	ResponseMIMEType   string          `json:"responseMimeType,omitempty"`
	ResponseJSONSchema json.RawMessage `json:"responseJsonSchema,omitempty"`
	CandidateCount     *int            `json:"candidateCount,omitempty"`
	MaxOutputTokens    *int            `json:"maxOutputTokens,omitempty"`
	Temperature        *float64        `json:"temperature,omitempty"`
	TopP               *float64        `json:"topP,omitempty"`
	Seed               *int32          `json:"seed,omitempty"`
	PresencePenalty    *float64        `json:"presencePenalty,omitempty"`
	FrequencyPenalty   *float64        `json:"frequencyPenalty,omitempty"`
	ThinkingConfig     *thinkingConfig `json:"thinkingConfig,omitempty"`
}

// thinkingConfig sets a thinking budget (Gemini 2.x) or level (Gemini 3);
// the API refuses both at once.
type thinkingConfig struct {
	IncludeThoughts bool   `json:"includeThoughts,omitempty"`
	ThinkingBudget  *int   `json:"thinkingBudget,omitempty"`
	ThinkingLevel   string `json:"thinkingLevel,omitempty"`
}

// generateResponse is a GenerateContentResponse; a streamed answer is a
// sequence of them, each carrying the parts generated since the previous
// one. Error is set instead when the stream carries an error object.
type generateResponse struct {
	Candidates     []candidate     `json:"candidates"`
	PromptFeedback *promptFeedback `json:"promptFeedback"`
	UsageMetadata  *usageMetadata  `json:"usageMetadata"`
	ModelVersion   string          `json:"modelVersion"`
	ResponseID     string          `json:"responseId"`
	Error          *apiError       `json:"error"`
}

type candidate struct {
	Content      *content `json:"content"`
	FinishReason string   `json:"finishReason"`
	Index        int      `json:"index"`
}

type promptFeedback struct {
	BlockReason string `json:"blockReason"`
}

type usageMetadata struct {
	PromptTokenCount        int `json:"promptTokenCount"`
	CachedContentTokenCount int `json:"cachedContentTokenCount"`
	CandidatesTokenCount    int `json:"candidatesTokenCount"`
	ToolUsePromptTokenCount int `json:"toolUsePromptTokenCount"`
	ThoughtsTokenCount      int `json:"thoughtsTokenCount"`
	TotalTokenCount         int `json:"totalTokenCount"`
}

// errorBody is Google's error shape: {"error":{"code","message","status","details"}}.
type errorBody struct {
	Error *apiError `json:"error"`
}

type apiError struct {
	Code    int           `json:"code"`
	Message string        `json:"message"`
	Status  string        `json:"status"` // google.rpc.Code name, e.g. RESOURCE_EXHAUSTED
	Details []errorDetail `json:"details"`
}

// errorDetail is one google.rpc detail message; only the fields of
// RetryInfo and ErrorInfo are read.
type errorDetail struct {
	Type       string `json:"@type"`
	RetryDelay string `json:"retryDelay"` // RetryInfo, a Duration: "30s", "1.5s"
	Reason     string `json:"reason"`     // ErrorInfo, e.g. API_KEY_INVALID
}

// batchEmbedRequest is a BatchEmbedContentsRequest.
type batchEmbedRequest struct {
	Requests []embedRequest `json:"requests"`
}

type embedRequest struct {
	Model                string  `json:"model"` // models/<model>, as in the path
	Content              content `json:"content"`
	OutputDimensionality *int    `json:"outputDimensionality,omitempty"`
}

type batchEmbedResponse struct {
	Embeddings []struct {
		Values []float32 `json:"values"`
	} `json:"embeddings"`
}
