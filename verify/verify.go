// Package verify checks aigw ledgers without trusting aigw's database code:
// a log read through a [Source] (an export directory, the HTTP read API, or a
// store's read methods), its signed checkpoints, and inclusion and
// consistency proofs. It depends only on the published formats (package
// ledger, golang.org/x/mod/sumdb/note, transparency-dev/merkle), never on a
// database driver or on NATS.
//
// [Log] re-derives every leaf hash from the entry bytes, checks every entry
// is canonical, recomputes the hash chain, rebuilds every tile of the tree
// and its root from those same leaf hashes, and compares all of it with what
// is stored and signed: the first thing that differs is returned as a
// [*MismatchError] naming its kind and index.
//
// SPEC: ledger/FORMATS.md §9, https://c2sp.org/tlog-tiles, https://c2sp.org/tlog-checkpoint
package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"aigw/ledger"

	"golang.org/x/mod/sumdb/note"
)

// Options says what to trust and what else to check.
type Options struct {
	// Verifiers are the trusted checkpoint keys. Required.
	Verifiers note.Verifiers
	// Origin is the expected origin line of the log's checkpoints. Empty
	// means any origin ending in "/<log>" (as ledger.Origin makes them), so
	// a checkpoint of one log never passes as another's.
	Origin string
	// Old is an older signed checkpoint of the log the auditor kept. Log
	// then checks that today's tree extends it: the rebuilt root at Old's
	// size must equal Old's root, and a consistency proof from Old to today
	// must verify.
	Old []byte
	// Workers is how many blocks of entries are read and hashed at once
	// (default GOMAXPROCS, at least 4).
	Workers int
	// Payloads checks each stored payload against its entry's commitment,
	// if the source is a PayloadReader. It costs one read per payload.
	Payloads bool
	// Checkpoint, when set, is the signed checkpoint to verify the log
	// against instead of the source's latest: the log is verified up to its
	// size, with the historical checkpoints up to that size.
	Checkpoint []byte
	// Scan, when set, is called with every block of entries that checked
	// out (entries[i] is the entry at index start+i), by the workers: at the
	// same time for different blocks, in no particular order. It must not
	// keep entries (their buffers are reused) and returns what Fold needs.
	Scan func(start uint64, entries [][]byte) any
	// Fold, when set, receives each Scan result in index order, once the
	// block has been folded into the tree; an error stops the verification
	// and is returned.
	Fold func(v any) error
}

// Result describes a log that verified.
type Result struct {
	Log  string
	Size uint64
	Root ledger.Hash
	// Checkpoint is the signed checkpoint that was verified, and Signers the
	// trusted keys (name+hash) that signed it.
	Checkpoint []byte
	Signers    []string
	// ChainChecked says whether the source held chain hashes (every one was checked).
	ChainChecked bool
	// TilesChecked counts the stored hash tiles compared with rebuilt ones.
	TilesChecked int
	// CheckpointsChecked counts the historical checkpoints checked against
	// the rebuilt tree (besides the latest and Old).
	CheckpointsChecked int
	// OldSize is the size of Options.Old, and Consistency the verified
	// consistency proof from it to Size.
	OldSize     uint64
	Consistency []ledger.Hash
	// PayloadsChecked counts payloads that matched their commitment;
	// ErasedPayloads lists the entries whose payload was erased (not a
	// tamper: the entry and every proof are intact).
	PayloadsChecked int
	ErasedPayloads  []uint64
}

// target is a root the rebuilt tree must have at a size.
type target struct {
	size uint64
	root ledger.Hash
	kind string         // KindFork (Old) or KindCheckpoint (historical)
	mis  *MismatchError // a bad historical checkpoint, reported when the tree reaches its size
}

