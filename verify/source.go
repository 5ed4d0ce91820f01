package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"aigw/ledger"
)

// Source reads a published log, as a tessera fsck Fetcher does. It is the
// only thing [Log] needs; the optional interfaces below ([ChainReader],
// [CheckpointLister], [EntryReader], [PayloadReader], [LogLister] and
// [ledger.TileReader]) are discovered by type assertion and make
// verification more thorough or faster. Implementations must be safe for
// concurrent use.
//
// SPEC: https://c2sp.org/tlog-tiles
type Source interface {
	// ReadCheckpoint returns the latest signed checkpoint note of the log.
	ReadCheckpoint(ctx context.Context, log string) ([]byte, error)

	// ReadTile returns a hash tile (t.Entries false) or an entry bundle
	// (t.Entries true) of the log at width t.W. A wider version of the same
	// tile (a later partial or the full tile) may stand in: verify uses the
	// first t.W hashes or entries of it. It returns an error wrapping
	// [ledger.ErrNotFound] if the tile does not exist at that width.
	ReadTile(ctx context.Context, log string, t ledger.Tile) ([]byte, error)
}

// ChainReader is a [Source] that also holds the chain hashes of the log
// (the aigw chain/<N> extension).
type ChainReader interface {
	// ReadChain returns the stored chain hashes of the entries of bundle
	// t.N (t.Entries true), 32 bytes each, at width t.W or wider, or an error
	// wrapping [ledger.ErrNotFound].
	ReadChain(ctx context.Context, log string, t ledger.Tile) ([]byte, error)
}

// CheckpointLister is a [Source] that keeps the log's historical checkpoints
// (the aigw checkpoints/<size> extension, or a store's checkpoint table).
type CheckpointLister interface {
	// ReadCheckpoints returns the signed checkpoints with a tree size in
	// [from, to], oldest first.
	ReadCheckpoints(ctx context.Context, log string, from, to uint64) ([][]byte, error)
}

// EntryReader is a [Source] that reads entries with their chain hashes in
// bulk, as a database does; [Log] prefers it to entry bundles.
type EntryReader interface {
	// ReadEntries returns up to n entries from start, in index order,
	// stopping early at the end of the log or at a missing entry.
	ReadEntries(ctx context.Context, log string, start uint64, n int) ([]ledger.StoredEntry, error)
}

// PayloadReader is a [Source] that holds payloads, for [Options.Payloads].
type PayloadReader interface {
	// ReadPayload returns the payload of an entry: an error wrapping
	// [ledger.ErrNotFound] if it has none, [ledger.ErrPayloadErased] if it
	// was erased.
	ReadPayload(ctx context.Context, log string, index uint64) (ledger.Payload, error)
}

// LogLister is a [Source] that can list its logs.
type LogLister interface {
	Logs(ctx context.Context) ([]string, error)
}

// Largest objects a source reads: a full hash tile and a full entry bundle.
const (
	maxTileBytes       = ledger.TileWidth * ledger.HashSize
	maxBundleBytes     = ledger.TileWidth * (2 + ledger.MaxEntrySize)
	maxCheckpointBytes = 1 << 16
)

// chainPath is the path of the chain hashes of bundle t: chain/<N>[.p/<W>].
func chainPath(t ledger.Tile) string {
	t.Entries = true
	return "chain/" + strings.TrimPrefix(t.Path(), "tile/entries/")
}

func objectLimit(t ledger.Tile) int64 {
	if t.Entries {
		return maxBundleBytes
	}
	return maxTileBytes
}

// Dir reads logs exported by ledger/export: <root>/<log>/checkpoint,
// tile/..., chain/... and checkpoints/<size>.
type Dir struct {
	root string

	mu    sync.Mutex
	sizes map[string][]uint64 // log → sorted sizes under checkpoints/
}

var (
	_ Source           = (*Dir)(nil)
	_ ChainReader      = (*Dir)(nil)
	_ CheckpointLister = (*Dir)(nil)
	_ LogLister        = (*Dir)(nil)
)

// DirSource returns a [Source] over an export directory.
func DirSource(root string) *Dir {
	return &Dir{root: root, sizes: map[string][]uint64{}}
}

func (d *Dir) logDir(log string) (string, error) {
	if !ledger.ValidLogName(log) {
		return "", fmt.Errorf("invalid log name %q", log)
	}
	return filepath.Join(d.root, log), nil
}

