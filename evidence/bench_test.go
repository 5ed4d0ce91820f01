package evidence_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"aigw/controls"
	"aigw/evidence"
	"aigw/ledger"
	"aigw/ledger/ledgertest"
	"aigw/ledger/postgres"
	"aigw/ledger/sequencer"
	"aigw/ledger/signer"
	"aigw/ledger/sqlite"
	"aigw/oscal"
	"aigw/verify"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
)

// BenchmarkExport10M exports an assessor package for a tenant with
// 10,000,000 entries in the period (AIGW_BENCH_EXPORT_SIZE overrides), from
// PostgreSQL. The tenant's log (realistic calls: request, route, attempt,
// response, with failures, fallbacks and refusals) is written straight into
// the tables with COPY, tree, chain hashes and a signed checkpoint every
// 50,000 entries included, so that building it takes minutes; the system
// log goes through the sequencer. Each iteration is one whole export
// (verification from index 0, populations, samples, proofs, OSCAL).
//
//	go test ./evidence -run '^$' -bench Export10M -benchtime 1x -timeout 60m
func BenchmarkExport10M(b *testing.B) {
	size := benchSize(b)
	ctx := context.Background()
	dsn := ledgertest.PostgresDSN(b)
	store, err := postgres.Open(ctx, postgres.Config{DSN: dsn})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	sg := fixedSigner(b)
	const origin = "aigw.bench/ledger"
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	step := 500 * time.Microsecond
	to := from.Add(time.Duration(size)*step + time.Second)

	start := time.Now()
	if err := writeBigLog(ctx, dsn, "acme", origin, size, from, step, to, sg); err != nil {
		b.Fatal(err)
	}
	// The system log: tenant creation before the period, a few admin
	// changes in it, one after it.
	seq, err := sequencer.New(sequencer.Config{Store: store, Signer: sg, OriginPrefix: origin})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	sys := func(at time.Time, attrs map[string]any) {
		n++
		ev := &ledger.Event{ID: fmt.Sprintf("019a0000-0000-7000-8000-%012x", n), Tenant: ledger.SystemLog, Kind: ledger.KindAdmin, Time: at, Actor: ledger.Actor{KeyID: "admin"}, Attrs: attrs}
		e, err := ev.Entry()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := seq.Append(ctx, ledger.SystemLog, []sequencer.Record{{Entry: e}}); err != nil {
			b.Fatal(err)
		}
	}
	sys(from.Add(-time.Hour), map[string]any{"action": "tenant.create", "tenant": "acme"})
	for i := range 10 {
		sys(from.Add(time.Duration(i)*time.Minute), map[string]any{"action": "key.create", "tenant": "acme", "key_id": fmt.Sprint("k", i)})
	}
	sys(to.Add(time.Hour), map[string]any{"action": "key.create", "tenant": "acme", "key_id": "late"})
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
	conn.Close(ctx)
	b.Logf("fixture: %d entries built in %s", size, time.Since(start).Round(time.Millisecond))

	runExportBench(b, store, sg, from, to)
}