// Log verifies the log named log in src against opts. It returns a
// *MismatchError for the first thing found wrong, another error if src
// could not be read, or the Result.
func Log(ctx context.Context, src Source, log string, opts Options) (*Result, error) {
	if opts.Verifiers == nil {
		return nil, errNoVerifiers
	}
	signed := opts.Checkpoint
	if signed == nil {
		var err error
		if signed, err = src.ReadCheckpoint(ctx, log); err != nil {
			return nil, fmt.Errorf("read checkpoint of log %q: %w", log, err)
		}
	}
	cp, signers, mis := openCheckpoint(log, signed, opts.Origin, opts.Verifiers)
	if mis != nil {
		return nil, mis
	}
	res := &Result{Log: log, Size: cp.Size, Root: cp.Root, Checkpoint: signed, Signers: signers}

	var targets []target
	var old ledger.Checkpoint
	if opts.Old != nil {
		var mis *MismatchError
		old, _, mis = openCheckpoint(log, opts.Old, opts.Origin, opts.Verifiers)
		if mis != nil {
			mis.Want = "old checkpoint: " + mis.Want
			return nil, mis
		}
		switch {
		case old.Size > cp.Size:
			return nil, mismatch(log, KindSize, old.Size, fmt.Sprintf("a tree of at least %d entries (the old checkpoint)", old.Size), fmt.Sprintf("%d entries", cp.Size))
		case old.Size == cp.Size && old.Root != cp.Root:
			// Two signed checkpoints of one size with different roots: a split view.
			return nil, mismatch(log, KindFork, old.Size, "root "+old.Root.String()+" (old checkpoint)", "root "+cp.Root.String()+" (latest checkpoint, same size)")
		case old.Size < cp.Size:
			targets = append(targets, target{size: old.Size, root: old.Root, kind: KindFork})
		}
		res.OldSize = old.Size
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = max(runtime.GOMAXPROCS(0), 4)
	}
	var sameSize []target // historical checkpoints of today's size
	if lister, ok := src.(CheckpointLister); ok {
		hist, err := lister.ReadCheckpoints(ctx, log, 0, cp.Size)
		if err != nil {
			return nil, fmt.Errorf("read checkpoints of log %q: %w", log, err)
		}
		for _, t := range openHistory(log, hist, opts, workers) {
			if t.size > cp.Size && t.mis == nil {
				// A validly signed checkpoint newer than the one served as latest: a rollback.
				return nil, mismatch(log, KindSize, t.size, fmt.Sprintf("a latest checkpoint of at least %d entries (a historical checkpoint has them)", t.size), fmt.Sprintf("%d entries", cp.Size))
			}
			if t.size > cp.Size {
				t.size = cp.Size // a bad checkpoint that claims a later size: report it at the end
			}
			if t.size == cp.Size && t.mis == nil {
				sameSize = append(sameSize, t)
			} else {
				targets = append(targets, t)
			}
		}
		res.CheckpointsChecked = len(hist)
	}
	slices.SortStableFunc(targets, func(a, b target) int {
		switch {
		case a.size < b.size:
			return -1
		case a.size > b.size:
			return 1
		}
		return 0
	})

	r := &run{log: log, src: src, size: cp.Size, workers: workers, scan: opts.Scan, fold: opts.Fold}
	r.chains, _ = src.(ChainReader)
	r.entryReader, _ = src.(EntryReader)
	r.tileReader, _ = src.(ledger.TileReader)
	r.buffered, _ = src.(bufferedSource)
	if opts.Payloads {
		pr, ok := src.(PayloadReader)
		if !ok {
			return nil, fmt.Errorf("verify payloads: source %T does not read payloads", src)
		}
		r.payloads = pr
	}
	res.ChainChecked = r.chains != nil || r.entryReader != nil

	root, err := r.foldAll(ctx, targets, res)
	if err != nil {
		return nil, err
	}
	if root != cp.Root {
		return nil, mismatch(log, KindRoot, cp.Size, "root "+cp.Root.String()+" (signed)", "root "+root.String()+" (rebuilt)")
	}
	for _, t := range sameSize {
		if t.root != cp.Root {
			return nil, mismatch(log, KindCheckpoint, t.size, "root "+cp.Root.String()+" (the latest checkpoint, same size)", "root "+t.root.String())
		}
	}
	if opts.Old != nil && old.Size > 0 && old.Size < cp.Size {
		proof, err := ledger.ConsistencyProof(ctx, r.tileReaderOrAdapter(), log, old.Size, cp.Size)
		if err != nil {
			return nil, fmt.Errorf("consistency proof from %d to %d: %w", old.Size, cp.Size, err)
		}
		if err := ledger.VerifyConsistency(old.Size, cp.Size, proof, old.Root, cp.Root); err != nil {
			return nil, mismatch(log, KindFork, old.Size, "a consistency proof to the latest checkpoint", err.Error())
		}
		res.Consistency = proof
	}
	return res, nil
}

