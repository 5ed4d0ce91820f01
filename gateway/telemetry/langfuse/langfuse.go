// Package langfuse exports finished calls to Langfuse, as traces and
// generations, through its public batch ingestion API.
//
// Each [gateway.CallRecord] becomes two ingestion events: a trace-create
// whose id is the call's trace id (the ledger's and OpenTelemetry's, so the
// three line up) and a generation-create under it carrying the upstream
// model, timings (start, end, first byte), token usage, the exact cost in
// USD, the outcome (level ERROR and a status message on failures) and the
// guardrail decisions. The request and answer bodies are sent only when
// [Config.CaptureContent] is set: they may hold personal data.
//
// [Exporter.Observe] never blocks: records go into a bounded queue that a
// background goroutine empties in batches (by count, by encoded size and
// by time). When the queue is full the record is dropped and counted
// ([Exporter.Dropped]), and drops are logged at most once per
// [DropLogInterval]. Batches that fail with a network error, 429 or a 5xx
// are retried with exponential backoff and jitter, honouring Retry-After,
// a bounded number of times; event ids are derived from the record, so a
// retried batch is deduplicated by Langfuse. Langfuse answers 207 with
// per-event results: events it rejected as invalid are counted and logged,
// never retried; events it failed with a 5xx are retried alone.
//
// SPEC: https://api.reference.langfuse.com/#tag/ingestion (POST
// /api/public/ingestion, HTTP Basic auth with the public key as user and
// the secret key as password, batches up to 3.5 MB).
package langfuse

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"aigw/gateway"
)

// Defaults applied to zero fields of a [Config].
const (
	DefaultQueueSize     = 10_000
	DefaultBatchSize     = 100
	DefaultFlushInterval = time.Second
	// DefaultMaxBatchBytes keeps a request under Langfuse's 3.5 MB limit.
	DefaultMaxBatchBytes = 3_000_000
	DefaultTimeout       = 10 * time.Second
	DefaultMaxAttempts   = 5
	DefaultMinBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
)

// DropLogInterval is the least time between two log lines reporting
// records dropped because the queue was full.
const DropLogInterval = 10 * time.Second

// ingestionPath is the batch ingestion endpoint, relative to the host.
const ingestionPath = "api/public/ingestion"

// Config configures an [Exporter]. Host, PublicKey and SecretKey are
// required; every other zero field takes its default.
type Config struct {
	// Host is Langfuse's base URL, e.g. "https://cloud.langfuse.com" or
	// a self-hosted "https://langfuse.example.com/prefix".
	Host string
	// PublicKey and SecretKey are the project's API keys (Basic auth
	// user and password). The secret key is never logged.
	PublicKey string
	SecretKey string
	// CaptureContent sends each call's request body and answer
	// (CallRecord.Input and Output) as the generation's input and output.
	// Off by default: they may hold personal data.
	CaptureContent bool
	// Environment, when set, is the Langfuse environment of every trace
	// and generation (e.g. "production"): at most 40 characters among
	// a-z, 0-9, '-' and '_', not starting with "langfuse".
	Environment string
	// SampledOnly exports only records whose trace is sampled
	// (CallRecord.Sampled); by default every call is exported.
	SampledOnly bool
	// QueueSize bounds the records waiting to be exported (default
	// DefaultQueueSize); records observed while it is full are dropped.
	QueueSize int
	// BatchSize is the most records sent in one request (default
	// DefaultBatchSize); FlushInterval the longest a record waits for a
	// batch to fill (default DefaultFlushInterval).
	BatchSize     int
	FlushInterval time.Duration
	// MaxBatchBytes bounds a request's body (default DefaultMaxBatchBytes);
	// a record whose events alone exceed it is not exported (counted as
	// failed).
	MaxBatchBytes int
	// Timeout bounds each request (default DefaultTimeout).
	Timeout time.Duration
	// MaxAttempts bounds the requests made for a batch, retries included
	// (default DefaultMaxAttempts).
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait before a retry: it doubles
	// from MinBackoff at each attempt, with jitter, up to MaxBackoff. A
	// Retry-After answered by Langfuse is honoured up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Client sends the requests (default: a new http.Client).
	Client *http.Client
	// Logger receives the exporter's logs (default: discarded).
	Logger *slog.Logger
}

