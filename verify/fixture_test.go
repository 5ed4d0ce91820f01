package verify_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"aigw/ledger"

	"golang.org/x/mod/sumdb/note"
)

// testOriginPrefix is the origin prefix of every fixture log.
const testOriginPrefix = "verify.aigw.invalid/ledger"

// key is a checkpoint signing key of the tests.
type key struct {
	signer   note.Signer
	verifier note.Verifier
}

func newKey(t testing.TB, name string) key {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return key{s, v}
}

func (k key) verifiers() note.Verifiers { return note.VerifierList(k.verifier) }

// fixture builds a log in memory the way the sequencer does (entries, leaf
// and chain hashes, ledger.TreeBuilder tiles, a checkpoint signed per batch)
// and writes it in the export layout. It is verify's own builder, so the
// tests do not depend on any store.
type fixture struct {
	t      testing.TB
	log    string
	key    key
	origin string

	entries     [][]byte
	chains      []ledger.Hash
	chain       ledger.Hash
	tb          *ledger.TreeBuilder
	tiles       map[[2]uint64][]byte // (level, index) → contents at the current size
	sizes       []uint64             // sizes with a checkpoint, ascending
	checkpoints map[uint64][]byte
	payloads    map[uint64]ledger.Payload
	erased      map[uint64]bool
}

func newFixture(t testing.TB, log string, k key) *fixture {
	t.Helper()
	tb, err := ledger.NewTreeBuilder(0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, log: log, key: k, origin: ledger.Origin(testOriginPrefix, log), tb: tb,
		tiles: map[[2]uint64][]byte{}, checkpoints: map[uint64][]byte{}, payloads: map[uint64]ledger.Payload{}, erased: map[uint64]bool{}}
}

func (f *fixture) size() uint64 { return uint64(len(f.entries)) }

// add appends entries as one batch and signs a checkpoint of the new size.
func (f *fixture) add(entries ...[]byte) {
	f.t.Helper()
	for _, e := range entries {
		leaf := ledger.LeafHash(e)
		f.chain = ledger.ChainHash(f.chain, leaf)
		f.tb.Append(leaf)
		f.entries = append(f.entries, e)
		f.chains = append(f.chains, f.chain)
	}
	for _, td := range f.tb.Flush() {
		f.tiles[[2]uint64{td.L, td.N}] = td.Hashes
	}
	f.sign()
}

// sign records a signed checkpoint of the current size.
func (f *fixture) sign() {
	f.t.Helper()
	cp, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: f.origin, Size: f.size(), Root: f.tb.Root()}, f.key.signer)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, ok := f.checkpoints[f.size()]; !ok {
		f.sizes = append(f.sizes, f.size())
	}
	f.checkpoints[f.size()] = cp
}

// addN appends n generated entries in batches of batch.
func (f *fixture) addN(n, batch int) {
	f.t.Helper()
	for n > 0 {
		k := min(n, batch)
		es := make([][]byte, k)
		for i := range es {
			es[i] = genEntry(f.log, f.size()+uint64(i))
		}
		f.add(es...)
		n -= k
	}
}

// addWithPayload appends one event committing to payload, storing the payload.
func (f *fixture) addWithPayload(payload []byte) {
	f.t.Helper()
	ev := testEvent(f.log, f.size())
	commit, salt := ledger.Commit(payload, nil)
	ev.PayloadSHA256 = commit
	e, err := ev.Entry()
	if err != nil {
		f.t.Fatal(err)
	}
	f.payloads[f.size()] = ledger.Payload{Index: f.size(), Salt: salt, Data: payload}
	f.add(e)
}

func (f *fixture) checkpoint() []byte { return f.checkpoints[f.size()] }

// root returns the root of the tree at a size with a checkpoint.
func (f *fixture) root(size uint64) ledger.Hash {
	c, err := ledger.ParseCheckpointBody(must(ledger.SplitNote(f.checkpoints[size])))
	if err != nil {
		f.t.Fatal(err)
	}
	return c.Root
}

