package ingestbench_test

import (
	"bytes"
	"flag"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/ingestbench"
	"aigw/ledger/ledgertest"
)

func TestRun(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  ingestbench.Config
	}{
		{"SQLiteSyncPaced", ingestbench.Config{Store: "sqlite", Rate: 2000, Producers: 8}},
		{"SQLiteAsyncOpenLoop", ingestbench.Config{Store: "sqlite", Mode: "async", Producers: 4, Logs: 3, Partitions: 2, PayloadSize: 256}},
		{"PostgresSyncPaced", ingestbench.Config{Store: "postgres", Rate: 2000, Producers: 16}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			if cfg.Store == "postgres" {
				cfg.DSN = ledgertest.PostgresDSN(t)
			}
			cfg.Duration, cfg.Warmup = time.Second, 200*time.Millisecond
			var out bytes.Buffer
			rep, err := ingestbench.Run(t.Context(), cfg, &out)
			t.Logf("%+v\n%s", rep, out.String())
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !rep.CountOK || !rep.Verified || rep.Entries != uint64(rep.TotalPublished) || rep.TotalFailed != 0 || rep.Committed == 0 || rep.P50 == 0 {
				t.Errorf("report %+v; want a count and verification OK, every published event in the logs", rep)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  ingestbench.Config
	}{
		{"ErrStore", ingestbench.Config{Store: "mysql"}},
		{"ErrPostgresNoDSN", ingestbench.Config{Store: "postgres"}},
		{"ErrMode", ingestbench.Config{Mode: "fire-and-forget"}},
		{"ErrEventTooSmall", ingestbench.Config{EventSize: 100}},
		{"ErrEventTooLarge", ingestbench.Config{EventSize: ledger.MaxEntrySize + 1}},
		{"ErrNegativeRate", ingestbench.Config{Rate: -1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); err == nil {
				t.Errorf("Validate(%+v) = nil; want an error", tt.cfg)
			}
		})
	}
}

// load runs a full load when asked:
//
//	go test ./ledger/ingestbench -run '^TestLoad$' -v -timeout 30m -args -load -store postgres -rate 40000
//
// With -store postgres and no -dsn it uses a fresh database on the test
// server (AIGW_TEST_POSTGRES), dropped afterwards.
var (
	load    = flag.Bool("load", false, "run TestLoad")
	loadCfg ingestbench.Config
)

func init() { loadCfg.Flags(flag.CommandLine) }

func TestLoad(t *testing.T) {
	if !*load {
		t.Skip("a load run: pass -args -load (see the comment on load)")
	}
	cfg := loadCfg
	if cfg.Store == "postgres" && cfg.DSN == "" {
		cfg.DSN = ledgertest.PostgresDSN(t)
	}
	var out bytes.Buffer
	_, err := ingestbench.Run(t.Context(), cfg, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
}
