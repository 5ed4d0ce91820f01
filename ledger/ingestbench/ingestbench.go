// Package ingestbench is the reproducible ingest load of the ledger: in one
// process, producers publish realistic gateway events through
// [jetstream.Producer] (fail-closed, with Nats-Msg-Id dedupe) to JetStream
// (an embedded nats-server by default), the sequencing loop
// ([jetstream.StartSequencer]) appends them to a store, and [Run] reports the
// offered, published and committed rates, publish-to-ack latency, the
// backlog over the measured window, the sequencer's lag and catch-up time,
// the CPU used per event, and then checks that every published event is in
// its log exactly once and that the log verifies. `aigw bench ingest` runs it.
package ingestbench

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"aigw/ledger"
	"aigw/ledger/jetstream"
	"aigw/ledger/postgres"
	"aigw/ledger/sequencer"
	"aigw/ledger/signer"
	"aigw/ledger/sqlite"
	"aigw/verify"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/time/rate"
)

// Config configures a load run. The zero value (after [Config.Validate]
// applies the defaults) is a 10 s open-loop run of 64 fail-closed producers
// of 1 KiB events into SQLite in a temporary directory, through an embedded
// nats-server.
type Config struct {
	// Store is "sqlite" (default) or "postgres".
	Store string
	// DSN is the PostgreSQL connection string (required for postgres; use a
	// scratch database: the run adds logs of its own and leaves them), or the
	// SQLite file ("" is a file in a temporary directory, removed after).
	DSN string
	// NATSURL is the NATS server to use; "" runs an embedded one with its
	// store in a temporary directory (as `aigw serve` does) and connects to it
	// in-process.
	NATSURL string
	// Rate is the offered load in events/s over all producers; 0 is an open
	// loop: every producer publishes its next event as soon as the last is
	// acknowledged.
	Rate int
	// Duration is the measured window (default 10s), after Warmup (default 3s).
	Duration, Warmup time.Duration
	// Producers is the number of publishing goroutines (default 64), like
	// concurrent gateway requests.
	Producers int
	// EventSize is the size of each entry in bytes (default 1024);
	// PayloadSize, if not 0, adds a payload of that size to every event.
	EventSize, PayloadSize int
	// Mode is "sync" (default: each publish waits for its PubAck, the
	// gateway's fail-closed mode) or "async" (PublishAsync, futures awaited
	// by a second goroutine per producer).
	Mode string
	// Batch is the sequencer's batch (default 500), and MaxWait how long a
	// fetch waits to fill one (default jetstream.DefaultMaxWait).
	Batch   int
	MaxWait time.Duration
	// Logs is how many tenant logs the events are spread over (default 1);
	// Partitions how many stream partitions (default 1), all sequenced here.
	Logs, Partitions int
	// CatchUpTimeout bounds the wait for the sequencer to drain the backlog
	// after the producers stop (default 5m).
	CatchUpTimeout time.Duration
	// SkipVerify skips the verification of the logs after the count check.
	SkipVerify bool
	// GCPercent, if not 0, sets the garbage collector's target
	// (debug.SetGCPercent) for the run; the ledger's encoding allocates
	// enough that GC is a large share of the CPU at the default of 100.
	GCPercent int
	// Logger receives operational logs of the pipeline; nil discards them.
	Logger *slog.Logger
}

