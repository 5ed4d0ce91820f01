package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"aigw/ledger"

	"golang.org/x/mod/sumdb/note"
)

// appendErr appends b and fails t unless the error matches want
// (errors.Is; a nil want accepts any non-nil error).
func appendErr(t *testing.T, s ledger.Store, b *ledger.Batch, want error, what string) {
	t.Helper()
	err := s.AppendBatch(t.Context(), b)
	switch {
	case err == nil:
		t.Fatalf("AppendBatch(%s) = nil; want an error", what)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("AppendBatch(%s) = %v; want %v", what, err, want)
	}
}

func wantLogs(t *testing.T, s ledger.Store, want ...string) {
	t.Helper()
	got, err := s.Logs(t.Context())
	if err != nil {
		t.Fatalf("Logs() = %v", err)
	}
	if len(got) != len(want) || len(want) > 0 && !slices.Equal(got, want) {
		t.Fatalf("Logs() = %q; want %q", got, want)
	}
}

func tinyItems(log string, n int) []Item {
	items := make([]Item, n)
	for i := range items {
		items[i].Event = TinyEvent(log)
	}
	return items
}

func testEmptyHead(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	const log = "never-written"
	h, err := s.Head(ctx, log)
	if err != nil || h.Size != 0 || len(h.Range) != 0 || h.Chain != (ledger.Hash{}) || len(h.Checkpoint) != 0 {
		t.Errorf("Head(%q) = %+v, %v; want the zero Head, nil", log, h, err)
	}
	wantLogs(t, s)
	if es, err := s.ReadEntries(ctx, log, 0, 10); err != nil || len(es) != 0 {
		t.Errorf("ReadEntries(%q, 0, 10) = %d entries, %v; want 0, nil", log, len(es), err)
	}
	if _, err := s.ReadTiles(ctx, log, []ledger.Tile{{L: 0, N: 0, W: 1}}); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("ReadTiles(%q, tile/0/000.p/1) = %v; want ErrNotFound", log, err)
	}
	if ts, err := s.ReadTiles(ctx, log, nil); err != nil || len(ts) != 0 {
		t.Errorf("ReadTiles(%q, no tiles) = %d tiles, %v; want 0, nil", log, len(ts), err)
	}
	if _, err := s.LookupLeaf(ctx, log, ledger.LeafHash([]byte("x"))); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("LookupLeaf(%q) = %v; want ErrNotFound", log, err)
	}
	if m, err := s.LookupEvents(ctx, log, []string{ledger.NewEventID()}); err != nil || len(m) != 0 {
		t.Errorf("LookupEvents(%q) = %v, %v; want empty, nil", log, m, err)
	}
	if cps, err := s.Checkpoints(ctx, log, 0, 100); err != nil || len(cps) != 0 {
		t.Errorf("Checkpoints(%q, 0, 100) = %d, %v; want 0, nil", log, len(cps), err)
	}
	if _, err := s.ReadPayload(ctx, log, 0); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("ReadPayload(%q, 0) = %v; want ErrNotFound", log, err)
	}
	if err := s.ErasePayload(ctx, log, 0); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("ErasePayload(%q, 0) = %v; want ErrNotFound", log, err)
	}
}

