package sequencer_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/sequencer"
	"aigw/ledger/signer"
	"aigw/ledger/sqlite"
	"aigw/verify"

	"golang.org/x/mod/sumdb/note"
)

const origin = "aigw.test/ledger"

func openStore(t *testing.T, path string) ledger.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newSeq(t *testing.T, store ledger.Store, s *signer.Signer, trusted ...note.Verifier) *sequencer.Sequencer {
	t.Helper()
	seq, err := sequencer.New(sequencer.Config{Store: store, Signer: s, OriginPrefix: origin, Verifiers: trusted})
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func record(t *testing.T, log string, i int, payload []byte) sequencer.Record {
	t.Helper()
	ev := &ledger.Event{ID: ledger.NewEventID(), Tenant: log, Kind: ledger.KindRequest, Time: time.Now(),
		Attrs: map[string]any{"n": i, "model": "test-model"}}
	r := sequencer.Record{}
	if payload != nil {
		ev.PayloadSHA256, r.Salt = ledger.Commit(payload, nil)
		r.Payload = payload
	}
	e, err := ev.Entry()
	if err != nil {
		t.Fatal(err)
	}
	r.Entry = e
	return r
}

func records(t *testing.T, log string, n int) []sequencer.Record {
	out := make([]sequencer.Record, n)
	for i := range out {
		out[i] = record(t, log, i, nil)
	}
	return out
}

// check verifies the whole log with the auditor's code.
func check(t *testing.T, store ledger.Store, s *signer.Signer, log string, wantSize uint64, trusted ...note.Verifier) {
	t.Helper()
	vs := note.VerifierList(append(trusted, s.Verifier())...)
	res, err := verify.Log(context.Background(), verify.StoreSource(store), log, verify.Options{Verifiers: vs, Origin: ledger.Origin(origin, log)})
	if err != nil {
		t.Fatalf("verify log %q: %v", log, err)
	}
	if res.Size != wantSize {
		t.Fatalf("log %q has size %d, want %d", log, res.Size, wantSize)
	}
}

func TestAppendRestoreContinue(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	store := openStore(t, path)
	key, _, _ := signer.Generate(origin)
	seq := newSeq(t, store, key)
	ctx := context.Background()
	total := uint64(0)
	for _, n := range []int{1, 254, 1, 300, 7} { // crosses tile boundaries
		res, err := seq.Append(ctx, "acme", records(t, "acme", n))
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Duplicate || r.Index != total+uint64(i) {
				t.Fatalf("result %d = %+v, want index %d", i, r, total+uint64(i))
			}
		}
		total += uint64(n)
		check(t, store, key, "acme", total)
	}
	// A new sequencer (a restart) restores from the store and continues.
	seq2 := newSeq(t, store, key)
	if _, err := seq2.Append(ctx, "acme", records(t, "acme", 300)); err != nil {
		t.Fatal(err)
	}
	check(t, store, key, "acme", total+300)
}

func TestDuplicatesSkipped(t *testing.T) {
	t.Parallel()
	store := openStore(t, filepath.Join(t.TempDir(), "ledger.db"))
	key, _, _ := signer.Generate(origin)
	seq := newSeq(t, store, key)
	ctx := context.Background()
	first := records(t, "acme", 10)
	if _, err := seq.Append(ctx, "acme", first); err != nil {
		t.Fatal(err)
	}
	for _, redelivered := range []bool{true, false} {
		t.Run(fmt.Sprintf("Redelivered=%v", redelivered), func(t *testing.T) {
			batch := append(records(t, "acme", 2), first[3], first[7])
			for i := range batch {
				batch[i].Redelivered = redelivered
			}
			batch = append(batch, batch[0]) // a repeat within the batch
			res, err := seq.Append(ctx, "acme", batch)
			if err != nil {
				t.Fatal(err)
			}
			if res[2] != (sequencer.Result{Index: 3, Duplicate: true}) || res[3] != (sequencer.Result{Index: 7, Duplicate: true}) {
				t.Errorf("redelivered results = %+v %+v, want original indexes 3 and 7", res[2], res[3])
			}
			if !res[4].Duplicate || res[4].Index != res[0].Index {
				t.Errorf("repeat within batch = %+v, want duplicate of %d", res[4], res[0].Index)
			}
		})
	}
	check(t, store, key, "acme", 14)
}

