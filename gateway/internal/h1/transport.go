// Package h1 is a synchronous HTTP/1.1 client transport for plain-HTTP
// upstreams. It writes each request and reads its response on the caller's
// goroutine, where net/http's Transport hands every call between the
// caller, a write goroutine and a read goroutine per connection: on a busy
// gateway those handoffs cost more CPU than the HTTP itself. Everything it
// does not handle (https and so HTTP/2, proxies, upgrades, Expect,
// httptrace) goes unchanged to a fallback RoundTripper.
package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults for the zero values of the Transport's fields.
const (
	DefaultMaxIdleConnsPerHost    = 256
	DefaultIdleConnTimeout        = 90 * time.Second
	DefaultMaxResponseHeaderBytes = 10 << 20 // as net/http
)

// Transport is an http.RoundTripper for http:// URLs over HTTP/1.1 with a
// keep-alive pool per host:port. Its zero value is ready to use; its
// fields must not change once it has been used. It is safe for concurrent
// use.
//
// Requests go to Fallback unless all of these hold: the scheme is http,
// the URL has a host and Proxy gives no proxy for it, the method is not
// CONNECT, the request has no Upgrade or Expect header, no Connection:
// upgrade, no httptrace.ClientTrace in its context,
// only valid header names and values, and an ASCII host. Requests always
// go out as HTTP/1.1 (Request.Proto is ignored, as by net/http).
//
// Unlike net/http's Transport it never adds Accept-Encoding: gzip, so it
// never decompresses: the caller gets what the server sent for the
// Accept-Encoding the caller set.
type Transport struct {
	// Fallback gets every request this transport does not handle itself.
	// Nil means http.DefaultTransport.
	Fallback http.RoundTripper

	// Proxy is as http.Transport.Proxy: a request it gives a proxy URL for
	// goes to Fallback, which should use the same Proxy; an error from it
	// fails the request. Nil means no proxy (not the environment's).
	Proxy func(*http.Request) (*url.URL, error)

	// DialContext dials the upstream's "host:port" over "tcp" with the
	// request's context. Nil means a net.Dialer as http.DefaultTransport's.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// MaxIdleConnsPerHost bounds the idle connections kept per host:port.
	// Zero means DefaultMaxIdleConnsPerHost; negative keeps none, so
	// every request gets a new connection.
	MaxIdleConnsPerHost int

	// MaxIdleConns bounds the idle connections kept across all hosts: a
	// connection put in a full pool closes the one idle the longest. Zero
	// means no limit (as net/http's).
	MaxIdleConns int

	// IdleConnTimeout is how long a connection may stay idle before it is
	// closed. Zero means DefaultIdleConnTimeout; negative means no limit.
	IdleConnTimeout time.Duration

	// MaxResponseHeaderBytes bounds the bytes of the response header,
	// 1xx responses included. Zero means DefaultMaxResponseHeaderBytes.
	MaxResponseHeaderBytes int64

	// noProbe skips the liveness check of idle connections, so that tests
	// can make the stale keep-alive race happen on purpose.
	noProbe bool

	mu         sync.Mutex
	idle       map[string][]*conn // per host:port, most recently used last
	nidle      int                // the connections in idle
	closeIdle  bool               // as net/http: after CloseIdleConnections, until the next request
	sweepTimer *time.Timer
	sweepArmed bool
}

var defaultDialer = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !handles(req) {
		return t.fallback().RoundTrip(req)
	}
	if t.Proxy != nil {
		p, err := t.Proxy(req)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		if p != nil {
			return t.fallback().RoundTrip(req)
		}
	}
	return t.roundTrip(req)
}

// CloseIdleConnections closes the idle connections, and connections that
// become idle before the next request (as net/http does), then calls the
// Fallback's CloseIdleConnections if it has one. Connections in use are
// left alone.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	m := t.idle
	t.idle = nil
	t.nidle = 0
	t.closeIdle = true
	t.mu.Unlock()
	for _, l := range m {
		for _, c := range l {
			c.nc.Close()
		}
	}
	if f, ok := t.fallback().(interface{ CloseIdleConnections() }); ok {
		f.CloseIdleConnections()
	}
}

func (t *Transport) fallback() http.RoundTripper {
	if t.Fallback != nil {
		return t.Fallback
	}
	return http.DefaultTransport
}

