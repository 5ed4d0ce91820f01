package verify_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/verify"
)

// writeBig writes a log of n generated entries straight into the export
// layout under dir, streaming (a bundle at a time), with a checkpoint every
// 65,536 entries. It is how the benchmarks get a million-entry log quickly.
func writeBig(tb testing.TB, dir, log string, n int, k key) {
	tb.Helper()
	root := filepath.Join(dir, log)
	put := func(rel string, data []byte) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	builder, err := ledger.NewTreeBuilder(0, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	origin := ledger.Origin(testOriginPrefix, log)
	sign := func() []byte {
		cp, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: origin, Size: builder.Size(), Root: builder.Root()}, k.signer)
		if err != nil {
			tb.Fatal(err)
		}
		put("checkpoints/"+strconv.FormatUint(builder.Size(), 10), cp)
		return cp
	}
	var chain ledger.Hash
	partial := map[uint64]ledger.TileData{}
	entries := make([][]byte, 0, ledger.TileWidth)
	for start := 0; start < n; start += ledger.TileWidth {
		w := min(ledger.TileWidth, n-start)
		entries = entries[:0]
		chains := make([]byte, 0, w*ledger.HashSize)
		for i := range w {
			e := genEntry(log, uint64(start+i))
			leaf := ledger.LeafHash(e)
			chain = ledger.ChainHash(chain, leaf)
			builder.Append(leaf)
			entries = append(entries, e)
			chains = append(chains, chain[:]...)
		}
		bt := ledger.Tile{N: uint64(start / ledger.TileWidth), W: w, Entries: true}
		put(bt.Path(), mustBundle(entries))
		put("chain/"+strings.TrimPrefix(bt.Path(), "tile/entries/"), chains)
		for _, t := range builder.Flush() {
			if t.W == ledger.TileWidth {
				put(t.Path(), t.Hashes)
				delete(partial, t.L)
			} else {
				partial[t.L] = t
			}
		}
		if builder.Size()%65536 == 0 {
			sign()
		}
	}
	for _, t := range partial {
		put(t.Path(), t.Hashes)
	}
	put("checkpoint", sign())
}

// BenchmarkVerifyDir verifies a million-entry export (about 420 bytes an
// entry, realistic gateway events), reporting entries verified per second.
func BenchmarkVerifyDir(b *testing.B) {
	const n = 1 << 20
	k := newKey(b, "test.aigw/verify")
	dir := b.TempDir()
	writeBig(b, dir, "acme", n, k)
	src := verify.DirSource(dir)
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		res, err := verify.Log(b.Context(), src, "acme", opts(k))
		if err != nil {
			b.Fatal(err)
		}
		if res.Size != n {
			b.Fatalf("verified %d entries; want %d", res.Size, n)
		}
	}
	reportRate(b, n, cpu)
}

// reportRate reports entries verified per second of wall time and, since
// the machine may be shared, the CPU time spent per entry (all threads): on
// an idle machine the rate approaches GOMAXPROCS / cpu-ns/entry.
func reportRate(b *testing.B, n int, cpuBefore time.Duration) {
	total := float64(n) * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds(), "entries/s")
	if cpu := cpuTime() - cpuBefore; cpuBefore > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/total, "cpu-ns/entry")
	}
}

// BenchmarkVerifyStore verifies a log through StoreSource over an in-memory
// store: the EntryReader path without a database's read cost.
func BenchmarkVerifyStore(b *testing.B) {
	const n = 1 << 18
	k := newKey(b, "test.aigw/verify")
	f := newFixture(b, "acme", k)
	f.addN(n, 4096)
	src := verify.StoreSource(newMemStore(f))
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if _, err := verify.Log(b.Context(), src, "acme", opts(k)); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, n, cpu)
}
