package storetest

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"aigw/ledger"

	"golang.org/x/mod/sumdb/note"
)

// Check compares the log in s with everything a built, failing t at each
// difference: the head; every entry (and its chain hash, recomputed from the
// entry bytes); every tile of the tree at its current width; the checkpoint
// list, each signature verified with a's key; event id and leaf hash lookups;
// payloads (erased ones must read as [ledger.ErrPayloadErased]); and
// inclusion and consistency proofs built from the store's tiles, verified
// against the root of every checkpoint. Large logs are sampled.
func (a *Appender) Check(t testing.TB, s ledger.Store) {
	t.Helper()
	ctx := t.Context()
	log, size := a.log, a.Size()

	head, err := s.Head(ctx, log)
	if err != nil {
		t.Fatalf("Head(%q) = %v", log, err)
	}
	checkHead(t, log, head, a.Head())

	entries, err := s.ReadEntries(ctx, log, 0, int(size)+10)
	if err != nil {
		t.Fatalf("ReadEntries(%q, 0, %d) = %v", log, size+10, err)
	}
	if uint64(len(entries)) != size {
		t.Fatalf("ReadEntries(%q, 0, %d) returned %d entries; want %d", log, size+10, len(entries), size)
	}
	var chain ledger.Hash
	for i, e := range entries {
		want := a.entries[i]
		if e.Index != want.Index || e.EventID != want.EventID || !bytes.Equal(e.Data, want.Data) || e.Chain != want.Chain {
			t.Fatalf("ReadEntries(%q): entry %d = {%d %s %d bytes %v}; want {%d %s %d bytes %v}",
				log, i, e.Index, e.EventID, len(e.Data), e.Chain, want.Index, want.EventID, len(want.Data), want.Chain)
		}
		chain = ledger.ChainHash(chain, ledger.LeafHash(e.Data))
		if chain != e.Chain {
			t.Fatalf("entry %d of %q: stored chain %v, recomputed %v", i, log, e.Chain, chain)
		}
	}

	checkTiles(t, s, a, ledger.TilesFor(0, size))

	cps, err := s.Checkpoints(ctx, log, 0, size)
	if err != nil {
		t.Fatalf("Checkpoints(%q, 0, %d) = %v", log, size, err)
	}
	if len(cps) != len(a.checkpoints) {
		t.Fatalf("Checkpoints(%q, 0, %d) returned %d; want %d", log, size, len(cps), len(a.checkpoints))
	}
	for i, cp := range cps {
		if !bytes.Equal(cp, a.checkpoints[i]) {
			t.Fatalf("Checkpoints(%q)[%d] = %q; want %q", log, i, cp, a.checkpoints[i])
		}
		c := a.openCheckpoint(t, cp)
		if c.Size != a.sizes[i] || c.Root != a.roots[a.sizes[i]] {
			t.Fatalf("checkpoint %d of %q is of size %d root %v; want %d %v", i, log, c.Size, c.Root, a.sizes[i], a.roots[a.sizes[i]])
		}
	}

	sample := sampleIndexes(size, 40)
	var ids []string
	for _, i := range sample {
		ids = append(ids, a.entries[i].EventID)
	}
	if size <= 2000 {
		ids = ids[:0]
		for _, e := range a.entries {
			ids = append(ids, e.EventID)
		}
	}
	found, err := s.LookupEvents(ctx, log, ids)
	if err != nil {
		t.Fatalf("LookupEvents(%q, %d ids) = %v", log, len(ids), err)
	}
	if len(found) != len(ids) {
		t.Errorf("LookupEvents(%q, %d ids of the log) found %d", log, len(ids), len(found))
	}
	for _, i := range sample {
		id := a.entries[i].EventID
		if got, ok := found[id]; !ok || got != i {
			t.Errorf("LookupEvents(%q, [%s]) = %d, %v; want %d, true", log, id, got, ok, i)
		}
		leaf := ledger.LeafHash(a.entries[i].Data)
		if got, err := s.LookupLeaf(ctx, log, leaf); err != nil || got != i {
			t.Errorf("LookupLeaf(%q, leaf of %d) = %d, %v; want %d, nil", log, i, got, err, i)
		}
	}

	for _, i := range a.PayloadIndexes() {
		got, err := s.ReadPayload(ctx, log, i)
		if a.erased[i] {
			if !errors.Is(err, ledger.ErrPayloadErased) {
				t.Errorf("ReadPayload(%q, %d) of an erased payload = %v; want ErrPayloadErased", log, i, err)
			}
			continue
		}
		want := a.payloads[i]
		if err != nil || got.Index != i || !bytes.Equal(got.Salt, want.Salt) || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("ReadPayload(%q, %d) = {%d, %x, %q}, %v; want {%d, %x, %q}, nil", log, i, got.Index, got.Salt, got.Data, err, i, want.Salt, want.Data)
		}
	}

	a.checkProofs(t, s, sample)
}

