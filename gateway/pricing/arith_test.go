package pricing

import (
	"math"
	"math/big"
	"slices"
	"testing"
)

// refCost is the cost formula in math/big, as the package documents it.
func refCost(p *price, prompt, cached, written, completion uint64) int64 {
	r := p.base
	if p.hasLong && prompt > p.above {
		r = p.long
	}
	uncached := prompt
	cached = min(cached, uncached)
	uncached -= cached
	written = min(written, uncached)
	uncached -= written
	sum := new(big.Int)
	for _, tr := range [][2]uint64{{uncached, r.in}, {cached, r.cached}, {written, r.write}, {completion, r.out}} {
		sum.Add(sum, new(big.Int).Mul(new(big.Int).SetUint64(tr[0]), new(big.Int).SetUint64(tr[1])))
	}
	q, m := new(big.Int).DivMod(sum, big.NewInt(1_000_000), new(big.Int))
	if m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	q.Add(q, new(big.Int).SetUint64(p.request))
	if !q.IsInt64() {
		return math.MaxInt64
	}
	return q.Int64()
}

// FuzzCost checks the 128-bit arithmetic against math/big for any prices
// and token counts in range.
func FuzzCost(f *testing.F) {
	f.Add(uint64(2_500_000_000), uint64(10_000_000_000), uint64(1_250_000_000), uint64(0), uint64(0), uint64(1000), uint64(400), uint64(0), uint64(500), uint64(0))
	f.Add(uint64(math.MaxInt64), uint64(math.MaxInt64), uint64(math.MaxInt64), uint64(math.MaxInt64), uint64(math.MaxInt64), uint64(math.MaxInt64), uint64(0), uint64(0), uint64(math.MaxInt64), uint64(200_000))
	f.Add(uint64(1), uint64(1), uint64(1), uint64(1), uint64(0), uint64(1), uint64(0), uint64(0), uint64(0), uint64(0))
	f.Add(uint64(999_999), uint64(3), uint64(5), uint64(7), uint64(1), uint64(1_000_001), uint64(3), uint64(9), uint64(1<<40), uint64(5))
	f.Fuzz(func(t *testing.T, in, out, cached, write, request, prompt, nCached, nWritten, completion, above uint64) {
		const lim = math.MaxInt64 // prices and token counts are int64s
		p := price{base: rates{in % lim, out % lim, cached % lim, write % lim}, request: request % lim}
		if above != 0 {
			p.hasLong, p.above = true, above%lim
			p.long = rates{(in / 3) % lim, (out / 3) % lim, (cached / 7) % lim, (write / 5) % lim}
		}
		args := []uint64{prompt % lim, nCached % lim, nWritten % lim, completion % lim}
		got := int64(p.cost(args[0], args[1], args[2], args[3]))
		if want := refCost(&p, args[0], args[1], args[2], args[3]); got != want {
			t.Fatalf("cost(%+v, %v) = %d; want %d", p, args, got, want)
		}
		// estimate is an upper bound of every split of the prompt.
		est := int64(p.estimate(args[0], args[3]))
		if got > est {
			t.Fatalf("estimate(%+v, %d, %d) = %d below cost %d of split %v", p, args[0], args[3], est, got, args)
		}
	})
}

// FuzzParseAmount checks the decimal parser: what it accepts is the exact
// value of the decimal (checked with big.Rat) and formats back to itself.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"0", "2.50", "0.075", "0.000000001", "9223372036.854775807", "-1", "1e3", "1.", ".5", "0.0000000001", "007.10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseAmount("input", s)
		if err != nil {
			return
		}
		if v > math.MaxInt64 {
			t.Fatalf("parseAmount(%q) = %d, beyond int64", s, v)
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("parseAmount(%q) = %d, but it is not a number", s, v)
		}
		want := new(big.Rat).Mul(r, big.NewRat(1_000_000_000, 1))
		if !want.IsInt() || want.Num().Cmp(new(big.Int).SetUint64(v)) != 0 {
			t.Fatalf("parseAmount(%q) = %d; want %s", s, v, want.RatString())
		}
		back, err := parseAmount("input", format(v))
		if err != nil || back != v {
			t.Fatalf("parseAmount(format(%d) = %q) = %d, %v", v, format(v), back, err)
		}
	})
}

func TestStages(t *testing.T) {
	for _, c := range []struct {
		name  string
		colon bool
		want  []string
	}{
		{"gpt-4o-2024-08-06", false, []string{"gpt-4o-2024-08-06", "gpt-4o"}},
		{"gpt-4o-mini", false, []string{"gpt-4o-mini"}},
		{"Claude-Sonnet-4-5-20250929", false, []string{"claude-sonnet-4-5-20250929", "claude-sonnet-4-5"}},
		{"claude-3-5-haiku-latest", false, []string{"claude-3-5-haiku-latest", "claude-3-5-haiku"}},
		{"gpt-4-0613", false, []string{"gpt-4-0613", "gpt-4"}},
		{"mistral-large-2407", false, []string{"mistral-large-2407"}},
		{"gemini-2.0-flash-001", false, []string{"gemini-2.0-flash-001", "gemini-2.0-flash"}},
		{"gemini-2.5-pro-preview-06-05", false, []string{"gemini-2.5-pro-preview-06-05"}},
		{"gemini-2.5-flash-preview-09-2025", false, []string{"gemini-2.5-flash-preview-09-2025"}},
		{"claude-sonnet-4-0", false, []string{"claude-sonnet-4-0"}},
		{"x-2024-13-01", false, []string{"x-2024-13-01"}},
		{"llama3.1:70b", false, []string{"llama3.1:70b"}},
		{"anthropic.claude-sonnet-4-5-20250929-v1:0", true, []string{"anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5-20250929", "anthropic.claude-sonnet-4-5"}},
		{"amazon.nova-pro-v1:0:300k", true, []string{"amazon.nova-pro-v1:0:300k", "amazon.nova-pro-v1:0", "amazon.nova-pro"}},
		{"amazon.titan-embed-text-v1", true, []string{"amazon.titan-embed-text-v1"}},
		{"amazon.titan-embed-text-v2:0", true, []string{"amazon.titan-embed-text-v2:0", "amazon.titan-embed-text"}},
		{"-2024-08-06", false, []string{"-2024-08-06"}},
		{"", false, []string{""}},
	} {
		if got := stages(c.name, c.colon); !slices.Equal(got, c.want) {
			t.Errorf("stages(%q, %v) = %q; want %q", c.name, c.colon, got, c.want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		in   uint64
		want string
	}{{0, "0"}, {2_500_000_000, "2.5"}, {75_000_000, "0.075"}, {1, "0.000000001"}, {10_000_000_000, "10"}, {math.MaxInt64, "9223372036.854775807"}} {
		if got := format(c.in); got != c.want {
			t.Errorf("format(%d) = %q; want %q", c.in, got, c.want)
		}
	}
}
