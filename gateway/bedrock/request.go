package bedrock

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	smithydocument "github.com/aws/smithy-go/document"

	"aigw/gateway"
)

// converseParams are the parts of a Converse request, shared by Converse
// and ConverseStream.
type converseParams struct {
	system    []types.SystemContentBlock
	messages  []types.Message
	inference *types.InferenceConfiguration
	tools     *types.ToolConfiguration
	output    *types.OutputConfig
}

func (p *converseParams) converseInput(model string) *bedrockruntime.ConverseInput {
	return &bedrockruntime.ConverseInput{
		ModelId:         aws.String(model),
		System:          p.system,
		Messages:        p.messages,
		InferenceConfig: p.inference,
		ToolConfig:      p.tools,
		OutputConfig:    p.output,
	}
}

func (p *converseParams) streamInput(model string) *bedrockruntime.ConverseStreamInput {
	return &bedrockruntime.ConverseStreamInput{
		ModelId:         aws.String(model),
		System:          p.system,
		Messages:        p.messages,
		InferenceConfig: p.inference,
		ToolConfig:      p.tools,
		OutputConfig:    p.output,
	}
}

// translateRequest translates an OpenAI-shaped request into Converse's
// parts. It does not modify req. A request Converse cannot express is a
// *gateway.Error with status 400.
func translateRequest(req *gateway.ChatRequest) (*converseParams, error) {
	if req.Model == "" {
		return nil, gateway.Errorf("model", "model is required")
	}
	if req.N != nil && *req.N != 1 {
		return nil, gateway.Errorf("n", "n must be 1: Bedrock Converse returns one choice")
	}
	p := &converseParams{}
	hasToolBlocks, err := p.translateMessages(req.Messages)
	if err != nil {
		return nil, err
	}
	if err := p.translateInference(req); err != nil {
		return nil, err
	}
	if err := p.translateTools(req, hasToolBlocks); err != nil {
		return nil, err
	}
	if err := p.translateOutput(req); err != nil {
		return nil, err
	}
	return p, nil
}

// translateMessages fills the system blocks and the alternating turns, and
// reports whether the turns hold toolUse or toolResult blocks.
func (p *converseParams) translateMessages(msgs []gateway.Message) (hasToolBlocks bool, err error) {
	if len(msgs) == 0 {
		return false, gateway.Errorf("messages", "messages must not be empty")
	}
	add := func(role types.ConversationRole, blocks ...types.ContentBlock) {
		if n := len(p.messages); n > 0 && p.messages[n-1].Role == role {
			p.messages[n-1].Content = append(p.messages[n-1].Content, blocks...)
			return
		}
		p.messages = append(p.messages, types.Message{Role: role, Content: blocks})
	}
	for i, m := range msgs {
		param := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case "system", "developer":
			texts, err := textParts(param+".content", m.Content)
			if err != nil {
				return false, err
			}
			for _, t := range texts {
				if t != "" {
					p.system = append(p.system, &types.SystemContentBlockMemberText{Value: t})
				}
			}
		case "user":
			blocks, err := userBlocks(param+".content", m.Content)
			if err != nil {
				return false, err
			}
			if len(blocks) == 0 {
				return false, gateway.Errorf(param+".content", "%s: a user message needs content (Bedrock refuses empty messages)", param)
			}
			add(types.ConversationRoleUser, blocks...)
		case "assistant":
			blocks, err := assistantBlocks(param, m)
			if err != nil {
				return false, err
			}
			if len(blocks) == 0 {
				return false, gateway.Errorf(param+".content", "%s: an assistant message needs content or tool calls (Bedrock refuses empty messages)", param)
			}
			if len(m.ToolCalls) > 0 {
				hasToolBlocks = true
			}
			add(types.ConversationRoleAssistant, blocks...)
		case "tool":
			block, err := toolResultBlock(param, m)
			if err != nil {
				return false, err
			}
			hasToolBlocks = true
			add(types.ConversationRoleUser, block)
		case "function":
			return false, gateway.Errorf(param+".role", "%s: function messages are deprecated and not supported by the Bedrock provider; use tool messages", param)
		default:
			return false, gateway.Errorf(param+".role", "%s: unknown role %q", param, m.Role)
		}
	}
	if len(p.messages) == 0 {
		return false, gateway.Errorf("messages", "messages must hold at least one user message")
	}
	return hasToolBlocks, nil
}

