// Package export writes logs from a store to a directory, in the C2SP
// tlog-tiles layout that verify.DirSource and any tlog-tiles client read.
//
// Under <dir>/<log>/ it writes, for the log's latest checkpoint:
//
//	checkpoint                  the signed checkpoint note (written last)
//	tile/<L>/<N>[.p/<W>]        every hash tile: full tiles, and the partial tiles at the checkpoint's size
//	tile/entries/<N>[.p/<W>]    entry bundles
//	chain/<N>[.p/<W>]           aigw extension: the stored chain hashes of the entries of bundle N, 32 bytes each
//	checkpoints/<size>          aigw extension: every signed checkpoint the store holds, up to the exported size
//
// The extensions are not part of C2SP; a standard client ignores them.
// Every file is written to a temporary name and renamed into place, and the
// checkpoint goes last, so a reader never sees a checkpoint whose tiles are
// not all there. A later export into the same directory rewrites the
// checkpoint and the partial tiles, keeps the immutable files (full tiles and
// bundles, historical checkpoints) that already hold the right bytes, and
// leaves the stale partial tiles of earlier sizes, which C2SP allows.
//
// Creating files is what an export costs: a million entries make about
// 12,300 files (4,096 bundles, 4,096 chain files, 4,113 tiles).
//
// SPEC: https://c2sp.org/tlog-tiles, ledger/FORMATS.md §5 and §8
package export

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"aigw/ledger"
)

// Reader is the part of a ledger.Store that an export reads.
type Reader interface {
	Head(ctx context.Context, log string) (ledger.Head, error)
	ReadEntries(ctx context.Context, log string, start uint64, n int) ([]ledger.StoredEntry, error)
	ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error)
	Checkpoints(ctx context.Context, log string, from, to uint64) ([][]byte, error)
}

// Lister is a Reader that lists its logs, for [All].
type Lister interface {
	Reader
	Logs(ctx context.Context) ([]string, error)
}

// Options tune an export. The zero value is ready to use.
type Options struct {
	// Logger receives one line per exported log (nil: discard).
	Logger *slog.Logger
	// Fsync syncs every file before it is renamed into place, and the
	// directories at the end. Off by default: an export can be redone.
	Fsync bool
	// NoHistory skips checkpoints/<size>.
	NoHistory bool
	// Writers is how many files are written at once (default 16: file
	// creation is mostly waiting on the file system, which overlaps well).
	Writers int
}

// Sizes of the reads an export makes, and how many files it writes at once.
const (
	defaultWriters   = 16
	entryChunk       = 16 * ledger.TileWidth // entries per ReadEntries call
	tileChunk        = 64                    // tiles per ReadTiles call
	checkpointWindow = 1 << 16               // tree sizes per Checkpoints call
)

// Log exports one log to dir/<log>/ at its current head, which it returns.
// It fails, writing no checkpoint, if the store lacks an entry or tile of
// that head (an error wrapping ledger.ErrNotFound for a log never written).
func Log(ctx context.Context, s Reader, log, dir string, opts Options) (ledger.Head, error) {
	if !ledger.ValidLogName(log) {
		return ledger.Head{}, fmt.Errorf("export: invalid log name %q", log)
	}
	start := time.Now()
	head, err := s.Head(ctx, log)
	if err != nil {
		return ledger.Head{}, fmt.Errorf("export log %q: read head: %w", log, err)
	}
	if head.Checkpoint == nil {
		return ledger.Head{}, fmt.Errorf("export log %q: %w", log, ledger.ErrNotFound)
	}
	var rnd [6]byte
	if _, err := io.ReadFull(rand.Reader, rnd[:]); err != nil {
		return ledger.Head{}, err
	}
	e := &exporter{s: s, log: log, root: filepath.Join(dir, log), size: head.Size, opts: opts, dirs: map[string]bool{},
		tmpSuffix: ".tmp-" + hex.EncodeToString(rnd[:]) + "-"}
	if err := e.run(ctx); err != nil {
		return ledger.Head{}, fmt.Errorf("export log %q at size %d: %w", log, head.Size, err)
	}
	if err := e.writeFile("checkpoint", head.Checkpoint); err != nil {
		return ledger.Head{}, fmt.Errorf("export log %q: %w", log, err)
	}
	if opts.Fsync {
		if err := e.syncDirs(); err != nil {
			return ledger.Head{}, fmt.Errorf("export log %q: %w", log, err)
		}
	}
	logger(opts).InfoContext(ctx, "exported log", slog.String("log", log), slog.Uint64("size", head.Size),
		slog.Int64("files", e.files), slog.Duration("took", time.Since(start)))
	return head, nil
}

