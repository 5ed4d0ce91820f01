package usage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"aigw/ledger"
)

// Event kinds and attributes the scan reads (FORMATS.md §2 and the
// gateway's spend events).
const (
	kindBudget   = "budget"
	actionSettle = "settle"
)

// scanCfg says what a scan counts.
type scanCfg struct {
	// from and to bound the period, in ledger.TimeFormat.
	from, to []byte
	// nStart: entries below it are read for budget settlements only.
	nStart uint64
	// tenantTime is `"tenant":"<log>","time":"`, what precedes an entry's
	// time in the log's own entries.
	tenantTime []byte
	team       []byte
	hasTeam    bool
	mask       dimMask
	budgets    bool // collect budget settlements
	bind       bool // compute chunk digests of the entries read
}

func newScanCfg(log string, from, to time.Time, nStart uint64, team string, mask dimMask, budgets bool) *scanCfg {
	return &scanCfg{
		from:       []byte(from.UTC().Format(ledger.TimeFormat)),
		to:         []byte(to.UTC().Format(ledger.TimeFormat)),
		nStart:     nStart,
		tenantTime: []byte(`"tenant":"` + log + `",`),
		team:       []byte(team),
		hasTeam:    team != "",
		mask:       mask,
		budgets:    budgets,
	}
}

// window is a budget window being reconciled.
type window struct {
	BudgetWindow
	touched bool // a settlement in the period lists it
}

// partial is what one worker has added up; partials merge in any order
// into the same result (sums, minima and maxima only).
type partial struct {
	lines   map[string]*Line
	windows map[string]*window
	keyBuf  []byte

	entries     uint64
	first, last uint64 // of the entries dated in the period; first is MaxUint64 when none
	anomalies   uint64
	samples     []Anomaly // the lowest indexes, at most maxAnomalies
	overflow    bool
}

func newPartial() *partial {
	return &partial{lines: map[string]*Line{}, windows: map[string]*window{}, first: math.MaxUint64}
}

func (p *partial) anomaly(idx uint64, format string, args ...any) {
	p.anomalies++
	if len(p.samples) < maxAnomalies || idx < p.samples[len(p.samples)-1].Index {
		p.samples = addSample(p.samples, Anomaly{Index: idx, Reason: fmt.Sprintf(format, args...)})
	}
}

// addSample inserts a in index order and keeps the first maxAnomalies.
func addSample(s []Anomaly, a Anomaly) []Anomaly {
	i, _ := slices.BinarySearchFunc(s, a.Index, func(x Anomaly, idx uint64) int {
		switch {
		case x.Index < idx:
			return -1
		case x.Index > idx:
			return 1
		}
		return 0
	})
	s = slices.Insert(s, i, a)
	if len(s) > maxAnomalies {
		s = s[:maxAnomalies]
	}
	return s
}

// merge adds q into p.
func (p *partial) merge(q *partial) {
	for k, l := range q.lines {
		if m := p.lines[k]; m != nil {
			if !m.add(&l.Counts) {
				p.overflow = true
			}
		} else {
			p.lines[k] = l
		}
	}
	for k, w := range q.windows {
		if v := p.windows[k]; v != nil {
			v.mergeFrom(w, p)
		} else {
			p.windows[k] = w
		}
	}
	p.entries += q.entries
	p.first = min(p.first, q.first)
	p.last = max(p.last, q.last)
	p.anomalies += q.anomalies
	for _, a := range q.samples {
		p.samples = addSample(p.samples, a)
	}
	p.overflow = p.overflow || q.overflow
}

func (w *window) mergeFrom(o *window, p *partial) {
	w.Settlements += o.Settlements
	if !addNano(&w.CostUSD, o.CostUSD) || !addInt(&w.Tokens, o.Tokens) {
		p.overflow = true
	}
	w.SpentUSD = max(w.SpentUSD, o.SpentUSD)
	w.SpentTokens = max(w.SpentTokens, o.SpentTokens)
	w.LastIndex = max(w.LastIndex, o.LastIndex)
	w.WindowEnd = max(w.WindowEnd, o.WindowEnd)
	w.Scope = max(w.Scope, o.Scope)
	w.touched = w.touched || o.touched
}

