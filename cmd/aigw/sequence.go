package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"aigw/ledger"
	"aigw/ledger/jetstream"
	"aigw/ledger/sequencer"
	"aigw/ledger/signer"

	"github.com/nats-io/nats.go"
	"golang.org/x/mod/sumdb/note"
)

// SequenceCommand runs a ledger sequencer alone: for gateways that sequence
// nothing themselves (ledger.sequence: []), and as the child process of
// `aigw serve` with ledger.sequencer_process.
type SequenceCommand struct{ *Main }

// execMainEnv, set in a sequencer process's environment, makes a test
// binary run aigw's main instead of its tests (TestMain), so that tests of
// serve start real sequencer processes. aigw itself ignores it.
const execMainEnv = "AIGW_EXEC_MAIN"

func (c *SequenceCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aigw sequence", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var lf ledgerFlags
	lf.register(fs)
	key := fs.String("key", "", "checkpoint key: a key file or KMS URI (default DATA_DIR/checkpoint.key)")
	var trust multiFlag
	fs.Var(&trust, "trust-key", "verifier key of an earlier checkpoint key, after a rotation (repeatable)")
	child := fs.Bool("child", false, "run as the sequencer process of aigw serve: its configuration on stdin, counters on stdout, exit when stdin ends")
	verbose := fs.Bool("v", false, "debug logging")
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage: aigw sequence [flags]

Runs the ledger's sequencer alone: it takes the events the gateways recorded
in JetStream, appends them to the ledger's logs and signs their checkpoints,
for the partitions in ledger.sequence (default: all). Run it next to gateways
configured with ledger.sequence: [] on the same NATS and database; without
-nats-url it uses the embedded NATS of an aigw serve on the same data
directory (give that one a fixed ledger.nats_listen port: by default it
picks a new one at every start, and this command, connected to the old
one, would not follow). Several may run: each partition is
sequenced by one at a time.

aigw serve starts one itself, as its child process, with
ledger.sequencer_process: true.
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	lg := newLogger(c.Stderr, *verbose)
	if *child {
		return c.child(ctx, lg)
	}
	cfg, err := lf.load()
	if err != nil {
		return err
	}
	if *key != "" {
		cfg.Ledger.Key = *key
	}
	cfg.Ledger.TrustedKeys = append(cfg.Ledger.TrustedKeys, trust...)
	url, err := ledgerNATSURL(cfg, "sequence from")
	if err != nil {
		return err
	}
	s, err := startSequencing(ctx, cfg, url, lg)
	if err != nil {
		return err
	}
	lg.Info("aigw sequencing", "store", storeKind(cfg), "nats", redactNATS(url))
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return s.close(sctx)
}

// sequencing is a running sequencer with what it holds open.
type sequencing struct {
	store    ledger.Store
	nc       *nats.Conn
	metrics  *jetstream.Metrics
	shutdown func(context.Context) error
	stop     context.CancelFunc
}

// startSequencing opens the store and the checkpoint key, checks that the
// key may extend every log, and sequences cfg.Ledger.Sequence's partitions
// from the NATS at url, until close.
func startSequencing(ctx context.Context, cfg Config, url string, lg *slog.Logger) (_ *sequencing, err error) {
	store, err := openStore(ctx, cfg, lg.With("component", "store"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			store.Close()
		}
	}()
	key, err := loadSigner(ctx, cfg, lg)
	if err != nil {
		return nil, err
	}
	trusted, err := trustedVerifiers(cfg)
	if err != nil {
		return nil, err
	}
	seq, err := newSequencer(ctx, store, key, trusted, cfg.Ledger.Origin, lg)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, nats.Name("aigw-sequencer"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", redactNATS(url), err)
	}
	metrics := &jetstream.Metrics{}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	// No Busy: the process's priority does the deferring (seqProcess).
	shutdown, err := jetstream.StartSequencer(sctx, sequencerConfig(cfg, nc, seq, store, metrics, lg))
	if err != nil {
		stop()
		nc.Close()
		return nil, err
	}
	return &sequencing{store: store, nc: nc, metrics: metrics, shutdown: shutdown, stop: stop}, nil
}

// close stops sequencing (the batch in flight is finished) and releases
// the connection and the store.
func (s *sequencing) close(ctx context.Context) error {
	err := s.shutdown(ctx)
	s.stop()
	s.nc.Drain()
	s.store.Close()
	return err
}

