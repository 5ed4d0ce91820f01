package usage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/export"
	"aigw/ledger/sequencer"
	"aigw/ledger/sqlite"
	"aigw/usage"
	"aigw/verify"

	"golang.org/x/mod/sumdb/note"
)

// benchEvents is the size of the benchmark's log.
const benchEvents = 100_000

// benchLedger writes a log of benchEvents realistic events (request,
// route, attempt, response per call; a budget settlement every 4th call),
// all in the period but the last, through the sequencer in batches of 500.
func benchLedger(b *testing.B) (*sqlite.Store, note.Verifiers) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "ledger.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	sg := fixedSigner(b)
	seq, err := sequencer.New(sequencer.Config{Store: store, Signer: sg, OriginPrefix: origin})
	if err != nil {
		b.Fatal(err)
	}
	var recs []sequencer.Record
	n := 0
	add := func(kind string, at time.Time, trace string, actor ledger.Actor, attrs map[string]any) {
		n++
		ev := &ledger.Event{ID: fmt.Sprintf("019a3c00-0000-7000-8000-%012x", n), Tenant: "acme", Kind: kind, Time: at, Actor: actor, TraceID: trace, Policy: "policy-v1", Attrs: attrs}
		e, err := ev.Entry()
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, sequencer.Record{Entry: e})
		if len(recs) == 500 {
			if _, err := seq.Append(ctx, "acme", recs); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	step := periodTo.Sub(periodFrom) / (benchEvents / 4)
	var spent int64
	for i := 0; n < benchEvents-1; i++ {
		at := periodFrom.Add(time.Duration(i) * step)
		trace := fmt.Sprintf("%032x", i+1)
		team := []string{"a", "b", "c"}[i%3]
		actor := ledger.Actor{KeyID: fmt.Sprintf("k%d", i%20), AgentID: fmt.Sprintf("agent-%d", i%50)}
		model := []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet-4"}[i%3]
		add(ledger.KindRequest, at, trace, actor, map[string]any{"endpoint": "chat.completions", "model": model, "stream": i%2 == 0, "bytes": 900, "team": team})
		add(ledger.KindRoute, at, trace, actor, map[string]any{"route": model, "strategy": "ordered", "candidates": []any{"a", "b"}, "reason": "ordered"})
		add(ledger.KindAttempt, at, trace, actor, map[string]any{"n": 1, "target": "t-" + model, "provider": "openai", "model": model, "outcome": "ok", "duration_us": 900})
		kind := ledger.KindResponse
		if i%50 == 0 {
			kind = ledger.KindError
		}
		add(kind, at.Add(time.Second), trace, actor, map[string]any{"status": 200, "latency_us": 1000, "attempts": 1, "target": "t-" + model,
			"provider": "openai", "model": model, "finish_reason": "stop", "price_version": fmt.Sprintf("p%d", i/20000), "team": team,
			"tokens": map[string]any{"prompt": 1000 + i%100, "cached": 100, "completion": 200, "total": 1200 + i%100}, "cost_usd": "0.000012500"})
		if i%4 == 0 && n < benchEvents-1 {
			spent += 12500
			add("budget", at.Add(time.Second), trace, actor, map[string]any{"action": "settle", "reservation": trace, "cost_usd": "0.000012500", "tokens": 1200,
				"budgets": []any{map[string]any{"id": "tenant-monthly", "window_start": "2026-11-01T00:00:00Z", "window_end": "2026-12-01T00:00:00Z",
					"spent_usd": usage.NanoUSD(spent).String(), "spent_tokens": 1200 * (spent / 12500)}}})
		}
	}
	add(ledger.KindRequest, periodTo.Add(time.Hour), "", ledger.Actor{}, map[string]any{"model": "late"})
	if len(recs) > 0 {
		if _, err := seq.Append(ctx, "acme", recs); err != nil {
			b.Fatal(err)
		}
	}
	return store, note.VerifierList(sg.Verifier())
}

// BenchmarkCompute computes the statement of a log of 100,000 events
// (all in the period) from SQLite and from an export directory, alone and
// with the log's verification (Params.Verifiers).
//
//	go test ./usage -run '^$' -bench Compute -benchtime 10x
func BenchmarkCompute(b *testing.B) {
	store, vs := benchLedger(b)
	ctx := context.Background()
	dir := b.TempDir()
	if _, err := export.Log(ctx, store, "acme", dir, export.Options{}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		src    verify.Source
		verify bool
	}{
		{"sqlite", verify.StoreSource(store), false},
		{"export", verify.DirSource(dir), false},
		{"sqlite+verify", verify.StoreSource(store), true},
		{"export+verify", verify.DirSource(dir), true},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := usage.Params{Tenant: "acme", From: periodFrom, To: periodTo, By: []string{usage.ByTeam, usage.ByKey, usage.ByAgent}}
			if c.verify {
				p.Verifiers = vs
			}
			var st *usage.Statement
			for b.Loop() {
				var err error
				if st, err = usage.Compute(ctx, c.src, p); err != nil {
					b.Fatal(err)
				}
			}
			if st.Totals.Calls == 0 || st.Budgets.Status != usage.StatusOK {
				b.Fatalf("statement: %+v %+v", st.Totals, st.Budgets)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(st.Ledger.Checkpoint.Size), "ns/event")
		})
	}
}

// BenchmarkSummarize is the admin API's live view over the same log.
func BenchmarkSummarize(b *testing.B) {
	store, _ := benchLedger(b)
	ctx := context.Background()
	src := verify.StoreSource(store)
	var sum *usage.Summary
	for b.Loop() {
		var err error
		if sum, err = usage.Summarize(ctx, src, "acme", periodFrom, periodTo, []string{usage.ByModel, usage.ByTeam}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(sum.Size), "ns/event")
}
