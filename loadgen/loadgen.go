// Package loadgen is the load generator that aigw's gateway performance
// targets are measured with: an open-loop HTTP/1.1 generator ([Run]) that
// measures latency from each request's intended send time (no coordinated
// omission) and checks that every server-sent-event stream ends with
// "data: [DONE]"; a fake OpenAI-compatible upstream that answers at once
// ([FakeUpstream]); a bare [httputil.ReverseProxy] ([BareProxy]) as the
// baseline any proxy pays; [Compare], which runs the same load against
// several targets in interleaved rounds so that machine noise hits them
// equally, and [Report], its Markdown table; and resident-memory sampling
// ([RSS], [Sampler]) for soaks.
//
// The generator speaks HTTP/1.1 on raw keep-alive connections (one per
// worker, exactly [Config.Connections] of them) instead of going through
// net/http's client: it writes one precomputed request per call and parses
// the response with [http.ReadResponse]. That costs less than half the CPU
// of a net/http client round trip (24 µs against 51 µs per request, kernel
// time included, measured against a fake upstream in another process), and
// so leaves more of a shared machine to the system under test. Workers
// claim due times from one atomic counter; nothing is spawned per request.
package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults for the zero values of [Config].
const (
	DefaultConnections    = 64
	DefaultDuration       = 10 * time.Second
	DefaultTimeout        = 30 * time.Second
	DefaultStallThreshold = time.Second
)

// Config is one load: what to send, how fast, and for how long.
type Config struct {
	// URL is the request URL, http or https.
	URL string
	// Method is the request method; "" means POST when Body is set and
	// GET otherwise.
	Method string
	// Header holds extra request headers, such as Authorization. A Host
	// header replaces the URL's host. Content-Type defaults to
	// application/json when Body is set.
	Header http.Header
	// Body is sent with every request.
	Body []byte
	// Rate is the offered load in requests/s; request i is due at
	// start + i/Rate whether or not earlier ones have completed. 0 means
	// open throttle: every connection sends its next request as soon as
	// its previous one completes, so the achieved rate is the maximum.
	Rate float64
	// Connections is the number of keep-alive connections, each driven by
	// one worker, and so the most requests (or streams) in flight. At a
	// fixed rate, a request due while every connection is busy waits, and
	// the wait counts in its latency. To hold N concurrent streams, use
	// Rate 0 and Connections N. 0 means DefaultConnections.
	Connections int
	// Duration is the measured window; 0 means DefaultDuration.
	Duration time.Duration
	// Warmup precedes the window; requests due (or, at open throttle,
	// sent) during it are made but not counted.
	Warmup time.Duration
	// Timeout bounds one request from the time it is sent until its
	// response (the whole stream, for streams) has been read; at a fixed
	// rate, a request that waited longer than Timeout for a connection is
	// not sent and counts as an error. 0 means DefaultTimeout.
	Timeout time.Duration
	// Stream makes every response an SSE stream to read to its end. A
	// stream is OK only if it ends cleanly after a "data: [DONE]" event
	// and carries no error event; any other 2xx stream is Broken.
	Stream bool
	// StallThreshold is the longest gap between the response header and
	// the first event, or between two events, of a stream that is not a
	// stall. 0 means DefaultStallThreshold.
	StallThreshold time.Duration
	// TLS configures https connections; nil means the default
	// configuration with the URL's host as server name.
	TLS *tls.Config
	// ServerCPU, when set, returns the server's cumulative CPU time (see
	// [ProcessTreeCPU]): Run reads it when the window opens and closes,
	// into Result.ServerCPU.
	ServerCPU func() time.Duration `json:"-"`
}