// Validate reports the first problem of the config.
func (c Config) Validate() error {
	u, err := url.Parse(c.Host)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("langfuse: config: Host %q is not an http(s) URL", c.Host)
	}
	if u.User != nil {
		return errors.New("langfuse: config: Host must not hold credentials (use PublicKey and SecretKey)")
	}
	if c.PublicKey == "" || c.SecretKey == "" {
		return errors.New("langfuse: config: PublicKey and SecretKey are required")
	}
	if err := checkEnvironment(c.Environment); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"QueueSize", int64(c.QueueSize)}, {"BatchSize", int64(c.BatchSize)},
		{"FlushInterval", int64(c.FlushInterval)}, {"MaxBatchBytes", int64(c.MaxBatchBytes)},
		{"Timeout", int64(c.Timeout)}, {"MaxAttempts", int64(c.MaxAttempts)},
		{"MinBackoff", int64(c.MinBackoff)}, {"MaxBackoff", int64(c.MaxBackoff)},
	} {
		if f.v < 0 {
			return fmt.Errorf("langfuse: config: %s is negative", f.name)
		}
	}
	return nil
}

// checkEnvironment checks an environment name as Langfuse does.
func checkEnvironment(env string) error {
	bad := len(env) > 40 || strings.HasPrefix(env, "langfuse")
	for i := 0; i < len(env) && !bad; i++ {
		c := env[i]
		bad = !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_')
	}
	if bad {
		return fmt.Errorf("langfuse: config: Environment %q: want at most 40 of a-z, 0-9, '-', '_', not starting with \"langfuse\"", env)
	}
	return nil
}

// LogValue logs the config without its secret key.
func (c Config) LogValue() slog.Value {
	secret := ""
	if c.SecretKey != "" {
		secret = "REDACTED"
	}
	return slog.GroupValue(
		slog.String("host", c.Host),
		slog.String("public_key", c.PublicKey),
		slog.String("secret_key", secret),
		slog.Bool("capture_content", c.CaptureContent),
		slog.String("environment", c.Environment),
		slog.Int("queue_size", c.QueueSize),
		slog.Int("batch_size", c.BatchSize),
	)
}

// String describes the config without its secret key (so that printing
// a Config with fmt never shows it).
func (c Config) String() string { return c.LogValue().String() }

// Stats are an exporter's counters since it was made. Dropped counts
// records; the others count ingestion events (two per record).
type Stats struct {
	// Dropped: records not queued because the queue was full, or
	// observed after Close.
	Dropped int64
	// Exported: events Langfuse accepted.
	Exported int64
	// Rejected: events Langfuse answered with a 4xx of their own in a 207
	// (invalid; not retried).
	Rejected int64
	// Failed: events given up: attempts exhausted, an error status for
	// the whole batch other than 429 and 5xx (e.g. 401), a record that
	// cannot be encoded or is too large, or Close's deadline.
	Failed int64
}

// Exporter sends call records to Langfuse. It implements gateway.Telemetry
// and is safe for concurrent use. Make it with [New]; stop it with
// [Exporter.Close].
type Exporter struct {
	cfg      Config
	endpoint string
	auth     string // the Authorization header value
	client   *http.Client
	log      *slog.Logger

	queue     chan *gateway.CallRecord
	closed    atomic.Bool
	closeOnce sync.Once
	quit      chan struct{} // closed by Close: drain and stop
	done      chan struct{} // closed when the worker has stopped
	ctx       context.Context
	cancel    context.CancelFunc // aborts requests and waits (Close's deadline)

	dropped, exported, rejected, failed atomic.Int64
	lastDropLogged                      atomic.Int64 // dropped when last logged
	abandoned                           atomic.Int64 // events failed by Close's deadline
}

var _ gateway.Telemetry = (*Exporter)(nil)

