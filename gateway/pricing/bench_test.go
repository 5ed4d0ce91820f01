package pricing_test

import (
	"fmt"
	"testing"

	"aigw/gateway"
	"aigw/gateway/pricing"
)

// benchPricer prices the built-in table's models as 60 targets, a route
// of three of them and a long-context target.
func benchPricer(b *testing.B) *pricing.Pricer {
	var targets []pricing.TargetPrice
	for kind, models := range pricing.Builtin().Describe().Providers {
		for m := range models {
			targets = append(targets, pricing.TargetPrice{Name: kind + "/" + m, Kind: kind, Model: m})
		}
	}
	for i := len(targets); i < 60; i++ {
		targets = append(targets, pricing.TargetPrice{Name: fmt.Sprintf("vllm/m%d", i), Kind: "openai-compatible", Model: fmt.Sprintf("m%d", i)})
	}
	p, err := pricing.NewPricer(pricing.Builtin(), targets, map[string][]string{
		"smart": {"openai/gpt-4o", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-pro"},
	})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkCost(b *testing.B) {
	p := benchPricer(b)
	for _, c := range []struct {
		name, target string
		u            *gateway.Usage
	}{
		{"openai", "openai/gpt-4o", &gateway.Usage{PromptTokens: 1200, CompletionTokens: 300, PromptTokensDetails: &gateway.PromptTokensDetails{CachedTokens: 1024}}},
		{"anthropic-cache", "anthropic/claude-sonnet-4-5", &gateway.Usage{PromptTokens: 12000, CompletionTokens: 800, PromptTokensDetails: &gateway.PromptTokensDetails{CachedTokens: 9000, CacheCreationTokens: 2000}}},
		{"long-context", "gemini/gemini-2.5-pro", &gateway.Usage{PromptTokens: 250_000, CompletionTokens: 4000}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := p.Cost(c.target, c.u); !ok {
					b.Fatal("unpriced")
				}
			}
		})
	}
}

func BenchmarkEstimate(b *testing.B) {
	p := benchPricer(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := p.Estimate("smart", 3000, 1024); !ok {
			b.Fatal("unpriced")
		}
	}
}

// BenchmarkNewPricer is the start-up cost (every target looked up once).
func BenchmarkNewPricer(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchPricer(b)
	}
}