// Validate checks the configuration and fills in the defaults.
func (c *Config) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("loadgen: url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("loadgen: url %q: scheme must be http or https", c.URL)
	}
	if u.Host == "" {
		return fmt.Errorf("loadgen: url %q: no host", c.URL)
	}
	if c.Method == "" {
		c.Method = http.MethodGet
		if c.Body != nil {
			c.Method = http.MethodPost
		}
	}
	if !validToken(c.Method) {
		return fmt.Errorf("loadgen: invalid method %q", c.Method)
	}
	for k, vs := range c.Header {
		if !validToken(k) {
			return fmt.Errorf("loadgen: invalid header name %q", k)
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				return fmt.Errorf("loadgen: header %s: value has a control character", k)
			}
		}
	}
	switch {
	case c.Rate < 0:
		return fmt.Errorf("loadgen: rate %v is negative", c.Rate)
	case c.Connections < 0:
		return fmt.Errorf("loadgen: connections %d is negative", c.Connections)
	case c.Duration < 0 || c.Warmup < 0 || c.Timeout < 0 || c.StallThreshold < 0:
		return errors.New("loadgen: durations must not be negative")
	}
	if c.Connections == 0 {
		c.Connections = DefaultConnections
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.StallThreshold == 0 {
		c.StallThreshold = DefaultStallThreshold
	}
	return nil
}

// validToken reports whether s is a non-empty HTTP token (RFC 9110 5.6.2).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// Result is what one [Run] measured over its window.
//
// Requests = OK + Errors + Broken. Latency and TTFB are computed exactly
// from the OK requests' samples.
type Result struct {
	// Requests are the requests due in the window (at open throttle: sent
	// in it).
	Requests int
	// OK requests got a 2xx response read to its end (streams: ending
	// cleanly after "data: [DONE]", without an error event).
	OK int
	// Errors got no response (dial, write or read failure, timeout, or
	// too long a wait for a connection) or a non-2xx status.
	Errors int
	// Broken requests got a 2xx response that did not end well: a body
	// cut short, a stream without "data: [DONE]", or a stream carrying an
	// error event.
	Broken int
	// Stalls counts streams with a gap longer than the stall threshold
	// between the response header and the first event or between events.
	Stalls int
	// StatusCounts counts responses by status code.
	StatusCounts map[int]int
	// Failures counts Errors and Broken by short reason, such as
	// "status 502", "timeout", "connection reset", "stream cut" or
	// "no [DONE]".
	Failures map[string]int
	// Achieved is the throughput: OK requests that completed in the
	// window, per second of window.
	Achieved float64
	// Latency is from the intended send time (at open throttle, the send
	// time) to the end of the response body or stream.
	Latency Percentiles
	// TTFB is from the same start to the response header, or for streams
	// to the first event.
	TTFB Percentiles
	// MaxGap is the longest gap seen in a stream (see Stalls).
	MaxGap time.Duration
	// PeakInFlight is the most requests in flight at once.
	PeakInFlight int
	// Dials counts the connections opened, warm-up included; with a
	// well-behaved target it equals Config.Connections.
	Dials int
	// Bytes counts the response body bytes read in the window.
	Bytes int64
	// CPU is this process's user+system CPU time during the window: the
	// generator's, and that of anything else running in the process.
	CPU time.Duration
	// ServerCPU is the server's CPU time during the window
	// (Config.ServerCPU; 0 without it).
	ServerCPU time.Duration
	// Duration is the window's length.
	Duration time.Duration
}

// Percentiles summarises a set of durations. The percentiles are exact
// (nearest rank over all samples).
type Percentiles struct {
	N                                   int
	Min, Mean, P50, P90, P99, P999, Max time.Duration
}

// percentiles sorts d in place and summarises it.
func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	slices.Sort(d)
	var sum float64
	for _, v := range d {
		sum += float64(v)
	}
	rank := func(q float64) time.Duration {
		// Nearest rank: the smallest sample with at least q of the
		// samples at or below it.
		i := int(float64(len(d))*q+0.999999999) - 1
		return d[max(0, min(i, len(d)-1))]
	}
	return Percentiles{
		N:    len(d),
		Min:  d[0],
		Mean: time.Duration(sum / float64(len(d))),
		P50:  rank(0.50),
		P90:  rank(0.90),
		P99:  rank(0.99),
		P999: rank(0.999),
		Max:  d[len(d)-1],
	}
}

// Run sends cfg's load and returns what it measured. It dials every
// connection before the clock starts, so an unreachable target is an
// error. If ctx ends first, Run returns the partial result with ctx's
// error.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	r, err := newRunner(cfg)
	if err != nil {
		return Result{}, err
	}
	return r.run(ctx)
}