func (t *Transport) maxIdle() int {
	if t.MaxIdleConnsPerHost == 0 {
		return DefaultMaxIdleConnsPerHost
	}
	return t.MaxIdleConnsPerHost
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleConnTimeout == 0 {
		return DefaultIdleConnTimeout
	}
	return t.IdleConnTimeout
}

func (t *Transport) maxHeaderBytes() int64 {
	if t.MaxResponseHeaderBytes <= 0 {
		return DefaultMaxResponseHeaderBytes
	}
	return t.MaxResponseHeaderBytes
}

var (
	errRequestCanceled = errors.New("net/http: request canceled")
	errRequestDone     = errors.New("h1: request completed")
)

func (t *Transport) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if ctx.Err() != nil {
		closeBody(req)
		return nil, context.Cause(ctx)
	}
	var cancel context.CancelCauseFunc
	if req.Cancel != nil {
		// The deprecated Request.Cancel, which http.Client sets on every
		// request to a transport not its own when Client.Timeout is set.
		// As net/http, a goroutine turns it into context cancellation.
		ctx, cancel = context.WithCancelCause(ctx)
		go func() {
			select {
			case <-req.Cancel:
				cancel(errRequestCanceled)
			case <-ctx.Done():
			}
		}()
	}
	resp, err := t.roundTripCtx(ctx, cancel, req)
	if err != nil && cancel != nil {
		cancel(err)
	}
	return resp, err
}

// roundTripCtx sends req under ctx, req's context or one derived from it
// that cancel (nil for req's) ends once the response is read.
func (t *Transport) roundTripCtx(ctx context.Context, cancel context.CancelCauseFunc, req *http.Request) (*http.Response, error) {
	addr := hostPort(req.URL)
	orig := req
	if c := t.getIdle(addr); c != nil {
		resp, err, stale := t.exchange(ctx, cancel, c, req, true)
		if !stale {
			return resp, err
		}
		// The server closed the kept-alive connection before it answered,
		// typically its idle timeout racing our request: try once more on
		// a new connection if the body can be sent again. The first body
		// was closed by req.Write.
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, err
			}
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, gerr
			}
			r2 := *req
			r2.Body = body
			req = &r2
		}
	}
	c, err := t.dial(ctx, addr)
	if err != nil {
		closeBody(req)
		return nil, mapErr(ctx, err)
	}
	resp, err, _ := t.exchange(ctx, cancel, c, req, false)
	if resp != nil {
		resp.Request = orig
	}
	return resp, err
}

// exchange writes req on c and reads the response header. It owns c: on
// error c is closed, and stale reports that c was a reused connection that
// failed before any byte of the response arrived, so that a retry on a new
// connection is safe. It always closes the request body (req.Write does).
// It calls cancel, if not nil, once the response is read.
func (t *Transport) exchange(ctx context.Context, cancel context.CancelCauseFunc, c *conn, req *http.Request, reused bool) (resp *http.Response, err error, stale bool) {
	wreq, tb := req, (*trackBody)(nil)
	if req.Body != nil && req.Body != http.NoBody && !inMemory(req.Body) {
		// A body that can block or fail is wrapped: to return its own
		// read error (req.Write hides it in an unexported type) and to
		// unblock its Read on cancellation, as net/http does by closing it.
		tb = &trackBody{rc: req.Body}
		r2 := *req
		r2.Body = tb
		wreq = &r2
	}
	var stop func() bool
	if ctx.Done() != nil {
		abort := c.abort
		if tb != nil {
			abort = func() { c.nc.Close(); tb.Close() }
		}
		stop = context.AfterFunc(ctx, abort)
	}
	fail := func(err error, stale bool) (*http.Response, error, bool) {
		if stop != nil {
			stop()
		}
		c.nc.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx), false
		}
		return nil, err, stale
	}

	c.werr = nil
	startRead, startWrite := c.nread, c.nwrite
	err = wreq.Write(c.bw)
	if err == nil {
		err = c.bw.Flush()
	}
	earlyResponse := false
	if err != nil {
		switch {
		case c.werr == nil && tb != nil && tb.err != nil:
			return fail(tb.err, false)
		case c.werr == nil:
			// Not the network: a request req.Write refuses (URL with
			// control bytes, ContentLength mismatch).
			return fail(err, false)
		case reused:
			return fail(err, c.nwrite == startWrite || idempotent(req))
		}
		// A fresh connection the server stopped reading: it may have
		// answered first (413 to a large body, say), and net/http's
		// concurrent reader would return that answer.
		earlyResponse = true
	}

	resp, rerr := c.readResponse(req, t.maxHeaderBytes())
	if rerr != nil {
		if earlyResponse {
			return fail(err, false)
		}
		return fail(rerr, reused && c.nread == startRead && isStale(rerr) && idempotent(req))
	}
	reuse := !earlyResponse && !resp.Close && !wantsClose(req) && t.maxIdle() > 0
	if resp.Body == http.NoBody {
		// HEAD, 204, 304, Content-Length: 0: the connection is free now.
		t.release(c, stop, reuse)
		if cancel != nil {
			cancel(errRequestDone)
		}
		return resp, nil, false
	}
	resp.Body = &body{rc: resp.Body, t: t, c: c, ctx: ctx, stop: stop, cancel: cancel, reuse: reuse}
	return resp, nil, false
}

