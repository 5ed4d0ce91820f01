package pricing

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"

	"aigw/gateway"
)

// PriceSpec is a model's price as written in the table and in config:
// exact decimal strings of US dollars per million tokens (Request: per
// request), at most 9 decimals, never negative.
type PriceSpec struct {
	// Input is the price of an uncached prompt token. Required (it may be
	// "0").
	Input string `json:"input" yaml:"input"`
	// Output is the price of a completion token (reasoning tokens
	// included). Absent: 0.
	Output string `json:"output,omitempty" yaml:"output"`
	// CachedInput is the price of a prompt token read from the provider's
	// prompt cache. Absent: the input price.
	CachedInput string `json:"cached_input,omitempty" yaml:"cached_input"`
	// CacheWrite is the price of a prompt token written to the prompt
	// cache (Anthropic, Bedrock). Absent: the input price.
	CacheWrite string `json:"cache_write,omitempty" yaml:"cache_write"`
	// Request is a fee in US dollars per call, on top of the tokens.
	// Absent: 0.
	Request string `json:"request,omitempty" yaml:"request"`
	// LongContext, when set, replaces the token prices of calls whose
	// prompt exceeds its threshold.
	LongContext *LongContextSpec `json:"long_context,omitempty" yaml:"long_context"`
}

// LongContextSpec is the tier of a model priced higher above a prompt
// size: a call with more than AbovePromptTokens prompt tokens (cached and
// cache writes included) pays these prices for all its tokens.
type LongContextSpec struct {
	// AbovePromptTokens is the threshold (exclusive); it must be > 0.
	AbovePromptTokens int `json:"above_prompt_tokens" yaml:"above_prompt_tokens"`
	// Input and Output are required.
	Input  string `json:"input" yaml:"input"`
	Output string `json:"output" yaml:"output"`
	// CachedInput and CacheWrite default to the tier's Input.
	CachedInput string `json:"cached_input,omitempty" yaml:"cached_input"`
	CacheWrite  string `json:"cache_write,omitempty" yaml:"cache_write"`
}

// PriceError is a price that is missing, malformed or negative. It names
// where the price is (a provider kind and model, or a target) and the
// field.
type PriceError struct {
	// Provider and Model name a table entry; Target a target's price.
	Provider, Model, Target string
	// Field is the JSON name of the field ("input", "long_context.output").
	Field string
	// Value is the text given.
	Value string
	Err   error
}

// Error says which price is wrong and why.
func (e *PriceError) Error() string {
	where := fmt.Sprintf("%s model %q", e.Provider, e.Model)
	if e.Target != "" {
		where = fmt.Sprintf("target %q", e.Target)
	}
	return fmt.Sprintf("pricing: price of %s: %s %q: %v", where, e.Field, e.Value, e.Err)
}

// Unwrap returns the cause.
func (e *PriceError) Unwrap() error { return e.Err }

// Causes of a PriceError.
var (
	// ErrMissing: a required price is absent.
	ErrMissing = errors.New("required")
	// ErrNegative: a price is below zero.
	ErrNegative = errors.New("negative price")
	// ErrMalformed: a price is not a decimal number with at most 9
	// decimals within range.
	ErrMalformed = errors.New("not a decimal number of dollars with at most 9 decimals")
)

// rates are token prices in nano-USD per million tokens.
type rates struct {
	in, out, cached, write uint64
}

// price is a compiled PriceSpec.
type price struct {
	base, long rates
	// above is the long tier's threshold; hasLong says there is a tier.
	above   uint64
	hasLong bool
	// request is the fee per call in nano-USD.
	request uint64
}

// fieldError is a PriceError before it knows where the price is.
type fieldError struct {
	field, value string
	err          error
}

func (e *fieldError) Error() string { return fmt.Sprintf("%s %q: %v", e.field, e.value, e.err) }

// at places a compile error.
func at(err error, provider, model, target string) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		return &PriceError{Provider: provider, Model: model, Target: target, Field: fe.field, Value: fe.value, Err: fe.err}
	}
	return err
}

// parseAmount parses a non-negative decimal amount of dollars into
// nano-USD (per million tokens for token prices).
func parseAmount(field, s string) (uint64, error) {
	if strings.HasPrefix(s, "-") {
		return 0, &fieldError{field, s, ErrNegative}
	}
	n, err := gateway.ParseNanoUSD(s)
	if err != nil {
		return 0, &fieldError{field, s, ErrMalformed}
	}
	return uint64(n), nil
}

// parseOr parses s, or gives def when s is empty.
func parseOr(field, s string, def uint64) (uint64, error) {
	if s == "" {
		return def, nil
	}
	return parseAmount(field, s)
}