// openHistory checks the signatures and origins of historical checkpoints in
// parallel and returns them as targets.
func openHistory(log string, hist [][]byte, opts Options, workers int) []target {
	out := make([]target, len(hist))
	var wg sync.WaitGroup
	chunk := (len(hist) + workers - 1) / max(workers, 1)
	for lo := 0; lo < len(hist); lo += chunk {
		hi := min(lo+chunk, len(hist))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				c, _, mis := openCheckpoint(log, hist[i], opts.Origin, opts.Verifiers)
				if mis != nil {
					mis.Want = "historical checkpoint: " + mis.Want
					out[i] = target{size: mis.Index, mis: mis, kind: KindCheckpoint}
					continue
				}
				out[i] = target{size: c.Size, root: c.Root, kind: KindCheckpoint}
			}
		})
	}
	wg.Wait()
	return out
}

// run is one verification of one log.
type run struct {
	log         string
	src         Source
	size        uint64
	workers     int
	chains      ChainReader       // nil if the source has none
	entryReader EntryReader       // nil if the source has none
	tileReader  ledger.TileReader // nil if the source reads one tile at a time
	payloads    PayloadReader     // nil unless Options.Payloads
	buffered    bufferedSource    // set if the source reads into reused buffers
	scan        func(start uint64, entries [][]byte) any
	fold        func(any) error

	bufs    sync.Pool // []byte read buffers, for a bufferedSource
	leaves  sync.Pool // []ledger.Hash, returned by fold
	entries sync.Pool // [][]byte, returned after check
}

// bufferedSource is a Source that reads into a caller's buffer (Dir does),
// so that reading a million entries does not allocate a bundle each time.
type bufferedSource interface {
	readInto(ctx context.Context, log string, t ledger.Tile, chain bool, buf []byte) ([]byte, error)
}

// read reads a hash tile or bundle (chain false) or chain hashes (chain
// true), into a pooled buffer when it can; the block releases it after check.
func (r *run) read(ctx context.Context, b *block, t ledger.Tile, chain bool) ([]byte, error) {
	if r.buffered == nil {
		if chain {
			return r.chains.ReadChain(ctx, r.log, t)
		}
		return r.src.ReadTile(ctx, r.log, t)
	}
	buf, _ := r.bufs.Get().([]byte)
	data, err := r.buffered.readInto(ctx, r.log, t, chain, buf)
	if err != nil {
		if buf != nil {
			r.bufs.Put(buf[:0])
		}
		return nil, err
	}
	b.bufs = append(b.bufs, data)
	return data, nil
}

// release returns a checked block's buffers to the pools.
func (r *run) release(b *block) {
	for _, buf := range b.bufs {
		r.bufs.Put(buf[:0])
	}
	if b.entries != nil {
		clear(b.entries)
		r.entries.Put(b.entries[:0])
	}
	b.bufs, b.entries, b.tile0, b.chains = nil, nil, nil, nil
}

// entryBlock is how many entries one EntryReader block holds (16 tiles).
const entryBlock = 16 * ledger.TileWidth

// block is a run of entries [start, start+n), start a multiple of
// TileWidth, read and checked by one worker and then folded in order.
type block struct {
	start uint64
	n     int
	prev  *block // the block before, for its last chain hash

	fetched chan struct{} // closed once the fields below up to leaves are set
	done    chan struct{} // closed once leaves or mis is set

	err error // reading failed (not a mismatch)
	// What was read, each possibly short; the *End mismatch says why, and
	// is reported when the check reaches the end of the short slice.
	entries    [][]byte
	entriesEnd *MismatchError
	tail       *MismatchError // a malformed end of bundle, reported after the last entry
	tile0      []byte         // stored level-0 hashes of the block's entries
	tile0End   *MismatchError
	chains     []byte // stored chain hashes; nil if the source has none
	chainsEnd  *MismatchError
	last       ledger.Hash // the last stored chain hash of the block (zero if short or none)
	bufs       [][]byte    // pooled buffers the fields above point into

	leaves  []ledger.Hash
	scanned any // what Options.Scan returned
	mis     *MismatchError
	erased  []uint64
	paid    int
}