// textParts returns the texts of a content that may hold only text.
func textParts(param string, c gateway.Content) ([]string, error) {
	if !c.IsParts {
		return []string{c.Text}, nil
	}
	texts := make([]string, 0, len(c.Parts))
	for j, part := range c.Parts {
		if part.Type != "text" {
			return nil, gateway.Errorf(fmt.Sprintf("%s[%d].type", param, j), "%s[%d]: content part type %q is not supported here, only text", param, j, part.Type)
		}
		texts = append(texts, part.Text)
	}
	return texts, nil
}

func userBlocks(param string, c gateway.Content) ([]types.ContentBlock, error) {
	if !c.IsParts {
		if c.Text == "" {
			return nil, nil
		}
		return []types.ContentBlock{&types.ContentBlockMemberText{Value: c.Text}}, nil
	}
	blocks := make([]types.ContentBlock, 0, len(c.Parts))
	for j, part := range c.Parts {
		pp := fmt.Sprintf("%s[%d]", param, j)
		switch part.Type {
		case "text":
			if part.Text != "" {
				blocks = append(blocks, &types.ContentBlockMemberText{Value: part.Text})
			}
		case "image_url":
			if part.ImageURL == nil {
				return nil, gateway.Errorf(pp+".image_url", "%s: image_url is required", pp)
			}
			img, err := imageBlock(pp+".image_url.url", part.ImageURL.URL)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, &types.ContentBlockMemberImage{Value: img})
		default:
			return nil, gateway.Errorf(pp+".type", "%s: content part type %q is not supported by the Bedrock provider", pp, part.Type)
		}
	}
	return blocks, nil
}

// imageFormats maps data: URL media types to Converse image formats.
var imageFormats = map[string]types.ImageFormat{
	"image/png":  types.ImageFormatPng,
	"image/jpeg": types.ImageFormatJpeg,
	"image/jpg":  types.ImageFormatJpeg,
	"image/gif":  types.ImageFormatGif,
	"image/webp": types.ImageFormatWebp,
}

// imageBlock decodes a base64 data: URL into an image block.
func imageBlock(param, u string) (types.ImageBlock, error) {
	scheme, rest, _ := strings.Cut(u, ":")
	switch strings.ToLower(scheme) {
	case "data":
	case "http", "https":
		return types.ImageBlock{}, gateway.Errorf(param, "Bedrock Converse takes image bytes and the gateway does not fetch image URLs: send the image as a base64 data: URL (data:image/png;base64,...)")
	default:
		return types.ImageBlock{}, gateway.Errorf(param, "unsupported image URL: send the image as a base64 data: URL (data:image/png;base64,...)")
	}
	meta, data, ok := strings.Cut(rest, ",")
	mediaType, params, _ := strings.Cut(meta, ";")
	if !ok || !strings.Contains(";"+params+";", ";base64;") {
		return types.ImageBlock{}, gateway.Errorf(param, "image data: URL must be base64-encoded (data:image/png;base64,...)")
	}
	format, known := imageFormats[strings.ToLower(strings.TrimSpace(mediaType))]
	if !known {
		return types.ImageBlock{}, gateway.Errorf(param, "image type %q is not supported by Bedrock Converse: use png, jpeg, gif or webp", mediaType)
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(data, "="))
	}
	if err != nil || len(b) == 0 {
		return types.ImageBlock{}, gateway.Errorf(param, "image data: URL does not hold valid base64 data")
	}
	return types.ImageBlock{Format: format, Source: &types.ImageSourceMemberBytes{Value: b}}, nil
}

