package tenant

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"aigw/ledger"
)

// Target types of a [Stop].
const (
	StopAgent = "agent" // an agent, named by its X-Aigw-Agent header
	StopRoute = "route" // a route, named by the model as agents request it
)

// Limits on what a Stop holds.
const (
	MaxStopTargetLen = 256  // bytes of Stop.Target
	MaxStopByLen     = 256  // bytes of Stop.By
	MaxStopReasonLen = 8192 // bytes of Stop.Reason
)

// Stop is an agent or a route of a tenant that a human stopped (human
// oversight, EU AI Act Art. 14(4)(e)): the gateway refuses its calls until
// it is resumed. The Store holds the stops in force; their history is in
// the tenant's ledger log.
type Stop struct {
	Tenant string
	// TargetType is StopAgent or StopRoute.
	TargetType string
	// Target is the agent id or the route (model) name.
	Target string
	// StoppedAt is set by the Store when the stop is added.
	StoppedAt time.Time
	// By is the person who stopped it.
	By string
	// Reason is why.
	Reason string
	// EventID is the id of the ledger event that recorded the stop.
	EventID string
}

// ValidStopTarget reports whether typ and target can name a stopped agent
// or route: typ is StopAgent or StopRoute, and target is 1 to
// MaxStopTargetLen bytes (128 for an agent, the X-Aigw-Agent limit) of
// text the ledger can record ([ledger.CheckText]).
func ValidStopTarget(typ, target string) error {
	limit := MaxStopTargetLen
	switch typ {
	case StopAgent:
		limit = 128
	case StopRoute:
	default:
		return fmt.Errorf("target type %q is neither %q nor %q: %w", typ, StopAgent, StopRoute, ErrInvalid)
	}
	if target == "" || len(target) > limit {
		return fmt.Errorf("%s is empty or longer than %d bytes: %w", typ, limit, ErrInvalid)
	}
	if err := ledger.CheckText(typ, target); err != nil {
		return fmt.Errorf("%s: %v: %w", typ, err, ErrInvalid)
	}
	return nil
}

func (s Stop) validate() error {
	switch {
	case !ValidID(s.Tenant):
		return fmt.Errorf("tenant id: %w", ErrInvalid)
	case len(s.By) > MaxStopByLen || !utf8.ValidString(s.By):
		return fmt.Errorf("by is longer than %d bytes or not UTF-8: %w", MaxStopByLen, ErrInvalid)
	case len(s.Reason) > MaxStopReasonLen || !utf8.ValidString(s.Reason):
		return fmt.Errorf("reason is longer than %d bytes or not UTF-8: %w", MaxStopReasonLen, ErrInvalid)
	case !ledger.ValidEventID(s.EventID):
		return fmt.Errorf("event id %q is not a ledger event id: %w", s.EventID, ErrInvalid)
	}
	return ValidStopTarget(s.TargetType, s.Target)
}

// Stops is the set of a tenant's stops in force. Its methods are safe on a
// nil *Stops (no stop) and for concurrent use; it is never modified.
type Stops struct {
	agents, routes map[string]Stop
}

func newStops(list []Stop) *Stops {
	st := &Stops{}
	for _, s := range list {
		m := &st.agents
		if s.TargetType == StopRoute {
			m = &st.routes
		}
		if *m == nil {
			*m = map[string]Stop{}
		}
		(*m)[s.Target] = s
	}
	return st
}

// Agent returns the stop of the agent id, if it is stopped.
func (st *Stops) Agent(id string) (Stop, bool) {
	if st == nil {
		return Stop{}, false
	}
	s, ok := st.agents[id]
	return s, ok
}

// Route returns the stop of the route (model name as requested), if it is
// stopped.
func (st *Stops) Route(model string) (Stop, bool) {
	if st == nil {
		return Stop{}, false
	}
	s, ok := st.routes[model]
	return s, ok
}

// Len is the number of stops.
func (st *Stops) Len() int {
	if st == nil {
		return 0
	}
	return len(st.agents) + len(st.routes)
}

const stopCols = "tenant, target_type, target, stopped_at, stopped_by, reason, event_id"