func (b *block) lastChain() ledger.Hash {
	if len(b.chains) < b.n*ledger.HashSize || b.n == 0 {
		return ledger.Hash{}
	}
	return ledger.Hash(b.chains[(b.n-1)*ledger.HashSize : b.n*ledger.HashSize])
}

// fold runs the pipeline: a dispatcher hands out blocks in order, workers
// read and check them in parallel, and fold appends their leaf hashes to a
// TreeBuilder in order, comparing every completed tile and target root.
// It returns the rebuilt root.
func (r *run) foldAll(ctx context.Context, targets []target, res *Result) (ledger.Hash, error) {
	tb, err := ledger.NewTreeBuilder(0, nil, nil)
	if err != nil {
		return ledger.Hash{}, err
	}
	lastGood := uint64(0)
	checkTargets := func() *MismatchError {
		for len(targets) > 0 && targets[0].size == tb.Size() {
			t := targets[0]
			targets = targets[1:]
			if t.mis != nil {
				return t.mis
			}
			if root := tb.Root(); root != t.root {
				if t.kind == KindFork {
					return mismatch(r.log, KindFork, t.size, "root "+t.root.String()+" (old checkpoint)", "root "+root.String()+" (rebuilt at its size)")
				}
				return mismatch(r.log, KindCheckpoint, t.size, "root "+t.root.String()+" (signed)",
					fmt.Sprintf("root %s (rebuilt; the tree matches the checkpoint at size %d, so the change lies in entries [%d, %d))", root, lastGood, lastGood, t.size))
			}
			if t.kind == KindCheckpoint {
				lastGood = t.size
			}
		}
		return nil
	}
	if mis := checkTargets(); mis != nil {
		return ledger.Hash{}, mis
	}
	if r.size == 0 {
		return tb.Root(), nil
	}

	ctx, cancel := context.WithCancel(ctx)
	order := make(chan *block, 2*r.workers)
	jobs := make(chan *block)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Go(func() { r.dispatch(ctx, order, jobs) })
	for range r.workers {
		wg.Go(func() {
			for b := range jobs {
				r.work(ctx, b)
			}
		})
	}

	edge := map[uint64]ledger.TileData{} // level ≥ 1 → latest partial tile
	for b := range order {
		select {
		case <-b.done:
		case <-ctx.Done():
			return ledger.Hash{}, ctx.Err()
		}
		if b.err != nil {
			return ledger.Hash{}, b.err
		}
		if b.mis != nil {
			return ledger.Hash{}, b.mis
		}
		res.PayloadsChecked += b.paid
		res.ErasedPayloads = append(res.ErasedPayloads, b.erased...)
		res.TilesChecked += (b.n + ledger.TileWidth - 1) / ledger.TileWidth
		for _, leaf := range b.leaves {
			tb.Append(leaf)
			if len(targets) > 0 && targets[0].size == tb.Size() {
				if mis := checkTargets(); mis != nil {
					return ledger.Hash{}, mis
				}
			}
		}
		r.leaves.Put(b.leaves[:0])
		b.leaves = nil
		if r.fold != nil {
			if err := r.fold(b.scanned); err != nil {
				return ledger.Hash{}, err
			}
			b.scanned = nil
		}
		for _, t := range tb.Flush() {
			if t.L == 0 {
				continue // the workers compared the leaf hashes with the level-0 tiles
			}
			if t.W < ledger.TileWidth {
				edge[t.L] = t
				continue
			}
			delete(edge, t.L)
			if mis, err := r.compareTile(ctx, t); err != nil || mis != nil {
				return ledger.Hash{}, errOrMismatch(err, mis)
			}
			res.TilesChecked++
		}
	}
	if err := ctx.Err(); err != nil {
		return ledger.Hash{}, err
	}
	if tb.Size() != r.size {
		return ledger.Hash{}, fmt.Errorf("verify: rebuilt %d entries, want %d", tb.Size(), r.size)
	}
	levels := make([]uint64, 0, len(edge))
	for l := range edge {
		levels = append(levels, l)
	}
	slices.Sort(levels)
	for _, l := range levels {
		if mis, err := r.compareTile(ctx, edge[l]); err != nil || mis != nil {
			return ledger.Hash{}, errOrMismatch(err, mis)
		}
		res.TilesChecked++
	}
	return tb.Root(), nil
}