// New validates cfg, fills in its defaults and starts the exporter's
// background goroutines; Close stops them.
func New(cfg Config) (*Exporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	endpoint, err := url.JoinPath(cfg.Host, ingestionPath)
	if err != nil {
		return nil, fmt.Errorf("langfuse: config: Host %q: %w", cfg.Host, err)
	}
	setDefault(&cfg.QueueSize, DefaultQueueSize)
	setDefault(&cfg.BatchSize, DefaultBatchSize)
	setDefault(&cfg.FlushInterval, DefaultFlushInterval)
	setDefault(&cfg.MaxBatchBytes, DefaultMaxBatchBytes)
	setDefault(&cfg.Timeout, DefaultTimeout)
	setDefault(&cfg.MaxAttempts, DefaultMaxAttempts)
	setDefault(&cfg.MinBackoff, DefaultMinBackoff)
	setDefault(&cfg.MaxBackoff, DefaultMaxBackoff)
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Exporter{
		cfg:      cfg,
		endpoint: endpoint,
		auth:     "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.PublicKey+":"+cfg.SecretKey)),
		client:   cfg.Client,
		log:      cfg.Logger.With(slog.String("exporter", "langfuse")),
		queue:    make(chan *gateway.CallRecord, cfg.QueueSize),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		ctx:      ctx,
		cancel:   cancel,
	}
	go e.run()
	go e.reportDrops()
	return e, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// Observe queues r for export and returns at once; when the queue is full
// (or the exporter is closed) r is dropped and counted. The exporter
// keeps r until it is sent: the caller must not modify it (nor its Usage,
// Guardrails, Input or Output) after Observe.
func (e *Exporter) Observe(r *gateway.CallRecord) {
	if r == nil || e.cfg.SampledOnly && !r.Sampled {
		return
	}
	if e.closed.Load() {
		e.dropped.Add(1)
		return
	}
	select {
	case e.queue <- r:
	default:
		e.dropped.Add(1)
	}
}

// Dropped is the number of records dropped because the queue was full or
// the exporter closed.
func (e *Exporter) Dropped() int64 { return e.dropped.Load() }

// Stats returns the exporter's counters.
func (e *Exporter) Stats() Stats {
	return Stats{
		Dropped:  e.dropped.Load(),
		Exported: e.exported.Load(),
		Rejected: e.rejected.Load(),
		Failed:   e.failed.Load(),
	}
}

// Close stops accepting records and exports those queued, retries
// included, within ctx. When ctx ends first it aborts the export in
// flight, counts what was not sent as failed and returns an error
// wrapping ctx's. Records observed concurrently with Close may be
// dropped.
// Calling Close again waits for the first call's work to end.
func (e *Exporter) Close(ctx context.Context) error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		close(e.quit)
	})
	var err error
	select {
	case <-e.done:
	case <-ctx.Done():
		e.cancel()
		<-e.done
		if n := e.abandoned.Load(); n > 0 {
			e.log.Warn("langfuse: close: events not exported before the deadline", slog.Int64("events", n))
			err = fmt.Errorf("langfuse: close: %d events not exported: %w", n, ctx.Err())
		}
	}
	e.cancel()
	// Records that slipped in after the worker's last drain.
drain:
	for {
		select {
		case <-e.queue:
			e.dropped.Add(1)
		default:
			break drain
		}
	}
	e.logDrops()
	return err
}

// run is the worker: it batches queued records by count and time and
// exports them, until Close.
func (e *Exporter) run() {
	defer close(e.done)
	batch := make([]*gateway.CallRecord, 0, e.cfg.BatchSize)
	flush := func() {
		if len(batch) > 0 {
			e.exportRecords(e.ctx, batch)
			clear(batch)
			batch = batch[:0]
		}
	}
	tick := time.NewTicker(e.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case r := <-e.queue:
			batch = append(batch, r)
			if len(batch) >= e.cfg.BatchSize {
				flush()
			}
		case <-tick.C:
			flush()
		case <-e.quit:
			for {
				select {
				case r := <-e.queue:
					batch = append(batch, r)
					if len(batch) >= e.cfg.BatchSize {
						flush()
					}
				default:
					flush()
					return
				}
			}
		}
	}
}

// reportDrops logs records dropped since its last line, at most once per
// DropLogInterval, until Close.
func (e *Exporter) reportDrops() {
	tick := time.NewTicker(DropLogInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			e.logDrops()
		case <-e.done:
			return
		}
	}
}

// logDrops logs the drops since it last did, if any.
func (e *Exporter) logDrops() {
	n := e.dropped.Load()
	if prev := e.lastDropLogged.Swap(n); n > prev {
		e.log.Warn("langfuse: queue full: call records dropped",
			slog.Int64("dropped", n-prev), slog.Int64("dropped_total", n), slog.Int("queue_size", e.cfg.QueueSize))
	}
}