// readFile reads at most limit+1 bytes of a file (more than limit makes a
// malformed object, which verify reports) into buf, growing it as needed,
// mapping a missing file to ErrNotFound.
func readFile(path string, limit int64, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ledger.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if cap(buf) == 0 { // no buffer to reuse: size one to the file
		size := int64(512)
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
		buf = make([]byte, min(size, limit)+1)
	}
	buf = buf[:cap(buf)]
	n := 0
	for {
		m, err := f.Read(buf[n:])
		n += m
		switch {
		case err == io.EOF:
			return buf[:n], nil
		case err != nil:
			return nil, err
		case int64(n) > limit:
			return buf[:limit+1], nil
		case n == len(buf):
			buf = append(buf, make([]byte, min(int64(len(buf)), limit+1-int64(len(buf))))...)
			buf = buf[:cap(buf)]
		}
	}
}

// ReadCheckpoint implements [Source].
func (d *Dir) ReadCheckpoint(ctx context.Context, log string) ([]byte, error) {
	dir, err := d.logDir(log)
	if err != nil {
		return nil, err
	}
	return readFile(filepath.Join(dir, "checkpoint"), maxCheckpointBytes, nil)
}

// readTileFile reads the object at path(t) into buf, falling back, for a
// partial tile, to the full tile (C2SP clients do the same: a partial tile
// may be gone once full).
func (d *Dir) readTileFile(log string, t ledger.Tile, path func(ledger.Tile) string, buf []byte) ([]byte, error) {
	dir, err := d.logDir(log)
	if err != nil {
		return nil, err
	}
	b, err := readFile(filepath.Join(dir, filepath.FromSlash(path(t))), objectLimit(t), buf)
	if errors.Is(err, ledger.ErrNotFound) && t.W < ledger.TileWidth {
		full := t
		full.W = ledger.TileWidth
		if fb, ferr := readFile(filepath.Join(dir, filepath.FromSlash(path(full))), objectLimit(t), buf); ferr == nil {
			return fb, nil
		}
	}
	return b, err
}

// ReadTile implements [Source].
func (d *Dir) ReadTile(ctx context.Context, log string, t ledger.Tile) ([]byte, error) {
	return d.readTileFile(log, t, ledger.Tile.Path, nil)
}

// ReadChain implements [ChainReader].
func (d *Dir) ReadChain(ctx context.Context, log string, t ledger.Tile) ([]byte, error) {
	return d.readTileFile(log, t, chainPath, nil)
}

// readInto implements bufferedSource: ReadTile or ReadChain into a reused buffer.
func (d *Dir) readInto(ctx context.Context, log string, t ledger.Tile, chain bool, buf []byte) ([]byte, error) {
	if chain {
		return d.readTileFile(log, t, chainPath, buf)
	}
	return d.readTileFile(log, t, ledger.Tile.Path, buf)
}

