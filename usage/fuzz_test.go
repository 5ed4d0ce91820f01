package usage

import (
	"testing"
	"time"

	"aigw/ledger"
)

// FuzzEntry feeds arbitrary bytes to the scan of an entry: it must never
// panic, and an entry it cannot read is an anomaly, not a call.
func FuzzEntry(f *testing.F) {
	at := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	for _, ev := range []ledger.Event{
		{Kind: ledger.KindResponse, Attrs: map[string]any{"provider": "openai", "model": "gpt-4o", "price_version": "p1", "team": "a\"b",
			"tokens": map[string]any{"prompt": 10, "cached": 2, "completion": 3, "total": 13, "estimated": true}, "cost_usd": "0.000012500"}},
		{Kind: ledger.KindError, Actor: ledger.Actor{KeyID: "k}\",\"", AgentID: "ag"}, Attrs: map[string]any{"status": 502, "error_code": "ledger_unavailable"}},
		{Kind: "budget", Attrs: map[string]any{"action": "settle", "cost_usd": "1", "tokens": 3, "team": "a",
			"budgets": []any{map[string]any{"id": "b", "scope": "team=a", "window_start": "2026-11-01T00:00:00Z", "spent_usd": "1", "spent_tokens": 3}}}},
		{Kind: ledger.KindRequest, Attrs: map[string]any{"model": "m"}},
	} {
		ev.ID, ev.Tenant, ev.Time, ev.TraceID = "019a3c00-0000-7000-8000-000000000001", "acme", at, "0123456789abcdef0123456789abcdef"
		e, err := ev.Entry()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e)
	}
	f.Add([]byte(`{"attrs":{"tokens":{"prompt":"9223372036854775807"}},"kind":"response","tenant":"acme","time":"2026-11-02T00:00:00.000000Z","v":1}`))
	f.Add([]byte(`{"attrs":{"budgets":[{"id":"\u0000","window_start":"x"}],"action":"settle"},"kind":"budget","tenant":"acme","time":"2026-11-02T00:00:00.000000Z","v":1}`))
	c := newScanCfg("acme", at.Add(-time.Hour), at.Add(time.Hour), 0, "", 1<<nDims-1, true)
	cTeam := newScanCfg("acme", at.Add(-time.Hour), at.Add(time.Hour), 0, "a", 1<<nDims-1, true)
	f.Fuzz(func(t *testing.T, e []byte) {
		for _, cfg := range []*scanCfg{c, cTeam} {
			p := newPartial()
			p.entry(cfg, 7, e)
			var st Statement
			_ = p.result(&st, cfg.mask)
			if p.anomalies > 0 && len(p.samples) == 0 {
				t.Fatal("an anomaly without a sample")
			}
		}
		_, _ = Digest(e)
	})
}
