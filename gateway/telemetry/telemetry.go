// Package telemetry exports the gateway's finished calls as OpenTelemetry
// traces (OTLP/HTTP, one span per call, following the GenAI semantic
// conventions) and Prometheus metrics (requests, latency, tokens, cost,
// guardrail decisions), and serves /metrics as one Prometheus text document
// that also holds the gateway's hand-written metrics. *Telemetry implements
// gateway.Telemetry.
//
// A call's span carries the ledger's trace id of the call, so a trace found
// in a tracing backend leads to the call's ledger events and back. Observe
// never blocks: spans go through a bounded queue, and what does not fit is
// dropped and counted (aigw_telemetry_spans_dropped_total).
//
// SPEC: https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"aigw/gateway"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "aigw/gateway/telemetry"

// Defaults of Config.
const (
	DefaultServiceName   = "aigw"
	DefaultQueueSize     = 2048
	DefaultBatchSize     = 512
	DefaultBatchTimeout  = 5 * time.Second
	DefaultExportTimeout = 10 * time.Second
)

// Config configures a Telemetry. The zero value works: metrics in a
// registry of its own, no trace export.
type Config struct {
	// ServiceName is the service.name of the spans' resource (default
	// "aigw"); ServiceVersion its service.version (none when empty).
	ServiceName    string
	ServiceVersion string
	// OTLPEndpoint is the OTLP/HTTP traces URL spans are exported to, e.g.
	// "http://collector:4318/v1/traces" (the path is used as given). Empty:
	// no spans are made or exported.
	OTLPEndpoint string
	// OTLPHeaders are sent with every export (e.g. an Authorization
	// header). They are secrets: Config logs them redacted.
	OTLPHeaders map[string]string
	// OTLPCompression is "gzip" (the default when empty) or "none".
	OTLPCompression string
	// SampleRatio is the share of calls without a sampled traceparent
	// whose spans are exported, in (0, 1] (0 means the default, 1). A call
	// whose agent sent a traceparent follows the agent's sampled flag.
	SampleRatio float64
	// QueueSize bounds the spans waiting for export (default
	// DefaultQueueSize); spans beyond it are dropped and counted.
	// BatchSize is the most spans per export request (default
	// DefaultBatchSize, at most QueueSize). BatchTimeout is how long a
	// span waits for its batch to fill (default DefaultBatchTimeout).
	QueueSize    int
	BatchSize    int
	BatchTimeout time.Duration
	// ExportTimeout bounds one export request, retries included (default
	// DefaultExportTimeout).
	ExportTimeout time.Duration
	// Registry is where the metrics are registered (nil: a registry of
	// the Telemetry's own). Gatherer is what WriteMetrics and Handler
	// expose (nil: Registry, which must then be a prometheus.Gatherer, as
	// a *prometheus.Registry is).
	Registry prometheus.Registerer
	Gatherer prometheus.Gatherer
	// TenantLabel adds a tenant label to aigw_requests_total,
	// aigw_request_duration_seconds, aigw_time_to_first_byte_seconds,
	// aigw_tokens_total and aigw_cost_usd_total. Off by default: one series
	// per tenant can be many series.
	TenantLabel bool
	// KnownModel, when set, reports whether a model the agent asked for
	// names a route; metrics count the others as model "_other", so that
	// agents cannot create series by sending made-up model names. Typically
	// the router's Has.
	KnownModel func(model string) bool
	// ProviderKinds maps configured provider names to their kinds (openai,
	// anthropic, bedrock, gemini, openai-compatible, ...), from which spans'
	// gen_ai.provider.name is derived; a provider not in it is taken to
	// be named after its kind.
	ProviderKinds map[string]string
	// Logger receives export failures (at most one line a minute).
	Logger *slog.Logger
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if c.OTLPEndpoint != "" {
		u, err := url.Parse(c.OTLPEndpoint)
		if err != nil {
			return fmt.Errorf("telemetry: otlp endpoint: %w", err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("telemetry: otlp endpoint %q: want an http or https URL with a host", c.OTLPEndpoint)
		}
	}
	switch c.OTLPCompression {
	case "", "gzip", "none":
	default:
		return fmt.Errorf("telemetry: otlp compression %q: want gzip or none", c.OTLPCompression)
	}
	if math.IsNaN(c.SampleRatio) || c.SampleRatio < 0 || c.SampleRatio > 1 {
		return fmt.Errorf("telemetry: sample ratio %v: want a number in (0, 1]", c.SampleRatio)
	}
	if c.QueueSize < 0 || c.BatchSize < 0 || c.BatchTimeout < 0 || c.ExportTimeout < 0 {
		return errors.New("telemetry: queue size, batch size, batch timeout and export timeout must not be negative")
	}
	if c.Gatherer == nil && c.Registry != nil {
		if _, ok := c.Registry.(prometheus.Gatherer); !ok {
			return fmt.Errorf("telemetry: registry %T is not a prometheus.Gatherer: set Gatherer", c.Registry)
		}
	}
	return nil
}

// LogValue logs the configuration with the OTLP headers' values (and any
// password in the endpoint) redacted.
func (c Config) LogValue() slog.Value {
	endpoint := c.OTLPEndpoint
	if u, err := url.Parse(endpoint); err == nil {
		endpoint = u.Redacted()
	} else if endpoint != "" {
		endpoint = "REDACTED (invalid URL)"
	}
	names := make([]string, 0, len(c.OTLPHeaders))
	for k := range c.OTLPHeaders {
		names = append(names, k)
	}
	sort.Strings(names)
	hdr := make([]slog.Attr, len(names))
	for i, k := range names {
		hdr[i] = slog.String(k, "REDACTED")
	}
	return slog.GroupValue(
		slog.String("service_name", c.ServiceName),
		slog.String("otlp_endpoint", endpoint),
		slog.Any("otlp_headers", slog.GroupValue(hdr...)),
		slog.Float64("sample_ratio", c.SampleRatio),
		slog.Int("queue_size", c.QueueSize),
		slog.Int("batch_size", c.BatchSize),
		slog.Duration("batch_timeout", c.BatchTimeout),
		slog.Duration("export_timeout", c.ExportTimeout),
		slog.Bool("tenant_label", c.TenantLabel),
	)
}

// Telemetry exports finished calls as spans and metrics. Safe for
// concurrent use.
type Telemetry struct {
	cfg    Config
	log    *slog.Logger
	gather prometheus.Gatherer
	reg    prometheus.Registerer
	m      metrics
	shapes

	// Tracing, nil without an OTLP endpoint.
	proc    *gate
	exp     *exporter
	sampler sdktrace.Sampler
	res     *resource.Resource
	scope   instrumentation.Scope
}

var _ gateway.Telemetry = (*Telemetry)(nil)

// New returns a Telemetry: its metrics registered in cfg.Registry and,
// with an OTLP endpoint, a span exporter running in the background until
// Shutdown.
func New(cfg Config) (*Telemetry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ServiceName == "" {
		cfg.ServiceName = DefaultServiceName
	}
	if cfg.SampleRatio == 0 {
		cfg.SampleRatio = 1
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	cfg.BatchSize = min(cfg.BatchSize, cfg.QueueSize)
	if cfg.BatchTimeout == 0 {
		cfg.BatchTimeout = DefaultBatchTimeout
	}
	if cfg.ExportTimeout == 0 {
		cfg.ExportTimeout = DefaultExportTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Telemetry{cfg: cfg, log: cfg.Logger, reg: cfg.Registry, gather: cfg.Gatherer}
	if t.reg == nil {
		r := prometheus.NewRegistry()
		t.reg = r
		if t.gather == nil {
			t.gather = r
		}
	}
	if t.gather == nil {
		t.gather = t.reg.(prometheus.Gatherer) // checked by Validate
	}
	if err := t.m.register(t.reg, cfg.TenantLabel); err != nil {
		return nil, err
	}
	if cfg.OTLPEndpoint != "" {
		if err := t.startTracing(); err != nil {
			t.m.unregister(t.reg)
			return nil, err
		}
	}
	return t, nil
}

// startTracing sets up span export: the OTLP/HTTP exporter behind a batch
// span processor whose queue is never full (the gate drops first, and
// counts it), and the ParentBased(TraceIDRatioBased) sampler.
func (t *Telemetry) startTracing() error {
	cfg := t.cfg
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpointURL(cfg.OTLPEndpoint),
		otlptracehttp.WithTimeout(cfg.ExportTimeout),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
			Enabled: true, InitialInterval: 500 * time.Millisecond, MaxInterval: 5 * time.Second, MaxElapsedTime: cfg.ExportTimeout,
		}),
	}
	if len(cfg.OTLPHeaders) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.OTLPHeaders))
	}
	if cfg.OTLPCompression != "none" {
		opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	}
	client, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return fmt.Errorf("telemetry: otlp exporter for %s: %w", cfg.OTLPEndpoint, err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", cfg.ServiceName)}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.ServiceVersion))
	}
	res, err := resource.New(context.Background(), resource.WithTelemetrySDK(), resource.WithAttributes(attrs...))
	if err != nil {
		return fmt.Errorf("telemetry: span resource: %w", err)
	}
	t.exp = &exporter{next: client, m: &t.m, log: t.log}
	// The processor's own queue holds at most QueueSize spans (the gate
	// admits no more), so it never drops: the gate does, and counts.
	bsp := sdktrace.NewBatchSpanProcessor(t.exp,
		sdktrace.WithMaxQueueSize(cfg.QueueSize),
		sdktrace.WithMaxExportBatchSize(cfg.BatchSize),
		sdktrace.WithBatchTimeout(cfg.BatchTimeout),
		sdktrace.WithExportTimeout(cfg.ExportTimeout),
	)
	t.exp.limit = int64(cfg.QueueSize)
	t.proc = &gate{bsp: bsp, exp: t.exp}
	t.sampler = sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))
	t.res = res
	t.scope = instrumentation.Scope{Name: ScopeName}
	return nil
}

// Observe records a finished call: its metrics and, when tracing and
// sampled, its span. It does not block (see gateway.Telemetry). It keeps
// no reference to rec, its Input, Output or Usage, but the span, built on
// the export goroutine, reads rec.Guardrails' maps: they must not change
// after Observe.
func (t *Telemetry) Observe(rec *gateway.CallRecord) {
	if rec == nil {
		return
	}
	s := t.series(rec)
	t.count(s, rec)
	if t.proc != nil {
		t.span(s, rec)
	}
}

// Flush exports the spans queued so far and waits for the export (or
// ctx).
func (t *Telemetry) Flush(ctx context.Context) error {
	if t.proc == nil {
		return nil
	}
	before := t.exp.failed.Load()
	if err := t.proc.bsp.ForceFlush(ctx); err != nil {
		return fmt.Errorf("telemetry: flush spans: %w", err)
	}
	return t.exp.failedSince(before)
}

// Shutdown exports the queued spans and stops the exporter; spans of
// calls observed after it are not exported (metrics still count). Call it
// once, before the process exits.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.proc == nil {
		return nil
	}
	before := t.exp.failed.Load()
	if err := t.proc.shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: shut down span export: %w", err)
	}
	return t.exp.failedSince(before)
}
