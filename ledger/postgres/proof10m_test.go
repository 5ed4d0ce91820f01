package postgres_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/ledgertest"
	"aigw/ledger/postgres"
	"aigw/ledger/readapi"
	"aigw/ledger/signer"

	"github.com/jackc/pgx/v5"
)

// BenchmarkProofs10M measures inclusion and consistency proofs served by the
// read API from PostgreSQL, in a log of 10,000,000 entries
// (AIGW_BENCH_PROOF_SIZE overrides the size). The fixture holds the log's
// tree (every tile, the head and a signed checkpoint) written straight into
// the tables (tiny entries, no payloads), not through the sequencer, so that
// building it takes minutes, not an hour. Each proof is timed alone, at a
// random index, and the p50/p99/p99.9 of the server-side latency reported.
//
//	go test ./ledger/postgres -run '^$' -bench Proofs10M -benchtime 20000x
func BenchmarkProofs10M(b *testing.B) {
	size := uint64(10_000_000)
	if s := os.Getenv("AIGW_BENCH_PROOF_SIZE"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	ctx := context.Background()
	dsn := ledgertest.PostgresDSN(b)
	store, err := postgres.Open(ctx, postgres.Config{DSN: dsn})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	key, _, _ := signer.Generate("aigw.bench/ledger")

	start := time.Now()
	tb, err := ledger.NewTreeBuilder(0, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	var leaf ledger.Hash
	for i := uint64(0); i < size; i++ {
		leaf = ledger.LeafHash([]byte(strconv.FormatUint(i, 10)))
		tb.Append(leaf)
	}
	tiles := tb.Flush()
	root := tb.Root()
	signed, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: ledger.Origin("aigw.bench/ledger", "big"), Size: size, Root: root}, key)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var logID int32
	if err := conn.QueryRow(ctx, `INSERT INTO logs (name, size, chain, compact_range, checkpoint) VALUES ('big', $1, $2, $3, $4) RETURNING id`,
		int64(size), make([]byte, 32), ledger.RangeBytes(tb.Range()), signed).Scan(&logID); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO checkpoints (log_id, size, note) VALUES ($1, $2, $3)`, logID, int64(size), signed); err != nil {
		b.Fatal(err)
	}
	rows := make([][]any, len(tiles))
	for i, t := range tiles {
		rows[i] = []any{int64(t.N), logID, int16(t.L), t.Hashes}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"tiles"}, []string{"idx", "log_id", "level", "hashes"}, pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
	// Entries: small, distinct, each hashing to its leaf (the read API
	// returns the entry with its proof and checks its leaf hash).
	const chunk = 100_000
	chain := make([]byte, 32)
	for from := uint64(0); from < size; from += chunk {
		n := min(chunk, size-from)
		i := uint64(0)
		src := pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			idx := from + i
			i++
			var id [16]byte
			binary.BigEndian.PutUint64(id[8:], idx)
			id[6], id[8] = 0x70, 0x80
			return []any{int64(idx), logID, id, chain, []byte(strconv.FormatUint(idx, 10))}, nil
		})
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"entries"}, []string{"idx", "log_id", "event_id", "chain", "entry"}, src); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
	b.Logf("fixture: %d entries, %d tiles, built in %s", size, len(tiles), time.Since(start).Round(time.Millisecond))

	h := readapi.New(readapi.Config{Store: store})
	serve := func(path string) time.Duration {
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
		rec := httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(rec, req)
		d := time.Since(t0)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body.String())
		}
		return d
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, kind := range []string{"inclusion", "consistency"} {
		b.Run(kind, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				var path string
				if kind == "inclusion" {
					path = fmt.Sprintf("/big/proof/inclusion?index=%d", rng.Uint64N(size))
				} else {
					path = fmt.Sprintf("/big/proof/consistency?size1=%d&size2=%d", 1+rng.Uint64N(size-1), size)
				}
				lat = append(lat, serve(path))
			}
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
			b.ReportMetric(q(0.50), "p50-µs")
			b.ReportMetric(q(0.99), "p99-µs")
			b.ReportMetric(q(0.999), "p99.9-µs")
		})
	}
}