func scanStop(r scanner) (Stop, error) {
	var (
		s  Stop
		at nullTime
	)
	if err := r.Scan(&s.Tenant, &s.TargetType, &s.Target, &at, &s.By, &s.Reason, &s.EventID); err != nil {
		return Stop{}, err
	}
	s.StoppedAt = at.t
	return s, nil
}

// AddStop stops an agent or a route of a tenant and returns the stop as
// stored (StoppedAt set by the Store). It fails with ErrInvalid for an
// invalid stop, ErrNotFound if the tenant does not exist, and ErrExists if
// the target is stopped already (the first stop stands). Other processes'
// Authenticators see it within their TTL; [Authenticator.Stop] applies it
// to its own cache at once.
func (s *Store) AddStop(ctx context.Context, st Stop) (Stop, error) {
	fail := func(err error) (Stop, error) {
		return Stop{}, fmt.Errorf("tenant: stop %s %q of %q: %w", st.TargetType, st.Target, st.Tenant, err)
	}
	if err := st.validate(); err != nil {
		return fail(err)
	}
	// Tenants are never deleted, so checking first leaves no race.
	if _, err := s.GetTenant(ctx, st.Tenant); err != nil {
		return Stop{}, err
	}
	st.StoppedAt = s.stamp()
	res, err := s.w.ExecContext(ctx, s.q.insertStop, st.Tenant, st.TargetType, st.Target, s.timeArg(&st.StoppedAt), st.By, st.Reason, st.EventID)
	if err != nil {
		return fail(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fail(err)
	} else if n == 0 {
		return fail(ErrExists)
	}
	return st, nil
}

// GetStop returns the stop in force of an agent or a route of a tenant,
// or ErrNotFound.
func (s *Store) GetStop(ctx context.Context, tenant, typ, target string) (Stop, error) {
	if !ValidID(tenant) {
		return Stop{}, fmt.Errorf("tenant: get stop of %q: %w", tenant, ErrInvalid)
	}
	if err := ValidStopTarget(typ, target); err != nil {
		return Stop{}, fmt.Errorf("tenant: get stop of %q: %w", tenant, err)
	}
	st, err := scanStop(s.r.QueryRowContext(ctx, s.q.getStop, tenant, typ, target))
	if errors.Is(err, sql.ErrNoRows) {
		return Stop{}, fmt.Errorf("tenant: get stop of %s %q of %q: %w", typ, target, tenant, ErrNotFound)
	}
	if err != nil {
		return Stop{}, fmt.Errorf("tenant: get stop of %s %q of %q: %w", typ, target, tenant, err)
	}
	return st, nil
}

// ListStops returns the stops in force of tenant, agents first, each kind
// ordered by target (bytewise); ErrNotFound if there is no such tenant.
func (s *Store) ListStops(ctx context.Context, tenant string) ([]Stop, error) {
	if _, err := s.GetTenant(ctx, tenant); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, s.q.listStops, tenant)
	if err != nil {
		return nil, fmt.Errorf("tenant: list stops of %q: %w", tenant, err)
	}
	defer rows.Close()
	var out []Stop
	for rows.Next() {
		st, err := scanStop(rows)
		if err != nil {
			return nil, fmt.Errorf("tenant: list stops of %q: %w", tenant, err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tenant: list stops of %q: %w", tenant, err)
	}
	// agents first, then by target in byte order, whatever the collation
	slices.SortFunc(out, func(a, b Stop) int {
		return cmp.Or(cmp.Compare(a.TargetType, b.TargetType), cmp.Compare(a.Target, b.Target))
	})
	return out, nil
}

// RemoveStop resumes a stopped agent or route of a tenant and returns the
// stop it removed; ErrNotFound if it is not stopped. Other processes'
// Authenticators see it within their TTL; [Authenticator.Resume] applies it
// to its own cache at once.
func (s *Store) RemoveStop(ctx context.Context, tenant, typ, target string) (Stop, error) {
	if !ValidID(tenant) {
		return Stop{}, fmt.Errorf("tenant: resume %s of %q: tenant id: %w", typ, tenant, ErrInvalid)
	}
	if err := ValidStopTarget(typ, target); err != nil {
		return Stop{}, fmt.Errorf("tenant: resume %s of %q: %w", typ, tenant, err)
	}
	st, err := scanStop(s.w.QueryRowContext(ctx, s.q.deleteStop, tenant, typ, target))
	if errors.Is(err, sql.ErrNoRows) {
		return Stop{}, fmt.Errorf("tenant: resume %s %q of %q: %w", typ, target, tenant, ErrNotFound)
	}
	if err != nil {
		return Stop{}, fmt.Errorf("tenant: resume %s %q of %q: %w", typ, target, tenant, err)
	}
	return st, nil
}

// stopsEntry is a tenant's stops as cached by the Authenticator.
type stopsEntry struct {
	stops   *Stops
	expires int64 // UnixNano
}

// Stops returns the stops in force of tenant, from a cache in front of the
// Store: a tenant's stops are read from the Store at most once per TTL (once
// for all the callers that miss at the same time), and at once again after
// [Authenticator.Stop], [Authenticator.Resume] or
// [Authenticator.InvalidateStops] in this process. A cache hit takes one
// read lock and allocates nothing. The Store's error is returned (and
// nothing cached) if it cannot be read; an unknown tenant has no stops.
func (a *Authenticator) Stops(ctx context.Context, tenant string) (*Stops, error) {
	now := a.now().UnixNano()
	a.stopsMu.RLock()
	e := a.stops[tenant]
	a.stopsMu.RUnlock()
	if e != nil && now < e.expires {
		return e.stops, nil
	}
	key := "stops\x00" + tenant // never a hex hash: no clash with key lookups
	ch := a.flight.DoChan(key, func() (any, error) {
		return a.fillStops(context.WithoutCancel(ctx), tenant)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Stops), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("tenant: stops of %q: %w", tenant, context.Cause(ctx))
	}
}

// fillStops reads tenant's stops from the Store and caches them, unless an
// invalidation happened meanwhile.
func (a *Authenticator) fillStops(ctx context.Context, tenant string) (*Stops, error) {
	ctx, cancel := context.WithTimeout(ctx, a.lookupTimeout)
	defer cancel()
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("tenant: stops of %q: waiting for a lookup slot: %w", tenant, ctx.Err())
	}
	defer func() { <-a.sem }()
	epoch := a.stopsEpoch.Load()
	list, err := a.store.ListStops(ctx, tenant)
	switch {
	case errors.Is(err, ErrNotFound):
		list = nil // no tenant, no stops (cached like any tenant's)
	case err != nil:
		return nil, err // not cached: the next call retries
	}
	st := newStops(list)
	now := a.now().UnixNano()
	a.stopsMu.Lock()
	defer a.stopsMu.Unlock()
	if a.stopsEpoch.Load() != epoch {
		return st, nil
	}
	if len(a.stops) >= a.maxStops {
		for t, e := range a.stops {
			if e.expires <= now {
				delete(a.stops, t)
			}
		}
	}
	if _, ok := a.stops[tenant]; ok || len(a.stops) < a.maxStops {
		a.stops[tenant] = &stopsEntry{stops: st, expires: now + a.ttl}
	}
	return st, nil
}

// InvalidateStops drops tenant's stops from the cache, so that the next
// [Authenticator.Stops] reads them from the Store; a read in flight when it
// is called caches nothing. Use it after changing stops through the Store
// directly; Stop and Resume call it.
func (a *Authenticator) InvalidateStops(tenant string) {
	a.stopsMu.Lock()
	delete(a.stops, tenant)
	a.stopsEpoch.Add(1)
	a.stopsMu.Unlock()
	a.flight.Forget("stops\x00" + tenant)
}

// Stop adds a stop ([Store.AddStop]) and drops the tenant's stops from this
// Authenticator's cache, so that it applies here at once; other processes
// apply it within their TTL.
func (a *Authenticator) Stop(ctx context.Context, s Stop) (Stop, error) {
	st, err := a.store.AddStop(ctx, s)
	if err != nil {
		return Stop{}, err
	}
	a.InvalidateStops(s.Tenant)
	return st, nil
}

// Resume removes a stop ([Store.RemoveStop]) and drops the tenant's stops
// from this Authenticator's cache, so that it applies here at once; other
// processes apply it within their TTL.
func (a *Authenticator) Resume(ctx context.Context, tenant, typ, target string) (Stop, error) {
	st, err := a.store.RemoveStop(ctx, tenant, typ, target)
	if err != nil {
		return Stop{}, err
	}
	a.InvalidateStops(tenant)
	return st, nil
}
