package pricing

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"aigw/gateway"
)

// TargetPrice describes a router target to price.
type TargetPrice struct {
	// Name is the router target name ("<provider>/<model>").
	Name string
	// Kind is the provider's kind (its type in config); Model the
	// upstream model.
	Kind, Model string
	// Price, when set, is the target's own price (a route target's
	// `price:` in config); it overrides the table for this target.
	Price *PriceSpec
}

// Origins of a target's price, beside OriginBuiltin and OriginConfig.
const (
	// OriginTarget: the target's own price (TargetPrice.Price, or an
	// Override with a Target).
	OriginTarget = "target"
)

// Pricer prices calls from a Table (gateway.Pricer). Each target's price
// is resolved once, by NewPricer: Cost is a map lookup and integer
// arithmetic. Immutable and safe for concurrent use.
type Pricer struct {
	version string
	table   *Table
	targets map[string]*target
	// routes maps a route to its priced targets.
	routes     map[string][]*target
	routeNames map[string][]string
}

var _ gateway.Pricer = (*Pricer)(nil)

// target is a target with its resolved price.
type target struct {
	TargetPrice
	priced bool
	p      price
	match  Match
}

// NewPricer resolves the price of each target: its own price (Price, or
// a target Override of t), else the table's price of its kind and model
// (Table.Lookup); a target with neither is unpriced (Cost's ok is false).
// Routes maps a route (the model name an agent sends; include aliases) to
// its targets' names, for Estimate.
//
// The targets' own prices are applied to t as target overrides, so the
// version the Pricer reports (Version, Cost.PriceVersion) changes with
// them too. A target may be listed more than once (a target in several
// routes) if every listing agrees on its kind, model and price (listings
// without a price take the price of one that has one). Errors: a target
// without a name, conflicting listings, a nil table, a route naming an unlisted target,
// a malformed or negative price (a *PriceError naming the target and the
// field).
func NewPricer(t *Table, targets []TargetPrice, routes map[string][]string) (*Pricer, error) {
	if t == nil {
		return nil, errors.New("pricing: no table")
	}
	byName := map[string]*target{}
	own := map[string]PriceSpec{}
	for _, tp := range targets {
		if tp.Name == "" {
			return nil, fmt.Errorf("pricing: a target (%s model %q) has no name", tp.Kind, tp.Model)
		}
		if o := byName[tp.Name]; o != nil && (o.Kind != tp.Kind || o.Model != tp.Model) {
			return nil, fmt.Errorf("pricing: target %q listed as %s model %q and as %s model %q", tp.Name, o.Kind, o.Model, tp.Kind, tp.Model)
		}
		if tp.Price != nil {
			_, c, err := tp.Price.compile()
			if err != nil {
				return nil, at(err, tp.Kind, tp.Model, tp.Name)
			}
			if prev, ok := own[tp.Name]; ok && !equal(prev, c) {
				return nil, fmt.Errorf("pricing: target %q given two different prices", tp.Name)
			}
			own[tp.Name] = c
		}
		tp.Price = nil
		byName[tp.Name] = &target{TargetPrice: tp}
	}
	var ovs []Override
	for _, name := range slices.Sorted(maps.Keys(own)) {
		ovs = append(ovs, Override{Target: name, Price: own[name]})
	}
	t, err := t.With(ovs)
	if err != nil {
		return nil, err
	}
	p := &Pricer{version: t.version, table: t, targets: byName, routes: map[string][]*target{}, routeNames: map[string][]string{}}
	for _, tg := range byName {
		e := t.targets[tg.Name]
		if e == nil {
			e = t.lookup(tg.Kind, tg.Model)
		}
		if e != nil {
			tg.priced, tg.p, tg.match = true, e.p, e.match()
			if e.target != "" {
				tg.match.Origin = OriginTarget
			}
		}
	}
	for route, names := range routes {
		p.routeNames[route] = slices.Clone(names)
		for _, n := range names {
			tg := byName[n]
			if tg == nil {
				return nil, fmt.Errorf("pricing: route %q: unknown target %q", route, n)
			}
			if tg.priced {
				p.routes[route] = append(p.routes[route], tg)
			}
		}
	}
	return p, nil
}

// equal compares canonical specs.
func equal(a, b PriceSpec) bool {
	la, lb := a.LongContext, b.LongContext
	a.LongContext, b.LongContext = nil, nil
	return a == b && (la == nil) == (lb == nil) && (la == nil || *la == *lb)
}

// Version is the version of the prices in force (that of the table with
// the targets' own prices applied).
func (p *Pricer) Version() string { return p.version }

// Table returns the table the Pricer prices from, targets' own prices
// included as target overrides.
func (p *Pricer) Table() *Table { return p.table }

