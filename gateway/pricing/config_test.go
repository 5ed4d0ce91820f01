package pricing_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"aigw/gateway"
	"aigw/gateway/pricing"
)

func TestMalformedPrices(t *testing.T) {
	for _, c := range []struct {
		name  string
		price pricing.PriceSpec
		field string
		err   error
	}{
		{"InputMissing", pricing.PriceSpec{Output: "1"}, "input", pricing.ErrMissing},
		{"InputNegative", pricing.PriceSpec{Input: "-1"}, "input", pricing.ErrNegative},
		{"InputNegativeZero", pricing.PriceSpec{Input: "-0"}, "input", pricing.ErrNegative},
		{"TooManyDecimals", pricing.PriceSpec{Input: "1.0000000001"}, "input", pricing.ErrMalformed},
		{"Exponent", pricing.PriceSpec{Input: "1e3"}, "input", pricing.ErrMalformed},
		{"Space", pricing.PriceSpec{Input: " 1"}, "input", pricing.ErrMalformed},
		{"Plus", pricing.PriceSpec{Input: "+1"}, "input", pricing.ErrMalformed},
		{"TooLarge", pricing.PriceSpec{Input: "9223372037"}, "input", pricing.ErrMalformed},
		{"Word", pricing.PriceSpec{Input: "free"}, "input", pricing.ErrMalformed},
		{"OutputNegative", pricing.PriceSpec{Input: "1", Output: "-0.5"}, "output", pricing.ErrNegative},
		{"CachedMalformed", pricing.PriceSpec{Input: "1", CachedInput: "x"}, "cached_input", pricing.ErrMalformed},
		{"CacheWriteNegative", pricing.PriceSpec{Input: "1", CacheWrite: "-1"}, "cache_write", pricing.ErrNegative},
		{"RequestMalformed", pricing.PriceSpec{Input: "1", Request: "1.2.3"}, "request", pricing.ErrMalformed},
		{"LongThresholdZero", pricing.PriceSpec{Input: "1", LongContext: &pricing.LongContextSpec{Input: "2", Output: "2"}}, "long_context.above_prompt_tokens", nil},
		{"LongInputMissing", pricing.PriceSpec{Input: "1", LongContext: &pricing.LongContextSpec{AbovePromptTokens: 10, Output: "2"}}, "long_context.input", pricing.ErrMissing},
		{"LongOutputMissing", pricing.PriceSpec{Input: "1", LongContext: &pricing.LongContextSpec{AbovePromptTokens: 10, Input: "2"}}, "long_context.output", pricing.ErrMissing},
		{"LongCachedNegative", pricing.PriceSpec{Input: "1", LongContext: &pricing.LongContextSpec{AbovePromptTokens: 10, Input: "2", Output: "2", CachedInput: "-1"}}, "long_context.cached_input", pricing.ErrNegative},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := pricing.Builtin().With([]pricing.Override{{Provider: "openai", Model: "gpt-x", Price: c.price}})
			var pe *pricing.PriceError
			if !errors.As(err, &pe) || pe.Provider != "openai" || pe.Model != "gpt-x" || pe.Field != c.field || c.err != nil && !errors.Is(err, c.err) {
				t.Fatalf("With(%+v) = %v; want a PriceError for openai gpt-x field %s (%v)", c.price, err, c.field, c.err)
			}
			if msg := err.Error(); !strings.Contains(msg, `"gpt-x"`) || !strings.Contains(msg, c.field) {
				t.Errorf("error %q does not name the model and the field", msg)
			}
			// The same price as a target's own price names the target.
			_, err = pricing.NewPricer(pricing.Builtin(), []pricing.TargetPrice{{Name: "p/m", Kind: "openai", Model: "m", Price: &c.price}}, nil)
			if !errors.As(err, &pe) || pe.Target != "p/m" || pe.Field != c.field || !strings.Contains(err.Error(), `target "p/m"`) {
				t.Errorf("NewPricer with price %+v = %v; want a PriceError naming target p/m and field %s", c.price, err, c.field)
			}
		})
	}
}

