package ledger

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Errors that callers branch on, with errors.Is.
var (
	// ErrNotFound: the log, entry, tile, payload or checkpoint does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a batch did not start at the log's current size (another
	// sequencer advanced it). Nothing was written.
	ErrConflict = errors.New("log head moved")
	// ErrDuplicate: a batch held an event id the log already has. Nothing was written.
	ErrDuplicate = errors.New("duplicate event id")
	// ErrLocked: another sequencer holds the log.
	ErrLocked = errors.New("log is locked by another sequencer")
	// ErrBackpressure: the ledger cannot accept an event now; retry later
	// (HTTP services answer 503 with Retry-After).
	ErrBackpressure = errors.New("ledger backpressure")
	// ErrMalformedBatch: a batch broke the rules of [Batch.Validate]. Nothing was written.
	ErrMalformedBatch = errors.New("malformed batch")
	// ErrPayloadErased: the payload existed and was erased.
	ErrPayloadErased = errors.New("payload erased")
)

// Head is the state of a log at its latest checkpoint.
type Head struct {
	Size uint64
	// Range is the compact range of [0, Size): the hashes from which the tree
	// is restored without reading every tile.
	Range []Hash
	// Chain is the chain hash of entry Size-1 (zero for the empty log).
	Chain Hash
	// Checkpoint is the signed checkpoint note of Size (nil for a log never written).
	Checkpoint []byte
}

// StoredEntry is an entry as a log stores it.
type StoredEntry struct {
	Index   uint64
	EventID string
	Data    []byte // the canonical entry bytes, hashed as stored
	Chain   Hash   // ChainHash(chain of Index-1, LeafHash(Data))
}

// Payload is the data an entry commits to, stored beside it.
type Payload struct {
	Index uint64
	Salt  []byte
	Data  []byte
}

// Batch is one atomic append to a log: entries Start..Start+len(Entries)-1,
// their payloads, every tile the append changed (full contents at the new
// size), and the new head with its signed checkpoint.
type Batch struct {
	Log      string
	Start    uint64
	Entries  []StoredEntry
	Payloads []Payload
	Tiles    []TileData
	Head     Head
}

// Store is where logs live. Implementations: ledger/postgres, ledger/sqlite.
// Every method is safe for concurrent use, and every write is durable when it
// returns. A Store trusts its caller (the sequencer) for the hashes it is
// given; verify, not the Store, is what checks them.
//
// Further contract, pinned down by ledger/storetest: for a log never written,
// list reads (ReadEntries, Checkpoints, LookupEvents) return empty with no
// error, while ReadTiles, LookupLeaf, ReadPayload and ErasePayload return
// ErrNotFound; LookupEvents never finds a string that is not a valid event
// id; erasing an erased payload returns nil; a release function from Lock may
// be called more than once, and a stale release never frees a newer holder; a
// store keeps no reference to slices it is given or returns. ReadTiles reads
// hash tiles only: entry bundles are built from ReadEntries with EntryBundle.
type Store interface {
	// Head returns the log's state. A log never written has a zero Head and no error.
	Head(ctx context.Context, log string) (Head, error)

	// AppendBatch writes the batch in one transaction: all of it or nothing
	// is visible, to any reader, before or after a crash.
	// It MUST refuse a batch that fails [Batch.Validate] (ErrMalformedBatch),
	// writing nothing. It MUST return an error wrapping ErrConflict, writing nothing, unless
	// b.Start equals the log's size, and one wrapping ErrDuplicate, writing
	// nothing, if any event id of the batch is already in the log.
	// Tiles only grow: a tile written again must extend the stored one.
	AppendBatch(ctx context.Context, b *Batch) error

	// LookupEvents returns the index of each of the given event ids that the log holds.
	LookupEvents(ctx context.Context, log string, ids []string) (map[string]uint64, error)

	// LookupLeaf returns the smallest index whose entry has the given RFC 6962
	// leaf hash, or ErrNotFound.
	LookupLeaf(ctx context.Context, log string, leaf Hash) (uint64, error)

	// ReadEntries returns up to n entries from start, in index order, stopping
	// early at the end of the log (or at a missing entry).
	ReadEntries(ctx context.Context, log string, start uint64, n int) ([]StoredEntry, error)

	// ReadTiles implements TileReader.
	ReadTiles(ctx context.Context, log string, tiles []Tile) ([][]byte, error)

	// Checkpoints returns the signed checkpoints of the log with size in
	// [from, to], oldest first (every batch writes one).
	Checkpoints(ctx context.Context, log string, from, to uint64) ([][]byte, error)

	// ReadPayload returns the payload of an entry: ErrNotFound if it never had
	// one, ErrPayloadErased if it was erased.
	ReadPayload(ctx context.Context, log string, index uint64) (Payload, error)

	// ErasePayload deletes the payload (data and salt) of an entry, keeping a
	// marker that it was erased. The entry, and so every proof, is unchanged.
	ErasePayload(ctx context.Context, log string, index uint64) error

	// Logs lists the logs that have at least one entry, sorted.
	Logs(ctx context.Context) ([]string, error)

	// Lock makes the caller the one active sequencer of name (a log, or a
	// partition of logs), until release is called or the process dies. It
	// returns ErrLocked at once if another holder has it, in this process or
	// another process sharing the store.
	Lock(ctx context.Context, name string) (release func(), err error)

	Close() error
}

