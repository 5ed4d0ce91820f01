package tokenize

import (
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"sync/atomic"

	"aigw/gateway/guard/internal/swar"

	"github.com/tiktoken-go/tokenizer"
)

// A vocab maps every token of a BPE vocabulary (bytes) to its rank, which is
// also its id. It is read-only once built, so safe for concurrent use.
//
// The library keeps its vocabularies unexported; they are read back through
// Codec.Decode, one id at a time, when the vocab is built.
//
// Tokens of up to 7 bytes (three quarters of them, most of the lookups) are
// in an open-addressing table of their bytes packed in a uint64; longer
// ones are in a table of slots pointing into one string holding them all
// (hashed by midHash up to 16 bytes, which covers most of them, and by
// maphash beyond).
type vocab struct {
	short      []uint64 // 0 (empty) or shortKey(token)
	shortRanks []uint32 // the rank of short[i]
	shortShift uint     // 64 - log2(len(short))

	tokens string       // every long token's bytes, concatenated
	long   []uint64     // 0 (empty) or offset | length<<24 | rank<<32 | tag<<52
	mask   uint64       // len(long) - 1
	seed   maphash.Seed // of the hash of long tokens of more than midMax bytes

	size int // the number of tokens
}

// The fields of a long slot.
const (
	slotOffsetBits = 24
	slotLengthBits = 8
	slotRankBits   = 20
	slotTagShift   = slotOffsetBits + slotLengthBits + slotRankBits
)

// shortMax is the length of the longest token in the short table.
const shortMax = 7

// readVocab reads the vocabulary of c: the tokens of ids 0, 1, ... up to
// the first id that c cannot decode. The codec's error mode must be
// tokenizer.ErrorModeNone, which returns the tokens' bytes unchanged.
func readVocab(c tokenizer.Codec) []string {
	tokens := make([]string, 0, 1<<18) // o200k has 199,998 tokens
	ids := []uint{0}
	for id := uint(0); ; id++ {
		ids[0] = id
		t, err := c.Decode(ids)
		if err != nil {
			return tokens
		}
		tokens = append(tokens, t)
	}
}

// newVocab builds a vocab in which tokens[i] has rank i. It panics if a
// token does not fit (the vocabularies are compiled in: a test builds both).
func newVocab(tokens []string) *vocab {
	v := &vocab{seed: maphash.MakeSeed(), size: len(tokens)}
	nShort, longBytes := 0, 0
	for _, t := range tokens {
		if len(t) <= shortMax {
			nShort++
		} else {
			longBytes += len(t)
		}
	}
	bits := tableBits(nShort)
	v.short = make([]uint64, 1<<bits)
	v.shortRanks = make([]uint32, 1<<bits)
	v.shortShift = 64 - bits
	v.long = make([]uint64, 1<<tableBits(len(tokens)-nShort))
	v.mask = uint64(len(v.long) - 1)
	buf := make([]byte, 0, longBytes)
	for rank, t := range tokens {
		if len(t) == 0 || rank >= 1<<slotRankBits {
			panic(fmt.Sprintf("tokenize: token %d of %d bytes does not fit a vocab", rank, len(t)))
		}
		if len(t) <= shortMax {
			k := shortKey(t)
			i := k * hashMul >> v.shortShift
			for v.short[i] != 0 {
				i = (i + 1) & uint64(len(v.short)-1)
			}
			v.short[i], v.shortRanks[i] = k, uint32(rank)
			continue
		}
		if len(t) >= 1<<slotLengthBits || len(buf) >= 1<<slotOffsetBits {
			panic(fmt.Sprintf("tokenize: token %d (%d bytes at %d) does not fit a vocab slot", rank, len(t), len(buf)))
		}
		h := v.longHash(t)
		i := h & v.mask
		for v.long[i] != 0 {
			i = (i + 1) & v.mask
		}
		v.long[i] = uint64(len(buf)) | uint64(len(t))<<slotOffsetBits | uint64(rank)<<(slotOffsetBits+slotLengthBits) | h>>slotTagShift<<slotTagShift
		buf = append(buf, t...)
	}
	v.tokens = string(buf)
	return v
}

