package spend

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"aigw/gateway"
	"aigw/ledger"
)

// Restore raises a counter's spend to at least st's (reservations are not
// restored: their calls died with the process that held them).
func (m *Memory) Restore(tenant, key string, st State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counter(tenant, key, true)
	c.SpentUSD = max(c.SpentUSD, st.SpentUSD)
	c.SpentTokens = max(c.SpentTokens, st.SpentTokens)
	if c.expires == 0 {
		c.expires = m.now().Add(counterGrace + 31*24*time.Hour).UnixNano()
	}
}

// EntryReader reads a log's entries (a ledger.Store does).
type EntryReader interface {
	Head(ctx context.Context, log string) (ledger.Head, error)
	ReadEntries(ctx context.Context, log string, start uint64, n int) ([]ledger.StoredEntry, error)
}

// RestoreFromLedger sets in-memory counters to the spend the ledger
// records (the embedded default keeps its counters in memory: after a
// restart they would otherwise start at zero). It reads the log of tenant
// backwards from its end until entries are older than since (less an hour
// of clock skew), and takes each budget window's counter from the last
// settlement that lists it (counters only grow). It returns the windows
// restored.
func (m *Memory) RestoreFromLedger(ctx context.Context, r EntryReader, tenant string, since time.Time) (int, error) {
	head, err := r.Head(ctx, tenant)
	if err != nil {
		return 0, err
	}
	stop := since.Add(-time.Hour)
	restored := map[string]State{}
	const chunk = 256
	for end := head.Size; end > 0; {
		start := end - min(end, chunk)
		es, err := r.ReadEntries(ctx, tenant, start, int(end-start))
		if err != nil {
			return 0, err
		}
		older := false
		for i := len(es) - 1; i >= 0; i-- {
			ev, err := ledger.ParseEntry(es[i].Data)
			if err != nil {
				return 0, fmt.Errorf("spend: restoring counters from log %s at %d: %w", tenant, es[i].Index, err)
			}
			if ev.Time.Before(stop) {
				older = true
				continue
			}
			if ev.Kind != "budget" || ev.RawAttrs == nil {
				continue
			}
			var a struct {
				Action  string
				Budgets []struct {
					ID          string
					WindowStart time.Time `json:"window_start"`
					SpentUSD    *string   `json:"spent_usd"`
					SpentTokens *int64    `json:"spent_tokens"`
				}
			}
			if json.Unmarshal(ev.RawAttrs, &a) != nil || a.Action != "settle" {
				continue
			}
			for _, b := range a.Budgets {
				if b.SpentUSD == nil || b.SpentTokens == nil {
					continue // the counter missed this settlement
				}
				usd, err := parseNano(*b.SpentUSD)
				if err != nil {
					continue
				}
				k := b.ID + ":" + fmt.Sprint(b.WindowStart.Unix())
				st := restored[k]
				st.SpentUSD, st.SpentTokens = max(st.SpentUSD, usd), max(st.SpentTokens, *b.SpentTokens)
				restored[k] = st
			}
		}
		if older {
			break
		}
		end = start
	}
	for k, st := range restored {
		m.Restore(tenant, k, st)
	}
	return len(restored), nil
}

func parseNano(s string) (int64, error) {
	v, err := gateway.ParseNanoUSD(s)
	return int64(v), err
}