// newSequencer returns the sequencer of the checkpoint key, after checking
// that the key may extend every log in store: better to refuse to start,
// loudly, than to run a sequencer that fails every batch.
func newSequencer(ctx context.Context, store ledger.Store, key *signer.Signer, trusted []note.Verifier, origin string, lg *slog.Logger) (*sequencer.Sequencer, error) {
	seq, err := sequencer.New(sequencer.Config{Store: store, Signer: key, OriginPrefix: origin, Verifiers: trusted, Logger: lg.With("component", "sequencer")})
	if err != nil {
		return nil, err
	}
	logs, err := store.Logs(ctx)
	if err != nil {
		return nil, err
	}
	for _, log := range logs {
		if _, err := seq.Head(ctx, log); err != nil {
			return nil, fmt.Errorf("%w (if the checkpoint key was rotated, pass the old verifier key with -trust-key)", err)
		}
	}
	return seq, nil
}

// sequencerConfig is the sequencing of cfg's partitions by seq, from nc's
// JetStream into store, the same in serve's process and in a sequencer
// process.
func sequencerConfig(cfg Config, nc *nats.Conn, seq *sequencer.Sequencer, store ledger.Store, metrics *jetstream.Metrics, lg *slog.Logger) jetstream.SequencerConfig {
	return jetstream.SequencerConfig{
		Conn: nc, Stream: streamConfig(cfg), Partitions: cfg.Ledger.Sequence, Sequencer: seq, Store: store,
		Batch: cfg.Ledger.Batch, Metrics: metrics, Logger: lg.With("component", "sequencer"), Linger: cfg.Ledger.Linger,
	}
}

// childSpec is what serve sends its sequencer process, as one JSON line
// on its stdin: the ledger's configuration as serve resolved it (secrets
// included, which is why it goes through a pipe and not the command line
// or the environment). The checkpoint key is not in it: the child loads it
// from its store, as serve does.
type childSpec struct {
	DataDir string
	Ledger  LedgerConfig
	// NATSURL is where the child reaches JetStream: serve's embedded
	// server, or the external one.
	NATSURL string
	// Idle: run at the lowest CPU priority (idlePriority); else at
	// serve's.
	Idle bool
	// Verbose: log at debug level, as serve -v does.
	Verbose bool `json:",omitempty"`
}

// childReport is one JSON line on a sequencer process's stdout.
type childReport struct {
	// Ready: sequencing has started.
	Ready bool `json:",omitempty"`
	// Metrics are the sequencer's counters.
	Metrics *jetstream.Snapshot `json:",omitempty"`
}

// schedIdle is Linux's SCHED_IDLE scheduling policy: a thread that runs
// only when no normal thread wants its CPU, and is preempted at once when
// one does (sched(7)). Unprivileged threads may take it, but not leave it:
// that is why a sequencer process that must catch up is replaced rather
// than raised.
const schedIdle = 5

// reportEvery is how often a sequencer process reports its counters: often
// enough for serve to tell a silent (starved) process within maxDefer.
func reportEvery(maxDefer time.Duration) time.Duration {
	if maxDefer <= 0 {
		maxDefer = jetstream.DefaultMaxDefer
	}
	return min(max(maxDefer/8, 10*time.Millisecond), 250*time.Millisecond)
}

// child runs the sequencer process of serve: the spec from stdin, then
// sequencing, with the counters on stdout, until stdin ends (serve closed
// it, or serve is gone).
func (c *SequenceCommand) child(ctx context.Context, lg *slog.Logger) error {
	in := bufio.NewReader(c.Stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("sequencer process: read the configuration from stdin: %w", err)
	}
	var spec childSpec
	if err := json.Unmarshal(line, &spec); err != nil {
		return fmt.Errorf("sequencer process: configuration: %w", err)
	}
	if spec.Verbose {
		lg = newLogger(c.Stderr, true)
	}
	lg = lg.With("pid", os.Getpid(), "idle", spec.Idle)
	if spec.Idle {
		if err := idlePriority(); err != nil {
			lg.Warn("sequencer process: could not lower its CPU priority; it competes with the gateway's calls", "err", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, in)
		cancel()
	}()
	cfg := Config{DataDir: spec.DataDir, Ledger: spec.Ledger}
	s, err := startSequencing(ctx, cfg, spec.NATSURL, lg)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.Stdout)
	report := func(r childReport) {
		if err := enc.Encode(r); err != nil {
			cancel() // serve is gone
		}
	}
	report(childReport{Ready: true})
	t := time.NewTicker(reportEvery(spec.Ledger.DeferUnderLoad))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			snap := s.metrics.Snapshot()
			report(childReport{Metrics: &snap})
		case <-ctx.Done():
			sctx, cancelShutdown := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancelShutdown()
			err := s.close(sctx)
			snap := s.metrics.Snapshot()
			report(childReport{Metrics: &snap})
			return err
		}
	}
}