// tableBits returns the log2 of a table size for n entries, with a load
// factor between 0.35 and 0.7 (linear probing stays within a cache line or
// two; o200k's tables take 4 MB).
func tableBits(n int) uint {
	bits := uint(4)
	for 1<<bits*7/10 < n {
		bits++
	}
	return bits
}

// hashMul is the multiplier of the short table's (Fibonacci) hash: its top
// bits are the slot. The hash needs no seed: the table is fixed, so input
// can choose where a probe starts, not how long the clusters are.
const hashMul = 0x9e3779b97f4a7c15

// shortKey packs b (1 to shortMax bytes) in a uint64, little endian, with a
// 1 bit above the last byte: distinct strings have distinct keys, never 0.
func shortKey(b string) uint64 {
	var x uint64
	switch n := len(b); {
	case n >= 4:
		t := b[n-4:]
		lo := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24
		hi := uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24
		x = lo | hi<<(8*(n-4)) // the loads overlap for n < 8: same bytes, same bits
	case n == 3:
		x = uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16
	case n == 2:
		x = uint64(b[0]) | uint64(b[1])<<8
	default:
		x = uint64(b[0])
	}
	return x | 1<<(8*len(b))
}

// rank returns the rank of token b (not empty), or noRank.
func (v *vocab) rank(b string) uint32 {
	if len(b) <= shortMax {
		return v.shortRank(shortKey(b))
	}
	if len(b) <= midMax {
		// Two words hold the bytes: hashed and compared without a call.
		lo, hi := swar.Load(b, 0), swar.Load(b, len(b)-8)
		h := midHash(lo, hi, len(b))
		tag := h >> slotTagShift
		for i := h & v.mask; ; i = (i + 1) & v.mask {
			e := v.long[i]
			if e == 0 {
				return noRank
			}
			if e>>slotTagShift != tag || int(e>>slotOffsetBits&(1<<slotLengthBits-1)) != len(b) {
				continue
			}
			off := int(e & (1<<slotOffsetBits - 1))
			if swar.Load(v.tokens, off) == lo && swar.Load(v.tokens, off+len(b)-8) == hi {
				return uint32(e >> (slotOffsetBits + slotLengthBits) & (1<<slotRankBits - 1))
			}
		}
	}
	h := maphash.String(v.seed, b)
	tag := h >> slotTagShift
	for i := h & v.mask; ; i = (i + 1) & v.mask {
		e := v.long[i]
		if e == 0 {
			return noRank
		}
		if e>>slotTagShift != tag || int(e>>slotOffsetBits&(1<<slotLengthBits-1)) != len(b) {
			continue
		}
		off := int(e & (1<<slotOffsetBits - 1))
		if v.tokens[off:off+len(b)] == b {
			return uint32(e >> (slotOffsetBits + slotLengthBits) & (1<<slotRankBits - 1))
		}
	}
}

// midMax is the length of the longest token whose slot in the long table
// is found with midHash (longer ones: maphash).
const midMax = 16

// longHash is the hash of a token of more than shortMax bytes in the long
// table: midHash up to midMax bytes, else maphash.
func (v *vocab) longHash(t string) uint64 {
	if len(t) <= midMax {
		return midHash(swar.Load(t, 0), swar.Load(t, len(t)-8), len(t))
	}
	return maphash.String(v.seed, t)
}

// midHash hashes a token of 8 to 16 bytes from its first and last eight
// bytes (they overlap below 16) and its length: one 128-bit multiply of
// the two words, each mixed with a constant, as wyhash does. Like
// hashMul's, it needs no seed: the table is fixed.
func midHash(lo, hi uint64, n int) uint64 {
	h, l := bits.Mul64(lo^0xa0761d6478bd642f, hi^0xe7037ed1a0b428db^uint64(n))
	h, l = bits.Mul64(h^l^0x8ebc6af09c88c6e3, uint64(n)^0x589965cc75374cc3)
	return h ^ l
}

