package telemetry

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"aigw/gateway"
)

// callSpan is a finished call's span, made directly rather than through
// an SDK tracer: the call is over when Observe runs, and the SDK's
// recording span (made to change while it runs) would cost the call
// several microseconds to lock, deduplicate and snapshot attributes set
// once. Observe decides sampling, copies the record and hands the ended
// span to the batch span processor; its attributes and events are built
// on the export goroutine, at the first call of Attributes or Events.
type callSpan struct {
	// ReadOnlySpan is nil: embedded for the interface's unexported
	// method only; callSpan implements every exported one (a test checks).
	sdktrace.ReadOnlySpan

	t          *Telemetry
	series     *series
	name       string
	sc, parent trace.SpanContext
	start, end time.Time
	status     sdktrace.Status
	// rec is the call's record, without Input, Output and Usage (usage
	// holds a copy of the counts); its Guardrails are shared.
	rec   gateway.CallRecord
	usage usageCounts

	once   sync.Once
	attrs  []attribute.KeyValue
	events []sdktrace.Event
}

// usageCounts are the token counts of a call's usage.
type usageCounts struct {
	known                                   bool
	input, output, cacheRead, cacheCreation int
	estimated                               bool
}

// Name implements sdktrace.ReadOnlySpan.
func (s *callSpan) Name() string { return s.name }

// SpanContext implements sdktrace.ReadOnlySpan.
func (s *callSpan) SpanContext() trace.SpanContext { return s.sc }

// Parent implements sdktrace.ReadOnlySpan.
func (s *callSpan) Parent() trace.SpanContext { return s.parent }

// SpanKind implements sdktrace.ReadOnlySpan.
func (s *callSpan) SpanKind() trace.SpanKind { return trace.SpanKindClient }

// StartTime implements sdktrace.ReadOnlySpan.
func (s *callSpan) StartTime() time.Time { return s.start }

// EndTime implements sdktrace.ReadOnlySpan.
func (s *callSpan) EndTime() time.Time { return s.end }

// Attributes implements sdktrace.ReadOnlySpan.
func (s *callSpan) Attributes() []attribute.KeyValue {
	s.once.Do(s.build)
	return s.attrs
}

// Links implements sdktrace.ReadOnlySpan.
func (s *callSpan) Links() []sdktrace.Link { return nil }

// Events implements sdktrace.ReadOnlySpan.
func (s *callSpan) Events() []sdktrace.Event {
	s.once.Do(s.build)
	return s.events
}

// Status implements sdktrace.ReadOnlySpan.
func (s *callSpan) Status() sdktrace.Status { return s.status }

// InstrumentationScope implements sdktrace.ReadOnlySpan.
func (s *callSpan) InstrumentationScope() instrumentation.Scope { return s.t.scope }

// InstrumentationLibrary implements sdktrace.ReadOnlySpan.
func (s *callSpan) InstrumentationLibrary() instrumentation.Library { //nolint:staticcheck // part of the interface
	return s.t.scope
}

// Resource implements sdktrace.ReadOnlySpan.
func (s *callSpan) Resource() *resource.Resource { return s.t.res }

// DroppedAttributes implements sdktrace.ReadOnlySpan.
func (s *callSpan) DroppedAttributes() int { return 0 }

// DroppedLinks implements sdktrace.ReadOnlySpan.
func (s *callSpan) DroppedLinks() int { return 0 }

// DroppedEvents implements sdktrace.ReadOnlySpan.
func (s *callSpan) DroppedEvents() int { return 0 }

// ChildSpanCount implements sdktrace.ReadOnlySpan.
func (s *callSpan) ChildSpanCount() int { return 0 }

func randomTraceID() trace.TraceID {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid
}

func randomSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}

// gate admits ended spans into the batch span processor while fewer than
// QueueSize spans wait for export, and drops (and counts) the others, so
// that the processor's own queue never fills: its drops are not
// observable, the gate's are.
type gate struct {
	bsp     sdktrace.SpanProcessor
	exp     *exporter
	stopped atomic.Bool
}

// enqueue hands a span to the batch span processor, or drops it.
func (g *gate) enqueue(s *callSpan) {
	if g.stopped.Load() {
		return
	}
	if g.exp.pending.Add(1) > g.exp.limit {
		g.exp.pending.Add(-1)
		g.exp.m.droppedQueue.Inc()
		return
	}
	g.bsp.OnEnd(s)
}

// shutdown flushes the queue and stops the processor and the exporter.
func (g *gate) shutdown(ctx context.Context) error {
	g.stopped.Store(true)
	return g.bsp.Shutdown(ctx)
}