// seqProcess is serve's sequencer process: started, watched and restarted
// when it exits, its counters copied into serve's metrics. It runs idle
// (at the lowest CPU priority) while it keeps up; one that falls maxDefer
// behind, or is not heard from for that long (starved), is replaced by one
// at serve's priority, itself replaced by an idle one once the backlog has
// stayed empty for calmFor (maxDefer, at least a second).
type seqProcess struct {
	exe      string
	cfg      Config
	natsURL  string
	stderr   io.Writer
	metrics  *jetstream.Metrics
	lg       *slog.Logger
	maxDefer time.Duration // negative: never idle
	calmFor  time.Duration

	stopc chan struct{} // closed by shutdown
	done  chan struct{} // closed when the last process has exited

	mu         sync.Mutex
	stopping   bool
	idle       bool // the mode of the process running or next started
	switching  bool // the running process is being replaced in the other mode
	stdin      io.Closer
	proc       *os.Process
	lastReport time.Time
	exitErr    error
}

// startSequencerProcess starts the sequencer process and returns once it
// sequences (or with its error); shutdown stops it, waiting for the batch
// in flight, and kills it when ctx ends first.
func startSequencerProcess(cfg Config, natsURL string, metrics *jetstream.Metrics, stderr io.Writer, lg *slog.Logger) (shutdown func(context.Context) error, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("sequencer process: %w", err)
	}
	maxDefer := cfg.Ledger.DeferUnderLoad
	if maxDefer == 0 {
		maxDefer = jetstream.DefaultMaxDefer
	}
	p := &seqProcess{exe: exe, cfg: cfg, natsURL: natsURL, stderr: stderr, metrics: metrics, lg: lg,
		maxDefer: maxDefer, calmFor: max(maxDefer, time.Second), idle: maxDefer > 0,
		stopc: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan error, 1)
	go p.supervise(ready)
	select {
	case err := <-ready:
		if err != nil {
			p.shutdown(context.Background())
			return nil, err
		}
	case <-time.After(2 * time.Minute):
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p.shutdown(ctx)
		return nil, errors.New("sequencer process: not ready after 2 minutes")
	}
	return p.shutdown, nil
}

// supervise runs the process, and runs it again when it exits, until
// shutdown. ready receives nil when the first process sequences, or the
// error of one that exits before it did (serve does not start then); a
// process replaced in the other mode before it was ready does not count.
func (p *seqProcess) supervise(ready chan<- error) {
	defer close(p.done)
	backoff := time.Second
	for {
		started := time.Now()
		ok, err := p.run(ready)
		if ok {
			ready = nil
		}
		p.mu.Lock()
		stopping, switching := p.stopping, p.switching
		p.switching = false
		if stopping {
			p.exitErr = err
		}
		p.mu.Unlock()
		switch {
		case stopping:
			return
		case switching:
			continue // replaced on purpose, in the other mode
		case ready != nil:
			ready <- err
			return
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		p.lg.Error("sequencer process exited; starting it again", "err", err, "after", backoff)
		select {
		case <-time.After(backoff):
		case <-p.stopc:
			return
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// run starts the process and waits for it to exit. ok reports whether it
// became ready (sequenced); ready, if set, receives nil then.
func (p *seqProcess) run(ready chan<- error) (ok bool, err error) {
	p.mu.Lock()
	idle := p.idle
	p.mu.Unlock()
	ledgerCfg := p.cfg.Ledger
	ledgerCfg.ReadToken = "" // the read API is serve's: a secret the child has no use for
	spec, err := json.Marshal(childSpec{DataDir: p.cfg.DataDir, Ledger: ledgerCfg, NATSURL: p.natsURL, Idle: idle,
		Verbose: p.lg.Enabled(context.Background(), slog.LevelDebug)})
	if err != nil {
		return false, err
	}
	cmd := exec.Command(p.exe, "sequence", "-child")
	cmd.Env = append(os.Environ(), execMainEnv+"=1")
	cmd.Stderr = p.stderr
	cmd.SysProcAttr = childProcAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return false, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return false, err
	}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("sequencer process: %w", err)
	}
	// The processes before this one count on in its counters (a
	// restart or replacement does not set /metrics back), but their
	// gauges are not its own: the last one's lag would make watch replace
	// this one before its first report.
	base := p.metrics.Snapshot().Settled()
	p.metrics.Set(base)
	p.mu.Lock()
	p.stdin, p.proc, p.lastReport = stdin, cmd.Process, time.Now()
	stopping := p.stopping
	p.mu.Unlock()
	if _, err := stdin.Write(append(spec, '\n')); err != nil || stopping {
		stdin.Close()
	}
	// Watched from the start: an idle process starved while it starts is
	// as silent as one starved later.
	exited := make(chan struct{})
	defer close(exited)
	go p.watch(cmd.Process, idle, exited)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 64<<20) // the counters list every log
	for sc.Scan() {
		var r childReport
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			p.lg.Warn("sequencer process: unreadable report", "err", err)
			continue
		}
		p.mu.Lock()
		p.lastReport = time.Now()
		p.mu.Unlock()
		if r.Metrics != nil {
			p.metrics.Set(base.Add(*r.Metrics))
		}
		if r.Ready && !ok {
			ok = true
			if ready != nil {
				ready <- nil
			}
		}
	}
	io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if err == nil && !ok {
		err = errors.New("exited before it sequenced")
	}
	if err != nil {
		err = fmt.Errorf("sequencer process: %w", err)
	}
	return ok, err
}

