package main

import (
	"aigw/gateway/guard/engine"
	"time"

	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is the aigw configuration file (YAML). Every key is optional: an
// empty file, or no file, runs everything embedded under DataDir. Values of
// the form ${NAME} are replaced by the environment variable NAME, so secrets
// stay out of the file. Flags override the file; AIGW_* environment variables
// override the defaults of the flags.
type Config struct {
	// Listen is the HTTP address of the gateway and the ledger read API.
	Listen string `yaml:"listen"`
	// DataDir holds the embedded state: the SQLite ledger, the embedded NATS
	// store and the generated checkpoint key.
	DataDir string       `yaml:"data_dir"`
	Ledger  LedgerConfig `yaml:"ledger"`
	// Gateway configures the API: admin key, fail-closed, body limit,
	// where tenants and keys live.
	Gateway GatewayConfig `yaml:"gateway"`
	// Providers are the upstreams; Routes the model names clients send
	// and the targets that serve them. With neither, the embedded default
	// serves the model "mock" from the built-in mock provider.
	Providers []ProviderConfig `yaml:"providers"`
	Routes    []RouteConfig    `yaml:"routes"`
	// Breaker tunes every target's circuit breaker.
	Breaker BreakerConfig `yaml:"breaker"`
	// Guardrails are the policies of checks on calls' input and output
	// (gateway/guard: Config).
	Guardrails engine.Config `yaml:"guardrails"`
	// Pricing overrides the built-in price table (gateway/pricing).
	Pricing PricingConfig `yaml:"pricing"`
	// Budgets are spend caps per tenant, team, key and agent.
	Budgets BudgetsConfig `yaml:"budgets"`
	// Telemetry exports traces (OTLP), metrics and Langfuse generations.
	Telemetry TelemetryConfig `yaml:"telemetry"`
	// MCP configures the gateway's MCP server and upstream MCP servers.
	MCP MCPConfig `yaml:"mcp"`
	// A2A configures the agents reachable through the A2A proxy.
	A2A A2AConfig `yaml:"a2a"`
}

// LedgerConfig configures the audit ledger.
type LedgerConfig struct {
	// DatabaseURL is a PostgreSQL URL; empty means SQLite in DataDir.
	DatabaseURL string `yaml:"database_url"`
	// NATSURL is the NATS server with JetStream; empty means an embedded
	// nats-server storing under DataDir.
	NATSURL string `yaml:"nats_url"`
	// NATSListen is where the embedded nats-server listens (host:port; port 0
	// picks a free one). It requires the token in DataDir/nats.token
	// (0600, generated on the first start); DataDir/nats.url (0600) holds
	// the URL with it, for `aigw append` and `aigw sequence`.
	NATSListen string `yaml:"nats_listen"`
	// Origin is the checkpoint origin prefix; a log's origin is Origin/<log>.
	Origin string `yaml:"origin"`
	// Key is the checkpoint signing key: a key file, or a KMS URI whose
	// provider is linked in. Empty means DataDir/checkpoint.key, created on
	// first start.
	Key string `yaml:"key"`
	// TrustedKeys are verifier keys of earlier checkpoint keys (after a
	// rotation), so logs they signed keep being extended.
	TrustedKeys []string `yaml:"trusted_keys"`
	// Partitions is the number of JetStream subject partitions logs are
	// spread over; each is sequenced by one process at a time.
	Partitions int `yaml:"partitions"`
	// Sequence lists the partitions this process sequences (default: all).
	// Several processes sequencing disjoint partitions scale the ledger out.
	// An empty list (sequence: []) sequences none: a gateway replica that
	// leaves sequencing, and its CPU, to other processes on the same NATS
	// and database.
	Sequence []int `yaml:"sequence"`
	// Stream is the JetStream stream name, SubjectPrefix its subject prefix.
	Stream        string `yaml:"stream"`
	SubjectPrefix string `yaml:"subject_prefix"`
	// NATSSyncAlways makes the embedded NATS fsync every event before it is
	// acknowledged (no power-loss window; ~6k events/s on a fast disk). By
	// default it fsyncs every 10 s (nats-server's default is 2 minutes).
	NATSSyncAlways bool `yaml:"nats_sync_always"`
	// Batch is the sequencer's batch size (default 500).
	Batch int `yaml:"batch"`
	// Linger is the sequencer's group-commit window (the trade is in
	// jetstream.SequencerConfig.Linger). Default 5ms; negative: none; at
	// most 1s.
	Linger time.Duration `yaml:"linger"`
	// DeferUnderLoad bounds how far the sequencer may fall behind while the
	// gateway's goroutines queue for the CPU (a burst): it then commits in
	// at most 5% of its time, gives the rest to the calls, and catches up
	// when the burst is over. Calls wait for JetStream's acknowledgement,
	// not for the sequencer: only the ledger's proofs and read API lag.
	// Default 10s; negative: never defer.
	DeferUnderLoad time.Duration `yaml:"defer_under_load"`
	// SequencerProcess runs this process's sequencer in a child process
	// (`aigw sequence -child`, supervised and restarted by serve) instead
	// of in the gateway's own, at the lowest CPU priority (Linux's
	// SCHED_IDLE; nice 19 elsewhere): its commits, SQLite's above all, then
	// run on CPU the calls leave idle. When it falls DeferUnderLoad behind
	// (or is not heard from for that long), serve starts it again at the
	// gateway's priority until it has caught up, so that the ledger's lag
	// stays bounded under a sustained overload as it does in process.
	// Default true; false sequences in serve's own process, where
	// DeferUnderLoad's yielding applies instead.
	SequencerProcess bool `yaml:"sequencer_process"`
	// ReadToken, when set, is required as "Authorization: Bearer <token>" by
	// the ledger read API (/ledger/). Without it the read API serves every
	// log to anyone who can reach the listen address (by default only this
	// host). Use ${NAME} to keep it out of the file.
	ReadToken string `yaml:"read_token"`
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// defaultConfig is the embedded default, with AIGW_* environment overrides.
func defaultConfig() Config {
	return Config{
		Listen:  envOr("AIGW_LISTEN", "127.0.0.1:8080"),
		DataDir: envOr("AIGW_DATA_DIR", "data"),
		Ledger: LedgerConfig{
			DatabaseURL:   os.Getenv("AIGW_DATABASE_URL"),
			NATSURL:       os.Getenv("AIGW_NATS_URL"),
			NATSListen:    envOr("AIGW_NATS_LISTEN", "127.0.0.1:0"),
			Origin:        envOr("AIGW_ORIGIN", "aigw.local/ledger"),
			Key:           os.Getenv("AIGW_KEY"),
			Partitions:    1,
			Stream:        "AUDIT",
			SubjectPrefix: "aigw.audit",
			Batch:         500,
			// Measured (README, Performance): a third off the added p99 at
			// 500 and 2,000 requests/s.
			SequencerProcess: true,
			ReadToken:        os.Getenv("AIGW_READ_TOKEN"),
		},
		Gateway: GatewayConfig{AdminKey: os.Getenv("AIGW_ADMIN_KEY"), DefaultTenant: "default"},
	}
}

// loadConfig reads a config file over the defaults.
func loadConfig(path string) (Config, error) {
	cfg := defaultConfig()
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	// The default tenant is bootstrapped only by the embedded default; a
	// config file opts in with gateway.default_tenant.
	cfg.Gateway.DefaultTenant = ""
	var missing []string
	expanded := os.Expand(string(b), func(name string) string {
		v, ok := os.LookupEnv(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return cfg, fmt.Errorf("config %s: environment variables not set: %s", path, strings.Join(missing, ", "))
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(expanded)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func (c *Config) validate() error {
	l := &c.Ledger
	if l.Partitions < 1 || l.Partitions > 1024 {
		return fmt.Errorf("ledger.partitions must be 1..1024, got %d", l.Partitions)
	}
	for _, p := range l.Sequence {
		if p < 0 || p >= l.Partitions {
			return fmt.Errorf("ledger.sequence: partition %d out of range 0..%d", p, l.Partitions-1)
		}
	}
	if l.Batch < 1 || l.Batch > 10000 {
		return fmt.Errorf("ledger.batch must be 1..10000, got %d", l.Batch)
	}
	if l.Linger > time.Second {
		return fmt.Errorf("ledger.linger must be at most 1s, got %s", l.Linger)
	}
	if c.DataDir == "" {
		return errors.New("data_dir must not be empty")
	}
	if err := c.validateGateway(); err != nil {
		return err
	}
	return c.validateBudgets()
}

func (c *Config) keyPath() string {
	if c.Ledger.Key != "" {
		return c.Ledger.Key
	}
	return filepath.Join(c.DataDir, "checkpoint.key")
}

// ledgerFlags registers the flags shared by the commands that reach a ledger.
type ledgerFlags struct {
	config      string
	dataDir     string
	databaseURL string
	natsURL     string
	origin      string
}

func (f *ledgerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "config file (YAML)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory of the embedded default (default ./data, or $AIGW_DATA_DIR)")
	fs.StringVar(&f.databaseURL, "database-url", "", "PostgreSQL URL (default: SQLite in the data directory, or $AIGW_DATABASE_URL)")
	fs.StringVar(&f.natsURL, "nats-url", "", "NATS URL (default: the embedded server, or $AIGW_NATS_URL)")
	fs.StringVar(&f.origin, "origin", "", "checkpoint origin prefix (default aigw.local/ledger)")
}

// load returns the config file (if any) with the flags applied on top.
func (f *ledgerFlags) load() (Config, error) {
	cfg, err := loadConfig(f.config)
	if err != nil {
		return cfg, err
	}
	if f.dataDir != "" {
		cfg.DataDir = f.dataDir
	}
	if f.databaseURL != "" {
		cfg.Ledger.DatabaseURL = f.databaseURL
	}
	if f.natsURL != "" {
		cfg.Ledger.NATSURL = f.natsURL
	}
	if f.origin != "" {
		cfg.Ledger.Origin = f.origin
	}
	return cfg, cfg.validate()
}
