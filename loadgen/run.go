package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxFailureKinds bounds Result.Failures; further reasons count as "other".
const maxFailureKinds = 32

// runner is the state of one Run shared by its workers.
type runner struct {
	cfg     Config
	addr    string        // host:port to dial
	tls     *tls.Config   // nil for http
	req     []byte        // the request, precomputed
	httpReq *http.Request // what http.ReadResponse needs to know (the method)
	dialer  net.Dialer

	t0, warmEnd, end time.Time
	interval         float64 // ns between due times, at a fixed rate

	next     atomic.Int64 // next request index to claim, at a fixed rate
	inFlight atomic.Int64
	peak     atomic.Int64

	mu      sync.Mutex // guards aborted and the workers' conn fields
	aborted bool
	workers []*worker
}

func newRunner(cfg Config) (*runner, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("loadgen: url: %w", err)
	}
	r := &runner{cfg: cfg, dialer: net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	r.addr = net.JoinHostPort(u.Hostname(), port)
	if u.Scheme == "https" {
		r.tls = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}}
		if cfg.TLS != nil {
			r.tls = cfg.TLS.Clone()
			if r.tls.ServerName == "" {
				r.tls.ServerName = u.Hostname()
			}
			r.tls.NextProtos = []string{"http/1.1"}
		}
	}
	r.req, err = buildRequest(cfg, u)
	if err != nil {
		return nil, err
	}
	r.httpReq = &http.Request{Method: cfg.Method}
	if cfg.Rate > 0 {
		r.interval = 1e9 / cfg.Rate
	}
	return r, nil
}

// buildRequest returns the raw HTTP/1.1 request that every call sends.
func buildRequest(cfg Config, u *url.URL) ([]byte, error) {
	var b bytes.Buffer
	host := u.Host
	if h := cfg.Header.Get("Host"); h != "" {
		host = h
	}
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", cfg.Method, u.RequestURI(), host)
	if cfg.Header.Get("User-Agent") == "" {
		b.WriteString("User-Agent: aigw-loadgen\r\n")
	}
	if cfg.Body != nil || cfg.Method == http.MethodPost || cfg.Method == http.MethodPut || cfg.Method == http.MethodPatch {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(cfg.Body))
		if cfg.Body != nil && cfg.Header.Get("Content-Type") == "" {
			b.WriteString("Content-Type: application/json\r\n")
		}
	}
	keys := make([]string, 0, len(cfg.Header))
	for k := range cfg.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Host":
			continue
		case "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Te":
			return nil, fmt.Errorf("loadgen: header %s is set by the generator", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range cfg.Header[k] {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	b.Write(cfg.Body)
	return b.Bytes(), nil
}

func (r *runner) run(parent context.Context) (Result, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	stop := context.AfterFunc(ctx, r.abort)
	defer stop()

	n := r.cfg.Connections
	ws := make([]*worker, n)
	perWorker := 256 // samples; at open throttle, appends grow it
	if r.cfg.Rate > 0 {
		perWorker = int(min(r.cfg.Rate*r.cfg.Duration.Seconds()/float64(n)*1.25+16, 1<<20))
	}
	for i := range ws {
		ws[i] = newWorker(r, perWorker)
	}
	r.mu.Lock()
	r.workers = ws
	r.mu.Unlock()

	// Dial every connection before the clock starts.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() { errs[i] = w.dial(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, w := range ws {
			w.closeConn()
		}
		if perr := parent.Err(); perr != nil {
			return Result{}, perr
		}
		return Result{}, fmt.Errorf("loadgen: connect to %s: %w", r.addr, firstError(errs))
	}

	r.t0 = time.Now()
	r.warmEnd = r.t0.Add(r.cfg.Warmup)
	r.end = r.warmEnd.Add(r.cfg.Duration)
	for _, w := range ws {
		wg.Go(func() {
			defer w.closeConn()
			w.loop(ctx)
		})
	}
	var cpu0, cpu1, srv0, srv1 time.Duration
	server := r.cfg.ServerCPU
	if server == nil {
		server = func() time.Duration { return 0 }
	}
	if sleepUntil(ctx, r.warmEnd) {
		cpu0, srv0 = processCPU(), server()
		if sleepUntil(ctx, r.end) {
			cpu1, srv1 = processCPU(), server()
		}
	}
	wg.Wait()

	res := r.merge(ws)
	if cpu1 > 0 {
		res.CPU = cpu1 - cpu0
	}
	if srv1 > srv0 {
		res.ServerCPU = srv1 - srv0
	}
	return res, parent.Err()
}

