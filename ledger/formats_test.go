package ledger_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"aigw/ledger"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/tlog"
)

func TestFormatTileIndex(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "000", 5: "005", 999: "999", 1000: "x001/000", 1234067: "x001/x234/067",
		1000000: "x001/x000/000", math.MaxUint64: "x018/x446/x744/x073/x709/x551/615",
	} {
		if got := ledger.FormatTileIndex(n); got != want {
			t.Errorf("FormatTileIndex(%d) = %q; want %q", n, got, want)
		}
	}
}

func TestTilePath(t *testing.T) {
	for _, c := range []struct {
		tile ledger.Tile
		path string
	}{
		{ledger.Tile{L: 0, N: 1234067, W: 256}, "tile/0/x001/x234/067"},
		{ledger.Tile{L: 2, N: 5, W: 17}, "tile/2/005.p/17"},
		{ledger.Tile{N: 1234067, W: 1, Entries: true}, "tile/entries/x001/x234/067.p/1"},
		{ledger.Tile{N: 0, W: 256, Entries: true}, "tile/entries/000"},
		{ledger.Tile{L: 63, N: math.MaxUint64, W: 255}, "tile/63/x018/x446/x744/x073/x709/x551/615.p/255"},
	} {
		if got := c.tile.Path(); got != c.path {
			t.Errorf("%+v.Path() = %q; want %q", c.tile, got, c.path)
		}
		if got, err := ledger.ParseTilePath(c.path); err != nil || got != c.tile {
			t.Errorf("ParseTilePath(%q) = %+v, %v; want %+v", c.path, got, err, c.tile)
		}
	}
}

func TestParseTilePathRejects(t *testing.T) {
	for _, p := range []string{
		"", "tile", "tile/", "tile/0", "tile/0/", "tile//000", "/tile/0/000", "tile/0/000/", "tiles/0/000",
		"tile/0/x000/001", // leading zero group
		"tile/0/x001",     // group without a last element
		"tile/0/001.p/0", "tile/0/001.p/256", "tile/0/001.p/05", "tile/0/001.p/", "tile/0/001.p/-1", "tile/0/001.p/1x",
		"tile/0/1", "tile/0/01", "tile/0/0001", "tile/0/abc", "tile/0/00a", "tile/0/-01", "tile/0/+01", "tile/0/x1/000",
		"tile/00/000", "tile/01/000", "tile/64/000", "tile/-1/000", "tile/a/000", "tile/ent/000", "tile/entries/",
		"tile/0/x018/x446/x744/x073/x709/x551/616",      // 2^64
		"tile/0/x001/x000/x000/x000/x000/x000/x000/000", // 8 groups
		"tile/0/000.p/5.p/5",
	} {
		if tile, err := ledger.ParseTilePath(p); err == nil {
			t.Errorf("ParseTilePath(%q) = %+v; want an error", p, tile)
		}
	}
}

// memTiles is a tiny in-memory ledger.TileReader fed by a TreeBuilder.
type memTiles map[[2]uint64][]byte

func (m memTiles) add(ts []ledger.TileData) {
	for _, td := range ts {
		m[[2]uint64{td.L, td.N}] = td.Hashes
	}
}

func (m memTiles) ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b := m[[2]uint64{t.L, t.N}]
		if len(b) < t.W*ledger.HashSize {
			return nil, fmt.Errorf("tile %s: %w", t.Path(), ledger.ErrNotFound)
		}
		out[i] = b
	}
	return out, nil
}

// tlogTiles serves memTiles to x/mod/sumdb/tlog, an independent implementation.
type tlogTiles struct{ m memTiles }

