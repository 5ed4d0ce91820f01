package loadgen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"
)

// DefaultRounds is the number of rounds of a [Compare] when none is given.
const DefaultRounds = 5

// Target is one way to the upstream, named in reports.
type Target struct {
	Name string // such as "straight", "proxy" or "aigw"
	URL  string // base URL, such as "http://127.0.0.1:8080"
	// CPU, when set, returns the cumulative CPU time of the target's own
	// server (Config.ServerCPU): the comparison reports its CPU per
	// request.
	CPU func() time.Duration `json:"-"`
}

// Comparison is the outcome of one [Compare]: the same load against
// several targets.
type Comparison struct {
	// Label names the load in reports: "500/s", "max" (open throttle),
	// "stream 200/s" or "1000 streams".
	Label string
	// Config is the load as run (its URL is the first target's).
	Config Config
	// Rounds is the number of rounds each target ran.
	Rounds int
	// Targets holds the results in the order the targets were given;
	// the first is the baseline of the added latencies.
	Targets []TargetResult
}

// TargetResult is one target's results over the rounds of a [Compare].
type TargetResult struct {
	Target
	// Rounds holds each round's result.
	Rounds []Result
	// Latency, TTFB and Achieved are the medians over rounds of each
	// round's figure (Latency.N and TTFB.N are totals).
	Latency, TTFB Percentiles
	Achieved      float64
	// Requests, OK, Errors, Broken, Stalls and Failures are totals over
	// rounds; MaxGap is the longest over rounds.
	Requests, OK, Errors, Broken, Stalls int
	Failures                             map[string]int
	MaxGap                               time.Duration
	// AddedP50 and AddedP99 are this target's p50 and p99 latency minus
	// the baseline's in the same round, over rounds; zero for the
	// baseline itself.
	AddedP50, AddedP99 Spread
	// CPUPerRequest is the target's server CPU time in a round's window
	// per request completed in it, over rounds (zero without Target.CPU):
	// unlike latency it hardly depends on what else the machine runs.
	CPUPerRequest Spread
}

// Spread is a figure's median, minimum and maximum over rounds.
type Spread struct {
	Median, Min, Max time.Duration
}

// Compare runs cfg against every target in interleaved rounds: each round
// runs cfg once against each target, starting with a different target
// each round, so that machine noise hits every target alike. cfg.URL's
// path and query are appended to each target's base URL; cfg.Duration and
// cfg.Warmup are per run, so keep them short. rounds 0 means
// DefaultRounds. On error, Compare returns what it measured so far.
func Compare(ctx context.Context, cfg Config, targets []Target, rounds int) (Comparison, error) {
	if len(targets) == 0 {
		return Comparison{}, errors.New("loadgen: compare: no targets")
	}
	if rounds <= 0 {
		rounds = DefaultRounds
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return Comparison{}, fmt.Errorf("loadgen: compare: url: %w", err)
	}
	pathQuery := u.EscapedPath()
	if u.RawQuery != "" {
		pathQuery += "?" + u.RawQuery
	}
	cfgs := make([]Config, len(targets))
	for i, t := range targets {
		cfgs[i] = cfg
		cfgs[i].URL = strings.TrimSuffix(t.URL, "/") + pathQuery
		cfgs[i].ServerCPU = t.CPU
		if err := cfgs[i].Validate(); err != nil {
			return Comparison{}, fmt.Errorf("loadgen: compare: target %s: %w", t.Name, err)
		}
	}
	c := Comparison{Label: Label(cfgs[0]), Config: cfgs[0], Rounds: rounds, Targets: make([]TargetResult, len(targets))}
	for i, t := range targets {
		c.Targets[i].Target = t
	}
	defer c.summarize()
	for round := range rounds {
		for k := range targets {
			i := (round + k) % len(targets)
			res, err := Run(ctx, cfgs[i])
			if err != nil {
				return c, fmt.Errorf("loadgen: compare: round %d, %s: %w", round+1, targets[i].Name, err)
			}
			c.Targets[i].Rounds = append(c.Targets[i].Rounds, res)
		}
	}
	return c, nil
}