// watch replaces the running process in the other mode when it should:
// an idle one that falls maxDefer behind or is not heard from for that
// long, a normal one whose backlog has stayed empty for calmFor (Pending,
// as of each batch's fetch).
func (p *seqProcess) watch(proc *os.Process, idle bool, done <-chan struct{}) {
	if !idle && p.maxDefer < 0 {
		return // never idle
	}
	window := p.calmFor
	if idle {
		window = p.maxDefer
	}
	t := time.NewTicker(window / 20)
	defer t.Stop()
	var calmSince time.Time
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		snap := p.metrics.Snapshot()
		var pending uint64
		var lag time.Duration
		for _, ps := range snap.Partitions {
			pending += ps.Pending
			lag = max(lag, ps.Lag)
		}
		p.mu.Lock()
		silent := time.Since(p.lastReport)
		p.mu.Unlock()
		if idle {
			if lag < p.maxDefer && silent < p.maxDefer {
				continue
			}
			p.lg.Warn("sequencer process falls behind at idle priority; replacing it with one at the gateway's priority until it catches up",
				"lag", lag, "last_heard", silent.Round(time.Millisecond), "pending", pending)
			p.replace(proc, false, time.Second, done)
			return
		}
		if pending > 0 {
			calmSince = time.Time{}
			continue
		}
		if calmSince.IsZero() {
			calmSince = time.Now()
		}
		if time.Since(calmSince) >= p.calmFor {
			p.lg.Info("sequencer process caught up; replacing it with one at idle priority")
			p.replace(proc, true, 15*time.Second, done)
			return
		}
	}
}

// replace stops proc (closing its stdin, killing it after grace: a starved
// process may take long to stop, and a kill loses nothing, its batch is
// delivered again) for supervise to start one in the mode idle says.
func (p *seqProcess) replace(proc *os.Process, idle bool, grace time.Duration, exited <-chan struct{}) {
	p.mu.Lock()
	if p.stopping || p.proc != proc {
		p.mu.Unlock()
		return
	}
	p.idle, p.switching = idle, true
	p.stdin.Close()
	p.mu.Unlock()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-timer.C:
		proc.Kill()
	case <-exited:
	case <-p.stopc:
	}
}

// shutdown closes the process's stdin, which stops it after the batch in
// flight, and waits for it to exit; when ctx ends first, it kills it.
func (p *seqProcess) shutdown(ctx context.Context) error {
	p.mu.Lock()
	if !p.stopping {
		p.stopping = true
		close(p.stopc)
		if p.stdin != nil {
			p.stdin.Close()
		}
	}
	proc := p.proc
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-ctx.Done():
		if proc != nil {
			proc.Kill()
		}
		<-p.done
		return fmt.Errorf("sequencer process: killed: %w", ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}