// shortRank returns the rank of the token of at most shortMax bytes whose
// shortKey is k, or noRank.
func (v *vocab) shortRank(k uint64) uint32 {
	mask := uint64(len(v.short) - 1)
	for i := k * hashMul >> v.shortShift; ; i = (i + 1) & mask {
		switch v.short[i] {
		case k:
			return v.shortRanks[i]
		case 0:
			return noRank
		}
	}
}

// noRank is the rank of bytes that are not a token.
const noRank = math.MaxUint32

// merge returns the number of tokens BPE merges piece (not empty) into, as
// the library does: pair by pair, the lowest rank first (the leftmost among
// equals). The library takes a piece that is a token as one token without
// merging it (see [pieceCache.count]).
func (v *vocab) merge(piece string) int {
	if len(piece) < mergeHeapThreshold {
		return v.mergeScan(piece)
	}
	return v.mergeHeap(piece)
}

// mergeStackMax is the length of the longest piece that mergeHeap merges
// without allocating.
const mergeStackMax = 256

// mergeHeapThreshold is the piece length, in bytes, from which merge uses
// mergeHeap rather than mergeScan (both merge alike; the scan is faster on
// short pieces).
const mergeHeapThreshold = 40

// A part is where a part of a piece starts, and the rank of the token that
// merging it with the next part makes.
type part struct {
	offset int32
	rank   uint32
}

// mergeScan merges piece with a linear scan for the lowest rank at each
// step: O(n²), fast for short pieces.
func (v *vocab) mergeScan(piece string) int {
	var buf [mergeHeapThreshold + 1]part
	parts := buf[:0]
	if len(piece) > mergeHeapThreshold {
		parts = make([]part, 0, len(piece)+1)
	}
	parts = parts[:len(piece)+1]
	for i := range parts {
		parts[i] = part{int32(i), noRank}
	}
	rankOf := func(i, skip int) uint32 {
		if i+skip+2 < len(parts) {
			return v.rank(piece[parts[i].offset:parts[i+skip+2].offset])
		}
		return noRank
	}
	for i := 0; i < len(parts)-2; i++ {
		parts[i].rank = rankOf(i, 0)
	}
	for len(parts) > 1 {
		minRank, minIndex := uint32(noRank), 0
		for i, p := range parts[:len(parts)-1] {
			if p.rank < minRank {
				minRank, minIndex = p.rank, i
			}
		}
		if minRank == noRank {
			break
		}
		parts[minIndex].rank = rankOf(minIndex, 1)
		if minIndex > 0 {
			parts[minIndex-1].rank = rankOf(minIndex-1, 1)
		}
		parts = append(parts[:minIndex+1], parts[minIndex+2:]...)
	}
	return len(parts) - 1
}

// A mergeNode is a part boundary in mergeHeap's doubly linked list; rank is
// that of the token that merging its part with the next one makes.
type mergeNode struct {
	prev, next int32
	rank       uint32
}