// tail reads an entry's kind and time from the fixed layout of its end
// (FORMATS.md §2: ...,"kind":"k"[,"payload_sha256":"…"][,"policy":"…"],
// "tenant":"t","time":"<27>"[,"trace_id":"<32>"],"v":1}), and whether its
// tenant is the one tenantTime names. ok is false if it does not fit.
func tail(e, tenantTime []byte) (kind, tm []byte, tenantOK, ok bool) {
	const v = `,"v":1}`
	if !bytes.HasSuffix(e, []byte(v)) {
		return nil, nil, false, false
	}
	p := e[:len(e)-len(v)]
	const tr = `,"trace_id":"`
	if n := len(p) - 33 - len(tr); n >= 0 && p[len(p)-1] == '"' && string(p[n:n+len(tr)]) == tr {
		p = p[:n]
	}
	const tk = `"time":"`
	n := len(ledger.TimeFormat)
	if len(p) < len(tk)+n+2 || p[len(p)-1] != '"' || string(p[len(p)-1-n-len(tk):len(p)-1-n]) != tk {
		return nil, nil, false, false
	}
	tm = p[len(p)-1-n : len(p)-1]
	p = p[:len(p)-1-n-len(tk)]
	tenantOK = bytes.HasSuffix(p, tenantTime)
	const kk = `"kind":"`
	k := bytes.LastIndex(p, []byte(kk))
	if k < 0 {
		return nil, nil, false, false
	}
	rest := p[k+len(kk):]
	q := bytes.IndexByte(rest, '"')
	if q < 0 {
		return nil, nil, false, false
	}
	return rest[:q], tm, tenantOK, true
}

// head reads the actor and attrs objects at the start of an entry (nil
// when absent).
func head(e []byte) (actor, attrs []byte, ok bool) {
	if len(e) < 2 || e[0] != '{' {
		return nil, nil, false
	}
	rest := e[1:]
	const ak, tk = `"actor":`, `"attrs":`
	if bytes.HasPrefix(rest, []byte(ak)) {
		end, ok := skipValue(rest, len(ak))
		if !ok || end >= len(rest) || rest[end] != ',' {
			return nil, nil, false
		}
		actor, rest = rest[len(ak):end], rest[end+1:]
	}
	if bytes.HasPrefix(rest, []byte(tk)) {
		end, ok := skipValue(rest, len(tk))
		if !ok {
			return nil, nil, false
		}
		attrs = rest[len(tk):end]
	}
	return actor, attrs, true
}

// entry adds one entry at index idx to p.
func (p *partial) entry(c *scanCfg, idx uint64, e []byte) {
	kind, tm, tenantOK, ok := tail(e, c.tenantTime)
	if !ok {
		p.anomaly(idx, "unreadable entry")
		return
	}
	if !tenantOK {
		p.anomaly(idx, "entry of another tenant")
		return
	}
	inPeriod := idx >= c.nStart && bytes.Compare(tm, c.from) >= 0 && bytes.Compare(tm, c.to) < 0
	if inPeriod {
		p.entries++
		p.first = min(p.first, idx)
		p.last = max(p.last, idx)
	}
	switch string(kind) {
	case ledger.KindResponse, ledger.KindError:
		if inPeriod {
			p.outcome(c, idx, e, kind[0] == 'e')
		}
	case kindBudget:
		if c.budgets {
			p.budget(c, idx, e, inPeriod)
		}
	}
}

