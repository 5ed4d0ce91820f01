package ledger_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"aigw/ledger"

	"golang.org/x/mod/sumdb/note"
)

// FuzzParseTilePath checks that ParseTilePath accepts exactly the paths
// Tile.Path writes: whatever it accepts, Path writes back byte for byte.
func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{
		"tile/0/000", "tile/0/001.p/5", "tile/entries/x001/x234/067", "tile/entries/x001/x234/067.p/255",
		"tile/63/x018/x446/x744/x073/x709/x551/615", "tile/0/x000/001", "tile/0/001.p/0", "tile/0/001.p/256",
		"tile/00/001", "tile/0/1", "tile/0/abc", "tile/0/001.p/05", "tile/64/000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tile, err := ledger.ParseTilePath(s)
		if err != nil {
			return
		}
		if tile.W < 1 || tile.W > ledger.TileWidth || tile.L > 63 || tile.Entries && tile.L != 0 {
			t.Fatalf("ParseTilePath(%q) = %+v: out of range", s, tile)
		}
		if p := tile.Path(); p != s {
			t.Fatalf("ParseTilePath(%q) = %+v, whose Path() is %q", s, tile, p)
		}
	})
}

// FuzzTilePathRoundTrip checks that every tile's path parses back to it.
func FuzzTilePathRoundTrip(f *testing.F) {
	f.Add(uint8(0), uint64(1234067), uint16(256), false)
	f.Add(uint8(63), ^uint64(0), uint16(1), true)
	f.Add(uint8(2), uint64(999), uint16(255), false)
	f.Fuzz(func(t *testing.T, l uint8, n uint64, w uint16, entries bool) {
		tile := ledger.Tile{L: uint64(l % 64), N: n, W: int(w%ledger.TileWidth) + 1, Entries: entries}
		if entries {
			tile.L = 0
		}
		got, err := ledger.ParseTilePath(tile.Path())
		if err != nil || got != tile {
			t.Fatalf("ParseTilePath(%q) = %+v, %v; want %+v", tile.Path(), got, err, tile)
		}
	})
}

// FuzzParseCheckpoint checks that a parsed checkpoint body marshals back to
// the same bytes, and that OpenCheckpoint never panics and only accepts
// notes signed by the trusted key.
func FuzzParseCheckpoint(f *testing.F) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "fuzz.aigw/ledger")
	if err != nil {
		f.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	verifiers := note.VerifierList(verifier)
	for _, c := range []ledger.Checkpoint{
		{Origin: "aigw.local/ledger/acme", Size: 0, Root: ledger.EmptyRoot},
		{Origin: "aigw.local/ledger/acme", Size: 1234567, Root: ledger.LeafHash([]byte("x"))},
	} {
		signed, err := ledger.SignCheckpoint(c, signer)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(signed)
		f.Add(c.Marshal())
	}
	f.Add([]byte("aigw.local/ledger/acme\n01\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"))
	f.Add([]byte("o\n1\nAAAA\n\n— x AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ledger.ParseCheckpointBody(b); err == nil {
			if m := c.Marshal(); !bytes.Equal(m, b) {
				t.Fatalf("ParseCheckpointBody(%q) = %+v, which marshals to %q", b, c, m)
			}
		}
		c, names, err := ledger.OpenCheckpoint(b, "", verifiers)
		if err != nil {
			return
		}
		if len(names) == 0 {
			t.Fatalf("OpenCheckpoint(%q) = %+v with no signer", b, c)
		}
		body, err := ledger.SplitNote(b)
		if err != nil {
			t.Fatalf("OpenCheckpoint accepted %q but SplitNote fails: %v", b, err)
		}
		if c2, err := ledger.ParseCheckpointBody(body); err != nil || c2 != c {
			t.Fatalf("OpenCheckpoint(%q) = %+v; the body parses to %+v, %v", b, c, c2, err)
		}
	})
}

// FuzzParseEntry checks that an accepted entry is the canonical encoding of
// the event it decodes to.
func FuzzParseEntry(f *testing.F) {
	ev := &ledger.Event{ID: "01936b2e-8f4a-7c3d-9e2f-0123456789ab", Tenant: "acme", Kind: ledger.KindRequest,
		Time: time.Date(2026, 11, 27, 7, 43, 40, 123456000, time.UTC), Actor: ledger.Actor{KeyID: "key_1", AgentID: "agent-7"},
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Policy: "sha256:abc",
		Attrs: map[string]any{"model": "gpt-4o", "tokens": 12, "z": []any{1.5, "<&>", "Zoë\u2028"}, "a": nil}}
	e, err := ev.Entry()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(e)
	f.Add([]byte(`{"id":"01936b2e-8f4a-7c3d-9e2f-0123456789ab","kind":"k","tenant":"t","time":"2026-11-27T07:43:40.000000Z","v":1}`))
	f.Add([]byte(`{"attrs":{"n":1e21},"id":"01936b2e-8f4a-7c3d-9e2f-0123456789ab","kind":"k","tenant":"t","time":"2026-11-27T07:43:40.000000Z","v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ledger.ParseEntry(b)
		if err != nil {
			return
		}
		again, err := ev.Entry()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("ParseEntry(%q) accepted an event that encodes to %q, %v", b, again, err)
		}
	})
}

// FuzzCanonicalize checks that canonical output is valid JSON and a fixed point.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{
		`{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}`,
		`{"\u20ac":1,"\r":2,"\ufb33":3,"1":4,"\ud83d\ude00":5,"\u0080":6,"\u00f6":7}`,
		`[1e21,1e-7,-0,0.000001,-5e-324,1.7976931348623157e308]`,
		`{"a":{"b":[{},[],""]}}`, `"\ud800"`, `{"a":1,"a":2}`, `9007199254740993`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := ledger.Canonicalize(b)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("Canonicalize(%q) = %q: not valid JSON", b, out)
		}
		again, err := ledger.Canonicalize(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("Canonicalize(%q) = %q, but Canonicalize of that = %q, %v", b, out, again, err)
		}
	})
}
