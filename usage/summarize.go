package usage

import (
	"context"
	"fmt"
	"time"

	"aigw/ledger"
	"aigw/verify"
)

// Summary is a live view of a tenant's spend (the admin API's "spend per
// model, provider, team, key and agent"): unsigned, not verified, read
// up to the log's latest checkpoint.
type Summary struct {
	Tenant string `json:"tenant"`
	From   string `json:"from"`
	To     string `json:"to"`
	// GroupBy lists the dimensions of the lines; the keys of the other
	// dimensions are empty.
	GroupBy []string `json:"group_by"`
	// Size is the size of the log read (its latest checkpoint).
	Size uint64 `json:"size"`
	// Lines are sorted by their keys; Totals adds them up.
	Lines  []Line `json:"lines"`
	Totals Counts `json:"totals"`
	// Anomalies counts the entries that could not be used as the formats say.
	Anomalies uint64 `json:"anomalies"`
}

// Summarize adds up a tenant's calls whose outcome event is dated in
// [from, to), grouped by groupBy (any of ByProvider, ByModel,
// ByPriceVersion, ByTeam, ByKey, ByAgent; none: one line). It counts what a
// statement counts, but reads only the period's entries (from the first
// dated at or after from-DefaultSkew to the first at or after
// to+DefaultSkew) up to the latest checkpoint, verifies nothing and
// reconciles no budget: it is the cheap, live view, not a statement.
func Summarize(ctx context.Context, src verify.Source, tenant string, from, to time.Time, groupBy []string) (*Summary, error) {
	p := Params{Tenant: tenant, From: from, To: to}
	if _, err := p.check(); err != nil {
		return nil, err
	}
	mask, err := parseDims(groupBy)
	if err != nil {
		return nil, err
	}
	note, err := src.ReadCheckpoint(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("usage: checkpoint of log %s: %w", tenant, err)
	}
	cp, err := checkpointBody(note)
	if err != nil {
		return nil, fmt.Errorf("usage: checkpoint of log %s: %w", tenant, err)
	}
	r := newReader(src, tenant, cp.Size, cp.Size)
	f := func(t time.Time) string { return t.UTC().Format(ledger.TimeFormat) }
	nStart, err := r.firstAtOrAfter(ctx, f(from.Add(-p.Skew)))
	if err != nil {
		return nil, err
	}
	nEnd, err := r.firstAtOrAfter(ctx, f(to.Add(p.Skew)))
	if err != nil {
		return nil, err
	}
	s := &scan{r: r, cfg: newScanCfg(tenant, from, to, nStart, "", mask, false), acc: newPartial()}
	if err := s.run(ctx, nStart/ledger.TileWidth*ledger.TileWidth, max(nEnd, nStart)); err != nil {
		return nil, err
	}
	var st Statement
	if err := s.acc.result(&st, mask); err != nil {
		return nil, err
	}
	return &Summary{
		Tenant: tenant, From: formatTime(from), To: formatTime(to), GroupBy: mask.names(), Size: cp.Size,
		Lines: st.Lines, Totals: st.Totals, Anomalies: st.Ledger.Anomalies,
	}, nil
}