func testAppendThenRead(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	a := NewAppender(t, "tenant-a")
	a.AppendN(t, s, 1)
	a.Check(t, s)
	a.AppendN(t, s, 9)
	a.AppendN(t, s, 30)
	a.Check(t, s)
	wantLogs(t, s, "tenant-a")

	// What the store returns is what auditors check: entries parse, their ids
	// are the stored ids, and payloads open their commitments.
	entries, err := s.ReadEntries(ctx, a.Log(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		ev, err := ledger.ParseEntry(e.Data)
		if err != nil {
			t.Fatalf("ParseEntry(entry %d) = %v", e.Index, err)
		}
		if ev.ID != e.EventID {
			t.Errorf("entry %d has id %s, stored as %s", e.Index, ev.ID, e.EventID)
		}
		p, err := s.ReadPayload(ctx, a.Log(), e.Index)
		if ev.PayloadSHA256 == "" {
			if !errors.Is(err, ledger.ErrNotFound) {
				t.Errorf("ReadPayload(%d) of an entry without payload = %v; want ErrNotFound", e.Index, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ReadPayload(%d) = %v", e.Index, err)
		}
		if c, _ := ledger.Commit(p.Data, p.Salt); c != ev.PayloadSHA256 {
			t.Errorf("payload %d commits to %s; entry says %s", e.Index, c, ev.PayloadSHA256)
		}
	}
}

func testAcrossTileBoundaries(t *testing.T, e env) {
	for _, n := range []int{1, 255, 256, 257, 511, 512, 513} {
		t.Run(fmt.Sprintf("Batch=%d", n), func(t *testing.T) {
			t.Parallel()
			s := e.newStore(t)
			a := NewAppender(t, "tiles")
			a.Append(t, s, tinyItems(a.Log(), n)...)
			a.Check(t, s)
		})
	}
	t.Run("Growing", func(t *testing.T) {
		t.Parallel()
		s := e.newStore(t)
		a := NewAppender(t, "tiles")
		// Sizes 1, 255, 256, 257, 511, 512, 513, 768, 1000.
		for _, n := range []int{1, 254, 1, 1, 254, 1, 1, 255, 232} {
			a.Append(t, s, tinyItems(a.Log(), n)...)
			a.Check(t, s)
		}
	})
	t.Run("Level2", func(t *testing.T) {
		t.Parallel()
		s := e.newStore(t)
		a := NewAppender(t, "tiles")
		const full = ledger.TileWidth * ledger.TileWidth // 65,536: the first level-2 hash
		// Up to 65,535 (every level-1 hash but the last), then across.
		// Check verifies consistency from each of these sizes to the last.
		for a.Size() < full-1 {
			a.Append(t, s, tinyItems(a.Log(), min(8191, full-1-int(a.Size())))...)
		}
		a.Append(t, s, tinyItems(a.Log(), 2)...) // 65,537
		if !slices.Contains(ledger.TilesFor(0, a.Size()), ledger.Tile{L: 2, N: 0, W: 1}) {
			t.Fatalf("TilesFor(0, %d) has no level-2 tile", a.Size())
		}
		a.Check(t, s)
	})
}

func testConflict(t *testing.T, s ledger.Store) {
	a := NewAppender(t, "conflict")

	// A first batch that does not start at 0 creates no log.
	f := a.Fork(t)
	f.NextN(t, 2)
	appendErr(t, s, f.NextN(t, 2), ledger.ErrConflict, "start 2 on an empty log")
	wantLogs(t, s)

	old := a.Fork(t)
	first := a.AppendN(t, s, 5)
	appendErr(t, s, old.NextN(t, 3), ledger.ErrConflict, "start 0 on a log of 5")
	appendErr(t, s, first, ledger.ErrConflict, "the batch already appended (a lost ack)")
	f = a.Fork(t)
	f.NextN(t, 2)
	appendErr(t, s, f.NextN(t, 2), ledger.ErrConflict, "start 7 on a log of 5")
	a.Check(t, s)

	// The log takes the right batch afterwards.
	a.AppendN(t, s, 3)
	a.Check(t, s)
	wantLogs(t, s, "conflict")
}

func testDuplicateEvent(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	a := NewAppender(t, "dup")
	first := a.AppendN(t, s, 4)
	orig, err := ledger.ParseEntry(first.Entries[1].Data)
	if err != nil {
		t.Fatal(err)
	}

	// A redelivery: the same event again, after a new one.
	fresh := Event(a.Log())
	appendErr(t, s, a.Fork(t).Next(t, Items(fresh, *orig)...), ledger.ErrDuplicate, "a redelivered event")
	if m, err := s.LookupEvents(ctx, a.Log(), []string{fresh.ID}); err != nil || len(m) != 0 {
		t.Errorf("LookupEvents(the new event of a refused batch) = %v, %v; want empty, nil", m, err)
	}
	// The same id with other content.
	clash := Event(a.Log())
	clash.ID = first.Entries[2].EventID
	appendErr(t, s, a.Fork(t).Next(t, Items(Event(a.Log()), clash)...), ledger.ErrDuplicate, "a reused event id")
	// The same id twice in one batch.
	twice := Event(a.Log())
	appendErr(t, s, a.Fork(t).Next(t, Items(twice, Event(a.Log()), twice)...), ledger.ErrDuplicate, "an event twice in one batch")
	a.Check(t, s)

	// Event ids are unique per log: another log may hold the same id.
	b := NewAppender(t, "dup-other")
	other := *orig
	other.Tenant = b.Log()
	b.Append(t, s, Items(other)...)
	b.Check(t, s)

	// A duplicate in the first batch of a log creates no log.
	c := NewAppender(t, "dup-in-first")
	ev := Event(c.Log())
	appendErr(t, s, c.Fork(t).Next(t, Items(ev, Event(c.Log()), ev)...), ledger.ErrDuplicate, "an event twice in a first batch")
	if h, err := s.Head(ctx, c.Log()); err != nil || h.Size != 0 {
		t.Errorf("Head(%q) after a refused first batch = size %d, %v; want 0, nil", c.Log(), h.Size, err)
	}
	wantLogs(t, s, "dup", "dup-other")

	a.AppendN(t, s, 2)
	a.Check(t, s)
}

func testTilesOnlyGrow(t *testing.T, s ledger.Store) {
	a := NewAppender(t, "grow")
	a.AppendN(t, s, 3)
	for _, tc := range []struct {
		name   string
		mutate func(td *ledger.TileData)
	}{
		{"ChangedHash", func(td *ledger.TileData) { td.Hashes[0] ^= 0xff }},
		{"ChangedLastStoredHash", func(td *ledger.TileData) { td.Hashes[3*ledger.HashSize-1] ^= 1 }},
		{"Shrunk", func(td *ledger.TileData) { td.W = 2; td.Hashes = td.Hashes[:2*ledger.HashSize] }},
	} {
		b := a.Fork(t).NextN(t, 2)
		i := slices.IndexFunc(b.Tiles, func(td ledger.TileData) bool { return td.L == 0 && td.N == 0 })
		tc.mutate(&b.Tiles[i])
		appendErr(t, s, b, nil, "a batch rewriting tile 0/0: "+tc.name)
		a.Check(t, s)
	}
	a.AppendN(t, s, 2)
	a.Check(t, s)
}

func testReadTilesPrefix(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	a := NewAppender(t, "prefix")
	a.Append(t, s, tinyItems(a.Log(), 10)...)
	read := func(tiles ...ledger.Tile) [][]byte {
		t.Helper()
		got, err := s.ReadTiles(ctx, a.Log(), tiles)
		if err != nil {
			t.Fatalf("ReadTiles(%v) = %v", tiles, err)
		}
		if len(got) != len(tiles) {
			t.Fatalf("ReadTiles(%v) returned %d tiles", tiles, len(got))
		}
		for i, tile := range tiles {
			cur := a.Tile(tile.L, tile.N)
			if len(got[i]) < tile.W*ledger.HashSize || !bytes.HasPrefix(cur, got[i]) {
				t.Fatalf("ReadTiles: %s returned %d bytes, not a prefix of the %d-byte tile of at least %d hashes", tile.Path(), len(got[i]), len(cur), tile.W)
			}
		}
		return got
	}
	read(ledger.Tile{L: 0, N: 0, W: 4})
	read(ledger.Tile{L: 0, N: 0, W: 10})
	for _, tiles := range [][]ledger.Tile{
		{{L: 0, N: 0, W: 11}},
		{{L: 0, N: 0, W: ledger.TileWidth}},
		{{L: 0, N: 1, W: 1}},
		{{L: 1, N: 0, W: 1}},
		{{L: 0, N: 0, W: 4}, {L: 0, N: 1, W: 1}},
	} {
		if _, err := s.ReadTiles(ctx, a.Log(), tiles); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("ReadTiles(%v) of a log of 10 = %v; want ErrNotFound", tiles, err)
		}
	}

	// Order and repeats are kept, and old widths stay readable as tiles grow.
	a.Append(t, s, tinyItems(a.Log(), 290)...)
	read(ledger.Tile{L: 1, N: 0, W: 1}, ledger.Tile{L: 0, N: 1, W: 44}, ledger.Tile{L: 0, N: 0, W: 256},
		ledger.Tile{L: 0, N: 0, W: 10}, ledger.Tile{L: 1, N: 0, W: 1}, ledger.Tile{L: 0, N: 1, W: 3})
	if _, err := s.ReadTiles(ctx, a.Log(), []ledger.Tile{{L: 0, N: 1, W: 45}}); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("ReadTiles(tile/0/001.p/45) of a log of 300 = %v; want ErrNotFound", err)
	}
	// Many tiles in one call.
	var many []ledger.Tile
	for range 600 {
		many = append(many, ledger.Tile{L: 0, N: 1, W: 44}, ledger.Tile{L: 0, N: 0, W: 256})
	}
	read(many...)
}

func testLookupEvents(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	a, b := NewAppender(t, "look-a"), NewAppender(t, "look-b")
	a.Append(t, s, tinyItems(a.Log(), 100)...)
	b.Append(t, s, tinyItems(b.Log(), 50)...)
	a.Append(t, s, tinyItems(a.Log(), 200)...)

	var ids []string
	for _, e := range a.Entries() {
		ids = append(ids, e.EventID)
	}
	for _, e := range b.Entries() {
		ids = append(ids, e.EventID)
	}
	for range 2000 {
		ids = append(ids, ledger.NewEventID())
	}
	ids = append(ids, "not-a-uuid", "", a.Entry(7).EventID, a.Entry(299).EventID)
	got, err := s.LookupEvents(ctx, a.Log(), ids)
	if err != nil {
		t.Fatalf("LookupEvents(%q, %d ids) = %v", a.Log(), len(ids), err)
	}
	if len(got) != 300 {
		t.Errorf("LookupEvents(%q, %d ids, 300 of the log) found %d", a.Log(), len(ids), len(got))
	}
	for _, e := range a.Entries() {
		if i, ok := got[e.EventID]; !ok || i != e.Index {
			t.Errorf("LookupEvents(%q)[%s] = %d, %v; want %d, true", a.Log(), e.EventID, i, ok, e.Index)
		}
	}
	if m, err := s.LookupEvents(ctx, a.Log(), nil); err != nil || len(m) != 0 {
		t.Errorf("LookupEvents(%q, no ids) = %v, %v; want empty, nil", a.Log(), m, err)
	}
	if m, err := s.LookupEvents(ctx, b.Log(), []string{a.Entry(0).EventID}); err != nil || len(m) != 0 {
		t.Errorf("LookupEvents(%q, an id of %q) = %v, %v; want empty, nil", b.Log(), a.Log(), m, err)
	}
}

func testLookupLeaf(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	a, b := NewAppender(t, "leaf-a"), NewAppender(t, "leaf-b")
	a.AppendN(t, s, 20)
	b.AppendN(t, s, 5)
	a.AppendN(t, s, 280)
	for _, i := range []uint64{0, 1, 19, 20, 255, 256, 299} {
		leaf := ledger.LeafHash(a.Entry(i).Data)
		if got, err := s.LookupLeaf(ctx, a.Log(), leaf); err != nil || got != i {
			t.Errorf("LookupLeaf(%q, leaf of %d) = %d, %v; want %d, nil", a.Log(), i, got, err, i)
		}
	}
	near := ledger.LeafHash(a.Entry(5).Data)
	near[31] ^= 1 // same prefix, another hash
	farther := ledger.LeafHash(a.Entry(5).Data)
	farther[8] ^= 1
	for name, leaf := range map[string]ledger.Hash{
		"an unknown hash":                     ledger.LeafHash([]byte("no such entry")),
		"a hash of another log":               ledger.LeafHash(b.Entry(0).Data),
		"a hash differing in its last byte":   near,
		"a hash differing after its 8th byte": farther,
		"the chain hash of an entry":          a.Entry(5).Chain,
	} {
		if got, err := s.LookupLeaf(ctx, a.Log(), leaf); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("LookupLeaf(%q, %s) = %d, %v; want ErrNotFound", a.Log(), name, got, err)
		}
	}
}