// Label names a load as reports do: "500/s", "max" (open throttle),
// "stream 200/s" or "1000 streams" (open throttle, streaming).
func Label(cfg Config) string {
	switch {
	case cfg.Rate > 0 && cfg.Stream:
		return fmt.Sprintf("stream %g/s", cfg.Rate)
	case cfg.Rate > 0:
		return fmt.Sprintf("%g/s", cfg.Rate)
	case cfg.Stream:
		return fmt.Sprintf("%d streams", cmp.Or(cfg.Connections, DefaultConnections))
	}
	return "max"
}

// summarize fills in the per-target medians, totals and added latencies
// from the rounds run so far.
func (c *Comparison) summarize() {
	for i := range c.Targets {
		t := &c.Targets[i]
		t.Failures = map[string]int{}
		t.Requests, t.OK, t.Errors, t.Broken, t.Stalls, t.MaxGap = 0, 0, 0, 0, 0, 0
		for _, r := range t.Rounds {
			t.Requests += r.Requests
			t.OK += r.OK
			t.Errors += r.Errors
			t.Broken += r.Broken
			t.Stalls += r.Stalls
			t.MaxGap = max(t.MaxGap, r.MaxGap)
			for k, v := range r.Failures {
				t.Failures[k] += v
			}
		}
		t.Latency = medianPercentiles(t.Rounds, func(r Result) Percentiles { return r.Latency })
		t.TTFB = medianPercentiles(t.Rounds, func(r Result) Percentiles { return r.TTFB })
		t.Achieved = median(t.Rounds, func(r Result) float64 { return r.Achieved })
		t.CPUPerRequest = cpuPerRequest(t.Rounds)
		if i > 0 {
			base := c.Targets[0].Rounds
			t.AddedP50 = added(t.Rounds, base, func(p Percentiles) time.Duration { return p.P50 })
			t.AddedP99 = added(t.Rounds, base, func(p Percentiles) time.Duration { return p.P99 })
		}
	}
}

