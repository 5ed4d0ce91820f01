package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// httpTiles reads C2SP tlog-tiles over aigw's read API for x/mod's tlog
// (whose own paths are tile/8/L/N: Sunlight's mapping).
type httpTiles struct {
	t   *testing.T
	url string
}

func (h httpTiles) Height() int { return 8 }

func (h httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		path := "tile/" + strings.TrimPrefix(tile.Path(), "tile/8/")
		out[i] = getOK(h.t, h.url+"/"+path)
	}
	return out, nil
}

func (h httpTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// TestStandardTools checks aigw's log and proofs with stock transparency-log
// code only: x/mod/sumdb/note and transparency-dev/formats for the
// checkpoint, x/mod/sumdb/tlog reading the tiles over HTTP (it verifies
// every tile it reads against the checkpoint's root) and checking records,
// and transparency-dev/merkle for the proof JSON.
func TestStandardTools(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	s := startServe(t, "-data-dir", data)
	vkey := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(data, "checkpoint.vkey")))))
	if code, _, errs := run(t, jsonl("acme", 0, 700), "append", "-data-dir", data); code != 0 {
		t.Fatal(errs)
	}
	signed := waitSize(t, s, "acme", 700)

	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	cp, _, _, err := fmtlog.ParseCheckpoint(signed, "aigw.local/ledger/acme", v)
	if err != nil {
		t.Fatalf("formats/log.ParseCheckpoint: %v", err)
	}
	var root tlog.Hash
	copy(root[:], cp.Hash)
	tree := tlog.Tree{N: int64(cp.Size), Hash: root}
	hr := tlog.TileHashReader(tree, httpTiles{t, s.url() + "/ledger/acme"})
	if got, err := tlog.TreeHash(tree.N, hr); err != nil || got != root {
		t.Fatalf("tlog.TreeHash over the read API = %v, %v; want %v", got, err, root)
	}
	for _, idx := range []int64{0, 255, 256, 699} {
		bundle := getOK(t, s.url()+fmt.Sprintf("/ledger/acme/tile/entries/%03d", idx/256)+partial(int(cp.Size), idx))
		entry := nthEntry(t, bundle, int(idx%256))
		p, err := tlog.ProveRecord(tree.N, idx, hr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, tree.N, root, idx, tlog.RecordHash(entry)); err != nil {
			t.Fatalf("tlog.CheckRecord(%d): %v", idx, err)
		}
		// The read API's proof JSON, checked with transparency-dev/merkle.
		var pj struct {
			TreeSize uint64   `json:"tree_size"`
			LeafHash string   `json:"leaf_hash"`
			Hashes   []string `json:"hashes"`
		}
		if err := json.Unmarshal(getOK(t, s.url()+fmt.Sprintf("/ledger/acme/proof/inclusion?index=%d&tree_size=%d", idx, cp.Size)), &pj); err != nil {
			t.Fatal(err)
		}
		var hashes [][]byte
		for _, h := range pj.Hashes {
			hashes = append(hashes, must(base64.StdEncoding.DecodeString(h)))
		}
		leaf := rfc6962.DefaultHasher.HashLeaf(entry)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(idx), pj.TreeSize, leaf, hashes, cp.Hash); err != nil {
			t.Fatalf("merkle proof.VerifyInclusion(%d): %v", idx, err)
		}
	}
}

// partial is the .p/<W> suffix of the bundle holding idx in a tree of size n.
func partial(n int, idx int64) string {
	if w := n - int(idx/256)*256; w < 256 {
		return fmt.Sprintf(".p/%d", w)
	}
	return ""
}

func nthEntry(t *testing.T, bundle []byte, n int) []byte {
	t.Helper()
	for i := 0; ; i++ {
		if len(bundle) < 2 {
			t.Fatalf("bundle has no entry %d", n)
		}
		l := int(bundle[0])<<8 | int(bundle[1])
		if i == n {
			return bundle[2 : 2+l]
		}
		bundle = bundle[2+l:]
	}
}
