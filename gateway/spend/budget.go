// Package spend enforces spend caps: budgets in money and in tokens per
// tenant, team, key and agent, per day, week, month or custom window.
//
// A call reserves its estimated spend before it runs, against every budget
// that applies to its caller, all or none, in one atomic step of the
// counter store (a Lua script in Redis across replicas, a mutex in one
// process): there is no check-then-increment window, so concurrent calls
// cannot race past a cap. After the call, the reservation is settled with
// what the provider reported (streaming included) or released when the
// call used nothing. Reservations, settlements, refusals and threshold
// alerts are `budget` events in the tenant's ledger log, so the spend of a
// window can be recomputed from the ledger alone and equals the counter.
//
// A call is refused with budget_exceeded only when the budget's settled
// spend leaves no room for its estimate; when the room is held by calls in
// flight it is refused with budget_reserved and a short Retry-After, since
// their settlement may free it (no stale-counter refusals: the counter is
// the shared store itself, never a local copy synced later).
package spend

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"aigw/gateway"
)

// Window kinds.
const (
	WindowDay    = "day"    // UTC calendar day
	WindowWeek   = "week"   // UTC week starting Monday
	WindowMonth  = "month"  // UTC calendar month
	WindowCustom = "custom" // Period-long windows from Start on
)

// Window is a budget's reset period.
type Window struct {
	Kind string `json:"kind" yaml:"kind"`
	// Start anchors custom windows (the first one starts there).
	Start time.Time `json:"start,omitzero" yaml:"start"`
	// Period is a custom window's length (at least a minute).
	Period Duration `json:"period,omitzero" yaml:"period"`
}

// Duration is a time.Duration written as "72h" in JSON and YAML.
type Duration time.Duration

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration such as "72h" or "30m".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Bounds returns the window that holds t: [start, end).
func (w Window) Bounds(t time.Time) (start, end time.Time) {
	t = t.UTC()
	switch w.Kind {
	case WindowDay:
		start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1)
	case WindowWeek:
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		back := (int(d.Weekday()) + 6) % 7 // days since Monday
		start = d.AddDate(0, 0, -back)
		return start, start.AddDate(0, 0, 7)
	case WindowMonth:
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	default: // custom
		p := time.Duration(w.Period)
		k := t.Sub(w.Start) / p
		if t.Before(w.Start.Add(k * p)) { // floor for times before Start
			k--
		}
		start = w.Start.Add(k * p).UTC()
		return start, start.Add(p)
	}
}

func (w Window) validate() error {
	switch w.Kind {
	case WindowDay, WindowWeek, WindowMonth:
		if !w.Start.IsZero() || w.Period != 0 {
			return fmt.Errorf("window %q takes no start or period (they are for custom windows)", w.Kind)
		}
	case WindowCustom:
		if w.Start.IsZero() {
			return errors.New("a custom window needs a start (RFC 3339)")
		}
		if time.Duration(w.Period) < time.Minute {
			return errors.New("a custom window needs a period of at least 1m")
		}
	default:
		return fmt.Errorf("unknown window kind %q (want day, week, month or custom)", w.Kind)
	}
	return nil
}

// Scope says whose calls a budget caps: every field set must match the
// caller (empty: any). A budget with no field set caps the whole tenant.
type Scope struct {
	Team    string `json:"team,omitempty" yaml:"team"`
	KeyID   string `json:"key_id,omitempty" yaml:"key_id"`
	AgentID string `json:"agent_id,omitempty" yaml:"agent_id"`
}

// String names the scope: "tenant", or e.g. "team=research,agent=planner".
func (s Scope) String() string {
	var parts []string
	if s.Team != "" {
		parts = append(parts, "team="+s.Team)
	}
	if s.KeyID != "" {
		parts = append(parts, "key="+s.KeyID)
	}
	if s.AgentID != "" {
		parts = append(parts, "agent="+s.AgentID)
	}
	if len(parts) == 0 {
		return "tenant"
	}
	return strings.Join(parts, ",")
}

