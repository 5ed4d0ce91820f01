package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"aigw/ledger"
	"aigw/loadgen"

	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"
)

// The gateway benchmark's fixed parts.
const (
	benchTenant   = "bench"      // the tenant, and so the ledger log, every call goes to
	benchRoute    = "bench"      // the route of the rate and stream scenarios
	benchSlow     = "bench-slow" // the route of the stream hold, to the slow fake
	benchModel    = "gpt-4o-mini"
	benchChatPath = "/v1/chat/completions"
	// benchMonitorInterval is how often the sequencer and the answered count
	// are sampled during the load; catch-up lags are known to within it.
	benchMonitorInterval = 100 * time.Millisecond
)

// Request bodies: a small, realistic chat call, plain and streaming (with
// the usage chunk asked for, as the SDKs do when counting tokens).
const (
	benchBody       = `{"model":%q,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello."}],"max_tokens":16}`
	benchStreamBody = `{"model":%q,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello."}],"max_tokens":16,"stream":true,"stream_options":{"include_usage":true}}`
)

// GatewayBenchCommand is `aigw bench gateway`: the gateway's performance
// measurement, reproducible on any machine. It starts a fake upstream that
// answers at once, a bare reverse proxy to it and `aigw serve` (fail-closed
// ledger, default routing and guardrails), each in its own process, then
// runs the same loads straight to the fake, through the proxy and through
// aigw in interleaved rounds, and reports latency added over straight,
// maximum throughput, aigw's memory and the sequencer's lag; finally it
// counts the ledger events of every call (none lost, none duplicated) and
// verifies the logs.
type GatewayBenchCommand struct {
	*Main
	// exe and exeArgs start an aigw subcommand in a child process:
	// exe exeArgs... subcommand args.... Empty exe: this executable.
	// Tests point them at the test binary.
	exe     string
	exeArgs []string
	// env is added to the children's environment.
	env []string
}

// gatewayBenchConfig is what the flags of `aigw bench gateway` set.
type gatewayBenchConfig struct {
	FailOpen       bool
	Sequencer      string        // "process", "inline" (ledger.sequencer_process true, false) or "" (serve's default)
	Guardrails     string        // "baseline" (benchGuardrails) or "none" (no policy: aigw's default config)
	ServeExe       string        // the aigw executable that serves ("": this one)
	Linger         time.Duration // ledger.linger (0: serve's default)
	Scenarios      []benchScenario
	Rounds         int
	Duration       time.Duration
	Warmup         time.Duration
	Connections    int
	StreamRate     float64
	HoldStreams    int
	HoldChunkDelay time.Duration
	Soak           time.Duration
	SoakRate       float64
	DataDir        string
	DatabaseURL    string
	NATSURL        string
	CatchUpTimeout time.Duration
}

// benchScenario is one load of the comparison.
type benchScenario struct {
	Name   string  // as given in -scenarios
	Rate   float64 // requests/s; 0: open throttle
	Stream bool    // SSE streams, read to their end
	Hold   bool    // hold HoldStreams streams open against a slow fake
}

// defaultScenarios is the measurement of the README.
const defaultScenarios = "500,2000,max,stream,hold"

// parseScenarios reads -scenarios: request rates, "max" (open throttle),
// "stream" (streams at the stream rate) and "hold" (concurrent streams).
func parseScenarios(s string, streamRate float64) ([]benchScenario, error) {
	if s == "" || s == "all" {
		s = defaultScenarios
	}
	var out []benchScenario
	seen := map[string]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if seen[name] {
			return nil, fmt.Errorf("-scenarios: %q given twice", name)
		}
		seen[name] = true
		switch name {
		case "max":
			out = append(out, benchScenario{Name: name})
		case "stream":
			out = append(out, benchScenario{Name: name, Rate: streamRate, Stream: true})
		case "hold":
			out = append(out, benchScenario{Name: name, Stream: true, Hold: true})
		default:
			r, err := strconv.ParseFloat(strings.TrimSuffix(name, "/s"), 64)
			if err != nil || r <= 0 {
				return nil, fmt.Errorf("-scenarios: %q is not a rate, max, stream or hold", name)
			}
			out = append(out, benchScenario{Name: name, Rate: r})
		}
	}
	return out, nil
}

// Run runs the benchmark and writes its report to Stdout.
func (c *GatewayBenchCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aigw bench gateway", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var cfg gatewayBenchConfig
	scenarios := fs.String("scenarios", defaultScenarios, "comma-separated loads: request rates (500), max (open throttle), stream (streams at -stream-rate), hold (-hold concurrent streams)")
	fs.IntVar(&cfg.Rounds, "rounds", 3, "interleaved rounds per load")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "measured window of each run")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "warm-up before each run's window")
	fs.IntVar(&cfg.Connections, "connections", loadgen.DefaultConnections, "keep-alive connections of the rate and stream loads")
	fs.Float64Var(&cfg.StreamRate, "stream-rate", 200, "streams/s of the stream load")
	fs.IntVar(&cfg.HoldStreams, "hold", 1000, "concurrent streams of the hold load")
	fs.DurationVar(&cfg.HoldChunkDelay, "hold-chunk-delay", 250*time.Millisecond, "pause before each content chunk of the hold load's fake, to keep streams open")
	fs.DurationVar(&cfg.Soak, "soak", 0, "afterwards, run aigw alone at -soak-rate for this long, sampling its RSS every second (0: no soak)")
	fs.Float64Var(&cfg.SoakRate, "soak-rate", 2000, "requests/s of the soak")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "aigw's data directory (default: a temporary directory, removed afterwards); keep one across runs with -database-url, it holds the checkpoint key")
	fs.StringVar(&cfg.DatabaseURL, "database-url", "", "PostgreSQL URL of the ledger and tenants (default: SQLite in the data directory)")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "external NATS with JetStream (default: the embedded server)")
	fs.BoolVar(&cfg.FailOpen, "fail-open", false, "run aigw fail-open (answers without waiting for the ledger's acknowledgement), to measure what fail-closed costs")
	fs.StringVar(&cfg.ServeExe, "serve-exe", "", "run 'serve' from this aigw executable (an earlier build, to compare commits in one run of this bench); default: this executable")
	fs.StringVar(&cfg.Guardrails, "guardrails", "baseline", "aigw's guardrails: baseline (a policy with every detector on its stages: content, PII, secrets, prompt injection, tool policy, JSON schema, a token limit) or none (aigw's default config, which has no policy)")
	fs.StringVar(&cfg.Sequencer, "sequencer", "", "where aigw sequences: process (a child process at a lower CPU priority), inline (in the gateway's process); default: serve's default")
	fs.DurationVar(&cfg.Linger, "linger", 0, "aigw's ledger.linger, the sequencer's group-commit window (negative: none); default: serve's default")
	fs.DurationVar(&cfg.CatchUpTimeout, "catchup-timeout", 5*time.Minute, "how long to wait after the load for the sequencer to append every event")
	jsonOut := fs.String("json", "", "also write every result as JSON to this file")
	verbose := fs.Bool("v", false, "copy the servers' logs to stderr")
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage: aigw bench gateway [flags]