func checkHead(t testing.TB, log string, got, want ledger.Head) {
	t.Helper()
	if got.Size != want.Size || got.Chain != want.Chain || !bytes.Equal(got.Checkpoint, want.Checkpoint) || !slices.Equal(got.Range, want.Range) {
		t.Fatalf("Head(%q) = {Size %d, %d range hashes, Chain %v, %d-byte checkpoint}; want {Size %d, %d range hashes, Chain %v, %d-byte checkpoint}",
			log, got.Size, len(got.Range), got.Chain, len(got.Checkpoint), want.Size, len(want.Range), want.Chain, len(want.Checkpoint))
	}
}

// checkTiles reads the given tiles in one call and checks each against a.
// A result may be wider than asked (tiles only grow) but must then be a
// prefix of the tile's current contents.
func checkTiles(t testing.TB, s ledger.Store, a *Appender, tiles []ledger.Tile) {
	t.Helper()
	got, err := s.ReadTiles(t.Context(), a.log, tiles)
	if err != nil {
		t.Fatalf("ReadTiles(%q, %d tiles) = %v", a.log, len(tiles), err)
	}
	if len(got) != len(tiles) {
		t.Fatalf("ReadTiles(%q, %d tiles) returned %d", a.log, len(tiles), len(got))
	}
	for i, tile := range tiles {
		cur := a.tiles[tileKey{tile.L, tile.N}]
		if len(got[i]) < tile.W*ledger.HashSize || len(got[i])%ledger.HashSize != 0 || !bytes.HasPrefix(cur, got[i]) {
			t.Fatalf("ReadTiles(%q): tile %s is %d bytes, not a %d-hash prefix of the %d hashes written", a.log, tile.Path(), len(got[i]), tile.W, len(cur)/ledger.HashSize)
		}
	}
}

func (a *Appender) openCheckpoint(t testing.TB, cp []byte) ledger.Checkpoint {
	t.Helper()
	c, _, err := ledger.OpenCheckpoint(cp, a.Origin(), note.VerifierList(a.verifier))
	if err != nil {
		t.Fatalf("OpenCheckpoint of log %q: %v", a.log, err)
	}
	return c
}

// checkProofs verifies, against the root of every checkpointed size, the
// inclusion of sampled entries and the consistency with the current size,
// with every proof hash read from the store's tiles.
func (a *Appender) checkProofs(t testing.TB, s ledger.Store, sample []uint64) {
	t.Helper()
	ctx := t.Context()
	size := a.Size()
	if size == 0 {
		return
	}
	sizes := a.sizes
	if len(sizes) > 12 {
		sizes = append(slices.Clone(sizes[:6]), sizes[len(sizes)-6:]...)
	}
	for _, sz := range sizes {
		root := a.roots[sz]
		for _, i := range append(slices.Clone(sample), sz-1) {
			if i >= sz {
				continue
			}
			p, err := ledger.InclusionProof(ctx, s, a.log, i, sz)
			if err != nil {
				t.Fatalf("InclusionProof(%q, %d, %d) from the store: %v", a.log, i, sz, err)
			}
			if err := ledger.VerifyInclusion(ledger.LeafHash(a.entries[i].Data), i, sz, p, root); err != nil {
				t.Fatalf("inclusion of %d in %d (log %q) does not verify: %v", i, sz, a.log, err)
			}
		}
		p, err := ledger.ConsistencyProof(ctx, s, a.log, sz, size)
		if err != nil {
			t.Fatalf("ConsistencyProof(%q, %d, %d) from the store: %v", a.log, sz, size, err)
		}
		if err := ledger.VerifyConsistency(sz, size, p, root, a.roots[size]); err != nil {
			t.Fatalf("consistency %d → %d (log %q) does not verify: %v", sz, size, a.log, err)
		}
	}
}

// sampleIndexes returns up to about n indexes of a log of the given size:
// the ends, both sides of every tile boundary of the first two levels that
// fits, and evenly spread ones.
func sampleIndexes(size uint64, n int) []uint64 {
	if size == 0 {
		return nil
	}
	if size <= uint64(n) {
		out := make([]uint64, size)
		for i := range out {
			out[i] = uint64(i)
		}
		return out
	}
	set := map[uint64]bool{0: true, size - 1: true}
	for _, b := range []uint64{ledger.TileWidth, 2 * ledger.TileWidth, ledger.TileWidth * ledger.TileWidth} {
		if b < size {
			set[b-1], set[b] = true, true
		}
	}
	step := size / uint64(n)
	for i := uint64(0); i < size; i += step {
		set[i] = true
	}
	out := make([]uint64, 0, len(set))
	for i := range set {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}