// Flags registers the configuration's flags on fs, for `aigw bench ingest`.
func (c *Config) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Store, "store", "sqlite", `store: "sqlite" or "postgres"`)
	fs.StringVar(&c.DSN, "dsn", "", "PostgreSQL DSN (a scratch database), or SQLite file (default: a temporary file)")
	fs.StringVar(&c.NATSURL, "nats", "", "NATS URL (default: an embedded nats-server in a temporary directory)")
	fs.IntVar(&c.Rate, "rate", 0, "offered events/s over all producers (0: open loop)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured window")
	fs.DurationVar(&c.Warmup, "warmup", 3*time.Second, "warm-up before the window")
	fs.IntVar(&c.Producers, "producers", 64, "publishing goroutines")
	fs.IntVar(&c.EventSize, "event-size", 1024, "entry size in bytes")
	fs.IntVar(&c.PayloadSize, "payload-size", 0, "payload size in bytes (0: no payload)")
	fs.StringVar(&c.Mode, "mode", "sync", `publish mode: "sync" (fail-closed) or "async"`)
	fs.IntVar(&c.Batch, "batch", 500, "sequencer batch")
	fs.DurationVar(&c.MaxWait, "max-wait", 0, "how long a fetch waits to fill a batch (0: the default)")
	fs.IntVar(&c.Logs, "logs", 1, "tenant logs")
	fs.IntVar(&c.Partitions, "partitions", 1, "stream partitions")
	fs.BoolVar(&c.SkipVerify, "skip-verify", false, "skip verifying the logs after the run")
	fs.IntVar(&c.GCPercent, "gc-percent", 0, "GOGC for the run (0: the process's setting)")
}

// Validate checks the configuration and fills in the defaults.
func (c *Config) Validate() error {
	if c.Store == "" {
		c.Store = "sqlite"
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = 3 * time.Second
	}
	if c.Producers == 0 {
		c.Producers = 64
	}
	if c.EventSize == 0 {
		c.EventSize = 1024
	}
	if c.Mode == "" {
		c.Mode = "sync"
	}
	if c.Batch == 0 {
		c.Batch = jetstream.DefaultBatch
	}
	if c.Logs == 0 {
		c.Logs = 1
	}
	if c.Partitions == 0 {
		c.Partitions = 1
	}
	if c.CatchUpTimeout == 0 {
		c.CatchUpTimeout = 5 * time.Minute
	}
	switch {
	case c.Store != "sqlite" && c.Store != "postgres":
		return fmt.Errorf("ingestbench: store %q; want sqlite or postgres", c.Store)
	case c.Store == "postgres" && c.DSN == "":
		return errors.New("ingestbench: postgres needs a DSN")
	case c.Mode != "sync" && c.Mode != "async":
		return fmt.Errorf("ingestbench: mode %q; want sync or async", c.Mode)
	case c.Rate < 0 || c.Producers < 1 || c.Duration < 0 || c.Warmup < 0 || c.Logs < 1 || c.Logs > 1000:
		return errors.New("ingestbench: negative rate or duration, or producers or logs out of range")
	case c.EventSize < 512 || c.EventSize > ledger.MaxEntrySize:
		return fmt.Errorf("ingestbench: event size %d; want 512 to %d", c.EventSize, ledger.MaxEntrySize)
	case c.PayloadSize < 0:
		return errors.New("ingestbench: negative payload size")
	}
	return nil
}

// Report is the outcome of a run. Rates are per second over the measured
// window.
type Report struct {
	Config Config // as run, the DSN's password redacted

	Offered   float64 // target rate, 0 for an open loop
	Published float64 // events acknowledged by JetStream
	Committed float64 // events appended to the logs

	// Publish-to-ack latency of the events acknowledged in the window.
	P50, P99, P999, Max time.Duration
	// PublishErrors counts publishes that failed (backpressure) in the window.
	PublishErrors uint64

	// Backlog (events in the stream not yet acknowledged by the sequencer)
	// at the start and end of the window, and sampled every second.
	BacklogStart, BacklogEnd uint64
	BacklogSamples           []uint64
	// BacklogSlope is the backlog's growth over the window (least squares
	// over the samples), in events/s; it is flat if under 1% of Committed.
	BacklogSlope float64
	// LagAfter is the backlog when the producers stopped, and CatchUp the
	// time the sequencer took to commit it.
	LagAfter uint64
	CatchUp  time.Duration

	// CPU used by this process in the window (getrusage), per committed
	// event; MachineCores is the machine's busy CPU in the window (/proc/stat,
	// every process, the database server included), and MachinePerEvent per
	// committed event.
	CPUSeconds, CPUPerEvent       float64 // s, µs
	MachineCores, MachinePerEvent float64 // cores, µs
	Batches                       uint64
	AvgBatch                      float64
	// SequencerBusy is the share of the window the sequencing loop spent
	// appending and acknowledging, averaged over partitions (near 1: it is
	// the bottleneck).
	SequencerBusy float64
	// SequencerAppending is the share of the window spent in
	// Sequencer.Append (checking, hashing, the store transaction).
	SequencerAppending          float64
	TotalPublished, TotalFailed int    // over the whole run
	Entries, Duplicates         uint64 // in the logs after the run; duplicates skipped by the sequencer
	CountOK, Verified           bool
	VerifyTime                  time.Duration
	Elapsed                     time.Duration
}

