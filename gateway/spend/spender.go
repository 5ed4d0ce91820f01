package spend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"aigw/gateway"
)

// Alert is a quota alert: a budget's spend crossed a threshold.
type Alert struct {
	// ID identifies the alert (the same on every replica and retry:
	// tenant, budget, window, unit and threshold).
	ID        string `json:"id"`
	Tenant    string `json:"tenant"`
	Budget    string `json:"budget"`
	Scope     string `json:"scope"`
	Threshold int    `json:"threshold"` // percent
	Unit      string `json:"unit"`      // "usd" or "tokens"
	// Spent and Limit are in the unit (decimal dollars or tokens).
	Spent       string    `json:"spent"`
	Limit       string    `json:"limit"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	TraceID     string    `json:"trace_id,omitempty"`
}

// Config configures a Spender.
type Config struct {
	// Counter holds the counters (Redis across replicas, Memory in one
	// process).
	Counter Counter
	// Budgets returns a tenant's budgets (validated). It is cached for
	// CacheTTL (default 10 s); Invalidate drops a tenant's entry.
	Budgets  func(ctx context.Context, tenant string) ([]Budget, error)
	CacheTTL time.Duration
	// Hold is how long a reservation holds its amount if it is never
	// settled (a crashed gateway); default 15 minutes.
	Hold time.Duration
	// Wait is how long a call whose room is held by calls in flight waits
	// for them to settle before it is refused with budget_reserved
	// (default 2 s; negative: no wait).
	Wait time.Duration
	// FailOpen admits calls when the counter store cannot be reached
	// (logged and counted; the calls are not charged to the counters, but
	// their cost is in the ledger). Default: refuse them with 503.
	FailOpen bool
	// Alert, if set, is called (on its own goroutine) for every
	// threshold a settlement crosses, once per threshold and window
	// across replicas.
	Alert  func(Alert)
	Logger *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// Spender enforces budgets; it implements gateway.Spender.
type Spender struct {
	cfg   Config
	log   *slog.Logger
	mu    sync.Mutex
	cache map[string]*cached
	// Errors counts counter store failures.
	Errors atomic.Int64
}

// cached is a tenant's budgets, narrowest scope first, and the window
// each was last used in.
type cached struct {
	budgets []Budget
	windows []atomic.Pointer[window]
	at      time.Time
}

// New returns a Spender.
func New(cfg Config) (*Spender, error) {
	if cfg.Counter == nil || cfg.Budgets == nil {
		return nil, errors.New("spend: a counter store and a budget source are required")
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 10 * time.Second
	}
	if cfg.Hold <= 0 {
		cfg.Hold = 15 * time.Minute
	}
	if cfg.Wait == 0 {
		cfg.Wait = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Spender{cfg: cfg, log: cfg.Logger, cache: map[string]*cached{}}, nil
}

// Invalidate drops a tenant's cached budgets (after an admin change).
func (s *Spender) Invalidate(tenant string) {
	s.mu.Lock()
	delete(s.cache, tenant)
	s.mu.Unlock()
}

// budgets returns a tenant's budgets, narrowest scope first.
func (s *Spender) budgets(ctx context.Context, tenant string, now time.Time) (*cached, error) {
	s.mu.Lock()
	c, ok := s.cache[tenant]
	s.mu.Unlock()
	if ok && now.Sub(c.at) < s.cfg.CacheTTL {
		return c, nil
	}
	bs, err := s.cfg.Budgets(ctx, tenant)
	if err != nil {
		return nil, err
	}
	bs = slices.Clone(bs)
	slices.SortStableFunc(bs, func(a, b Budget) int { return b.Scope.narrowness() - a.Scope.narrowness() })
	c = &cached{budgets: bs, windows: make([]atomic.Pointer[window], len(bs)), at: now}
	s.mu.Lock()
	s.cache[tenant] = c
	s.mu.Unlock()
	return c, nil
}

// window returns the window of budget i that holds now (cached until it
// ends).
func (c *cached) window(i int, now time.Time) *window {
	w := c.windows[i].Load()
	if w != nil && !now.Before(w.start) && now.Before(w.end) {
		return w
	}
	b := &c.budgets[i]
	start, end := b.Window.Bounds(now)
	w = newWindow(b, start, end)
	c.windows[i].Store(w)
	return w
}

// lineKey is a budget window's counter key.
func lineKey(b *Budget, start time.Time) string {
	return b.ID + ":" + strconv.FormatInt(start.Unix(), 10)
}

// applied is one budget a reservation holds, in its current window.
type applied struct {
	b *Budget
	w *window
}

// Reserve implements gateway.Spender.
func (s *Spender) Reserve(ctx context.Context, caller gateway.Caller, r gateway.SpendRequest) (gateway.Reservation, [][]byte, *gateway.Error) {
	now := s.cfg.Now()
	c, err := s.budgets(ctx, caller.Tenant, now)
	if err != nil {
		return s.unavailable(caller, fmt.Errorf("loading budgets: %w", err))
	}
	n := 0
	for i := range c.budgets {
		if c.budgets[i].Applies(caller) {
			n++
		}
	}
	if n == 0 {
		return nil, nil, nil
	}
	res := newReservation(s, caller.Tenant, n)
	for i := range c.budgets {
		if b := &c.budgets[i]; b.Applies(caller) {
			w := c.window(i, now)
			res.on = append(res.on, applied{b: b, w: w})
			res.lines = append(res.lines, w.line)
			res.keys = append(res.keys, w.line.Key)
		}
	}
	on, lines := res.on, res.lines
	usd := int64(r.Cost.Amount)
	tokens := int64(r.PromptTokens + r.OutputTokens)
	tid := r.TraceID
	if tid == "" {
		tid = gateway.NewTraceID()
	}
	var idb [80]byte
	id := string(strconv.AppendInt(append(append(idb[:0], tid...), '.'), now.UnixNano(), 36))
	res.id, res.traceID, res.usd, res.tokens = id, r.TraceID, usd, tokens
	adm, err := s.cfg.Counter.Reserve(ctx, caller.Tenant, id, lines, usd, tokens, s.cfg.Hold)
	if err != nil {
		return s.unavailable(caller, err)
	}
	if !adm.OK && adm.Reason == Reserved && s.cfg.Wait > 0 {
		// The room is held by calls in flight, which may settle for less
		// than they reserved: wait for them (bounded) before refusing, so
		// that a call is refused only by a budget really spent.
		deadline := time.Now().Add(s.cfg.Wait)
		for pause := time.Millisecond; !adm.OK && adm.Reason == Reserved && time.Now().Before(deadline); pause = min(2*pause, 50*time.Millisecond) {
			select {
			case <-ctx.Done():
				return nil, [][]byte{mapEvent(refusalAttrs(on[adm.Line], adm, r, usd, tokens))}, refusal(on[adm.Line], adm, usd, tokens, now)
			case <-time.After(pause):
			}
			if adm, err = s.cfg.Counter.Reserve(ctx, caller.Tenant, id, lines, usd, tokens, s.cfg.Hold); err != nil {
				return s.unavailable(caller, err)
			}
		}
	}
	if !adm.OK {
		return nil, [][]byte{mapEvent(refusalAttrs(on[adm.Line], adm, r, usd, tokens))}, refusal(on[adm.Line], adm, usd, tokens, now)
	}
	// Members in canonical (sorted) order.
	ev := make([]byte, 0, 160+budgetsSize(on, true)+len(r.Model)+len(r.Cost.PriceVersion)+len(id))
	ev = append(ev, `{"action":"reserve",`...)
	ev = s.appendBudgets(ev, on, adm.States, true)
	ev = appendInt(ev, "estimate_tokens", tokens)
	ev = appendUSD(ev, "estimate_usd", usd)
	ev = appendField(ev, "model", r.Model)
	if r.Cost.PriceVersion != "" {
		ev = appendField(ev, "price_version", r.Cost.PriceVersion)
	}
	ev = appendField(ev, "reservation", id)
	ev = append(ev, '}')
	res.reserveEvs[0] = ev
	return res, res.reserveEvs[:], nil
}

func (s *Spender) unavailable(caller gateway.Caller, err error) (gateway.Reservation, [][]byte, *gateway.Error) {
	s.Errors.Add(1)
	if s.cfg.FailOpen {
		s.log.Warn("budget store unavailable: admitting the call unchecked (fail-open)", "tenant", caller.Tenant, "err", err)
		return nil, [][]byte{mapEvent(map[string]any{"action": "unchecked", "error": truncate(err.Error(), 256)})}, nil
	}
	s.log.Error("budget store unavailable: refusing the call", "tenant", caller.Tenant, "err", err)
	return nil, nil, &gateway.Error{Status: http.StatusServiceUnavailable, Type: gateway.TypeUnavailable, Code: "budget_unavailable",
		Message: "The budget store cannot be reached to check this call's spend; retry later.", RetryAfter: time.Second, Err: err}
}

// budgetsAttrs describes the budgets of a reservation or settlement.
func budgetsAttrs(on []applied, states []State) []any {
	out := make([]any, len(on))
	for i, a := range on {
		m := map[string]any{
			"id": a.b.ID, "scope": a.b.Scope.String(),
			"window_start": a.w.start.Format(time.RFC3339), "window_end": a.w.end.Format(time.RFC3339),
		}
		if a.b.LimitUSD != nil {
			m["limit_usd"] = a.b.LimitUSD.String()
		}
		if a.b.LimitTokens > 0 {
			m["limit_tokens"] = a.b.LimitTokens
		}
		if i < len(states) {
			st := states[i]
			m["spent_usd"] = gateway.NanoUSD(st.SpentUSD).String()
			m["reserved_usd"] = gateway.NanoUSD(st.ReservedUSD).String()
			m["spent_tokens"], m["reserved_tokens"] = st.SpentTokens, st.ReservedTokens
		}
		out[i] = m
	}
	return out
}

func refusalAttrs(a applied, adm Admission, r gateway.SpendRequest, usd, tokens int64) map[string]any {
	st := adm.States[adm.Line]
	m := map[string]any{
		"action": "refuse", "reason": adm.Reason, "model": r.Model,
		"estimate": map[string]any{"cost_usd": gateway.NanoUSD(usd).String(), "tokens": tokens},
		"budgets":  budgetsAttrs([]applied{a}, []State{st}),
	}
	if adm.Tokens {
		m["unit"] = "tokens"
	} else {
		m["unit"] = "usd"
	}
	return m
}

// refusal is the 429 a refused call gets: which budget, why, and when it
// resets.
func refusal(a applied, adm Admission, usd, tokens int64, now time.Time) *gateway.Error {
	st := adm.States[adm.Line]
	var what string
	if adm.Tokens {
		what = fmt.Sprintf("%d of %d tokens spent, %d reserved by calls in flight; this call may use up to %d",
			st.SpentTokens, a.b.LimitTokens, st.ReservedTokens, tokens)
	} else {
		what = fmt.Sprintf("$%s of $%s spent, $%s reserved by calls in flight; this call may cost up to $%s",
			gateway.NanoUSD(st.SpentUSD), a.b.LimitUSD, gateway.NanoUSD(st.ReservedUSD), gateway.NanoUSD(usd))
	}
	e := &gateway.Error{Status: http.StatusTooManyRequests, Type: "insufficient_quota"}
	if adm.Reason == Reserved {
		e.Code = gateway.CodeBudgetReserved
		e.Message = fmt.Sprintf("Budget `%s` (%s, %s window) is fully reserved by calls in flight (%s); retry shortly. It resets at %s.",
			a.b.ID, a.b.Scope, a.b.Window.Kind, what, a.w.end.Format(time.RFC3339))
		e.RetryAfter = time.Second
		return e
	}
	e.Code = gateway.CodeBudgetExceeded
	e.Message = fmt.Sprintf("Budget `%s` (%s, %s window) is exhausted (%s). It resets at %s.",
		a.b.ID, a.b.Scope, a.b.Window.Kind, what, a.w.end.Format(time.RFC3339))
	e.RetryAfter = a.w.end.Sub(now).Round(time.Second)
	if e.RetryAfter < time.Second {
		e.RetryAfter = time.Second
	}
	return e
}

type reservation struct {
	s           *Spender
	tenant, id  string
	traceID     string
	on          []applied
	lines       []Line   // the counters' lines, in the order of on
	keys        []string // their keys
	usd, tokens int64
	done        atomic.Bool
	// The events returned by Reserve and by Settle.
	reserveEvs, settleEvs [1][]byte
	// Storage of on, lines and keys for up to 4 budgets (one allocation
	// per call).
	onBuf    [4]applied
	linesBuf [4]Line
	keysBuf  [4]string
}

func newReservation(s *Spender, tenant string, n int) *reservation {
	r := &reservation{s: s, tenant: tenant}
	if n <= len(r.onBuf) {
		r.on, r.lines, r.keys = r.onBuf[:0], r.linesBuf[:0], r.keysBuf[:0]
	} else {
		r.on, r.lines, r.keys = make([]applied, 0, n), make([]Line, 0, n), make([]string, 0, n)
	}
	return r
}

// Settle implements gateway.Reservation.
func (r *reservation) Settle(ctx context.Context, u *gateway.Usage, c gateway.Cost) [][]byte {
	if !r.done.CompareAndSwap(false, true) {
		return nil
	}
	var usd, tokens int64
	if u != nil {
		usd, tokens = int64(c.Amount), int64(u.PromptTokens+u.CompletionTokens)
	}
	states, dup, err := r.s.cfg.Counter.Settle(ctx, r.tenant, r.id, r.keys, usd, tokens)
	if err != nil {
		// The spend is in this event; the counter missed it.
		r.s.Errors.Add(1)
		r.s.log.Error("budget settlement failed: the counter misses this call's spend (the ledger has it)", "tenant", r.tenant, "reservation", r.id, "err", err)
		states = nil
	}
	// Members in canonical (sorted) order.
	n := 300 + budgetsSize(r.on, false) + len(c.PriceVersion) + len(r.id)
	if err != nil {
		n += 300
	}
	ev := make([]byte, 0, n)
	ev = append(ev, `{"action":"settle",`...)
	ev = r.s.appendBudgets(ev, r.on, states, false)
	ev = appendUSD(ev, "cost_usd", usd)
	if dup {
		ev = append(ev, `,"duplicate":true`...)
	}
	if err != nil {
		ev = appendField(ev, "error", truncate(err.Error(), 256))
	}
	ev = appendInt(ev, "estimate_tokens", r.tokens)
	ev = appendUSD(ev, "estimate_usd", r.usd)
	if c.PriceVersion != "" {
		ev = appendField(ev, "price_version", c.PriceVersion)
	}
	ev = appendInt(ev, "released_tokens", r.tokens-tokens)
	ev = appendUSD(ev, "released_usd", r.usd-usd)
	ev = appendField(ev, "reservation", r.id)
	ev = appendInt(ev, "tokens", tokens)
	ev = append(ev, '}')
	r.settleEvs[0] = ev
	evs := r.settleEvs[:]
	if err == nil && !dup {
		evs = append(evs, r.alerts(states, usd, tokens)...)
	}
	return evs
}

// alerts returns the alert events of the thresholds this settlement
// crossed (before < threshold <= after): exactly one settlement crosses
// each, since the counter adds atomically.
func (r *reservation) alerts(states []State, usd, tokens int64) [][]byte {
	var evs [][]byte
	for i, a := range r.on {
		st := states[i]
		for _, th := range a.b.Alerts {
			if a.b.LimitUSD != nil && usd > 0 {
				if crossed(st.SpentUSD-usd, st.SpentUSD, int64(*a.b.LimitUSD), th) {
					evs = append(evs, r.alert(a, th, "usd", gateway.NanoUSD(st.SpentUSD).String(), a.b.LimitUSD.String()))
				}
			}
			if a.b.LimitTokens > 0 && tokens > 0 {
				if crossed(st.SpentTokens-tokens, st.SpentTokens, a.b.LimitTokens, th) {
					evs = append(evs, r.alert(a, th, "tokens", strconv.FormatInt(st.SpentTokens, 10), strconv.FormatInt(a.b.LimitTokens, 10)))
				}
			}
		}
	}
	return evs
}

// crossed reports whether before < limit*pct/100 <= after, exactly.
func crossed(before, after, limit int64, pct int) bool {
	return below(before, limit, pct) && !below(after, limit, pct)
}

// below reports whether 100*spent < pct*limit (128-bit products).
func below(spent, limit int64, pct int) bool {
	if spent < 0 {
		return true
	}
	ah, al := bits.Mul64(uint64(spent), 100)
	bh, bl := bits.Mul64(uint64(limit), uint64(pct))
	return ah < bh || ah == bh && al < bl
}

func (r *reservation) alert(a applied, th int, unit, spent, limit string) []byte {
	id := fmt.Sprintf("%s/%s/%d/%s/%d", r.tenant, a.b.ID, a.w.start.Unix(), unit, th)
	if f := r.s.cfg.Alert; f != nil {
		al := Alert{ID: id, Tenant: r.tenant, Budget: a.b.ID, Scope: a.b.Scope.String(), Threshold: th, Unit: unit,
			Spent: spent, Limit: limit, WindowStart: a.w.start, WindowEnd: a.w.end, TraceID: r.traceID}
		go f(al)
	}
	return mapEvent(map[string]any{
		"action": "alert", "alert": id, "budget": a.b.ID, "scope": a.b.Scope.String(), "threshold": th, "unit": unit,
		"spent": spent, "limit": limit, "window_start": a.w.start.Format(time.RFC3339), "window_end": a.w.end.Format(time.RFC3339),
	})
}

// Tenants lists the tenants whose budgets this spender has loaded (for
// metrics of what remains of them).
func (s *Spender) Tenants() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.cache))
	for t, c := range s.cache {
		if len(c.budgets) > 0 {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// Status is a budget's current window.
type Status struct {
	Budget
	WindowStart time.Time       `json:"window_start"`
	WindowEnd   time.Time       `json:"window_end"`
	SpentUSD    gateway.NanoUSD `json:"spent_usd"`
	ReservedUSD gateway.NanoUSD `json:"reserved_usd"`
	// RemainingUSD is the limit less spent and reserved (nil without a
	// money limit).
	RemainingUSD    *gateway.NanoUSD `json:"remaining_usd,omitempty"`
	SpentTokens     int64            `json:"spent_tokens"`
	ReservedTokens  int64            `json:"reserved_tokens"`
	RemainingTokens *int64           `json:"remaining_tokens,omitempty"`
}

// Status returns the current window of each of a tenant's budgets.
func (s *Spender) Status(ctx context.Context, tenant string) ([]Status, error) {
	bs, err := s.cfg.Budgets(ctx, tenant)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	keys := make([]string, len(bs))
	out := make([]Status, len(bs))
	for i := range bs {
		start, end := bs[i].Window.Bounds(now)
		keys[i] = lineKey(&bs[i], start)
		out[i] = Status{Budget: bs[i], WindowStart: start, WindowEnd: end}
	}
	states, err := s.cfg.Counter.Read(ctx, tenant, keys)
	if err != nil {
		return nil, err
	}
	for i, st := range states {
		o := &out[i]
		o.SpentUSD, o.ReservedUSD = gateway.NanoUSD(st.SpentUSD), gateway.NanoUSD(st.ReservedUSD)
		o.SpentTokens, o.ReservedTokens = st.SpentTokens, st.ReservedTokens
		if l := o.LimitUSD; l != nil {
			rem := *l - o.SpentUSD - o.ReservedUSD
			o.RemainingUSD = &rem
		}
		if o.LimitTokens > 0 {
			rem := o.LimitTokens - o.SpentTokens - o.ReservedTokens
			o.RemainingTokens = &rem
		}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