func errOrMismatch(err error, mis *MismatchError) error {
	if err != nil {
		return err
	}
	return mis
}

// dispatch sends every block of the log, in order, to order (read by fold)
// and to jobs (read by the workers).
func (r *run) dispatch(ctx context.Context, order, jobs chan<- *block) {
	defer close(jobs)
	defer close(order)
	step := uint64(ledger.TileWidth)
	if r.entryReader != nil {
		step = entryBlock
	}
	var prev *block
	for start := uint64(0); start < r.size; start += step {
		b := &block{start: start, n: int(min(step, r.size-start)), prev: prev, fetched: make(chan struct{}), done: make(chan struct{})}
		select {
		case order <- b:
		case <-ctx.Done():
			return
		}
		select {
		case jobs <- b:
		case <-ctx.Done():
			return
		}
		prev = b
	}
}

// work reads and checks one block.
func (r *run) work(ctx context.Context, b *block) {
	defer close(b.done)
	if r.entryReader != nil {
		r.fetchEntries(ctx, b)
	} else {
		r.fetchBundle(ctx, b)
	}
	b.last = b.lastChain()
	close(b.fetched)
	defer r.release(b)
	prev := b.prev
	b.prev = nil
	var prevChain ledger.Hash
	if prev != nil {
		select {
		case <-prev.fetched:
			prevChain = prev.last
		case <-ctx.Done():
			b.err = ctx.Err()
			return
		}
	}
	if b.err == nil {
		r.check(ctx, b, prevChain)
	}
}

// fetchBundle reads the entry bundle, level-0 tile and chain hashes of one bundle.
func (r *run) fetchBundle(ctx context.Context, b *block) {
	n := b.start / ledger.TileWidth
	bt := ledger.Tile{N: n, W: b.n, Entries: true}
	data, err := r.read(ctx, b, bt, false)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		b.entriesEnd = mismatch(r.log, KindMissing, b.start, fmt.Sprintf("entry bundle %s", bt.Path()), "not found")
	case err != nil:
		b.err = fmt.Errorf("read %s of log %q: %w", bt.Path(), r.log, err)
		return
	default:
		r.splitBundle(b, data)
	}
	b.tile0, b.tile0End, b.err = r.readHashTile(ctx, b, ledger.Tile{L: 0, N: n, W: b.n})
	if b.err != nil || r.chains == nil {
		return
	}
	b.chains = []byte{}
	c, err := r.read(ctx, b, bt, true)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		b.chainsEnd = mismatch(r.log, KindMissing, b.start, fmt.Sprintf("chain hashes %s", chainPath(bt)), "not found")
	case err != nil:
		b.err = fmt.Errorf("read %s of log %q: %w", chainPath(bt), r.log, err)
	case len(c)%ledger.HashSize != 0 || len(c) > maxTileBytes:
		b.chainsEnd = mismatch(r.log, KindParse, b.start, fmt.Sprintf("chain hashes %s: whole hashes, at most %d bytes", chainPath(bt), maxTileBytes), fmt.Sprintf("%d bytes", len(c)))
	case len(c) < b.n*ledger.HashSize:
		b.chains = c
		at := b.start + uint64(len(c)/ledger.HashSize)
		b.chainsEnd = mismatch(r.log, KindMissing, at, fmt.Sprintf("chain hashes of %d entries in %s", b.n, chainPath(bt)), fmt.Sprintf("%d", len(c)/ledger.HashSize))
	default:
		b.chains = c[:b.n*ledger.HashSize]
	}
}

