package postgres

import (
	"bytes"
	"crypto/rand"
	"testing"

	"aigw/ledger"
	"aigw/ledger/storetest"

	"golang.org/x/mod/sumdb/note"
)

// fastLog builds batches of realistic entries of a given size quickly, for
// benchmarks and the storage test: it encodes a few dozen events once
// (storetest.SizedEvent) and then only splices a fresh UUIDv7 into a
// template per entry, so building a batch costs little beside the hashing a
// sequencer does anyway. Its batches carry no payloads.
type fastLog struct {
	name      string
	templates [][]byte
	idOff     []int
	tb        *ledger.TreeBuilder
	chain     ledger.Hash
	signer    note.Signer
	verifier  note.Verifier
	n         int
}

func newFastLog(t testing.TB, name string, entrySize int) *fastLog {
	t.Helper()
	l := &fastLog{name: name}
	for range 64 {
		ev := storetest.SizedEvent(t, name, entrySize)
		e, err := ev.Entry()
		if err != nil {
			t.Fatal(err)
		}
		l.templates = append(l.templates, e)
		l.idOff = append(l.idOff, bytes.Index(e, []byte(`"id":"`+ev.ID))+len(`"id":"`))
	}
	var err error
	if l.tb, err = ledger.NewTreeBuilder(0, nil, nil); err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "bench-"+name)
	if err != nil {
		t.Fatal(err)
	}
	if l.verifier, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	if l.signer, err = note.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	return l
}

// next builds the next batch of n entries and advances the log past it.
func (l *fastLog) next(t testing.TB, n int) *ledger.Batch {
	start := l.tb.Size()
	b := &ledger.Batch{Log: l.name, Start: start, Entries: make([]ledger.StoredEntry, n)}
	for i := range b.Entries {
		k := l.n % len(l.templates)
		l.n++
		id := ledger.NewEventID()
		data := bytes.Clone(l.templates[k])
		copy(data[l.idOff[k]:], id)
		leaf := ledger.LeafHash(data)
		l.chain = ledger.ChainHash(l.chain, leaf)
		l.tb.Append(leaf)
		b.Entries[i] = ledger.StoredEntry{Index: start + uint64(i), EventID: id, Data: data, Chain: l.chain}
	}
	b.Tiles = l.tb.Flush()
	size := l.tb.Size()
	cp, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: ledger.Origin("bench.aigw.invalid", l.name), Size: size, Root: l.tb.Root()}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	b.Head = ledger.Head{Size: size, Range: l.tb.Range(), Chain: l.chain, Checkpoint: cp}
	return b
}

// fill appends total entries to s in batches of batch.
func (l *fastLog) fill(t testing.TB, s ledger.Store, total, batch int) {
	t.Helper()
	for total > 0 {
		n := min(batch, total)
		b := l.next(t, n)
		if err := s.AppendBatch(t.Context(), b); err != nil {
			t.Fatalf("AppendBatch(%q, start %d) = %v", b.Log, b.Start, err)
		}
		total -= n
	}
}

func TestFastLog(t *testing.T) {
	l := newFastLog(t, "fast", 1024)
	b := l.next(t, 300)
	for _, e := range b.Entries {
		ev, err := ledger.ParseEntry(e.Data)
		if err != nil {
			t.Fatalf("entry %d: %v", e.Index, err)
		}
		if ev.ID != e.EventID || len(e.Data) != 1024 {
			t.Fatalf("entry %d has id %s and %d bytes; want %s and 1024", e.Index, ev.ID, len(e.Data), e.EventID)
		}
	}
}
