package gemini

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"

	"aigw/gateway"
)

// maxEmbedBatch is the most requests batchEmbedContents takes at once;
// larger inputs are sent in several calls.
const maxEmbedBatch = 100

// Embed makes embeddings with batchEmbedContents. Only text input is
// supported (Gemini has no token-id input). Gemini reports no usage for
// embeddings, so prompt tokens are estimated with gateway.EstimateTokens
// and the usage is marked Estimated.
//
// SPEC: https://ai.google.dev/api/embeddings#method:-models.batchembedcontents
func (p *Provider) Embed(ctx context.Context, req *gateway.EmbeddingRequest) (*gateway.EmbeddingResponse, error) {
	if req.Input.Raw != nil {
		return nil, gateway.Errorf("input", "Gemini embeds text only; token-array input is not supported")
	}
	if len(req.Input.Texts) == 0 {
		return nil, gateway.Errorf("input", "input must not be empty")
	}
	for i, t := range req.Input.Texts {
		if t == "" {
			return nil, gateway.Errorf("input", "input[%d] is empty; Gemini embeds no empty text", i)
		}
	}
	base64Out := false
	switch req.EncodingFormat {
	case "", "float":
	case "base64":
		base64Out = true
	default:
		return nil, gateway.Errorf("encoding_format", "encoding_format %q is not float or base64", req.EncodingFormat)
	}
	if req.Dimensions != nil && *req.Dimensions <= 0 {
		return nil, gateway.Errorf("dimensions", "dimensions must be positive")
	}
	res, err := resource(req.Model)
	if err != nil {
		return nil, err
	}
	out := &gateway.EmbeddingResponse{Object: "list", Model: req.Model, Data: make([]gateway.Embedding, 0, len(req.Input.Texts))}
	for start := 0; start < len(req.Input.Texts); start += maxEmbedBatch {
		texts := req.Input.Texts[start:min(start+maxEmbedBatch, len(req.Input.Texts))]
		values, err := p.embedBatch(ctx, res, texts, req.Dimensions)
		if err != nil {
			return nil, err
		}
		for i, v := range values {
			e, err := encodeEmbedding(v, base64Out)
			if err != nil {
				return nil, fmt.Errorf("gemini %s: encode embedding: %w", p.name, err)
			}
			out.Data = append(out.Data, gateway.Embedding{Object: "embedding", Index: start + i, Embedding: e})
		}
	}
	for _, t := range req.Input.Texts {
		out.Usage.PromptTokens += gateway.EstimateTokens(t)
	}
	out.Usage.TotalTokens = out.Usage.PromptTokens
	out.Usage.Estimated = true
	return out, nil
}

// embedBatch embeds up to maxEmbedBatch texts in one call.
func (p *Provider) embedBatch(ctx context.Context, res string, texts []string, dims *int) ([][]float32, error) {
	br := batchEmbedRequest{Requests: make([]embedRequest, len(texts))}
	for i, t := range texts {
		br.Requests[i] = embedRequest{Model: res, Content: content{Parts: []part{{Text: t}}}, OutputDimensionality: dims}
	}
	resp, err := p.post(ctx, res+":batchEmbedContents", br)
	if err != nil {
		return nil, err
	}
	defer gateway.DrainBody(resp.Body)
	var out batchEmbedResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&out); err != nil {
		return nil, fmt.Errorf("gemini %s: decode batchEmbedContents response: %w", p.name, err)
	}
	if len(out.Embeddings) != len(texts) {
		return nil, fmt.Errorf("gemini %s: batchEmbedContents returned %d embeddings for %d inputs", p.name, len(out.Embeddings), len(texts))
	}
	values := make([][]float32, len(texts))
	for i, e := range out.Embeddings {
		values[i] = e.Values
	}
	return values, nil
}

// encodeEmbedding renders a vector as a JSON array of floats, or as OpenAI
// does for encoding_format base64: the float32 values little-endian,
// base64 encoded, as a JSON string.
func encodeEmbedding(v []float32, b64 bool) (json.RawMessage, error) {
	if b64 {
		raw := make([]byte, 4*len(v))
		for i, f := range v {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
		}
		return json.Marshal(base64.StdEncoding.EncodeToString(raw))
	}
	b := make([]byte, 0, 2+12*len(v))
	b = append(b, '[')
	for i, f := range v {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return nil, fmt.Errorf("value %d is not finite", i)
		}
		b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
	}
	return append(b, ']'), nil
}