// outcome charges the call whose response or error event e is.
func (p *partial) outcome(c *scanCfg, idx uint64, e []byte, failed bool) {
	actor, attrs, ok := head(e)
	if !ok {
		p.anomaly(idx, "unreadable entry")
		return
	}
	var keys [nDims][]byte
	var tokens, cost, code []byte
	if attrs != nil && !members(attrs, func(k, v []byte) bool {
		switch string(k) {
		case "error_code":
			code = v
		case "provider":
			keys[dProvider] = v
		case "model":
			keys[dModel] = v
		case "price_version":
			keys[dPriceVersion] = v
		case "team":
			keys[dTeam] = v
		case "tokens":
			tokens = v
		case "cost_usd":
			cost = v
		}
		return true
	}) {
		p.anomaly(idx, "unreadable attrs")
		return
	}
	if failed && tokens == nil && string(code) == `"ledger_unavailable"` {
		// An answer withheld because the ledger did not acknowledge the
		// call's events: a marker after the call's own outcome event
		// (which is what it is charged), not another call.
		return
	}
	if actor != nil && !members(actor, func(k, v []byte) bool {
		switch string(k) {
		case "key_id":
			keys[dKey] = v
		case "agent_id":
			keys[dAgent] = v
		}
		return true
	}) {
		p.anomaly(idx, "unreadable actor")
		return
	}
	for i, raw := range keys {
		if raw == nil {
			continue
		}
		s, ok := strVal(raw)
		if !ok {
			p.anomaly(idx, "%s is not a string", dims[i])
			s = nil
		}
		keys[i] = s
	}
	if c.hasTeam && !bytes.Equal(keys[dTeam], c.team) {
		return
	}
	var n Counts
	n.Calls = 1
	if failed {
		n.FailedCalls = 1
	}
	used := false
	if tokens != nil {
		estimated := false
		if !members(tokens, func(k, v []byte) bool {
			var dst *int64
			switch string(k) {
			case "prompt":
				dst = &n.PromptTokens
			case "completion":
				dst = &n.CompletionTokens
			case "total":
				dst = &n.TotalTokens
			case "cached":
				dst = &n.CachedTokens
			case "cache_write":
				dst = &n.CacheWriteTokens
			case "reasoning":
				dst = &n.ReasoningTokens
			case "estimated":
				estimated = string(v) == "true"
				return true
			default:
				return true
			}
			x, ok := intVal(v)
			if !ok {
				p.anomaly(idx, "tokens.%s is not an integer: %.40s", k, v)
				return true
			}
			*dst = x
			used = used || x != 0
			return true
		}) {
			p.anomaly(idx, "unreadable tokens")
		}
		if estimated {
			n.EstimatedCalls = 1
		}
	}
	switch {
	case cost != nil:
		v, ok := moneyVal(cost)
		if !ok {
			p.anomaly(idx, "cost_usd is not an exact decimal: %.40s", cost)
			break
		}
		n.CostUSD = v
	case used:
		n.UnpricedCalls = 1
	}
	p.keyBuf = p.keyBuf[:0]
	for i := range nDims {
		if c.mask&(1<<i) != 0 {
			p.keyBuf = binary.AppendUvarint(p.keyBuf, uint64(len(keys[i])))
			p.keyBuf = append(p.keyBuf, keys[i]...)
		}
	}
	l := p.lines[string(p.keyBuf)]
	if l == nil {
		l = &Line{}
		for i := range nDims {
			if c.mask&(1<<i) != 0 {
				l.setKey(i, string(keys[i]))
			}
		}
		p.lines[string(p.keyBuf)] = l
	}
	if !l.add(&n) {
		p.overflow = true
	}
}

// budget adds a budget settlement to its windows.
func (p *partial) budget(c *scanCfg, idx uint64, e []byte, inPeriod bool) {
	_, attrs, ok := head(e)
	if !ok || attrs == nil {
		p.anomaly(idx, "unreadable budget event")
		return
	}
	var action, team, cost, tokens, budgets []byte
	duplicate := false
	if !members(attrs, func(k, v []byte) bool {
		switch string(k) {
		case "action":
			action = v
		case "team":
			team = v
		case "cost_usd":
			cost = v
		case "tokens":
			tokens = v
		case "budgets":
			budgets = v
		case "duplicate":
			duplicate = string(v) == "true"
		}
		return true
	}) {
		p.anomaly(idx, "unreadable budget attrs")
		return
	}
	if a, _ := strVal(action); string(a) != actionSettle || duplicate {
		return // a duplicate settlement: the counter applied it once, at its first event
	}
	eventTeam, _ := strVal(team)
	var amount NanoUSD
	if cost != nil {
		if amount, ok = moneyVal(cost); !ok {
			p.anomaly(idx, "budget cost_usd is not an exact decimal: %.40s", cost)
			return
		}
	}
	var toks int64
	if tokens != nil {
		if toks, ok = intVal(tokens); !ok {
			p.anomaly(idx, "budget tokens is not an integer: %.40s", tokens)
			return
		}
	}
	if budgets == nil {
		return
	}
	if !elements(budgets, func(b []byte) bool {
		var id, start, end, spent, spentTokens, scope []byte
		if !members(b, func(k, v []byte) bool {
			switch string(k) {
			case "scope":
				scope = v
			case "id":
				id = v
			case "window_start":
				start = v
			case "window_end":
				end = v
			case "spent_usd":
				spent = v
			case "spent_tokens":
				spentTokens = v
			}
			return true
		}) {
			p.anomaly(idx, "unreadable budget")
			return true
		}
		sc, _ := strVal(scope)
		if c.hasTeam && !teamScope(sc, scope != nil, eventTeam, c.team) {
			return true
		}
		ids, ok1 := strVal(id)
		ws, ok2 := strVal(start)
		if !ok1 || !ok2 || len(ids) == 0 || len(ws) == 0 {
			p.anomaly(idx, "budget without id or window_start")
			return true
		}
		p.keyBuf = binary.AppendUvarint(p.keyBuf[:0], uint64(len(ids)))
		p.keyBuf = append(append(p.keyBuf, ids...), ws...)
		w := p.windows[string(p.keyBuf)]
		if w == nil {
			w = &window{BudgetWindow: BudgetWindow{Budget: string(ids), WindowStart: string(ws)}}
			p.windows[string(p.keyBuf)] = w
		}
		if we, ok := strVal(end); ok && string(we) > w.WindowEnd {
			w.WindowEnd = string(we)
		}
		if string(sc) > w.Scope {
			w.Scope = string(sc)
		}
		w.Settlements++
		if !addNano(&w.CostUSD, amount) || !addInt(&w.Tokens, toks) {
			p.overflow = true
		}
		if spent != nil {
			if s, ok := moneyVal(spent); ok {
				w.SpentUSD = max(w.SpentUSD, s)
			} else {
				p.anomaly(idx, "budget spent_usd is not an exact decimal: %.40s", spent)
			}
		}
		if spentTokens != nil {
			if s, ok := intVal(spentTokens); ok {
				w.SpentTokens = max(w.SpentTokens, s)
			} else {
				p.anomaly(idx, "budget spent_tokens is not an integer: %.40s", spentTokens)
			}
		}
		w.LastIndex = max(w.LastIndex, idx)
		w.touched = w.touched || inPeriod
		return true
	}) {
		p.anomaly(idx, "unreadable budgets")
	}
}