// narrowness orders scopes: more fields set is narrower.
func (s Scope) narrowness() int {
	n := 0
	for _, f := range []string{s.Team, s.KeyID, s.AgentID} {
		if f != "" {
			n++
		}
	}
	if s.KeyID != "" || s.AgentID != "" {
		n += 3 // a key or an agent is narrower than any team
	}
	return n
}

// Budget is a spend cap of a tenant.
type Budget struct {
	// ID names the budget within its tenant ([a-z0-9][a-z0-9_.-]{0,62}).
	ID     string `json:"id" yaml:"id"`
	Tenant string `json:"tenant" yaml:"tenant"`
	Scope  Scope  `json:"scope,omitzero" yaml:"scope"`
	Window Window `json:"window" yaml:"window"`
	// LimitUSD caps the money spent in a window (nil: no money cap).
	LimitUSD *gateway.NanoUSD `json:"limit_usd,omitempty" yaml:"limit_usd"`
	// LimitTokens caps the tokens (prompt and completion) of a window
	// (0: no token cap).
	LimitTokens int64 `json:"limit_tokens,omitempty" yaml:"limit_tokens"`
	// Alerts are the thresholds, in percent of a limit, whose crossing
	// raises a quota alert (default 50, 80, 100; [] for none).
	Alerts []int `json:"alerts,omitempty" yaml:"alerts"`
}

// DefaultAlerts are the alert thresholds of a budget that names none.
var DefaultAlerts = []int{50, 80, 100}

// Applies reports whether the budget caps the caller's calls.
func (b *Budget) Applies(c gateway.Caller) bool {
	return b.Tenant == c.Tenant &&
		(b.Scope.Team == "" || b.Scope.Team == c.Team) &&
		(b.Scope.KeyID == "" || b.Scope.KeyID == c.KeyID) &&
		(b.Scope.AgentID == "" || b.Scope.AgentID == c.AgentID)
}

// Validate checks a budget and fills in its default alerts.
func (b *Budget) Validate() error {
	if !validID(b.ID) {
		return fmt.Errorf("budget id %q: want 1 to 63 characters of [a-z0-9_.-], starting with a letter or digit", b.ID)
	}
	if !validID(b.Tenant) {
		return fmt.Errorf("budget %s: invalid tenant %q", b.ID, b.Tenant)
	}
	for name, v := range map[string]string{"team": b.Scope.Team, "key_id": b.Scope.KeyID, "agent_id": b.Scope.AgentID} {
		if len(v) > 128 || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("budget %s: scope %s: at most 128 printable characters", b.ID, name)
		}
	}
	if err := b.Window.validate(); err != nil {
		return fmt.Errorf("budget %s: %w", b.ID, err)
	}
	if b.LimitUSD == nil && b.LimitTokens == 0 {
		return fmt.Errorf("budget %s: needs limit_usd or limit_tokens", b.ID)
	}
	if b.LimitUSD != nil && *b.LimitUSD <= 0 {
		return fmt.Errorf("budget %s: limit_usd must be positive", b.ID)
	}
	if b.LimitTokens < 0 {
		return fmt.Errorf("budget %s: limit_tokens must be positive", b.ID)
	}
	if b.Alerts == nil {
		b.Alerts = slices.Clone(DefaultAlerts)
	}
	for i, a := range b.Alerts {
		if a < 1 || a > 100 || i > 0 && a <= b.Alerts[i-1] {
			return fmt.Errorf("budget %s: alerts must be ascending percentages from 1 to 100", b.ID)
		}
	}
	return nil
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '-' || c == '.') {
			continue
		}
		return false
	}
	return true
}

// ParseBudget decodes a budget's JSON (the admin API's body), refusing
// unknown fields, and validates it.
func ParseBudget(data []byte) (Budget, error) {
	var b Budget
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return Budget{}, fmt.Errorf("budget: %w", err)
	}
	if dec.More() {
		return Budget{}, errors.New("budget: trailing data after the JSON object")
	}
	return b, b.Validate()
}
