package storetest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"aigw/ledger"

	"golang.org/x/mod/sumdb/note"
)

// OriginPrefix is the checkpoint origin prefix of the logs an [Appender] writes.
const OriginPrefix = "storetest.aigw.invalid"

// Item is one event of a batch and, when Payload is not nil, the payload it
// commits to. [Appender.Next] commits to the payload with a fresh salt, sets
// the event's PayloadSHA256, and stores the payload beside the entry.
type Item struct {
	Event   ledger.Event
	Payload []byte
}

// Items wraps events that carry no payload.
func Items(events ...ledger.Event) []Item {
	out := make([]Item, len(events))
	for i, ev := range events {
		out[i] = Item{Event: ev}
	}
	return out
}

type tileKey struct{ l, n uint64 }

// Appender plays the sequencer of one log in tests: it builds the batches a
// sequencer would append (canonical entries, leaf and chain hashes, the tiles
// a [ledger.TreeBuilder] flushes, the compact range and a checkpoint signed
// with a throwaway note key) and remembers everything it built, so that
// [Appender.Check] can compare a store against it.
//
// Next advances the Appender as if the batch had been appended. To build a
// batch that a test expects the store to refuse, build it on a [Appender.Fork].
// An Appender is not safe for concurrent use.
type Appender struct {
	log      string
	signer   note.Signer
	verifier note.Verifier

	tb          *ledger.TreeBuilder
	chain       ledger.Hash
	entries     []ledger.StoredEntry
	tiles       map[tileKey][]byte // every tile at its current contents
	checkpoints [][]byte
	sizes       []uint64
	roots       map[uint64]ledger.Hash
	payloads    map[uint64]ledger.Payload
	erased      map[uint64]bool
}