func (r tlogTiles) Height() int { return ledger.TileHeight }
func (r tlogTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b := r.m[[2]uint64{uint64(t.L), uint64(t.N)}]
		if len(b) < t.W*ledger.HashSize {
			return nil, fmt.Errorf("tile %v missing", t)
		}
		out[i] = b[:t.W*ledger.HashSize]
	}
	return out, nil
}
func (r tlogTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

func entryOf(i int) []byte { return []byte("entry " + strconv.Itoa(i)) }

// TestTreeAgainstReferences builds one tree with TreeBuilder and checks, at
// boundary sizes, its roots, tiles and proofs against merkle/testonly's
// reference tree and x/mod/sumdb/tlog.
func TestTreeAgainstReferences(t *testing.T) {
	const maxSize = 65537
	sizes := []uint64{0, 1, 2, 3, 7, 255, 256, 257, 511, 512, 65535, 65536, 65537}
	ref := testonly.New(rfc6962.DefaultHasher)
	tb, err := ledger.NewTreeBuilder(0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tiles := memTiles{}
	roots := map[uint64]ledger.Hash{0: tb.Root()}
	for i := range maxSize {
		e := entryOf(i)
		ref.AppendData(e)
		tb.Append(ledger.LeafHash(e))
		if slices.Contains(sizes, tb.Size()) {
			tiles.add(tb.Flush())
			roots[tb.Size()] = tb.Root()
		}
	}
	tiles.add(tb.Flush())
	ctx := t.Context()
	if roots[0] != ledger.EmptyRoot {
		t.Errorf("empty tree root = %v; want EmptyRoot", roots[0])
	}
	for _, size := range sizes {
		root := roots[size]
		if want := ref.HashAt(size); string(root[:]) != string(want) {
			t.Fatalf("root at %d = %x; testonly says %x", size, root[:], want)
		}
		if size == 0 {
			continue
		}
		hr := tlog.TileHashReader(tlog.Tree{N: int64(size), Hash: tlog.Hash(root)}, tlogTiles{tiles})
		if th, err := tlog.TreeHash(int64(size), hr); err != nil || th != tlog.Hash(root) {
			t.Fatalf("tlog.TreeHash(%d) = %v, %v; want %v", size, th, err, root)
		}
		for _, idx := range []uint64{0, size / 2, size - 1} {
			p, err := ledger.InclusionProof(ctx, tiles, "log", idx, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d) = %v", idx, size, err)
			}
			want, _ := ref.InclusionProof(idx, size)
			if !sameHashes(p, want) {
				t.Fatalf("InclusionProof(%d, %d) differs from testonly", idx, size)
			}
			leaf := ledger.LeafHash(entryOf(int(idx)))
			if err := ledger.VerifyInclusion(leaf, idx, size, p, root); err != nil {
				t.Fatalf("VerifyInclusion(%d, %d) = %v", idx, size, err)
			}
			if err := tlog.CheckRecord(toTlog(p), int64(size), tlog.Hash(root), int64(idx), tlog.Hash(leaf)); err != nil {
				t.Fatalf("tlog.CheckRecord(%d, %d) = %v", idx, size, err)
			}
			tp, err := tlog.ProveRecord(int64(size), int64(idx), hr)
			if err != nil || !sameHashes(p, fromTlog(tp)) {
				t.Fatalf("tlog.ProveRecord(%d, %d) = %v; differs from ours", size, idx, err)
			}
		}
		for _, size1 := range sizes {
			if size1 > size {
				break
			}
			p, err := ledger.ConsistencyProof(ctx, tiles, "log", size1, size)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d) = %v", size1, size, err)
			}
			want, _ := ref.ConsistencyProof(size1, size)
			if !sameHashes(p, want) {
				t.Fatalf("ConsistencyProof(%d, %d) differs from testonly", size1, size)
			}
			if err := ledger.VerifyConsistency(size1, size, p, roots[size1], root); err != nil {
				t.Fatalf("VerifyConsistency(%d, %d) = %v", size1, size, err)
			}
			if size1 > 0 {
				if err := tlog.CheckTree(toTlog(p), int64(size), tlog.Hash(root), int64(size1), tlog.Hash(roots[size1])); err != nil {
					t.Fatalf("tlog.CheckTree(%d, %d) = %v", size1, size, err)
				}
			}
		}
	}
	if _, err := ledger.ConsistencyProof(ctx, tiles, "log", 3, 2); err == nil {
		t.Error("ConsistencyProof(3, 2) succeeded")
	}
	if _, err := ledger.InclusionProof(ctx, tiles, "log", 5, 5); err == nil {
		t.Error("InclusionProof(5, 5) succeeded")
	}
}

func sameHashes(a []ledger.Hash, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if string(a[i][:]) != string(b[i]) {
			return false
		}
	}
	return true
}

func toTlog(p []ledger.Hash) []tlog.Hash {
	out := make([]tlog.Hash, len(p))
	for i, h := range p {
		out[i] = tlog.Hash(h)
	}
	return out
}