// abort makes every connection's pending I/O fail at once (ctx ended).
func (r *runner) abort() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.aborted = true
	for _, w := range r.workers {
		if w.conn != nil {
			w.conn.SetDeadline(time.Unix(1, 0))
		}
	}
}

// merge adds the workers' counts and samples into one Result.
func (r *runner) merge(ws []*worker) Result {
	res := Result{
		StatusCounts: map[int]int{},
		Failures:     map[string]int{},
		Duration:     r.cfg.Duration,
		PeakInFlight: int(r.peak.Load()),
	}
	var nlat int
	for _, w := range ws {
		nlat += len(w.lat)
	}
	lat := make([]time.Duration, 0, nlat)
	ttfb := make([]time.Duration, 0, nlat)
	var completed int
	for _, w := range ws {
		res.Requests += w.requests
		res.OK += w.ok
		res.Errors += w.errors
		res.Broken += w.broken
		res.Stalls += w.stalls
		res.Dials += w.dials
		res.Bytes += w.bytes
		res.MaxGap = max(res.MaxGap, w.maxGap)
		completed += w.completed
		for k, v := range w.status {
			res.StatusCounts[k] += v
		}
		for k, v := range w.failures {
			res.Failures[k] += v
		}
		lat = append(lat, w.lat...)
		ttfb = append(ttfb, w.ttfb...)
	}
	res.Latency = percentiles(lat)
	res.TTFB = percentiles(ttfb)
	res.Achieved = float64(completed) / r.cfg.Duration.Seconds()
	return res
}

// worker drives one connection.
type worker struct {
	r      *runner
	conn   net.Conn // written by the worker under r.mu; read by abort
	br     *bufio.Reader
	lines  *bufio.Reader // SSE lines of a response body
	timer  *time.Timer
	reused bool // conn has carried a response

	lat, ttfb []time.Duration

	requests, ok, errors, broken, stalls int
	completed                            int // OK requests completed in the window
	dials                                int
	bytes                                int64
	maxGap                               time.Duration
	status                               map[int]int
	failures                             map[string]int
}

func newWorker(r *runner, samples int) *worker {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &worker{
		r:        r,
		br:       bufio.NewReaderSize(nil, 4<<10),
		lines:    bufio.NewReaderSize(nil, 4<<10),
		timer:    t,
		lat:      make([]time.Duration, 0, samples),
		ttfb:     make([]time.Duration, 0, samples),
		status:   map[int]int{},
		failures: map[string]int{},
	}
}

// loop sends requests until the window ends.
func (w *worker) loop(ctx context.Context) {
	r := w.r
	if r.cfg.Rate == 0 {
		for ctx.Err() == nil {
			now := time.Now()
			if !now.Before(r.end) {
				return
			}
			w.do(ctx, now, !now.Before(r.warmEnd))
		}
		return
	}
	for ctx.Err() == nil {
		i := r.next.Add(1) - 1
		due := r.t0.Add(time.Duration(float64(i) * r.interval))
		if !due.Before(r.end) {
			return
		}
		measured := !due.Before(r.warmEnd)
		start := due
		if d := time.Until(due); d > 0 {
			// This worker was idle before the request was due, so any
			// lateness after the sleep is the generator's own timer
			// slack, not the target's: measure from the actual send.
			if !w.sleep(ctx, d) {
				return
			}
			start = time.Now()
		} else if -d > r.cfg.Timeout {
			// Every connection was busy for longer than the timeout.
			if measured {
				w.requests++
				w.errors++
				w.fail("queued past timeout")
			}
			continue
		}
		// Otherwise the request was due while every connection was busy:
		// the wait counts, so latency runs from the due time.
		w.do(ctx, start, measured)
	}
}