// All exports every log of s to dir, returning the head each was exported at.
func All(ctx context.Context, s Lister, dir string, opts Options) (map[string]ledger.Head, error) {
	logs, err := s.Logs(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: list logs: %w", err)
	}
	heads := make(map[string]ledger.Head, len(logs))
	for _, log := range logs {
		h, err := Log(ctx, s, log, dir, opts)
		if err != nil {
			return heads, err
		}
		heads[log] = h
	}
	return heads, nil
}

func logger(opts Options) *slog.Logger {
	if opts.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return opts.Logger
}

// exporter writes one log.
type exporter struct {
	s    Reader
	log  string
	root string
	size uint64
	opts Options

	mu    sync.Mutex
	dirs  map[string]bool // directories known to exist
	files int64

	tmpSuffix string        // ".tmp-<random>-": temporary names unique to this export
	tmpCount  atomic.Uint64 // numbers the temporary files
}

// file is one file to write, relative to the log's directory. An immutable
// file (a full tile or bundle, a historical checkpoint) already there with
// the same bytes is left alone, which makes re-exporting a grown log cheap.
type file struct {
	rel       string
	data      []byte
	immutable bool
}

// run reads entries, tiles and checkpoints in three goroutines and writes
// the files they produce with a pool of writers; the first error stops all.
func (e *exporter) run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	files := make(chan file, 64)
	fail := func(err error) {
		if err != nil {
			cancel(err)
		}
	}
	var producers, writers sync.WaitGroup
	producers.Go(func() { fail(e.entries(ctx, files)) })
	producers.Go(func() { fail(e.tiles(ctx, files)) })
	if !e.opts.NoHistory {
		producers.Go(func() { fail(e.checkpoints(ctx, files)) })
	}
	n := e.opts.Writers
	if n <= 0 {
		n = defaultWriters
	}
	for range n {
		writers.Go(func() {
			for f := range files {
				if ctx.Err() != nil {
					continue // drain
				}
				if f.immutable && e.unchanged(f.rel, f.data) {
					continue
				}
				fail(e.writeFile(f.rel, f.data))
			}
		})
	}
	producers.Wait()
	close(files)
	writers.Wait()
	return context.Cause(ctx)
}