// ReadCheckpoints implements [CheckpointLister]. It lists the checkpoints
// directory once per log and Dir.
func (d *Dir) ReadCheckpoints(ctx context.Context, log string, from, to uint64) ([][]byte, error) {
	dir, err := d.logDir(log)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	sizes, ok := d.sizes[log]
	d.mu.Unlock()
	if !ok {
		des, err := os.ReadDir(filepath.Join(dir, "checkpoints"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, de := range des {
			name := de.Name()
			if name == "" || len(name) > 1 && name[0] == '0' || strings.Trim(name, "0123456789") != "" {
				continue // temp files and anything else
			}
			if n, err := strconv.ParseUint(name, 10, 64); err == nil {
				sizes = append(sizes, n)
			}
		}
		slices.Sort(sizes)
		d.mu.Lock()
		d.sizes[log] = sizes
		d.mu.Unlock()
	}
	lo, _ := slices.BinarySearch(sizes, from)
	var out [][]byte
	for _, n := range sizes[lo:] {
		if n > to {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b, err := readFile(filepath.Join(dir, "checkpoints", strconv.FormatUint(n, 10)), maxCheckpointBytes, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Logs implements [LogLister]: the subdirectories of root that hold a checkpoint.
func (d *Dir) Logs(ctx context.Context) ([]string, error) {
	des, err := os.ReadDir(d.root)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range des {
		if !de.IsDir() || !ledger.ValidLogName(de.Name()) {
			continue
		}
		if _, err := os.Stat(filepath.Join(d.root, de.Name(), "checkpoint")); err == nil {
			out = append(out, de.Name())
		}
	}
	return out, nil
}

// HTTP reads logs from an aigw read API (ledger/readapi) or any C2SP
// tlog-tiles server: <base>/<log>/checkpoint, <base>/<log>/tile/...,
// <base>/<log>/chain/... and <base>/logs.
type HTTP struct {
	base   string
	client *http.Client
}

var (
	_ Source           = (*HTTP)(nil)
	_ ChainReader      = (*HTTP)(nil)
	_ LogLister        = (*HTTP)(nil)
	_ CheckpointLister = (*HTTP)(nil)
)

// HTTPSource returns a [Source] reading from baseURL (for aigw,
// http://host:port/ledger) with client (nil means http.DefaultClient).
func HTTPSource(baseURL string, client *http.Client) *HTTP {
	if client == nil {
		client = http.DefaultClient
	}
	return &HTTP{base: strings.TrimRight(baseURL, "/"), client: client}
}

func (h *HTTP) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<12))
		return nil, fmt.Errorf("GET %s: %w", path, ledger.ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<12))
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return b, nil
}

func (h *HTTP) logPath(log string) (string, error) {
	if !ledger.ValidLogName(log) {
		return "", fmt.Errorf("invalid log name %q", log)
	}
	return log + "/", nil
}

// ReadCheckpoint implements [Source].
func (h *HTTP) ReadCheckpoint(ctx context.Context, log string) ([]byte, error) {
	p, err := h.logPath(log)
	if err != nil {
		return nil, err
	}
	return h.get(ctx, p+"checkpoint", maxCheckpointBytes)
}

func (h *HTTP) readTile(ctx context.Context, log string, t ledger.Tile, path func(ledger.Tile) string) ([]byte, error) {
	p, err := h.logPath(log)
	if err != nil {
		return nil, err
	}
	b, err := h.get(ctx, p+path(t), objectLimit(t))
	if errors.Is(err, ledger.ErrNotFound) && t.W < ledger.TileWidth {
		full := t
		full.W = ledger.TileWidth
		if fb, ferr := h.get(ctx, p+path(full), objectLimit(t)); ferr == nil {
			return fb, nil
		}
	}
	return b, err
}

// ReadTile implements [Source].
func (h *HTTP) ReadTile(ctx context.Context, log string, t ledger.Tile) ([]byte, error) {
	return h.readTile(ctx, log, t, ledger.Tile.Path)
}

// ReadChain implements [ChainReader].
func (h *HTTP) ReadChain(ctx context.Context, log string, t ledger.Tile) ([]byte, error) {
	return h.readTile(ctx, log, t, chainPath)
}

// Logs implements [LogLister] with GET <base>/logs.
func (h *HTTP) Logs(ctx context.Context) ([]string, error) {
	b, err := h.get(ctx, "logs", 1<<24)
	if err != nil {
		return nil, err
	}
	var body struct {
		Logs []string `json:"logs"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, fmt.Errorf("GET logs: %w", err)
	}
	return body.Logs, nil
}

// ReadCheckpoints implements [CheckpointLister] with the read API's
// <log>/checkpoints?from=&to= pages (a server without it lists none).
func (h *HTTP) ReadCheckpoints(ctx context.Context, log string, from, to uint64) ([][]byte, error) {
	lp, err := h.logPath(log)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for from <= to {
		b, err := h.get(ctx, fmt.Sprintf("%scheckpoints?from=%d&to=%d", lp, from, to), 1<<26)
		if errors.Is(err, ledger.ErrNotFound) && len(out) == 0 {
			return nil, nil // not an aigw read API, or an older one
		}
		if err != nil {
			return nil, err
		}
		var body struct {
			Checkpoints []string `json:"checkpoints"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			if len(out) == 0 {
				return nil, nil // a plain tlog-tiles server (static files): no history
			}
			return nil, fmt.Errorf("GET %scheckpoints: %w", lp, err)
		}
		if len(body.Checkpoints) == 0 {
			break
		}
		last := uint64(0)
		for _, c := range body.Checkpoints {
			text, err := ledger.SplitNote([]byte(c))
			if err != nil {
				return nil, err
			}
			cp, err := ledger.ParseCheckpointBody(text)
			if err != nil {
				return nil, err
			}
			if cp.Size < from || cp.Size > to || len(out) > 0 && cp.Size <= last {
				return nil, fmt.Errorf("GET %scheckpoints: size %d out of order or range [%d, %d]", lp, cp.Size, from, to)
			}
			last = cp.Size
			out = append(out, []byte(c))
		}
		if last == math.MaxUint64 {
			break
		}
		from = last + 1
	}
	return out, nil
}

// StoreReader is the part of a ledger.Store that [StoreSource] reads.
// ledger.Store satisfies it, so verify never imports a database driver.
type StoreReader interface {
	Head(ctx context.Context, log string) (ledger.Head, error)
	ReadEntries(ctx context.Context, log string, start uint64, n int) ([]ledger.StoredEntry, error)
	ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error)
	Checkpoints(ctx context.Context, log string, from, to uint64) ([][]byte, error)
}

