package storetest

import (
	"bytes"
	"testing"

	"aigw/ledger"

	"golang.org/x/mod/sumdb/note"
)

// TestAppender checks the batches an Appender builds against the ledger
// formats, independently of any store.
func TestAppender(t *testing.T) {
	a := NewAppender(t, "tenant")
	var chain ledger.Hash
	for _, n := range []int{1, 254, 1, 300} {
		start := a.Size()
		b := a.NextN(t, n)
		if b.Start != start || uint64(len(b.Entries)) != uint64(n) || b.Head.Size != start+uint64(n) {
			t.Fatalf("batch of %d at %d: start %d, %d entries, head size %d", n, start, b.Start, len(b.Entries), b.Head.Size)
		}
		for i, e := range b.Entries {
			ev, err := ledger.ParseEntry(e.Data)
			if err != nil || ev.ID != e.EventID || ev.Tenant != a.Log() || e.Index != start+uint64(i) {
				t.Fatalf("entry %d: %v, %v", e.Index, ev, err)
			}
			chain = ledger.ChainHash(chain, ledger.LeafHash(e.Data))
			if e.Chain != chain {
				t.Fatalf("entry %d: chain %v, want %v", e.Index, e.Chain, chain)
			}
		}
		for _, p := range b.Payloads {
			ev, _ := ledger.ParseEntry(b.Entries[p.Index-start].Data)
			if c, _ := ledger.Commit(p.Data, p.Salt); c != ev.PayloadSHA256 {
				t.Errorf("payload %d does not open the entry's commitment", p.Index)
			}
		}
		c, _, err := ledger.OpenCheckpoint(b.Head.Checkpoint, a.Origin(), note.VerifierList(a.Verifier()))
		if err != nil || c.Size != b.Head.Size || c.Root != a.Root(t, c.Size) {
			t.Fatalf("checkpoint of batch at %d: %+v, %v", start, c, err)
		}
	}
	// A fork builds the same tree, and does not move the original.
	f := a.Fork(t)
	size := a.Size()
	ev := TinyEvent(a.Log())
	fb := f.Next(t, Items(ev)...)
	ab := a.Next(t, Items(ev)...)
	if a.Size() != size+1 || f.Size() != size+1 || !bytes.Equal(fb.Head.Checkpoint[:bytes.LastIndex(fb.Head.Checkpoint, []byte("\n\n"))], ab.Head.Checkpoint[:bytes.LastIndex(ab.Head.Checkpoint, []byte("\n\n"))]) {
		t.Fatalf("fork and original differ after the same event")
	}
	// The batch shares no memory with the Appender.
	fb.Entries[0].Data[0] ^= 0xff
	fb.Tiles[0].Hashes[0] ^= 0xff
	if bytes.Equal(f.Entry(size).Data, fb.Entries[0].Data) || bytes.Equal(f.Tile(0, size/ledger.TileWidth), fb.Tiles[0].Hashes) {
		t.Fatalf("altering a batch altered the Appender")
	}
}

func TestSizedEvent(t *testing.T) {
	for _, size := range []int{900, 1024, 4096, ledger.MaxEntrySize} {
		ev := SizedEvent(t, "tenant", size)
		e, err := ev.Entry()
		if err != nil || len(e) != size {
			t.Errorf("SizedEvent(%d) has a %d-byte entry, %v", size, len(e), err)
		}
	}
}

func TestSampleIndexes(t *testing.T) {
	for _, size := range []uint64{1, 40, 41, 257, 65537} {
		s := sampleIndexes(size, 40)
		if len(s) == 0 || s[0] != 0 || s[len(s)-1] != size-1 {
			t.Errorf("sampleIndexes(%d) = %v; want it to start at 0 and end at %d", size, s, size-1)
		}
		for i := 1; i < len(s); i++ {
			if s[i] <= s[i-1] || s[i] >= size {
				t.Fatalf("sampleIndexes(%d) = %v; not increasing within the log", size, s)
			}
		}
	}
}
