package usage_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/export"
	"aigw/ledger/readapi"
	"aigw/usage"
	"aigw/verify"

	"golang.org/x/mod/sumdb/note"
)

func params(by ...string) usage.Params {
	return usage.Params{Tenant: "acme", From: periodFrom, To: periodTo, By: by}
}

func mustCompute(t *testing.T, src verify.Source, p usage.Params) *usage.Statement {
	t.Helper()
	st, err := usage.Compute(context.Background(), src, p)
	if err != nil {
		t.Fatalf("Compute: %v", err)
	}
	return st
}

func mustJSON(t *testing.T, st *usage.Statement) []byte {
	t.Helper()
	b, err := st.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func counts(calls, failed, est, unpriced uint64, prompt, cached, cacheWrite, completion, reasoning, total int64, cost string) usage.Counts {
	c, err := usage.ParseNanoUSD(cost)
	if err != nil {
		panic(err)
	}
	return usage.Counts{Calls: calls, FailedCalls: failed, EstimatedCalls: est, UnpricedCalls: unpriced, PromptTokens: prompt,
		CachedTokens: cached, CacheWriteTokens: cacheWrite, CompletionTokens: completion, ReasoningTokens: reasoning, TotalTokens: total, CostUSD: c}
}

func TestComputeTotals(t *testing.T) {
	f := newFixture(t)
	f.build(t)
	st := mustCompute(t, verify.StoreSource(f.store), params())

	want := []usage.Line{
		{Provider: "", Model: "", PriceVersion: "", Counts: counts(1, 1, 0, 0, 0, 0, 0, 0, 0, 0, "0")},
		{Provider: "anthropic", Model: "claude-sonnet-4", PriceVersion: "p1", Counts: counts(1, 0, 0, 0, 300, 0, 1000, 50, 0, 350, "0.0042")},
		{Provider: "mock", Model: "mock", PriceVersion: "", Counts: counts(1, 0, 0, 1, 7, 0, 0, 3, 0, 10, "0")},
		{Provider: "openai", Model: "gpt-4o", PriceVersion: "p1", Counts: counts(3, 1, 0, 0, 3400, 200, 0, 620, 100, 4020, "0.0345")},
		{Provider: "openai", Model: "gpt-4o", PriceVersion: "p2", Counts: counts(1, 0, 1, 0, 10, 0, 0, 5, 0, 15, "0.00000015")},
	}
	if len(st.Lines) != len(want) {
		t.Fatalf("lines = %+v\nwant %+v", st.Lines, want)
	}
	for i := range want {
		if st.Lines[i] != want[i] {
			t.Errorf("line %d = %+v\nwant %+v", i, st.Lines[i], want[i])
		}
	}
	if w := counts(7, 2, 1, 1, 3717, 200, 1000, 678, 100, 4395, "0.03870015"); st.Totals != w {
		t.Errorf("totals = %+v\nwant %+v", st.Totals, w)
	}
	if st.Totals.CostUSD.String() != "0.038700150" {
		t.Errorf("total cost = %s", st.Totals.CostUSD)
	}
	l := st.Ledger
	head, err := f.store.Head(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if !l.PeriodClosed || l.Checkpoint.Size != head.Size || l.Log != "acme" || l.Origin != origin+"/acme" {
		t.Errorf("ledger = %+v (head %d)", l, head.Size)
	}
	if !strings.HasPrefix(l.Checkpoint.Note, origin+"/acme\n") || l.Anomalies != 0 {
		t.Errorf("ledger = %+v", l)
	}
	// The period's entries: 7 calls (request + outcome) and 4 settlements.
	if l.Entries != 18 || l.FirstIndex == nil || l.LastIndex == nil || *l.LastIndex-*l.FirstIndex != 17 {
		t.Errorf("entries %d [%v, %v]", l.Entries, l.FirstIndex, l.LastIndex)
	}
	if st.GroupBy[0] != "provider" || len(st.GroupBy) != 3 || st.Skew != "5m0s" || st.From != "2026-11-01T00:00:00Z" || st.To != "2026-12-01T00:00:00Z" {
		t.Errorf("header: %+v", st)
	}
}

func TestBudgetReconciliation(t *testing.T) {
	f := newFixture(t)
	f.build(t)
	st := mustCompute(t, verify.StoreSource(f.store), params())
	b := st.Budgets
	if b.Status != usage.StatusMismatch || b.Mismatches != 1 || len(b.Windows) != 3 {
		t.Fatalf("budgets = %+v", b)
	}
	byID := map[string]usage.BudgetWindow{}
	for _, w := range b.Windows {
		byID[w.Budget] = w
	}
	if w := byID["team-a-monthly"]; w.Status != usage.StatusOK || w.Settlements != 3 || w.CostUSD.String() != "0.034500000" || w.Tokens != 4020 || w.SpentTokens != 4020 {
		t.Errorf("team-a-monthly = %+v", w)
	}
	// The weekly window began before the period: its settlement before the
	// period is read back, so it reconciles.
	if w := byID["tenant-weekly"]; w.Status != usage.StatusOK || w.Settlements != 2 || w.CostUSD.String() != "0.512500000" || w.WindowEnd != "2026-11-05T00:00:00Z" {
		t.Errorf("tenant-weekly = %+v", w)
	}
	if st.Ledger.ScanFrom != 0 {
		t.Errorf("scan_from = %d, want 0 (read back to the weekly window)", st.Ledger.ScanFrom)
	}
	if w := byID["team-b-monthly"]; w.Status != usage.StatusMismatch || w.CostUSD.String() != "0.004200000" || w.SpentUSD.String() != "0.005000000" {
		t.Errorf("team-b-monthly = %+v", w)
	}

	if w := byID["team-b-monthly"]; w.Scope != "team=b,key=k2" {
		t.Errorf("team-b-monthly scope %q", w.Scope)
	}

	// A team's statement reconciles the budgets of its scope only.
	p := params()
	p.Team = "a"
	sa := mustCompute(t, verify.StoreSource(f.store), p)
	if sa.Budgets.Status != usage.StatusOK || len(sa.Budgets.Windows) != 1 || sa.Budgets.Windows[0] != byID["team-a-monthly"] {
		t.Errorf("team a budgets = %+v", sa.Budgets)
	}
	p.Team = "b"
	if sb := mustCompute(t, verify.StoreSource(f.store), p); sb.Budgets.Status != usage.StatusMismatch || len(sb.Budgets.Windows) != 1 {
		t.Errorf("team b budgets = %+v", sb.Budgets)
	}
}

// TestProducerCases: what the gateway writes beside plain outcomes and
// settlements: a duplicate settlement (counted once by the counter), a
// settlement the counter missed (a mismatch), settlements without scopes
// (a team's statement goes by their team), and an answer withheld because
// the ledger did not acknowledge (a second outcome event of the call).
func TestProducerCases(t *testing.T) {
	f := newFixture(t)
	at := periodFrom.Add(time.Hour)
	w := []any{"b1", "", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"}
	f.add(t, call{log: "acme", at: at, team: "a", key: "k1", status: 200, provider: "openai", model: "gpt-4o", priceVer: "p1",
		tokens: map[string]any{"prompt": 10, "completion": 1, "total": 11}, cost: "0.000100000"})
	f.settle(t, at, "0.000100000", 11, spent(w, "0.000100000", 11))
	f.event(t, "acme", "budget", at, "", ledger.Actor{}, map[string]any{"action": "settle", "reservation": "r-dup", "duplicate": true, "cost_usd": "0.000100000", "tokens": 11,
		"budgets": []any{map[string]any{"id": "b1", "window_start": "2026-11-01T00:00:00Z", "spent_usd": "0.000100000", "spent_tokens": 11}}})
	f.event(t, "acme", "budget", at, "", ledger.Actor{}, map[string]any{"action": "settle", "reservation": "r-team", "team": "z", "cost_usd": "0.000200000", "tokens": 5,
		"budgets": []any{map[string]any{"id": "b2", "window_start": "2026-11-01T00:00:00Z", "spent_usd": "0.000200000", "spent_tokens": 5}}})
	// The counter failed: the spend is in the event, not in the counter.
	f.event(t, "acme", "budget", at, "", ledger.Actor{}, map[string]any{"action": "settle", "reservation": "r-err", "error": "redis down", "cost_usd": "0.000300000", "tokens": 7,
		"budgets": []any{map[string]any{"id": "b3", "window_start": "2026-11-01T00:00:00Z"}}})
	f.event(t, "acme", ledger.KindError, at.Add(time.Second), fmt.Sprintf("%032x", 999), ledger.Actor{KeyID: "k1"}, map[string]any{"status": 503,
		"latency_us": 10, "attempts": 1, "target": "openai-gpt-4o", "provider": "openai", "model": "gpt-4o", "team": "a",
		"error_type": "service_unavailable", "error_code": "ledger_unavailable", "error": "answer withheld"})
	f.flush(t)
	st := mustCompute(t, verify.StoreSource(f.store), params())
	if st.Totals.Calls != 1 || st.Totals.FailedCalls != 0 {
		t.Errorf("totals = %+v (the withheld marker is not a call)", st.Totals)
	}
	got := map[string]string{}
	for _, w := range st.Budgets.Windows {
		got[w.Budget] = w.Status + " " + w.CostUSD.String() + " " + w.SpentUSD.String()
	}
	want := map[string]string{"b1": "ok 0.000100000 0.000100000", "b2": "ok 0.000200000 0.000200000", "b3": "mismatch 0.000300000 0.000000000"}
	if len(got) != len(want) {
		t.Errorf("windows %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	p := params()
	p.Team = "z"
	if sz := mustCompute(t, verify.StoreSource(f.store), p); len(sz.Budgets.Windows) != 1 || sz.Budgets.Windows[0].Budget != "b2" || sz.Totals.Calls != 0 {
		t.Errorf("team z: %+v %+v", sz.Budgets, sz.Totals)
	}
}

func TestTeamAndGrouping(t *testing.T) {
	f := newFixture(t)
	f.build(t)
	p := params(usage.ByTeam, usage.ByKey, usage.ByAgent)
	p.Team = "a"
	st := mustCompute(t, verify.StoreSource(f.store), p)
	want := []usage.Line{
		{Provider: "mock", Model: "mock", Team: "a", KeyID: "k1", AgentID: "ag1", Counts: counts(1, 0, 0, 1, 7, 0, 0, 3, 0, 10, "0")},
		{Provider: "openai", Model: "gpt-4o", PriceVersion: "p1", Team: "a", KeyID: "k1", AgentID: "ag1", Counts: counts(2, 1, 0, 0, 1400, 200, 0, 520, 100, 1920, "0.0135")},
		{Provider: "openai", Model: "gpt-4o", PriceVersion: "p1", Team: "a", KeyID: "k1", AgentID: "ag2", Counts: counts(1, 0, 0, 0, 2000, 0, 0, 100, 0, 2100, "0.021")},
	}
	if len(st.Lines) != len(want) {
		t.Fatalf("lines = %+v", st.Lines)
	}
	for i := range want {
		if st.Lines[i] != want[i] {
			t.Errorf("line %d = %+v\nwant %+v", i, st.Lines[i], want[i])
		}
	}
	if st.Team != "a" || strings.Join(st.GroupBy, ",") != "provider,model,price_version,team,key,agent" {
		t.Errorf("team %q group_by %v", st.Team, st.GroupBy)
	}
	if st.Totals.CostUSD.String() != "0.034500000" || st.Totals.Calls != 4 {
		t.Errorf("totals = %+v", st.Totals)
	}
	if _, err := usage.Compute(context.Background(), verify.StoreSource(f.store), params("route")); err == nil {
		t.Error("an unknown grouping was accepted")
	}
}

// TestCSVMatchesJSON checks that the CSV rows carry the JSON's numbers.
func TestCSVMatchesJSON(t *testing.T) {
	f := newFixture(t)
	f.build(t)
	st := mustCompute(t, verify.StoreSource(f.store), params(usage.ByTeam))
	var buf bytes.Buffer
	if err := st.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(st.Lines)+2 {
		t.Fatalf("%d rows for %d lines", len(rows), len(st.Lines))
	}
	header := rows[0]
	var doc struct {
		Lines  []map[string]any `json:"lines"`
		Totals map[string]any   `json:"totals"`
	}
	dec := json.NewDecoder(bytes.NewReader(mustJSON(t, st)))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	check := func(row []string, obj map[string]any, keys bool) {
		for i, col := range header {
			v, ok := obj[col]
			if !ok { // an empty key is omitted; totals have no keys
				if keys && row[i] != "" || !keys && row[i] != "" && (i != 0 || row[i] != "TOTAL") {
					t.Errorf("column %s: %q not in the JSON", col, row[i])
				}
				continue
			}
			if got := strings.TrimPrefix(row[i], "'"); got != toString(v) {
				t.Errorf("column %s: CSV %q, JSON %v", col, row[i], v)
			}
		}
	}
	for i, obj := range doc.Lines {
		check(rows[i+1], obj, true)
	}
	last := rows[len(rows)-1]
	if last[0] != "TOTAL" {
		t.Errorf("last row %v", last)
	}
	check(last, doc.Totals, false)
	if strings.Join(header, ",") != "provider,model,price_version,team,calls,failed_calls,estimated_calls,unpriced_calls,prompt_tokens,cached_tokens,cache_write_tokens,completion_tokens,reasoning_tokens,total_tokens,cost_usd" {
		t.Errorf("header %v", header)
	}
}

func toString(v any) string {
	switch v := v.(type) {
	case json.Number:
		return v.String()
	case string:
		return v
	}
	return ""
}

// TestDeterminism: the same ledger and parameters give the same bytes,
// whatever the source (store, export directory), the workers, and the
// entries appended after the period closed.
func TestDeterminism(t *testing.T) {
	f := newFixture(t)
	f.build(t)
	ctx := context.Background()
	sg := fixedSigner(t)
	sign := func(st *usage.Statement) []byte {
		if err := usage.Sign(st, sg); err != nil {
			t.Fatal(err)
		}
		return mustJSON(t, st)
	}
	p := params(usage.ByKey)
	first := sign(mustCompute(t, verify.StoreSource(f.store), p))
	p1 := p
	p1.Workers = 1
	if b := sign(mustCompute(t, verify.StoreSource(f.store), p1)); !bytes.Equal(b, first) {
		t.Errorf("one worker:\n%s\nwant\n%s", b, first)
	}
	dir := t.TempDir()
	if _, err := export.Log(ctx, f.store, "acme", dir, export.Options{}); err != nil {
		t.Fatal(err)
	}
	if b := sign(mustCompute(t, verify.DirSource(dir), p)); !bytes.Equal(b, first) {
		t.Errorf("from an export:\n%s\nwant\n%s", b, first)
	}
	mux := http.NewServeMux()
	mux.Handle("/ledger/", http.StripPrefix("/ledger", readapi.New(readapi.Config{Store: f.store})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	api := verify.HTTPSource(srv.URL+"/ledger", srv.Client())
	if b := sign(mustCompute(t, api, p)); !bytes.Equal(b, first) {
		t.Errorf("from the read API:\n%s\nwant\n%s", b, first)
	}
	// More traffic after the period: the closed period's statement stays.
	for i := range 300 {
		f.add(t, call{log: "acme", at: periodTo.Add(2*time.Hour + time.Duration(i)*time.Second), team: "a", key: "k1", status: 200, provider: "openai", model: "gpt-4o", priceVer: "p2",
			tokens: map[string]any{"prompt": 1, "completion": 1, "total": 2}, cost: "1.000000000"})
		if i%100 == 99 {
			f.flush(t)
		}
	}
	if b := sign(mustCompute(t, verify.StoreSource(f.store), p)); !bytes.Equal(b, first) {
		t.Errorf("after more traffic:\n%s\nwant\n%s", b, first)
	}
	// The export made before the growth still verifies the statement, and
	// a later export too.
	vk := sg.Verifier()
	for _, src := range []verify.Source{verify.DirSource(dir), verify.StoreSource(f.store), api} {
		if err := usage.Verify(ctx, first, vk, src); err != nil {
			t.Errorf("Verify from %T: %v", src, err)
		}
	}
	later := t.TempDir()
	if _, err := export.Log(ctx, f.store, "acme", later, export.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := usage.Verify(ctx, first, vk, verify.DirSource(later)); err != nil {
		t.Errorf("Verify from a later export: %v", err)
	}
}

func TestUnclosedPeriod(t *testing.T) {
	f := newFixture(t)
	f.add(t, call{log: "acme", at: periodFrom.Add(time.Hour), team: "a", key: "k1", status: 200, provider: "openai", model: "gpt-4o", priceVer: "p1",
		tokens: map[string]any{"prompt": 10, "completion": 1, "total": 11}, cost: "0.000100000"})
	f.flush(t)
	src := verify.StoreSource(f.store)
	vs := note.VerifierList(f.signer.Verifier())
	p := params()
	p.Verifiers = vs
	st := mustCompute(t, src, p)
	if st.Ledger.PeriodClosed || st.Ledger.Checkpoint.Size != 2 || st.Totals.Calls != 1 {
		t.Fatalf("ledger = %+v totals %+v", st.Ledger, st.Totals)
	}
	if err := usage.Sign(st, f.signer); err != nil {
		t.Fatal(err)
	}
	b := mustJSON(t, st)
	// The log grows: the provisional statement still verifies at its
	// checkpoint, and a new one counts more.
	f.add(t, call{log: "acme", at: periodFrom.Add(2 * time.Hour), team: "a", key: "k1", status: 200, provider: "openai", model: "gpt-4o", priceVer: "p1",
		tokens: map[string]any{"prompt": 10, "completion": 1, "total": 11}, cost: "0.000100000"})
	f.flush(t)
	if err := usage.Verify(context.Background(), b, f.signer.Verifier(), src); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if st2 := mustCompute(t, src, p); st2.Totals.Calls != 2 || st2.Ledger.PeriodClosed {
		t.Errorf("later: %+v", st2.Totals)
	}
}

func TestSignVerify(t *testing.T) {
	f := newFixture(t)
	f.build(t)
	ctx := context.Background()
	src := verify.StoreSource(f.store)
	p := params(usage.ByTeam)
	p.Verifiers = note.VerifierList(f.signer.Verifier())
	st := mustCompute(t, src, p)
	if err := usage.Sign(st, f.signer); err != nil {
		t.Fatal(err)
	}
	b := mustJSON(t, st)
	if !strings.HasPrefix(st.Signature, usage.Format+"\ntenant acme\nperiod 2026-11-01T00:00:00Z 2026-12-01T00:00:00Z\nsha256 ") {
		t.Errorf("signature note:\n%s", st.Signature)
	}
	vk := f.signer.Verifier()
	if err := usage.Verify(ctx, b, vk, nil); err != nil {
		t.Errorf("Verify (signature only): %v", err)
	}
	if err := usage.Verify(ctx, b, vk, src); err != nil {
		t.Errorf("Verify (with the ledger): %v", err)
	}
	// Indentation does not matter: the digest is of the canonical form.
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		t.Fatal(err)
	}
	if err := usage.Verify(ctx, compact.Bytes(), vk, nil); err != nil {
		t.Errorf("Verify (compact): %v", err)
	}
	// Another key does not verify it.
	other, _, _ := newKey(t, "other")
	var ve *usage.VerifyError
	if err := usage.Verify(ctx, b, other, nil); !errors.As(err, &ve) || ve.Signature == nil {
		t.Errorf("Verify with another key: %v", err)
	}
	// An unsigned statement does not verify.
	st.Signature = ""
	if err := usage.Verify(ctx, mustJSON(t, st), vk, nil); !errors.Is(err, usage.ErrNotSigned) {
		t.Errorf("unsigned: %v", err)
	}
	// A member the format does not have is refused.
	bad := bytes.Replace(b, []byte(`"format"`), []byte(`"extra": 1, "format"`), 1)
	if err := usage.Verify(ctx, bad, vk, nil); err == nil || errors.As(err, &ve) {
		t.Errorf("extra member: %v", err)
	}
}

func newKey(t *testing.T, name string) (note.Verifier, note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(nil, name)
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
	return v, s, vkey
}

// TestTamperStatement: a number changed in a signed statement fails its
// signature, and the recomputation names the line.
func TestTamperStatement(t *testing.T) {
	f := newFixture(t)
	f.build(t)
	ctx := context.Background()
	src := verify.StoreSource(f.store)
	st := mustCompute(t, src, params())
	if err := usage.Sign(st, f.signer); err != nil {
		t.Fatal(err)
	}
	b := mustJSON(t, st)
	bad := bytes.Replace(b, []byte(`"cost_usd": "0.034500000"`), []byte(`"cost_usd": "0.030000000"`), 1)
	if bytes.Equal(bad, b) {
		t.Fatal("no cost to change")
	}
	err := usage.Verify(ctx, bad, f.signer.Verifier(), nil)
	var ve *usage.VerifyError
	if !errors.As(err, &ve) || ve.Signature == nil {
		t.Fatalf("changed statement, signature only: %v", err)
	}
	err = usage.Verify(ctx, bad, f.signer.Verifier(), src)
	if !errors.As(err, &ve) || ve.Signature == nil || ve.Ledger != nil || len(ve.Diffs) != 1 {
		t.Fatalf("changed statement: %v", err)
	}
	d := ve.Diffs[0]
	if d.Where != `line provider="openai" model="gpt-4o" price_version="p1"` || d.Field != "cost_usd" || d.Statement != "0.030000000" || d.Ledger != "0.034500000" {
		t.Errorf("diff = %+v", d)
	}
	t.Log(err)

	// Re-signed by someone else's key: the signature fails all the same.
	_, s2, _ := newKey(t, "aigw-test")
	st2, _ := usage.Parse(bad)
	if err := usage.Sign(st2, s2); err != nil {
		t.Fatal(err)
	}
	if err := usage.Verify(ctx, mustJSON(t, st2), f.signer.Verifier(), nil); !errors.As(err, &ve) || ve.Signature == nil {
		t.Errorf("re-signed with another key: %v", err)
	}
}

// TestTamperLedger: an entry changed in an export fails verification
// naming the entry, and the recomputation names the line it changes.
func TestTamperLedger(t *testing.T) {
	f := newFixture(t)
	b := f.build(t)
	ctx := context.Background()
	st := mustCompute(t, verify.StoreSource(f.store), params())
	if err := usage.Sign(st, f.signer); err != nil {
		t.Fatal(err)
	}
	stmt := mustJSON(t, st)
	dir := t.TempDir()
	if _, err := export.Log(ctx, f.store, "acme", dir, export.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := usage.Verify(ctx, stmt, f.signer.Verifier(), verify.DirSource(dir)); err != nil {
		t.Fatalf("untampered export: %v", err)
	}
	idx := f.index[b.call1]
	// Change the entry in its bundle (and in the partial bundles of
	// earlier sizes that hold it).
	changed := 0
	err := filepath.WalkDir(filepath.Join(dir, "acme", "tile", "entries"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		bad := bytes.Replace(data, []byte(`"cost_usd":"0.012500000"`), []byte(`"cost_usd":"0.000000001"`), 1)
		if bytes.Equal(bad, data) {
			return nil
		}
		changed++
		return os.WriteFile(path, bad, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if changed == 0 {
		t.Fatal("found no entry to change")
	}
	err = usage.Verify(ctx, stmt, f.signer.Verifier(), verify.DirSource(dir))
	var ve *usage.VerifyError
	var mis *verify.MismatchError
	if !errors.As(err, &ve) || ve.Signature != nil || !errors.As(err, &mis) {
		t.Fatalf("tampered ledger: %v", err)
	}
	if mis.Kind != verify.KindEntry || mis.Index != idx {
		t.Errorf("mismatch %+v, want kind entry at index %d", mis, idx)
	}
	found := false
	for _, d := range ve.Diffs {
		if d.Where == `line provider="openai" model="gpt-4o" price_version="p1"` && d.Field == "cost_usd" && d.Statement == "0.034500000" && d.Ledger == "0.022000001" {
			found = true
		}
	}
	if !found {
		t.Errorf("diffs = %v", ve.Diffs)
	}
	t.Log(err)
}

func TestSummarize(t *testing.T) {
	f := newFixture(t)
	f.build(t)
	sum, err := usage.Summarize(context.Background(), verify.StoreSource(f.store), "acme", periodFrom, periodTo, []string{usage.ByTeam, usage.ByProvider})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range sum.Lines {
		got[l.Provider+"/"+l.Team] = l.CostUSD.String()
		if l.Model != "" || l.KeyID != "" {
			t.Errorf("ungrouped key set: %+v", l)
		}
	}
	want := map[string]string{"/": "0.000000000", "mock/a": "0.000000000", "openai/a": "0.034500000", "anthropic/b": "0.004200000", "openai/b": "0.000000150"}
	if len(got) != len(want) {
		t.Errorf("lines %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s, want %s", k, got[k], v)
		}
	}
	if sum.Totals.CostUSD.String() != "0.038700150" || sum.Totals.Calls != 7 {
		t.Errorf("totals %+v", sum.Totals)
	}
	// The whole statement and the summary agree.
	st := mustCompute(t, verify.StoreSource(f.store), params())
	if st.Totals != sum.Totals {
		t.Errorf("statement totals %+v, summary %+v", st.Totals, sum.Totals)
	}
}

func TestAnomalies(t *testing.T) {
	f := newFixture(t)
	at := periodFrom.Add(time.Hour)
	f.add(t, call{log: "acme", at: at, team: "a", key: "k1", status: 200, provider: "openai", model: "gpt-4o", priceVer: "p1",
		tokens: map[string]any{"prompt": 10, "completion": 1, "total": 11}, cost: "0.0000000001"}) // 10 decimals
	f.add(t, call{log: "acme", at: at, team: "a", key: "k1", status: 200, provider: "openai", model: "gpt-4o", priceVer: "p1",
		tokens: map[string]any{"prompt": 1.5, "completion": 1, "total": 11}, cost: "0.000000001"})
	f.event(t, "acme", "budget", at, "", ledger.Actor{}, map[string]any{"action": "settle", "cost_usd": "x", "budgets": []any{}})
	f.flush(t)
	st := mustCompute(t, verify.StoreSource(f.store), params())
	if st.Ledger.Anomalies != 3 || len(st.Ledger.AnomalySamples) != 3 {
		t.Fatalf("anomalies = %d %+v", st.Ledger.Anomalies, st.Ledger.AnomalySamples)
	}
	if st.Totals.Calls != 2 || st.Totals.CostUSD != 1 || st.Totals.PromptTokens != 10 || st.Totals.CompletionTokens != 2 {
		t.Errorf("totals = %+v", st.Totals)
	}
	t.Log(st.Ledger.AnomalySamples)
}

func TestParamsRefused(t *testing.T) {
	f := newFixture(t)
	f.build(t)
	src := verify.StoreSource(f.store)
	for name, p := range map[string]usage.Params{
		"system log":   {Tenant: ledger.SystemLog, From: periodFrom, To: periodTo},
		"bad name":     {Tenant: "Acme!", From: periodFrom, To: periodTo},
		"empty period": {Tenant: "acme", From: periodTo, To: periodFrom},
		"nanoseconds":  {Tenant: "acme", From: periodFrom.Add(1), To: periodTo},
	} {
		if _, err := usage.Compute(context.Background(), src, p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := usage.Compute(context.Background(), src, usage.Params{Tenant: "nobody", From: periodFrom, To: periodTo}); err == nil {
		t.Error("a log without a checkpoint gave a statement")
	}
}
