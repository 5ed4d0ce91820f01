package export_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"aigw/ledger"
	"aigw/ledger/export"
	"aigw/ledger/storetest"
	"aigw/verify"

	"golang.org/x/mod/sumdb/note"
)

// memStore is an in-memory implementation of the store methods an export
// reads, fed with the batches a storetest.Appender builds.
type memStore struct {
	mu   sync.Mutex
	logs map[string]*memLog
}

type memLog struct {
	head        ledger.Head
	entries     []ledger.StoredEntry
	tiles       map[[2]uint64][]byte
	checkpoints [][]byte
	sizes       []uint64
}

func newMemStore() *memStore { return &memStore{logs: map[string]*memLog{}} }

func (s *memStore) apply(b *ledger.Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.logs[b.Log]
	if l == nil {
		l = &memLog{tiles: map[[2]uint64][]byte{}}
		s.logs[b.Log] = l
	}
	l.entries = append(l.entries, b.Entries...)
	for _, td := range b.Tiles {
		l.tiles[[2]uint64{td.L, td.N}] = td.Hashes
	}
	l.head = b.Head
	l.checkpoints = append(l.checkpoints, b.Head.Checkpoint)
	l.sizes = append(l.sizes, b.Head.Size)
}

func (s *memStore) log(name string) *memLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs[name]
}

func (s *memStore) Head(ctx context.Context, log string) (ledger.Head, error) {
	if l := s.log(log); l != nil {
		return l.head, nil
	}
	return ledger.Head{}, nil
}

func (s *memStore) ReadEntries(ctx context.Context, log string, start uint64, n int) ([]ledger.StoredEntry, error) {
	l := s.log(log)
	if l == nil || start >= uint64(len(l.entries)) {
		return nil, nil
	}
	return slices.Clone(l.entries[start:min(start+uint64(n), uint64(len(l.entries)))]), nil
}

func (s *memStore) ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error) {
	l := s.log(log)
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		var b []byte
		if l != nil {
			b = l.tiles[[2]uint64{t.L, t.N}]
		}
		if len(b) < t.W*ledger.HashSize {
			return nil, fmt.Errorf("tile %s: %w", t.Path(), ledger.ErrNotFound)
		}
		out[i] = b
	}
	return out, nil
}

func (s *memStore) Checkpoints(ctx context.Context, log string, from, to uint64) ([][]byte, error) {
	l := s.log(log)
	if l == nil {
		return nil, nil
	}
	var out [][]byte
	for i, size := range l.sizes {
		if size >= from && size <= to {
			out = append(out, l.checkpoints[i])
		}
	}
	return out, nil
}