// runExportBench exports the period of acme's log once per iteration, and
// verifies the log alone (no scan, no package) as the baseline.
func runExportBench(b *testing.B, store evidence.Reader, sg *signer.Signer, from, to time.Time) {
	ctx := context.Background()
	var ratios []float64
	for b.Loop() {
		out := filepath.Join(b.TempDir(), "pkg")
		var peak uint64
		done := make(chan struct{})
		go func() { // sample the heap while the export runs
			var ms runtime.MemStats
			for {
				select {
				case <-done:
					return
				case <-time.After(200 * time.Millisecond):
				}
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}()
		os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset the peak RSS (Linux)
		t0 := time.Now()
		r, err := evidence.Build(ctx, evidence.Config{
			Store: store, Framework: controls.FedRAMPModerate, Tenant: "acme", From: from, To: to,
			Signer: sg, VerifierKey: sg.VerifierKey(), Verifiers: note.VerifierList(sg.Verifier()),
			Generator: "aigw bench", Render: oscal.Render,
		}, out)
		close(done)
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(t0)
		var inPeriod uint64
		for _, l := range r.Logs {
			inPeriod += l.InPeriod
			if !l.Verified {
				b.Fatalf("log %s did not verify: %s", l.Log, l.Error)
			}
		}
		b.ReportMetric(el.Seconds(), "s/export")
		b.ReportMetric(float64(inPeriod)/el.Seconds(), "entries/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		hwm := peakRSS()
		b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
		t1 := time.Now()
		if _, err := verify.Log(ctx, verify.StoreSource(store), "acme", verify.Options{Verifiers: note.VerifierList(sg.Verifier())}); err != nil {
			b.Fatal(err)
		}
		base := time.Since(t1)
		ratios = append(ratios, el.Seconds()/base.Seconds())
		b.Logf("baseline: verify of log acme alone in %s (export/verify %.2f)", base.Round(time.Millisecond), el.Seconds()/base.Seconds())
		b.Logf("export: %d entries in the period in %s (%.0f entries/s), peak heap %d MiB, peak RSS %d MiB", inPeriod, el.Round(time.Millisecond), float64(inPeriod)/el.Seconds(), peak>>20, hwm>>20)
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "export/verify")
}

// BenchmarkExportSQLite is BenchmarkExport10M on the embedded default's
// SQLite store, the log written through the sequencer in batches of
// 10,000 (AIGW_BENCH_EXPORT_SIZE, default 10,000,000).
//
//	go test ./evidence -run '^$' -bench ExportSQLite -benchtime 1x -timeout 60m
func BenchmarkExportSQLite(b *testing.B) {
	size := benchSize(b)
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "ledger.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	sg := fixedSigner(b)
	seq, err := sequencer.New(sequencer.Config{Store: store, Signer: sg, OriginPrefix: "aigw.bench/ledger"})
	if err != nil {
		b.Fatal(err)
	}
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	step := 500 * time.Microsecond
	to := from.Add(time.Duration(size)*step + time.Second)
	start := time.Now()
	total := size + 1000
	for lo := uint64(0); lo < total; lo += 10_000 {
		hi := min(lo+10_000, total)
		recs := make([]sequencer.Record, 0, hi-lo)
		for i := lo; i < hi; i++ {
			at := from.Add(time.Duration(i) * step)
			if i >= size {
				at = to.Add(10 * time.Minute)
			}
			recs = append(recs, sequencer.Record{Entry: bigEntry("acme", i, at)})
		}
		if _, err := seq.Append(ctx, "acme", recs); err != nil {
			b.Fatal(err)
		}
	}
	ev := &ledger.Event{ID: "019a0000-0000-7000-8000-000000000001", Tenant: ledger.SystemLog, Kind: ledger.KindAdmin, Time: to.Add(time.Hour), Actor: ledger.Actor{KeyID: "admin"}, Attrs: map[string]any{"action": "tenant.create", "tenant": "acme"}}
	e, _ := ev.Entry()
	if _, err := seq.Append(ctx, ledger.SystemLog, []sequencer.Record{{Entry: e}}); err != nil {
		b.Fatal(err)
	}
	b.Logf("fixture: %d entries built in %s", size, time.Since(start).Round(time.Millisecond))
	runExportBench(b, store, sg, from, to)
}

// benchSize is the number of entries in the benchmark's period:
// AIGW_BENCH_EXPORT_SIZE, default 10,000,000.
func benchSize(b *testing.B) uint64 {
	s := os.Getenv("AIGW_BENCH_EXPORT_SIZE")
	if s == "" {
		return 10_000_000
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// peakRSS reads the process's peak resident set size (VmHWM, Linux; 0
// elsewhere), since the last reset through /proc/self/clear_refs.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// writeBigLog writes a log of size entries (calls of four events, dated
// from `from`, step apart, then 1,000 entries dated after `to`) straight
// into the PostgreSQL tables.
func writeBigLog(ctx context.Context, dsn, log, origin string, size uint64, from time.Time, step time.Duration, to time.Time, sg note.Signer) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var logID int32
	if err := conn.QueryRow(ctx, `INSERT INTO logs (name, size, chain, compact_range, checkpoint) VALUES ($1, 0, $2, $3, $4) RETURNING id`,
		log, make([]byte, 32), []byte{}, []byte{}).Scan(&logID); err != nil {
		return err
	}
	tb, err := ledger.NewTreeBuilder(0, nil, nil)
	if err != nil {
		return err
	}
	total := size + 1000
	var chain ledger.Hash
	partial := map[uint64]ledger.TileData{}
	var last []byte
	const chunk = 50_000
	for lo := uint64(0); lo < total; lo += chunk {
		hi := min(lo+chunk, total)
		rows := make([][]any, 0, hi-lo)
		for i := lo; i < hi; i++ {
			at := from.Add(time.Duration(i) * step)
			if i >= size {
				at = to.Add(10 * time.Minute)
			}
			e := bigEntry(log, i, at)
			leaf := ledger.LeafHash(e)
			chain = ledger.ChainHash(chain, leaf)
			tb.Append(leaf)
			var id [16]byte
			copy(id[:], uuidBytes(i))
			c := chain // a copy: rows keep their slices until COPY
			rows = append(rows, []any{int64(i), logID, id, c[:], e})
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"entries"}, []string{"idx", "log_id", "event_id", "chain", "entry"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		var full [][]any
		for _, t := range tb.Flush() {
			if t.W < ledger.TileWidth {
				partial[uint64(t.L)<<56|t.N] = t
				continue
			}
			delete(partial, uint64(t.L)<<56|t.N)
			full = append(full, []any{int64(t.N), logID, int16(t.L), t.Hashes})
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"tiles"}, []string{"idx", "log_id", "level", "hashes"}, pgx.CopyFromRows(full)); err != nil {
			return err
		}
		last, err = ledger.SignCheckpoint(ledger.Checkpoint{Origin: ledger.Origin(origin, log), Size: hi, Root: tb.Root()}, sg)
		if err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, `INSERT INTO checkpoints (log_id, size, note) VALUES ($1, $2, $3)`, logID, int64(hi), last); err != nil {
			return err
		}
	}
	var rest [][]any
	for _, t := range partial {
		rest = append(rest, []any{int64(t.N), logID, int16(t.L), t.Hashes})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"tiles"}, []string{"idx", "log_id", "level", "hashes"}, pgx.CopyFromRows(rest)); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `UPDATE logs SET size = $1, chain = $2, compact_range = $3, checkpoint = $4 WHERE id = $5`,
		int64(total), chain[:], ledger.RangeBytes(tb.Range()), last, logID)
	return err
}