func testLogsIsolated(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	apps := []*Appender{NewAppender(t, "zeta"), NewAppender(t, "alpha"), NewAppender(t, "m-1"), NewAppender(t, "alpha-2")}
	for round := range 3 {
		for i, a := range apps {
			a.AppendN(t, s, 1+round*7+i*3)
		}
	}
	for _, a := range apps {
		a.Check(t, s)
	}
	wantLogs(t, s, "alpha", "alpha-2", "m-1", "zeta")
	// Nothing of one log is found through another.
	z, al := apps[0], apps[1]
	if m, err := s.LookupEvents(ctx, al.Log(), []string{z.Entry(0).EventID}); err != nil || len(m) != 0 {
		t.Errorf("LookupEvents(%q, an id of %q) = %v, %v; want empty", al.Log(), z.Log(), m, err)
	}
	if _, err := s.LookupLeaf(ctx, al.Log(), ledger.LeafHash(z.Entry(0).Data)); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("LookupLeaf(%q, a leaf of %q) = %v; want ErrNotFound", al.Log(), z.Log(), err)
	}
	if _, err := s.ReadTiles(ctx, "alpha-", []ledger.Tile{{W: 1}}); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("ReadTiles(a prefix of a log name) = %v; want ErrNotFound", err)
	}
}

func testLock(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	lock := func(name string) func() {
		t.Helper()
		release, err := s.Lock(ctx, name)
		if err != nil {
			t.Fatalf("Lock(%q) = %v; want nil", name, err)
		}
		return release
	}
	locked := func(name string) {
		t.Helper()
		if release, err := s.Lock(ctx, name); !errors.Is(err, ledger.ErrLocked) {
			if err == nil {
				release()
			}
			t.Fatalf("Lock(%q) while held = %v; want ErrLocked", name, err)
		}
	}
	r1 := lock("tenant-a")
	locked("tenant-a")
	r2 := lock("tenant-b")
	// Names that a careless file or key naming would confuse are independent.
	names := []string{"part/1", "part_1", "part.1", "PART-1", "part-1", "..", "tenant-a/../tenant-b", "ünïcode", strings.Repeat("long", 100)}
	var rs []func()
	for _, n := range names {
		rs = append(rs, lock(n))
	}
	for _, n := range names {
		locked(n)
	}
	for _, r := range rs {
		r()
	}

	r1()
	r1() // a second release is harmless
	r1again := lock("tenant-a")
	r1() // a stale release does not free the new holder
	locked("tenant-a")
	r1again()
	r2()

	// Racing lockers: exactly one wins.
	var wg sync.WaitGroup
	results := make(chan error, 8)
	releases := make(chan func(), 8)
	start := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			<-start
			release, err := s.Lock(ctx, "race")
			if err == nil {
				releases <- release
			}
			results <- err
		})
	}
	close(start)
	wg.Wait()
	close(results)
	close(releases)
	won := 0
	for err := range results {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ledger.ErrLocked):
			t.Errorf("racing Lock = %v; want nil or ErrLocked", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of 8 racing Lock calls won; want 1", won)
	}
	for r := range releases {
		r()
	}
	lock("race")()
}

