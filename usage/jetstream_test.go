package usage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/jetstream"
	"aigw/ledger/ledgertest"
	"aigw/ledger/sequencer"
	"aigw/ledger/sqlite"
	"aigw/usage"
	"aigw/verify"

	"golang.org/x/mod/sumdb/note"
)

// TestThroughJetStream writes the calls the way the gateway does: events
// published to an embedded JetStream, sequenced into SQLite by the
// sequencing loop, two tenants sharing the stream. The statement counts
// only its tenant's calls and verifies.
func TestThroughJetStream(t *testing.T) {
	ctx := context.Background()
	_, nc := ledgertest.JetStream(t)
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "ledger.db"), Logger: ledgertest.TestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sg := fixedSigner(t)
	seq, err := sequencer.New(sequencer.Config{Store: store, Signer: sg, OriginPrefix: origin})
	if err != nil {
		t.Fatal(err)
	}
	shutdown, err := jetstream.StartSequencer(ctx, jetstream.SequencerConfig{Conn: nc, Sequencer: seq, Store: store, MaxWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(ctx)
	prod, err := jetstream.NewProducer(jetstream.ProducerConfig{Conn: nc})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(tenant, kind string, at time.Time, attrs map[string]any) {
		ev := jetstream.NewEvent(tenant, kind)
		ev.Time, ev.Actor, ev.Attrs = at, ledger.Actor{KeyID: "k-" + tenant, AgentID: "agent"}, attrs
		if err := prod.Record(ctx, ev, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{}
	for i := range 40 {
		at := periodFrom.Add(time.Duration(i) * time.Hour)
		for _, tenant := range []string{"acme", "globex"} {
			publish(tenant, ledger.KindRequest, at, map[string]any{"endpoint": "chat.completions", "model": "fast", "stream": false, "bytes": 10, "team": "a"})
			pv := fmt.Sprintf("p%d", i%2+1)
			publish(tenant, ledger.KindResponse, at.Add(time.Second), map[string]any{"status": 200, "latency_us": 100, "attempts": 1,
				"provider": "openai", "model": "gpt-4o-mini", "price_version": pv, "team": "a",
				"tokens": map[string]any{"prompt": 100, "completion": 10, "total": 110}, "cost_usd": "0.000100000"})
			want[tenant+pv]++
		}
	}
	publish("acme", ledger.KindRequest, periodTo.Add(time.Hour), map[string]any{"endpoint": "chat.completions", "model": "fast"})
	for deadline := time.Now().Add(30 * time.Second); ; {
		h, err := store.Head(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if h.Size == 81 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acme sequenced %d of 81 events", h.Size)
		}
		time.Sleep(10 * time.Millisecond)
	}
	src := verify.StoreSource(store)
	st, err := usage.Compute(ctx, src, usage.Params{Tenant: "acme", From: periodFrom, To: periodTo, Verifiers: note.VerifierList(sg.Verifier())})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Lines) != 2 || st.Totals.Calls != 40 || st.Totals.CostUSD.String() != "0.004000000" || !st.Ledger.PeriodClosed {
		t.Fatalf("statement: lines %+v totals %+v ledger %+v", st.Lines, st.Totals, st.Ledger)
	}
	for _, l := range st.Lines {
		if int(l.Calls) != want["acme"+l.PriceVersion] {
			t.Errorf("line %+v: want %d calls", l, want["acme"+l.PriceVersion])
		}
	}
	if err := usage.Sign(st, sg); err != nil {
		t.Fatal(err)
	}
	b, err := st.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := usage.Verify(ctx, b, sg.Verifier(), src); err != nil {
		t.Fatal(err)
	}
}