Starts a fake OpenAI-compatible upstream that answers at once, a bare Go
reverse proxy (httputil.ReverseProxy) to it and 'aigw serve' in front of it
(fail-closed ledger, default routing, the baseline guardrail policy unless
-guardrails none; embedded NATS and SQLite unless -nats-url/-database-url), each in its own process, then runs every load
straight to the fake, through the proxy and through aigw, in interleaved
rounds on keep-alive connections. Reports p50/p99 latency added over straight,
maximum requests/s, each server's CPU time per request (its processes' CPU
in the window over the requests done: little affected by other load on the
machine), aigw's RSS, the sequencer's backlog and catch-up lag, then
counts the ledger events of every call (lost and duplicated must be 0) and
verifies the logs. Exit code 1 if the ledger check fails.

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
	var err error
	if cfg.Scenarios, err = parseScenarios(*scenarios, cfg.StreamRate); err != nil {
		return err
	}
	switch {
	case cfg.Sequencer != "" && cfg.Sequencer != "process" && cfg.Sequencer != "inline":
		return fmt.Errorf("-sequencer must be process or inline, got %q", cfg.Sequencer)
	case cfg.Guardrails != "baseline" && cfg.Guardrails != "none":
		return fmt.Errorf("-guardrails must be baseline or none, got %q", cfg.Guardrails)
	case cfg.Linger > time.Second:
		return fmt.Errorf("-linger must be at most 1s, got %s", cfg.Linger)
	case cfg.Rounds < 1:
		return errors.New("-rounds must be at least 1")
	case cfg.Duration <= 0 || cfg.Warmup < 0 || cfg.Soak < 0:
		return errors.New("-duration must be positive, -warmup and -soak not negative")
	case cfg.Connections < 1 || cfg.HoldStreams < 1:
		return errors.New("-connections and -hold must be at least 1")
	case cfg.StreamRate <= 0 || cfg.SoakRate <= 0:
		return errors.New("-stream-rate and -soak-rate must be positive")
	}
	b := &gwBench{cmd: c, cfg: cfg, verbose: *verbose, began: time.Now()}
	defer b.close()
	res, err := b.run(ctx)
	if res != nil {
		if werr := writeBenchReport(c.Stdout, res); werr != nil && err == nil {
			err = werr
		}
		if *jsonOut != "" {
			if werr := writeBenchJSON(*jsonOut, res); werr != nil && err == nil {
				err = werr
			}
		}
	}
	if err == nil && res != nil && !res.Ledger.OK() {
		err = mismatchExit{fmt.Errorf("ledger check failed: %d lost, %d duplicated, %d unexpected, verify ok=%v",
			res.Ledger.Lost, res.Ledger.Duplicated, res.Ledger.Unexpected, res.Ledger.VerifyOK)}
	}
	return err
}

// GatewayBenchResult is everything `aigw bench gateway` measured; -json
// writes it.
type GatewayBenchResult struct {
	Machine   benchMachine
	Settings  benchSettings
	Scenarios []benchScenarioResult
	Soak      *benchSoakResult `json:",omitempty"`
	Ledger    benchLedgerCheck
	// Monitor holds the samples of aigw's answered count and sequencer
	// taken during the load, every benchMonitorInterval.
	Monitor []benchSample
}

// benchMachine describes where the numbers were measured.
type benchMachine struct {
	OS, Arch, CPUModel, Kernel string
	CPUs, GOMAXPROCS           int
	GoVersion                  string
	AigwVersion                string
	Store, NATS                string
}

// benchSettings are the load's parameters.
type benchSettings struct {
	Rounds                    int
	Duration, Warmup          time.Duration
	Connections               int
	StreamRate                float64
	HoldStreams               int
	HoldChunkDelay            time.Duration
	FailClosed                bool
	Guardrails                string        // "baseline" or "none"
	ServeExe                  string        `json:",omitempty"` // -serve-exe
	Linger                    time.Duration `json:",omitempty"` // -linger
	Targets                   []string      // the ways, straight first
	FakeChunks                int
	RequestBody, StreamedBody string
}

// benchScenarioResult is one load against every way.
type benchScenarioResult struct {
	Name       string
	Comparison loadgen.Comparison
	// RSS summarises aigw's resident memory, sampled while the load ran
	// (against every way).
	RSS loadgen.RSSSummary
	// PeakBacklog is the most events the sequencer had yet to fetch,
	// sampled during the load; CatchUp the longest time it took, after
	// one of aigw's runs ended, to append every event of it (known to
	// within benchMonitorInterval); CaughtUp is false if a run's events were
	// still arriving when the next aigw run began.
	PeakBacklog uint64
	CatchUp     time.Duration
	CaughtUp    bool
	// AigwRuns counts the ends of aigw's runs the monitor saw in the load.
	AigwRuns int
	// From and To place the load in the monitor's time line.
	From, To time.Duration
}

// benchSoakResult is aigw alone at a fixed rate for a long time.
type benchSoakResult struct {
	Rate     float64
	Duration time.Duration
	Result   loadgen.Result
	// RSS summarises the samples taken after the warm-up.
	RSS     loadgen.RSSSummary
	Samples []loadgen.RSSSample
}

// benchLedgerCheck is the count of the bench log's events after the load.
type benchLedgerCheck struct {
	Log string
	// From and Size delimit the entries this run appended.
	From, Size uint64
	// CatchUp is how long after the last load the log held every event.
	CatchUp time.Duration
	Events  int
	// Traces are the calls found in the log; Requests their request
	// events; Errors the calls that ended with an error event.
	Traces, Requests, Errors int
	// Answered are the chat calls aigw answered (its /metrics), by status;
	// every one but the unauthenticated ones (401) must have exactly one
	// request event and one terminal event.
	Answered       uint64
	Statuses       map[string]uint64
	LedgerFailures uint64
	// FailedBatches and DuplicatesSkipped are the sequencer's failed
	// batches (each followed by a rewind) and the redelivered events it
	// skipped, over aigw's run (its /metrics once the log caught up).
	FailedBatches, DuplicatesSkipped uint64
	// Lost counts calls missing from the log (answered but no request
	// event) and calls with a request but no terminal event or the
	// reverse; Duplicated counts events stored twice and second request
	// or terminal events of one call; Unexpected counts calls in the log
	// beyond those answered.
	Lost, Duplicated, Unexpected int
	// VerifyOK reports that `aigw verify` accepted the logs; Verify holds
	// its output.
	VerifyOK bool
	Verify   []string
}

// OK reports whether the ledger held exactly the calls made and verified.
func (l benchLedgerCheck) OK() bool {
	return l.Lost == 0 && l.Duplicated == 0 && l.Unexpected == 0 && l.VerifyOK
}

// gwBench is one run of the benchmark.
type gwBench struct {
	cmd     *GatewayBenchCommand
	cfg     gatewayBenchConfig
	verbose bool
	began   time.Time

	tmpDir                string
	fake, slow, proxy, gw *benchChild
	fakeURL, slowURL      string
	proxyURL, gwURL       string
	adminKey, readToken   string
	apiKey, vkey          string
	client                *http.Client
	mon                   *benchMonitor
	startSize             uint64
	hasHold               bool
	lastLoadEnd           time.Time
}

func (b *gwBench) logf(format string, args ...any) {
	fmt.Fprintf(b.cmd.Stderr, "bench %5.1fs: "+format+"\n", append([]any{time.Since(b.began).Seconds()}, args...)...)
}

// close stops the servers and removes the temporary directory.
func (b *gwBench) close() {
	var wg sync.WaitGroup
	for _, ch := range []*benchChild{b.gw, b.proxy, b.fake, b.slow} {
		if ch != nil {
			wg.Go(ch.stop)
		}
	}
	wg.Wait()
	if b.tmpDir != "" {
		os.RemoveAll(b.tmpDir)
	}
}