func TestOverrideErrors(t *testing.T) {
	p := pricing.PriceSpec{Input: "1"}
	for _, c := range []struct {
		name string
		ovs  []pricing.Override
		want string
	}{
		{"TargetAndModel", []pricing.Override{{Target: "a/b", Model: "b", Price: p}}, "give a target, or a provider and a model"},
		{"NoModel", []pricing.Override{{Provider: "openai", Price: p}}, "both are required"},
		{"NoProvider", []pricing.Override{{Model: "gpt-4o", Price: p}}, "both are required"},
		{"UnknownKind", []pricing.Override{{Provider: "oai-prod", Model: "gpt-4o", Price: p}}, `unknown provider kind "oai-prod"`},
		{"ModelTwice", []pricing.Override{{Provider: "openai", Model: "gpt-4o", Price: p}, {Provider: "openai", Model: "GPT-4o", Price: p}}, `openai model "GPT-4o" priced twice`},
		{"TargetTwice", []pricing.Override{{Target: "a/b", Price: p}, {Target: "a/b", Price: p}}, `target "a/b" priced twice`},
	} {
		if _, err := pricing.Builtin().With(c.ovs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: With = %v; want an error with %q", c.name, err, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ name, json, want string }{
		{"NoVersion", `{"providers": {}}`, "no version"},
		{"UnknownField", `{"version": "v", "providers": {"openai": {"models": {"m": {"input": "1", "outptu": "2"}}}}}`, "unknown field"},
		{"UnknownKind", `{"version": "v", "providers": {"azure": {"models": {}}}}`, `unknown provider kind "azure"`},
		{"DanglingAlias", `{"version": "v", "providers": {"openai": {"models": {"m": {"input": "1"}}, "aliases": {"a": "n"}}}}`, `alias "a" names no model`},
		{"NumberPrice", `{"version": "v", "providers": {"openai": {"models": {"m": {"input": 1}}}}}`, "decode table"},
		{"BadPrice", `{"version": "v", "providers": {"openai": {"models": {"m": {"input": "1", "output": "-2"}}}}}`, `openai model "m": output "-2": negative price`},
		{"CaseTwins", `{"version": "v", "providers": {"openai": {"models": {"m": {"input": "1"}, "M": {"input": "2"}}}}}`, "differ only in case"},
	} {
		if _, err := pricing.Parse([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Parse = %v; want an error with %q", c.name, err, c.want)
		}
	}
}

// TestOverridePrecedence: overrides are consulted before the built-in
// table, by kind, and replace the built-in entry they name.
func TestOverridePrecedence(t *testing.T) {
	tb := mustWith(t, pricing.Builtin(),
		pricing.Override{Provider: "openai", Model: "gpt-4o", Price: pricing.PriceSpec{Input: "2", Output: "8"}},
		pricing.Override{Provider: "bedrock", Model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0", Price: pricing.PriceSpec{Input: "3.3", Output: "16.5"}},
	)
	for _, c := range []struct{ kind, model, entry, origin, input string }{
		{"openai", "gpt-4o", "gpt-4o", pricing.OriginConfig, "2"},
		{"openai", "gpt-4o-2024-08-06", "gpt-4o", pricing.OriginConfig, "2"},
		{"openai", "gpt-4o-2024-05-13", "gpt-4o", pricing.OriginConfig, "2"},
		{"openai", "gpt-4o-mini", "gpt-4o-mini", pricing.OriginBuiltin, "0.15"},
		{"bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", pricing.OriginConfig, "3.3"},
		{"bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5-20250929-v1:0", pricing.OriginBuiltin, "3"},
	} {
		m, ok := tb.Lookup(c.kind, c.model)
		if !ok || m.Model != c.entry || m.Origin != c.origin || m.Price.Input != c.input {
			t.Errorf("Lookup(%q, %q) = %+v, %v; want %s from %s at %s", c.kind, c.model, m, ok, c.entry, c.origin, c.input)
		}
	}
	d := tb.Describe()
	if mp := d.Providers["openai"]["gpt-4o"]; mp.Origin != pricing.OriginConfig || mp.Input != "2" || mp.CachedInput != "2" {
		t.Errorf("Describe: openai gpt-4o = %+v; want the override, cached input defaulting to its input", mp)
	}
	if len(d.Overrides) != 2 || d.Version != tb.Version() || d.BuiltinVersion != "builtin-2026-11-01" {
		t.Errorf("Describe: %d overrides, version %q, builtin %q", len(d.Overrides), d.Version, d.BuiltinVersion)
	}
}

func TestNewPricerErrors(t *testing.T) {
	for _, c := range []struct {
		name    string
		targets []pricing.TargetPrice
		routes  map[string][]string
		want    string
	}{
		{"NoName", []pricing.TargetPrice{{Kind: "openai", Model: "gpt-4o"}}, nil, "has no name"},
		{"Conflict", []pricing.TargetPrice{{Name: "a", Kind: "openai", Model: "gpt-4o"}, {Name: "a", Kind: "openai", Model: "gpt-5"}}, nil, `target "a" listed as`},
		{"TwoPrices", []pricing.TargetPrice{{Name: "a", Kind: "openai", Model: "gpt-4o", Price: &pricing.PriceSpec{Input: "1"}}, {Name: "a", Kind: "openai", Model: "gpt-4o", Price: &pricing.PriceSpec{Input: "2"}}}, nil, "two different prices"},
		{"UnknownTarget", []pricing.TargetPrice{{Name: "a", Kind: "openai", Model: "gpt-4o"}}, map[string][]string{"r": {"a", "b"}}, `route "r": unknown target "b"`},
	} {
		if _, err := pricing.NewPricer(pricing.Builtin(), c.targets, c.routes); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: NewPricer = %v; want an error with %q", c.name, err, c.want)
		}
	}
	// The same target listed twice with one price (in two routes) is fine,
	// and spelled differently the same price is the same.
	p, err := pricing.NewPricer(pricing.Builtin(), []pricing.TargetPrice{
		{Name: "a", Kind: "openai", Model: "gpt-4o", Price: &pricing.PriceSpec{Input: "1"}},
		{Name: "a", Kind: "openai", Model: "gpt-4o"},
		{Name: "a", Kind: "openai", Model: "gpt-4o", Price: &pricing.PriceSpec{Input: "1.00", CachedInput: "1"}},
	}, map[string][]string{"r1": {"a"}, "r2": {"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := p.Price("a"); !ok || m.Origin != pricing.OriginTarget || m.Price.Input != "1" {
		t.Errorf("Price(a) = %+v, %v; want the target's own price", m, ok)
	}
}

func TestDescribe(t *testing.T) {
	tb := mustWith(t, pricing.Builtin(), pricing.Override{Provider: "openai-compatible", Model: "llama", Price: pricing.PriceSpec{Input: "0.5", Output: "0.5"}})
	p, err := pricing.NewPricer(tb, []pricing.TargetPrice{
		{Name: "oai/gpt-4o", Kind: "openai", Model: "gpt-4o-2024-08-06"},
		{Name: "vllm/llama", Kind: "openai-compatible", Model: "llama"},
		{Name: "vllm/qwen", Kind: "openai-compatible", Model: "qwen"},
		{Name: "mock/mock-1", Kind: "mock", Model: "mock-1", Price: &pricing.PriceSpec{Input: "0.10", Output: "0.40"}},
	}, map[string][]string{"gpt-4o": {"oai/gpt-4o", "vllm/llama"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p.Describe())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Version string `json:"version"`
		Table   struct {
			Version   string                               `json:"version"`
			Unit      string                               `json:"unit"`
			Providers map[string]map[string]map[string]any `json:"providers"`
			Targets   map[string]map[string]any            `json:"targets"`
			Overrides []map[string]any                     `json:"overrides"`
		} `json:"table"`
		Targets []struct {
			Name, Provider, Model, Entry, Origin string
			Priced                               bool
			Price                                map[string]any
		} `json:"targets"`
		Routes map[string][]string `json:"routes"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != p.Version() || got.Table.Version != p.Version() || !versionRE.MatchString(got.Version) {
		t.Errorf("versions %q / %q; want %q", got.Version, got.Table.Version, p.Version())
	}
	if g := got.Table.Providers["openai"]["gpt-4o"]; g["input"] != "2.5" || g["output"] != "10" || g["cached_input"] != "1.25" || g["origin"] != "builtin" {
		t.Errorf("openai gpt-4o = %v", g)
	}
	if g := got.Table.Providers["gemini"]["gemini-2.5-pro"]["long_context"].(map[string]any); g["above_prompt_tokens"] != 200000.0 || g["input"] != "2.5" {
		t.Errorf("gemini-2.5-pro long_context = %v", g)
	}
	if g := got.Table.Providers["openai-compatible"]["llama"]; g["origin"] != "config" {
		t.Errorf("openai-compatible llama = %v", g)
	}
	if g := got.Table.Targets["mock/mock-1"]; g["input"] != "0.1" {
		t.Errorf("target mock/mock-1 = %v", g)
	}
	want := map[string]string{"mock/mock-1": "target//0.1", "oai/gpt-4o": "builtin/gpt-4o/2.5", "vllm/llama": "config/llama/0.5", "vllm/qwen": "//<nil>"}
	if len(got.Targets) != len(want) {
		t.Errorf("%d targets; want %d", len(got.Targets), len(want))
	}
	for _, tg := range got.Targets {
		s := tg.Origin + "/" + tg.Entry + "/"
		if tg.Price != nil {
			s += tg.Price["input"].(string)
		} else {
			s += "<nil>"
		}
		if s != want[tg.Name] || tg.Priced != (tg.Price != nil) {
			t.Errorf("target %s: %s (priced %v); want %s", tg.Name, s, tg.Priced, want[tg.Name])
		}
	}
	if len(got.Routes["gpt-4o"]) != 2 {
		t.Errorf("routes = %v", got.Routes)
	}
	// Describe returns copies: changing them changes nothing.
	d := p.Describe()
	d.Table.Providers["openai"]["gpt-4o"] = pricing.ModelPrice{}
	d.Table.Overrides[0].Price.Input = "999"
	if m, _ := p.Table().Lookup("openai", "gpt-4o"); m.Price.Input != "2.5" {
		t.Errorf("after changing a description, gpt-4o input = %q", m.Price.Input)
	}
	if p.Describe().Table.Overrides[0].Price.Input == "999" {
		t.Error("Describe shares its overrides")
	}
}

// TestConcurrent prices from many goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	p := newPricer(t, nil, []pricing.TargetPrice{{Name: "a", Kind: "openai", Model: "gpt-4o"}}, map[string][]string{"r": {"a"}})
	done := make(chan gateway.NanoUSD)
	for range 8 {
		go func() {
			var sum gateway.NanoUSD
			for range 1000 {
				c, _ := p.Cost("a", usage(1000, 0, 0, 500))
				e, _ := p.Estimate("r", 1000, 500)
				sum += c.Amount + e.Amount
			}
			done <- sum
		}()
	}
	for range 8 {
		if s := <-done; s != 1000*2*7_500_000 {
			t.Errorf("sum = %d", s)
		}
	}
}