// splitBundle parses the first b.n entries of a C2SP entry bundle, noting
// where it is short or malformed.
func (r *run) splitBundle(b *block, data []byte) {
	b.entries = r.entrySlice(b.n)
	for len(b.entries) < b.n {
		at := b.start + uint64(len(b.entries))
		if len(data) == 0 {
			b.entriesEnd = mismatch(r.log, KindMissing, at, fmt.Sprintf("%d entries in bundle %d", b.n, b.start/ledger.TileWidth), fmt.Sprintf("%d", len(b.entries)))
			return
		}
		if len(data) < 2 {
			b.entriesEnd = mismatch(r.log, KindParse, at, "a 2-byte entry length", "a truncated bundle")
			return
		}
		l := int(data[0])<<8 | int(data[1])
		if len(data)-2 < l {
			b.entriesEnd = mismatch(r.log, KindParse, at, fmt.Sprintf("an entry of %d bytes", l), fmt.Sprintf("%d bytes left in the bundle", len(data)-2))
			return
		}
		b.entries = append(b.entries, data[2:2+l:2+l])
		data = data[2+l:]
	}
	if b.n == ledger.TileWidth && len(data) > 0 {
		// A partial bundle may be served from a wider one; a full one holds exactly 256 entries.
		b.tail = mismatch(r.log, KindParse, b.start+uint64(b.n-1), "a full bundle of exactly 256 entries", fmt.Sprintf("%d trailing bytes", len(data)))
	}
}

// checkHashTile checks the shape of a stored hash tile read for t and returns its first t.W hashes.
func (r *run) checkHashTile(t ledger.Tile, data []byte) ([]byte, *MismatchError) {
	if len(data)%ledger.HashSize != 0 || len(data) > maxTileBytes {
		return nil, tileMismatch(r.log, KindTile, t.L, t.N, fmt.Sprintf("whole hashes, at most %d bytes", maxTileBytes), fmt.Sprintf("%d bytes", len(data)))
	}
	if len(data) < t.W*ledger.HashSize {
		return nil, tileMismatch(r.log, KindMissing, t.L, t.N, fmt.Sprintf("%d hashes", t.W), fmt.Sprintf("%d", len(data)/ledger.HashSize))
	}
	return data[:t.W*ledger.HashSize], nil
}

// entrySlice returns an empty slice of entries with room for n, from the pool.
func (r *run) entrySlice(n int) [][]byte {
	if es, ok := r.entries.Get().([][]byte); ok && cap(es) >= n {
		return es
	}
	return make([][]byte, 0, n)
}

// readHashTile reads one stored hash tile at width t.W (into a pooled
// buffer of b, when b is not nil).
func (r *run) readHashTile(ctx context.Context, b *block, t ledger.Tile) ([]byte, *MismatchError, error) {
	var data []byte
	var err error
	if b != nil {
		data, err = r.read(ctx, b, t, false)
	} else {
		data, err = r.src.ReadTile(ctx, r.log, t)
	}
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, tileMismatch(r.log, KindMissing, t.L, t.N, t.Path(), "not found"), nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s of log %q: %w", t.Path(), r.log, err)
	}
	h, mis := r.checkHashTile(t, data)
	return h, mis, nil
}

