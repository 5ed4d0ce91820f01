package postgres

import (
	"os"
	"strconv"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/ledgertest"
	"aigw/verify"

	"golang.org/x/mod/sumdb/note"
)

// BenchmarkVerifyFromPostgres measures `aigw verify -database-url`: verify.Log
// over verify.StoreSource on this store, for a log of 1,000,000 realistic
// 1 KiB entries (AIGW_BENCH_VERIFY_SIZE overrides). Every entry is read with
// its chain hash, parsed, hashed; the chain, every tile and every historical
// checkpoint are checked.
//
//	go test ./ledger/postgres -run '^$' -bench VerifyFromPostgres -benchtime 3x
func BenchmarkVerifyFromPostgres(b *testing.B) {
	size := 1_000_000
	if s := os.Getenv("AIGW_BENCH_VERIFY_SIZE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	var err error
	s := openStore(b, Config{DSN: ledgertest.PostgresDSN(b)})
	l := newFastLog(b, "big", 1024)
	start := time.Now()
	l.fill(b, s, size, 1000)
	b.Logf("fixture: %d entries in %s", size, time.Since(start).Round(time.Millisecond))
	opts := verify.Options{Verifiers: note.VerifierList(l.verifier), Origin: ledger.Origin("bench.aigw.invalid", "big")}
	if w := os.Getenv("AIGW_BENCH_VERIFY_WORKERS"); w != "" {
		if opts.Workers, err = strconv.Atoi(w); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := verify.Log(b.Context(), verify.StoreSource(s), "big", opts)
		if err != nil {
			b.Fatal(err)
		}
		if res.Size != uint64(size) || !res.ChainChecked {
			b.Fatalf("verified %+v", res)
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
