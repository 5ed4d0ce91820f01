package pricing

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// builtinJSON is the built-in price table (see [Parse] for its format).
//
//go:embed prices.json
var builtinJSON []byte

// kinds are the provider kinds a price may name (a provider's type in
// config).
var kinds = []string{"openai", "openai-compatible", "anthropic", "bedrock", "gemini", "mock"}

// Origins of a price.
const (
	// OriginBuiltin: the built-in table (or the table given to Parse).
	OriginBuiltin = "builtin"
	// OriginConfig: an Override.
	OriginConfig = "config"
)

// Table is a versioned price table: per provider kind and model, and per
// target for target overrides. It is immutable and safe for concurrent
// use; With returns a new table.
type Table struct {
	version, base   string
	source, asOf    string
	notes           []string
	builtin, config layer
	// aliases maps a kind and a lower-cased model name to the table's name
	// for it.
	aliases map[string]map[string]string
	// targets holds the target overrides.
	targets map[string]*entry
	// overrides are the overrides in force, canonical and sorted (what
	// the version hashes).
	overrides []Override
}

// layer is a set of entries per kind.
type layer struct {
	// exact maps a kind and a model name to its entry; fold the same with
	// the name lower-cased.
	exact, fold map[string]map[string]*entry
}

// entry is one priced model (or target).
type entry struct {
	kind, model, target string
	spec                PriceSpec // canonical
	p                   price
	origin              string
}

func newLayer() layer {
	return layer{exact: map[string]map[string]*entry{}, fold: map[string]map[string]*entry{}}
}

// add adds e, refusing a model that differs from another only in case.
func (l layer) add(e *entry) error {
	if l.exact[e.kind] == nil {
		l.exact[e.kind], l.fold[e.kind] = map[string]*entry{}, map[string]*entry{}
	}
	low := strings.ToLower(e.model)
	if o := l.fold[e.kind][low]; o != nil && o.model != e.model {
		return fmt.Errorf("pricing: %s models %q and %q differ only in case", e.kind, o.model, e.model)
	}
	l.exact[e.kind][e.model] = e
	l.fold[e.kind][low] = e
	return nil
}

// find looks model up: the exact name, then (case-insensitively) each
// shorter name left by removing version tokens, longest first.
func (l layer) find(kind string, ns []string) *entry {
	exact, fold := l.exact[kind], l.fold[kind]
	if exact == nil {
		return nil
	}
	for _, n := range ns {
		if e := exact[n]; e != nil {
			return e
		}
	}
	for _, n := range ns {
		for _, s := range stages(n, kind == "bedrock") {
			if e := fold[s]; e != nil {
				return e
			}
		}
	}
	return nil
}

// tableFile is the format of prices.json and of tables given to Parse.
type tableFile struct {
	Version   string                    `json:"version"`
	AsOf      string                    `json:"as_of"`
	Source    string                    `json:"source"`
	Notes     []string                  `json:"notes"`
	Providers map[string]providerPrices `json:"providers"`
}

type providerPrices struct {
	Models  map[string]PriceSpec `json:"models"`
	Aliases map[string]string    `json:"aliases"`
}

// Builtin returns the built-in table (prices.json, embedded). Its prices
// are list prices as known when it was compiled: check them against your
// contracts and override them with With.
func Builtin() *Table {
	t, err := Parse(builtinJSON)
	if err != nil {
		// The embedded table is part of the program and tested; it cannot
		// be malformed in a build that passed its tests.
		panic(fmt.Sprintf("pricing: built-in table: %v", err))
	}
	return t
}

// Parse reads a table in the built-in table's format:
//
//	{"version": "...", "as_of": "...", "source": "...", "notes": ["..."],
//	 "providers": {"<kind>": {"models": {"<model>": PriceSpec, ...},
//	                          "aliases": {"<alias>": "<model>", ...}}}}
//
// Unknown fields, unknown provider kinds, aliases naming no model and
// malformed prices (a *PriceError) are errors.
func Parse(data []byte) (*Table, error) {
	var f tableFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("pricing: decode table: %w", err)
	}
	if f.Version == "" {
		return nil, errors.New("pricing: table has no version")
	}
	t := &Table{version: f.Version, base: f.Version, source: f.Source, asOf: f.AsOf, notes: f.Notes,
		builtin: newLayer(), config: newLayer(), aliases: map[string]map[string]string{}, targets: map[string]*entry{}}
	for _, kind := range slices.Sorted(maps.Keys(f.Providers)) {
		if !slices.Contains(kinds, kind) {
			return nil, fmt.Errorf("pricing: unknown provider kind %q (one of %s)", kind, strings.Join(kinds, ", "))
		}
		pp := f.Providers[kind]
		for _, model := range slices.Sorted(maps.Keys(pp.Models)) {
			spec := pp.Models[model]
			if model == "" {
				return nil, fmt.Errorf("pricing: %s: a model with no name", kind)
			}
			p, c, err := spec.compile()
			if err != nil {
				return nil, at(err, kind, model, "")
			}
			if err := t.builtin.add(&entry{kind: kind, model: model, spec: c, p: p, origin: OriginBuiltin}); err != nil {
				return nil, err
			}
		}
		for _, alias := range slices.Sorted(maps.Keys(pp.Aliases)) {
			model := pp.Aliases[alias]
			if _, ok := pp.Models[model]; !ok {
				return nil, fmt.Errorf("pricing: %s alias %q names no model of the table (%q)", kind, alias, model)
			}
			if t.aliases[kind] == nil {
				t.aliases[kind] = map[string]string{}
			}
			t.aliases[kind][strings.ToLower(alias)] = model
		}
	}
	return t, nil
}