// fetchEntries reads a block of entries with their chain hashes from an
// EntryReader, and the level-0 tiles that cover them.
func (r *run) fetchEntries(ctx context.Context, b *block) {
	end := b.start + uint64(b.n)
	next := b.start
	b.entries = make([][]byte, 0, b.n)
	b.chains = make([]byte, 0, b.n*ledger.HashSize)
read:
	for next < end {
		es, err := r.entryReader.ReadEntries(ctx, r.log, next, int(end-next))
		if err != nil {
			b.err = fmt.Errorf("read entries [%d, %d) of log %q: %w", next, end, r.log, err)
			return
		}
		if len(es) == 0 {
			break
		}
		for i := range es {
			if es[i].Index != next || next == end {
				break read
			}
			b.entries = append(b.entries, es[i].Data)
			b.chains = append(b.chains, es[i].Chain[:]...)
			next++
		}
	}
	if next < end {
		b.entriesEnd = mismatch(r.log, KindMissing, next, fmt.Sprintf("entry %d", next), "not found")
	}

	var tiles []ledger.Tile
	for n := b.start / ledger.TileWidth; n*ledger.TileWidth < end; n++ {
		tiles = append(tiles, ledger.Tile{N: n, W: ledger.TileWidthAt(0, n, r.size)})
	}
	var datas [][]byte
	if r.tileReader != nil {
		ds, err := r.tileReader.ReadTiles(ctx, r.log, tiles)
		if err == nil && len(ds) == len(tiles) {
			datas = ds
		} else if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			b.err = fmt.Errorf("read level-0 tiles of log %q: %w", r.log, err)
			return
		}
	}
	b.tile0 = make([]byte, 0, b.n*ledger.HashSize)
	for i, t := range tiles {
		var h []byte
		var mis *MismatchError
		if datas != nil {
			h, mis = r.checkHashTile(t, datas[i])
		} else {
			var err error
			if h, mis, err = r.readHashTile(ctx, nil, t); err != nil {
				b.err = err
				return
			}
		}
		if mis != nil {
			b.tile0End = mis
			return
		}
		b.tile0 = append(b.tile0, h...)
	}
}

// check compares each entry of a block with its level-0 tile hash, its
// chain hash and the entry format, in index order, and computes the leaf
// hashes. prev is the stored chain hash of the entry before the block.
func (r *run) check(ctx context.Context, b *block, prev ledger.Hash) {
	const hs = ledger.HashSize
	if ls, ok := r.leaves.Get().([]ledger.Hash); ok && cap(ls) >= b.n {
		b.leaves = ls
	} else {
		b.leaves = make([]ledger.Hash, 0, b.n)
	}
	for i := 0; i < b.n; i++ {
		idx := b.start + uint64(i)
		if i >= len(b.entries) {
			b.mis = b.entriesEnd
			return
		}
		if (i+1)*hs > len(b.tile0) {
			b.mis = b.tile0End
			return
		}
		e := b.entries[i]
		leaf := ledger.LeafHash(e)
		stored := ledger.Hash(b.tile0[i*hs : (i+1)*hs])
		if leaf != stored {
			tn, pos := idx/ledger.TileWidth, idx%ledger.TileWidth
			switch {
			case len(b.entries) < b.n && (i+2)*hs <= len(b.tile0) && leaf == ledger.Hash(b.tile0[(i+1)*hs:(i+2)*hs]):
				b.mis = mismatch(r.log, KindMissing, idx, fmt.Sprintf("entry %d (leaf hash %s)", idx, stored), fmt.Sprintf("entry %d in its place", idx+1))
			case b.chains != nil && (i+1)*hs <= len(b.chains) && ledger.ChainHash(prev, leaf) == ledger.Hash(b.chains[i*hs:(i+1)*hs]):
				// The entry agrees with the chain: the tile is what changed.
				b.mis = tileMismatch(r.log, KindTile, 0, tn, fmt.Sprintf("hash %d = %s (leaf hash of entry %d, which its chain hash confirms)", pos, leaf, idx), fmt.Sprintf("hash %d = %s", pos, stored))
			default:
				b.mis = mismatch(r.log, KindEntry, idx, fmt.Sprintf("leaf hash %s (level-0 tile %d)", stored, tn), fmt.Sprintf("leaf hash %s", leaf))
			}
			return
		}
		if b.chains != nil {
			if (i+1)*hs > len(b.chains) {
				b.mis = b.chainsEnd
				return
			}
			c := ledger.Hash(b.chains[i*hs : (i+1)*hs])
			if want := ledger.ChainHash(prev, leaf); c != want {
				b.mis = mismatch(r.log, KindChain, idx, "chain hash "+want.String()+" (recomputed)", "chain hash "+c.String()+" (stored)")
				return
			}
			prev = c
		}
		payload, err := checkEntry(e, r.log)
		if err != nil {
			b.mis = mismatch(r.log, KindParse, idx, "a canonical entry of log "+r.log, err.Error())
			return
		}
		if r.payloads != nil && len(payload) > 0 {
			if mis, err := r.checkPayload(ctx, b, idx, payload); err != nil || mis != nil {
				b.err, b.mis = err, mis
				return
			}
		}
		b.leaves = append(b.leaves, leaf)
	}
	b.mis = b.tail
	if b.mis == nil && r.scan != nil {
		b.scanned = r.scan(b.start, b.entries[:b.n])
	}
}