func testPayloadErasure(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	a := NewAppender(t, "erase")
	secret := []byte(`{"messages":[{"role":"user","content":"my card is 4111 1111 1111 1111"}]}`)
	items := []Item{
		{Event: Event(a.Log()), Payload: secret},
		{Event: Event(a.Log()), Payload: []byte("completion 1")},
		{Event: Event(a.Log())},
		{Event: Event(a.Log()), Payload: []byte("completion 3")},
		{Event: Event(a.Log()), Payload: []byte{}}, // an empty payload is a payload
	}
	a.Append(t, s, items...)
	a.AppendN(t, s, 3)
	a.Check(t, s)

	for _, i := range []uint64{0, 4} {
		if err := s.ErasePayload(ctx, a.Log(), i); err != nil {
			t.Fatalf("ErasePayload(%d) = %v", i, err)
		}
		a.MarkErased(i)
		if _, err := s.ReadPayload(ctx, a.Log(), i); !errors.Is(err, ledger.ErrPayloadErased) {
			t.Errorf("ReadPayload(%d) after erasure = %v; want ErrPayloadErased", i, err)
		}
	}
	if err := s.ErasePayload(ctx, a.Log(), 0); err != nil {
		t.Errorf("ErasePayload(0) again = %v; want nil", err)
	}
	for _, i := range []uint64{2, 5, 7, 8, 1000} { // no payload, or no entry
		if err := s.ErasePayload(ctx, a.Log(), i); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("ErasePayload(%d) = %v; want ErrNotFound", i, err)
		}
		if _, err := s.ReadPayload(ctx, a.Log(), i); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("ReadPayload(%d) = %v; want ErrNotFound", i, err)
		}
	}
	if err := s.ErasePayload(ctx, "erase-other", 1); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("ErasePayload of another log = %v; want ErrNotFound", err)
	}
	// Entries, tiles, checkpoints and proofs are unchanged, other payloads kept.
	a.Check(t, s)
	a.AppendN(t, s, 4)
	a.Check(t, s)
}

