package loadgen

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCompare(t *testing.T) {
	t.Parallel()
	fake := startFake(t, FakeConfig{})
	target, _ := url.Parse(fake.URL)
	proxy, err := Start(BareProxy(target))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })

	cfg := Config{URL: "/v1/chat/completions", Body: chatBody, Rate: 200, Connections: 4, Duration: 200 * time.Millisecond}
	// The proxy's "server CPU" advances 10 ms per reading: 10 ms per
	// window of 40 requests.
	var reads int
	cpu := func() time.Duration { reads++; return time.Duration(reads) * 10 * time.Millisecond }
	c, err := Compare(t.Context(), cfg, []Target{{Name: "straight", URL: fake.URL}, {Name: "proxy", URL: proxy.URL + "/", CPU: cpu}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if c.Label != "200/s" || c.Rounds != 3 || c.Config.URL != fake.URL+"/v1/chat/completions" || len(c.Targets) != 2 {
		t.Fatalf("comparison %q, %d rounds, url %q, %d targets", c.Label, c.Rounds, c.Config.URL, len(c.Targets))
	}
	for _, tr := range c.Targets {
		if len(tr.Rounds) != 3 || tr.Requests != 120 || tr.OK != 120 || tr.Errors != 0 || tr.Broken != 0 {
			t.Errorf("%s: %d rounds, %d requests, ok %d, errors %d, broken %d", tr.Name, len(tr.Rounds), tr.Requests, tr.OK, tr.Errors, tr.Broken)
		}
		if tr.Latency.N != 120 || tr.Latency.P50 <= 0 || tr.Achieved <= 0 {
			t.Errorf("%s: latency %+v, achieved %v", tr.Name, tr.Latency, tr.Achieved)
		}
	}
	if c.Targets[0].AddedP50 != (Spread{}) || c.Targets[0].AddedP99 != (Spread{}) {
		t.Errorf("baseline has added latency %+v %+v", c.Targets[0].AddedP50, c.Targets[0].AddedP99)
	}
	for _, s := range []Spread{c.Targets[1].AddedP50, c.Targets[1].AddedP99} {
		if s.Min > s.Median || s.Median > s.Max || s == (Spread{}) {
			t.Errorf("proxy added latency %+v", s)
		}
	}
	if c.Targets[0].CPUPerRequest != (Spread{}) {
		t.Errorf("straight has no CPU reader, yet CPU per request %+v", c.Targets[0].CPUPerRequest)
	}
	// 10 ms over the requests each round completed in its window (40 at
	// 200/s over 200 ms, fewer on a loaded machine; a round that completed
	// none in it, as one did under -race in CI, has no CPU per request).
	var want []time.Duration
	for _, r := range c.Targets[1].Rounds {
		if n := r.Achieved * r.Duration.Seconds(); n >= 1 {
			want = append(want, time.Duration(float64(10*time.Millisecond)/n))
		}
	}
	slices.Sort(want)
	var wantSpread Spread
	if len(want) > 0 {
		wantSpread = Spread{Median: medianOf(want), Min: want[0], Max: want[len(want)-1]}
	}
	if got := c.Targets[1].CPUPerRequest; got != wantSpread || reads != 6 {
		t.Errorf("proxy CPU per request %+v after %d readings; want %v (min … max) after 6", got, reads, want)
	}
	var b strings.Builder
	if err := Report(&b, c); err != nil {
		t.Fatal(err)
	}
	if rows := strings.Count(b.String(), "| 200/s |"); rows != 2 {
		t.Errorf("report has %d rows, want 2:\n%s", rows, b.String())
	}
}

// TestCompareInterleaves checks the order of the runs: each round starts
// with the next target.
func TestCompareInterleaves(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		order []string
	)
	targets := make([]Target, 3)
	for i, name := range []string{"a", "b", "c"} {
		srv := &http.Server{
			Handler: NewFakeUpstream(FakeConfig{}),
			ConnState: func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew { // one connection per run
					mu.Lock()
					order = append(order, name)
					mu.Unlock()
				}
			},
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		targets[i] = Target{Name: name, URL: "http://" + ln.Addr().String()}
	}
	cfg := Config{URL: "http://ignored/v1/models", Connections: 1, Rate: 100, Duration: 30 * time.Millisecond}
	if _, err := Compare(t.Context(), cfg, targets, 3); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got, want := strings.Join(order, ""), "abcbcacab"; got != want {
		t.Errorf("runs in order %q, want %q", got, want)
	}
}