func uuidBytes(i uint64) []byte {
	var id [16]byte
	id[0], id[1] = 0x01, 0x9a
	for k := 0; k < 8; k++ {
		id[15-k] = byte(i >> (8 * k))
	}
	id[6], id[8] = 0x70, 0x80
	return id[:]
}

func uuidString(i uint64) string {
	b := uuidBytes(i)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// bigEntry is entry i of the benchmark log: calls of request, route,
// attempt and response (a failed attempt with a fallback every 20th call,
// a refusal every 100th).
func bigEntry(log string, i uint64, at time.Time) []byte {
	call := i / 4
	actor := ledger.Actor{KeyID: "key_" + strconv.FormatUint(call%50, 10), AgentID: "agent-" + strconv.FormatUint(call%7, 10)}
	ev := &ledger.Event{ID: uuidString(i), Tenant: log, Time: at, Actor: actor, TraceID: fmt.Sprintf("%032x", call+1), Policy: "sha256:4f0bd0a43c1e"}
	switch i % 4 {
	case 0:
		ev.Kind = ledger.KindRequest
		ev.Attrs = map[string]any{"endpoint": "chat", "model": "gpt-4o-mini", "stream": call%3 == 0, "bytes": 1834}
		ev.PayloadSHA256 = fmt.Sprintf("%064x", i)
	case 1:
		ev.Kind = ledger.KindRoute
		ev.Attrs = map[string]any{"route": "gpt-4o-mini", "strategy": "ordered", "candidates": []any{"openai-a", "openai-b"}, "reason": "ordered"}
	case 2:
		ev.Kind = ledger.KindAttempt
		ev.Attrs = map[string]any{"n": 1, "target": "openai-a", "provider": "openai", "model": "gpt-4o-mini", "outcome": "ok", "duration_us": 412345}
		if call%20 == 0 {
			ev.Attrs["outcome"], ev.Attrs["status"], ev.Attrs["next"], ev.Attrs["error"] = "error", 503, "openai-b", "upstream 503"
		}
	case 3:
		ev.Kind = ledger.KindResponse
		ev.Attrs = map[string]any{"status": 200, "latency_us": 412999, "attempts": 1, "target": "openai-a", "provider": "openai", "model": "gpt-4o-mini",
			"finish_reason": "stop", "tokens": map[string]any{"prompt": 512, "completion": 128, "total": 640}, "cost_usd": "0.0001536"}
		if call%100 == 0 {
			ev.Kind = ledger.KindError
			ev.Attrs = map[string]any{"status": 429, "error_type": "rate_limit_error", "error_code": "rate_limited", "error": "Rate limit reached.", "latency_us": 40, "attempts": 0}
		}
		ev.PayloadSHA256 = fmt.Sprintf("%064x", i)
	}
	e, err := ev.Entry()
	if err != nil {
		panic(err)
	}
	return e
}