func testLargeEntry(t *testing.T, s ledger.Store) {
	a := NewAppender(t, "large")
	big := make([]byte, 1<<20) // payloads are not limited by MaxEntrySize
	rand.Read(big)
	a.Append(t, s,
		Item{Event: SizedEvent(t, a.Log(), ledger.MaxEntrySize)},
		Item{Event: TinyEvent(a.Log()), Payload: big},
		Item{Event: SizedEvent(t, a.Log(), ledger.MaxEntrySize)},
	)
	if n := len(a.Entry(0).Data); n != ledger.MaxEntrySize {
		t.Fatalf("entry 0 is %d bytes; want %d", n, ledger.MaxEntrySize)
	}
	a.Check(t, s)
}

func testReadEntriesStopsAtEnd(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	a := NewAppender(t, "ends")
	a.AppendN(t, s, 4)
	a.AppendN(t, s, 6)
	for _, tc := range []struct {
		start uint64
		n     int
		want  int
	}{
		{0, 100, 10}, {0, 10, 10}, {3, 4, 4}, {7, 100, 3}, {9, 1, 1},
		{10, 5, 0}, {11, 5, 0}, {0, 0, 0}, {1 << 62, 5, 0},
	} {
		got, err := s.ReadEntries(ctx, a.Log(), tc.start, tc.n)
		if err != nil || len(got) != tc.want {
			t.Errorf("ReadEntries(%d, %d) = %d entries, %v; want %d, nil", tc.start, tc.n, len(got), err, tc.want)
			continue
		}
		for k, e := range got {
			want := a.Entry(tc.start + uint64(k))
			if e.Index != want.Index || e.EventID != want.EventID || !bytes.Equal(e.Data, want.Data) || e.Chain != want.Chain {
				t.Errorf("ReadEntries(%d, %d)[%d] is entry %d; want %d", tc.start, tc.n, k, e.Index, want.Index)
			}
		}
	}
	if got, err := s.ReadEntries(ctx, "ends-other", 0, 5); err != nil || len(got) != 0 {
		t.Errorf("ReadEntries of an unknown log = %d, %v; want 0, nil", len(got), err)
	}
}

func testCheckpointsRange(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	a := NewAppender(t, "cps")
	for _, n := range []int{2, 3, 4, 1} { // sizes 2, 5, 9, 10
		a.AppendN(t, s, n)
	}
	cp := a.Checkpoints()
	for _, tc := range []struct {
		from, to uint64
		want     [][]byte
	}{
		{0, 100, cp}, {0, 10, cp}, {2, 10, cp}, {5, 9, cp[1:3]}, {3, 8, cp[1:2]}, {6, 8, nil},
		{9, 9, cp[2:3]}, {10, 2, nil}, {11, 20, nil}, {0, 0, nil}, {0, 1<<64 - 1, cp},
	} {
		got, err := s.Checkpoints(ctx, a.Log(), tc.from, tc.to)
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("Checkpoints(%d, %d) = %d, %v; want %d, nil", tc.from, tc.to, len(got), err, len(tc.want))
			continue
		}
		for i := range got {
			if !bytes.Equal(got[i], tc.want[i]) {
				t.Errorf("Checkpoints(%d, %d)[%d] = %q; want %q", tc.from, tc.to, i, got[i], tc.want[i])
			}
		}
	}
}

func testContextCanceled(t *testing.T, s ledger.Store) {
	a := NewAppender(t, "canceled")
	a.AppendN(t, s, 3)
	f := a.Fork(t)
	b := f.NextN(t, 5)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.AppendBatch(ctx, b); err == nil {
		t.Fatal("AppendBatch(canceled context) = nil; want an error")
	}
	a.Check(t, s)
	if err := s.AppendBatch(t.Context(), b); err != nil {
		t.Fatalf("AppendBatch(the batch refused on a canceled context) = %v; want nil", err)
	}
	f.Check(t, s)
}