// Run runs the load and writes a human-readable report to out. It fails if
// the count check or the verification fails (the Report says which).
func Run(ctx context.Context, cfg Config, out io.Writer) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	rep := Report{Config: cfg, Offered: float64(cfg.Rate)}
	if cfg.GCPercent != 0 {
		defer debug.SetGCPercent(debug.SetGCPercent(cfg.GCPercent))
	}
	rep.Config.DSN = redact(cfg.DSN)
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	began := time.Now()
	tmp, err := os.MkdirTemp("", "ingestbench-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(tmp)

	// NATS.
	var nc *nats.Conn
	if cfg.NATSURL == "" {
		srv, err := jetstream.RunEmbedded(jetstream.EmbeddedConfig{StoreDir: filepath.Join(tmp, "nats"), Port: -1, Logger: lg})
		if err != nil {
			return rep, err
		}
		defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
		nc, err = nats.Connect(srv.ClientURL(), nats.InProcessServer(srv))
		if err != nil {
			return rep, fmt.Errorf("ingestbench: connect: %w", err)
		}
	} else {
		nc, err = nats.Connect(cfg.NATSURL)
		if err != nil {
			return rep, fmt.Errorf("ingestbench: connect to %s: %w", cfg.NATSURL, err)
		}
	}
	defer nc.Close()
	js, err := njs.New(nc)
	if err != nil {
		return rep, err
	}
	id := randHex(4)
	stream := jetstream.StreamConfig{Name: "INGESTBENCH_" + id, SubjectPrefix: "ingestbench." + id, Partitions: cfg.Partitions, MaxBytes: -1}
	if _, err := jetstream.EnsureStream(ctx, js, stream); err != nil {
		return rep, err
	}
	defer js.DeleteStream(context.Background(), stream.Name)

	// Store, signer, sequencer.
	var store ledger.Store
	switch cfg.Store {
	case "postgres":
		store, err = postgres.Open(ctx, postgres.Config{DSN: cfg.DSN, Logger: lg})
	default:
		path := cfg.DSN
		if path == "" {
			path = filepath.Join(tmp, "ledger.db")
		}
		store, err = sqlite.Open(ctx, sqlite.Config{Path: path, Logger: lg})
	}
	if err != nil {
		return rep, err
	}
	defer store.Close()
	const origin = "ingestbench.aigw.local/ledger"
	key, _, err := signer.Generate(origin)
	if err != nil {
		return rep, err
	}
	seq, err := sequencer.New(sequencer.Config{Store: store, Signer: key, OriginPrefix: origin, Logger: lg})
	if err != nil {
		return rep, err
	}
	var metrics jetstream.Metrics
	shutdown, err := jetstream.StartSequencer(ctx, jetstream.SequencerConfig{
		Conn: nc, Stream: stream, Sequencer: seq, Store: store, Batch: cfg.Batch, MaxWait: cfg.MaxWait, Metrics: &metrics, Logger: lg,
	})
	if err != nil {
		return rep, err
	}
	defer shutdown(context.Background())
	prod, err := jetstream.NewProducer(jetstream.ProducerConfig{Conn: nc, Stream: stream, Logger: lg})
	if err != nil {
		return rep, err
	}
	logs := make([]string, cfg.Logs)
	for i := range logs {
		logs[i] = fmt.Sprintf("bench-%s-%d", id, i)
	}
	gen, err := newGenerator(logs, cfg.EventSize, cfg.PayloadSize)
	if err != nil {
		return rep, err
	}
	backlog := func() uint64 {
		var n uint64
		for p := range cfg.Partitions {
			b, err := jetstream.Backlog(ctx, js, stream, p)
			if err != nil {
				return 0
			}
			n += b
		}
		return n
	}

	// Producers.
	fmt.Fprintf(out, "ingestbench: %s, %s publish, %d producers, %s, %d-byte events, batch %d, %d log(s), NATS %s; warm-up %v, window %v\n",
		cfg.Store, cfg.Mode, cfg.Producers, rateText(cfg.Rate), cfg.EventSize, cfg.Batch, cfg.Logs, natsText(cfg.NATSURL), cfg.Warmup, cfg.Duration)
	var lim *rate.Limiter
	if cfg.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.Rate), max(cfg.Producers, cfg.Rate/100))
	}
	var measuring atomic.Bool
	var published, failed atomic.Uint64
	// Producers stop between publishes, so that no publish is abandoned
	// half-way: every event is either acknowledged or failed with an error.
	var stop atomic.Bool
	workers := make([]*worker, cfg.Producers)
	var wg sync.WaitGroup
	defer func() { stop.Store(true); wg.Wait() }() // on an early return
	for i := range workers {
		w := &worker{gen: gen.clone(uint64(i)), prod: prod, lim: lim, stop: &stop, measuring: &measuring, published: &published, failed: &failed}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cfg.Mode == "async" {
				w.runAsync(ctx, max(4, jetstream.DefaultMaxPending/cfg.Producers))
			} else {
				w.runSync(ctx)
			}
		}()
	}

	// Warm-up, then the window.
	if !sleep(ctx, cfg.Warmup) {
		return rep, ctx.Err()
	}
	type mark struct {
		t                  time.Time
		published, failed  uint64
		committed, batches uint64
		busy, appending    time.Duration
		cpu, machine       float64
	}
	take := func() mark {
		s := metrics.Snapshot()
		m := mark{t: time.Now(), published: published.Load(), failed: failed.Load(), committed: s.Appended(), cpu: processCPU(), machine: machineBusy()}
		for _, p := range s.Partitions {
			m.batches += p.Batches
			m.busy += p.Busy
			m.appending += p.Appending
		}
		return m
	}
	measuring.Store(true)
	m0 := take()
	rep.BacklogStart = backlog()
	for elapsed := time.Duration(0); elapsed < cfg.Duration; {
		step := min(time.Second, cfg.Duration-elapsed)
		if !sleep(ctx, step) {
			return rep, ctx.Err()
		}
		elapsed += step
		rep.BacklogSamples = append(rep.BacklogSamples, backlog())
	}
	m1 := take()
	measuring.Store(false)
	rep.BacklogEnd = rep.BacklogSamples[len(rep.BacklogSamples)-1]
	rep.BacklogSlope = slope(append([]uint64{rep.BacklogStart}, rep.BacklogSamples...))
	win := m1.t.Sub(m0.t).Seconds()
	rep.Published = float64(m1.published-m0.published) / win
	rep.Committed = float64(m1.committed-m0.committed) / win
	rep.PublishErrors = m1.failed - m0.failed
	rep.CPUSeconds = m1.cpu - m0.cpu
	rep.MachineCores = (m1.machine - m0.machine) / win
	rep.SequencerBusy = (m1.busy - m0.busy).Seconds() / win / float64(cfg.Partitions)
	rep.SequencerAppending = (m1.appending - m0.appending).Seconds() / win / float64(cfg.Partitions)
	if n := m1.committed - m0.committed; n > 0 {
		rep.CPUPerEvent = rep.CPUSeconds / float64(n) * 1e6
		rep.MachinePerEvent = (m1.machine - m0.machine) / float64(n) * 1e6
		rep.Batches = m1.batches - m0.batches
		rep.AvgBatch = float64(n) / float64(max(rep.Batches, 1))
	}

	// Stop the producers; time the catch-up.
	stop.Store(true)
	wg.Wait()
	if err := prod.Flush(ctx); err != nil && cfg.Mode == "async" {
		lg.Warn("flush", "err", err)
	}
	acked := map[eventKey]bool{}
	maybe := map[eventKey]bool{}
	var lat []time.Duration
	for _, w := range workers {
		for _, id := range w.acked {
			acked[id] = true
		}
		for _, id := range w.failedIDs {
			maybe[id] = true
		}
		lat = append(lat, w.lat...)
	}
	rep.TotalPublished, rep.TotalFailed = len(acked), len(maybe)
	slices.Sort(lat)
	rep.P50, rep.P99, rep.P999 = quantile(lat, 0.50), quantile(lat, 0.99), quantile(lat, 0.999)
	if len(lat) > 0 {
		rep.Max = lat[len(lat)-1]
	}
	rep.LagAfter = backlog()
	t0 := time.Now()
	deadline := t0.Add(cfg.CatchUpTimeout)
	for metrics.Snapshot().Appended() < uint64(len(acked)) || backlog() > 0 {
		if time.Now().After(deadline) {
			return rep, fmt.Errorf("ingestbench: sequencer did not catch up within %v: %d of %d appended", cfg.CatchUpTimeout, metrics.Snapshot().Appended(), len(acked))
		}
		if !sleep(ctx, 10*time.Millisecond) {
			return rep, ctx.Err()
		}
	}
	rep.CatchUp = time.Since(t0)
	if err := shutdown(ctx); err != nil {
		return rep, err
	}
	for _, p := range metrics.Snapshot().Partitions {
		rep.Duplicates += p.Duplicates
	}

	// Count check, then verification.
	countErr := countCheck(ctx, store, logs, acked, maybe, &rep)
	rep.CountOK = countErr == nil
	var verr error
	if !cfg.SkipVerify && countErr == nil {
		v0 := time.Now()
		verr = verifyLogs(ctx, store, logs, key.Verifier())
		rep.VerifyTime = time.Since(v0)
		rep.Verified = verr == nil
	}
	rep.Elapsed = time.Since(began)
	rep.Print(out)
	if err := errors.Join(countErr, verr); err != nil {
		return rep, fmt.Errorf("ingestbench: %w", err)
	}
	return rep, nil
}