// exporter wraps the OTLP exporter: it keeps the count of spans admitted
// by the gate and not yet handed to an export, counts exported and failed
// spans, and logs failures itself (at most once a minute) instead of
// returning them to the batch processor, which would hand them to the
// OpenTelemetry global error handler.
type exporter struct {
	next    sdktrace.SpanExporter
	m       *metrics
	log     *slog.Logger
	limit   int64
	pending atomic.Int64
	failed  atomic.Int64
	lastErr atomic.Pointer[error]
	logged  atomic.Int64 // unix nanos of the last failure logged
}

// ExportSpans implements sdktrace.SpanExporter.
func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	n := len(spans)
	e.pending.Add(-int64(n))
	err := e.next.ExportSpans(ctx, spans)
	if err == nil {
		e.m.exported.Add(float64(n))
		return nil
	}
	e.failed.Add(int64(n))
	e.m.droppedExport.Add(float64(n))
	e.lastErr.Store(&err)
	now := time.Now().UnixNano()
	if last := e.logged.Load(); now-last >= int64(time.Minute) && e.logged.CompareAndSwap(last, now) {
		e.log.Warn("span export failed; spans dropped", "spans", n, "err", err)
	}
	return nil
}

// Shutdown implements sdktrace.SpanExporter.
func (e *exporter) Shutdown(ctx context.Context) error { return e.next.Shutdown(ctx) }

// failedSince returns an error when spans failed to export since the
// failure count was before.
func (e *exporter) failedSince(before int64) error {
	n := e.failed.Load() - before
	if n == 0 {
		return nil
	}
	var err error
	if le := e.lastErr.Load(); le != nil {
		err = *le
	}
	return fmt.Errorf("telemetry: %d spans failed to export: %w", n, err)
}

// Attribute keys.
//
// SPEC: https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/
const (
	keyOperation       = attribute.Key("gen_ai.operation.name")
	keyProvider        = attribute.Key("gen_ai.provider.name")
	keyRequestModel    = attribute.Key("gen_ai.request.model")
	keyResponseModel   = attribute.Key("gen_ai.response.model")
	keyInputTokens     = attribute.Key("gen_ai.usage.input_tokens")
	keyOutputTokens    = attribute.Key("gen_ai.usage.output_tokens")
	keyCacheRead       = attribute.Key("gen_ai.usage.cache_read.input_tokens")
	keyCacheCreation   = attribute.Key("gen_ai.usage.cache_creation.input_tokens")
	keyFinishReasons   = attribute.Key("gen_ai.response.finish_reasons")
	keyErrorType       = attribute.Key("error.type")
	keyHTTPStatus      = attribute.Key("http.response.status_code")
	keyTenant          = attribute.Key("aigw.tenant")
	keyKeyID           = attribute.Key("aigw.key_id")
	keyTeam            = attribute.Key("aigw.team")
	keyAgentID         = attribute.Key("aigw.agent_id")
	keyEndpoint        = attribute.Key("aigw.endpoint")
	keyTarget          = attribute.Key("aigw.target")
	keyAttempts        = attribute.Key("aigw.attempts")
	keyCost            = attribute.Key("aigw.cost_usd")
	keyPriceVersion    = attribute.Key("aigw.price_version")
	keyTTFB            = attribute.Key("aigw.ttfb_ms")
	keyStream          = attribute.Key("aigw.stream")
	keyTokensEstimated = attribute.Key("aigw.usage.estimated")
	keyErrorCode       = attribute.Key("aigw.error_code")
	keyGuardPolicy     = attribute.Key("aigw.guardrail.policy")
	keyGuardVersion    = attribute.Key("aigw.guardrail.policy_version")
)

// GuardrailEvent is the name of the span event of a guardrail decision.
const GuardrailEvent = "aigw.guardrail"