func testNoAliasing(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	a := NewAppender(t, "alias")
	b := a.AppendN(t, s, 6)
	// The caller may reuse its buffers once AppendBatch returns.
	b.Entries[0].Data[0] ^= 0xff
	b.Tiles[0].Hashes[0] ^= 0xff
	b.Head.Checkpoint[0] ^= 0xff
	b.Head.Range[0][0] ^= 0xff
	b.Payloads[0].Data[0] ^= 0xff
	b.Payloads[0].Salt[0] ^= 0xff
	a.Check(t, s)
	// And may change what a read returned.
	if es, err := s.ReadEntries(ctx, a.Log(), 0, 1); err == nil && len(es) == 1 {
		es[0].Data[0] ^= 0xff
	}
	if ts, err := s.ReadTiles(ctx, a.Log(), []ledger.Tile{{W: 6}}); err == nil && len(ts) == 1 {
		ts[0][0] ^= 0xff
	}
	if h, err := s.Head(ctx, a.Log()); err == nil && h.Size > 0 {
		h.Checkpoint[0] ^= 0xff
		h.Range[0][0] ^= 0xff
	}
	if p, err := s.ReadPayload(ctx, a.Log(), 0); err == nil {
		p.Data[0] ^= 0xff
		p.Salt[0] ^= 0xff
	}
	if cps, err := s.Checkpoints(ctx, a.Log(), 0, 6); err == nil && len(cps) == 1 {
		cps[0][0] ^= 0xff
	}
	a.Check(t, s)
}

// testResumeFromStore restores a tree builder the way a restarting sequencer
// does, from the stored head and the partial tiles, and checks that it goes
// on exactly as the builder that never stopped.
func testResumeFromStore(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	a := NewAppender(t, "resume")
	for _, n := range []int{100, 200, 13} {
		a.AppendN(t, s, n)
		h, err := s.Head(ctx, a.Log())
		if err != nil {
			t.Fatal(err)
		}
		partial := map[uint64][]byte{}
		var want []ledger.Tile
		var levels []uint64
		for l := uint64(0); h.Size>>(l*ledger.TileHeight) > 0; l++ {
			count := h.Size >> (l * ledger.TileHeight)
			if w := int(count % ledger.TileWidth); w > 0 {
				want = append(want, ledger.Tile{L: l, N: count / ledger.TileWidth, W: w})
				levels = append(levels, l)
			}
		}
		tiles, err := s.ReadTiles(ctx, a.Log(), want)
		if err != nil {
			t.Fatalf("ReadTiles(partial tiles at %d) = %v", h.Size, err)
		}
		for i, l := range levels {
			partial[l] = tiles[i][:want[i].W*ledger.HashSize]
		}
		tb, err := ledger.NewTreeBuilder(h.Size, h.Range, partial)
		if err != nil {
			t.Fatalf("NewTreeBuilder from the stored head at %d: %v", h.Size, err)
		}
		if tb.Root() != a.Root(t, h.Size) {
			t.Fatalf("tree restored from the store at %d has root %v; want %v", h.Size, tb.Root(), a.Root(t, h.Size))
		}
		ref := a.Fork(t)
		for range 300 {
			leaf := ledger.LeafHash([]byte(ledger.NewEventID()))
			tb.Append(leaf)
			ref.tb.Append(leaf)
		}
		got, wantTiles := tb.Flush(), ref.tb.Flush()
		if tb.Root() != ref.tb.Root() || len(got) != len(wantTiles) {
			t.Fatalf("restored tree diverges after 300 leaves")
		}
		for i := range got {
			if got[i].Tile != wantTiles[i].Tile || !bytes.Equal(got[i].Hashes, wantTiles[i].Hashes) {
				t.Fatalf("restored tree flushes %s; want %s", got[i].Path(), wantTiles[i].Path())
			}
		}
	}
}

// testReadDuringAppend reads while batches are appended: every head a reader
// sees must be fully readable (its last entry, its chain, an inclusion proof
// from the tiles against its signed root, consistency with the previous head).
func testReadDuringAppend(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	a := NewAppender(t, "live")
	var batches []*ledger.Batch
	for range 30 {
		batches = append(batches, a.NextN(t, 7))
	}
	done := make(chan error, 1)
	go func() {
		for _, b := range batches {
			if err := s.AppendBatch(ctx, b); err != nil {
				done <- fmt.Errorf("AppendBatch(start %d) = %w", b.Start, err)
				return
			}
		}
		done <- nil
	}()
	verifiers := note.VerifierList(a.Verifier())
	var last ledger.Checkpoint
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		h, err := s.Head(ctx, a.Log())
		if err != nil {
			t.Fatalf("Head = %v", err)
		}
		if h.Size == 0 {
			continue
		}
		c, _, err := ledger.OpenCheckpoint(h.Checkpoint, a.Origin(), verifiers)
		if err != nil || c.Size != h.Size {
			t.Fatalf("Head at %d has checkpoint of size %d, %v", h.Size, c.Size, err)
		}
		es, err := s.ReadEntries(ctx, a.Log(), h.Size-1, 2)
		if err != nil || len(es) == 0 || es[0].Chain != h.Chain {
			t.Fatalf("ReadEntries(%d) after Head(size %d) = %d entries, %v; want its last entry with the head's chain", h.Size-1, h.Size, len(es), err)
		}
		p, err := ledger.InclusionProof(ctx, s, a.Log(), h.Size-1, h.Size)
		if err != nil {
			t.Fatalf("InclusionProof(%d, %d) = %v", h.Size-1, h.Size, err)
		}
		if err := ledger.VerifyInclusion(ledger.LeafHash(es[0].Data), h.Size-1, h.Size, p, c.Root); err != nil {
			t.Fatalf("inclusion of %d in the head at %d: %v", h.Size-1, h.Size, err)
		}
		if last.Size > 0 && last.Size < c.Size {
			p, err := ledger.ConsistencyProof(ctx, s, a.Log(), last.Size, c.Size)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d) = %v", last.Size, c.Size, err)
			}
			if err := ledger.VerifyConsistency(last.Size, c.Size, p, last.Root, c.Root); err != nil {
				t.Fatalf("consistency %d → %d: %v", last.Size, c.Size, err)
			}
		}
		if c.Size < last.Size {
			t.Fatalf("head went back from %d to %d", last.Size, c.Size)
		}
		last = c
	}
	a.Check(t, s)
}

