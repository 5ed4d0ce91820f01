package readapi

import (
	"container/list"
	"sync"

	"aigw/ledger"
)

// cacheKey names a cached object: a hash tile (l, n), or the entry bundle
// or chain hashes of bundle n, of a log.
type cacheKey struct {
	log  string
	kind int
	l, n uint64
}

// Cache kinds.
const (
	kindHash = iota
	kindBundle
	kindChain
)

type cacheEntry struct {
	key   cacheKey
	val   any
	cost  int64
	width int
}

// entryOverhead approximates the memory of a cache entry besides its value.
const entryOverhead = 128

// lru is a cache of immutable values bounded by their total cost, evicting
// the least recently used. It is safe for concurrent use; cached values are
// shared and must not be modified.
type lru struct {
	mu    sync.Mutex
	max   int64
	size  int64
	order *list.List // front: most recently used
	items map[cacheKey]*list.Element
}

func newLRU(maxBytes int64) *lru {
	return &lru{max: maxBytes, order: list.New(), items: map[cacheKey]*list.Element{}}
}

func (c *lru) get(k cacheKey) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).val, true
}

// put stores v under k unless a value at least as wide is already there (a
// tile only grows, so the wider one serves every narrower request). It
// returns the value now cached.
func (c *lru) put(k cacheKey, v any, cost int64, width int) any {
	cost += entryOverhead
	if cost > c.max {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		ce := e.Value.(*cacheEntry)
		c.order.MoveToFront(e)
		if ce.width >= width {
			return ce.val
		}
		c.size += cost - ce.cost
		ce.val, ce.cost, ce.width = v, cost, width
	} else {
		c.items[k] = c.order.PushFront(&cacheEntry{key: k, val: v, cost: cost, width: width})
		c.size += cost
	}
	for c.size > c.max {
		e := c.order.Back()
		ce := e.Value.(*cacheEntry)
		c.order.Remove(e)
		delete(c.items, ce.key)
		c.size -= ce.cost
	}
	return v
}

// hashTile is a stored hash tile and, computed on first use, the roots of
// its perfect subtrees, so that a proof looks node hashes up instead of
// rehashing up to 255 of them per tile level.
type hashTile struct {
	data []byte // the tile's hashes (its first w)

	once  sync.Once
	upper [ledger.TileHeight][]byte // upper[k], k ≥ 1: hashes of the complete 2^k-wide groups
}

func newHashTile(data []byte) *hashTile { return &hashTile{data: data} }

func (t *hashTile) width() int { return len(t.data) / ledger.HashSize }

// cost is the memory the tile takes once expanded (at most twice its data).
func (t *hashTile) cost() int64 { return 2 * int64(len(t.data)) }

func (t *hashTile) expand() {
	t.once.Do(func() {
		const hs = ledger.HashSize
		w := t.width()
		buf := make([]byte, 0, w*hs)
		prev := t.data
		for k := 1; k < ledger.TileHeight; k++ {
			start := len(buf)
			for i := 0; i+1 < len(prev)/hs; i += 2 {
				h := ledger.NodeHash(ledger.Hash(prev[i*hs:(i+1)*hs]), ledger.Hash(prev[(i+1)*hs:(i+2)*hs]))
				buf = append(buf, h[:]...)
			}
			t.upper[k] = buf[start:len(buf):len(buf)]
			prev = t.upper[k]
		}
	})
}

// node returns the hash of the node at height k (0..7) above the tile's
// level and position pos among the nodes of that height in the tile, or
// nil if the tile is too narrow to hold it.
func (t *hashTile) node(k int, pos uint64) []byte {
	level := t.data
	if k > 0 {
		t.expand()
		level = t.upper[k]
	}
	if (pos+1)*ledger.HashSize > uint64(len(level)) {
		return nil
	}
	return level[pos*ledger.HashSize : (pos+1)*ledger.HashSize]
}
