package ledger

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
)

// rangeFactory builds compact ranges with the allocation-light node hash.
var rangeFactory = &compact.RangeFactory{Hash: HashChildren}

// TileData is a tile's name and its hashes (W × 32 bytes).
type TileData struct {
	Tile
	Hashes []byte
}

// TreeBuilder appends leaf hashes to a Merkle tree and produces the tiles
// that change: it is the one place where the tree of a log is built, used by
// the sequencer to append and by verify to rebuild.
//
// It keeps the compact range of the tree (at most 64 hashes) and the
// rightmost, growing tile of each level. It is not safe for concurrent use.
type TreeBuilder struct {
	rng   *compact.Range
	edge  map[uint64]*TileData // level → rightmost tile being filled
	dirty map[uint64][]*TileData
}

// NewTreeBuilder restores a builder at a tree of the given size from the
// compact range hashes of [0, size) and the rightmost partial tile of each
// level (by level; levels whose rightmost tile is full or empty are absent).
func NewTreeBuilder(size uint64, rangeHashes []Hash, partial map[uint64][]byte) (*TreeBuilder, error) {
	hs := make([][]byte, len(rangeHashes))
	for i := range rangeHashes {
		h := rangeHashes[i]
		hs[i] = h[:]
	}
	rng, err := rangeFactory.NewRange(0, size, hs)
	if err != nil {
		return nil, fmt.Errorf("restore tree of size %d: %w", size, err)
	}
	b := &TreeBuilder{rng: rng, edge: map[uint64]*TileData{}, dirty: map[uint64][]*TileData{}}
	for l := uint64(0); size>>(l*TileHeight) > 0; l++ {
		count := size >> (l * TileHeight)
		n := count / TileWidth
		w := int(count % TileWidth)
		if w == 0 {
			if partial[l] != nil {
				return nil, fmt.Errorf("restore tree of size %d: level %d has no partial tile but one was given", size, l)
			}
			continue
		}
		p := partial[l]
		if len(p) < w*HashSize {
			return nil, fmt.Errorf("restore tree of size %d: partial tile %d/%d has %d bytes, want %d", size, l, n, len(p), w*HashSize)
		}
		hashes := make([]byte, w*HashSize, TileWidth*HashSize)
		copy(hashes, p)
		b.edge[l] = &TileData{Tile: Tile{L: l, N: n, W: w}, Hashes: hashes}
	}
	return b, nil
}

// Size returns the number of leaves in the tree.
func (b *TreeBuilder) Size() uint64 { return b.rng.End() }

// Append adds a leaf hash to the tree.
func (b *TreeBuilder) Append(leaf Hash) {
	// A fresh slice per leaf: compact.Range keeps references to the hashes it is given.
	h := make([]byte, HashSize)
	copy(h, leaf[:])
	if err := b.rng.Append(h, b.visit); err != nil {
		panic("ledger: compact range append: " + err.Error()) // only on a hash of the wrong size
	}
}

// visit records a completed node in its tile if its level is a tile level.
func (b *TreeBuilder) visit(id compact.NodeID, hash []byte) {
	if id.Level%TileHeight != 0 {
		return
	}
	l := uint64(id.Level / TileHeight)
	n, pos := id.Index/TileWidth, int(id.Index%TileWidth)
	t := b.edge[l]
	if t == nil || t.N != n {
		t = &TileData{Tile: Tile{L: l, N: n}, Hashes: make([]byte, 0, TileWidth*HashSize)}
		b.edge[l] = t
	}
	if pos != t.W {
		panic(fmt.Sprintf("ledger: tile %d/%d gets node %d at width %d", l, n, pos, t.W))
	}
	t.Hashes = append(t.Hashes, hash...)
	t.W++
	if d := b.dirty[l]; len(d) == 0 || d[len(d)-1] != t {
		b.dirty[l] = append(d, t)
	}
	if t.W == TileWidth {
		delete(b.edge, l)
	}
}

// Root returns the root hash of the tree (EmptyRoot for the empty tree).
func (b *TreeBuilder) Root() Hash {
	if b.rng.End() == 0 {
		return EmptyRoot
	}
	r, err := b.rng.GetRootHash(nil)
	if err != nil {
		panic("ledger: root of compact range: " + err.Error())
	}
	var h Hash
	copy(h[:], r)
	return h
}

// Range returns a copy of the compact range hashes of the tree, the state
// from which [NewTreeBuilder] restores it.
func (b *TreeBuilder) Range() []Hash {
	hs := b.rng.Hashes()
	out := make([]Hash, len(hs))
	for i, h := range hs {
		copy(out[i][:], h)
	}
	return out
}

// Flush returns the tiles that changed since the last Flush, each with its
// full contents at the current size (a copy), ordered by level then index.
func (b *TreeBuilder) Flush() []TileData {
	var out []TileData
	for l := uint64(0); ; l++ {
		d, ok := b.dirty[l]
		if !ok {
			if l > 64 || len(b.dirty) == 0 {
				break
			}
			continue
		}
		for _, t := range d {
			out = append(out, TileData{Tile: t.Tile, Hashes: append([]byte(nil), t.Hashes...)})
		}
		delete(b.dirty, l)
	}
	return out
}

// RangeBytes concatenates compact range hashes for storage.
func RangeBytes(r []Hash) []byte {
	out := make([]byte, 0, len(r)*HashSize)
	for _, h := range r {
		out = append(out, h[:]...)
	}
	return out
}

// ParseRangeBytes splits stored compact range hashes.
func ParseRangeBytes(b []byte) ([]Hash, error) {
	if len(b)%HashSize != 0 {
		return nil, fmt.Errorf("compact range is %d bytes, not a multiple of %d", len(b), HashSize)
	}
	out := make([]Hash, len(b)/HashSize)
	for i := range out {
		copy(out[i][:], b[i*HashSize:])
	}
	return out, nil
}
