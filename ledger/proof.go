package ledger

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// TileReader reads hash tiles of one log. ReadTiles returns, for each
// requested tile, at least W hashes (W × 32 bytes): the tile as it was at a
// tree size where it had width W. A longer result (the same tile at a later
// size) is fine, since tiles only grow. It returns [ErrNotFound] if a tile
// is missing or narrower than asked.
type TileReader interface {
	ReadTiles(ctx context.Context, log string, tiles []Tile) ([][]byte, error)
}

// NodeReader is an optional interface of a TileReader that returns the
// hashes of tree nodes itself (for example from a cache of subtree hashes)
// instead of the tiles they are folded from. ReadNodes returns the hash of
// each node in ids, complete nodes of a tree of the given size.
type NodeReader interface {
	ReadNodes(ctx context.Context, log string, size uint64, ids []compact.NodeID) ([][]byte, error)
}

// readNodes returns node hashes through tr's NodeReader if it has one, else
// by folding tiles.
func readNodes(ctx context.Context, tr TileReader, log string, size uint64, ids []compact.NodeID) ([][]byte, error) {
	if nr, ok := tr.(NodeReader); ok {
		return nr.ReadNodes(ctx, log, size, ids)
	}
	return nodeHashesFromTiles(ctx, tr, log, size, ids)
}

// nodeHashesFromTiles returns the hashes of the given tree nodes in a tree
// of the given size, reading each tile they live in once (one ReadTiles call)
// and folding the tile hashes below each node.
func nodeHashesFromTiles(ctx context.Context, tr TileReader, log string, size uint64, ids []compact.NodeID) ([][]byte, error) {
	type key struct{ l, n uint64 }
	index := map[key]int{}
	var tiles []Tile
	for _, id := range ids {
		l := uint64(id.Level / TileHeight)
		k := key{l, (id.Index << (id.Level % TileHeight)) / TileWidth}
		if _, ok := index[k]; !ok {
			w := TileWidthAt(l, k.n, size)
			if w == 0 {
				return nil, fmt.Errorf("node %d/%d is not in a tree of size %d", id.Level, id.Index, size)
			}
			index[k] = len(tiles)
			tiles = append(tiles, Tile{L: l, N: k.n, W: w})
		}
	}
	data, err := tr.ReadTiles(ctx, log, tiles)
	if err != nil {
		return nil, err
	}
	if len(data) != len(tiles) {
		return nil, fmt.Errorf("read %d tiles, want %d", len(data), len(tiles))
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		l := uint64(id.Level / TileHeight)
		sub := id.Level % TileHeight
		first := id.Index << sub // first node at the tile's level under id
		k := key{l, first / TileWidth}
		t := data[index[k]]
		lo := int(first % TileWidth)
		hi := lo + 1<<sub
		if len(t) < hi*HashSize {
			return nil, fmt.Errorf("tile %d/%d has %d hashes, need %d: %w", k.l, k.n, len(t)/HashSize, hi, ErrNotFound)
		}
		out[i] = foldTile(t[lo*HashSize : hi*HashSize])
	}
	return out, nil
}

// foldTile computes the root of a perfect subtree from its 2^k bottom hashes.
func foldTile(hashes []byte) []byte {
	n := len(hashes) / HashSize
	if n == 1 {
		return append([]byte(nil), hashes...)
	}
	level := make([][]byte, n)
	for i := range level {
		level[i] = hashes[i*HashSize : (i+1)*HashSize]
	}
	for len(level) > 1 {
		next := level[:len(level)/2]
		for i := range next {
			next[i] = HashChildren(level[2*i], level[2*i+1])
		}
		level = next
	}
	return level[0]
}

// InclusionProof returns the RFC 6962 inclusion proof of the leaf at index in
// the tree of the given size, built from at most one read of each tile level.
func InclusionProof(ctx context.Context, tr TileReader, log string, index, size uint64) ([]Hash, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of %d in %d: %w", index, size, err)
	}
	return rehash(ctx, tr, log, size, nodes)
}

// ConsistencyProof returns the RFC 6962 consistency proof between two tree sizes.
func ConsistencyProof(ctx context.Context, tr TileReader, log string, size1, size2 uint64) ([]Hash, error) {
	if size1 > size2 {
		return nil, fmt.Errorf("consistency proof from %d to %d: first size is larger", size1, size2)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("consistency proof from %d to %d: %w", size1, size2, err)
	}
	return rehash(ctx, tr, log, size2, nodes)
}