// Version identifies the table: the built-in version, and when overrides
// are in force "+config." and the first 8 hex digits of the SHA-256 of
// their canonical JSON (e.g. "builtin-2026-11-01+config.3f2a9c1e"). Two
// tables with the same base and the same effective overrides have the
// same version, whatever their order or decimal spelling; any change of a
// price changes it.
func (t *Table) Version() string { return t.version }

// Override prices a model of a provider kind, or one target.
//
// With Provider and Model, the price applies to every target whose
// provider has that kind (its type in config: openai, openai-compatible,
// anthropic, bedrock, gemini or mock) and whose upstream model the name
// matches (exactly, or with version tokens added: an override of
// "claude-sonnet-4-5" prices "claude-sonnet-4-5-20250929"). Overrides are
// looked up before the built-in table. To price one provider instance
// apart from others of its kind (two openai-compatible hosts serving a
// model of the same name), use Target.
//
// With Target (a router target name, "<provider>/<model>"), the price
// applies to that target only, before anything else.
type Override struct {
	Provider string    `json:"provider,omitempty" yaml:"provider"`
	Model    string    `json:"model,omitempty" yaml:"model"`
	Target   string    `json:"target,omitempty" yaml:"target"`
	Price    PriceSpec `json:"price" yaml:"price"`
}

// key identifies what an override prices.
func (o *Override) key() string {
	if o.Target != "" {
		return "target\x00" + o.Target
	}
	return "model\x00" + o.Provider + "\x00" + strings.ToLower(o.Model)
}

// With returns the table with the overrides applied on top of those t
// already has (an override of the same model or target replaces the
// earlier one). Errors: an override naming both a target and a model, or
// neither; an unknown provider kind; the same model or target twice in
// overrides; a malformed or negative price (a *PriceError naming the
// model or target and the field). With(nil) returns t.
func (t *Table) With(overrides []Override) (*Table, error) {
	if len(overrides) == 0 {
		return t, nil
	}
	merged := map[string]Override{}
	for _, o := range t.overrides {
		merged[o.key()] = o
	}
	seen := map[string]bool{}
	for i, o := range overrides {
		switch {
		case o.Target != "" && (o.Provider != "" || o.Model != ""):
			return nil, fmt.Errorf("pricing: override %d: target %q with provider %q and model %q: give a target, or a provider and a model", i, o.Target, o.Provider, o.Model)
		case o.Target == "" && (o.Provider == "" || o.Model == ""):
			return nil, fmt.Errorf("pricing: override %d: provider %q and model %q: both are required (or a target)", i, o.Provider, o.Model)
		case o.Target == "" && !slices.Contains(kinds, o.Provider):
			return nil, fmt.Errorf("pricing: override of model %q: unknown provider kind %q (one of %s)", o.Model, o.Provider, strings.Join(kinds, ", "))
		}
		k := o.key()
		if seen[k] {
			if o.Target != "" {
				return nil, fmt.Errorf("pricing: target %q priced twice", o.Target)
			}
			return nil, fmt.Errorf("pricing: %s model %q priced twice", o.Provider, o.Model)
		}
		seen[k] = true
		_, c, err := o.Price.compile()
		if err != nil {
			return nil, at(err, o.Provider, o.Model, o.Target)
		}
		o.Price = c
		merged[k] = o
	}
	n := &Table{base: t.base, source: t.source, asOf: t.asOf, notes: t.notes, builtin: t.builtin, aliases: t.aliases,
		config: newLayer(), targets: map[string]*entry{}}
	for _, k := range slices.Sorted(maps.Keys(merged)) {
		o := merged[k]
		p, c, _ := o.Price.compile() // canonical: compiles
		e := &entry{kind: o.Provider, model: o.Model, target: o.Target, spec: c, p: p, origin: OriginConfig}
		if o.Target != "" {
			n.targets[o.Target] = e
		} else if err := n.config.add(e); err != nil {
			return nil, err
		}
		n.overrides = append(n.overrides, o)
	}
	slices.SortFunc(n.overrides, func(a, b Override) int {
		return strings.Compare(a.Target+"\x00"+a.Provider+"\x00"+a.Model, b.Target+"\x00"+b.Provider+"\x00"+b.Model)
	})
	canon, err := json.Marshal(n.overrides)
	if err != nil {
		return nil, fmt.Errorf("pricing: encode overrides: %w", err)
	}
	sum := sha256.Sum256(canon)
	n.version = n.base + "+config." + hex.EncodeToString(sum[:4])
	return n, nil
}