// countCheck reads every log and checks that each acknowledged event is in
// it exactly once, that no event is there twice, and that every entry is
// an event the run published (acknowledged, or failed with backpressure and
// so possibly stored).
func countCheck(ctx context.Context, s ledger.Store, logs []string, acked, maybe map[eventKey]bool, rep *Report) error {
	seen := make(map[eventKey]bool, len(acked))
	for _, log := range logs {
		for start := uint64(0); ; {
			es, err := s.ReadEntries(ctx, log, start, 10000)
			if err != nil {
				return fmt.Errorf("read log %q at %d: %w", log, start, err)
			}
			if len(es) == 0 {
				break
			}
			for _, e := range es {
				if !ledger.ValidEventID(e.EventID) {
					return fmt.Errorf("log %q: entry %d has event id %q", log, e.Index, e.EventID)
				}
				k := keyOf(e.EventID)
				if e.Index != start {
					return fmt.Errorf("log %q: entry %d missing (next is %d)", log, start, e.Index)
				}
				if seen[k] {
					return fmt.Errorf("log %q: event %s appended twice (again at %d)", log, e.EventID, e.Index)
				}
				if !acked[k] && !maybe[k] {
					return fmt.Errorf("log %q: entry %d is event %s, which the run never published", log, e.Index, e.EventID)
				}
				seen[k] = true
				start++
			}
			rep.Entries += uint64(len(es))
		}
	}
	missing := 0
	for id := range acked {
		if !seen[id] {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d acknowledged events are in no log", missing)
	}
	return nil
}

func verifyLogs(ctx context.Context, s ledger.Store, logs []string, v note.Verifier) error {
	for _, log := range logs {
		if _, err := verify.Log(ctx, verify.StoreSource(s), log, verify.Options{Verifiers: note.VerifierList(v)}); err != nil {
			return fmt.Errorf("verify log %q: %w", log, err)
		}
	}
	return nil
}

// Print writes the report.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "offered     %s\n", rateText(int(r.Offered)))
	fmt.Fprintf(w, "published   %.0f ev/s (%d publish errors in the window)\n", r.Published, r.PublishErrors)
	fmt.Fprintf(w, "committed   %.0f ev/s in %d batches (avg %.0f); sequencer busy %.0f%% of the window (appending %.0f%%)\n", r.Committed, r.Batches, r.AvgBatch, 100*r.SequencerBusy, 100*r.SequencerAppending)
	fmt.Fprintf(w, "publish→ack p50 %v  p99 %v  p99.9 %v  max %v\n", round(r.P50), round(r.P99), round(r.P999), round(r.Max))
	fmt.Fprintf(w, "backlog     %d → %d (%s, %+.0f ev/s); per second %v\n", r.BacklogStart, r.BacklogEnd, r.Trend(), r.BacklogSlope, r.BacklogSamples)
	fmt.Fprintf(w, "lag after   %d events, caught up in %v\n", r.LagAfter, round(r.CatchUp))
	fmt.Fprintf(w, "cpu         process %.2f s = %.1f µs/event; machine %.2f cores busy = %.1f µs/event\n", r.CPUSeconds, r.CPUPerEvent, r.MachineCores, r.MachinePerEvent)
	fmt.Fprintf(w, "check       %d published (+%d failed), %d entries, %d redeliveries skipped: count %s, verify %s (%v)\n",
		r.TotalPublished, r.TotalFailed, r.Entries, r.Duplicates, okText(r.CountOK), verifyText(r), round(r.VerifyTime))
}

