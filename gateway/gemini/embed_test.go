package gemini

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"testing"

	"aigw/gateway"
	"aigw/gateway/providertest"
)

// vector decodes an embedding in either encoding.
func vector(t *testing.T, raw json.RawMessage, b64 bool) []float32 {
	t.Helper()
	if !b64 {
		var v []float32
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("float embedding %s: %v", raw, err)
		}
		return v
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("base64 embedding %s: %v", raw, err)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%4 != 0 {
		t.Fatalf("base64 embedding %q: %v", s, err)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func TestEmbed(t *testing.T) {
	dims := 5
	for _, test := range []struct {
		name   string
		texts  []string
		format string
		dims   *int
		calls  int
	}{
		{"Float", []string{"hello", "wörld"}, "", nil, 1},
		{"FloatExplicit", []string{"one"}, "float", nil, 1},
		{"Base64", []string{"hello", "wörld", "日本語"}, "base64", nil, 1},
		{"Dimensions", []string{"hello"}, "base64", &dims, 1},
		{"Batches", make([]string, 205), "", &dims, 3},
	} {
		t.Run(test.name, func(t *testing.T) {
			for i := range test.texts {
				if test.texts[i] == "" && test.name == "Batches" {
					test.texts[i] = fmt.Sprintf("text %d", i)
				}
			}
			p, fake := newProvider(t, providertest.GeminiAPIKey)
			resp, err := p.Embed(context.Background(), &gateway.EmbeddingRequest{
				Model:          "gemini-embedding-001",
				Input:          gateway.EmbeddingInput{Texts: test.texts},
				EncodingFormat: test.format,
				Dimensions:     test.dims,
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Object != "list" || resp.Model != "gemini-embedding-001" || len(resp.Data) != len(test.texts) {
				t.Fatalf("response %+v", resp)
			}
			want := 0
			for i, d := range resp.Data {
				n := 0
				if test.dims != nil {
					n = *test.dims
				}
				got, exp := vector(t, d.Embedding, test.format == "base64"), providertest.GeminiEmbedding(test.texts[i], n)
				if d.Object != "embedding" || d.Index != i || fmt.Sprint(got) != fmt.Sprint(exp) {
					t.Fatalf("data[%d] = %+v: %v; want %v", i, d, got, exp)
				}
				want += gateway.EstimateTokens(test.texts[i])
			}
			if u := resp.Usage; !u.Estimated || u.PromptTokens != want || u.TotalTokens != want || u.CompletionTokens != 0 {
				t.Errorf("usage %+v; want %d estimated", u, want)
			}
			reqs := fake.Requests()
			if len(reqs) != test.calls {
				t.Fatalf("%d calls; want %d", len(reqs), test.calls)
			}
			if reqs[0].Path != "/v1beta/models/gemini-embedding-001:batchEmbedContents" {
				t.Errorf("path %s", reqs[0].Path)
			}
			var sent batchEmbedRequest
			json.Unmarshal(reqs[0].Body, &sent)
			if r := sent.Requests[0]; r.Model != "models/gemini-embedding-001" || r.Content.Parts[0].Text != test.texts[0] ||
				(test.dims == nil) != (r.OutputDimensionality == nil) {
				t.Errorf("sent %s", reqs[0].Body)
			}
		})
	}
}

func TestEmbedErrors(t *testing.T) {
	var tokens gateway.EmbeddingInput
	if err := json.Unmarshal([]byte(`[[1,2,3]]`), &tokens); err != nil {
		t.Fatal(err)
	}
	zero := 0
	for _, test := range []struct {
		name  string
		req   gateway.EmbeddingRequest
		param string
	}{
		{"Tokens", gateway.EmbeddingRequest{Model: "m", Input: tokens}, "input"},
		{"Empty", gateway.EmbeddingRequest{Model: "m"}, "input"},
		{"EmptyText", gateway.EmbeddingRequest{Model: "m", Input: gateway.EmbeddingInput{Texts: []string{"a", ""}}}, "input"},
		{"Format", gateway.EmbeddingRequest{Model: "m", Input: gateway.EmbeddingInput{Texts: []string{"a"}}, EncodingFormat: "int8"}, "encoding_format"},
		{"Dimensions", gateway.EmbeddingRequest{Model: "m", Input: gateway.EmbeddingInput{Texts: []string{"a"}}, Dimensions: &zero}, "dimensions"},
	} {
		t.Run(test.name, func(t *testing.T) {
			p, fake := newProvider(t, providertest.GeminiAPIKey)
			_, err := p.Embed(context.Background(), &test.req)
			var ge *gateway.Error
			if !errors.As(err, &ge) || ge.Status != 400 || ge.Param != test.param {
				t.Fatalf("err = %v", err)
			}
			if len(fake.Requests()) != 0 {
				t.Error("the request reached the upstream")
			}
		})
	}

	p, fake := newProvider(t, providertest.GeminiAPIKey)
	fake.Push(providertest.Fault{Status: 429, RetryAfter: "2"})
	_, err := p.Embed(context.Background(), &gateway.EmbeddingRequest{Model: "m", Input: gateway.EmbeddingInput{Texts: []string{"a"}}})
	var pe *gateway.ProviderError
	if !errors.As(err, &pe) || pe.Status != 429 || pe.RetryAfter != 2e9 {
		t.Fatalf("err = %v", err)
	}

	for _, body := range []string{`{"embeddings":[]}`, `{"embeddings":[{"values":[1,2]},{"values":[3]}]}`, `not json`} {
		p := rawServer(t, 200, nil, body)
		if _, err := p.Embed(context.Background(), &gateway.EmbeddingRequest{Model: "m", Input: gateway.EmbeddingInput{Texts: []string{"a"}}}); err == nil {
			t.Errorf("answer %s: no error", body)
		}
	}
}

func TestEncodeEmbedding(t *testing.T) {
	v := []float32{0, 1, -0.5, 1e-7, 3.4028235e38}
	b, err := encodeEmbedding(v, false)
	if err != nil || string(b) != "[0,1,-0.5,1e-07,3.4028235e+38]" {
		t.Fatalf("float = %s, %v", b, err)
	}
	b, err = encodeEmbedding(v, true)
	if err != nil || fmt.Sprint(vector(t, b, true)) != fmt.Sprint(v) {
		t.Fatalf("base64 = %s, %v", b, err)
	}
	// The base64 encoding OpenAI documents: [1.0] is 0x3f800000 little-endian.
	if b, _ := encodeEmbedding([]float32{1}, true); string(b) != `"AACAPw=="` {
		t.Errorf("base64 of [1] = %s", b)
	}
	if _, err := encodeEmbedding([]float32{float32(math.NaN())}, false); err == nil {
		t.Error("NaN encoded")
	}
}
