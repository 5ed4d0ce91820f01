package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"aigw/gateway"
	"aigw/gateway/httpapi"
	"aigw/ledger"
	"aigw/ledger/jetstream"
	"aigw/ledger/readapi"
	"aigw/ledger/sequencer"
	"aigw/ledger/signer"

	"github.com/gin-gonic/gin"
	njs "github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/note"
)

// ServeCommand runs the gateway and its audit ledger.
type ServeCommand struct {
	*Main
	// ready, if set (tests), receives the HTTP address once it listens.
	ready func(addr string)
}

type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint(*m) }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func (c *ServeCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aigw serve", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var lf ledgerFlags
	lf.register(fs)
	listen := fs.String("listen", "", "HTTP listen address (default 127.0.0.1:8080, or $AIGW_LISTEN)")
	readToken := fs.String("read-token", "", "require this bearer token on the ledger read API (or $AIGW_READ_TOKEN, or ledger.read_token)")
	key := fs.String("key", "", "checkpoint key: a key file or KMS URI (default DATA_DIR/checkpoint.key, created on first start)")
	var trust multiFlag
	fs.Var(&trust, "trust-key", "verifier key of an earlier checkpoint key, after a rotation (repeatable)")
	verbose := fs.Bool("v", false, "debug logging")
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage: aigw serve [flags]

With no flags, runs everything under ./data: an embedded NATS JetStream (the
ledger's write-ahead), the SQLite ledger and a generated Ed25519 checkpoint
key; the ledger's sequencer runs in a child process at idle CPU priority
(ledger.sequencer_process). -nats-url and -database-url (or the config file) switch to an
external NATS and PostgreSQL.

The gateway serves the OpenAI-compatible API under /v1/ (chat/completions,
embeddings, models) and Anthropic's /v1/messages, with the API keys of the
tenants; the admin API under /admin/ (admin key: gateway.admin_key, or
DATA_DIR/admin.key, generated on first start); Prometheus metrics on
/metrics. With no providers or routes configured, the model "mock" is served
by a built-in mock provider, and a first start creates the tenant "default"
with an API key in DATA_DIR/default.key.

The ledger read API is served under /ledger/<log>/ (C2SP tlog-tiles paths,
proofs), /ledger/logs lists the logs, /healthz reports the sequencer and
answers 503 while the ledger's NATS connection is down (the size of each
log only with the read token, when ledger.read_token is set).

AIGW_CPUPROFILE=FILE writes a CPU profile of the run to FILE at shutdown;
AIGW_HEAPPROFILE=FILE writes a heap profile (after a GC: the live heap) to
FILE every 5 seconds.
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
	cfg, err := lf.load()
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *key != "" {
		cfg.Ledger.Key = *key
	}
	if *readToken != "" {
		cfg.Ledger.ReadToken = *readToken
	}
	cfg.Ledger.TrustedKeys = append(cfg.Ledger.TrustedKeys, trust...)
	lg := newLogger(c.Stderr, *verbose)
	if path := os.Getenv("AIGW_CPUPROFILE"); path != "" {
		// A diagnostic: a CPU profile of the whole run, written at shutdown.
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if path := os.Getenv("AIGW_HEAPPROFILE"); path != "" {
		// A diagnostic: the live heap, rewritten every 5 s, so the file
		// shows the heap under load, not after shutdown.
		stop := make(chan struct{})
		defer close(stop)
		go writeHeapProfiles(path, 5*time.Second, stop, lg)
	}
	if os.Getenv("GOGC") == "" {
		// The ledger path allocates per event; a higher GC target measured
		// +3-10% ingest throughput and a lower publish p99 (README). GOGC
		// in the environment overrides it.
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// ... and a soft memory limit keeps that target from growing the
		// heap without bound under load (measured: RSS 187 MiB instead of
		// 302 MiB at 2,000 requests/s; README). GOMEMLIMIT overrides it.
		debug.SetMemoryLimit(128 << 20)
	}
	return c.serve(ctx, cfg, lg)
}

func (c *ServeCommand) serve(ctx context.Context, cfg Config, lg *slog.Logger) error {
	store, err := openStore(ctx, cfg, lg.With("component", "store"))
	if err != nil {
		return err
	}
	defer store.Close()
	key, err := loadSigner(ctx, cfg, lg)
	if err != nil {
		return err
	}
	trusted, err := trustedVerifiers(cfg)
	if err != nil {
		return err
	}

	nc, srv, natsURL, err := startNATS(cfg, lg)
	if err != nil {
		return err
	}
	defer func() {
		nc.Drain()
		if srv != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
	}()
	js, err := njs.New(nc)
	if err != nil {
		return err
	}
	scfg := streamConfig(cfg)
	if _, err := jetstream.EnsureStream(ctx, js, scfg); err != nil {
		return fmt.Errorf("ledger stream: %w", err)
	}
	if cfg.Ledger.Sequence != nil && len(cfg.Ledger.Sequence) == 0 {
		lg.Warn("ledger.sequence is empty: this process sequences no partition; calls are recorded in JetStream, and another aigw process on the same NATS and database must sequence them, or the stream fills and the gateway answers 503",
			"nats", natsKind(cfg, srv != nil))
	}
	metrics := &jetstream.Metrics{}
	var shutdownSeq func(context.Context) error
	if cfg.Ledger.SequencerProcess && (cfg.Ledger.Sequence == nil || len(cfg.Ledger.Sequence) > 0) {
		// The child checks the key against the logs, as below.
		shutdownSeq, err = startSequencerProcess(cfg, natsURL, metrics, c.Stderr, lg.With("component", "sequencer"))
	} else {
		// Assigned, not declared: err is checked after the if.
		var seq *sequencer.Sequencer
		if seq, err = newSequencer(ctx, store, key, trusted, cfg.Ledger.Origin, lg); err != nil {
			return err
		}
		seqCfg := sequencerConfig(cfg, nc, seq, store, metrics, lg)
		seqCfg.Busy, seqCfg.MaxDefer = newRunQueue().busy, cfg.Ledger.DeferUnderLoad
		seqCtx, stopSeq := context.WithCancel(context.WithoutCancel(ctx))
		defer stopSeq()
		shutdownSeq, err = jetstream.StartSequencer(seqCtx, seqCfg)
	}
	if err != nil {
		return err
	}
	producer, err := jetstream.NewProducer(jetstream.ProducerConfig{Conn: nc, Stream: scfg, Logger: lg.With("component", "producer")})
	if err != nil {
		return err
	}
	if err := recordKeyEvent(ctx, store, producer, key, cfg, trusted); err != nil {
		return err
	}

	var read http.Handler = http.StripPrefix("/ledger", readapi.New(readapi.Config{Store: store, Logger: lg.With("component", "readapi")}))
	if cfg.Ledger.ReadToken != "" {
		read = requireBearer(cfg.Ledger.ReadToken, read)
	} else {
		lg.Warn("the ledger read API has no read_token: every log is readable by anyone who can reach " + cfg.Listen)
	}
	mayRead := bearerAllowed(cfg.Ledger.ReadToken)
	health := func(c *gin.Context) {
		snap := metrics.Snapshot()
		// The size of every log names every tenant: shown only to
		// whoever may read /ledger/logs, which lists the same.
		if !mayRead(c.Request) {
			snap.Logs = nil
		}
		// Unhealthy while the ledger's NATS connection is down: the
		// gateway refuses every call then (fail-closed), so a load
		// balancer should route around this replica.
		status, code := "ok", http.StatusOK
		if !producer.Connected() {
			status, code = "ledger_unavailable", http.StatusServiceUnavailable
		}
		c.JSON(code, map[string]any{"status": status, "ledger": snap, "vkey": key.VerifierKey()})
	}
	gw, err := startGateway(ctx, cfg, producer, ledgerAccess{store: store, signer: key, verifiers: append(trusted, key.Verifier()), metrics: metrics}, lg, func(e *gin.Engine) {
		e.Any("/ledger/*path", gin.WrapH(read))
		e.GET("/healthz", health)
	})
	if err != nil {
		return err
	}
	defer gw.Close()
	hs := &http.Server{Handler: gw.handler, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	lg.Info("aigw serving", "addr", ln.Addr().String(), "ledger", "/ledger/", "vkey", key.VerifierKey(),
		"store", storeKind(cfg), "nats", natsKind(cfg, srv != nil))
	if c.ready != nil {
		c.ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	lg.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	if err := shutdownSeq(sctx); err != nil {
		lg.Warn("sequencer shutdown", "err", err)
	}
	return nil
}

// newLogger is the text logger of serve and sequence on w, at debug
// level when verbose (-v).
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func storeKind(cfg Config) string {
	if cfg.Ledger.DatabaseURL != "" {
		return "postgres"
	}
	return "sqlite"
}

func natsKind(cfg Config, embedded bool) string {
	if embedded {
		return "embedded"
	}
	return redactNATS(cfg.Ledger.NATSURL)
}

// redactNATS is a NATS URL list (comma-separated, as nats.Connect takes
// it) as it may be logged: each URL without the user, password or token
// it may carry.
func redactNATS(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "://") {
			p = "nats://" + p // as nats.Connect reads it
		}
		parts[i] = gateway.RedactURL(p)
	}
	return strings.Join(parts, ",")
}

// recordKeyEvent writes a `key` event to the system log when the checkpoint
// key in use is new to it: "activated" for the first key, "rotated" (naming
// the key that signed the system log until now) after a change.
func recordKeyEvent(ctx context.Context, store ledger.Store, p *jetstream.Producer, key *signer.Signer, cfg Config, trusted []note.Verifier) error {
	head, err := store.Head(ctx, ledger.SystemLog)
	if err != nil {
		return err
	}
	attrs := map[string]any{"vkey": key.VerifierKey(), "origin": cfg.Ledger.Origin}
	switch {
	case head.Size == 0:
		attrs["action"] = "activated"
	default:
		origin := ledger.Origin(cfg.Ledger.Origin, ledger.SystemLog)
		if _, _, err := ledger.OpenCheckpoint(head.Checkpoint, origin, note.VerifierList(key.Verifier())); err == nil {
			return nil // the system log is already signed by this key
		}
		_, prev, err := ledger.OpenCheckpoint(head.Checkpoint, origin, note.VerifierList(trusted...))
		if err != nil {
			return fmt.Errorf("system log checkpoint: %w", err)
		}
		attrs["action"] = "rotated"
		attrs["previous"] = prev
	}
	ev := jetstream.NewEvent(ledger.SystemLog, ledger.KindKey)
	ev.Attrs = attrs
	return p.Record(ctx, ev, nil)
}

// bearerAllowed is httpapi.Bearer(token), except that an empty token
// admits every request (the read API without read_token).
func bearerAllowed(token string) func(*http.Request) bool {
	if token == "" {
		return func(*http.Request) bool { return true }
	}
	return httpapi.Bearer(token)
}

// requireBearer refuses requests without "Authorization: Bearer <token>",
// comparing in constant time, with an OpenAI-style JSON error.
func requireBearer(token string, next http.Handler) http.Handler {
	allowed := bearerAllowed(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed(r) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("WWW-Authenticate", `Bearer realm="aigw ledger"`)
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"message":"the ledger read API needs Authorization: Bearer <read token>","type":"authentication_error"}}` + "\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeHeapProfiles writes a heap profile to path every interval (to a
// temporary file renamed over it) until stop is closed.
func writeHeapProfiles(path string, interval time.Duration, stop <-chan struct{}, lg *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		runtime.GC()
		f, err := os.CreateTemp(filepath.Dir(path), ".heap-*")
		if err != nil {
			lg.Warn("heap profile", "err", err)
			return
		}
		err = pprof.Lookup("heap").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), path)
		}
		if err != nil {
			os.Remove(f.Name())
			lg.Warn("heap profile", "err", err)
			return
		}
	}
}
