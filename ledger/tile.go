package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TileHeight is the height of a tile: each tile holds up to TileWidth hashes
// of one tree level, and tile level L holds the hashes of tree level L*TileHeight.
//
// SPEC: https://c2sp.org/tlog-tiles
const (
	TileHeight = 8
	TileWidth  = 1 << TileHeight
)

// Tile names a tile: level L, index N, and width W (1..TileWidth; TileWidth for a full tile).
// Level -1 is not used; entry bundles are named by [TilePath] with Entries set.
type Tile struct {
	L uint64
	N uint64
	W int
	// Entries is true for an entry bundle (tile/entries/N), whose W counts entries.
	Entries bool
}

// Path returns the tile's C2SP tlog-tiles path, relative to the log prefix:
// tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>].
func (t Tile) Path() string {
	var b strings.Builder
	b.WriteString("tile/")
	if t.Entries {
		b.WriteString("entries")
	} else {
		b.WriteString(strconv.FormatUint(t.L, 10))
	}
	b.WriteByte('/')
	b.WriteString(FormatTileIndex(t.N))
	if t.W < TileWidth {
		b.WriteString(".p/")
		b.WriteString(strconv.Itoa(t.W))
	}
	return b.String()
}

// FormatTileIndex encodes a tile index as zero-padded 3-digit path elements,
// all but the last prefixed with "x": 1234067 → x001/x234/067.
func FormatTileIndex(n uint64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	return s
}

var errBadTilePath = errors.New("malformed tile path")

// ParseTilePath parses a path produced by [Tile.Path] (without a leading
// slash or log prefix). It accepts exactly the canonical encoding: no
// leading zero groups, no width outside 1..255, no level above 63.
func ParseTilePath(path string) (Tile, error) {
	var t Tile
	rest, ok := strings.CutPrefix(path, "tile/")
	if !ok {
		return t, errBadTilePath
	}
	first, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return t, errBadTilePath
	}
	if first == "entries" {
		t.Entries = true
	} else {
		l, err := parseDecimal(first)
		if err != nil || l > 63 {
			return t, errBadTilePath
		}
		t.L = l
	}
	t.W = TileWidth
	if i := strings.Index(rest, ".p/"); i >= 0 {
		w, err := parseDecimal(rest[i+3:])
		if err != nil || w < 1 || w >= TileWidth {
			return t, errBadTilePath
		}
		t.W = int(w)
		rest = rest[:i]
	}
	elems := strings.Split(rest, "/")
	var n uint64
	for i, e := range elems {
		last := i == len(elems)-1
		if !last {
			var ok bool
			if e, ok = strings.CutPrefix(e, "x"); !ok {
				return t, errBadTilePath
			}
		}
		if len(e) != 3 || e[0] < '0' || e[0] > '9' || e[1] < '0' || e[1] > '9' || e[2] < '0' || e[2] > '9' {
			return t, errBadTilePath
		}
		d := uint64(e[0]-'0')*100 + uint64(e[1]-'0')*10 + uint64(e[2]-'0')
		if i == 0 && d == 0 && !last {
			return t, errBadTilePath // leading zero group
		}
		if n > (1<<64-1-d)/1000 {
			return t, errBadTilePath
		}
		n = n*1000 + d
	}
	if len(elems) > 7 {
		return t, errBadTilePath
	}
	t.N = n
	return t, nil
}

func parseDecimal(s string) (uint64, error) {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, errBadTilePath
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errBadTilePath
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// LeafInTile returns the index of the first leaf hash equal to leaf in
// hashes, the level-0 tile n, and reports whether there is one: the search
// of Store.LookupLeaf in stores that keep no per-entry leaf index.
func LeafInTile(hashes []byte, n uint64, leaf Hash) (uint64, bool) {
	for off := 0; off+HashSize <= len(hashes); off += HashSize {
		if Hash(hashes[off:off+HashSize]) == leaf {
			return n*TileWidth + uint64(off/HashSize), true
		}
	}
	return 0, false
}

// TileWidthAt returns the width of tile (L, N) in a tree of the given size,
// or 0 if the tree has no hash in it yet.
func TileWidthAt(l, n, size uint64) int {
	if l*TileHeight >= 64 {
		return 0
	}
	count := size >> (l * TileHeight) // complete nodes at tree level L*TileHeight
	if count == 0 || n > (count-1)/TileWidth {
		return 0
	}
	start := n * TileWidth
	if count-start >= TileWidth {
		return TileWidth
	}
	return int(count - start)
}

// TilesFor lists the tiles, at every level, of a tree of the given size,
// each at its width at that size: the full tiles and the rightmost partial ones.
// Only tiles whose index is >= the tile that holds fromSize's edge are listed,
// so TilesFor(old, new) is the set of tiles an append from old to new writes.
func TilesFor(fromSize, size uint64) []Tile {
	var tiles []Tile
	for l := uint64(0); size>>(l*TileHeight) > 0; l++ {
		count := size >> (l * TileHeight)
		first := (fromSize >> (l * TileHeight)) / TileWidth
		for n := first; n*TileWidth < count; n++ {
			w := TileWidthAt(l, n, size)
			if n*TileWidth < fromSize>>(l*TileHeight) && w == TileWidthAt(l, n, fromSize) {
				continue // unchanged
			}
			tiles = append(tiles, Tile{L: l, N: n, W: w})
		}
	}
	return tiles
}

// EntryBundle encodes entries as a C2SP entry bundle: each entry prefixed by
// its length as a 16-bit big-endian integer. It refuses an entry that the
// prefix cannot describe (over MaxEntrySize), rather than truncate it.
func EntryBundle(entries [][]byte) ([]byte, error) {
	n := 0
	for i, e := range entries {
		if len(e) > MaxEntrySize {
			return nil, fmt.Errorf("entry bundle: entry %d is %d bytes, over the %d-byte limit", i, len(e), MaxEntrySize)
		}
		n += 2 + len(e)
	}
	out := make([]byte, 0, n)
	for _, e := range entries {
		out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
		out = append(out, e...)
	}
	return out, nil
}

// ParseEntryBundle splits an entry bundle into its entries. It fails if the
// bundle is truncated, has trailing bytes, or holds more than TileWidth entries.
func ParseEntryBundle(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, errors.New("entry bundle: truncated length")
		}
		n := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		if len(b) < n {
			return nil, errors.New("entry bundle: truncated entry")
		}
		if len(out) == TileWidth {
			return nil, errors.New("entry bundle: more than 256 entries")
		}
		out = append(out, b[:n:n])
		b = b[n:]
	}
	return out, nil
}