// checkPayload checks the stored payload of entry idx against its commitment.
func (r *run) checkPayload(ctx context.Context, b *block, idx uint64, commitment []byte) (*MismatchError, error) {
	p, err := r.payloads.ReadPayload(ctx, r.log, idx)
	switch {
	case errors.Is(err, ledger.ErrPayloadErased):
		b.erased = append(b.erased, idx)
		return nil, nil
	case errors.Is(err, ledger.ErrNotFound):
		return nil, nil // the commitment's payload was never stored here
	case err != nil:
		return nil, fmt.Errorf("read payload %d of log %q: %w", idx, r.log, err)
	}
	if len(p.Salt) != ledger.SaltSize {
		return mismatch(r.log, KindPayload, idx, fmt.Sprintf("a %d-byte salt", ledger.SaltSize), fmt.Sprintf("%d bytes", len(p.Salt))), nil
	}
	if got, _ := ledger.Commit(p.Data, p.Salt); !bytes.Equal([]byte(got), commitment) {
		return mismatch(r.log, KindPayload, idx, "payload_sha256 "+string(commitment), "SHA-256(salt ‖ payload) "+got), nil
	}
	b.paid++
	return nil, nil
}

// compareTile compares a rebuilt tile (level ≥ 1) with the stored one.
func (r *run) compareTile(ctx context.Context, t ledger.TileData) (*MismatchError, error) {
	var data []byte
	if r.tileReader != nil {
		ds, err := r.tileReader.ReadTiles(ctx, r.log, []ledger.Tile{t.Tile})
		switch {
		case errors.Is(err, ledger.ErrNotFound):
			return tileMismatch(r.log, KindMissing, t.L, t.N, t.Path(), "not found"), nil
		case err != nil:
			return nil, fmt.Errorf("read %s of log %q: %w", t.Path(), r.log, err)
		case len(ds) != 1:
			return nil, fmt.Errorf("read %s of log %q: got %d tiles", t.Path(), r.log, len(ds))
		}
		var mis *MismatchError
		if data, mis = r.checkHashTile(t.Tile, ds[0]); mis != nil {
			return mis, nil
		}
	} else {
		var mis *MismatchError
		var err error
		if data, mis, err = r.readHashTile(ctx, nil, t.Tile); err != nil || mis != nil {
			return mis, err
		}
	}
	if bytes.Equal(data, t.Hashes) {
		return nil, nil
	}
	k := 0
	for k < t.W && bytes.Equal(data[k*ledger.HashSize:(k+1)*ledger.HashSize], t.Hashes[k*ledger.HashSize:(k+1)*ledger.HashSize]) {
		k++
	}
	want := ledger.Hash(t.Hashes[k*ledger.HashSize : (k+1)*ledger.HashSize])
	got := ledger.Hash(data[k*ledger.HashSize : (k+1)*ledger.HashSize])
	return tileMismatch(r.log, KindTile, t.L, t.N, fmt.Sprintf("hash %d = %s (rebuilt)", k, want), fmt.Sprintf("hash %d = %s (stored)", k, got)), nil
}

// tileReaderOrAdapter returns a ledger.TileReader over the source.
func (r *run) tileReaderOrAdapter() ledger.TileReader {
	if r.tileReader != nil {
		return r.tileReader
	}
	return sourceTiles{r.src}
}

// sourceTiles reads hash tiles through Source.ReadTile.
type sourceTiles struct{ src Source }

func (s sourceTiles) ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := s.src.ReadTile(ctx, log, t)
		if err != nil {
			return nil, err
		}
		if len(b) < t.W*ledger.HashSize {
			return nil, fmt.Errorf("%s: %d bytes: %w", t.Path(), len(b), ledger.ErrNotFound)
		}
		out[i] = b[:t.W*ledger.HashSize]
	}
	return out, nil
}