// compile parses s and returns its price and its canonical form: every
// token price explicit (defaults resolved) and each amount written in its
// shortest exact decimal, so two specs with equal prices are equal.
func (s *PriceSpec) compile() (price, PriceSpec, error) {
	var p price
	var err error
	if s.Input == "" {
		return p, PriceSpec{}, &fieldError{"input", "", ErrMissing}
	}
	if p.base.in, err = parseAmount("input", s.Input); err != nil {
		return p, PriceSpec{}, err
	}
	if p.base.out, err = parseOr("output", s.Output, 0); err != nil {
		return p, PriceSpec{}, err
	}
	if p.base.cached, err = parseOr("cached_input", s.CachedInput, p.base.in); err != nil {
		return p, PriceSpec{}, err
	}
	if p.base.write, err = parseOr("cache_write", s.CacheWrite, p.base.in); err != nil {
		return p, PriceSpec{}, err
	}
	if p.request, err = parseOr("request", s.Request, 0); err != nil {
		return p, PriceSpec{}, err
	}
	c := PriceSpec{Input: format(p.base.in), Output: format(p.base.out), CachedInput: format(p.base.cached), CacheWrite: format(p.base.write)}
	if p.request != 0 {
		c.Request = format(p.request)
	}
	if l := s.LongContext; l != nil {
		if l.AbovePromptTokens <= 0 {
			return p, PriceSpec{}, &fieldError{"long_context.above_prompt_tokens", strconv.Itoa(l.AbovePromptTokens), errors.New("must be > 0")}
		}
		p.hasLong, p.above = true, uint64(l.AbovePromptTokens)
		if l.Input == "" {
			return p, PriceSpec{}, &fieldError{"long_context.input", "", ErrMissing}
		}
		if p.long.in, err = parseAmount("long_context.input", l.Input); err != nil {
			return p, PriceSpec{}, err
		}
		if l.Output == "" {
			return p, PriceSpec{}, &fieldError{"long_context.output", "", ErrMissing}
		}
		if p.long.out, err = parseAmount("long_context.output", l.Output); err != nil {
			return p, PriceSpec{}, err
		}
		if p.long.cached, err = parseOr("long_context.cached_input", l.CachedInput, p.long.in); err != nil {
			return p, PriceSpec{}, err
		}
		if p.long.write, err = parseOr("long_context.cache_write", l.CacheWrite, p.long.in); err != nil {
			return p, PriceSpec{}, err
		}
		c.LongContext = &LongContextSpec{AbovePromptTokens: l.AbovePromptTokens,
			Input: format(p.long.in), Output: format(p.long.out), CachedInput: format(p.long.cached), CacheWrite: format(p.long.write)}
	}
	return p, c, nil
}

// format writes nano-USD as the shortest exact decimal of dollars: "2.5",
// "0.075", "10", "0".
func format(n uint64) string {
	s := gateway.NanoUSD(n).String() // n <= MaxInt64: it was parsed from a NanoUSD
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// maxCost is what a cost saturates at.
const maxCost = math.MaxInt64

// tokens converts a token count, a negative one counting as none.
func tokens(n int) uint64 {
	if n < 0 {
		return 0
	}
	return uint64(n)
}

// cost prices a call of prompt tokens (cached and written included),
// cached of them read from the cache, written of them written to it, and
// completion tokens: ceil(Σ tokens × rate / 1e6) nano-USD, plus the request
// fee. The sum is computed in 128 bits: it cannot overflow (each product
// is below 2^126 and there are four); a result beyond an int64 saturates
// at math.MaxInt64 nano-USD (about 9.2 billion dollars).
func (p *price) cost(prompt, cached, written, completion uint64) gateway.NanoUSD {
	r := &p.base
	if p.hasLong && prompt > p.above {
		r = &p.long
	}
	uncached := prompt
	cached = min(cached, uncached)
	uncached -= cached
	written = min(written, uncached)
	uncached -= written
	var hi, lo uint64
	hi, lo = mulAdd(hi, lo, uncached, r.in)
	hi, lo = mulAdd(hi, lo, cached, r.cached)
	hi, lo = mulAdd(hi, lo, written, r.write)
	hi, lo = mulAdd(hi, lo, completion, r.out)
	return p.finish(hi, lo)
}

// estimate is an upper bound of the cost of a call of prompt and output
// tokens, whatever part of the prompt is read from or written to a cache:
// every prompt token at the dearest of the input, cached input and cache
// write prices.
func (p *price) estimate(prompt, output uint64) gateway.NanoUSD {
	r := &p.base
	if p.hasLong && prompt > p.above {
		r = &p.long
	}
	var hi, lo uint64
	hi, lo = mulAdd(hi, lo, prompt, max(r.in, r.cached, r.write))
	hi, lo = mulAdd(hi, lo, output, r.out)
	return p.finish(hi, lo)
}

// finish divides a 128-bit sum of nano-USD per million by a million,
// rounding up, and adds the request fee, saturating at maxCost.
func (p *price) finish(hi, lo uint64) gateway.NanoUSD {
	const million = 1_000_000
	if hi >= million { // the quotient would not fit 64 bits
		return maxCost
	}
	var q, rem uint64
	if hi == 0 { // any cost below 18 million dollars: a division by a constant
		q, rem = lo/million, lo%million
	} else {
		q, rem = bits.Div64(hi, lo, million)
	}
	if q > maxCost {
		return maxCost
	}
	if rem != 0 {
		q++
	}
	q, carry := bits.Add64(q, p.request, 0)
	if carry != 0 || q > maxCost {
		return maxCost
	}
	return gateway.NanoUSD(q)
}

// mulAdd returns (hi, lo) + a×b in 128 bits. Callers keep the sum below
// 2^128 (at most four products of numbers below 2^63).
func mulAdd(hi, lo, a, b uint64) (uint64, uint64) {
	ph, pl := bits.Mul64(a, b)
	lo, c := bits.Add64(lo, pl, 0)
	hi, _ = bits.Add64(hi, ph, c)
	return hi, lo
}