func fromTlog(p []tlog.Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

func TestEmptyRoot(t *testing.T) {
	want := sha256.Sum256(nil)
	if ledger.EmptyRoot != want || string(ledger.EmptyRoot[:]) != string(testonly.EmptyRootHash()) {
		t.Errorf("EmptyRoot = %v; want SHA-256(\"\")", ledger.EmptyRoot)
	}
	if got := ledger.EmptyRoot.String(); got != "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" {
		t.Errorf("EmptyRoot = %s", got)
	}
}

func TestRFC6962GoldenVectors(t *testing.T) {
	tb, _ := ledger.NewTreeBuilder(0, nil, nil)
	roots := testonly.RootHashes() // indexed by tree size
	if got := tb.Root(); string(got[:]) != string(roots[0]) {
		t.Errorf("empty root = %x; want %x", got[:], roots[0])
	}
	for i, leaf := range testonly.LeafInputs() {
		tb.Append(ledger.LeafHash(leaf))
		if got, want := tb.Root(), roots[i+1]; string(got[:]) != string(want) {
			t.Errorf("root of the first %d golden leaves = %x; want %x", i+1, got[:], want)
		}
	}
}

// TestTilesFor checks that TilesFor(old, new) names exactly the tiles, at
// their widths, that a TreeBuilder changes when growing from old to new.
func TestTilesFor(t *testing.T) {
	sizes := []uint64{0, 1, 5, 255, 256, 257, 300, 511, 512, 513, 65535, 65536, 65537, 70000}
	tb, _ := ledger.NewTreeBuilder(0, nil, nil)
	tile := func(td ledger.TileData) ledger.Tile { return td.Tile }
	for i := 1; i < len(sizes); i++ {
		old, size := sizes[i-1], sizes[i]
		for tb.Size() < size {
			tb.Append(ledger.LeafHash(entryOf(int(tb.Size()))))
		}
		var flushed []ledger.Tile
		for _, td := range tb.Flush() {
			flushed = append(flushed, tile(td))
			if len(td.Hashes) != td.W*ledger.HashSize {
				t.Errorf("flushed tile %s has %d bytes", td.Path(), len(td.Hashes))
			}
		}
		if got := ledger.TilesFor(old, size); !slices.Equal(got, flushed) {
			t.Errorf("TilesFor(%d, %d) = %v; the builder changed %v", old, size, got, flushed)
		}
	}
	all := ledger.TilesFor(0, 70000)
	for _, tl := range all {
		if w := ledger.TileWidthAt(tl.L, tl.N, 70000); w != tl.W {
			t.Errorf("TilesFor(0, 70000) has %s; TileWidthAt says width %d", tl.Path(), w)
		}
	}
	if got := len(all); got != 274+2+1 { // 273 full + 1 partial level-0, 1 full + 1 partial level-1, 1 partial level-2
		t.Errorf("len(TilesFor(0, 70000)) = %d", got)
	}
	if got := ledger.TilesFor(0, 0); len(got) != 0 {
		t.Errorf("TilesFor(0, 0) = %v", got)
	}
}

func TestTreeBuilderRestore(t *testing.T) {
	tb, _ := ledger.NewTreeBuilder(0, nil, nil)
	tiles := memTiles{}
	for range 1000 {
		tb.Append(ledger.LeafHash(entryOf(int(tb.Size()))))
	}
	tiles.add(tb.Flush())
	partial := map[uint64][]byte{}
	for _, tl := range ledger.TilesFor(0, 1000) {
		if tl.W < ledger.TileWidth {
			partial[tl.L] = tiles[[2]uint64{tl.L, tl.N}]
		}
	}
	restored, err := ledger.NewTreeBuilder(1000, tb.Range(), partial)
	if err != nil {
		t.Fatal(err)
	}
	for range 600 {
		e := ledger.LeafHash(entryOf(int(tb.Size())))
		tb.Append(e)
		restored.Append(e)
	}
	if tb.Root() != restored.Root() {
		t.Fatalf("restored builder root %v; want %v", restored.Root(), tb.Root())
	}
	a, b := tb.Flush(), restored.Flush()
	if len(a) != len(b) {
		t.Fatalf("restored builder flushed %d tiles; want %d", len(b), len(a))
	}
	for i := range a {
		if a[i].Tile != b[i].Tile || string(a[i].Hashes) != string(b[i].Hashes) {
			t.Fatalf("restored builder tile %s differs", b[i].Path())
		}
	}
}

// TestFormatNumberRFC8785 checks the ECMAScript number serialization with
// the IEEE 754 test vectors of RFC 8785 Appendix B.
func TestFormatNumberRFC8785(t *testing.T) {
	for bits, want := range map[uint64]string{
		0x0000000000000000: "0",
		0x8000000000000000: "0",
		0x0000000000000001: "5e-324",
		0x8000000000000001: "-5e-324",
		0x7fefffffffffffff: "1.7976931348623157e+308",
		0xffefffffffffffff: "-1.7976931348623157e+308",
		0x4340000000000000: "9007199254740992",
		0xc340000000000000: "-9007199254740992",
		0x4430000000000000: "295147905179352830000",
		0x44b52d02c7e14af5: "9.999999999999997e+22",
		0x44b52d02c7e14af6: "1e+23",
		0x44b52d02c7e14af7: "1.0000000000000001e+23",
		0x444b1ae4d6e2ef4e: "999999999999999700000",
		0x444b1ae4d6e2ef4f: "999999999999999900000",
		0x444b1ae4d6e2ef50: "1e+21",
		0x3eb0c6f7a0b5ed8c: "9.999999999999997e-7",
		0x3eb0c6f7a0b5ed8d: "0.000001",
		0x41b3de4355555553: "333333333.3333332",
		0x41b3de4355555554: "333333333.33333325",
		0x41b3de4355555555: "333333333.3333333",
		0x41b3de4355555556: "333333333.3333334",
		0x41b3de4355555557: "333333333.33333343",
		0xbecbf647612f3696: "-0.0000033333333333333333",
		0x43143ff3c1cb0959: "1424953923781206.2",
	} {
		if got := ledger.FormatNumber(math.Float64frombits(bits)); got != want {
			t.Errorf("FormatNumber(%#016x) = %q; want %q", bits, got, want)
		}
	}
}

func TestCanonicalizeRFC8785(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		// RFC 8785 §3.2.2.
		{`{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`, `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		// RFC 8785 §3.2.3: sorting by UTF-16 code units (the emoji's surrogates sort before U+FB33).
		{`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},
		{`1e21`, `1e+21`},
		{`1e-7`, `1e-7`},
		{`-0`, `0`},
		{`-0.0`, `0`},
		{`333333333.33333329`, `333333333.3333333`},
		{`1E30`, `1e+30`},
		{`4.50`, `4.5`},
		{`2e-3`, `0.002`},
		{`0.000001`, `0.000001`},
		{`1e20`, `100000000000000000000`},
		{`9007199254740992`, `9007199254740992`},
		{`-9007199254740992`, `-9007199254740992`},
		{`[ ]`, `[]`},
		{` { } `, `{}`},
		{`"\u00e9\u2028\t\u001f"`, "\"é\u2028\\t\\u001f\""},
		{`{"b":[1,{"d":1,"c":2}],"a":"x"}`, `{"a":"x","b":[1,{"c":2,"d":1}]}`},
	} {
		got, err := ledger.Canonicalize([]byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("Canonicalize(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{
		`{"a":1,"a":2}`, `"\ud800"`, "\"\xff\"", `1e400`, `12345678901234567890`, `NaN`, `[1,]`, `{"a"}`, `1 2`, ``, `{`,
	} {
		if got, err := ledger.Canonicalize([]byte(bad)); err == nil {
			t.Errorf("Canonicalize(%q) = %s; want an error", bad, got)
		}
	}
}

// Regressions of ledger bugs found while writing these tests.

func TestCanonicalizeRefusesInexactIntegers(t *testing.T) {
	if got, err := ledger.Canonicalize([]byte(`9007199254740993`)); err == nil {
		t.Errorf("Canonicalize(9007199254740993) = %s; want an error (not exactly representable)", got)
	}
}

func TestCanonicalizeIsAFixedPointForLargeNumbers(t *testing.T) {
	for _, in := range []string{`1e20`, `123456789012345680000`, `{"n":1e20}`} {
		out, err := ledger.Canonicalize([]byte(in))
		if err != nil {
			t.Fatalf("Canonicalize(%s) = %v", in, err)
		}
		if again, err := ledger.Canonicalize(out); err != nil || string(again) != string(out) {
			t.Errorf("Canonicalize(%s) = %s, which canonicalizes to %s, %v", in, out, again, err)
		}
	}
	ev := &ledger.Event{ID: "01936b2e-8f4a-7c3d-9e2f-0123456789ab", Tenant: "acme", Kind: "request", Time: time.Now(), Attrs: map[string]any{"n": 1e20}}
	if _, err := ev.Entry(); err != nil {
		t.Errorf("Entry() with a float attribute of 1e20 = %v", err)
	}
}

func TestTileWidthAtHugeIndex(t *testing.T) {
	if w := ledger.TileWidthAt(0, 1<<56, 1000); w != 0 {
		t.Errorf("TileWidthAt(0, 2^56, 1000) = %d; want 0", w)
	}
}
