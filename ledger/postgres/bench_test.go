package postgres

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/ledgertest"
)

// BenchmarkAppendBatch appends batches of 500 realistic 1 KiB entries with
// UUIDv7 event ids (tiles, checkpoint and head included), one transaction
// each, to a log that grows by every iteration. Building a batch is not timed.
func BenchmarkAppendBatch(b *testing.B) {
	for _, tc := range []struct {
		name    string
		appRole string // "" for the default, which has BYPASSRLS
	}{
		{"copy", ""},
		{"staged", "aigw_test_app_nobypass"},
	} {
		b.Run(fmt.Sprintf("%s/entries=500/size=1KiB", tc.name), func(b *testing.B) {
			dsn := ledgertest.PostgresDSN(b)
			if tc.appRole != "" {
				conn := superuserTB(b, dsn)
				if _, err := conn.Exec(b.Context(), `DO $$ BEGIN CREATE ROLE `+tc.appRole+` NOLOGIN;
					EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`); err != nil {
					b.Fatal(err)
				}
			}
			s := openStore(b, Config{DSN: dsn, MaxConns: 1, AppRole: tc.appRole, Logger: quietLogger()})
			l := newFastLog(b, "bench", 1024)
			l.fill(b, s, 5000, 500) // warm up: statement caches, a few tiles
			serverCPU := backendCPU(b, s)
			b.ReportAllocs()
			rows := 0
			for b.Loop() {
				b.StopTimer()
				batch := l.next(b, 500)
				b.StartTimer()
				if err := s.AppendBatch(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
				rows += len(batch.Entries)
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			reportServerCPU(b, serverCPU, rows)
		})
	}
}

// BenchmarkRead reads a log of 100,000 realistic 1 KiB entries: entries in
// runs of 10,000, the tiles of a proof, and lookups by leaf hash and event id.
func BenchmarkRead(b *testing.B) {
	const size = 100_000
	s := openStore(b, Config{DSN: ledgertest.PostgresDSN(b), MaxConns: 1, Logger: quietLogger()})
	l := newFastLog(b, "bench", 1024)
	var entries []ledger.StoredEntry
	for range size / 1000 {
		batch := l.next(b, 1000)
		if err := s.AppendBatch(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
		entries = append(entries, batch.Entries[0], batch.Entries[999])
	}
	ctx := b.Context()

	b.Run("Entries/n=10000", func(b *testing.B) {
		serverCPU := backendCPU(b, s)
		b.ReportAllocs()
		rows, start := 0, uint64(0)
		for b.Loop() {
			es, err := s.ReadEntries(ctx, "bench", start, 10_000)
			if err != nil || len(es) != 10_000 {
				b.Fatalf("ReadEntries(%d) = %d entries, %v", start, len(es), err)
			}
			rows += len(es)
			start = (start + 10_000) % size
		}
		b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		reportServerCPU(b, serverCPU, rows)
	})
	b.Run("Tiles/proof", func(b *testing.B) {
		// The tiles of an inclusion proof of entry 12,345 in the tree of 100,000.
		tiles := []ledger.Tile{{L: 0, N: 48, W: 256}, {L: 1, N: 0, W: 256}, {L: 2, N: 0, W: 1}, {L: 0, N: 390, W: size % 256}, {L: 1, N: 1, W: size/256 - 256}}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.ReadTiles(ctx, "bench", tiles); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("LookupLeaf", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			e := entries[i%len(entries)]
			i++
			if got, err := s.LookupLeaf(ctx, "bench", ledger.LeafHash(e.Data)); err != nil || got != e.Index {
				b.Fatalf("LookupLeaf = %d, %v; want %d", got, err, e.Index)
			}
		}
	})
	b.Run("LookupEvents/n=500", func(b *testing.B) {
		ids := make([]string, 0, 500)
		for _, e := range entries[:min(500, len(entries))] {
			ids = append(ids, e.EventID)
		}
		b.ReportAllocs()
		for b.Loop() {
			if m, err := s.LookupEvents(ctx, "bench", ids); err != nil || len(m) != len(ids) {
				b.Fatalf("LookupEvents = %d, %v", len(m), err)
			}
		}
	})
}

// backendCPU returns a function that reads the CPU time the server process
// of s's one connection has used, or nil if it cannot be read (a remote
// server, or no /proc). The benchmarks report it per row, since the
// machine's other load changes wall time far more than CPU time.
func backendCPU(b *testing.B, s *Store) func() time.Duration {
	var pid int
	if err := s.pool.QueryRow(b.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		b.Fatal(err)
	}
	read := func() time.Duration {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return -1
		}
		// Fields after the ")" that ends the command name: utime and stime
		// are the 12th and 13th, in clock ticks (100 per second on Linux).
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(ut+st) * 10 * time.Millisecond
	}
	if read() < 0 {
		return nil
	}
	start := read()
	return func() time.Duration { return read() - start }
}

func reportServerCPU(b *testing.B, serverCPU func() time.Duration, rows int) {
	if serverCPU != nil && rows > 0 {
		b.ReportMetric(float64(serverCPU().Nanoseconds())/1e3/float64(rows), "server-µs/row")
	}
}