func TestCompareErrors(t *testing.T) {
	t.Parallel()
	fake := startFake(t, FakeConfig{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	if _, err := Compare(t.Context(), Config{URL: "/"}, nil, 1); err == nil {
		t.Error("no targets: no error")
	}
	if _, err := Compare(t.Context(), Config{URL: "/", Rate: -1}, []Target{{Name: "a", URL: fake.URL}}, 1); err == nil {
		t.Error("invalid config: no error")
	}
	cfg := Config{URL: "/v1/models", Rate: 100, Connections: 1, Duration: 30 * time.Millisecond}
	c, err := Compare(t.Context(), cfg, []Target{{Name: "straight", URL: fake.URL}, {Name: "down", URL: closed}}, 2)
	if err == nil || !strings.Contains(err.Error(), "round 1, down") {
		t.Errorf("err = %v, want one naming round 1 and target down", err)
	}
	if len(c.Targets) != 2 || len(c.Targets[0].Rounds) != 1 || c.Targets[0].OK != 3 {
		t.Errorf("partial comparison %+v", c.Targets)
	}
}

func TestReport(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	cfg := Config{Rate: 500, Connections: 64, Duration: 3 * time.Second, Warmup: time.Second}
	streamCfg := Config{Stream: true, Connections: 1000, Duration: 3 * time.Second, Warmup: time.Second}
	cs := []Comparison{
		{Label: Label(cfg), Config: cfg, Rounds: 5, Targets: []TargetResult{
			{Target: Target{Name: "straight"}, Latency: Percentiles{P50: ms(0.1554), P99: ms(0.79), P999: ms(4.2856)}, Achieved: 500},
			{Target: Target{Name: "proxy"}, Latency: Percentiles{P50: ms(0.3559), P99: ms(2.4246), P999: ms(5.6516)}, Achieved: 499.6,
				AddedP50: Spread{ms(0.2), ms(0.15), ms(0.31)}, AddedP99: Spread{ms(1.63), ms(-0.2), ms(2)}, Errors: 1, Broken: 2},
		}},
		{Label: Label(streamCfg), Config: streamCfg, Rounds: 5, Targets: []TargetResult{
			{Target: Target{Name: "straight"}, Latency: Percentiles{P50: ms(160), P99: ms(1200), P999: ms(1500)}, Achieved: 6000, Stalls: 3},
		}},
	}
	var b strings.Builder
	if err := Report(&b, cs...); err != nil {
		t.Fatal(err)
	}
	want := `| load | way | p50 | p99 | p99.9 | added p50 | added p99 | req/s | errors | broken | stalls |
|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|
| 500/s | straight | 155µs | 790µs | 4.29ms | — | — | 500 | 0 | 0 | — |
| 500/s | proxy | 356µs | 2.42ms | 5.65ms | +200µs (+150µs…+310µs) | +1.63ms (−200µs…+2.00ms) | 500 | 1 | 2 | — |
| 1000 streams | straight | 160ms | 1.20s | 1.50s | — | — | 6000 | 0 | 0 | 3 |

Medians over 5 interleaved rounds of 3s (after 1s warm-up); added = way − straight in the same round, median (min…max over rounds).
`
	if b.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestLabel(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Rate: 500}, "500/s"},
		{Config{Rate: 2000}, "2000/s"},
		{Config{Rate: 0.5}, "0.5/s"},
		{Config{}, "max"},
		{Config{Rate: 200, Stream: true}, "stream 200/s"},
		{Config{Stream: true}, "64 streams"},
		{Config{Stream: true, Connections: 1000}, "1000 streams"},
	}
	for _, tt := range tests {
		if got := Label(tt.cfg); got != tt.want {
			t.Errorf("Label(%+v) = %q, want %q", tt.cfg, got, tt.want)
		}
	}
}