// Validate checks that a batch is well formed: everything a store can check
// without reading the log. Stores call it before writing and refuse a
// malformed batch with nothing written. Its errors wrap ErrMalformedBatch,
// or ErrDuplicate when one event id occurs twice in the batch.
func (b *Batch) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformedBatch, fmt.Sprintf(format, args...))
	}
	if !ValidLogName(b.Log) {
		return bad("invalid log name %q", b.Log)
	}
	n := uint64(len(b.Entries))
	if n == 0 {
		return bad("no entries")
	}
	if b.Start > math.MaxInt64-n {
		return bad("start %d out of range", b.Start)
	}
	size := b.Start + n
	if b.Head.Size != size {
		return bad("head size %d, want %d (start %d + %d entries)", b.Head.Size, size, b.Start, n)
	}
	ids := make(map[string]uint64, n)
	for i, e := range b.Entries {
		idx := b.Start + uint64(i)
		if e.Index != idx {
			return bad("entry %d has index %d", idx, e.Index)
		}
		if !ValidEventID(e.EventID) {
			return bad("entry %d: event id %q is not a lowercase UUIDv7", idx, e.EventID)
		}
		if len(e.Data) == 0 || len(e.Data) > MaxEntrySize {
			return bad("entry %d is %d bytes, want 1 to %d", idx, len(e.Data), MaxEntrySize)
		}
		if j, ok := ids[e.EventID]; ok {
			return fmt.Errorf("entries %d and %d have event id %s: %w", j, idx, e.EventID, ErrDuplicate)
		}
		ids[e.EventID] = idx
	}
	if b.Head.Chain != b.Entries[n-1].Chain {
		return bad("head chain is not the chain of entry %d", size-1)
	}
	if len(b.Head.Range) != bits.OnesCount64(size) {
		return bad("head has %d compact range hashes, a tree of %d has %d", len(b.Head.Range), size, bits.OnesCount64(size))
	}
	if len(b.Head.Checkpoint) == 0 {
		return bad("head has no checkpoint")
	}
	payloads := make(map[uint64]bool, len(b.Payloads))
	for _, p := range b.Payloads {
		if p.Index < b.Start || p.Index >= size {
			return bad("payload of entry %d, outside the batch [%d, %d)", p.Index, b.Start, size)
		}
		if payloads[p.Index] {
			return bad("two payloads for entry %d", p.Index)
		}
		payloads[p.Index] = true
	}
	want := map[Tile]bool{}
	for _, t := range TilesFor(b.Start, size) {
		want[t] = true
	}
	for _, t := range b.Tiles {
		if !want[t.Tile] {
			return bad("tile %s is not one that an append from %d to %d writes (or is given twice)", t.Path(), b.Start, size)
		}
		delete(want, t.Tile)
		if len(t.Hashes) != t.W*HashSize {
			return bad("tile %s has %d bytes, want %d", t.Path(), len(t.Hashes), t.W*HashSize)
		}
	}
	for t := range want {
		return bad("tile %s is missing", t.Path())
	}
	return nil
}
