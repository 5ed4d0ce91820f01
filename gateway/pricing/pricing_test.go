package pricing_test

import (
	"encoding/json"
	"math"
	"regexp"
	"testing"

	"aigw/gateway"
	"aigw/gateway/pricing"
)

func TestBuiltin(t *testing.T) {
	tb := pricing.Builtin()
	if got, want := tb.Version(), "builtin-2026-11-01"; got != want {
		t.Errorf("Version() = %q; want %q", got, want)
	}
	d := tb.Describe()
	if d.Source == "" || d.AsOf == "" {
		t.Errorf("Describe() has no source or as_of: %q, %q", d.Source, d.AsOf)
	}
	required := map[string][]string{
		"openai": {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano",
			"text-embedding-3-small", "text-embedding-3-large"},
		"anthropic": {"claude-opus-4-1", "claude-opus-4-5", "claude-sonnet-4", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-haiku"},
		"gemini":    {"gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash", "gemini-embedding-001"},
		"bedrock": {"anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-opus-4-1-20250805-v1:0",
			"anthropic.claude-opus-4-5-20251101-v1:0", "anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0",
			"amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0", "meta.llama3-1-70b-instruct-v1:0"},
		"mock": {"mock-1", "mock-embed-1"},
	}
	for kind, models := range required {
		for _, m := range models {
			mp, ok := d.Providers[kind][m]
			if !ok {
				t.Errorf("built-in table has no %s model %q", kind, m)
				continue
			}
			if mp.Origin != pricing.OriginBuiltin {
				t.Errorf("%s %s: origin %q", kind, m, mp.Origin)
			}
		}
	}
	if n := len(d.Providers["openai-compatible"]); n != 0 {
		t.Errorf("openai-compatible has %d built-in prices; want none", n)
	}
	for _, c := range []struct {
		kind, model string
		want        pricing.PriceSpec
	}{
		{"mock", "mock-1", pricing.PriceSpec{Input: "0.1", Output: "0.4", CachedInput: "0.1", CacheWrite: "0.1"}},
		{"mock", "mock-embed-1", pricing.PriceSpec{Input: "0.02", Output: "0", CachedInput: "0.02", CacheWrite: "0.02"}},
		{"openai", "gpt-4o", pricing.PriceSpec{Input: "2.5", Output: "10", CachedInput: "1.25", CacheWrite: "2.5"}},
		{"gemini", "gemini-2.5-pro", pricing.PriceSpec{Input: "1.25", Output: "10", CachedInput: "0.125", CacheWrite: "1.25",
			LongContext: &pricing.LongContextSpec{AbovePromptTokens: 200000, Input: "2.5", Output: "15", CachedInput: "0.25", CacheWrite: "2.5"}}},
	} {
		got := d.Providers[c.kind][c.model].PriceSpec
		if a, b := mustJSON(t, got), mustJSON(t, c.want); a != b {
			t.Errorf("%s %s = %s; want %s", c.kind, c.model, a, b)
		}
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLookup(t *testing.T) {
	tb := pricing.Builtin()
	for _, c := range []struct {
		kind, model, want string // want "": unpriced
	}{
		// OpenAI: dated snapshots, never another family.
		{"openai", "gpt-4o", "gpt-4o"},
		{"openai", "gpt-4o-2024-08-06", "gpt-4o"},
		{"openai", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13"},
		{"openai", "GPT-4o-2024-11-20", "gpt-4o"},
		{"openai", "gpt-4o-mini", "gpt-4o-mini"},
		{"openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"},
		{"openai", "gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"},
		{"openai", "o3-2025-04-16", "o3"},
		{"openai", "o3-mini-2025-01-31", "o3-mini"},
		{"openai", "o3-pro", ""},
		{"openai", "o4-mini-2025-04-16", "o4-mini"},
		{"openai", "gpt-5-2025-08-07", "gpt-5"},
		{"openai", "gpt-5-mini-2025-08-07", "gpt-5-mini"},
		{"openai", "gpt-5-chat-latest", ""},
		{"openai", "gpt-4o-audio-preview", ""},
		{"openai", "gpt-4o-mini-search-preview", ""},
		{"openai", "claude-sonnet-4-5", ""},
		{"openai", "", ""},
		// Anthropic: snapshots, -latest, aliases.
		{"anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"},
		{"anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4"},
		{"anthropic", "claude-sonnet-4-0", "claude-sonnet-4"},
		{"anthropic", "claude-opus-4-0", "claude-opus-4"},
		{"anthropic", "claude-opus-4-1-20250805", "claude-opus-4-1"},
		{"anthropic", "claude-opus-4-5-20251101", "claude-opus-4-5"},
		{"anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5"},
		{"anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku"},
		{"anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku"},
		{"anthropic", "claude-3-5-sonnet-20241022", ""},
		{"anthropic", "anthropic.claude-sonnet-4-5-20250929-v1:0", ""},
		// Gemini.
		{"gemini", "gemini-2.5-pro", "gemini-2.5-pro"},
		{"gemini", "models/gemini-2.5-flash", "gemini-2.5-flash"},
		{"gemini", "gemini-2.0-flash-001", "gemini-2.0-flash"},
		{"gemini", "gemini-2.0-flash-lite-001", "gemini-2.0-flash-lite"},
		{"gemini", "gemini-2.5-flash-lite", "gemini-2.5-flash-lite"},
		{"gemini", "gemini-2.5-flash-lite-preview-06-17", ""},
		{"gemini", "gemini-2.5-pro-preview-06-05", ""},
		{"gemini", "gemini-embedding-001", "gemini-embedding-001"},
		// Bedrock: exact ids, inference profiles, ARNs, variants.
		{"bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"bedrock", "eu.anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-sonnet-4-20250514-v1:0"},
		{"bedrock", "apac.anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"},
		{"bedrock", "global.anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic.claude-haiku-4-5-20251001-v1:0"},
		{"bedrock", "us.amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0"},
		{"bedrock", "amazon.nova-pro-v1:0:300k", "amazon.nova-pro-v1:0"},
		{"bedrock", "anthropic.claude-3-haiku-20240307-v1:0:200k", "anthropic.claude-3-haiku-20240307-v1:0"},
		{"bedrock", "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0", "amazon.nova-lite-v1:0"},
		{"bedrock", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-1-70b-instruct-v1:0", "meta.llama3-1-70b-instruct-v1:0"},
		{"bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v2:0", ""},
		{"bedrock", "amazon.nova-premier-v1:0", ""},
		{"bedrock", "amazon.titan-embed-text-v1", ""},
		{"bedrock", "meta.llama3-1-405b-instruct-v1:0", ""},
		{"bedrock", "xx.amazon.nova-lite-v1:0", ""},
		{"bedrock", "claude-sonnet-4-5", ""},
		// openai-compatible hosts have no built-in prices.
		{"openai-compatible", "gpt-4o", ""},
		{"mock", "mock-1", "mock-1"},
		{"azure", "gpt-4o", ""},
	} {
		m, ok := tb.Lookup(c.kind, c.model)
		if ok != (c.want != "") || m.Model != c.want {
			t.Errorf("Lookup(%q, %q) = %q, %v; want %q", c.kind, c.model, m.Model, ok, c.want)
		}
	}
}

// TestLookupNoWrongFamily: with only gpt-4o in a table, gpt-4o-mini is
// unpriced, never priced as gpt-4o.
func TestLookupNoWrongFamily(t *testing.T) {
	tb, err := pricing.Parse([]byte(`{"version": "t1", "providers": {"openai": {"models": {"gpt-4o": {"input": "2.5", "output": "10"}}},
		"gemini": {"models": {"gemini-2.5-flash": {"input": "0.3"}}}, "anthropic": {"models": {"claude-sonnet-4": {"input": "3"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{
		{"openai", "gpt-4o-mini"}, {"openai", "gpt-4o-mini-2024-07-18"}, {"openai", "gpt-4o-realtime-preview-2024-12-17"},
		{"gemini", "gemini-2.5-flash-lite"}, {"anthropic", "claude-sonnet-4-5-20250929"}, {"anthropic", "claude-sonnet-4-5"},
	} {
		if m, ok := tb.Lookup(c[0], c[1]); ok {
			t.Errorf("Lookup(%q, %q) = %q; want unpriced", c[0], c[1], m.Model)
		}
	}
	if m, ok := tb.Lookup("openai", "gpt-4o-2024-08-06"); !ok || m.Model != "gpt-4o" {
		t.Errorf("Lookup(openai, gpt-4o-2024-08-06) = %q, %v; want gpt-4o", m.Model, ok)
	}
}

// newPricer builds a Pricer over the built-in table with overrides.
func newPricer(t testing.TB, ovs []pricing.Override, targets []pricing.TargetPrice, routes map[string][]string) *pricing.Pricer {
	t.Helper()
	tb, err := pricing.Builtin().With(ovs)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pricing.NewPricer(tb, targets, routes)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func usage(prompt, cached, written, completion int) *gateway.Usage {
	u := &gateway.Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
	if cached != 0 || written != 0 {
		u.PromptTokensDetails = &gateway.PromptTokensDetails{CachedTokens: cached, CacheCreationTokens: written}
	}
	return u
}

func TestCost(t *testing.T) {
	p := newPricer(t, nil, []pricing.TargetPrice{
		{Name: "oai/gpt-4o", Kind: "openai", Model: "gpt-4o-2024-08-06"},
		{Name: "oai/embed", Kind: "openai", Model: "text-embedding-3-small"},
		{Name: "ant/sonnet", Kind: "anthropic", Model: "claude-sonnet-4-5-20250929"},
		{Name: "ant/opus", Kind: "anthropic", Model: "claude-opus-4-1"},
		{Name: "gem/pro", Kind: "gemini", Model: "gemini-2.5-pro"},
		{Name: "br/nova", Kind: "bedrock", Model: "us.amazon.nova-pro-v1:0"},
		{Name: "mock/mock-1", Kind: "mock", Model: "mock-1"},
		{Name: "x/fee", Kind: "openai-compatible", Model: "m", Price: &pricing.PriceSpec{Input: "0.0375", Output: "0.0000001", Request: "0.001"}},
		{Name: "x/tiny", Kind: "openai-compatible", Model: "t", Price: &pricing.PriceSpec{Input: "0.000000001"}},
		{Name: "x/max", Kind: "openai-compatible", Model: "max", Price: &pricing.PriceSpec{Input: "9223372036.854775807", Output: "9223372036.854775807", Request: "1"}},
	}, nil)
	const maxInt = int(math.MaxInt64)
	for _, c := range []struct {
		name, target string
		u            *gateway.Usage
		want         gateway.NanoUSD
	}{
		// 600×2.50 + 400×1.25 + 500×10 = 7000 USD/M → 0.007 USD.
		{"CachedInput", "oai/gpt-4o", usage(1000, 400, 0, 500), 7_000_000},
		// No details: every prompt token at the input price: 1000×2.5 + 500×10 = 7500.
		{"NoDetails", "oai/gpt-4o", usage(1000, 0, 0, 500), 7_500_000},
		// Reasoning tokens are in CompletionTokens already.
		{"Reasoning", "oai/gpt-4o", &gateway.Usage{PromptTokens: 1000, CompletionTokens: 500, CompletionTokensDetails: &gateway.CompletionTokensDetails{ReasoningTokens: 300}}, 7_500_000},
		// 1000×0.02 = 20 USD/M.
		{"Embedding", "oai/embed", usage(1000, 0, 0, 0), 20_000},
		// 2000×3 + 5000×0.30 + 3000×3.75 + 1000×15 = 33750.
		{"CacheWrite", "ant/sonnet", usage(10_000, 5000, 3000, 1000), 33_750_000},
		// At the threshold: base prices.
		{"AtThreshold", "ant/sonnet", usage(200_000, 0, 0, 0), 600_000_000},
		// Above it: the tier for the whole call: 150000×6 + 100000×0.60 + 50000×7.50 + 2000×22.50 = 1380000.
		{"LongContextAnthropic", "ant/sonnet", usage(300_000, 100_000, 50_000, 2000), 1_380_000_000},
		// 200000×1.25 + 1000×10 = 260000.
		{"GeminiBase", "gem/pro", usage(200_000, 0, 0, 1000), 260_000_000},
		// 200001×2.50 + 1000×15 = 515002.5.
		{"GeminiLong", "gem/pro", usage(200_001, 0, 0, 1000), 515_002_500},
		// 200000×2.50 + 50000×0.25 + 2000×15 = 542500.
		{"GeminiLongCached", "gem/pro", usage(250_000, 50_000, 0, 2000), 542_500_000},
		// 1000×0.80 + 1000×0.20 + 100×3.20 = 1320.
		{"BedrockProfile", "br/nova", usage(2000, 1000, 0, 100), 1_320_000},
		// 10×0.1 + 20×0.4 = 9.
		{"Mock", "mock/mock-1", usage(10, 0, 0, 20), 9000},
		// 37.5 + 0.0001 nano-USD rounds up to 38, plus the 0.001 USD fee.
		{"RequestFeeAndRounding", "x/fee", usage(1, 0, 0, 1), 1_000_038},
		{"RequestFeeOnly", "x/fee", usage(0, 0, 0, 0), 1_000_000},
		// 1 nano-USD per million tokens: one token costs 1e-6 nano-USD, rounded up to 1.
		{"SubNano", "x/tiny", usage(1, 0, 0, 0), 1},
		{"SubNanoMillion", "x/tiny", usage(1_000_000, 0, 0, 0), 1},
		{"SubNanoMillionAndOne", "x/tiny", usage(1_000_001, 0, 0, 0), 2},
		{"Zero", "x/tiny", usage(0, 0, 0, 0), 0},
		// A trillion tokens each way on Opus: 1e12×15 + 1e12×75 USD/M = 90 million USD
		// (the products exceed 64 bits).
		{"Huge", "ant/opus", usage(1_000_000_000_000, 0, 0, 1_000_000_000_000), 90_000_000 * 1_000_000_000},
		{"Saturates", "x/max", usage(maxInt, 0, 0, maxInt), math.MaxInt64},
		// The dearest price there is (MaxInt64 nano-USD per million): 999999
		// tokens cost MaxInt64 × 0.999999 = MaxInt64 − 9223372036854.775807,
		// rounded up, plus the 1 USD fee; a million tokens plus the fee saturate.
		{"Near64Bits", "x/max", usage(999_999, 0, 0, 0), math.MaxInt64 - 9_223_372_036_854 + 1_000_000_000},
		{"SaturatesOnFee", "x/max", usage(1_000_000, 0, 0, 0), math.MaxInt64},
		{"SaturatesOnTokens", "ant/opus", usage(maxInt/16, 0, 0, 0), math.MaxInt64},
		// Inconsistent counts: cached tokens beyond the prompt are capped to it.
		{"CachedBeyondPrompt", "oai/gpt-4o", usage(100, 500, 0, 0), 125_000},
		{"Negative", "oai/gpt-4o", usage(-5, -3, -1, -7), 0},
		{"NilUsage", "oai/gpt-4o", nil, 0},
	} {
		got, ok := p.Cost(c.target, c.u)
		if !ok || got.Amount != c.want || got.PriceVersion != p.Version() {
			t.Errorf("%s: Cost(%q) = %v (%d), %q, %v; want %v", c.name, c.target, got.Amount, got.Amount, got.PriceVersion, ok, c.want)
		}
	}
	for _, target := range []string{"nope", ""} {
		if c, ok := p.Cost(target, usage(1, 0, 0, 1)); ok {
			t.Errorf("Cost(%q) = %v, true; want not priced", target, c)
		}
	}
}

func TestCostUnpricedTarget(t *testing.T) {
	p := newPricer(t, nil, []pricing.TargetPrice{{Name: "vllm/llama", Kind: "openai-compatible", Model: "llama-3.1-70b"}}, map[string][]string{"llama": {"vllm/llama"}})
	if c, ok := p.Cost("vllm/llama", usage(10, 0, 0, 10)); ok {
		t.Errorf("Cost(vllm/llama) = %v, true; want unpriced", c)
	}
	if c, ok := p.Estimate("llama", 10, 10); ok {
		t.Errorf("Estimate(llama) = %v, true; want unpriced", c)
	}
	if got, want := p.Version(), "builtin-2026-11-01"; got != want {
		t.Errorf("Version() = %q; want %q (no overrides)", got, want)
	}
	// Priced in config by kind, it is priced.
	p = newPricer(t, []pricing.Override{{Provider: "openai-compatible", Model: "llama-3.1-70b", Price: pricing.PriceSpec{Input: "0.5", Output: "0.5"}}},
		[]pricing.TargetPrice{{Name: "vllm/llama", Kind: "openai-compatible", Model: "llama-3.1-70b"}}, nil)
	if c, ok := p.Cost("vllm/llama", usage(1000, 0, 0, 1000)); !ok || c.Amount != 1_000_000 {
		t.Errorf("Cost(vllm/llama) = %v, %v; want 0.001", c.Amount, ok)
	}
}

func TestEstimate(t *testing.T) {
	p := newPricer(t, nil, []pricing.TargetPrice{
		{Name: "oai/gpt-4o", Kind: "openai", Model: "gpt-4o"},
		{Name: "ant/sonnet", Kind: "anthropic", Model: "claude-sonnet-4-5"},
		{Name: "vllm/llama", Kind: "openai-compatible", Model: "llama"},
		{Name: "gem/pro", Kind: "gemini", Model: "gemini-2.5-pro"},
	}, map[string][]string{
		"smart":    {"oai/gpt-4o", "ant/sonnet", "vllm/llama"},
		"cheap":    {"oai/gpt-4o"},
		"local":    {"vllm/llama"},
		"longctx":  {"gem/pro", "oai/gpt-4o"},
		"no-route": {},
	})
	for _, c := range []struct {
		route          string
		prompt, output int
		want           gateway.NanoUSD
		ok             bool
	}{
		// gpt-4o: 1000×2.5 + 500×10 = 7500; sonnet: 1000×3.75 (its dearest
		// prompt price, a cache write) + 500×15 = 11250.
		{"smart", 1000, 500, 11_250_000, true},
		{"cheap", 1000, 500, 7_500_000, true},
		{"local", 1000, 500, 0, false},
		{"nope", 1000, 500, 0, false},
		{"no-route", 1000, 500, 0, false},
		// Gemini above 200k: 300000×2.5 + 1000×15 = 765000 (gpt-4o: 300000×2.5 + 10000 = 760000).
		{"longctx", 300_000, 1000, 765_000_000, true},
		{"cheap", -1, -1, 0, true},
	} {
		got, ok := p.Estimate(c.route, c.prompt, c.output)
		if ok != c.ok || got.Amount != c.want || ok && got.PriceVersion != p.Version() {
			t.Errorf("Estimate(%q, %d, %d) = %v, %q, %v; want %v, %v", c.route, c.prompt, c.output, got.Amount, got.PriceVersion, ok, c.want, c.ok)
		}
	}
	if got, ok := p.EstimateTarget("ant/sonnet", 1000, 500); !ok || got.Amount != 11_250_000 {
		t.Errorf("EstimateTarget(ant/sonnet) = %v, %v", got.Amount, ok)
	}
	if _, ok := p.EstimateTarget("vllm/llama", 1000, 500); ok {
		t.Error("EstimateTarget(vllm/llama) priced")
	}
	// The estimate bounds every cost of that many tokens.
	for _, u := range []*gateway.Usage{usage(1000, 0, 0, 500), usage(1000, 1000, 0, 500), usage(1000, 0, 1000, 500), usage(1000, 300, 700, 500)} {
		c, _ := p.Cost("ant/sonnet", u)
		if e, _ := p.Estimate("smart", 1000, 500); c.Amount > e.Amount {
			t.Errorf("Cost(%+v) = %v above Estimate %v", u.PromptTokensDetails, c.Amount, e.Amount)
		}
	}
}

var versionRE = regexp.MustCompile(`^builtin-2026-11-01\+config\.[0-9a-f]{8}$`)

func TestOverrideVersion(t *testing.T) {
	base := pricing.Builtin()
	with := func(ovs ...pricing.Override) *pricing.Table { return mustWith(t, base, ovs...) }
	if tb := with(); tb.Version() != base.Version() {
		t.Errorf("With(nil).Version() = %q; want %q", tb.Version(), base.Version())
	}
	a := pricing.Override{Provider: "openai", Model: "gpt-4o", Price: pricing.PriceSpec{Input: "2", Output: "8"}}
	a2 := pricing.Override{Provider: "openai", Model: "gpt-4o", Price: pricing.PriceSpec{Input: "2.000", Output: "8.0", CachedInput: "2", CacheWrite: "2.0"}}
	b := pricing.Override{Provider: "anthropic", Model: "claude-sonnet-4-5", Price: pricing.PriceSpec{Input: "2.7", Output: "13.5", CachedInput: "0.27"}}
	tg := pricing.Override{Target: "oai/gpt-4o", Price: pricing.PriceSpec{Input: "1"}}
	v1 := with(a, b).Version()
	if !versionRE.MatchString(v1) {
		t.Errorf("version %q does not read builtin-2026-11-01+config.<8 hex>", v1)
	}
	for name, v := range map[string]string{
		"SameAgain":        with(a, b).Version(),
		"OtherOrder":       with(b, a).Version(),
		"OtherSpelling":    with(a2, b).Version(),
		"Chained":          mustWith(t, with(a), b).Version(),
		"ChainedReplacing": mustWith(t, with(pricing.Override{Provider: "openai", Model: "gpt-4o", Price: pricing.PriceSpec{Input: "9"}}, b), a).Version(),
	} {
		if v != v1 {
			t.Errorf("%s: version %q; want %q", name, v, v1)
		}
	}
	changed := b
	changed.Price.Output = "13.6"
	for name, v := range map[string]string{
		"PriceChanged":  with(a, changed).Version(),
		"FewerPrices":   with(a).Version(),
		"TargetAdded":   with(a, b, tg).Version(),
		"ModelRenamed":  with(a, pricing.Override{Provider: "anthropic", Model: "claude-sonnet-4", Price: b.Price}).Version(),
		"KindChanged":   with(a, pricing.Override{Provider: "bedrock", Model: "claude-sonnet-4-5", Price: b.Price}).Version(),
		"RequestFee":    with(a, pricing.Override{Provider: b.Provider, Model: b.Model, Price: pricing.PriceSpec{Input: "2.7", Output: "13.5", CachedInput: "0.27", Request: "0.000000001"}}).Version(),
		"LongTierAdded": with(a, pricing.Override{Provider: b.Provider, Model: b.Model, Price: pricing.PriceSpec{Input: "2.7", Output: "13.5", CachedInput: "0.27", LongContext: &pricing.LongContextSpec{AbovePromptTokens: 1, Input: "1", Output: "1"}}}).Version(),
	} {
		if v == v1 || !versionRE.MatchString(v) {
			t.Errorf("%s: version %q; want a version other than %q", name, v, v1)
		}
	}

	// A target's own price is a target override: the same version either way.
	targets := []pricing.TargetPrice{{Name: "oai/gpt-4o", Kind: "openai", Model: "gpt-4o"}}
	p1, err := pricing.NewPricer(with(a, b, tg), targets, nil)
	if err != nil {
		t.Fatal(err)
	}
	targets[0].Price = &pricing.PriceSpec{Input: "1.0"}
	p2, err := pricing.NewPricer(with(a, b), targets, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Version() != p2.Version() || p1.Version() != with(a, b, tg).Version() {
		t.Errorf("versions %q, %q; want both %q", p1.Version(), p2.Version(), with(a, b, tg).Version())
	}
	c1, _ := p1.Cost("oai/gpt-4o", usage(1000, 0, 0, 1000))
	c2, _ := p2.Cost("oai/gpt-4o", usage(1000, 0, 0, 1000))
	if c1 != c2 || c1.Amount != 1_000_000 || c1.PriceVersion != p1.Version() {
		t.Errorf("costs %+v, %+v; want 0.001 USD (1000 tokens at 1 USD/M, output 0) at %q", c1, c2, p1.Version())
	}
}

// mustWith is tb.With failing the test on error.
func mustWith(t *testing.T, tb *pricing.Table, ovs ...pricing.Override) *pricing.Table {
	t.Helper()
	n, err := tb.With(ovs)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