func (b *gwBench) run(ctx context.Context) (*GatewayBenchResult, error) {
	b.client = &http.Client{Timeout: 30 * time.Second}
	for _, s := range b.cfg.Scenarios {
		b.hasHold = b.hasHold || s.Hold
	}
	if err := b.start(ctx); err != nil {
		return nil, err
	}
	res := &GatewayBenchResult{Machine: b.machine(), Settings: b.settings()}
	b.mon = startBenchMonitor(b.gwURL, benchTenant, b.readToken, b.client)
	defer b.mon.stop()

	var runErr error
	for _, s := range b.cfg.Scenarios {
		sr, err := b.scenario(ctx, s)
		res.Scenarios = append(res.Scenarios, sr)
		if err != nil {
			runErr = fmt.Errorf("load %s: %w", s.Name, err)
			break
		}
	}
	if runErr == nil && b.cfg.Soak > 0 {
		soak, err := b.soak(ctx)
		res.Soak = soak
		if err != nil {
			runErr = fmt.Errorf("soak: %w", err)
		}
	}
	if ctx.Err() != nil {
		return res, runErr
	}
	// Whatever happened to the load, every call aigw answered must be in
	// its log.
	ledgerCheck, err := b.checkLedger(ctx)
	res.Ledger = ledgerCheck
	res.Monitor = b.mon.stop()
	b.analyze(res)
	return res, errors.Join(runErr, err)
}

// start launches the fake(s), the proxy and aigw, and makes the key.
func (b *gwBench) start(ctx context.Context) error {
	var err error
	b.adminKey, err = benchToken("aigw_admin_")
	if err != nil {
		return err
	}
	if b.readToken, err = benchToken("bench_read_"); err != nil {
		return err
	}
	if b.tmpDir, err = os.MkdirTemp("", "aigw-bench-*"); err != nil {
		return err
	}
	dataDir := b.cfg.DataDir
	if dataDir == "" {
		dataDir = filepath.Join(b.tmpDir, "data")
	}

	var g errgroup.Group
	g.Go(func() (err error) {
		b.fake, b.fakeURL, err = b.cmd.startChild(ctx, "fake", b.verbose, benchStdoutURL, "bench", "fake", "-listen", "127.0.0.1:0", "-exit-on-stdin-eof")
		return err
	})
	if b.hasHold {
		g.Go(func() (err error) {
			b.slow, b.slowURL, err = b.cmd.startChild(ctx, "slow-fake", b.verbose, benchStdoutURL, "bench", "fake", "-listen", "127.0.0.1:0", "-exit-on-stdin-eof",
				"-chunk-delay", b.cfg.HoldChunkDelay.String())
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if b.proxy, b.proxyURL, err = b.cmd.startChild(ctx, "proxy", b.verbose, benchStdoutURL, "bench", "proxy", "-listen", "127.0.0.1:0", "-exit-on-stdin-eof", "-target", b.fakeURL); err != nil {
		return err
	}

	config := filepath.Join(b.tmpDir, "aigw.yaml")
	if err := os.WriteFile(config, []byte(b.config()), 0o600); err != nil {
		return err
	}
	args := []string{"serve", "-config", config, "-data-dir", dataDir, "-listen", "127.0.0.1:0"}
	if b.cfg.DatabaseURL != "" {
		args = append(args, "-database-url", b.cfg.DatabaseURL)
	}
	if b.cfg.NATSURL != "" {
		args = append(args, "-nats-url", b.cfg.NATSURL)
	}
	if b.gw, b.gwURL, err = b.cmd.startChildExe(ctx, b.cfg.ServeExe, "aigw", b.verbose, benchServeURL, args...); err != nil {
		return err
	}
	b.logf("fake %s, proxy %s, aigw %s (pid %d, %s)", b.fakeURL, b.proxyURL, b.gwURL, b.gw.pid(), b.storeKind())

	// The tenant (it may exist, in a kept database) and a key.
	if code, body, err := b.admin(ctx, "/admin/tenants", fmt.Sprintf(`{"id":%q,"name":"Benchmark"}`, benchTenant)); err != nil {
		return err
	} else if code != http.StatusCreated && code != http.StatusConflict {
		return fmt.Errorf("create tenant %s: status %d: %s", benchTenant, code, body)
	}
	code, body, err := b.admin(ctx, "/admin/tenants/"+benchTenant+"/keys", `{"name":"bench"}`)
	if err != nil {
		return err
	}
	var k struct {
		Key string `json:"key"`
	}
	if code != http.StatusCreated || json.Unmarshal(body, &k) != nil || k.Key == "" {
		return fmt.Errorf("create key: status %d: %s", code, body)
	}
	b.apiKey = k.Key

	var h struct {
		VKey string `json:"vkey"`
	}
	if _, body, err := b.get(ctx, "/healthz", ""); err != nil {
		return err
	} else if err := json.Unmarshal(body, &h); err != nil || h.VKey == "" {
		return fmt.Errorf("healthz: no vkey in %s", body)
	}
	b.vkey = h.VKey
	if b.startSize, err = b.logSize(ctx); err != nil {
		return err
	}
	// One call of each kind, so that a broken setup fails here, clearly.
	for _, body := range []string{fmt.Sprintf(benchBody, benchRoute), fmt.Sprintf(benchStreamBody, benchRoute)} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.gwURL+benchChatPath, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+b.apiKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := b.client.Do(req)
		if err != nil {
			return fmt.Errorf("first call through aigw: %w", err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("first call through aigw: status %d: %s", resp.StatusCode, bytes.TrimSpace(got))
		}
	}
	return nil
}

// benchGuardrails is the bench's baseline guardrail policy: every
// detector on the stages it is made for, as a security team would start
// (the README's example without the LLM judge, which needs a second
// model, and grounding, which holds a whole stream back to check it).
// Each call then also records its input and output decisions.
const benchGuardrails = `guardrails:
  policies:
    - name: baseline
      tenants: ["*"]
      holdback: 256
      checks:
        - {id: content, type: content, stages: [input, output], action: block, phrases: ["project zephyr", "internal only"], regexes: ['\bTICKET-\d{6}\b']}
        - {id: pii, type: pii, stages: [input, tool_results, output], action: redact}
        - {id: secrets, type: secrets, stages: [input, tool_results, output], action: redact}
        - {id: injection, type: prompt_injection, stages: [input], action: block}
        - {id: injection-tools, type: prompt_injection, stages: [tool_results], action: block}
        - {id: exfiltration, type: prompt_injection, stages: [output], action: block}
        - {id: tools, type: tool_policy, stages: [tool_calls], action: block, tools: {default: allow, max_calls_per_request: 8, rules: [{tool: send_email, decision: deny}]}}
        - {id: schema, type: json_schema, stages: [output], action: block}
  limits:
    rules:
      - {scope: tenant, tokens_per_request: 200000}
`

// config is aigw's configuration: the fake as an OpenAI-compatible
// provider behind one route, everything else by default (fail-closed).
func (b *gwBench) config() string {
	var s strings.Builder
	fmt.Fprintf(&s, `# Written by aigw bench gateway.
gateway:
  admin_key: %q
  default_tenant: ""
  fail_open: %v
ledger:
  read_token: %q
`, b.adminKey, b.cfg.FailOpen, b.readToken)
	if b.cfg.Sequencer != "" {
		fmt.Fprintf(&s, "  sequencer_process: %v\n", b.cfg.Sequencer == "process")
	}
	if b.cfg.Linger != 0 {
		fmt.Fprintf(&s, "  linger: %s\n", b.cfg.Linger)
	}
	fmt.Fprintf(&s, "providers:\n  - {name: fake, type: openai-compatible, base_url: %q}\n", b.fakeURL+"/v1")
	if b.hasHold {
		// The bulkhead's default (512 calls in flight per provider) would
		// refuse part of the hold: size it to the hold.
		fmt.Fprintf(&s, "  - {name: fake-slow, type: openai-compatible, base_url: %q, max_concurrent: %d}\n", b.slowURL+"/v1", b.cfg.HoldStreams+64)
	}
	fmt.Fprintf(&s, "routes:\n  - {name: %s, targets: [{provider: fake, model: %s}]}\n", benchRoute, benchModel)
	if b.hasHold {
		fmt.Fprintf(&s, "  - {name: %s, targets: [{provider: fake-slow, model: %s}]}\n", benchSlow, benchModel)
	}
	if b.cfg.Guardrails == "baseline" {
		s.WriteString(benchGuardrails)
	}
	return s.String()
}

func (b *gwBench) storeKind() string {
	st, nc := "sqlite", "embedded NATS"
	if b.cfg.DatabaseURL != "" {
		st = "postgres"
	}
	if b.cfg.NATSURL != "" {
		nc = "external NATS"
	}
	return st + ", " + nc
}

func (b *gwBench) machine() benchMachine {
	m := benchMachine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion: runtime.Version(), AigwVersion: version(), Store: "sqlite", NATS: "embedded"}
	if b.cfg.DatabaseURL != "" {
		m.Store = "postgres"
	}
	if b.cfg.NATSURL != "" {
		m.NATS = "external"
	}
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(info)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(k))
	}
	return m
}