// NewAppender returns an Appender for an empty log, with a fresh signing key.
func NewAppender(t testing.TB, log string) *Appender {
	t.Helper()
	if !ledger.ValidLogName(log) {
		t.Fatalf("storetest: %q is not a valid log name", log)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "storetest-"+log)
	if err != nil {
		t.Fatalf("storetest: generate note key: %v", err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatalf("storetest: note signer: %v", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("storetest: note verifier: %v", err)
	}
	tb, err := ledger.NewTreeBuilder(0, nil, nil)
	if err != nil {
		t.Fatalf("storetest: empty tree builder: %v", err)
	}
	return &Appender{
		log:      log,
		signer:   signer,
		verifier: verifier,
		tb:       tb,
		tiles:    map[tileKey][]byte{},
		roots:    map[uint64]ledger.Hash{0: ledger.EmptyRoot},
		payloads: map[uint64]ledger.Payload{},
		erased:   map[uint64]bool{},
	}
}

// Log returns the name of the log.
func (a *Appender) Log() string { return a.log }

// Size returns the size of the log after the batches built so far.
func (a *Appender) Size() uint64 { return uint64(len(a.entries)) }

// Verifier returns the verifier of the key that signs the checkpoints.
func (a *Appender) Verifier() note.Verifier { return a.verifier }

// Origin returns the checkpoint origin of the log.
func (a *Appender) Origin() string { return ledger.Origin(OriginPrefix, a.log) }

// Root returns the root hash of the tree at a size some batch ended at (or 0).
func (a *Appender) Root(t testing.TB, size uint64) ledger.Hash {
	t.Helper()
	r, ok := a.roots[size]
	if !ok {
		t.Fatalf("storetest: no batch of log %q ended at size %d", a.log, size)
	}
	return r
}

// Sizes returns the sizes the batches built so far ended at, oldest first.
func (a *Appender) Sizes() []uint64 { return slices.Clone(a.sizes) }

// Head returns the head the last batch wrote (the zero Head before any).
func (a *Appender) Head() ledger.Head {
	if len(a.entries) == 0 {
		return ledger.Head{}
	}
	return ledger.Head{
		Size:       a.Size(),
		Range:      a.tb.Range(),
		Chain:      a.chain,
		Checkpoint: bytes.Clone(a.checkpoints[len(a.checkpoints)-1]),
	}
}

// Entries returns copies of the entries built so far.
func (a *Appender) Entries() []ledger.StoredEntry {
	out := make([]ledger.StoredEntry, len(a.entries))
	for i, e := range a.entries {
		out[i] = cloneEntry(e)
	}
	return out
}

// Entry returns a copy of entry i.
func (a *Appender) Entry(i uint64) ledger.StoredEntry { return cloneEntry(a.entries[i]) }

// Checkpoints returns the signed checkpoints of the batches built so far, oldest first.
func (a *Appender) Checkpoints() [][]byte {
	out := make([][]byte, len(a.checkpoints))
	for i, c := range a.checkpoints {
		out[i] = bytes.Clone(c)
	}
	return out
}

// Tile returns the current contents of tile (l, n), or nil.
func (a *Appender) Tile(l, n uint64) []byte { return bytes.Clone(a.tiles[tileKey{l, n}]) }

// Payload returns the payload stored with entry i, if it has one and it was not erased.
func (a *Appender) Payload(i uint64) (ledger.Payload, bool) {
	p, ok := a.payloads[i]
	if !ok || a.erased[i] {
		return ledger.Payload{}, false
	}
	return ledger.Payload{Index: p.Index, Salt: bytes.Clone(p.Salt), Data: bytes.Clone(p.Data)}, true
}

// PayloadIndexes returns the indexes of the entries that were given a payload, erased or not.
func (a *Appender) PayloadIndexes() []uint64 { return slices.Sorted(maps.Keys(a.payloads)) }

// MarkErased records that the payload of entry i was erased, for Check.
func (a *Appender) MarkErased(i uint64) { a.erased[i] = true }

// Fork returns an independent copy of the Appender, its tree restored with
// [ledger.NewTreeBuilder] from the compact range and the partial tiles, as a
// sequencer restores it from a store. Batches built on the fork do not advance a.
func (a *Appender) Fork(t testing.TB) *Appender {
	t.Helper()
	size := a.Size()
	partial := map[uint64][]byte{}
	for l := uint64(0); size>>(l*ledger.TileHeight) > 0; l++ {
		count := size >> (l * ledger.TileHeight)
		if count%ledger.TileWidth != 0 {
			partial[l] = a.tiles[tileKey{l, count / ledger.TileWidth}]
		}
	}
	tb, err := ledger.NewTreeBuilder(size, a.tb.Range(), partial)
	if err != nil {
		t.Fatalf("storetest: restore tree of log %q at %d: %v", a.log, size, err)
	}
	if got, want := tb.Root(), a.tb.Root(); got != want {
		t.Fatalf("storetest: restored tree of log %q at %d has root %v, want %v", a.log, size, got, want)
	}
	f := *a
	f.tb = tb
	f.entries = slices.Clone(a.entries)
	f.tiles = maps.Clone(a.tiles)
	f.checkpoints = slices.Clone(a.checkpoints)
	f.sizes = slices.Clone(a.sizes)
	f.roots = maps.Clone(a.roots)
	f.payloads = maps.Clone(a.payloads)
	f.erased = maps.Clone(a.erased)
	return &f
}

// Next builds the batch that appends items to the log and advances the
// Appender past it. The returned batch shares no memory with the Appender,
// so a test may alter it. Next fails t if an event is invalid; items may be
// empty (a batch no store accepts).
func (a *Appender) Next(t testing.TB, items ...Item) *ledger.Batch {
	t.Helper()
	start := a.Size()
	b := &ledger.Batch{Log: a.log, Start: start}
	for i, it := range items {
		idx := start + uint64(i)
		ev := it.Event
		if it.Payload != nil {
			commit, salt := ledger.Commit(it.Payload, nil)
			ev.PayloadSHA256 = commit
			p := ledger.Payload{Index: idx, Salt: salt, Data: bytes.Clone(it.Payload)}
			a.payloads[idx] = p
			b.Payloads = append(b.Payloads, ledger.Payload{Index: idx, Salt: bytes.Clone(salt), Data: bytes.Clone(p.Data)})
		}
		data, err := ev.Entry()
		if err != nil {
			t.Fatalf("storetest: entry %d of log %q: %v", idx, a.log, err)
		}
		leaf := ledger.LeafHash(data)
		a.chain = ledger.ChainHash(a.chain, leaf)
		a.tb.Append(leaf)
		e := ledger.StoredEntry{Index: idx, EventID: ev.ID, Data: data, Chain: a.chain}
		a.entries = append(a.entries, e)
		b.Entries = append(b.Entries, cloneEntry(e))
	}
	size := a.Size()
	b.Tiles = a.tb.Flush()
	// The tiles a TreeBuilder flushes are exactly those TilesFor names: a
	// check of the ledger package that every store test then relies on.
	var names []ledger.Tile
	for _, td := range b.Tiles {
		names = append(names, td.Tile)
		a.tiles[tileKey{td.L, td.N}] = bytes.Clone(td.Hashes)
	}
	if want := ledger.TilesFor(start, size); !slices.Equal(names, want) && len(items) > 0 {
		t.Fatalf("storetest: TreeBuilder flushed tiles %v from %d to %d, TilesFor says %v", names, start, size, want)
	}
	root := a.tb.Root()
	cp, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: a.Origin(), Size: size, Root: root}, a.signer)
	if err != nil {
		t.Fatalf("storetest: sign checkpoint: %v", err)
	}
	if len(items) > 0 {
		a.checkpoints = append(a.checkpoints, cp)
		a.sizes = append(a.sizes, size)
		a.roots[size] = root
	}
	b.Head = ledger.Head{Size: size, Range: a.tb.Range(), Chain: a.chain, Checkpoint: bytes.Clone(cp)}
	return b
}