func assistantBlocks(param string, m gateway.Message) ([]types.ContentBlock, error) {
	var blocks []types.ContentBlock
	if !m.Content.IsParts {
		if m.Content.Text != "" {
			blocks = append(blocks, &types.ContentBlockMemberText{Value: m.Content.Text})
		}
	} else {
		for j, part := range m.Content.Parts {
			var t string
			switch part.Type {
			case "text":
				t = part.Text
			case "refusal":
				t = part.Refusal
			default:
				pp := fmt.Sprintf("%s.content[%d]", param, j)
				return nil, gateway.Errorf(pp+".type", "%s: content part type %q is not supported in assistant messages", pp, part.Type)
			}
			if t != "" {
				blocks = append(blocks, &types.ContentBlockMemberText{Value: t})
			}
		}
	}
	for j, tc := range m.ToolCalls {
		pp := fmt.Sprintf("%s.tool_calls[%d]", param, j)
		if tc.Type != "" && tc.Type != "function" {
			return nil, gateway.Errorf(pp+".type", "%s: tool call type %q is not supported, only function", pp, tc.Type)
		}
		if tc.ID == "" || tc.Function.Name == "" {
			return nil, gateway.Errorf(pp, "%s: a tool call needs an id and a function name", pp)
		}
		input, err := toolInput(tc.Function.Arguments)
		if err != nil {
			return nil, gateway.Errorf(pp+".function.arguments", "%s: arguments are not valid JSON: %v", pp, err)
		}
		blocks = append(blocks, &types.ContentBlockMemberToolUse{Value: types.ToolUseBlock{
			ToolUseId: aws.String(tc.ID),
			Name:      aws.String(tc.Function.Name),
			Input:     input,
		}})
	}
	return blocks, nil
}

// toolInput turns a call's JSON arguments into a document; empty arguments
// are an empty object.
func toolInput(args string) (document.Interface, error) {
	if strings.TrimSpace(args) == "" {
		return document.NewLazyDocument(map[string]any{}), nil
	}
	v, err := decodeJSON([]byte(args))
	if err != nil {
		return nil, err
	}
	return document.NewLazyDocument(v), nil
}

func toolResultBlock(param string, m gateway.Message) (types.ContentBlock, error) {
	if m.ToolCallID == "" {
		return nil, gateway.Errorf(param+".tool_call_id", "%s: tool_call_id is required", param)
	}
	texts, err := textParts(param+".content", m.Content)
	if err != nil {
		return nil, err
	}
	content := make([]types.ToolResultContentBlock, 0, len(texts))
	for _, t := range texts {
		content = append(content, &types.ToolResultContentBlockMemberText{Value: t})
	}
	return &types.ContentBlockMemberToolResult{Value: types.ToolResultBlock{
		ToolUseId: aws.String(m.ToolCallID),
		Content:   content,
	}}, nil
}

func (p *converseParams) translateInference(req *gateway.ChatRequest) error {
	var ic types.InferenceConfiguration
	set := false
	if n := req.MaxOutputTokens(); n != 0 {
		if n < 0 || n > math.MaxInt32 {
			return gateway.Errorf("max_completion_tokens", "max_completion_tokens must be a positive integer")
		}
		ic.MaxTokens, set = aws.Int32(int32(n)), true
	}
	if req.Temperature != nil {
		ic.Temperature, set = aws.Float32(float32(*req.Temperature)), true
	}
	if req.TopP != nil {
		ic.TopP, set = aws.Float32(float32(*req.TopP)), true
	}
	if req.Stop != nil && len(req.Stop.Sequences) > 0 {
		ic.StopSequences, set = append([]string(nil), req.Stop.Sequences...), true
	}
	if set {
		p.inference = &ic
	}
	return nil
}

func (p *converseParams) translateTools(req *gateway.ChatRequest, hasToolBlocks bool) error {
	choice, forced, err := parseToolChoice(req.ToolChoice)
	if err != nil {
		return err
	}
	if len(req.Tools) == 0 {
		if choice == "required" || choice == "function" {
			return gateway.Errorf("tool_choice", "tool_choice %s needs tools", choice)
		}
		return nil
	}
	if choice == "none" && !hasToolBlocks {
		return nil
	}
	tc := &types.ToolConfiguration{Tools: make([]types.Tool, 0, len(req.Tools))}
	found := false
	for i, t := range req.Tools {
		param := fmt.Sprintf("tools[%d]", i)
		if t.Type != "function" {
			return gateway.Errorf(param+".type", "%s: tool type %q is not supported by the Bedrock provider, only function", param, t.Type)
		}
		if t.Function.Name == "" {
			return gateway.Errorf(param+".function.name", "%s: function name is required", param)
		}
		found = found || t.Function.Name == forced
		schema := any(map[string]any{"type": "object", "properties": map[string]any{}})
		if raw := bytes.TrimSpace(t.Function.Parameters); len(raw) > 0 && string(raw) != "null" {
			v, err := decodeJSON(raw)
			if err != nil {
				return gateway.Errorf(param+".function.parameters", "%s: parameters are not valid JSON: %v", param, err)
			}
			if _, ok := v.(map[string]any); !ok {
				return gateway.Errorf(param+".function.parameters", "%s: parameters must be a JSON Schema object", param)
			}
			schema = v
		}
		spec := types.ToolSpecification{
			Name:        aws.String(t.Function.Name),
			InputSchema: &types.ToolInputSchemaMemberJson{Value: document.NewLazyDocument(schema)},
			Strict:      t.Function.Strict,
		}
		if t.Function.Description != "" {
			spec.Description = aws.String(t.Function.Description)
		}
		tc.Tools = append(tc.Tools, &types.ToolMemberToolSpec{Value: spec})
	}
	switch choice {
	case "auto":
		tc.ToolChoice = &types.ToolChoiceMemberAuto{}
	case "required":
		tc.ToolChoice = &types.ToolChoiceMemberAny{}
	case "function":
		if !found {
			return gateway.Errorf("tool_choice", "tool_choice names function %q, which is not among the tools", forced)
		}
		tc.ToolChoice = &types.ToolChoiceMemberTool{Value: types.SpecificToolChoice{Name: aws.String(forced)}}
	}
	p.tools = tc
	return nil
}