func (b *gwBench) settings() benchSettings {
	return benchSettings{
		Rounds: b.cfg.Rounds, Duration: b.cfg.Duration, Warmup: b.cfg.Warmup, Connections: b.cfg.Connections,
		StreamRate: b.cfg.StreamRate, HoldStreams: b.cfg.HoldStreams, HoldChunkDelay: b.cfg.HoldChunkDelay,
		FailClosed: !b.cfg.FailOpen, Guardrails: b.cfg.Guardrails, ServeExe: b.cfg.ServeExe, Linger: b.cfg.Linger, Targets: []string{"straight", "proxy", "aigw"}, FakeChunks: loadgen.DefaultFakeChunks,
		RequestBody: fmt.Sprintf(benchBody, benchRoute), StreamedBody: fmt.Sprintf(benchStreamBody, benchRoute),
	}
}

// scenario runs one load against the ways, sampling aigw's RSS.
func (b *gwBench) scenario(ctx context.Context, s benchScenario) (benchScenarioResult, error) {
	lcfg := loadgen.Config{
		URL:         benchChatPath,
		Header:      http.Header{"Authorization": {"Bearer " + b.apiKey}},
		Body:        []byte(fmt.Sprintf(benchBody, benchRoute)),
		Rate:        s.Rate,
		Connections: b.cfg.Connections,
		Duration:    b.cfg.Duration,
		Warmup:      b.cfg.Warmup,
		Stream:      s.Stream,
	}
	targets := []loadgen.Target{{Name: "straight", URL: b.fakeURL, CPU: benchCPU(b.fake)}, {Name: "proxy", URL: b.proxyURL, CPU: benchCPU(b.proxy)},
		{Name: "aigw", URL: b.gwURL, CPU: benchCPU(b.gw)}}
	if s.Stream {
		lcfg.Body = []byte(fmt.Sprintf(benchStreamBody, benchRoute))
	}
	if s.Hold {
		// Only aigw matters here; straight to the slow fake is the
		// baseline (the bare proxy has no slow upstream).
		lcfg.Body = []byte(fmt.Sprintf(benchStreamBody, benchSlow))
		lcfg.Connections = b.cfg.HoldStreams
		targets = []loadgen.Target{{Name: "straight", URL: b.slowURL, CPU: benchCPU(b.slow)}, {Name: "aigw", URL: b.gwURL, CPU: benchCPU(b.gw)}}
	}
	label := loadgen.Label(lcfg)
	b.logf("%s: %d rounds × %d ways × (%s warm-up + %s)", label, b.cfg.Rounds, len(targets), b.cfg.Warmup, b.cfg.Duration)
	sampler := loadgen.StartSampler(ctx, b.gw.pid(), 500*time.Millisecond)
	from := b.mon.now()
	c, err := loadgen.Compare(ctx, lcfg, targets, b.cfg.Rounds)
	b.lastLoadEnd = time.Now()
	samples, _ := sampler.Stop()
	sr := benchScenarioResult{Name: s.Name, Comparison: c, RSS: loadgen.SummarizeRSS(samples), From: from, To: b.mon.now()}
	if err == nil {
		gw := c.Targets[len(c.Targets)-1]
		b.logf("%s: aigw p50 %s p99 %s, added p50 %s p99 %s, %.0f req/s, %d errors, %d broken",
			label, loadgen.FormatDuration(gw.Latency.P50), loadgen.FormatDuration(gw.Latency.P99), loadgen.FormatSigned(gw.AddedP50.Median), loadgen.FormatSigned(gw.AddedP99.Median), gw.Achieved, gw.Errors, gw.Broken)
	}
	return sr, err
}

// benchCPU reads the CPU time of a server's process and its descendants
// (aigw's sequencer process): what a way costs the machine per request,
// which the load on the machine hardly changes.
func benchCPU(ch *benchChild) func() time.Duration {
	return func() time.Duration {
		d, _ := loadgen.ProcessTreeCPU(ch.pid())
		return d
	}
}

// soak runs aigw alone at the soak rate, sampling its RSS every second.
func (b *gwBench) soak(ctx context.Context) (*benchSoakResult, error) {
	lcfg := loadgen.Config{
		URL:         b.gwURL + benchChatPath,
		Header:      http.Header{"Authorization": {"Bearer " + b.apiKey}},
		Body:        []byte(fmt.Sprintf(benchBody, benchRoute)),
		Rate:        b.cfg.SoakRate,
		Connections: b.cfg.Connections,
		Duration:    b.cfg.Soak,
		Warmup:      b.cfg.Warmup,
	}
	b.logf("soak: aigw alone at %g/s for %s, RSS every second", b.cfg.SoakRate, b.cfg.Soak)
	sampler := loadgen.StartSampler(ctx, b.gw.pid(), time.Second)
	r, err := loadgen.Run(ctx, lcfg)
	b.lastLoadEnd = time.Now()
	samples, _ := sampler.Stop()
	// Leave the warm-up out: memory grows while pools fill.
	samples = slices.DeleteFunc(samples, func(s loadgen.RSSSample) bool { return s.Elapsed < b.cfg.Warmup })
	res := &benchSoakResult{Rate: b.cfg.SoakRate, Duration: b.cfg.Soak, Result: r, RSS: loadgen.SummarizeRSS(samples), Samples: samples}
	if err == nil {
		b.logf("soak: p50 %s p99 %s, %d errors; RSS first %s last %s max %s, drift %+.1f%%", loadgen.FormatDuration(r.Latency.P50), loadgen.FormatDuration(r.Latency.P99), r.Errors,
			benchMiB(res.RSS.First), benchMiB(res.RSS.Last), benchMiB(res.RSS.Max), 100*res.RSS.Drift)
	}
	return res, err
}