func TestInvalidRecordsRefused(t *testing.T) {
	t.Parallel()
	store := openStore(t, filepath.Join(t.TempDir(), "ledger.db"))
	key, _, _ := signer.Generate(origin)
	seq := newSeq(t, store, key)
	ctx := context.Background()
	good := record(t, "acme", 0, []byte("prompt"))
	mismatch := good
	mismatch.Payload = []byte("another prompt")
	for name, r := range map[string]sequencer.Record{
		"NotJSON":          {Entry: []byte("hello")},
		"NonCanonical":     {Entry: append([]byte(" "), good.Entry...)},
		"OtherTenant":      record(t, "other", 0, nil),
		"PayloadMismatch":  mismatch,
		"PayloadNoCommit":  {Entry: record(t, "acme", 0, nil).Entry, Payload: []byte("x"), Salt: make([]byte, 32)},
		"PayloadShortSalt": {Entry: good.Entry, Payload: good.Payload, Salt: good.Salt[:8]},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := seq.Append(ctx, "acme", []sequencer.Record{record(t, "acme", 1, nil), r})
			if !errors.Is(err, ledger.ErrInvalidEvent) {
				t.Fatalf("Append = %v, want an invalid-event error", err)
			}
		})
	}
	h, err := store.Head(ctx, "acme")
	if err != nil || h.Size != 0 {
		t.Fatalf("after refused batches head = %d, %v; want 0", h.Size, err)
	}
	if _, err := seq.Append(ctx, "acme", []sequencer.Record{good}); err != nil {
		t.Fatal(err)
	}
	p, err := store.ReadPayload(ctx, "acme", 0)
	if err != nil || string(p.Data) != "prompt" {
		t.Fatalf("payload = %q, %v", p.Data, err)
	}
	check(t, store, key, "acme", 1)
}

func TestWrongKeyRefusedRotationTrusted(t *testing.T) {
	t.Parallel()
	store := openStore(t, filepath.Join(t.TempDir(), "ledger.db"))
	old, _, _ := signer.Generate(origin)
	ctx := context.Background()
	if _, err := newSeq(t, store, old).Append(ctx, "acme", records(t, "acme", 5)); err != nil {
		t.Fatal(err)
	}
	next, _, _ := signer.Generate(origin)
	// A sequencer with another key, not told to trust the old one, refuses
	// to extend a log the old key signed (sunlight TestReloadWrongKey).
	if _, err := newSeq(t, store, next).Append(ctx, "acme", records(t, "acme", 1)); err == nil {
		t.Fatal("appended to a log signed by an untrusted key")
	}
	// With the old key trusted (a rotation), it extends the log and signs with the new key.
	if _, err := newSeq(t, store, next, old.Verifier()).Append(ctx, "acme", records(t, "acme", 1)); err != nil {
		t.Fatal(err)
	}
	check(t, store, next, "acme", 6, old.Verifier())
	// A different origin prefix is refused too.
	other, err := sequencer.New(sequencer.Config{Store: store, Signer: next, OriginPrefix: "elsewhere/ledger", Verifiers: []note.Verifier{old.Verifier()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Append(ctx, "acme", records(t, "acme", 1)); err == nil {
		t.Fatal("appended to a log under another origin")
	}
}

func TestConcurrentLogs(t *testing.T) {
	t.Parallel()
	store := openStore(t, filepath.Join(t.TempDir(), "ledger.db"))
	key, _, _ := signer.Generate(origin)
	seq := newSeq(t, store, key)
	ctx := context.Background()
	var wg sync.WaitGroup
	logs := []string{"a", "b", "c"}
	for _, log := range logs {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					if _, err := seq.Append(ctx, log, records(t, log, 20)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for _, log := range logs {
		check(t, store, key, log, 200)
	}
}

func BenchmarkAppend500(b *testing.B) {
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(b.TempDir(), "ledger.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	key, _, _ := signer.Generate(origin)
	seq, _ := sequencer.New(sequencer.Config{Store: store, Signer: key, OriginPrefix: origin})
	pad := make([]byte, 700)
	for i := range pad {
		pad[i] = 'a' + byte(i%26)
	}
	mk := func() []sequencer.Record {
		recs := make([]sequencer.Record, 500)
		for i := range recs {
			ev := &ledger.Event{ID: ledger.NewEventID(), Tenant: "acme", Kind: ledger.KindResponse, Time: time.Now(),
				Attrs: map[string]any{"n": i, "pad": string(pad)}}
			e, err := ev.Entry()
			if err != nil {
				b.Fatal(err)
			}
			recs[i].Entry = e
		}
		return recs
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		b.StopTimer()
		recs := mk()
		b.StartTimer()
		if _, err := seq.Append(context.Background(), "acme", recs); err != nil {
			b.Fatal(err)
		}
		n += len(recs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}