// parseToolChoice reads tool_choice: "" (absent), none, auto, required, or
// function with the forced function's name.
func parseToolChoice(raw json.RawMessage) (choice, name string, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "none", "auto", "required":
			return s, "", nil
		}
		return "", "", gateway.Errorf("tool_choice", "tool_choice %q is not one of none, auto, required", s)
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Type != "function" || obj.Function.Name == "" {
		return "", "", gateway.Errorf("tool_choice", `tool_choice must be none, auto, required or {"type":"function","function":{"name":...}}`)
	}
	return "function", obj.Function.Name, nil
}

// efforts maps OpenAI's reasoning_effort to Converse's outputConfig.effort.
var efforts = map[string]string{
	"minimal": "low",
	"low":     "low",
	"medium":  "medium",
	"high":    "high",
	"xhigh":   "xhigh",
}

func (p *converseParams) translateOutput(req *gateway.ChatRequest) error {
	var oc types.OutputConfig
	set := false
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text", "json_object":
			// Converse has no schemaless JSON mode; see the package doc.
		case "json_schema":
			if rf.JSONSchema == nil || len(bytes.TrimSpace(rf.JSONSchema.Schema)) == 0 {
				return gateway.Errorf("response_format.json_schema.schema", "response_format json_schema needs a schema")
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, rf.JSONSchema.Schema); err != nil {
				return gateway.Errorf("response_format.json_schema.schema", "response_format schema is not valid JSON: %v", err)
			}
			def := types.JsonSchemaDefinition{Schema: aws.String(compact.String())}
			if rf.JSONSchema.Name != "" {
				def.Name = aws.String(rf.JSONSchema.Name)
			}
			if rf.JSONSchema.Description != "" {
				def.Description = aws.String(rf.JSONSchema.Description)
			}
			oc.TextFormat = &types.OutputFormat{
				Type:      types.OutputFormatTypeJsonSchema,
				Structure: &types.OutputFormatStructureMemberJsonSchema{Value: def},
			}
			set = true
		default:
			return gateway.Errorf("response_format.type", "response_format type %q is not one of text, json_object, json_schema", rf.Type)
		}
	}
	switch e := req.ReasoningEffort; e {
	case "", "none":
	default:
		effort, ok := efforts[e]
		if !ok {
			return gateway.Errorf("reasoning_effort", "reasoning_effort %q is not one of none, minimal, low, medium, high, xhigh", e)
		}
		oc.Effort, set = aws.String(effort), true
	}
	if set {
		p.output = &oc
	}
	return nil
}

// decodeJSON decodes one JSON value keeping numbers exact, as the document
// encoder of the SDK needs them (smithy document numbers).
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return toDocument(v), nil
}

// toDocument replaces json.Number values (which the SDK's document encoder
// would write as strings) with smithy document numbers.
func toDocument(v any) any {
	switch x := v.(type) {
	case json.Number:
		return smithydocument.Number(x)
	case map[string]any:
		for k, e := range x {
			x[k] = toDocument(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = toDocument(e)
		}
		return x
	}
	return v
}
