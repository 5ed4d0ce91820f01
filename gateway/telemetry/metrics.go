package telemetry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"aigw/gateway"
)

// OtherModel is the model label of calls whose model names no route (see
// Config.KnownModel).
const OtherModel = "_other"

// durationBuckets are the request duration and time-to-first-byte
// histograms' buckets, in seconds: from a cached or refused call (5 ms) to
// a long generation (2 min).
func durationBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120}
}

// metrics are the Telemetry's Prometheus collectors.
type metrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	ttfb       *prometheus.HistogramVec
	tokens     *prometheus.CounterVec
	cost       *prometheus.CounterVec
	guardrails *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	exported   prometheus.Counter

	droppedQueue, droppedExport prometheus.Counter
	registered                  []prometheus.Collector
}

// register makes the collectors and registers them in reg, all or none.
func (m *metrics) register(reg prometheus.Registerer, tenant bool) error {
	labels := func(names ...string) []string {
		if tenant {
			return append(names, "tenant")
		}
		return names
	}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aigw_requests_total",
		Help: "Gateway calls finished, by endpoint, requested model (route), provider that answered and HTTP status.",
	}, labels("endpoint", "model", "provider", "status"))
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "aigw_request_duration_seconds",
		Help:    "Gateway call duration, from the request to the end of the answer (the whole stream), in seconds.",
		Buckets: durationBuckets(),
	}, labels("endpoint", "model", "provider"))
	m.ttfb = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "aigw_time_to_first_byte_seconds",
		Help:    "Time from a streamed call's request to the first byte of its answer, in seconds.",
		Buckets: durationBuckets(),
	}, labels("endpoint", "model", "provider"))
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aigw_tokens_total",
		Help: "Tokens used by gateway calls, by type: input (prompt, cached included), output (completion), cached (input read from a prompt cache).",
	}, labels("model", "provider", "type"))
	m.cost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aigw_cost_usd_total",
		Help: "Cost of priced gateway calls in US dollars (the ledger holds the exact amounts).",
	}, labels("model", "provider"))
	m.guardrails = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aigw_guardrail_decisions_total",
		Help: "Guardrail decisions, by check, stage and verdict.",
	}, []string{"check", "stage", "verdict"})
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aigw_telemetry_spans_dropped_total",
		Help: "Spans not exported, by reason: queue_full (the export queue was full) or export_failed.",
	}, []string{"reason"})
	m.exported = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aigw_telemetry_spans_exported_total",
		Help: "Spans exported to the OTLP endpoint.",
	})
	m.droppedQueue = m.dropped.WithLabelValues("queue_full")
	m.droppedExport = m.dropped.WithLabelValues("export_failed")
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.ttfb, m.tokens, m.cost, m.guardrails, m.dropped, m.exported} {
		if err := reg.Register(c); err != nil {
			m.unregister(reg)
			return fmt.Errorf("telemetry: register metrics: %w", err)
		}
		m.registered = append(m.registered, c)
	}
	return nil
}

func (m *metrics) unregister(reg prometheus.Registerer) {
	for _, c := range m.registered {
		reg.Unregister(c)
	}
	m.registered = nil
}

// seriesKey identifies the series a call counts in.
type seriesKey struct {
	endpoint, model, provider, tenant string
	status                            int
}

// series holds a call shape's metrics, resolved once (label lookups cost
// more than the increments), and its span's fixed parts.
type series struct {
	requests                 prometheus.Counter
	duration, ttfb           prometheus.Observer
	tokIn, tokOut, tokCached prometheus.Counter
	cost                     prometheus.Counter
	operation, spanName      string
	genAIProvider            string
}

// series returns the series of rec's shape.
func (t *Telemetry) series(rec *gateway.CallRecord) *series {
	k := seriesKey{endpoint: rec.Endpoint, model: rec.Model, provider: rec.Provider, status: rec.Status}
	if t.cfg.KnownModel != nil && !t.cfg.KnownModel(k.model) {
		k.model = OtherModel
	}
	if t.cfg.TenantLabel {
		k.tenant = rec.Tenant
	}
	if s, ok := t.byShape.Load(k); ok {
		return s.(*series)
	}
	s := t.newSeries(k)
	if v, loaded := t.byShape.LoadOrStore(k, s); loaded {
		return v.(*series)
	}
	return s
}

func (t *Telemetry) newSeries(k seriesKey) *series {
	endpoint, model, provider, tenant := validUTF8(k.endpoint), validUTF8(k.model), validUTF8(k.provider), validUTF8(k.tenant)
	lv := func(vs ...string) []string {
		if t.cfg.TenantLabel {
			return append(vs, tenant)
		}
		return vs
	}
	m := &t.m
	s := &series{
		requests:      m.requests.WithLabelValues(lv(endpoint, model, provider, statusLabel(k.status))...),
		duration:      m.duration.WithLabelValues(lv(endpoint, model, provider)...),
		ttfb:          m.ttfb.WithLabelValues(lv(endpoint, model, provider)...),
		tokIn:         m.tokens.WithLabelValues(lv(model, provider, "input")...),
		tokOut:        m.tokens.WithLabelValues(lv(model, provider, "output")...),
		tokCached:     m.tokens.WithLabelValues(lv(model, provider, "cached")...),
		cost:          m.cost.WithLabelValues(lv(model, provider)...),
		operation:     operation(k.endpoint),
		genAIProvider: t.genAIProvider(k.provider),
	}
	if k.model != OtherModel || t.cfg.KnownModel == nil {
		s.spanName = s.operation + " " + model
	}
	return s
}