// Match is the table entry a model resolved to.
type Match struct {
	// Provider is the provider kind; Model the table's model name (which
	// may differ from the name looked up: "gpt-4o" for
	// "gpt-4o-2024-08-06"); Target the target of a target override.
	Provider, Model, Target string
	// Origin is OriginBuiltin or OriginConfig.
	Origin string
	// Price is the canonical price: every token price explicit, amounts
	// in their shortest decimal form.
	Price PriceSpec
}

func (e *entry) match() Match {
	return Match{Provider: e.kind, Model: e.model, Target: e.target, Origin: e.origin, Price: e.spec}
}

// Lookup finds the price of a model of a provider kind: in the overrides,
// then in the built-in table; in each, the exact name first, then the
// model the name designates (a Bedrock inference profile or ARN, Gemini's
// "models/" prefix, an alias such as "claude-sonnet-4-0"), then the
// longest name left by removing version tokens (dated snapshots,
// "-latest", Bedrock ":0" revisions). A word that names another model
// ("gpt-4o-mini" is not "gpt-4o") is never removed.
func (t *Table) Lookup(kind, model string) (Match, bool) {
	if e := t.lookup(kind, model); e != nil {
		return e.match(), true
	}
	return Match{}, false
}

func (t *Table) lookup(kind, model string) *entry {
	if model == "" {
		return nil
	}
	ns := names(kind, model)
	if al := t.aliases[kind]; al != nil {
		for _, n := range ns {
			if a, ok := al[strings.ToLower(n)]; ok {
				ns = append(ns, a)
				break
			}
		}
	}
	if e := t.config.find(kind, ns); e != nil {
		return e
	}
	return t.builtin.find(kind, ns)
}

// Description is the effective table, as GET /admin/pricing shows it.
type Description struct {
	// Version is the table's version; BuiltinVersion that of the table
	// the overrides apply to.
	Version        string `json:"version"`
	BuiltinVersion string `json:"builtin_version"`
	AsOf           string `json:"as_of,omitempty"`
	Source         string `json:"source,omitempty"`
	// Unit says what the amounts are.
	Unit  string   `json:"unit"`
	Notes []string `json:"notes,omitempty"`
	// Providers maps a provider kind and model to its price, overrides
	// included (an override of a built-in model replaces it).
	Providers map[string]map[string]ModelPrice `json:"providers"`
	// Aliases maps a provider kind and a model alias to the model it
	// designates.
	Aliases map[string]map[string]string `json:"aliases,omitempty"`
	// Targets are the target overrides.
	Targets map[string]PriceSpec `json:"targets,omitempty"`
	// Overrides are the overrides in force, canonical (what the version
	// hashes).
	Overrides []Override `json:"overrides,omitempty"`
}

// ModelPrice is a model's canonical price and where it comes from.
type ModelPrice struct {
	PriceSpec
	Origin string `json:"origin"`
}

// Unit is how a Description's amounts read.
const Unit = "USD per 1M tokens (request: USD per request), exact decimals"

// Describe returns the effective table.
func (t *Table) Describe() Description {
	d := Description{Version: t.version, BuiltinVersion: t.base, AsOf: t.asOf, Source: t.source, Unit: Unit,
		Notes: slices.Clone(t.notes), Providers: map[string]map[string]ModelPrice{}}
	for _, o := range t.overrides {
		o.Price = clone(o.Price)
		d.Overrides = append(d.Overrides, o)
	}
	add := func(e *entry) {
		if d.Providers[e.kind] == nil {
			d.Providers[e.kind] = map[string]ModelPrice{}
		}
		d.Providers[e.kind][e.model] = ModelPrice{PriceSpec: clone(e.spec), Origin: e.origin}
	}
	for kind, models := range t.builtin.exact {
		for model, e := range models {
			if t.config.fold[kind][strings.ToLower(model)] == nil { // else replaced by an override
				add(e)
			}
		}
	}
	for _, models := range t.config.exact {
		for _, e := range models {
			add(e)
		}
	}
	if len(t.aliases) > 0 {
		d.Aliases = map[string]map[string]string{}
		for kind, al := range t.aliases {
			d.Aliases[kind] = maps.Clone(al)
		}
	}
	if len(t.targets) > 0 {
		d.Targets = map[string]PriceSpec{}
		for name, e := range t.targets {
			d.Targets[name] = clone(e.spec)
		}
	}
	return d
}

// clone copies a spec (its long-context tier is a pointer).
func clone(s PriceSpec) PriceSpec {
	if s.LongContext != nil {
		l := *s.LongContext
		s.LongContext = &l
	}
	return s
}