// checkLedger waits for the sequencer to append every event, reads the
// bench log through the read API, counts its events per call against the
// calls aigw answered, and verifies the logs.
func (b *gwBench) checkLedger(ctx context.Context) (benchLedgerCheck, error) {
	lc := benchLedgerCheck{Log: benchTenant, From: b.startSize, Statuses: map[string]uint64{}}
	// The calls answered: every one of them has replied by now.
	m, err := b.metrics(ctx)
	if err != nil {
		return lc, err
	}
	lc.Statuses, lc.LedgerFailures = m.chat, m.ledgerFailures
	var minEvents uint64
	for status, n := range m.chat {
		lc.Answered += n
		switch status {
		case "200":
			minEvents += 4 * n // request, route, attempt, response
		case "401":
		default:
			minEvents += 2 * n // request, error at least
		}
	}

	b.logf("waiting for the sequencer to append at least %d events to log %s", minEvents, benchTenant)
	loadEnd := b.lastLoadEnd
	if loadEnd.IsZero() {
		loadEnd = time.Now()
	}
	size, reached, err := b.waitCaughtUp(ctx, b.startSize+minEvents)
	if err != nil {
		return lc, err
	}
	lc.Size = size
	lc.CatchUp = max(0, reached.Sub(loadEnd))
	caught, err := b.metrics(ctx) // the sequencer's counters, now that it has caught up
	if err != nil {
		return lc, err
	}
	lc.FailedBatches, lc.DuplicatesSkipped = caught.failedBatches, caught.duplicates
	b.logf("log %s: %d events (caught up %s after the load); counting", benchTenant, size-b.startSize, lc.CatchUp.Round(time.Millisecond))

	evs, err := b.readEvents(ctx, b.startSize, size)
	if err != nil {
		return lc, err
	}
	benchCountEvents(&lc, evs, m.chat["401"])

	b.logf("verifying logs %s and %s", benchTenant, ledger.SystemLog)
	lc.VerifyOK = true
	for _, log := range []string{benchTenant, ledger.SystemLog} {
		var out bytes.Buffer
		vm := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
		code := vm.Run(ctx, []string{"verify", "-server", b.gwURL, "-token", b.readToken, "-log", log, "-vkey", b.vkey})
		for line := range strings.Lines(out.String()) {
			lc.Verify = append(lc.Verify, strings.TrimSpace(line))
		}
		lc.VerifyOK = lc.VerifyOK && code == exitOK
	}
	return lc, nil
}

// benchEvent is what the count needs of one event.
type benchEvent struct {
	id, trace [16]byte
	kind      string
}

// benchCountEvents fills in the counts of lc from the events read. Every call
// aigw answered but the unauthenticated ones must have left exactly one
// request event and one terminal (response or error) event.
func benchCountEvents(lc *benchLedgerCheck, evs []benchEvent, unauthenticated uint64) {
	lc.Events = len(evs)
	ids := make([][16]byte, len(evs))
	for i, e := range evs {
		ids[i] = e.id
	}
	slices.SortFunc(ids, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	dupIDs := map[[16]byte]bool{}
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			lc.Duplicated++
			dupIDs[ids[i]] = true
		}
	}
	type calls struct{ requests, terminals, errors int }
	byTrace := map[[16]byte]*calls{}
	seen := map[[16]byte]bool{}
	for _, e := range evs {
		if dupIDs[e.id] {
			if seen[e.id] {
				continue // counted once above
			}
			seen[e.id] = true
		}
		c := byTrace[e.trace]
		if c == nil {
			c = &calls{}
			byTrace[e.trace] = c
		}
		switch e.kind {
		case ledger.KindRequest:
			c.requests++
		case ledger.KindResponse:
			c.terminals++
		case ledger.KindError:
			c.terminals++
			c.errors++
		}
	}
	withRequest := 0
	for _, c := range byTrace {
		lc.Requests += c.requests
		lc.Errors += min(c.errors, 1)
		if c.requests > 0 {
			withRequest++
		}
		lc.Duplicated += max(0, c.requests-1) + max(0, c.terminals-1)
		if c.requests == 0 || c.terminals == 0 {
			lc.Lost++ // half a call
		}
	}
	lc.Traces = len(byTrace)
	want := int(lc.Answered - min(lc.Answered, unauthenticated))
	lc.Lost += max(0, want-withRequest)
	lc.Unexpected = max(0, withRequest-want)
}