// span exports a call's span, if sampled: a CLIENT span named
// "{operation} {model}" from the call's start to its end, whose trace id
// is the call's (the ledger's), child of the agent's span when the agent
// sent a traceparent. Sampling is ParentBased(TraceIDRatioBased): a
// traceparent's sampled flag decides, the ratio decides the others.
func (t *Telemetry) span(s *series, rec *gateway.CallRecord) {
	ctx := context.Background()
	var parent trace.SpanContext
	tid, err := trace.TraceIDFromHex(rec.TraceID)
	if err != nil {
		tid = randomTraceID()
	} else if rec.ParentSpanID != "" {
		if psid, err := trace.SpanIDFromHex(rec.ParentSpanID); err == nil {
			var flags trace.TraceFlags
			if rec.Sampled {
				flags = trace.FlagsSampled
			}
			parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: psid, TraceFlags: flags, Remote: true})
			ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
		}
	}
	name := s.spanName
	if name == "" { // a model counted as _other: named per call
		name = s.operation + " " + validUTF8(rec.Model)
	}
	res := t.sampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid, Name: name, Kind: trace.SpanKindClient})
	if res.Decision != sdktrace.RecordAndSample {
		return
	}
	start := rec.Start
	if start.IsZero() {
		start = time.Now().Add(-rec.Duration)
	}
	sp := &callSpan{
		t: t, series: s, name: name, parent: parent, start: start, end: start.Add(rec.Duration),
		sc: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: randomSpanID(), TraceFlags: parent.TraceFlags() | trace.FlagsSampled, TraceState: res.Tracestate,
		}),
		rec: *rec,
	}
	sp.rec.Input, sp.rec.Output, sp.rec.Usage = nil, nil, nil
	if u := rec.Usage; u != nil {
		sp.usage = usageCounts{known: true, input: u.PromptTokens, output: u.CompletionTokens, estimated: u.Estimated}
		if d := u.PromptTokensDetails; d != nil {
			sp.usage.cacheRead, sp.usage.cacheCreation = d.CachedTokens, d.CacheCreationTokens
		}
	}
	if failed(rec) {
		sp.status = sdktrace.Status{Code: codes.Error, Description: errorType(rec)}
	}
	t.proc.enqueue(sp)
}

func failed(rec *gateway.CallRecord) bool { return rec.Status >= 400 || rec.ErrorType != "" }

// build makes the span's attributes and events (once, on the export
// goroutine).
func (sp *callSpan) build() {
	rec, s := &sp.rec, sp.series
	a := make([]attribute.KeyValue, 0, 28)
	a = append(a,
		keyOperation.String(s.operation),
		str(keyRequestModel, rec.Model),
		keyHTTPStatus.Int(rec.Status),
		keyAttempts.Int(rec.Attempts),
		keyStream.Bool(rec.Stream),
		str(keyEndpoint, rec.Endpoint),
	)
	if s.genAIProvider != "" {
		a = append(a, keyProvider.String(s.genAIProvider))
	}
	a = appendNonEmpty(a, keyResponseModel, rec.UpstreamModel)
	a = appendNonEmpty(a, keyTarget, rec.Target)
	a = appendNonEmpty(a, keyTenant, rec.Tenant)
	a = appendNonEmpty(a, keyKeyID, rec.KeyID)
	a = appendNonEmpty(a, keyTeam, rec.Team)
	a = appendNonEmpty(a, keyAgentID, rec.AgentID)
	if u := sp.usage; u.known {
		a = append(a, keyInputTokens.Int(u.input), keyOutputTokens.Int(u.output))
		if u.cacheRead > 0 {
			a = append(a, keyCacheRead.Int(u.cacheRead))
		}
		if u.cacheCreation > 0 {
			a = append(a, keyCacheCreation.Int(u.cacheCreation))
		}
		if u.estimated {
			a = append(a, keyTokensEstimated.Bool(true))
		}
	}
	if rec.FinishReason != "" {
		a = append(a, keyFinishReasons.StringSlice([]string{validUTF8(rec.FinishReason)}))
	}
	if rec.Priced {
		a = append(a, keyCost.String(rec.Cost.Amount.String()))
		a = appendNonEmpty(a, keyPriceVersion, rec.Cost.PriceVersion)
	}
	if rec.Stream && rec.TTFB > 0 {
		a = append(a, keyTTFB.Float64(float64(rec.TTFB)/float64(time.Millisecond)))
	}
	if failed(rec) {
		a = append(a, keyErrorType.String(sp.status.Description))
		a = appendNonEmpty(a, keyErrorCode, rec.ErrorCode)
	}
	a = appendNonEmpty(a, keyGuardPolicy, rec.GuardrailPolicy)
	a = appendNonEmpty(a, keyGuardVersion, rec.GuardrailPolicyVersion)
	sp.attrs = a
	if len(rec.Guardrails) > 0 {
		sp.events = make([]sdktrace.Event, len(rec.Guardrails))
		for i, g := range rec.Guardrails {
			at := sp.end
			if g["stage"] == "input" {
				at = sp.start
			}
			sp.events[i] = sdktrace.Event{Name: GuardrailEvent, Attributes: guardrailAttrs(g), Time: at}
		}
	}
}

// errorType is a failed call's error.type: its error code, else its error
// type, else its status.
func errorType(rec *gateway.CallRecord) string {
	switch {
	case rec.ErrorCode != "":
		return validUTF8(rec.ErrorCode)
	case rec.ErrorType != "":
		return validUTF8(rec.ErrorType)
	case rec.Status != 0:
		return strconv.Itoa(rec.Status)
	}
	return "_OTHER"
}