// mergeHeap merges piece in O(n log n), with a heap of candidate merges.
func (v *vocab) mergeHeap(piece string) int {
	n := int32(len(piece))
	var nodeBuf [mergeStackMax + 1]mergeNode
	var candidateBuf [2 * mergeStackMax]part
	nodes, candidates := nodeBuf[:0], mergeHeap(candidateBuf[:0])
	if n > mergeStackMax {
		nodes, candidates = make([]mergeNode, 0, n+1), make(mergeHeap, 0, n)
	}
	nodes = nodes[:n+1]
	for i := range nodes {
		nodes[i] = mergeNode{prev: int32(i) - 1, next: int32(i) + 1, rank: noRank}
	}
	nodes[n].next = -1
	rankOf := func(i int32) uint32 {
		j := nodes[i].next
		if j < 0 {
			return noRank
		}
		k := nodes[j].next
		if k < 0 {
			return noRank
		}
		return v.rank(piece[i:k])
	}
	for i := int32(0); i+2 <= n; i++ {
		if rank := rankOf(i); rank != noRank {
			nodes[i].rank = rank
			candidates = append(candidates, part{i, rank})
		}
	}
	candidates.init()
	parts := int(n)
	for len(candidates) > 0 {
		var top part
		top, candidates = candidates.pop()
		i := top.offset
		if nodes[i].rank != top.rank {
			continue // stale: the pair was merged or changed
		}
		j := nodes[i].next
		k := nodes[j].next
		nodes[j].rank = noRank
		nodes[i].next = k
		if k >= 0 {
			nodes[k].prev = i
		}
		parts--
		for _, b := range [2]int32{i, nodes[i].prev} {
			if b < 0 {
				continue
			}
			nodes[b].rank = rankOf(b)
			if nodes[b].rank != noRank {
				candidates = candidates.push(part{b, nodes[b].rank})
			}
		}
	}
	return parts
}

// mergeHeap is a binary min-heap of candidate merges ordered by rank, then
// offset, so that among equal ranks the leftmost pair merges first.
type mergeHeap []part

func (h mergeHeap) less(a, b int) bool {
	if h[a].rank != h[b].rank {
		return h[a].rank < h[b].rank
	}
	return h[a].offset < h[b].offset
}

func (h mergeHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// push returns h with c added.
func (h mergeHeap) push(c part) mergeHeap {
	h = append(h, c)
	h.up(len(h) - 1)
	return h
}

// pop returns the lowest candidate of h, and h without it.
func (h mergeHeap) pop() (part, mergeHeap) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	h.down(0)
	return top, h
}

func (h mergeHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (h mergeHeap) down(i int) {
	for {
		child := 2*i + 1
		if child >= len(h) {
			return
		}
		if right := child + 1; right < len(h) && h.less(right, child) {
			child = right
		}
		if !h.less(child, i) {
			return
		}
		h[i], h[child] = h[child], h[i]
		i = child
	}
}

// A pieceCache remembers how many tokens BPE merged recent pieces into:
// words that are not one token (identifiers, rarer words, names) recur
// within a prompt and across prompts, and a hit costs a hash instead of a
// merge. It is a direct-mapped table of 64-bit hashes of pieces with their
// counts: it keeps no text of the prompts (pieces can be parts of secrets),
// allocates nothing, and is safe for concurrent use. Two pieces mistaken for
// each other (a 52-bit hash collision in a slot, about 2⁻⁵² per lookup)
// would only skew an estimate, as in Text's cache of long texts.
type pieceCache struct {
	seed  maphash.Seed
	slots [pieceCacheSlots]atomic.Uint64 // 0 (empty) or hash>>12<<12 | count
}

// The size of a pieceCache, and the longest piece it keeps (whose count
// fits in the low bits of a slot).
const (
	pieceCacheBits  = 12
	pieceCacheSlots = 1 << pieceCacheBits
	pieceCacheMax   = 64
)

func newPieceCache() *pieceCache {
	return &pieceCache{seed: maphash.MakeSeed()}
}

// count returns the number of tokens of piece (not empty) in v: one if it
// is a token, else what v.merge returns, from the cache when it holds the
// piece. c may be nil (no cache).
func (c *pieceCache) count(v *vocab, piece string) int {
	if v.rank(piece) != noRank {
		return 1
	}
	if c == nil || len(piece) > pieceCacheMax {
		return v.merge(piece)
	}
	h := maphash.String(c.seed, piece)
	slot := &c.slots[h&(pieceCacheSlots-1)]
	if e := slot.Load(); e != 0 && e>>pieceCacheBits == h>>pieceCacheBits {
		return int(e & (1<<pieceCacheBits - 1))
	}
	n := v.merge(piece)
	slot.Store(h>>pieceCacheBits<<pieceCacheBits | uint64(n))
	return n
}