func rehash(ctx context.Context, tr TileReader, log string, size uint64, nodes proof.Nodes) ([]Hash, error) {
	if len(nodes.IDs) == 0 {
		return []Hash{}, nil
	}
	hs, err := readNodes(ctx, tr, log, size, nodes.IDs)
	if err != nil {
		return nil, err
	}
	if len(hs) != len(nodes.IDs) {
		return nil, fmt.Errorf("read %d node hashes, want %d", len(hs), len(nodes.IDs))
	}
	hs, err = nodes.Rehash(hs, HashChildren)
	if err != nil {
		return nil, err
	}
	out := make([]Hash, len(hs))
	for i, h := range hs {
		copy(out[i][:], h)
	}
	return out, nil
}

// RootAt returns the root of the tree of the given size from its stored
// hashes: the perfect subtrees covering [0, size), folded. It is how a
// root is known at a size no checkpoint was signed for.
func RootAt(ctx context.Context, tr TileReader, log string, size uint64) (Hash, error) {
	if size == 0 {
		return EmptyRoot, nil
	}
	hs, err := readNodes(ctx, tr, log, size, compact.RangeNodes(0, size, nil))
	if err != nil {
		return Hash{}, fmt.Errorf("root of log %q at %d: %w", log, size, err)
	}
	rng, err := rangeFactory.NewRange(0, size, hs)
	if err != nil {
		return Hash{}, fmt.Errorf("root of log %q at %d: %w", log, size, err)
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return Hash{}, fmt.Errorf("root of log %q at %d: %w", log, size, err)
	}
	return Hash(root), nil
}

func hashSlices(hs []Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// VerifyInclusion checks an inclusion proof with transparency-dev/merkle.
func VerifyInclusion(leaf Hash, index, size uint64, hashes []Hash, root Hash) error {
	return proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leaf[:], hashSlices(hashes), root[:])
}

// VerifyConsistency checks a consistency proof with transparency-dev/merkle.
func VerifyConsistency(size1, size2 uint64, hashes []Hash, root1, root2 Hash) error {
	return proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, hashSlices(hashes), root1[:], root2[:])
}

// InclusionProofJSON is the JSON form of an inclusion proof that the read API
// serves and `aigw proof` writes. Hashes are standard base64; Checkpoint is the
// signed note of a tree of TreeSize entries, against which the proof verifies.
type InclusionProofJSON struct {
	Log        string   `json:"log"`
	Index      uint64   `json:"index"`
	TreeSize   uint64   `json:"tree_size"`
	LeafHash   string   `json:"leaf_hash"`
	Hashes     []string `json:"hashes"`
	Checkpoint string   `json:"checkpoint,omitempty"`
	Entry      string   `json:"entry,omitempty"` // base64 of the entry bytes, when included
}

// ConsistencyProofJSON is the JSON form of a consistency proof between two tree sizes.
type ConsistencyProofJSON struct {
	Log        string   `json:"log"`
	Size1      uint64   `json:"size1"`
	Size2      uint64   `json:"size2"`
	Hashes     []string `json:"hashes"`
	Checkpoint string   `json:"checkpoint,omitempty"` // signed checkpoint of Size2, when included
}

// EncodeHashes turns hashes into standard base64 strings.
func EncodeHashes(hs []Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

// DecodeHashes parses standard base64 hashes.
func DecodeHashes(ss []string) ([]Hash, error) {
	out := make([]Hash, len(ss))
	for i, s := range ss {
		b, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil || len(b) != HashSize {
			return nil, fmt.Errorf("proof hash %d is not 32 bytes of base64", i)
		}
		copy(out[i][:], b)
	}
	return out, nil
}

// ErrProofFormat is wrapped by errors from ParseProof.
var ErrProofFormat = errors.New("malformed proof")

// ParseProof decodes a proof file: an inclusion or a consistency proof in
// JSON. Exactly one of the results is non-nil on success.
func ParseProof(b []byte) (*InclusionProofJSON, *ConsistencyProofJSON, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrProofFormat, err)
	}
	if _, ok := probe["leaf_hash"]; ok {
		var p InclusionProofJSON
		if err := strictUnmarshal(b, &p); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrProofFormat, err)
		}
		return &p, nil, nil
	}
	if _, ok := probe["size2"]; ok {
		var p ConsistencyProofJSON
		if err := strictUnmarshal(b, &p); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrProofFormat, err)
		}
		return nil, &p, nil
	}
	return nil, nil, fmt.Errorf("%w: neither an inclusion (leaf_hash) nor a consistency (size2) proof", ErrProofFormat)
}