// release returns c to the pool if reuse and nothing fired the request's
// AfterFunc (it may have closed c), else closes it.
func (t *Transport) release(c *conn, stop func() bool, reuse bool) {
	if stop != nil && !stop() {
		reuse = false
	}
	if reuse && c.br.Buffered() == 0 {
		t.put(c)
		return
	}
	c.nc.Close()
}

func (t *Transport) dial(ctx context.Context, addr string) (*conn, error) {
	dial := t.DialContext
	if dial == nil {
		dial = defaultDialer.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if nc == nil {
		return nil, errors.New("h1: DialContext returned a nil net.Conn")
	}
	return newConn(addr, nc), nil
}

// getIdle takes the most recently used live idle connection to addr, or
// returns nil.
func (t *Transport) getIdle(addr string) *conn {
	if t.maxIdle() <= 0 {
		return nil
	}
	timeout := t.idleTimeout()
	for {
		var c *conn
		var expired []*conn
		now := time.Now()
		t.mu.Lock()
		t.closeIdle = false
		l := t.idle[addr]
		if n := len(l); n > 0 {
			c = l[n-1]
			l[n-1] = nil
			l = l[:n-1]
			t.nidle--
			if timeout > 0 && now.Sub(c.idleAt) > timeout {
				// The list is in idle order: the rest are older still.
				expired = append(l, c)
				t.nidle -= len(l)
				c, l = nil, nil
			}
			if len(l) == 0 {
				delete(t.idle, addr)
			} else {
				t.idle[addr] = l
			}
		}
		t.mu.Unlock()
		for _, e := range expired {
			e.nc.Close()
		}
		if c == nil {
			return nil
		}
		if t.noProbe || c.alive() {
			return c
		}
		c.nc.Close()
	}
}

// put adds c to the idle pool, or closes it when the pool is full or
// CloseIdleConnections asked for it.
func (t *Transport) put(c *conn) {
	c.idleAt = time.Now()
	timeout := t.idleTimeout()
	t.mu.Lock()
	l := t.idle[c.addr]
	if t.closeIdle || len(l) >= t.maxIdle() {
		t.mu.Unlock()
		c.nc.Close()
		return
	}
	if t.idle == nil {
		t.idle = make(map[string][]*conn)
	}
	var evicted *conn
	if t.MaxIdleConns > 0 && t.nidle >= t.MaxIdleConns {
		evicted = t.evictOldestLocked()
		l = t.idle[c.addr] // the eviction may have shortened it
	}
	t.idle[c.addr] = append(l, c)
	t.nidle++
	if timeout > 0 && !t.sweepArmed {
		// One timer for the whole pool closes connections that nobody
		// takes (getIdle drops the expired ones it meets).
		t.sweepArmed = true
		if t.sweepTimer == nil {
			t.sweepTimer = time.AfterFunc(timeout, t.sweep)
		} else {
			t.sweepTimer.Reset(timeout)
		}
	}
	t.mu.Unlock()
	if evicted != nil {
		evicted.nc.Close()
	}
}

// evictOldestLocked takes out of the pool the connection idle the longest
// (the first of some host's list) and returns it to be closed.
func (t *Transport) evictOldestLocked() *conn {
	var oldest string
	var l []*conn
	for addr, al := range t.idle {
		if l == nil || al[0].idleAt.Before(l[0].idleAt) {
			oldest, l = addr, al
		}
	}
	if l == nil {
		return nil
	}
	c := l[0]
	n := copy(l, l[1:])
	l[n] = nil
	if n == 0 {
		delete(t.idle, oldest)
	} else {
		t.idle[oldest] = l[:n]
	}
	t.nidle--
	return c
}

func (t *Transport) sweep() {
	timeout := t.idleTimeout()
	now := time.Now()
	var expired []*conn
	var oldest time.Time
	t.mu.Lock()
	for addr, l := range t.idle {
		i := 0
		for i < len(l) && now.Sub(l[i].idleAt) > timeout {
			i++
		}
		expired = append(expired, l[:i]...)
		t.nidle -= i
		n := copy(l, l[i:])
		clear(l[n:])
		if n == 0 {
			delete(t.idle, addr)
			continue
		}
		t.idle[addr] = l[:n]
		if oldest.IsZero() || l[0].idleAt.Before(oldest) {
			oldest = l[0].idleAt
		}
	}
	if oldest.IsZero() {
		t.sweepArmed = false
	} else {
		t.sweepTimer.Reset(oldest.Add(timeout).Sub(now) + time.Millisecond)
	}
	t.mu.Unlock()
	for _, c := range expired {
		c.nc.Close()
	}
}

// conn is one upstream connection, used by one request at a time. It is
// the io.Reader and io.Writer under its bufio pair, to count bytes (no
// response byte yet means a retry is safe), to tell network write errors
// from the body's, and to bound the response header.
type conn struct {
	addr   string
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	abort  func() // closes nc; made once, for context.AfterFunc
	idleAt time.Time

	nread  int64
	nwrite int64
	rleft  int64 // bytes the response header may still use
	werr   error // last write error from nc

	raw       syscall.RawConn // nil when nc is not a socket
	probeFn   func(uintptr) bool
	probeDead bool
	probeBuf  [1]byte
}

func newConn(addr string, nc net.Conn) *conn {
	c := &conn{addr: addr, nc: nc, rleft: 1<<63 - 1}
	c.br = bufio.NewReaderSize(c, 4<<10)
	c.bw = bufio.NewWriterSize(c, 4<<10)
	c.abort = func() { nc.Close() }
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil && canProbe {
			c.raw = raw
			c.probeFn = c.probe
		}
	}
	return c
}