// teamScope says whether a budget belongs to a team's statement: its
// scope ("tenant", "team=a,key=k1", ...) names the team, or, for an event
// without scopes, the settlement names it (attrs.team).
func teamScope(scope []byte, hasScope bool, eventTeam, team []byte) bool {
	if !hasScope {
		return bytes.Equal(eventTeam, team)
	}
	for part := range bytes.SplitSeq(scope, []byte(",")) {
		if v, ok := bytes.CutPrefix(part, []byte("team=")); ok && bytes.Equal(v, team) {
			return true
		}
	}
	return false
}

// chunkDigest is the digest of a run of entries (at most one tile of
// them): SHA-256 over their RFC 6962 leaf hashes, in index order. A
// statement's entries are bound to the verified log by the digest of
// their chunk digests (see bindDigest).
func chunkDigest(entries [][]byte) ledger.Hash {
	h := sha256.New()
	for _, e := range entries {
		leaf := ledger.LeafHash(e)
		h.Write(leaf[:])
	}
	return ledger.Hash(h.Sum(nil))
}

// result turns merged partials into a statement's lines, totals, budget
// windows and ledger counts.
func (p *partial) result(st *Statement, mask dimMask) error {
	if p.overflow {
		return fmt.Errorf("usage: a sum overflows (over 9.2 billion dollars or 2^63 tokens): the ledger holds a malformed amount")
	}
	st.Lines = make([]Line, 0, len(p.lines))
	for _, l := range p.lines {
		st.Lines = append(st.Lines, *l)
	}
	slices.SortFunc(st.Lines, func(a, b Line) int { return compareLines(&a, &b) })
	st.Totals = Counts{}
	for i := range st.Lines {
		if !st.Totals.add(&st.Lines[i].Counts) {
			return fmt.Errorf("usage: the totals overflow")
		}
	}
	st.Ledger.Entries = p.entries
	if p.entries > 0 {
		first, last := p.first, p.last
		st.Ledger.FirstIndex, st.Ledger.LastIndex = &first, &last
	}
	st.Ledger.Anomalies = p.anomalies
	st.Ledger.AnomalySamples = slices.Clone(p.samples)
	st.Budgets = BudgetReconciliation{Status: StatusOK, Windows: []BudgetWindow{}}
	for _, w := range p.windows {
		if !w.touched {
			continue
		}
		b := w.BudgetWindow
		b.Status = StatusOK
		if b.CostUSD != b.SpentUSD || b.Tokens != b.SpentTokens {
			b.Status = StatusMismatch
			st.Budgets.Mismatches++
			st.Budgets.Status = StatusMismatch
		}
		st.Budgets.Windows = append(st.Budgets.Windows, b)
	}
	slices.SortFunc(st.Budgets.Windows, func(a, b BudgetWindow) int {
		if c := strings.Compare(a.Budget, b.Budget); c != 0 {
			return c
		}
		return strings.Compare(a.WindowStart, b.WindowStart)
	})
	return nil
}
