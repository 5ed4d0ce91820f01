package readapi_test

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/readapi"
	"aigw/ledger/storetest"

	"golang.org/x/mod/sumdb/note"
)

// synthStore is a large log for benchmarks, built straight from leaf
// hashes: entry i is the bytes "entry <i>" (the read API never parses
// entries), its tiles come from a TreeBuilder, and one checkpoint is signed
// at the end.
type synthStore struct {
	size  uint64
	tiles map[[2]uint64][]byte
	head  ledger.Head
}

func entryBytes(i uint64) []byte { return []byte("entry " + strconv.FormatUint(i, 10)) }

func newSynthStore(tb testing.TB, size uint64) *synthStore {
	builder, _ := ledger.NewTreeBuilder(0, nil, nil)
	s := &synthStore{size: size, tiles: map[[2]uint64][]byte{}}
	for i := range size {
		builder.Append(ledger.LeafHash(entryBytes(i)))
		if i%4096 == 4095 || i == size-1 {
			for _, td := range builder.Flush() {
				s.tiles[[2]uint64{td.L, td.N}] = td.Hashes
			}
		}
	}
	skey, _, err := note.GenerateKey(crand.Reader, "bench")
	if err != nil {
		tb.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	cp, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "bench/acme", Size: size, Root: builder.Root()}, signer)
	if err != nil {
		tb.Fatal(err)
	}
	s.head = ledger.Head{Size: size, Checkpoint: cp}
	return s
}

func (s *synthStore) Head(ctx context.Context, log string) (ledger.Head, error) { return s.head, nil }
func (s *synthStore) ReadEntries(ctx context.Context, log string, start uint64, n int) ([]ledger.StoredEntry, error) {
	var out []ledger.StoredEntry
	for i := start; i < s.size && len(out) < n; i++ {
		out = append(out, ledger.StoredEntry{Index: i, Data: entryBytes(i)})
	}
	return out, nil
}
func (s *synthStore) ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b := s.tiles[[2]uint64{t.L, t.N}]
		if len(b) < t.W*ledger.HashSize {
			return nil, ledger.ErrNotFound
		}
		out[i] = b
	}
	return out, nil
}
func (s *synthStore) LookupLeaf(ctx context.Context, log string, leaf ledger.Hash) (uint64, error) {
	return 0, ledger.ErrNotFound
}
func (s *synthStore) LookupEvents(ctx context.Context, log string, ids []string) (map[string]uint64, error) {
	return map[string]uint64{}, nil
}
func (s *synthStore) Checkpoints(ctx context.Context, log string, from, to uint64) ([][]byte, error) {
	if from <= s.size && s.size <= to {
		return [][]byte{s.head.Checkpoint}, nil
	}
	return nil, nil
}
func (s *synthStore) Logs(ctx context.Context) ([]string, error) { return []string{"acme"}, nil }

// BenchmarkInclusionProof measures serving inclusion proofs of random
// entries at the head (the handler, without the network), reporting the
// median and 99th percentile latency. A log of 2^20 entries reads the same
// three tile levels as one of 10M (levels 0–2 cover up to 2^24 entries).
func BenchmarkInclusionProof(b *testing.B) {
	b.Run("mem/size=1048576", func(b *testing.B) {
		benchmarkProofs(b, newSynthStore(b, 1<<20), 1<<20)
	})
	b.Run("sqlite/size=65536", func(b *testing.B) {
		s := openSQLite(b)
		a := storetest.NewAppender(b, "acme")
		for range 16 {
			if err := s.AppendBatch(b.Context(), a.NextN(b, 4096)); err != nil {
				b.Fatal(err)
			}
		}
		benchmarkProofs(b, s, a.Size())
	})
}

func benchmarkProofs(b *testing.B, s readapi.Store, size uint64) {
	h := readapi.New(readapi.Config{Store: s})
	rng := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/acme/proof/inclusion?index=%d", rng.Uint64N(size)), nil)
		w := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(w, req)
		lat = append(lat, time.Since(start))
		if w.Code != http.StatusOK {
			b.Fatalf("%s = %d %s", req.URL, w.Code, w.Body)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