// raceAppend appends b1 through s1 and b2 through s2 at the same moment and
// returns the index (0 or 1) of the one that won. Exactly one must succeed
// and the other fail with ErrConflict.
func raceAppend(t *testing.T, s1, s2 ledger.Store, b1, b2 *ledger.Batch) int {
	t.Helper()
	var errs [2]error
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, p := range []struct {
		s ledger.Store
		b *ledger.Batch
	}{{s1, b1}, {s2, b2}} {
		wg.Go(func() {
			<-start
			errs[i] = p.s.AppendBatch(t.Context(), p.b)
		})
	}
	close(start)
	wg.Wait()
	switch {
	case errs[0] == nil && errors.Is(errs[1], ledger.ErrConflict):
		return 0
	case errs[1] == nil && errors.Is(errs[0], ledger.ErrConflict):
		return 1
	}
	t.Fatalf("racing AppendBatch at start %d = %v and %v; want one nil and one ErrConflict", b1.Start, errs[0], errs[1])
	return -1
}

func testConcurrentAppend(t *testing.T, e env) {
	t.Run("SameLog", func(t *testing.T) {
		t.Parallel()
		s := e.newStore(t)
		a := NewAppender(t, "race")
		a.AppendN(t, s, 3)
		for range 8 {
			f := [2]*Appender{a.Fork(t), a.Fork(t)}
			b1, b2 := f[0].NextN(t, 20), f[1].NextN(t, 20)
			a = f[raceAppend(t, s, s, b1, b2)]
		}
		a.Check(t, s)
	})
	t.Run("DifferentLogs", func(t *testing.T) {
		t.Parallel()
		s := e.newStore(t)
		apps := make([]*Appender, 4)
		batches := make([][]*ledger.Batch, len(apps))
		for i := range apps {
			apps[i] = NewAppender(t, fmt.Sprintf("par-%d", i))
			for range 5 {
				batches[i] = append(batches[i], apps[i].NextN(t, 10))
			}
		}
		var wg sync.WaitGroup
		for i := range apps {
			wg.Go(func() {
				for _, b := range batches[i] {
					if err := s.AppendBatch(t.Context(), b); err != nil {
						t.Errorf("AppendBatch(%q, start %d) = %v", b.Log, b.Start, err)
						return
					}
				}
			})
		}
		wg.Wait()
		for _, a := range apps {
			a.Check(t, s)
		}
	})
}

func testMalformedBatch(t *testing.T, e env) {
	for _, tc := range []struct {
		name   string
		mutate func(b *ledger.Batch)
	}{
		{"NoEntries", func(b *ledger.Batch) {
			b.Entries, b.Payloads, b.Tiles = nil, nil, nil
			b.Head.Size = b.Start
		}},
		{"InvalidLogName", func(b *ledger.Batch) { b.Log = "Not a log!" }},
		{"IndexGap", func(b *ledger.Batch) { b.Entries[2].Index++ }},
		{"IndexRepeated", func(b *ledger.Batch) { b.Entries[2].Index-- }},
		{"HeadSizeWrong", func(b *ledger.Batch) { b.Head.Size++ }},
		{"HeadChainNotLastEntry", func(b *ledger.Batch) { b.Head.Chain = b.Entries[0].Chain }},
		{"HeadRangeWrongLength", func(b *ledger.Batch) { b.Head.Range = append(b.Head.Range, ledger.Hash{}) }},
		{"HeadWithoutCheckpoint", func(b *ledger.Batch) { b.Head.Checkpoint = nil }},
		{"EventIDNotUUIDv7", func(b *ledger.Batch) { b.Entries[1].EventID = "not-a-uuid" }},
		{"EventIDUppercase", func(b *ledger.Batch) { b.Entries[1].EventID = strings.ToUpper(b.Entries[1].EventID) }},
		{"EntryEmpty", func(b *ledger.Batch) { b.Entries[3].Data = nil }},
		{"EntryTooLarge", func(b *ledger.Batch) { b.Entries[3].Data = make([]byte, ledger.MaxEntrySize+1) }},
		{"PayloadOfEarlierEntry", func(b *ledger.Batch) { b.Payloads[0].Index = b.Start - 1 }}, // MaxUint64 on a new log
		{"PayloadBeyondBatch", func(b *ledger.Batch) { b.Payloads[0].Index = b.Head.Size }},
		{"PayloadTwice", func(b *ledger.Batch) { b.Payloads = append(b.Payloads, b.Payloads[0]) }},
		{"TileMissing", func(b *ledger.Batch) { b.Tiles = b.Tiles[1:] }},
		{"TileExtra", func(b *ledger.Batch) {
			b.Tiles = append(b.Tiles, ledger.TileData{Tile: ledger.Tile{L: 0, N: 9, W: 1}, Hashes: make([]byte, ledger.HashSize)})
		}},
		{"TileTwice", func(b *ledger.Batch) { b.Tiles = append(b.Tiles, b.Tiles[0]) }},
		{"TileWidthNotHashes", func(b *ledger.Batch) { b.Tiles[0].Hashes = b.Tiles[0].Hashes[:len(b.Tiles[0].Hashes)-1] }},
		{"TileNarrowerThanSize", func(b *ledger.Batch) {
			b.Tiles[0].W--
			b.Tiles[0].Hashes = b.Tiles[0].Hashes[:b.Tiles[0].W*ledger.HashSize]
		}},
		{"TileIsEntryBundle", func(b *ledger.Batch) { b.Tiles[0].Entries = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := e.newStore(t)
			// On a new log, and on a log that has entries.
			a := NewAppender(t, "malformed")
			b := a.Fork(t).NextN(t, 4)
			tc.mutate(b)
			appendErr(t, s, b, nil, tc.name+" as a first batch")
			wantLogs(t, s)
			a.AppendN(t, s, 3)
			b = a.Fork(t).NextN(t, 4)
			tc.mutate(b)
			appendErr(t, s, b, nil, tc.name)
			a.Check(t, s)
			wantLogs(t, s, "malformed")
		})
	}
}