func (s *memStore) Logs(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name := range s.logs {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

func logTo(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

func verifyOpts(a *storetest.Appender) verify.Options {
	return verify.Options{Verifiers: note.VerifierList(a.Verifier()), Origin: a.Origin()}
}

func TestLogExportsWhatVerifyAccepts(t *testing.T) {
	t.Parallel()
	for _, sizes := range [][]int{{1}, {255}, {256}, {100, 157}, {300, 300, 70}, {5000, 1}} {
		t.Run(fmt.Sprint(sizes), func(t *testing.T) {
			t.Parallel()
			s := newMemStore()
			a := storetest.NewAppender(t, "acme")
			for _, n := range sizes {
				s.apply(a.NextN(t, n))
			}
			dir := t.TempDir()
			head, err := export.Log(t.Context(), s, "acme", dir, export.Options{Logger: logTo(t)})
			if err != nil {
				t.Fatalf("export.Log() = %v", err)
			}
			if head.Size != a.Size() {
				t.Errorf("export.Log() head size %d; want %d", head.Size, a.Size())
			}
			res, err := verify.Log(t.Context(), verify.DirSource(dir), "acme", verifyOpts(a))
			if err != nil {
				t.Fatalf("verify.Log(export) = %v", err)
			}
			if res.Size != a.Size() || res.CheckpointsChecked != len(sizes) || !res.ChainChecked {
				t.Errorf("verify.Log(export) = %+v", res)
			}
			checkLayout(t, filepath.Join(dir, "acme"), a)
		})
	}
}

// checkLayout checks the exact set of files an export wrote.
func checkLayout(t *testing.T, root string, a *storetest.Appender) {
	t.Helper()
	want := map[string]bool{"checkpoint": true}
	size := a.Size()
	for _, tl := range ledger.TilesFor(0, size) {
		want[tl.Path()] = true
	}
	for n := uint64(0); n*ledger.TileWidth < size; n++ {
		tl := ledger.Tile{N: n, W: ledger.TileWidthAt(0, n, size), Entries: true}
		want[tl.Path()] = true
		want["chain/"+strings.TrimPrefix(tl.Path(), "tile/entries/")] = true
	}
	for _, s := range a.Sizes() {
		want[fmt.Sprintf("checkpoints/%d", s)] = true
	}
	got := map[string]bool{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			got[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	for p := range want {
		if !got[p] {
			t.Errorf("export lacks %s", p)
		}
	}
	for p := range got {
		if !want[p] {
			t.Errorf("export has unexpected %s", p)
		}
	}
	first := ledger.Tile{N: 0, W: ledger.TileWidthAt(0, 0, size), Entries: true}
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(first.Path())))
	if err != nil {
		t.Fatal(err)
	}
	es, err := ledger.ParseEntryBundle(b)
	if err != nil || len(es) != first.W {
		t.Fatalf("bundle 0 = %d entries, %v; want %d", len(es), err, first.W)
	}
	for i, e := range a.Entries()[:first.W] {
		if !bytes.Equal(es[i], e.Data) {
			t.Errorf("bundle 0 entry %d = %q; want %q", i, es[i], e.Data)
		}
	}
}

func TestLogReexportGrowsTheLog(t *testing.T) {
	t.Parallel()
	s := newMemStore()
	a := storetest.NewAppender(t, "acme")
	s.apply(a.NextN(t, 300))
	dir := t.TempDir()
	if _, err := export.Log(t.Context(), s, "acme", dir, export.Options{Fsync: true}); err != nil {
		t.Fatal(err)
	}
	old := a.Checkpoints()[0]
	// A full bundle damaged in the directory is rewritten by the next export.
	bundle0 := filepath.Join(dir, "acme", "tile", "entries", "000")
	if err := os.WriteFile(bundle0, []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.apply(a.NextN(t, 500))
	if _, err := export.Log(t.Context(), s, "acme", dir, export.Options{}); err != nil {
		t.Fatal(err)
	}
	o := verifyOpts(a)
	o.Old = old
	res, err := verify.Log(t.Context(), verify.DirSource(dir), "acme", o)
	if err != nil {
		t.Fatalf("verify.Log(re-export, Old=300) = %v", err)
	}
	if res.Size != 800 || res.OldSize != 300 || len(res.Consistency) == 0 {
		t.Errorf("verify.Log() = %+v", res)
	}
	// No temporary files are left behind.
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if strings.Contains(p, ".tmp-") {
			t.Errorf("export left %s", p)
		}
		return nil
	})
}

func TestAllExportsEveryLog(t *testing.T) {
	t.Parallel()
	s := newMemStore()
	apps := map[string]*storetest.Appender{}
	for _, log := range []string{"acme", "globex", ledger.SystemLog} {
		apps[log] = storetest.NewAppender(t, log)
		s.apply(apps[log].NextN(t, 10+len(log)))
	}
	dir := t.TempDir()
	heads, err := export.All(t.Context(), s, dir, export.Options{NoHistory: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(heads) != 3 {
		t.Fatalf("All() exported %d logs; want 3", len(heads))
	}
	logs, err := verify.DirSource(dir).Logs(t.Context())
	if err != nil || !slices.Equal(logs, []string{"acme", "globex", "system"}) {
		t.Fatalf("exported logs = %v, %v", logs, err)
	}
	for log, a := range apps {
		res, err := verify.Log(t.Context(), verify.DirSource(dir), log, verifyOpts(a))
		if err != nil || res.Size != a.Size() || res.CheckpointsChecked != 0 {
			t.Errorf("verify.Log(%s) = %+v, %v", log, res, err)
		}
	}
}

// brokenStore drops a tile or an entry, to check that an export fails
// rather than write a log that cannot verify.
type brokenStore struct {
	*memStore
	dropEntry uint64
	dropTile  bool
}

func (b brokenStore) ReadEntries(ctx context.Context, log string, start uint64, n int) ([]ledger.StoredEntry, error) {
	es, err := b.memStore.ReadEntries(ctx, log, start, n)
	for i := range es {
		if es[i].Index == b.dropEntry {
			return es[:i], err // stop early at a missing entry
		}
	}
	return es, err
}

func (b brokenStore) ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error) {
	if b.dropTile {
		return nil, ledger.ErrNotFound
	}
	return b.memStore.ReadTiles(ctx, log, tiles)
}

func TestLogErrors(t *testing.T) {
	t.Parallel()
	s := newMemStore()
	a := storetest.NewAppender(t, "acme")
	s.apply(a.NextN(t, 600))
	ctx := t.Context()
	for name, c := range map[string]struct {
		s   export.Reader
		log string
	}{
		"UnknownLog":   {s, "nobody"},
		"BadLogName":   {s, "../acme"},
		"MissingEntry": {brokenStore{memStore: s, dropEntry: 300, dropTile: false}, "acme"},
		"MissingTile":  {brokenStore{memStore: s, dropEntry: 1 << 62, dropTile: true}, "acme"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := export.Log(ctx, c.s, c.log, dir, export.Options{}); err == nil {
				t.Fatal("export.Log() succeeded")
			} else if name != "BadLogName" && !errors.Is(err, ledger.ErrNotFound) {
				t.Errorf("export.Log() = %v; want ErrNotFound", err)
			}
			if _, err := os.Stat(filepath.Join(dir, c.log, "checkpoint")); err == nil {
				t.Error("a failed export wrote a checkpoint")
			}
		})
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := export.Log(cancelled, s, "acme", t.TempDir(), export.Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("export.Log(cancelled) = %v; want context.Canceled", err)
	}
}

// BenchmarkExport exports a 262,144-entry log of realistic events (about
// 600 bytes each) from memory, reporting entries written per second: into a
// fresh directory (every file created), and again into the same directory
// after the log grew by one batch (unchanged full tiles and bundles kept).
func BenchmarkExport(b *testing.B) {
	const n = 1 << 18
	s := newMemStore()
	a := storetest.NewAppender(b, "acme")
	for range n / 4096 {
		s.apply(a.NextN(b, 4096))
	}
	b.Run("fresh", func(b *testing.B) {
		base := b.TempDir()
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			i++ // a fresh directory each time: creating files is the cost
			if _, err := export.Log(b.Context(), s, "acme", filepath.Join(base, strconv.Itoa(i)), export.Options{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("again", func(b *testing.B) {
		dir := b.TempDir()
		if _, err := export.Log(b.Context(), s, "acme", dir, export.Options{}); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := export.Log(b.Context(), s, "acme", dir, export.Options{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	})
}
