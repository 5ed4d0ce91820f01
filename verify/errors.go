package verify

import (
	"fmt"
	"strconv"
)

// Kinds of [MismatchError], each naming what was found wrong.
const (
	// KindSignature: a checkpoint is not signed by a trusted key, or a
	// trusted key's signature on it is invalid. Index is the checkpoint's
	// tree size when its body parses.
	KindSignature = "signature"
	// KindOrigin: a checkpoint's origin line is not the expected one (a
	// checkpoint of another log). Index is its tree size.
	KindOrigin = "origin"
	// KindEntry: an entry's leaf hash differs from the hash at its index in
	// the level-0 tile (a changed, swapped or replaced entry). Index is the entry.
	KindEntry = "entry"
	// KindParse: an entry is not canonical or not valid, belongs to another
	// tenant, or an entry bundle, tile or checkpoint is malformed. Index is the
	// entry (for bundles, the entry where the bundle breaks).
	KindParse = "parse"
	// KindChain: a stored chain hash differs from the one recomputed from the
	// previous stored chain hash and the entry's leaf hash. Index is the entry.
	KindChain = "chain"
	// KindTile: a stored hash tile differs from the tile rebuilt from the
	// entries. Index is the tile index and Level its level.
	KindTile = "tile"
	// KindMissing: an entry (Level -1, Index the first missing entry), its
	// chain hashes (Level -1, Want says so) or a tile (Level >= 0, Index the
	// tile index) is absent.
	KindMissing = "missing"
	// KindRoot: the root rebuilt from the entries differs from the signed
	// checkpoint's root. Index is the tree size.
	KindRoot = "root"
	// KindCheckpoint: a historical checkpoint of the log differs from the
	// rebuilt tree at its size (the tamper lies between the last matching
	// checkpoint and this one), or two checkpoints of one size disagree.
	// Index is its tree size.
	KindCheckpoint = "checkpoint"
	// KindFork: the auditor's older checkpoint is not a prefix of today's
	// tree (a split view or a rewritten history). Index is its tree size.
	KindFork = "fork"
	// KindSize: today's tree is smaller than the auditor's older checkpoint
	// (a rollback), or a proof's tree size differs from its checkpoint's.
	// Index is the larger, expected size.
	KindSize = "size"
	// KindPayload: a stored payload does not match its entry's commitment.
	// Index is the entry.
	KindPayload = "payload"
	// KindProof: an inclusion or consistency proof does not verify against
	// its signed checkpoint. Index is the leaf index or the first tree size.
	KindProof = "proof"
)

// MismatchError reports the first thing found wrong in a log or a proof.
// Everything verified before it (the entries below it, in index order) was
// found consistent.
type MismatchError struct {
	Log  string
	Kind string // one of the Kind constants
	// Index is an entry index, a tile index (Kind tile, or missing with
	// Level >= 0) or a tree size (signature, origin, root, checkpoint, fork,
	// size); each Kind's doc says which.
	Index uint64
	// Level is the tile level when Index is a tile index, else -1.
	Level int
	// Want and Got describe the expected and the found value.
	Want, Got string
}

func (e *MismatchError) Error() string {
	where := "log " + strconv.Quote(e.Log) + ": "
	switch {
	case e.Level >= 0:
		where += fmt.Sprintf("tile %d/%d", e.Level, e.Index)
	case e.Kind == KindEntry || e.Kind == KindChain || e.Kind == KindParse || e.Kind == KindMissing || e.Kind == KindPayload:
		where += fmt.Sprintf("entry %d", e.Index)
	default:
		where += fmt.Sprintf("tree size %d", e.Index)
	}
	return fmt.Sprintf("%s: %s mismatch: want %s, got %s", where, e.Kind, e.Want, e.Got)
}

func mismatch(log, kind string, index uint64, want, got string) *MismatchError {
	return &MismatchError{Log: log, Kind: kind, Index: index, Level: -1, Want: want, Got: got}
}

func tileMismatch(log, kind string, level, index uint64, want, got string) *MismatchError {
	return &MismatchError{Log: log, Kind: kind, Index: index, Level: int(level), Want: want, Got: got}
}