func testSecondHandleSeesWrites(t *testing.T, e env) {
	s1 := e.newStore(t)
	s2 := e.reopen(t, s1)
	a, b := NewAppender(t, "one"), NewAppender(t, "two")
	a.AppendN(t, s1, 5)
	a.Check(t, s2)
	b.AppendN(t, s2, 7)
	b.Check(t, s1)
	a.AppendN(t, s2, 3)
	a.Check(t, s1)
	if err := s1.ErasePayload(t.Context(), a.Log(), 0); err != nil {
		t.Fatal(err)
	}
	a.MarkErased(0)
	a.Check(t, s2)
	wantLogs(t, s2, "one", "two")
}

func testConflictAcrossHandles(t *testing.T, e env) {
	s1 := e.newStore(t)
	s2 := e.reopen(t, s1)
	a := NewAppender(t, "race")
	a.AppendN(t, s1, 3)
	for range 6 {
		f := [2]*Appender{a.Fork(t), a.Fork(t)}
		b1, b2 := f[0].NextN(t, 20), f[1].NextN(t, 20)
		a = f[raceAppend(t, s1, s2, b1, b2)]
	}
	a.Check(t, s1)
	a.Check(t, s2)
}

func testAppendAcrossHandles(t *testing.T, e env) {
	s1 := e.newStore(t)
	s2 := e.reopen(t, s1)
	apps := []*Appender{NewAppender(t, "via-1"), NewAppender(t, "via-2")}
	stores := []ledger.Store{s1, s2}
	batches := make([][]*ledger.Batch, 2)
	for i, a := range apps {
		for range 8 {
			batches[i] = append(batches[i], a.NextN(t, 15))
		}
	}
	var wg sync.WaitGroup
	for i := range apps {
		wg.Go(func() {
			for _, b := range batches[i] {
				if err := stores[i].AppendBatch(t.Context(), b); err != nil {
					t.Errorf("AppendBatch(%q, start %d) = %v", b.Log, b.Start, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, a := range apps {
		a.Check(t, s1)
		a.Check(t, s2)
	}
}

func testLockAcrossHandles(t *testing.T, e env) {
	ctx := t.Context()
	s1 := e.newStore(t)
	s2 := e.reopen(t, s1)
	r1, err := s1.Lock(ctx, "seq")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Lock(ctx, "seq"); !errors.Is(err, ledger.ErrLocked) {
		t.Fatalf("Lock through a second handle while held = %v; want ErrLocked", err)
	}
	r1()
	r2, err := s2.Lock(ctx, "seq")
	if err != nil {
		t.Fatalf("Lock through a second handle after release = %v; want nil", err)
	}
	if _, err := s1.Lock(ctx, "seq"); !errors.Is(err, ledger.ErrLocked) {
		t.Fatalf("Lock while the second handle holds it = %v; want ErrLocked", err)
	}
	r2()
	// Close releases every lock the handle holds.
	if _, err := s1.Lock(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Lock(ctx, "b/c"); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	for _, n := range []string{"a", "b/c", "seq"} {
		r, err := s2.Lock(ctx, n)
		if err != nil {
			t.Fatalf("Lock(%q) after the holder closed = %v; want nil", n, err)
		}
		r()
	}
}

func testReopenAfterClose(t *testing.T, e env) {
	ctx := t.Context()
	s1 := e.newStore(t)
	a, b := NewAppender(t, "kept"), NewAppender(t, "kept-too")
	for _, n := range []int{1, 300, 12} {
		a.AppendN(t, s1, n)
	}
	b.AppendN(t, s1, 2)
	if err := s1.ErasePayload(ctx, a.Log(), 2); err != nil {
		t.Fatal(err)
	}
	a.MarkErased(2)
	if err := s1.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	s2 := e.reopen(t, s1)
	a.Check(t, s2)
	b.Check(t, s2)
	wantLogs(t, s2, "kept", "kept-too")
	a.AppendN(t, s2, 5)
	a.Check(t, s2)
}