// Cost prices a usage on a target: the uncached prompt tokens
// (PromptTokens less CachedTokens and CacheCreationTokens, which it
// includes) at the input price, cached tokens at the cached-input price,
// cache writes at the cache-write price and completion tokens (reasoning
// included) at the output price, all at the long-context tier's prices
// when PromptTokens exceeds its threshold; the sum rounded up to a whole
// nano-USD, plus the request fee. ok is false for an unknown or unpriced
// target. A nil usage costs nothing. Negative counts count as zero;
// cached and written tokens beyond the prompt are capped to it.
func (p *Pricer) Cost(target string, u *gateway.Usage) (gateway.Cost, bool) {
	t := p.targets[target]
	if t == nil || !t.priced {
		return gateway.Cost{}, false
	}
	if u == nil {
		return gateway.Cost{PriceVersion: p.version}, true
	}
	var cached, written uint64
	if d := u.PromptTokensDetails; d != nil {
		cached, written = tokens(d.CachedTokens), tokens(d.CacheCreationTokens)
	}
	return gateway.Cost{Amount: t.p.cost(tokens(u.PromptTokens), cached, written, tokens(u.CompletionTokens)), PriceVersion: p.version}, true
}

// Estimate is an upper estimate of a call on a route before it is routed:
// the dearest of the route's priced targets for promptTokens and
// outputTokens, each prompt token at the dearest of its input, cached
// input and cache write prices (the long-context tier's when promptTokens
// exceeds its threshold), plus the request fee. ok is false when the
// route is unknown or none of its targets is priced.
func (p *Pricer) Estimate(route string, promptTokens, outputTokens int) (gateway.Cost, bool) {
	ts := p.routes[route]
	if len(ts) == 0 {
		return gateway.Cost{}, false
	}
	in, out := tokens(promptTokens), tokens(outputTokens)
	var most gateway.NanoUSD
	for _, t := range ts {
		most = max(most, t.p.estimate(in, out))
	}
	return gateway.Cost{Amount: most, PriceVersion: p.version}, true
}

// EstimateTarget is Estimate for one target (to compare targets, e.g. to
// order a route's targets by cost).
func (p *Pricer) EstimateTarget(target string, promptTokens, outputTokens int) (gateway.Cost, bool) {
	t := p.targets[target]
	if t == nil || !t.priced {
		return gateway.Cost{}, false
	}
	return gateway.Cost{Amount: t.p.estimate(tokens(promptTokens), tokens(outputTokens)), PriceVersion: p.version}, true
}

// Price returns the price a target resolved to; ok is false for an
// unknown or unpriced target.
func (p *Pricer) Price(target string) (Match, bool) {
	t := p.targets[target]
	if t == nil || !t.priced {
		return Match{}, false
	}
	m := t.match
	m.Price = clone(m.Price)
	return m, true
}

// PricerDescription is what a Pricer prices with, as GET /admin/pricing
// shows it.
type PricerDescription struct {
	// Version is the version of the prices in force.
	Version string `json:"version"`
	// Table is the effective table.
	Table Description `json:"table"`
	// Targets are the targets, by name, with the price each resolved to.
	Targets []TargetDescription `json:"targets"`
	// Routes maps a route to its targets.
	Routes map[string][]string `json:"routes,omitempty"`
}

// TargetDescription is a target and its resolved price.
type TargetDescription struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
	Model    string `json:"model"`
	Priced   bool   `json:"priced"`
	// Entry is the table model the target's model resolved to (empty for
	// a target's own price).
	Entry string `json:"entry,omitempty"`
	// Origin is builtin, config or target.
	Origin string     `json:"origin,omitempty"`
	Price  *PriceSpec `json:"price,omitempty"`
}

// Describe returns the targets' prices and the table.
func (p *Pricer) Describe() PricerDescription {
	d := PricerDescription{Version: p.version, Table: p.table.Describe(), Targets: []TargetDescription{}}
	for _, name := range slices.Sorted(maps.Keys(p.targets)) {
		t := p.targets[name]
		td := TargetDescription{Name: name, Provider: t.Kind, Model: t.Model, Priced: t.priced}
		if t.priced {
			spec := clone(t.match.Price)
			td.Price, td.Origin = &spec, t.match.Origin
			if t.match.Target == "" {
				td.Entry = t.match.Model
			}
		}
		d.Targets = append(d.Targets, td)
	}
	if len(p.routeNames) > 0 {
		d.Routes = map[string][]string{}
		for r, ns := range p.routeNames {
			d.Routes[r] = slices.Clone(ns)
		}
	}
	return d
}