func (w *worker) sleep(ctx context.Context, d time.Duration) bool {
	w.timer.Reset(d)
	select {
	case <-w.timer.C:
		return true
	case <-ctx.Done():
		w.timer.Stop()
		return false
	}
}

// outcome is what one request came to.
type outcome struct {
	kind     int // kindOK, kindError or kindBroken
	reason   string
	status   int
	ttfb     time.Time // response header, or first event of a stream
	end      time.Time
	bytes    int64
	maxGap   time.Duration
	sawEvent bool
}

const (
	kindOK = iota
	kindError
	kindBroken
)

// do makes one request and records it if measured.
func (w *worker) do(ctx context.Context, start time.Time, measured bool) {
	o := w.roundTrip(ctx)
	if ctx.Err() != nil {
		return // aborted mid-request: neither success nor the target's failure
	}
	r := w.r
	if o.kind == kindOK && !o.end.Before(r.warmEnd) && o.end.Before(r.end) {
		w.completed++
	}
	if !measured {
		return
	}
	w.requests++
	w.bytes += o.bytes
	if o.status != 0 {
		w.status[o.status]++
	}
	if r.cfg.Stream && o.sawEvent {
		w.maxGap = max(w.maxGap, o.maxGap)
		if o.maxGap > r.cfg.StallThreshold {
			w.stalls++
		}
	}
	switch o.kind {
	case kindOK:
		w.ok++
		w.lat = append(w.lat, o.end.Sub(start))
		w.ttfb = append(w.ttfb, o.ttfb.Sub(start))
	case kindError:
		w.errors++
		w.fail(o.reason)
	case kindBroken:
		w.broken++
		w.fail(o.reason)
	}
}

func (w *worker) fail(reason string) {
	if _, ok := w.failures[reason]; !ok && len(w.failures) >= maxFailureKinds {
		reason = "other"
	}
	w.failures[reason]++
}

// roundTrip sends the request on the worker's connection (dialing one if
// needed) and reads the whole response. A request that fails on a reused
// connection before any response byte arrives is retried once on a new
// connection, as net/http does: the target closed an idle connection.
func (w *worker) roundTrip(ctx context.Context) outcome {
	r := w.r
	n := r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	for p := r.peak.Load(); n > p && !r.peak.CompareAndSwap(p, n); p = r.peak.Load() {
	}

	for attempt := 0; ; attempt++ {
		if w.conn == nil {
			if err := w.dial(ctx); err != nil {
				return outcome{kind: kindError, reason: "dial: " + reason(err)}
			}
		}
		retry := w.reused && attempt == 0
		w.conn.SetDeadline(time.Now().Add(r.cfg.Timeout))
		if _, err := w.conn.Write(r.req); err != nil {
			w.closeConn()
			if retry {
				continue
			}
			return outcome{kind: kindError, reason: "write: " + reason(err)}
		}
		if _, err := w.br.Peek(1); err != nil {
			w.closeConn()
			if retry && (err == io.EOF || errors.Is(err, syscall.ECONNRESET)) {
				continue // not a byte of response: the target had closed the connection
			}
			return outcome{kind: kindError, reason: "response: " + reason(err)}
		}
		resp, err := http.ReadResponse(w.br, r.httpReq)
		for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			resp, err = http.ReadResponse(w.br, r.httpReq) // skip 1xx
		}
		if err != nil {
			w.closeConn()
			return outcome{kind: kindError, reason: "response: " + reason(err)}
		}
		w.reused = true
		return w.readBody(resp)
	}
}

// readBody reads the response body to its end.
func (w *worker) readBody(resp *http.Response) outcome {
	o := outcome{status: resp.StatusCode, ttfb: time.Now()}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		const limit = 1 << 20
		n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, limit))
		if err != nil || n == limit || resp.Close {
			w.closeConn()
		}
		o.kind, o.reason, o.bytes = kindError, "status "+strconv.Itoa(resp.StatusCode), n
		return o
	}
	if w.r.cfg.Stream {
		w.readStream(resp.Body, &o)
	} else {
		n, err := io.Copy(io.Discard, resp.Body)
		o.bytes = n
		if err != nil {
			o.kind, o.reason = kindBroken, "body cut: "+reason(err)
		}
	}
	o.end = time.Now()
	if o.kind != kindOK || resp.Close {
		w.closeConn()
	}
	return o
}

