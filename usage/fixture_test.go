package usage_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/sequencer"
	"aigw/ledger/signer"
	"aigw/ledger/sqlite"
)

const origin = "aigw.test/ledger"

var (
	periodFrom = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	periodTo   = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

// fixedSigner is a fixed Ed25519 checkpoint key, so that the ledger (and
// every statement of it) is the same bytes on every run.
func fixedSigner(t testing.TB) *signer.Signer {
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, "aigw usage statement test key!!")
	s, err := signer.FromEd25519("aigw-test", ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fixture is a deterministic ledger in SQLite: fixed key, fixed event ids
// and times, appended through the sequencer in batches (one checkpoint each).
type fixture struct {
	store  *sqlite.Store
	signer *signer.Signer
	seq    *sequencer.Sequencer
	n      int
	batch  map[string][]sequencer.Record
	marks  map[string][]string // log → event ids of the pending batch, to record indexes
	index  map[string]uint64   // event id → index in its log
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "ledger.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sg := fixedSigner(t)
	seq, err := sequencer.New(sequencer.Config{Store: st, Signer: sg, OriginPrefix: origin})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{store: st, signer: sg, seq: seq, batch: map[string][]sequencer.Record{},
		marks: map[string][]string{}, index: map[string]uint64{}}
}

func (f *fixture) id() string {
	f.n++
	return fmt.Sprintf("019a3c00-0000-7000-8000-%012x", f.n)
}

// event adds an event to the pending batch of its log and returns its id.
func (f *fixture) event(t testing.TB, log, kind string, at time.Time, trace string, actor ledger.Actor, attrs map[string]any) string {
	t.Helper()
	ev := &ledger.Event{ID: f.id(), Tenant: log, Kind: kind, Time: at, Actor: actor, TraceID: trace, Policy: "policy-v1", Attrs: attrs}
	e, err := ev.Entry()
	if err != nil {
		t.Fatal(err)
	}
	f.batch[log] = append(f.batch[log], sequencer.Record{Entry: e})
	f.marks[log] = append(f.marks[log], ev.ID)
	return ev.ID
}

// flush appends the pending batches, one checkpoint per log.
func (f *fixture) flush(t testing.TB) {
	t.Helper()
	for _, log := range []string{"acme", "globex"} {
		recs := f.batch[log]
		if len(recs) == 0 {
			continue
		}
		res, err := f.seq.Append(context.Background(), log, recs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			f.index[f.marks[log][i]] = r.Index
		}
		f.batch[log], f.marks[log] = nil, nil
	}
}

// call is one call of the fixture: its request and its outcome event.
type call struct {
	log                       string
	at                        time.Time
	team, key, agent          string
	failed                    bool
	status                    int
	provider, model, priceVer string
	tokens                    map[string]any // nil: none
	cost                      string         // "": none
}

var traceN int

// add records a call: request, then (a second later) its outcome; it
// returns the outcome's event id.
func (f *fixture) add(t testing.TB, c call) string {
	t.Helper()
	traceN++
	trace := fmt.Sprintf("%032x", traceN)
	actor := ledger.Actor{KeyID: c.key, AgentID: c.agent}
	req := map[string]any{"endpoint": "chat.completions", "model": c.model, "stream": false, "bytes": 120}
	if c.team != "" {
		req["team"] = c.team
	}
	f.event(t, c.log, ledger.KindRequest, c.at, trace, actor, req)
	attrs := map[string]any{"status": c.status, "latency_us": 1500, "attempts": 1}
	if c.provider != "" {
		attrs["target"], attrs["provider"], attrs["model"] = c.provider+"-"+c.model, c.provider, c.model
	}
	if c.tokens != nil {
		attrs["tokens"] = c.tokens
	}
	if c.cost != "" {
		attrs["cost_usd"] = c.cost
	}
	if c.priceVer != "" {
		attrs["price_version"] = c.priceVer
	}
	if c.team != "" {
		attrs["team"] = c.team
	}
	kind := ledger.KindResponse
	if c.failed {
		kind = ledger.KindError
		attrs["error_type"], attrs["error"] = "upstream_error", "failed"
	} else {
		attrs["finish_reason"] = "stop"
	}
	return f.event(t, c.log, kind, c.at.Add(time.Second), trace, actor, attrs)
}

// settle records a budget settlement, as gateway/spend writes it, listing
// budgets (id, scope, window_start, window_end, spent_usd, spent_tokens).
func (f *fixture) settle(t testing.TB, at time.Time, cost string, tokens int, budgets ...[]any) string {
	t.Helper()
	var bs []any
	for _, b := range budgets {
		m := map[string]any{"id": b[0], "window_start": b[2], "window_end": b[3], "spent_usd": b[4], "spent_tokens": b[5]}
		if b[1] != "" {
			m["scope"] = b[1]
		}
		bs = append(bs, m)
	}
	attrs := map[string]any{"action": "settle", "reservation": fmt.Sprintf("r-%d", f.n), "cost_usd": cost, "tokens": tokens, "budgets": bs}
	return f.event(t, "acme", "budget", at, "", ledger.Actor{KeyID: "k1"}, attrs)
}

// Budget windows of the fixture.
var (
	teamAMonth = []any{"team-a-monthly", "team=a", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"}
	teamBMonth = []any{"team-b-monthly", "team=b,key=k2", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"}
	tenantWeek = []any{"tenant-weekly", "tenant", "2026-10-29T00:00:00Z", "2026-11-05T00:00:00Z"}
)

func spent(w []any, usd string, tokens int) []any { return append(w[:4:4], usd, tokens) }

// built says what the standard fixture holds.
type built struct {
	// call1 is the outcome event of the first openai call in the period.
	call1 string
}

// build writes the standard ledger: calls of acme before, in and after
// the period (two teams, two price versions, cached and cache-write
// tokens, an errored call with tokens, an estimated one, a refused one
// and an unpriced one), budget settlements (one window reconciles, one
// began before the period, one mismatches), and globex's calls, which
// never count for acme.
func (f *fixture) build(t testing.TB) built {
	t.Helper()
	var b built
	// Before the period: a call and a settlement of the weekly window.
	before := periodFrom.Add(-2 * time.Hour)
	f.add(t, call{log: "acme", at: before, team: "a", key: "k1", agent: "ag1", status: 200, provider: "openai", model: "gpt-4o", priceVer: "p1",
		tokens: map[string]any{"prompt": 999, "completion": 1, "total": 1000}, cost: "5.000000000"})
	f.settle(t, before, "0.500000000", 100, spent(tenantWeek, "0.500000000", 100))
	f.add(t, call{log: "globex", at: before, team: "a", key: "g1", status: 200, provider: "openai", model: "gpt-4o", priceVer: "p1",
		tokens: map[string]any{"prompt": 1, "completion": 1, "total": 2}, cost: "1.000000000"})
	f.flush(t)

	d := func(day, hour int) time.Time {
		return periodFrom.Add(time.Duration(day)*24*time.Hour + time.Duration(hour)*time.Hour)
	}
	// 1, 2: team a, openai gpt-4o, price version p1, cached and reasoning tokens.
	b.call1 = f.add(t, call{log: "acme", at: d(0, 1), team: "a", key: "k1", agent: "ag1", status: 200, provider: "openai", model: "gpt-4o", priceVer: "p1",
		tokens: map[string]any{"prompt": 1000, "cached": 200, "completion": 500, "reasoning": 100, "total": 1500}, cost: "0.012500000"})
	f.settle(t, d(0, 1), "0.012500000", 1500, spent(teamAMonth, "0.012500000", 1500), spent(tenantWeek, "0.512500000", 1600))
	f.add(t, call{log: "acme", at: d(3, 5), team: "a", key: "k1", agent: "ag2", status: 200, provider: "openai", model: "gpt-4o", priceVer: "p1",
		tokens: map[string]any{"prompt": 2000, "completion": 100, "total": 2100}, cost: "0.021000000"})
	f.settle(t, d(3, 5), "0.021000000", 2100, spent(teamAMonth, "0.033500000", 3600))
	f.add(t, call{log: "globex", at: d(3, 5), team: "a", key: "g1", status: 200, provider: "openai", model: "gpt-4o", priceVer: "p1",
		tokens: map[string]any{"prompt": 1, "completion": 1, "total": 2}, cost: "7.000000000"})
	f.flush(t)
	// 3: team b, anthropic, cache writes.
	f.add(t, call{log: "acme", at: d(10, 0), team: "b", key: "k2", agent: "ag3", status: 200, provider: "anthropic", model: "claude-sonnet-4", priceVer: "p1",
		tokens: map[string]any{"prompt": 300, "cache_write": 1000, "completion": 50, "total": 350}, cost: "0.004200000"})
	// The counter of team b says more than the settlements add up to.
	f.settle(t, d(10, 0), "0.004200000", 350, spent(teamBMonth, "0.005000000", 350))
	// 4: team a, an errored call that consumed tokens.
	f.add(t, call{log: "acme", at: d(12, 3), team: "a", key: "k1", agent: "ag1", failed: true, status: 502, provider: "openai", model: "gpt-4o", priceVer: "p1",
		tokens: map[string]any{"prompt": 400, "completion": 20, "total": 420}, cost: "0.001000000"})
	f.settle(t, d(12, 3), "0.001000000", 420, spent(teamAMonth, "0.034500000", 4020))
	f.flush(t)
	// 5: team b, the second price version, estimated tokens.
	f.add(t, call{log: "acme", at: d(20, 0), team: "b", key: "k2", agent: "ag3", status: 200, provider: "openai", model: "gpt-4o", priceVer: "p2",
		tokens: map[string]any{"prompt": 10, "completion": 5, "total": 15, "estimated": true}, cost: "0.000000150"})
	// 6: refused before routing (no provider, no team, no tokens).
	f.add(t, call{log: "acme", at: d(21, 0), key: "k9", failed: true, status: 401})
	// 7: team a, an unpriced target.
	f.add(t, call{log: "acme", at: d(29, 23), team: "a", key: "k1", agent: "ag1", status: 200, provider: "mock", model: "mock",
		tokens: map[string]any{"prompt": 7, "completion": 3, "total": 10}})
	f.flush(t)
	// Within the skew after the period: read, not counted.
	f.add(t, call{log: "acme", at: periodTo.Add(time.Minute), team: "a", key: "k1", agent: "ag1", status: 200, provider: "openai", model: "gpt-4o", priceVer: "p2",
		tokens: map[string]any{"prompt": 1, "completion": 1, "total": 2}, cost: "3.000000000"})
	f.flush(t)
	// After the period and the skew: closes it.
	f.add(t, call{log: "acme", at: periodTo.Add(time.Hour), team: "a", key: "k1", agent: "ag1", status: 200, provider: "openai", model: "gpt-4o", priceVer: "p2",
		tokens: map[string]any{"prompt": 1, "completion": 1, "total": 2}, cost: "4.000000000"})
	f.add(t, call{log: "globex", at: periodTo.Add(time.Hour), status: 200, provider: "openai", model: "gpt-4o", priceVer: "p2",
		tokens: map[string]any{"prompt": 1, "completion": 1, "total": 2}, cost: "4.000000000"})
	f.flush(t)
	return b
}