func send(ctx context.Context, files chan<- file, f file) error {
	select {
	case files <- f:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// entries reads the entries in chunks and sends their bundles and chain files.
func (e *exporter) entries(ctx context.Context, files chan<- file) error {
	for start := uint64(0); start < e.size; start += entryChunk {
		end := min(start+entryChunk, e.size)
		es, err := e.readEntries(ctx, start, end)
		if err != nil {
			return err
		}
		for lo := start; lo < end; lo += ledger.TileWidth {
			hi := min(lo+ledger.TileWidth, end)
			chunk := es[lo-start : hi-start]
			data := make([][]byte, len(chunk))
			chains := make([]byte, 0, len(chunk)*ledger.HashSize)
			for i := range chunk {
				data[i] = chunk[i].Data
				chains = append(chains, chunk[i].Chain[:]...)
			}
			t := ledger.Tile{N: lo / ledger.TileWidth, W: int(hi - lo), Entries: true}
			full := t.W == ledger.TileWidth
			bundle, err := ledger.EntryBundle(data)
			if err != nil {
				return fmt.Errorf("log %q: %w", e.log, err)
			}
			if err := send(ctx, files, file{t.Path(), bundle, full}); err != nil {
				return err
			}
			if err := send(ctx, files, file{chainPath(t), chains, full}); err != nil {
				return err
			}
		}
	}
	return nil
}

// readEntries reads entries [start, end), failing on a missing one.
func (e *exporter) readEntries(ctx context.Context, start, end uint64) ([]ledger.StoredEntry, error) {
	out := make([]ledger.StoredEntry, 0, end-start)
	for next := start; next < end; {
		es, err := e.s.ReadEntries(ctx, e.log, next, int(end-next))
		if err != nil {
			return nil, fmt.Errorf("read entries [%d, %d): %w", next, end, err)
		}
		if len(es) == 0 || es[0].Index != next {
			return nil, fmt.Errorf("entry %d: %w", next, ledger.ErrNotFound)
		}
		for _, se := range es {
			if next == end {
				break
			}
			if se.Index != next {
				return nil, fmt.Errorf("entry %d: %w", next, ledger.ErrNotFound)
			}
			if len(se.Data) > ledger.MaxEntrySize {
				return nil, fmt.Errorf("entry %d is %d bytes, over the bundle limit of %d", next, len(se.Data), ledger.MaxEntrySize)
			}
			out = append(out, se)
			next++
		}
	}
	return out, nil
}

// tiles reads every hash tile of the tree at the head, in batches.
func (e *exporter) tiles(ctx context.Context, files chan<- file) error {
	all := ledger.TilesFor(0, e.size)
	for lo := 0; lo < len(all); lo += tileChunk {
		batch := all[lo:min(lo+tileChunk, len(all))]
		data, err := e.s.ReadTiles(ctx, e.log, batch)
		if err != nil {
			return fmt.Errorf("read tiles: %w", err)
		}
		if len(data) != len(batch) {
			return fmt.Errorf("read %d tiles: got %d", len(batch), len(data))
		}
		for i, t := range batch {
			if len(data[i]) < t.W*ledger.HashSize {
				return fmt.Errorf("tile %s has %d bytes, want %d: %w", t.Path(), len(data[i]), t.W*ledger.HashSize, ledger.ErrNotFound)
			}
			if err := send(ctx, files, file{t.Path(), data[i][:t.W*ledger.HashSize], t.W == ledger.TileWidth}); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkpoints writes every checkpoint of size up to the head, reading them
// a window of sizes at a time.
func (e *exporter) checkpoints(ctx context.Context, files chan<- file) error {
	for from := uint64(0); from <= e.size; from += checkpointWindow {
		to := min(from+checkpointWindow-1, e.size)
		cps, err := e.s.Checkpoints(ctx, e.log, from, to)
		if err != nil {
			return fmt.Errorf("read checkpoints [%d, %d]: %w", from, to, err)
		}
		for _, cp := range cps {
			body, err := ledger.SplitNote(cp)
			if err != nil {
				return fmt.Errorf("stored checkpoint: %w", err)
			}
			c, err := ledger.ParseCheckpointBody(body)
			if err != nil {
				return fmt.Errorf("stored checkpoint: %w", err)
			}
			if c.Size < from || c.Size > to {
				return fmt.Errorf("store returned a checkpoint of size %d for sizes [%d, %d]", c.Size, from, to)
			}
			if err := send(ctx, files, file{"checkpoints/" + strconv.FormatUint(c.Size, 10), cp, true}); err != nil {
				return err
			}
		}
		if to == e.size {
			break
		}
	}
	return nil
}

// chainPath is the path of the chain hashes of bundle t: chain/<N>[.p/<W>].
func chainPath(t ledger.Tile) string {
	return "chain/" + strings.TrimPrefix(t.Path(), "tile/entries/")
}

// unchanged reports whether rel already holds exactly data.
func (e *exporter) unchanged(rel string, data []byte) bool {
	f, err := os.Open(filepath.Join(e.root, filepath.FromSlash(rel)))
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, len(data)+1)
	n, err := io.ReadFull(f, buf)
	return err == io.ErrUnexpectedEOF && n == len(data) && bytes.Equal(buf[:n], data)
}

// writeFile writes data to rel under the log's directory: to a temporary
// file in the same directory, then renamed into place.
func (e *exporter) writeFile(rel string, data []byte) error {
	path := filepath.Join(e.root, filepath.FromSlash(rel))
	dir := filepath.Dir(path)
	e.mu.Lock()
	known := e.dirs[dir]
	e.mu.Unlock()
	if !known {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		e.mu.Lock()
		e.dirs[dir] = true
		e.mu.Unlock()
	}
	tmp := path + e.tmpSuffix + strconv.FormatUint(e.tmpCount.Add(1), 10)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && e.opts.Fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", rel, err)
	}
	e.mu.Lock()
	e.files++
	e.mu.Unlock()
	return nil
}

// syncDirs fsyncs every directory the export wrote into, so the renames are durable.
func (e *exporter) syncDirs() error {
	e.mu.Lock()
	dirs := make([]string, 0, len(e.dirs)+1)
	for d := range e.dirs {
		dirs = append(dirs, d)
	}
	e.mu.Unlock()
	var errs []error
	for _, d := range dirs {
		f, err := os.Open(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, f.Sync(), f.Close())
	}
	return errors.Join(errs...)
}