func (c *conn) Read(p []byte) (int, error) {
	if c.rleft <= 0 {
		return 0, errHeaderLimit
	}
	if int64(len(p)) > c.rleft {
		p = p[:c.rleft]
	}
	n, err := c.nc.Read(p)
	c.nread += int64(n)
	c.rleft -= int64(n)
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	n, err := c.nc.Write(p)
	c.nwrite += int64(n)
	if err != nil {
		c.werr = err
	}
	return n, err
}

// alive reports whether an idle connection is still usable: the server
// has neither closed it nor sent anything unasked. net/http learns this
// from the read goroutine each connection has; here one non-blocking
// MSG_PEEK does, so that a connection the server closed while idle is
// dropped before a request is written into it.
func (c *conn) alive() bool {
	if c.raw == nil {
		return true
	}
	c.probeDead = false
	if err := c.raw.Read(c.probeFn); err != nil {
		return false
	}
	return !c.probeDead
}

var errHeaderLimit = errors.New("h1: response header too large")

func (c *conn) readResponse(req *http.Request, limit int64) (*http.Response, error) {
	c.rleft = limit
	for {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			if c.rleft <= 0 {
				err = fmt.Errorf("h1: server response headers exceeded %d bytes; aborted", limit)
			}
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("h1: unexpected 101 Switching Protocols response")
		case 100 <= resp.StatusCode && resp.StatusCode < 200:
			// 100 and 103 and the like: informational, the final
			// response follows. The header limit covers them all.
			continue
		}
		c.rleft = 1<<63 - 1
		return resp, nil
	}
}

var errReadOnClosedResBody = errors.New("http: read on closed response body")

// body is a response body that hands its connection back to the pool at
// EOF, and closes it on Close before EOF (the rest of the body would be in
// the way of the next response), on a read error, or on cancellation.
type body struct {
	rc     io.ReadCloser // from http.ReadResponse; never used once done
	t      *Transport
	c      *conn
	ctx    context.Context // the request's, to report its error over the closed connection's
	stop   func() bool
	cancel context.CancelCauseFunc // nil, or ends ctx once c is released
	reuse  bool

	mu     sync.Mutex
	closed bool  // Close was called
	done   bool  // c is released: back in the pool or closed
	err    error // what Read returns once done
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return 0, errReadOnClosedResBody
	case b.done:
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	b.mu.Unlock()
	// Read without the lock so that Close from another goroutine can
	// close the connection under a blocked Read.
	n, err := b.rc.Read(p)
	if err == nil {
		return n, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		if err != io.EOF {
			err = errReadOnClosedResBody
		}
		return n, err
	}
	b.done = true
	if err == io.EOF {
		b.t.release(b.c, b.stop, b.reuse)
	} else {
		b.t.release(b.c, b.stop, false)
		err = mapErr(b.ctx, err)
	}
	if b.cancel != nil {
		b.cancel(errRequestDone)
	}
	b.err = err
	return n, err
}