func statusLabel(status int) string {
	if status == 0 {
		return ""
	}
	return strconv.Itoa(status)
}

// count adds a call to its metrics.
func (t *Telemetry) count(s *series, rec *gateway.CallRecord) {
	s.requests.Inc()
	s.duration.Observe(rec.Duration.Seconds())
	if rec.Stream && rec.TTFB > 0 {
		s.ttfb.Observe(rec.TTFB.Seconds())
	}
	if u := rec.Usage; u != nil {
		addPositive(s.tokIn, u.PromptTokens)
		addPositive(s.tokOut, u.CompletionTokens)
		if d := u.PromptTokensDetails; d != nil {
			addPositive(s.tokCached, d.CachedTokens)
		}
	}
	if rec.Priced && rec.Cost.Amount > 0 {
		s.cost.Add(float64(rec.Cost.Amount) / 1e9)
	}
	for _, g := range rec.Guardrails {
		t.guardrailCounter(g).Inc()
	}
}

func addPositive(c prometheus.Counter, n int) {
	if n > 0 {
		c.Add(float64(n))
	}
}

// guardrailCounter returns the counter of a guardrail decision's check,
// stage and verdict.
func (t *Telemetry) guardrailCounter(g map[string]any) prometheus.Counter {
	k := [3]string{labelOf(g["check"]), labelOf(g["stage"]), labelOf(g["verdict"])}
	if c, ok := t.byGuardrail.Load(k); ok {
		return c.(prometheus.Counter)
	}
	c := t.m.guardrails.WithLabelValues(validUTF8(k[0]), validUTF8(k[1]), validUTF8(k[2]))
	t.byGuardrail.Store(k, c)
	return c
}

func labelOf(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// Sample is one sample of a metric collected at scrape time (GaugeFunc,
// CounterFunc): its label values, in the order of the metric's label
// names, and its value.
type Sample struct {
	Labels []string
	Value  float64
}

// GaugeFunc registers a gauge whose samples collect returns at every
// scrape (e.g. a budget's remaining amount, the ledger's lag), in the
// Telemetry's registry. name and labels must be Prometheus legacy names
// ([a-zA-Z_:][a-zA-Z0-9_:]*) not registered yet; each sample must have one
// value per label. collect must be safe for concurrent use and quick: it
// runs within the scrape.
func (t *Telemetry) GaugeFunc(name, help string, labels []string, collect func() []Sample) error {
	return t.registerFunc(name, help, labels, prometheus.GaugeValue, collect)
}

// CounterFunc is GaugeFunc for a counter: a total kept elsewhere that
// only grows (e.g. events the ledger appended).
func (t *Telemetry) CounterFunc(name, help string, labels []string, collect func() []Sample) error {
	return t.registerFunc(name, help, labels, prometheus.CounterValue, collect)
}

func (t *Telemetry) registerFunc(name, help string, labels []string, typ prometheus.ValueType, collect func() []Sample) error {
	if !model.LegacyValidation.IsValidMetricName(name) {
		return fmt.Errorf("telemetry: metric name %q is invalid", name)
	}
	for _, l := range labels {
		if !model.LegacyValidation.IsValidLabelName(l) {
			return fmt.Errorf("telemetry: metric %s: label name %q is invalid", name, l)
		}
	}
	if collect == nil {
		return fmt.Errorf("telemetry: metric %s: no collect function", name)
	}
	c := &funcCollector{desc: prometheus.NewDesc(name, help, labels, nil), typ: typ, collect: collect}
	if err := t.reg.Register(c); err != nil {
		return fmt.Errorf("telemetry: register metric %s: %w", name, err)
	}
	return nil
}

// funcCollector collects a GaugeFunc's or CounterFunc's samples.
type funcCollector struct {
	desc    *prometheus.Desc
	typ     prometheus.ValueType
	collect func() []Sample
}

// Describe implements prometheus.Collector.
func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *funcCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.collect() {
		lv := validUTF8s(s.Labels)
		m, err := prometheus.NewConstMetric(c.desc, c.typ, s.Value, lv...)
		if err != nil {
			m = prometheus.NewInvalidMetric(c.desc, err)
		}
		ch <- m
	}
}

// WriteMetrics writes the registry's metrics in the Prometheus text
// exposition format (version 0.0.4), then the extra writers' text (metrics
// written by hand, e.g. the router's), so that /metrics is one document;
// the extra metrics' names must differ from the registry's. An error
// reports metrics that could not be gathered (the others are written) or a
// failed write.
//
// SPEC: https://prometheus.io/docs/instrumenting/exposition_formats/
func (t *Telemetry) WriteMetrics(w io.Writer, extra ...func(io.Writer)) error {
	mfs, gerr := t.gather.Gather()
	if gerr != nil {
		gerr = fmt.Errorf("telemetry: gather metrics: %w", gerr)
	}
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return errors.Join(gerr, fmt.Errorf("telemetry: write metric %s: %w", mf.GetName(), err))
		}
	}
	for _, f := range extra {
		f(w)
	}
	return gerr
}

// Handler serves WriteMetrics(w, extra...) (the /metrics endpoint);
// metrics that could not be gathered are logged.
func (t *Telemetry) Handler(extra ...func(io.Writer)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
		if err := t.WriteMetrics(w, extra...); err != nil {
			t.log.Warn("/metrics incomplete", "err", err)
		}
	})
}

// shapes caches series by call shape; guardrail counters by decision.
type shapes struct {
	byShape     sync.Map // seriesKey → *series
	byGuardrail sync.Map // [3]string → prometheus.Counter
}