// readStream reads an SSE body to its end, noting the first event, the
// gaps between events, "data: [DONE]" and error events.
//
// SPEC: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
func (w *worker) readStream(body io.Reader, o *outcome) {
	lr := w.lines
	lr.Reset(body)
	defer lr.Reset(nil)
	last := o.ttfb // the response header
	var (
		dataLines       int
		done, errorData bool // in the event being read
		errorType       bool // "event: error"
		sawDone, sawErr bool
		long            bool // inside a line longer than the buffer
	)
	for {
		line, err := lr.ReadSlice('\n')
		o.bytes += int64(len(line))
		if err == bufio.ErrBufferFull {
			if !long {
				// Only a line's start matters: classify it and skip the rest.
				if v, ok := field(line, "data"); ok {
					dataLines++
					errorData = errorData || isErrorJSON(v)
				}
			}
			long = true
			continue
		}
		if err != nil {
			if err == io.EOF && len(line) == 0 {
				break // clean end of body
			}
			o.kind, o.reason = kindBroken, "stream cut: ended mid-line"
			if err != io.EOF {
				o.reason = "stream cut: " + reason(err)
			}
			return
		}
		if long {
			long = false
			continue
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
		if len(line) == 0 { // dispatch
			if dataLines > 0 {
				now := time.Now()
				o.maxGap = max(o.maxGap, now.Sub(last))
				last = now
				if !o.sawEvent {
					o.sawEvent = true
					o.ttfb = now
				}
				sawDone = sawDone || (done && dataLines == 1)
				sawErr = sawErr || errorData || errorType
			}
			dataLines, done, errorData, errorType = 0, false, false, false
			continue
		}
		if v, ok := field(line, "data"); ok {
			dataLines++
			done = string(v) == "[DONE]"
			errorData = errorData || isErrorJSON(v)
		} else if v, ok := field(line, "event"); ok {
			errorType = string(v) == "error"
		}
	}
	switch {
	case sawErr:
		o.kind, o.reason = kindBroken, "error event"
	case !sawDone:
		o.kind, o.reason = kindBroken, "no [DONE]"
	}
}

// field returns the value of an SSE line "name:value" or "name: value".
func field(line []byte, name string) ([]byte, bool) {
	if len(line) <= len(name) || line[len(name)] != ':' || string(line[:len(name)]) != name {
		if string(line) == name {
			return nil, true
		}
		return nil, false
	}
	v := line[len(name)+1:]
	if len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	return v, true
}

// isErrorJSON reports whether an event's data is a JSON object whose first
// member is "error", the shape of OpenAI's in-stream errors.
func isErrorJSON(v []byte) bool {
	v = bytes.TrimLeft(v, " \t")
	if len(v) == 0 || v[0] != '{' {
		return false
	}
	return bytes.HasPrefix(bytes.TrimLeft(v[1:], " \t\r\n"), []byte(`"error"`))
}

// dial opens the worker's connection.
func (w *worker) dial(ctx context.Context) error {
	r := w.r
	c, err := r.dialer.DialContext(ctx, "tcp", r.addr)
	if err != nil {
		return err
	}
	if r.tls != nil {
		tc := tls.Client(c, r.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return err
		}
		c = tc
	}
	r.mu.Lock()
	if r.aborted {
		r.mu.Unlock()
		c.Close()
		return context.Canceled
	}
	w.conn = c
	r.mu.Unlock()
	w.br.Reset(c)
	w.reused = false
	w.dials++
	return nil
}

func (w *worker) closeConn() {
	if w.conn == nil {
		return
	}
	w.conn.Close()
	w.r.mu.Lock()
	w.conn = nil
	w.r.mu.Unlock()
	w.br.Reset(nil)
}

// reason names an I/O error briefly, without addresses.
func reason(err error) string {
	var opErr *net.OpError
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.As(err, &opErr):
		return opErr.Err.Error()
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// sleepUntil waits for t or ctx, reporting whether t came first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}
