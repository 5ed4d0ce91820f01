// Package bedrock is the gateway's AWS Bedrock provider. It speaks the
// Converse and ConverseStream APIs through the official
// aws-sdk-go-v2 bedrockruntime client (which signs requests with SigV4 and
// decodes the binary event stream) and translates between them and the
// OpenAI Chat Completions shape of package gateway.
//
// The upstream model name of a request is the Bedrock modelId: a base model
// id (anthropic.claude-3-5-sonnet-20241022-v2:0), an inference profile id
// (us.anthropic.claude-3-5-sonnet-20241022-v2:0) or an ARN.
//
// Translation, OpenAI to Converse:
//   - system and developer messages, wherever they are, become the system
//     blocks, in order;
//   - user and assistant messages become content blocks (text; images from
//     base64 data: URLs, png/jpeg/gif/webp; assistant tool_calls become
//     toolUse blocks), and tool messages become toolResult blocks of a user
//     turn; consecutive messages of one role are merged into one turn, as
//     Converse needs alternating roles. http(s) image URLs are refused with
//     a 400 (Converse takes image bytes, and the gateway does not fetch
//     URLs). An assistant's reasoning_content is not sent back: Converse
//     needs the model's signature with it, which OpenAI messages do not
//     carry.
//   - tools become toolConfig.tools[].toolSpec; tool_choice auto, required
//     and {function} become toolChoice auto, any and tool. tool_choice none
//     leaves tools out, unless the conversation already holds toolUse or
//     toolResult blocks: Converse refuses those without a toolConfig, so the
//     tools are then sent without a toolChoice (Converse cannot forbid
//     calls).
//   - max_completion_tokens/max_tokens, temperature, top_p and stop become
//     inferenceConfig; n other than 1 is refused (Converse makes one
//     choice).
//   - response_format json_schema becomes Converse's native structured
//     output, outputConfig.textFormat {type json_schema, structure.jsonSchema
//     {schema, name, description}}; the answer comes back as text. Converse
//     has no schemaless JSON mode, so response_format json_object is not
//     sent (ask for json_schema to constrain the output). reasoning_effort
//     low/medium/high/xhigh (minimal as low) becomes outputConfig.effort.
//   - seed, penalties, logprobs, user and the other OpenAI-only fields are
//     not sent.
//
// Back: text blocks are joined into content, toolUse blocks become
// tool_calls (the toolUseId as id, the input as compact JSON arguments),
// reasoningContent becomes reasoning_content. Stop reasons end_turn and
// stop_sequence map to stop, max_tokens and model_context_window_exceeded
// to length, tool_use to tool_calls, guardrail_intervened and
// content_filtered to content_filter, anything else to stop. Usage:
// prompt_tokens is inputTokens plus the cache read and write tokens
// (Bedrock counts them apart), cached_tokens the cache reads,
// cache_creation_tokens the cache writes, total_tokens prompt plus
// completion.
//
// Streaming: messageStart yields the first chunk (the role), a toolUse
// contentBlockStart a tool_calls delta (index, id, type function, name),
// contentBlockDelta text, toolUse input and reasoning text the matching
// deltas, messageStop the finish_reason chunk and metadata a last chunk
// with the usage and no choices. Next returns io.EOF only once Bedrock
// closed the stream after both messageStop and metadata; Bedrock always
// sends metadata last, so a stream without it counts as cut.
//
// Errors: an error status is a *gateway.ProviderError with the status, the
// Bedrock error code (ThrottlingException, ValidationException, ...) as
// Type, the message and Retry-After; an exception inside a stream is one
// too, with the status the API reference gives its code (throttling 429,
// serviceUnavailable 503, internalServer 500, validation 400, modelStream
// 424). A canceled or expired context stays recognisable by errors.Is.
//
// The SDK's own retries are off (aws.NopRetryer): the gateway's router
// retries and falls back.
package bedrock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/schemas"
	"github.com/aws/smithy-go/middleware"
	"github.com/aws/smithy-go/transport/http/protocol/restjson1"
	"github.com/google/uuid"

	"aigw/gateway"
)

// DefaultName is the provider name used when Config.Name is empty.
const DefaultName = "bedrock"

// Config configures a Bedrock provider.
//
// The credentials are static and required: the gateway does not fall back to
// the AWS default credential chain (environment, shared files, instance
// roles), so what a provider uses is what its configuration says. Mapping
// environment variables onto Config is the command's job.
type Config struct {
	// Name identifies the provider in errors and ledger events; empty means
	// DefaultName.
	Name string
	// Region is the AWS region, e.g. us-east-1. Required: it scopes the
	// SigV4 signature and picks the endpoint.
	Region string
	// BaseURL overrides the endpoint (a VPC endpoint, a proxy, a test
	// server); empty means the regional endpoint,
	// https://bedrock-runtime.<region>.amazonaws.com.
	BaseURL string
	// AccessKeyID and SecretAccessKey are the AWS credentials (required);
	// SessionToken is set for temporary credentials.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// HTTPClient sends the requests; nil means a client with a pooled
	// transport (256 idle connections per host) and no overall timeout, as
	// streams are long: calls are bounded by their context.
	HTTPClient *http.Client
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Region == "" {
		return errors.New("bedrock: region is required")
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return errors.New("bedrock: access key id and secret access key are required (the default AWS credential chain is not used)")
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil {
			return fmt.Errorf("bedrock: base url: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("bedrock: base url %q must be an absolute http or https URL", c.BaseURL)
		}
	}
	return nil
}

// LogValue logs the configuration without its credentials.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", c.Name),
		slog.String("region", c.Region),
		slog.String("base_url", c.BaseURL),
		slog.String("credentials", "REDACTED"),
	)
}