// slope is the least-squares slope of samples taken every second.
func slope(ys []uint64) float64 {
	n := float64(len(ys))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i, y := range ys {
		x := float64(i)
		sx, sy, sxx, sxy = sx+x, sy+float64(y), sxx+x*x, sxy+x*float64(y)
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}

// Trend says whether the backlog was flat over the window.
func (r *Report) Trend() string {
	switch limit := max(0.01*r.Committed, 10); {
	case r.BacklogSlope > limit:
		return "GROWING"
	case r.BacklogSlope < -limit:
		return "shrinking"
	}
	return "flat"
}

func okText(ok bool) string {
	if ok {
		return "OK"
	}
	return "FAILED"
}

func verifyText(r *Report) string {
	switch {
	case r.Config.SkipVerify:
		return "skipped"
	case !r.CountOK:
		return "not run"
	}
	return okText(r.Verified)
}

func rateText(r int) string {
	if r == 0 {
		return "open loop"
	}
	return strconv.Itoa(r) + " ev/s"
}

func natsText(url string) string {
	if url == "" {
		return "embedded"
	}
	return url
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(time.Millisecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// machineBusy returns the machine's busy CPU seconds (/proc/stat: all but
// idle and iowait), or 0 where there is no /proc/stat.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, s := range f[1:] {
		v, _ := strconv.ParseFloat(s, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy / 100 // USER_HZ
}

func randHex(n int) string {
	b := make([]byte, n)
	crand.Read(b)
	return hex.EncodeToString(b)
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	if strings.Contains(dsn, "password=") {
		return "(DSN with a password)"
	}
	return dsn
}