// NextN builds the next batch of n realistic events (see [Event]); every
// other event carries a small payload.
func (a *Appender) NextN(t testing.TB, n int) *ledger.Batch {
	t.Helper()
	items := make([]Item, n)
	for i := range items {
		items[i].Event = Event(a.log)
		if (a.Size()+uint64(i))%2 == 0 {
			items[i].Payload = fmt.Appendf(nil, `{"messages":[{"role":"user","content":"question %d of the audit test"}]}`, a.Size()+uint64(i))
		}
	}
	return a.Next(t, items...)
}

// Append builds the next batch of items and appends it to s, failing t if
// the store refuses it.
func (a *Appender) Append(t testing.TB, s ledger.Store, items ...Item) *ledger.Batch {
	t.Helper()
	b := a.Next(t, items...)
	if err := s.AppendBatch(t.Context(), b); err != nil {
		t.Fatalf("AppendBatch(%q, start %d, %d entries) = %v; want nil", b.Log, b.Start, len(b.Entries), err)
	}
	return b
}

// AppendN appends a batch of n realistic events (see [Appender.NextN]) to s.
func (a *Appender) AppendN(t testing.TB, s ledger.Store, n int) *ledger.Batch {
	t.Helper()
	b := a.NextN(t, n)
	if err := s.AppendBatch(t.Context(), b); err != nil {
		t.Fatalf("AppendBatch(%q, start %d, %d entries) = %v; want nil", b.Log, b.Start, len(b.Entries), err)
	}
	return b
}

func cloneEntry(e ledger.StoredEntry) ledger.StoredEntry {
	e.Data = bytes.Clone(e.Data)
	return e
}

var (
	kinds     = []string{ledger.KindRequest, ledger.KindRoute, ledger.KindAttempt, ledger.KindGuardrail, ledger.KindResponse}
	models    = []string{"gpt-4o-2024-08-06", "claude-sonnet-4-5", "gemini-2.5-pro", "anthropic.claude-3-haiku-20240307-v1:0"}
	providers = []string{"openai", "anthropic", "gemini", "bedrock"}
)

// Event returns a realistic event of the log: a fresh UUIDv7 id, a kind of
// a chat call, an actor, a trace id, a policy reference and attributes of the
// kind the gateway writes (model, provider, tokens, latency, guardrails).
// Its entry is about 850 bytes.
func Event(log string) ledger.Event {
	var r [24]byte
	rand.Read(r[:])
	pick := int(r[0])
	trace := hex.EncodeToString(r[8:24])
	return ledger.Event{
		ID:      ledger.NewEventID(),
		Tenant:  log,
		Kind:    kinds[pick%len(kinds)],
		Time:    time.Now(),
		Actor:   ledger.Actor{KeyID: "key_" + hex.EncodeToString(r[1:5]), AgentID: "agent-invoice-reconciler"},
		TraceID: trace,
		Policy:  "sha256:9f2c7a1e0b6d4c3f",
		Attrs: map[string]any{
			"model":      models[pick%len(models)],
			"provider":   providers[pick%len(providers)],
			"route":      "chat-default",
			"status":     200,
			"latency_ms": 120 + int(r[5]),
			"stream":     r[6]%2 == 0,
			"tokens":     map[string]any{"prompt": 812 + int(r[6]), "completion": 97 + int(r[7]), "total": 909 + int(r[6]) + int(r[7])},
			"request":    map[string]any{"method": "POST", "path": "/v1/chat/completions", "client_ip": "10.20.30.40", "user_agent": "openai-python/1.54.3"},
			"guardrails": []any{
				map[string]any{"name": "pii", "verdict": "pass", "ms": 3},
				map[string]any{"name": "prompt_injection", "verdict": "pass", "score": "0.02", "ms": 11},
				map[string]any{"name": "token_budget", "verdict": "pass", "remaining": 184223},
			},
			"tools": []any{"search_invoices", "get_vendor"},
		},
	}
}

// TinyEvent returns the smallest valid event of the log (id, kind, tenant,
// time; about 120 bytes), for tests that append many entries.
func TinyEvent(log string) ledger.Event {
	return ledger.Event{ID: ledger.NewEventID(), Tenant: log, Kind: ledger.KindAttempt, Time: time.Now()}
}

// SizedEvent returns a realistic event of the log whose entry is exactly size
// bytes, padding an attribute. It fails t if size is smaller than the
// unpadded event or larger than [ledger.MaxEntrySize]. Giving the event a
// payload in an [Item] adds its commitment (about 85 bytes) to the entry.
func SizedEvent(t testing.TB, log string, size int) ledger.Event {
	t.Helper()
	ev := Event(log)
	ev.Attrs["note"] = ""
	base, err := ev.Entry()
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	if size < len(base) || size > ledger.MaxEntrySize {
		t.Fatalf("storetest: SizedEvent(%d): size must be in [%d, %d]", size, len(base), ledger.MaxEntrySize)
	}
	ev.Attrs["note"] = strings.Repeat("x", size-len(base))
	if e, err := ev.Entry(); err != nil || len(e) != size {
		t.Fatalf("storetest: SizedEvent(%d) made an entry of %d bytes (err %v)", size, len(e), err)
	}
	return ev
}