// tile returns tile (l, n) at width w.
func (f *fixture) tile(l, n uint64, w int) []byte {
	return f.tiles[[2]uint64{l, n}][:w*ledger.HashSize]
}

// ReadTiles makes the fixture a ledger.TileReader (proofs in tests).
func (f *fixture) ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b := f.tiles[[2]uint64{t.L, t.N}]
		if len(b) < t.W*ledger.HashSize {
			return nil, fmt.Errorf("tile %s: %w", t.Path(), ledger.ErrNotFound)
		}
		out[i] = b
	}
	return out, nil
}

// write writes the log under dir/<log>/ in the export layout and returns dir.
func (f *fixture) write(dir string) string {
	f.t.Helper()
	size := f.size()
	put := func(rel string, data []byte) {
		p := filepath.Join(dir, f.log, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	for _, t := range ledger.TilesFor(0, size) {
		put(t.Path(), f.tile(t.L, t.N, t.W))
	}
	for n := uint64(0); n*ledger.TileWidth < size; n++ {
		w := ledger.TileWidthAt(0, n, size)
		bt := ledger.Tile{N: n, W: w, Entries: true}
		lo := n * ledger.TileWidth
		put(bt.Path(), mustBundle(f.entries[lo:lo+uint64(w)]))
		var c []byte
		for _, h := range f.chains[lo : lo+uint64(w)] {
			c = append(c, h[:]...)
		}
		put("chain/"+strings.TrimPrefix(bt.Path(), "tile/entries/"), c)
	}
	for _, s := range f.sizes {
		put("checkpoints/"+strconv.FormatUint(s, 10), f.checkpoints[s])
	}
	put("checkpoint", f.checkpoint())
	return dir
}

// testEvent returns a small realistic event of log.
func testEvent(log string, i uint64) *ledger.Event {
	return &ledger.Event{
		ID:      ledger.NewEventID(),
		Tenant:  log,
		Kind:    ledger.KindRequest,
		Time:    time.Date(2026, 11, 27, 7, 43, 40, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		Actor:   ledger.Actor{KeyID: "key_1", AgentID: "agent-7"},
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		Attrs:   map[string]any{"model": "gpt-4o", "tokens": i, "cost_usd": 0.0125, "tags": []any{"a", "b"}},
	}
}

var baseTime = time.Date(2026, 11, 27, 7, 43, 40, 0, time.UTC)

// genEntry builds a realistic entry (about 400 bytes) quickly and
// deterministically: what Event.Entry writes for a chat request, with the
// index folded into the id, time, trace id and numbers.
func genEntry(log string, i uint64) []byte {
	var idb [16]byte
	idb[0], idb[1], idb[2], idb[3], idb[4], idb[5] = 0x01, 0x93, 0x6b, 0x2e, byte(i>>40), byte(i>>32)
	idb[6] = 0x70 | byte(i>>28)&0x0f
	idb[7] = byte(i >> 20)
	idb[8] = 0x80 | byte(i>>14)&0x3f
	idb[9], idb[10], idb[11] = byte(i>>6), byte(i<<2), 0x5a
	idb[12], idb[13], idb[14], idb[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	var hx [32]byte
	hex.Encode(hx[:], idb[:])
	b := make([]byte, 0, 512)
	b = append(b, `{"actor":{"agent_id":"agent-invoice-reconciler","key_id":"key_0a1b2c3d"},"attrs":{"latency_ms":`...)
	b = strconv.AppendUint(b, 100+i%900, 10)
	b = append(b, `,"model":"gpt-4o-2024-08-06","provider":"openai","request":{"method":"POST","path":"/v1/chat/completions"},"status":200,"stream":`...)
	b = strconv.AppendBool(b, i%2 == 0)
	b = append(b, `,"tokens":{"completion":`...)
	b = strconv.AppendUint(b, 97+i%101, 10)
	b = append(b, `,"prompt":`...)
	b = strconv.AppendUint(b, 812+i%1000, 10)
	b = append(b, `}},"id":"`...)
	b = append(b, hx[0:8]...)
	b = append(b, '-')
	b = append(b, hx[8:12]...)
	b = append(b, '-')
	b = append(b, hx[12:16]...)
	b = append(b, '-')
	b = append(b, hx[16:20]...)
	b = append(b, '-')
	b = append(b, hx[20:32]...)
	b = append(b, `","kind":"request","policy":"sha256:9f2c7a1e0b6d4c3f","tenant":"`...)
	b = append(b, log...)
	b = append(b, `","time":"`...)
	b = baseTime.Add(time.Duration(i)*time.Microsecond).AppendFormat(b, ledger.TimeFormat)
	b = append(b, `","trace_id":"`...)
	b = append(b, hx[:]...)
	b = append(b, `","v":1}`...)
	return b
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// memStore is an in-memory implementation of the store read methods verify
// uses (verify.StoreReader, plus ReadPayload and Logs), built from a fixture.
type memStore struct {
	f       *fixture
	entries []ledger.StoredEntry
	missing map[uint64]bool
}

func newMemStore(f *fixture) *memStore {
	s := &memStore{f: f, missing: map[uint64]bool{}}
	for i, e := range f.entries {
		s.entries = append(s.entries, ledger.StoredEntry{Index: uint64(i), EventID: strconv.Itoa(i), Data: e, Chain: f.chains[i]})
	}
	return s
}

func (s *memStore) Head(ctx context.Context, log string) (ledger.Head, error) {
	if log != s.f.log {
		return ledger.Head{}, nil
	}
	return ledger.Head{Size: s.f.size(), Range: s.f.tb.Range(), Chain: s.f.chain, Checkpoint: s.f.checkpoint()}, nil
}

func (s *memStore) ReadEntries(ctx context.Context, log string, start uint64, n int) ([]ledger.StoredEntry, error) {
	if log != s.f.log {
		return nil, nil
	}
	var out []ledger.StoredEntry
	for i := start; i < uint64(len(s.entries)) && len(out) < n; i++ {
		if s.missing[i] {
			if len(out) > 0 {
				break // stop early at a missing entry
			}
			continue
		}
		out = append(out, s.entries[i])
	}
	return out, nil
}

func (s *memStore) ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error) {
	if log != s.f.log {
		return nil, ledger.ErrNotFound
	}
	return s.f.ReadTiles(ctx, log, tiles)
}

func (s *memStore) Checkpoints(ctx context.Context, log string, from, to uint64) ([][]byte, error) {
	var out [][]byte
	for _, size := range s.f.sizes {
		if size >= from && size <= to && log == s.f.log {
			out = append(out, s.f.checkpoints[size])
		}
	}
	return out, nil
}

func (s *memStore) ReadPayload(ctx context.Context, log string, index uint64) (ledger.Payload, error) {
	if s.f.erased[index] {
		return ledger.Payload{}, ledger.ErrPayloadErased
	}
	p, ok := s.f.payloads[index]
	if !ok || log != s.f.log {
		return ledger.Payload{}, ledger.ErrNotFound
	}
	return p, nil
}

func (s *memStore) Logs(ctx context.Context) ([]string, error) { return []string{s.f.log}, nil }

// Helpers that tamper with files of an export.

func logPath(dir, log, rel string) string {
	return filepath.Join(dir, log, filepath.FromSlash(rel))
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// editBundle rewrites the entry bundle at rel with edit applied to its entries.
func editBundle(t testing.TB, dir, log, rel string, edit func([][]byte) [][]byte) {
	t.Helper()
	p := logPath(dir, log, rel)
	es, err := ledger.ParseEntryBundle(readFile(t, p))
	if err != nil {
		t.Fatal(err)
	}
	for i := range es {
		es[i] = slices.Clone(es[i])
	}
	writeFile(t, p, mustBundle(edit(es)))
}

// mustBundle encodes an entry bundle of entries known to be small enough.
func mustBundle(es [][]byte) []byte {
	b, err := ledger.EntryBundle(es)
	if err != nil {
		panic(err)
	}
	return b
}
