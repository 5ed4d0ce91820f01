package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var (
	chatBody   = []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}]}`)
	streamBody = []byte(`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello."}]}`)
)

// startFake serves a FakeUpstream for the test's lifetime.
func startFake(t testing.TB, cfg FakeConfig) *Server {
	t.Helper()
	s, err := Start(NewFakeUpstream(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// checkSums checks the invariants every Result keeps.
func checkSums(t *testing.T, res Result) {
	t.Helper()
	if res.Requests != res.OK+res.Errors+res.Broken {
		t.Errorf("requests %d != ok %d + errors %d + broken %d", res.Requests, res.OK, res.Errors, res.Broken)
	}
	if res.Latency.N != res.OK || res.TTFB.N != res.OK {
		t.Errorf("latency samples %d, ttfb samples %d, want ok = %d", res.Latency.N, res.TTFB.N, res.OK)
	}
	var failures int
	for _, n := range res.Failures {
		failures += n
	}
	if failures != res.Errors+res.Broken {
		t.Errorf("failures %v add up to %d, want errors+broken = %d", res.Failures, failures, res.Errors+res.Broken)
	}
	if res.OK > 0 && !(res.TTFB.P50 <= res.Latency.P50 && res.Latency.P50 <= res.Latency.P99 && res.Latency.P99 <= res.Latency.Max) {
		t.Errorf("percentiles out of order: ttfb p50 %v, latency %+v", res.TTFB.P50, res.Latency)
	}
}

func TestRunFixedRate(t *testing.T) {
	t.Parallel()
	fake := startFake(t, FakeConfig{})
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			body := chatBody
			if stream {
				body = streamBody
			}
			res, err := Run(t.Context(), Config{
				URL: fake.URL + "/v1/chat/completions", Body: body, Stream: stream,
				Rate: 200, Connections: 4, Warmup: 100 * time.Millisecond, Duration: 500 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkSums(t, res)
			// Requests due in [100ms, 600ms) at 200/s: exactly 100.
			if res.Requests != 100 || res.OK != 100 {
				t.Errorf("requests %d, ok %d; want 100 (failures %v)", res.Requests, res.OK, res.Failures)
			}
			if res.StatusCounts[200] != 100 || len(res.StatusCounts) != 1 {
				t.Errorf("status counts %v, want 100 × 200", res.StatusCounts)
			}
			if res.Dials != 4 {
				t.Errorf("dials %d, want one per connection (4)", res.Dials)
			}
			if res.PeakInFlight < 1 || res.PeakInFlight > 4 {
				t.Errorf("peak in flight %d, want 1..4", res.PeakInFlight)
			}
			if res.Bytes == 0 || res.Duration != 500*time.Millisecond {
				t.Errorf("bytes %d, duration %v", res.Bytes, res.Duration)
			}
		})
	}
}

func TestRunOpenThrottle(t *testing.T) {
	t.Parallel()
	fake := startFake(t, FakeConfig{})
	res, err := Run(t.Context(), Config{
		URL: fake.URL + "/v1/chat/completions", Body: chatBody, Connections: 3, Duration: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkSums(t, res)
	if res.OK == 0 || res.Errors != 0 || res.Broken != 0 {
		t.Errorf("ok %d, errors %d, broken %d (%v); want only OK", res.OK, res.Errors, res.Broken, res.Failures)
	}
	if res.PeakInFlight != 3 || res.Dials != 3 {
		t.Errorf("peak in flight %d, dials %d; want 3 and 3", res.PeakInFlight, res.Dials)
	}
	if res.Achieved <= 0 {
		t.Errorf("achieved %v", res.Achieved)
	}
}

// TestRunCountsQueueing checks that latency runs from the due time: one
// connection to a target that takes 20 ms per request, offered 200/s, falls
// further behind with every request, and the wait must show.
func TestRunCountsQueueing(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(20 * time.Millisecond)
	}))
	t.Cleanup(srv.Close)
	res, err := Run(t.Context(), Config{URL: srv.URL, Body: chatBody, Rate: 200, Connections: 1, Duration: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	checkSums(t, res)
	if res.Requests != 50 || res.OK != 50 {
		t.Fatalf("requests %d, ok %d; want 50 (%v)", res.Requests, res.OK, res.Failures)
	}
	// The 50th request is due at 245 ms and served after the 49 before it,
	// at ≥ 1 s: a generator that waits for a free connection before
	// starting the clock would report about 20 ms.
	if res.Latency.Max < 500*time.Millisecond {
		t.Errorf("max latency %v: the wait for a connection is not counted", res.Latency.Max)
	}
}

func TestRunQueuedPastTimeout(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(50 * time.Millisecond)
	}))
	t.Cleanup(srv.Close)
	// One connection serves 20/s of the 200/s offered: the queue outgrows
	// the timeout after about ten requests.
	res, err := Run(t.Context(), Config{URL: srv.URL, Body: chatBody, Rate: 200, Connections: 1, Duration: 300 * time.Millisecond, Timeout: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	checkSums(t, res)
	if res.Requests != 60 || res.Failures["queued past timeout"] == 0 || res.OK == 0 {
		t.Errorf("requests %d, ok %d, failures %v; want 60 with some queued past timeout", res.Requests, res.OK, res.Failures)
	}
}

// TestRunVerdicts checks how Run classifies responses, from servers that
// answer every request the same way.
func TestRunVerdicts(t *testing.T) {
	t.Parallel()
	sse := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, body)
		}
	}
	// raw answers with bytes written straight to the connection, then
	// closes it.
	raw := func(resp string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			c, bw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			defer c.Close()
			bw.WriteString(resp)
			bw.Flush()
		}
	}
	long := strings.Repeat("x", 10<<10)
	tests := []struct {
		name    string
		stream  bool
		handler http.HandlerFunc
		want    string // "ok", "ok+stall", "ok+redial", or "error"/"broken" with a failure reason
		reason  string
	}{
		{"json", false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"ok":true}`) }, "ok", ""},
		{"status 503", false, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusServiceUnavailable)
		}, "error", "status 503"},
		{"body cut", false, raw("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"id\":"), "broken", "body cut: connection closed"},
		{"connection close", false, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, `{}`)
		}, "ok+redial", ""},
		{"idle connection closed silently", false, raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"), "ok+redial", ""},
		{"stream", true, sse("data: {\"x\":1}\n\ndata: [DONE]\n\n"), "ok", ""},
		{"stream crlf and comments", true, sse(": keep-alive\r\n\r\ndata: {}\r\n\r\ndata:[DONE]\r\n\r\n"), "ok", ""},
		{"stream long lines", true, sse("data: {\"c\":\"" + long + "\"}\n\n: " + long + "\n\ndata: [DONE]\n\n"), "ok", ""},
		{"stream without done", true, sse("data: {\"x\":1}\n\n"), "broken", "no [DONE]"},
		{"stream done not dispatched", true, sse("data: {\"x\":1}\n\ndata: [DONE]\n"), "broken", "no [DONE]"},
		{"stream done in a multi-line event", true, sse("data: [DONE]\ndata: more\n\n"), "broken", "no [DONE]"},
		{"stream error data", true, sse("data: {\"x\":1}\n\ndata: { \"error\": {\"message\":\"boom\"}}\n\ndata: [DONE]\n\n"), "broken", "error event"},
		{"stream long error data", true, sse("data: {\"error\":\"" + long + "\"}\n\ndata: [DONE]\n\n"), "broken", "error event"},
		{"stream error event", true, sse("event: error\ndata: {\"type\":\"overloaded_error\"}\n\ndata: [DONE]\n\n"), "broken", "error event"},
		{"stream cut", true, raw("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"a\r\ndata: {}\n\n\r\n"), "broken", "stream cut: connection closed"},
		{"stream json", true, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"ok":true}`) }, "broken", "stream cut: ended mid-line"},
		{"stream status 429", true, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":{"message":"slow down"}}`, http.StatusTooManyRequests)
		}, "error", "status 429"},
		{"stream stall", true, func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {}\n\n")
			http.NewResponseController(w).Flush()
			time.Sleep(80 * time.Millisecond)
			io.WriteString(w, "data: [DONE]\n\n")
		}, "ok+stall", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			stall := 10 * time.Second // no stall from a busy test machine
			if tt.want == "ok+stall" {
				stall = 40 * time.Millisecond // the handler pauses 80 ms
			}
			res, err := Run(t.Context(), Config{
				URL: srv.URL + "/v1/chat/completions", Body: chatBody, Stream: tt.stream,
				Connections: 2, Duration: 200 * time.Millisecond, StallThreshold: stall,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkSums(t, res)
			if res.Requests == 0 {
				t.Fatal("no requests")
			}
			var got int
			switch tt.want {
			case "ok", "ok+stall", "ok+redial":
				got = res.OK
			case "error":
				got = res.Errors
			case "broken":
				got = res.Broken
			}
			if got != res.Requests {
				t.Errorf("%d of %d requests %s; ok %d, errors %d, broken %d, failures %v",
					got, res.Requests, tt.want, res.OK, res.Errors, res.Broken, res.Failures)
			}
			if tt.reason != "" && res.Failures[tt.reason] != res.Requests {
				t.Errorf("failures %v, want %d × %q", res.Failures, res.Requests, tt.reason)
			}
			if stalls := res.Stalls; (tt.want == "ok+stall") != (stalls > 0) {
				t.Errorf("stalls %d (max gap %v)", stalls, res.MaxGap)
			}
			if tt.want == "ok+stall" && res.Stalls != res.Requests {
				t.Errorf("stalls %d, want %d", res.Stalls, res.Requests)
			}
			if redial := res.Dials > 2; redial != (tt.want == "ok+redial") && tt.want != "broken" && tt.want != "error" {
				t.Errorf("dials %d for %d requests", res.Dials, res.Requests)
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unreachable", Config{URL: closed, Duration: time.Second}, "connection refused"},
		{"no url", Config{}, "scheme must be http or https"},
		{"ftp", Config{URL: "ftp://127.0.0.1/"}, "scheme must be http or https"},
		{"no host", Config{URL: "http:///v1"}, "no host"},
		{"negative rate", Config{URL: closed, Rate: -1}, "negative"},
		{"negative duration", Config{URL: closed, Duration: -time.Second}, "negative"},
		{"bad header name", Config{URL: closed, Header: http.Header{"X Y": {"1"}}}, "invalid header name"},
		{"header injection", Config{URL: closed, Header: http.Header{"X-Y": {"1\r\nEvil: 1"}}}, "control character"},
		{"header owned by the generator", Config{URL: closed, Header: http.Header{"Content-Length": {"1"}}}, "set by the generator"},
		{"bad method", Config{URL: closed, Method: "GE T"}, "invalid method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(t.Context(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestRunCanceled(t *testing.T) {
	t.Parallel()
	fake := startFake(t, FakeConfig{ChunkDelay: time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, Config{URL: fake.URL + "/v1/chat/completions", Body: streamBody, Stream: true, Connections: 4, Duration: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v after the context ended", d)
	}
	if res.Errors != 0 || res.Broken != 0 {
		t.Errorf("aborted requests counted as failures: %v", res.Failures)
	}
}

func TestBuildRequest(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"post", Config{URL: "http://127.0.0.1:8080/v1/chat/completions?x=1", Body: []byte(`{}`),
			Header: http.Header{"Authorization": {"Bearer k"}, "X-B": {"1", "2"}}},
			"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: aigw-loadgen\r\n" +
				"Content-Length: 2\r\nContent-Type: application/json\r\nAuthorization: Bearer k\r\nX-B: 1\r\nX-B: 2\r\n\r\n{}"},
		{"get", Config{URL: "http://example.com", Header: http.Header{"Host": {"gw.local"}, "User-Agent": {"ua"}}},
			"GET / HTTP/1.1\r\nHost: gw.local\r\nUser-Agent: ua\r\n\r\n"},
		{"content type given", Config{URL: "http://h/e", Body: []byte("x"), Method: "PUT", Header: http.Header{"Content-Type": {"text/plain"}}},
			"PUT /e HTTP/1.1\r\nHost: h\r\nUser-Agent: aigw-loadgen\r\nContent-Length: 1\r\nContent-Type: text/plain\r\n\r\nx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			r, err := newRunner(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if string(r.req) != tt.want {
				t.Errorf("request\n%q\nwant\n%q", r.req, tt.want)
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1, unsorted
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Percentiles
	}{
		{"empty", nil, Percentiles{}},
		{"one", ms(7), Percentiles{N: 1, Min: 7e6, Mean: 7e6, P50: 7e6, P90: 7e6, P99: 7e6, P999: 7e6, Max: 7e6}},
		{"two", ms(2, 1), Percentiles{N: 2, Min: 1e6, Mean: 1.5e6, P50: 1e6, P90: 2e6, P99: 2e6, P999: 2e6, Max: 2e6}},
		{"hundred", ms(hundred...), Percentiles{N: 100, Min: 1e6, Mean: 50.5e6, P50: 50e6, P90: 90e6, P99: 99e6, P999: 100e6, Max: 100e6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentiles(tt.in); got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