// String formats the configuration without its credentials.
func (c Config) String() string {
	return fmt.Sprintf("bedrock.Config{Name:%q Region:%q BaseURL:%q credentials:REDACTED}", c.Name, c.Region, c.BaseURL)
}

// GoString formats the configuration without its credentials (%#v).
func (c Config) GoString() string { return c.String() }

// Provider is a Bedrock upstream speaking Converse and ConverseStream. It is
// safe for concurrent use.
type Provider struct {
	name   string
	client *bedrockruntime.Client
}

var _ gateway.Provider = (*Provider)(nil)

// New returns a Bedrock provider. The context is not kept: the credentials
// are static, so nothing is resolved at construction.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	name := cfg.Name
	if name == "" {
		name = DefaultName
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient()
	}
	opts := bedrockruntime.Options{
		Region:      cfg.Region,
		Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken),
		HTTPClient:  recordingClient{hc},
		Retryer:     aws.NopRetryer{},
	}
	if cfg.BaseURL != "" {
		opts.BaseEndpoint = aws.String(cfg.BaseURL)
	}
	client := bedrockruntime.New(opts, func(o *bedrockruntime.Options) {
		// The SDK switches to bearer auth when AWS_BEARER_TOKEN_BEDROCK is
		// set in the environment; the configured keys win.
		o.BearerAuthTokenProvider = nil
		o.AuthSchemePreference = []string{"sigv4"}
	})
	return &Provider{name: name, client: client}, nil
}

// Name is the provider's name.
func (p *Provider) Name() string { return p.name }

// Chat makes a non-streaming completion with Converse.
func (p *Provider) Chat(ctx context.Context, req *gateway.ChatRequest) (*gateway.ChatResponse, error) {
	params, err := translateRequest(req)
	if err != nil {
		return nil, err
	}
	out, err := p.client.Converse(ctx, params.converseInput(req.Model))
	if err != nil {
		return nil, p.callError(ctx, "converse", err)
	}
	resp, err := chatResponse(completionID(out.ResultMetadata), req.Model, time.Now().Unix(), out)
	if err != nil {
		return nil, fmt.Errorf("%s: converse: %w", p.name, err)
	}
	return resp, nil
}

// ChatStream starts a streamed completion with ConverseStream. It returns
// once Bedrock answered with a success status; an error status is returned
// as a *gateway.ProviderError.
func (p *Provider) ChatStream(ctx context.Context, req *gateway.ChatRequest) (gateway.Stream, error) {
	params, err := translateRequest(req)
	if err != nil {
		return nil, err
	}
	rec := &bodyRecorder{}
	out, err := p.client.ConverseStream(context.WithValue(ctx, recorderKey{}, rec), params.streamInput(req.Model), ownProtocol)
	if err != nil {
		return nil, p.callError(ctx, "converse stream", err)
	}
	return newStream(ctx, p.name, out.GetStream(), rec, newTranslator(completionID(out.ResultMetadata), req.Model, time.Now().Unix())), nil
}

// ownProtocol gives a ConverseStream call a protocol of its own. The SDK's
// restjson1 protocol holds one event-stream decoder and payload buffer, and
// a client shares its protocol between calls: concurrent streams would
// decode into the same buffer (a data race in smithy-go v1.28.9).
func ownProtocol(o *bedrockruntime.Options) {
	o.Protocol = restjson1.New(schemas.AmazonBedrockFrontendService)
}

// completionID names a completion after Bedrock's request id, or a random
// id when the response had none.
func completionID(md middleware.Metadata) string {
	if id, ok := awsmiddleware.GetRequestIDMetadata(md); ok && id != "" {
		return "chatcmpl-" + id
	}
	return "chatcmpl-" + uuid.NewString()
}

func defaultHTTPClient() *http.Client {
	return &http.Client{Transport: gateway.NewTransport()}
}

// recordingClient is the SDK's HTTP client.
//
// It hides the request body's WriteTo from net/http: the SDK closes the
// body as soon as Do returns, and its body's WriteTo then answers io.EOF,
// which net/http's check for bytes beyond Content-Length takes for a write
// error and closes the connection, cutting a stream whose response headers
// came before that check ran. Read after that close answers a plain EOF.
//
// For a streamed call it wraps the response body so the stream can tell a
// transport failure (a cut connection) from a frame that does not decode:
// the SDK reports both, and a cut in the middle of a frame, alike.
type recordingClient struct{ c *http.Client }

type recorderKey struct{}

// readCloser exposes only Read and Close of a body.
type readCloser struct{ io.ReadCloser }

func (rc recordingClient) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r = r.WithContext(r.Context()) // a shallow copy: the SDK keeps its own
		r.Body = readCloser{r.Body}
	}
	resp, err := rc.c.Do(r)
	if err != nil {
		return nil, err
	}
	if rec, ok := r.Context().Value(recorderKey{}).(*bodyRecorder); ok {
		resp.Body = &recordedBody{ReadCloser: resp.Body, rec: rec}
	}
	return resp, nil
}

// bodyRecorder keeps the first read error of a response body other than
// io.EOF.
type bodyRecorder struct {
	mu  sync.Mutex
	err error
}

func (r *bodyRecorder) set(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
}

func (r *bodyRecorder) get() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

type recordedBody struct {
	io.ReadCloser
	rec *bodyRecorder
}

func (b *recordedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.rec.set(err)
	}
	return n, err
}