// guardrailAttrs converts a guardrail decision's attrs to event
// attributes, under the same keys: strings, bools, integers and floats as
// themselves, string lists as string slices, other values (lists, maps) as
// their JSON.
func guardrailAttrs(g map[string]any) []attribute.KeyValue {
	out := make([]attribute.KeyValue, 0, len(g))
	for k, v := range g {
		key := attribute.Key(validUTF8(k))
		switch v := v.(type) {
		case string:
			out = append(out, str(key, v))
		case bool:
			out = append(out, key.Bool(v))
		case int:
			out = append(out, key.Int(v))
		case int64:
			out = append(out, key.Int64(v))
		case int32:
			out = append(out, key.Int64(int64(v)))
		case uint32:
			out = append(out, key.Int64(int64(v)))
		case uint64:
			if v > math.MaxInt64 {
				out = append(out, key.String(strconv.FormatUint(v, 10)))
				break
			}
			out = append(out, key.Int64(int64(v)))
		case float64:
			out = append(out, key.Float64(v))
		case float32:
			out = append(out, key.Float64(float64(v)))
		case nil:
		case []string:
			out = append(out, key.StringSlice(validUTF8s(v)))
		case []any:
			if ss, ok := stringList(v); ok {
				out = append(out, key.StringSlice(ss))
				break
			}
			out = append(out, key.String(jsonString(v)))
		default:
			out = append(out, key.String(jsonString(v)))
		}
	}
	return out
}

func stringList(v []any) ([]string, bool) {
	ss := make([]string, len(v))
	for i, e := range v {
		s, ok := e.(string)
		if !ok {
			return nil, false
		}
		ss[i] = validUTF8(s)
	}
	return ss, true
}

// jsonString is v's JSON (valid UTF-8: json.Marshal replaces invalid
// bytes), or its type when it has none (or its MarshalJSON panics: this
// runs on the export goroutine, which must not die).
func jsonString(v any) (s string) {
	defer func() {
		if recover() != nil {
			s = fmt.Sprintf("%T", v)
		}
	}()
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%T", v)
	}
	return string(b)
}

// str is a string attribute, made valid UTF-8 (an OTLP export request
// with an invalid string is refused whole).
func str(k attribute.Key, v string) attribute.KeyValue { return k.String(validUTF8(v)) }

func appendNonEmpty(a []attribute.KeyValue, k attribute.Key, v string) []attribute.KeyValue {
	if v == "" {
		return a
	}
	return append(a, str(k, v))
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func validUTF8s(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = validUTF8(s)
	}
	return out
}

// operation is the gen_ai.operation.name of an endpoint.
func operation(endpoint string) string {
	switch endpoint {
	case "chat.completions", "messages", "chat":
		return "chat"
	case "embeddings":
		return "embeddings"
	case "completions":
		return "text_completion"
	}
	return validUTF8(endpoint)
}

// genAIProviders maps provider kinds (and common provider names) to
// gen_ai.provider.name values.
//
// SPEC: https://opentelemetry.io/docs/specs/semconv/registry/attributes/gen-ai/
var genAIProviders = map[string]string{
	"openai":       "openai",
	"anthropic":    "anthropic",
	"bedrock":      "aws.bedrock",
	"aws.bedrock":  "aws.bedrock",
	"gemini":       "gcp.gemini",
	"gcp.gemini":   "gcp.gemini",
	"google":       "gcp.gemini",
	"vertex":       "gcp.vertex_ai",
	"vertexai":     "gcp.vertex_ai",
	"vertex_ai":    "gcp.vertex_ai",
	"azure":        "azure.ai.openai",
	"azure-openai": "azure.ai.openai",
	"azure_openai": "azure.ai.openai",
	"cohere":       "cohere",
	"mistral":      "mistral_ai",
	"mistral_ai":   "mistral_ai",
	"groq":         "groq",
	"deepseek":     "deepseek",
	"xai":          "x_ai",
	"x_ai":         "x_ai",
	"perplexity":   "perplexity",
	"watsonx":      "ibm.watsonx.ai",
}

// genAIProvider is the gen_ai.provider.name of a configured provider: from
// its kind when known (an openai-compatible provider is named as
// configured), else from its name; unknown kinds and names as they are.
func (t *Telemetry) genAIProvider(provider string) string {
	name := provider
	if kind, ok := t.cfg.ProviderKinds[provider]; ok && kind != "" && kind != "openai-compatible" {
		name = kind
	}
	if v, ok := genAIProviders[strings.ToLower(name)]; ok {
		return v
	}
	return validUTF8(name)
}