func median[T number](rs []Result, f func(Result) T) T {
	v := make([]T, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return medianOf(v)
}

// number is what medians are taken of.
type number interface{ ~int | ~int64 | ~float64 }

// medianOf sorts v in place and returns its median (zero when empty).
func medianOf[T number](v []T) T {
	var zero T
	if len(v) == 0 {
		return zero
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func medianPercentiles(rs []Result, f func(Result) Percentiles) Percentiles {
	var p Percentiles
	for _, r := range rs {
		p.N += f(r).N
	}
	// Rounds without a successful request have no latency to offer.
	rs = slices.DeleteFunc(slices.Clone(rs), func(r Result) bool { return f(r).N == 0 })
	d := func(g func(Percentiles) time.Duration) time.Duration {
		return median(rs, func(r Result) time.Duration { return g(f(r)) })
	}
	p.Min = d(func(p Percentiles) time.Duration { return p.Min })
	p.Mean = d(func(p Percentiles) time.Duration { return p.Mean })
	p.P50 = d(func(p Percentiles) time.Duration { return p.P50 })
	p.P90 = d(func(p Percentiles) time.Duration { return p.P90 })
	p.P99 = d(func(p Percentiles) time.Duration { return p.P99 })
	p.P999 = d(func(p Percentiles) time.Duration { return p.P999 })
	p.Max = d(func(p Percentiles) time.Duration { return p.Max })
	return p
}

// added is the spread over rounds of f(rs[i].Latency) - f(base[i].Latency).
func added(rs, base []Result, f func(Percentiles) time.Duration) Spread {
	var diffs []time.Duration
	for i := range min(len(rs), len(base)) {
		if rs[i].Latency.N > 0 && base[i].Latency.N > 0 {
			diffs = append(diffs, f(rs[i].Latency)-f(base[i].Latency))
		}
	}
	return spreadOf(diffs)
}

// spreadOf is the median, minimum and maximum of v (zero when empty); it
// sorts v.
func spreadOf(v []time.Duration) Spread {
	if len(v) == 0 {
		return Spread{}
	}
	s := Spread{Min: slices.Min(v), Max: slices.Max(v)}
	s.Median = medianOf(v)
	return s
}

// cpuPerRequest is the spread over rounds of the server's CPU time per
// request completed in the window.
func cpuPerRequest(rs []Result) Spread {
	var v []time.Duration
	for _, r := range rs {
		if n := r.Achieved * r.Duration.Seconds(); r.ServerCPU > 0 && n >= 1 {
			v = append(v, time.Duration(float64(r.ServerCPU)/n))
		}
	}
	return spreadOf(v)
}

// Report writes comparisons as one Markdown table: per load and target,
// the median over rounds of p50, p99 and p99.9 latency and of the achieved
// requests/s (the maximum, for an open-throttle load), the latency added
// over the first target at p50 and p99 (median, and min…max over rounds),
// and the total errors and broken responses (and stalls, when a load
// streams).
func Report(w io.Writer, cs ...Comparison) error {
	streams := slices.ContainsFunc(cs, func(c Comparison) bool { return c.Config.Stream })
	var b strings.Builder
	b.WriteString("| load | way | p50 | p99 | p99.9 | added p50 | added p99 | req/s | errors | broken |")
	sep := "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"
	if streams {
		b.WriteString(" stalls |")
		sep += "--:|"
	}
	b.WriteString("\n" + sep + "\n")
	for _, c := range cs {
		for i, t := range c.Targets {
			addP50, addP99 := "—", "—"
			if i > 0 {
				addP50, addP99 = fmtSpread(t.AddedP50), fmtSpread(t.AddedP99)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %.0f | %d | %d |",
				c.Label, t.Name, fmtDur(t.Latency.P50), fmtDur(t.Latency.P99), fmtDur(t.Latency.P999),
				addP50, addP99, t.Achieved, t.Errors, t.Broken)
			if streams {
				if c.Config.Stream {
					fmt.Fprintf(&b, " %d |", t.Stalls)
				} else {
					b.WriteString(" — |")
				}
			}
			b.WriteString("\n")
		}
	}
	if len(cs) > 0 && len(cs[0].Targets) > 0 {
		c := cs[0].Config
		conns := ""
		if !slices.ContainsFunc(cs, func(o Comparison) bool { return o.Config.Connections != c.Connections }) {
			conns = fmt.Sprintf(" on %d keep-alive connections", c.Connections)
		}
		fmt.Fprintf(&b, "\nMedians over %d interleaved rounds of %s (after %s warm-up)%s; "+
			"added = way − %s in the same round, median (min…max over rounds).\n",
			cs[0].Rounds, c.Duration, c.Warmup, conns, cs[0].Targets[0].Name)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// FormatSpread formats a spread of added latencies as Report does:
// "+median (+min…+max)".
func FormatSpread(s Spread) string { return fmtSpread(s) }

// FormatDuration formats a latency with three significant figures, as
// Report does.
func FormatDuration(d time.Duration) string { return fmtDur(d) }

// FormatSigned formats a latency difference with its sign, as Report does.
func FormatSigned(d time.Duration) string { return fmtSigned(d) }

func fmtSpread(s Spread) string {
	return fmt.Sprintf("%s (%s…%s)", fmtSigned(s.Median), fmtSigned(s.Min), fmtSigned(s.Max))
}

func fmtSigned(d time.Duration) string {
	if d < 0 {
		return "−" + fmtDur(-d)
	}
	return "+" + fmtDur(d)
}

// fmtDur formats a latency with three significant figures.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Round(time.Microsecond)/time.Microsecond)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", ms)
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", ms)
	case d < time.Second:
		return fmt.Sprintf("%.0fms", ms)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