func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if !b.done {
		b.done = true
		b.t.release(b.c, b.stop, false)
		if b.cancel != nil {
			b.cancel(errRequestDone)
		}
	}
	return nil
}

// trackBody wraps a request body that is not in memory (see exchange).
type trackBody struct {
	rc     io.ReadCloser
	err    error // first read error other than io.EOF
	closed atomic.Bool
}

func (b *trackBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func (b *trackBody) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	return b.rc.Close()
}

// inMemory reports whether net/http knows body cannot block or fail
// (its isKnownInMemoryReader): such bodies are not wrapped, which would
// make req.Write flush the header on its own.
func inMemory(body io.ReadCloser) bool {
	switch reflect.TypeOf(body) {
	case nopCloserType, nopCloserWriterToType:
	default:
		return false
	}
	switch reflect.ValueOf(body).Field(0).Interface().(type) {
	case *bytes.Reader, *bytes.Buffer, *strings.Reader:
		return true
	}
	return false
}

var (
	nopCloserType         = reflect.TypeOf(io.NopCloser(nil))
	nopCloserWriterToType = reflect.TypeOf(io.NopCloser(struct {
		io.Reader
		io.WriterTo
	}{}))
)

func mapErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// isStale reports whether err, met before any response byte on a reused
// connection, is how a connection the server closed fails.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// handles reports whether the request is one this transport sends itself;
// see Transport. Invalid requests go to Fallback, which returns net/http's
// errors for them.
func handles(req *http.Request) bool {
	u := req.URL
	if u == nil || req.Header == nil || u.Scheme != "http" || u.Host == "" ||
		req.Method == "CONNECT" || !validMethod(req.Method) ||
		!isASCII(u.Host) || !isASCII(req.Host) {
		return false
	}
	for k, vv := range req.Header {
		if !validHeader(k, vv) {
			return false
		}
		switch k {
		case "Upgrade", "Expect":
			return false
		case "Connection":
			if hasToken(vv, "upgrade") {
				return false
			}
		}
	}
	for k, vv := range req.Trailer {
		if !validHeader(k, vv) {
			return false
		}
	}
	return httptrace.ContextClientTrace(req.Context()) == nil
}

// idempotent reports whether req may be sent twice: net/http's rule for
// retrying on a new connection after the server dropped a kept-alive one
// that had the request. A POST is sent again only if none of it reached
// the server (the write itself failed), or if it carries an idempotency
// key: an LLM call that ran twice is billed twice.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	_, k1 := req.Header["Idempotency-Key"]
	_, k2 := req.Header["X-Idempotency-Key"]
	return k1 || k2
}

func wantsClose(req *http.Request) bool {
	return req.Close || hasToken(req.Header["Connection"], "close")
}

// hostPort is net/http's canonicalAddr for ASCII http URLs, without an
// allocation when the URL has a port.
func hostPort(u *url.URL) string {
	h, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
	} else if len(h)+1+len(port) == len(u.Host) && strings.IndexByte(h, ':') < 0 {
		return u.Host
	}
	return net.JoinHostPort(h, port)
}

var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tokenTable[s[i]] {
			return false
		}
	}
	return len(s) > 0
}

func validMethod(m string) bool { return m == "" || isToken(m) }

// validHeader is httpguts.ValidHeaderFieldName and ValidHeaderFieldValue.
func validHeader(k string, vv []string) bool {
	if !isToken(k) {
		return false
	}
	for _, v := range vv {
		for i := 0; i < len(v); i++ {
			if b := v[i]; (b < ' ' && b != '\t') || b == 0x7f {
				return false
			}
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// hasToken reports whether a comma-separated header value lists tok,
// ignoring case.
func hasToken(vv []string, tok string) bool {
	for _, v := range vv {
		for v != "" {
			var f string
			f, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.Trim(f, " \t"), tok) {
				return true
			}
		}
	}
	return false
}
