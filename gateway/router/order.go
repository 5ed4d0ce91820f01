package router

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"aigw/gateway"
)

// defaultOutputTokens is the output a cost estimate assumes when the
// request sets no limit.
const defaultOutputTokens = 256

// estimate is what a call's cost is estimated from: a chat request, an
// embedding request, or fixed token counts.
type estimate struct {
	chat    *gateway.ChatRequest
	embed   *gateway.EmbeddingRequest
	in, out int
}

// tokens returns the estimated prompt and output tokens: about a token
// per 4 characters of the messages (or inputs), and the output limit the
// request asks for or defaultOutputTokens.
func (e estimate) tokens() (in, out int) {
	switch {
	case e.chat != nil:
		out = e.chat.MaxOutputTokens()
		if out <= 0 {
			out = defaultOutputTokens
		}
		return gateway.EstimatePromptTokens(e.chat), out
	case e.embed != nil:
		for _, s := range e.embed.Input.Texts {
			in += gateway.EstimateTokens(s)
		}
		if e.embed.Input.Raw != nil {
			in += len(e.embed.Input.Raw) / 4
		}
		return in, 0
	}
	return e.in, e.out
}

// plan orders the route's targets by its strategy and leaves out those
// that cannot be tried now: breaker open, bulkhead full (when the router
// does not wait for a slot), no embeddings for an embedding call. It
// returns the candidates in try order, the decision to report, and when
// the earliest left-out target may be tried again. now is Config.Now's.
func (r *Router) plan(rt *route, kind opKind, est estimate, now time.Time) ([]*target, gateway.RouteDecision, time.Time) {
	n := len(rt.targets)
	var buf [8]int
	idx := buf[:0]
	for i := range n {
		idx = append(idx, i)
	}
	var costs []float64
	reason := "ordered"
	switch rt.Strategy {
	case StrategyWeighted:
		r.shuffle(idx, rt.weights)
		reason = "weighted draw"
	case StrategyCost:
		costs = make([]float64, n)
		in, out := est.tokens()
		for i, t := range rt.targets {
			costs[i] = -1
			if p := t.Price; p != nil {
				costs[i] = (float64(in)*p.Input + float64(out)*p.Output) / 1e6
			}
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			ca, cb := costs[a], costs[b]
			switch {
			case ca == cb:
				return 0
			case ca < 0: // unpriced last
				return 1
			case cb < 0:
				return -1
			case ca < cb:
				return -1
			}
			return 1
		})
	}

	var retryAt time.Time
	d := gateway.RouteDecision{Route: rt.Name, Strategy: rt.Strategy, Candidates: make([]string, 0, n)}
	cands := make([]*target, 0, n)
	for _, i := range idx {
		t := rt.targets[i]
		why := ""
		var at time.Time
		switch ok, when, w := t.breaker.peek(now); {
		case kind == kindEmbed && t.embedder == nil:
			why = "no embeddings"
		case !ok:
			why, at = w, when
		case r.wait == 0 && t.bulk.full():
			why, at = "bulkhead full", now.Add(time.Second)
		}
		if why == "" {
			cands = append(cands, t)
			d.Candidates = append(d.Candidates, t.Name)
			continue
		}
		if d.Skipped == nil {
			d.Skipped = make(map[string]string)
		}
		d.Skipped[t.Name] = why
		if !at.IsZero() && (retryAt.IsZero() || at.Before(retryAt)) {
			retryAt = at
		}
	}
	if costs != nil {
		reason = costReason(rt, cands, idx, costs)
	}
	d.Reason = reason
	return cands, d, retryAt
}

// shuffle puts idx in a weighted random order: each place is drawn from
// the targets left with probability proportional to their weight.
func (r *Router) shuffle(idx, weights []int) {
	total := 0
	for _, i := range idx {
		total += weights[i]
	}
	for k := 0; k < len(idx)-1; k++ {
		x := r.float64() * float64(total)
		m := k
		for ; m < len(idx)-1; m++ {
			if x -= float64(weights[idx[m]]); x < 0 {
				break
			}
		}
		total -= weights[idx[m]]
		idx[k], idx[m] = idx[m], idx[k]
	}
}

// costReason says in words why the candidates are in cost order, e.g.
// "cheapest first: a ($0.0012) < b ($0.0030); unpriced last: c".
func costReason(rt *route, cands []*target, idx []int, costs []float64) string {
	pos := make(map[*target]int, len(rt.targets))
	for _, i := range idx {
		pos[rt.targets[i]] = i
	}
	var b strings.Builder
	var unpriced []string
	prev := -1.0
	for _, t := range cands {
		c := costs[pos[t]]
		if c < 0 {
			unpriced = append(unpriced, t.Name)
			continue
		}
		if prev < 0 {
			b.WriteString("cheapest first: ")
		} else if c == prev {
			b.WriteString(" = ")
		} else {
			b.WriteString(" < ")
		}
		b.WriteString(t.Name)
		b.WriteString(" ($")
		b.WriteString(formatUSD(c))
		b.WriteString(")")
		prev = c
	}
	if prev < 0 {
		b.WriteString("no candidate priced: configured order")
	}
	if len(unpriced) > 0 {
		b.WriteString("; unpriced last: ")
		b.WriteString(strings.Join(unpriced, ", "))
	}
	return b.String()
}

// formatUSD formats an estimated cost with 4 decimals, or 2 significant
// digits below $0.001.
func formatUSD(c float64) string {
	if c >= 0.001 || c == 0 {
		return strconv.FormatFloat(c, 'f', 4, 64)
	}
	return strconv.FormatFloat(c, 'g', 2, 64)
}