// DB reads logs straight from a store. It is fast (entries come in bulk
// with their chain hashes) but trusts the store's driver to return what the
// database holds; an auditor who trusts no aigw code verifies an export.
type DB struct {
	s StoreReader
}

var (
	_ Source            = (*DB)(nil)
	_ ChainReader       = (*DB)(nil)
	_ CheckpointLister  = (*DB)(nil)
	_ EntryReader       = (*DB)(nil)
	_ PayloadReader     = (*DB)(nil)
	_ LogLister         = (*DB)(nil)
	_ ledger.TileReader = (*DB)(nil)
)

// StoreSource returns a [Source] over a store. If s also has ReadPayload or
// Logs (as a ledger.Store does), the source offers them.
func StoreSource(s StoreReader) *DB { return &DB{s: s} }

// ReadCheckpoint implements [Source] with the head's checkpoint.
func (d *DB) ReadCheckpoint(ctx context.Context, log string) ([]byte, error) {
	h, err := d.s.Head(ctx, log)
	if err != nil {
		return nil, err
	}
	if h.Checkpoint == nil {
		return nil, fmt.Errorf("checkpoint of log %q: %w", log, ledger.ErrNotFound)
	}
	return h.Checkpoint, nil
}

// entries reads the entries of bundle t, stopping at the first gap.
func (d *DB) entries(ctx context.Context, log string, t ledger.Tile) ([]ledger.StoredEntry, error) {
	start := t.N * ledger.TileWidth
	es, err := d.s.ReadEntries(ctx, log, start, t.W)
	if err != nil {
		return nil, err
	}
	for i := range es {
		if es[i].Index != start+uint64(i) {
			es = es[:i]
			break
		}
	}
	if len(es) == 0 {
		return nil, fmt.Errorf("entries of %s: %w", t.Path(), ledger.ErrNotFound)
	}
	return es, nil
}

// ReadTile implements [Source]. An entry bundle is built from the entries
// the store returns, up to the first missing one.
func (d *DB) ReadTile(ctx context.Context, log string, t ledger.Tile) ([]byte, error) {
	if t.Entries {
		es, err := d.entries(ctx, log, t)
		if err != nil {
			return nil, err
		}
		data := make([][]byte, len(es))
		for i := range es {
			data[i] = es[i].Data
		}
		return ledger.EntryBundle(data)
	}
	ts, err := d.s.ReadTiles(ctx, log, []ledger.Tile{t})
	if err != nil {
		return nil, err
	}
	if len(ts) != 1 {
		return nil, fmt.Errorf("store returned %d tiles for 1", len(ts))
	}
	return ts[0], nil
}

// ReadTiles implements [ledger.TileReader], reading tiles in one query.
func (d *DB) ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error) {
	return d.s.ReadTiles(ctx, log, tiles)
}

// ReadChain implements [ChainReader].
func (d *DB) ReadChain(ctx context.Context, log string, t ledger.Tile) ([]byte, error) {
	es, err := d.entries(ctx, log, t)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(es)*ledger.HashSize)
	for i := range es {
		out = append(out, es[i].Chain[:]...)
	}
	return out, nil
}

// ReadEntries implements [EntryReader].
func (d *DB) ReadEntries(ctx context.Context, log string, start uint64, n int) ([]ledger.StoredEntry, error) {
	return d.s.ReadEntries(ctx, log, start, n)
}

// ReadCheckpoints implements [CheckpointLister].
func (d *DB) ReadCheckpoints(ctx context.Context, log string, from, to uint64) ([][]byte, error) {
	return d.s.Checkpoints(ctx, log, from, to)
}

// ReadPayload implements [PayloadReader] if the store has ReadPayload.
func (d *DB) ReadPayload(ctx context.Context, log string, index uint64) (ledger.Payload, error) {
	pr, ok := d.s.(interface {
		ReadPayload(ctx context.Context, log string, index uint64) (ledger.Payload, error)
	})
	if !ok {
		return ledger.Payload{}, fmt.Errorf("store %T cannot read payloads", d.s)
	}
	return pr.ReadPayload(ctx, log, index)
}

// Logs implements [LogLister] if the store has Logs.
func (d *DB) Logs(ctx context.Context) ([]string, error) {
	l, ok := d.s.(LogLister)
	if !ok {
		return nil, fmt.Errorf("store %T cannot list logs", d.s)
	}
	return l.Logs(ctx)
}