// waitCaughtUp polls the bench log's checkpoint until it holds at least
// want entries and has stopped growing, and returns its size and when it
// first reached it.
func (b *gwBench) waitCaughtUp(ctx context.Context, want uint64) (uint64, time.Time, error) {
	deadline := time.Now().Add(b.cfg.CatchUpTimeout)
	var last uint64
	var lastChange time.Time
	for {
		size, err := b.logSize(ctx)
		now := time.Now()
		if err != nil {
			return 0, now, err
		}
		if size != last || lastChange.IsZero() {
			last, lastChange = size, now
		}
		if size >= want && now.Sub(lastChange) >= time.Second {
			return size, lastChange, nil
		}
		if now.After(deadline) {
			return size, lastChange, fmt.Errorf("log %s holds %d entries after %s; want at least %d", benchTenant, size, b.cfg.CatchUpTimeout, want)
		}
		select {
		case <-ctx.Done():
			return size, lastChange, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logSize returns the size of the bench log's signed checkpoint (0 while
// the log does not exist).
func (b *gwBench) logSize(ctx context.Context) (uint64, error) {
	code, body, err := b.get(ctx, "/ledger/"+benchTenant+"/checkpoint", b.readToken)
	if err != nil {
		return 0, err
	}
	if code == http.StatusNotFound {
		return 0, nil
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("checkpoint of log %s: status %d: %s", benchTenant, code, body)
	}
	text, err := ledger.SplitNote(body)
	if err != nil {
		return 0, fmt.Errorf("checkpoint of log %s: %w", benchTenant, err)
	}
	cp, err := ledger.ParseCheckpointBody(text)
	if err != nil {
		return 0, fmt.Errorf("checkpoint of log %s: %w", benchTenant, err)
	}
	return cp.Size, nil
}

// readEvents reads entries [from, to) of the bench log through the read
// API, a few entry bundles at a time.
func (b *gwBench) readEvents(ctx context.Context, from, to uint64) ([]benchEvent, error) {
	first, last := from/ledger.TileWidth, (to+ledger.TileWidth-1)/ledger.TileWidth
	bundles := make([][]benchEvent, last-first)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for n := first; n < last; n++ {
		g.Go(func() error {
			w := int(min(ledger.TileWidth, to-n*ledger.TileWidth))
			path := "/ledger/" + benchTenant + "/" + ledger.Tile{N: n, W: w, Entries: true}.Path()
			code, body, err := b.get(ctx, path, b.readToken)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("entry bundle %d of log %s: status %d", n, benchTenant, code)
			}
			es, err := ledger.ParseEntryBundle(body)
			if err != nil {
				return fmt.Errorf("entry bundle %d of log %s: %w", n, benchTenant, err)
			}
			if len(es) != w {
				return fmt.Errorf("entry bundle %d of log %s: %d entries, want %d", n, benchTenant, len(es), w)
			}
			out := make([]benchEvent, 0, len(es))
			for i, e := range es {
				if idx := n*ledger.TileWidth + uint64(i); idx < from {
					continue
				}
				ev, err := ledger.ParseEntry(e)
				if err != nil {
					return fmt.Errorf("entry %d of log %s: %w", n*ledger.TileWidth+uint64(i), benchTenant, err)
				}
				id, err := uuid.Parse(ev.ID)
				if err != nil {
					return fmt.Errorf("entry %d of log %s: event id: %w", n*ledger.TileWidth+uint64(i), benchTenant, err)
				}
				var tr [16]byte
				if _, err := hex.Decode(tr[:], []byte(ev.TraceID)); err != nil && ev.TraceID != "" {
					return fmt.Errorf("entry %d of log %s: trace id: %w", n*ledger.TileWidth+uint64(i), benchTenant, err)
				}
				out = append(out, benchEvent{id: id, trace: tr, kind: ev.Kind})
			}
			bundles[n-first] = out
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var evs []benchEvent
	for _, bb := range bundles {
		evs = append(evs, bb...)
	}
	return evs, nil
}

// analyze attributes the monitor's backlog and catch-up lags to the loads.
func (b *gwBench) analyze(res *GatewayBenchResult) {
	ends := benchCatchUps(res.Monitor, 3)
	for i := range res.Scenarios {
		s := &res.Scenarios[i]
		s.CaughtUp = true
		for _, m := range res.Monitor {
			if m.At >= s.From && m.At <= s.To {
				s.PeakBacklog = max(s.PeakBacklog, m.Pending)
			}
		}
		for _, e := range ends {
			if e.Before >= s.From && e.Before < s.To { // the load still ran at Before
				s.AigwRuns++
				s.CatchUp = max(s.CatchUp, e.Lag)
				s.CaughtUp = s.CaughtUp && e.CaughtUp
			}
		}
	}
}

// admin posts a JSON body to the admin API.
func (b *gwBench) admin(ctx context.Context, path, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.gwURL+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+b.adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("admin API %s: %w", path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return resp.StatusCode, bytes.TrimSpace(got), err
}

// get reads a path of aigw, with a bearer token if not empty.
func (b *gwBench) get(ctx context.Context, path, token string) (int, []byte, error) {
	return benchGet(ctx, b.client, b.gwURL+path, token)
}

func benchGet(ctx context.Context, client *http.Client, url, token string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, body, nil
}

// benchMetrics is what the benchmark reads of aigw's /metrics.
type benchMetrics struct {
	chat           map[string]uint64 // chat.completions answered, by status
	ledgerFailures uint64
	// failedBatches and duplicates are the sequencer's counters, summed
	// over partitions.
	failedBatches, duplicates uint64
}

func (b *gwBench) metrics(ctx context.Context) (benchMetrics, error) {
	code, body, err := b.get(ctx, "/metrics", "")
	if err != nil {
		return benchMetrics{}, err
	}
	if code != http.StatusOK {
		return benchMetrics{}, fmt.Errorf("metrics: status %d", code)
	}
	return parseBenchMetrics(body)
}

// parseBenchMetrics reads aigw_http_requests_total{endpoint="chat.completions"}
// by status, aigw_ledger_failures_total, and the sequencer's
// aigw_ledger_failed_batches_total and aigw_ledger_duplicate_events_total
// (summed over partitions), from Prometheus text.
func parseBenchMetrics(text []byte) (benchMetrics, error) {
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return benchMetrics{}, fmt.Errorf("metrics: %w", err)
	}
	sum := func(name string) uint64 {
		var n float64
		for _, s := range fams[name].GetMetric() {
			n += sampleValue(s)
		}
		return uint64(n)
	}
	m := benchMetrics{chat: map[string]uint64{}, ledgerFailures: sum("aigw_ledger_failures_total"),
		failedBatches: sum("aigw_ledger_failed_batches_total"), duplicates: sum("aigw_ledger_duplicate_events_total")}
	for _, s := range fams["aigw_http_requests_total"].GetMetric() {
		var endpoint, status string
		for _, l := range s.GetLabel() {
			switch l.GetName() {
			case "endpoint":
				endpoint = l.GetValue()
			case "status":
				status = l.GetValue()
			}
		}
		if endpoint == "chat.completions" {
			m.chat[status] += uint64(sampleValue(s))
		}
	}
	return m, nil
}

// sampleValue is the value of a counter, gauge or untyped sample (a
// sample is one of them; the getters of the others give 0).
func sampleValue(s *dto.Metric) float64 {
	return s.GetCounter().GetValue() + s.GetGauge().GetValue() + s.GetUntyped().GetValue()
}

// benchSample is one reading of aigw during the load.
type benchSample struct {
	// At is the time since the monitor started.
	At time.Duration
	// Answered counts the chat calls answered so far.
	Answered uint64
	// Size is the bench log's size as of the sequencer's last append,
	// Pending the events it had yet to fetch (summed over partitions).
	Size, Pending uint64
}

// benchMonitor samples aigw's answered calls and sequencer every
// benchMonitorInterval, in the load generator's process.
type benchMonitor struct {
	url, log string
	token    string // the read token: /healthz shows the logs' sizes only with it
	client   *http.Client
	start    time.Time
	cancel   context.CancelFunc
	done     chan struct{}

	mu      sync.Mutex
	samples []benchSample
}

func startBenchMonitor(url, log, token string, client *http.Client) *benchMonitor {
	ctx, cancel := context.WithCancel(context.Background())
	m := &benchMonitor{url: url, log: log, token: token, client: client, start: time.Now(), cancel: cancel, done: make(chan struct{})}
	go m.loop(ctx)
	return m
}

func (m *benchMonitor) now() time.Duration { return time.Since(m.start) }

func (m *benchMonitor) loop(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(benchMonitorInterval)
	defer t.Stop()
	for {
		if s, err := m.sample(ctx); err == nil {
			m.mu.Lock()
			m.samples = append(m.samples, s)
			m.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *benchMonitor) sample(ctx context.Context) (benchSample, error) {
	at := m.now()
	code, body, err := benchGet(ctx, m.client, m.url+"/metrics", "")
	if err != nil || code != http.StatusOK {
		return benchSample{}, fmt.Errorf("metrics: %d %v", code, err)
	}
	bm, err := parseBenchMetrics(body)
	if err != nil {
		return benchSample{}, err
	}
	s := benchSample{At: at}
	for _, n := range bm.chat {
		s.Answered += n
	}
	code, body, err = benchGet(ctx, m.client, m.url+"/healthz", m.token)
	if err != nil || code != http.StatusOK {
		return benchSample{}, fmt.Errorf("healthz: %d %v", code, err)
	}
	var h struct {
		Ledger struct {
			Partitions map[string]struct{ Pending uint64 }
			Logs       map[string]uint64
		} `json:"ledger"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return benchSample{}, err
	}
	for _, p := range h.Ledger.Partitions {
		s.Pending += p.Pending
	}
	s.Size = h.Ledger.Logs[m.log]
	return s, nil
}

// stop ends sampling (it may be called more than once) and returns the
// samples.
func (m *benchMonitor) stop() []benchSample {
	m.cancel()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.samples)
}

// benchCatchUp is the end of one of aigw's loads, seen by the monitor.
type benchCatchUp struct {
	// End is the last sample at which the answered count grew, Before
	// the one before it: the load ended between the two.
	End, Before time.Duration
	// Lag is how long after End the log held every event (CaughtUp), or
	// how long it was still growing before the next load (!CaughtUp).
	Lag      time.Duration
	CaughtUp bool
}

// benchCatchUps finds the ends of aigw's loads in the samples (the answered
// count grew, then stayed flat for at least quiet samples) and, after
// each, when the sequencer had appended everything: the first sample of
// the log's final size, once the size stopped changing with nothing
// pending.
func benchCatchUps(s []benchSample, quiet int) []benchCatchUp {
	var out []benchCatchUp
	for i := 1; i < len(s); i++ {
		if s[i].Answered <= s[i-1].Answered {
			continue
		}
		j := i + 1 // the next sample at which the count grows again
		for j < len(s) && s[j].Answered == s[i].Answered {
			j++
		}
		if j-i-1 < quiet {
			continue
		}
		c := benchCatchUp{End: s[i].At, Before: s[i-1].At, Lag: s[j-1].At - s[i].At}
		for k := i + 1; k < j; k++ {
			if s[k].Pending == 0 && s[k].Size == s[k-1].Size {
				first := k - 1
				for first > i && s[first-1].Size == s[k].Size {
					first--
				}
				c.Lag, c.CaughtUp = s[first].At-s[i].At, true
				break
			}
		}
		out = append(out, c)
		i = j - 1
	}
	return out
}

// writeBenchReport writes the Markdown table and the summary.
func writeBenchReport(w io.Writer, res *GatewayBenchResult) error {
	var cs []loadgen.Comparison
	for _, s := range res.Scenarios {
		if len(s.Comparison.Targets) > 0 {
			cs = append(cs, s.Comparison)
		}
	}
	var b strings.Builder
	if len(cs) > 0 {
		if err := loadgen.Report(&b, cs...); err != nil {
			return err
		}
		b.WriteString("\n")
	}
	m := res.Machine
	mode := "fail-closed"
	if !res.Settings.FailClosed {
		mode = "fail-open"
	}
	serving := ""
	if res.Settings.ServeExe != "" {
		serving = ", serving from " + res.Settings.ServeExe
	}
	if res.Settings.Linger != 0 {
		mode += ", ledger.linger " + res.Settings.Linger.String()
	}
	fmt.Fprintf(&b, "Machine: %s/%s, %d CPUs (%s), GOMAXPROCS %d, %s, aigw %s%s; aigw on %s with %s NATS, %s, guardrails %s; each server its own process.\n\n",
		m.OS, m.Arch, m.CPUs, cmp.Or(m.CPUModel, "unknown CPU"), m.GOMAXPROCS, m.GoVersion, m.AigwVersion, serving, m.Store, m.NATS, mode, cmp.Or(res.Settings.Guardrails, "none"))

	b.WriteString("| measure | way | value | target |\n|---|---|--:|---|\n")
	row := func(measure, way, value, target string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", measure, way, value, target)
	}
	for _, s := range res.Scenarios {
		c := s.Comparison
		if len(c.Targets) == 0 {
			continue
		}
		for _, t := range c.Targets[1:] {
			switch {
			case c.Config.Stream && c.Config.Rate == 0: // hold
				row(c.Label+" held", t.Name, fmt.Sprintf("%d ok, %d errors, %d broken, %d stalls, longest gap %s",
					t.OK, t.Errors, t.Broken, t.Stalls, t.MaxGap.Round(time.Millisecond)), "no stalls, none broken")
			case c.Config.Rate == 0:
				continue // throughput below
			default:
				what := "added p50 / p99"
				if c.Config.Stream {
					what = "added p50 / p99, whole stream"
				}
				row(c.Label+" "+what, t.Name, fmt.Sprintf("%s / %s", loadgen.FormatSpread(t.AddedP50), loadgen.FormatSpread(t.AddedP99)), "")
			}
		}
		if c.Config.Rate == 0 && !c.Config.Stream {
			for _, t := range c.Targets {
				target := ""
				if t.Name == "aigw" {
					target = "≥ 10,000 req/s"
				}
				row("max throughput", t.Name, fmt.Sprintf("%.0f req/s (%d errors)", t.Achieved, t.Errors), target)
			}
		}
	}
	for _, s := range res.Scenarios {
		for _, t := range s.Comparison.Targets {
			if cpu := t.CPUPerRequest; cpu.Median > 0 {
				row("server CPU per request, "+s.Comparison.Label, t.Name, fmt.Sprintf("%s (%s…%s)",
					loadgen.FormatDuration(cpu.Median), loadgen.FormatDuration(cpu.Min), loadgen.FormatDuration(cpu.Max)), "")
			}
		}
	}
	for _, s := range res.Scenarios {
		if s.RSS.Samples == 0 {
			continue
		}
		target := ""
		if s.Comparison.Config.Rate == 2000 && !s.Comparison.Config.Stream {
			target = "< 100 MiB"
		}
		row("RSS during "+cmp.Or(s.Comparison.Label, s.Name), "aigw", "max "+benchMiBSplit(s.RSS), target)
	}
	if sk := res.Soak; sk != nil {
		row(fmt.Sprintf("soak %g/s for %s: RSS", sk.Rate, sk.Duration), "aigw",
			fmt.Sprintf("first %s, last %s, min %s, max %s, drift %+.1f%%", benchMiB(sk.RSS.First), benchMiB(sk.RSS.Last), benchMiB(sk.RSS.Min), benchMiBSplit(sk.RSS), 100*sk.RSS.Drift), "flat (within 10%)")
		row(fmt.Sprintf("soak %g/s for %s: latency", sk.Rate, sk.Duration), "aigw",
			fmt.Sprintf("p50 %s, p99 %s, %d errors of %d", loadgen.FormatDuration(sk.Result.Latency.P50), loadgen.FormatDuration(sk.Result.Latency.P99), sk.Result.Errors+sk.Result.Broken, sk.Result.Requests), "")
	}
	for _, s := range res.Scenarios {
		if s.Comparison.Label == "" {
			continue
		}
		lag := "≤ " + benchMonitorInterval.String()
		if s.CatchUp > benchMonitorInterval {
			lag = s.CatchUp.Round(10 * time.Millisecond).String()
		}
		switch {
		case s.AigwRuns == 0:
			lag = "(no end of an aigw run seen)"
		case !s.CaughtUp:
			lag = "still appending " + lag + " after an aigw run, when the next began"
		default:
			lag = "caught up " + lag + " after an aigw run"
		}
		row("sequencer during "+s.Comparison.Label, "aigw", fmt.Sprintf("peak backlog %d events; %s", s.PeakBacklog, lag), "")
	}
	l := res.Ledger
	row("sequencer after the last load", "aigw", "caught up in "+l.CatchUp.Round(10*time.Millisecond).String(), "catches up")
	row("ledger events (log "+l.Log+")", "aigw", fmt.Sprintf("%d events of %d calls (%d ended in error); %d chat calls answered %s, %d ledger failures",
		l.Events, l.Traces, l.Errors, l.Answered, benchStatuses(l.Statuses), l.LedgerFailures), "")
	row("lost / duplicated events", "aigw", fmt.Sprintf("lost %d, duplicated %d, unexpected %d", l.Lost, l.Duplicated, l.Unexpected), "0 / 0")
	row("sequencer failed batches (rewinds) / redelivered events skipped", "aigw", fmt.Sprintf("%d / %d", l.FailedBatches, l.DuplicatesSkipped), "")
	verify := "verify FAILED"
	if l.VerifyOK {
		verify = "verify ok"
	}
	row("aigw verify ("+l.Log+", system)", "aigw", verify, "ok")
	if !l.VerifyOK {
		for _, v := range l.Verify {
			fmt.Fprintf(&b, "\n    %s", v)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func benchStatuses(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func benchMiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// benchMiBSplit is the largest RSS sample with its anonymous and file
// parts: the file part is mostly the executable's pages, which the kernel
// maps whole from the page cache.
func benchMiBSplit(s loadgen.RSSSummary) string {
	if s.MaxAnon == 0 && s.MaxFile == 0 {
		return benchMiB(s.Max)
	}
	split := fmt.Sprintf("%s (anon %.1f, file %.1f", benchMiB(s.Max), float64(s.MaxAnon)/(1<<20), float64(s.MaxFile)/(1<<20))
	if s.MaxDescendants > 0 {
		// The sequencer process (ledger.sequencer_process) is aigw's too.
		split += fmt.Sprintf("; sequencer process %.1f", float64(s.MaxDescendants)/(1<<20))
	}
	if s.MaxPSS > 0 {
		// The sum of RSS counts the executable's pages once per process;
		// PSS shares them out.
		split += fmt.Sprintf("; PSS %.1f", float64(s.MaxPSS)/(1<<20))
	}
	return split + ")"
}

// writeBenchJSON writes the results, with the API key redacted.
func writeBenchJSON(path string, res *GatewayBenchResult) error {
	r := *res
	r.Scenarios = slices.Clone(res.Scenarios)
	for i := range r.Scenarios {
		cfg := &r.Scenarios[i].Comparison.Config
		if cfg.Header != nil {
			cfg.Header = cfg.Header.Clone()
			cfg.Header.Set("Authorization", "Bearer REDACTED")
		}
	}
	b, err := json.MarshalIndent(&r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func benchToken(prefix string) (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// benchChild is a server in a child process.
type benchChild struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	tail  *benchTail // the end of its stderr
	done  chan struct{}
	err   error // of Wait, once done is closed
}

func (c *benchChild) pid() int { return c.cmd.Process.Pid }

// stop ends the child: a fake or proxy when its stdin closes, aigw on an
// interrupt (a graceful shutdown); either is killed if it lingers.
func (c *benchChild) stop() {
	c.stdin.Close()
	grace := 5 * time.Second
	if c.name == "aigw" {
		grace = 20 * time.Second
		if err := c.cmd.Process.Signal(os.Interrupt); err != nil {
			c.cmd.Process.Kill()
		}
	}
	select {
	case <-c.done:
	case <-time.After(grace):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// benchURLFinder finds the server's URL in one line of its stdout or stderr.
type benchURLFinder struct {
	stderr bool
	find   func(line string) (string, bool)
}

// benchStdoutURL: `aigw bench fake` and `proxy` print their URL first.
var benchStdoutURL = benchURLFinder{find: func(line string) (string, bool) {
	line = strings.TrimSpace(line)
	return line, strings.HasPrefix(line, "http://")
}}

// benchServeURL: `aigw serve` logs `msg="aigw serving" addr=host:port`.
var benchServeURL = benchURLFinder{stderr: true, find: func(line string) (string, bool) {
	if !strings.Contains(line, `msg="aigw serving"`) {
		return "", false
	}
	_, rest, ok := strings.Cut(line, " addr=")
	if !ok {
		return "", false
	}
	addr, _, _ := strings.Cut(rest, " ")
	return "http://" + addr, addr != ""
}}

// startChild runs `aigw args...` in a child process and returns once it
// serves, with its URL.
func (c *GatewayBenchCommand) startChild(ctx context.Context, name string, verbose bool, u benchURLFinder, args ...string) (*benchChild, string, error) {
	return c.startChildExe(ctx, "", name, verbose, u, args...)
}

// startChildExe is startChild with another aigw executable ("": the
// usual one).
func (c *GatewayBenchCommand) startChildExe(ctx context.Context, exe, name string, verbose bool, u benchURLFinder, args ...string) (*benchChild, string, error) {
	exeArgs := c.exeArgs
	if exe == "" {
		exe = c.exe
	} else {
		exeArgs = nil // another build: no test-binary arguments
	}
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, "", fmt.Errorf("start %s: %w", name, err)
		}
	}
	cmd := exec.Command(exe, append(slices.Clone(exeArgs), args...)...)
	cmd.Env = append(os.Environ(), c.env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	ch := &benchChild{name: name, cmd: cmd, stdin: stdin, tail: &benchTail{max: 64 << 10}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	found := make(chan string, 1)
	scan := func(r io.Reader, isStderr bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		looking := u.stderr == isStderr
		for sc.Scan() {
			line := sc.Text()
			if looking {
				if addr, ok := u.find(line); ok {
					found <- addr
					looking = false
				}
			}
			if isStderr {
				fmt.Fprintln(ch.tail, line)
				if verbose {
					fmt.Fprintf(c.Stderr, "[%s] %s\n", name, line)
				}
			}
		}
		io.Copy(io.Discard, r) // a line too long for the scanner: drain the rest
	}
	var wg sync.WaitGroup
	wg.Go(func() { scan(stdout, false) })
	wg.Go(func() { scan(stderr, true) })
	go func() {
		wg.Wait() // Wait closes the pipes: read them to their end first
		ch.err = cmd.Wait()
		close(ch.done)
	}()
	select {
	case addr := <-found:
		if u, err := url.Parse(addr); err != nil || u.Host == "" {
			ch.stop()
			return nil, "", fmt.Errorf("%s printed a bad URL %q", name, addr)
		}
		return ch, addr, nil
	case <-ch.done:
		return nil, "", fmt.Errorf("%s exited before serving (%v):\n%s", name, ch.err, ch.tail.String())
	case <-time.After(2 * time.Minute):
		ch.stop()
		return nil, "", fmt.Errorf("%s did not start within 2 minutes:\n%s", name, ch.tail.String())
	case <-ctx.Done():
		ch.stop()
		return nil, "", ctx.Err()
	}
}

// benchTail keeps the last max bytes written to it.
type benchTail struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *benchTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *benchTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// BenchFakeCommand is `aigw bench fake`: the fake OpenAI-compatible
// upstream of the gateway benchmark (loadgen.FakeUpstream), in its own
// process.
type BenchFakeCommand struct{ *Main }

// Run serves the fake until interrupted (or stdin ends, with -exit-on-stdin-eof).
func (c *BenchFakeCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aigw bench fake", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	var fc loadgen.FakeConfig
	fs.DurationVar(&fc.ChunkDelay, "chunk-delay", 0, "pause before each content chunk of a stream (0: the whole stream at once)")
	fs.IntVar(&fc.Chunks, "chunks", loadgen.DefaultFakeChunks, "content chunks per stream")
	fs.StringVar(&fc.Model, "model", loadgen.DefaultFakeModel, "model named in the answers")
	eof := fs.Bool("exit-on-stdin-eof", false, "exit when stdin ends (how 'aigw bench gateway' ties its servers to itself)")
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage: aigw bench fake [flags]

Serves a fake OpenAI-compatible upstream (/v1/chat/completions, streaming,
/v1/embeddings, /v1/models) that answers at once with precomputed bytes, and
prints its URL on the first line of stdout.

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
	return serveBenchHandler(ctx, c.Main, *listen, *eof, loadgen.NewFakeUpstream(fc))
}

// BenchProxyCommand is `aigw bench proxy`: the bare reverse proxy of the
// gateway benchmark (loadgen.BareProxy), in its own process.
type BenchProxyCommand struct{ *Main }

// Run serves the proxy until interrupted (or stdin ends, with -exit-on-stdin-eof).
func (c *BenchProxyCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aigw bench proxy", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	target := fs.String("target", "", "upstream base URL (http://host:port)")
	eof := fs.Bool("exit-on-stdin-eof", false, "exit when stdin ends (how 'aigw bench gateway' ties its servers to itself)")
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage: aigw bench proxy -target URL [flags]

Serves a bare Go reverse proxy (httputil.ReverseProxy, flushing at once,
nothing else) to the target, and prints its URL on the first line of stdout.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *target == "" {
		fs.Usage()
		return flag.ErrHelp
	}
	u, err := url.Parse(*target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-target %q: want http://host:port", *target)
	}
	return serveBenchHandler(ctx, c.Main, *listen, *eof, loadgen.BareProxy(u))
}

// serveBenchHandler serves h on listen, prints the URL on stdout, and
// stops when ctx ends or, if eof, when stdin ends.
func serveBenchHandler(ctx context.Context, m *Main, listen string, eof bool, h http.Handler) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	if _, err := fmt.Fprintf(m.Stdout, "http://%s\n", ln.Addr()); err != nil {
		ln.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if eof && m.Stdin != nil {
		go func() {
			io.Copy(io.Discard, m.Stdin)
			cancel()
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		srv.Close()
		<-errc
		return nil
	case err := <-errc:
		return err
	}
}
