package h1

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var _ http.RoundTripper = (*Transport)(nil)

func TestReuse(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"ok":true}`)
	})
	tr := newTransport(t)
	for i := range 10 {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/x", strings.NewReader(`{"i":`+strconv.Itoa(i)+`}`))
		if _, body := do(t, tr, req); body != `{"ok":true}` {
			t.Fatalf("body = %q", body)
		}
	}
	if n := srv.opened.Load(); n != 1 {
		t.Errorf("10 sequential calls opened %d connections; want 1", n)
	}
}

func TestServerClosesIdle(t *testing.T) {
	for _, noProbe := range []bool{false, true} {
		t.Run(fmt.Sprintf("noProbe=%v", noProbe), func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				w.Write(b)
			})
			tr := newTransport(t)
			tr.noProbe = noProbe
			for i := range 3 {
				// A POST with a replayable body, as providers get. Without
				// the liveness check only its idempotency key lets it be
				// sent again on a new connection.
				req, _ := http.NewRequest("POST", srv.URL, strings.NewReader("call "+strconv.Itoa(i)))
				if noProbe {
					req.Header.Set("Idempotency-Key", strconv.Itoa(i))
				}
				if _, body := do(t, tr, req); body != "call "+strconv.Itoa(i) {
					t.Fatalf("call %d: body = %q", i, body)
				}
				srv.CloseClientConnections()
				waitFor(t, "the server to close", func() bool { return srv.closed.Load() == int64(i+1) })
			}
			if n := srv.opened.Load(); n != 3 {
				t.Errorf("opened %d connections; want 3", n)
			}
		})
	}
}

// TestRetry covers the stale keep-alive race: connection 0 answers its
// first request, then reads the second and misbehaves; later connections
// answer normally.
func TestRetry(t *testing.T) {
	nonReplayable := func(s string) io.Reader { return opaqueReader{strings.NewReader(s)} }
	for _, tt := range []struct {
		name      string
		method    string
		body      func(string) io.Reader // nil: no body
		second    string                 // what connection 0 writes to request 2 before closing
		key       bool                   // an Idempotency-Key header
		wantErr   bool
		wantConns int64
	}{
		{"GET", "GET", nil, "", false, false, 2},
		// The server had the POST: it may have run it (net/http's rule too).
		{"POSTWithGetBody", "POST", func(s string) io.Reader { return strings.NewReader(s) }, "", false, true, 1},
		{"POSTWithIdempotencyKey", "POST", func(s string) io.Reader { return strings.NewReader(s) }, "", true, false, 2},
		{"POSTNotReplayable", "POST", nonReplayable, "", true, true, 1},
		{"AfterResponseBytes", "GET", nil, "HTTP/1.1 200 OK\r\nContent-Le", false, true, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got [2][]string // bodies of requests seen per connection
			var mu sync.Mutex
			srv := newRawServer(t, func(i int, c net.Conn) {
				br := bufio.NewReader(c)
				for n := 0; ; n++ {
					_, b, err := readRequest(br)
					if err != nil {
						return
					}
					mu.Lock()
					got[min(i, 1)] = append(got[min(i, 1)], string(b))
					mu.Unlock()
					if i == 0 && n == 1 {
						io.WriteString(c, tt.second)
						return
					}
					io.WriteString(c, okResponse("ok"))
				}
			})
			tr := newTransport(t)
			tr.noProbe = true
			var errs []error
			for _, s := range []string{"one", "two"} {
				var body io.Reader
				if tt.body != nil {
					body = tt.body(s)
				}
				req, _ := http.NewRequest(tt.method, srv.URL, body)
				if tt.key {
					req.Header.Set("Idempotency-Key", "k-"+s)
				}
				resp, err := tr.RoundTrip(req)
				if err == nil {
					io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				errs = append(errs, err)
			}
			if errs[0] != nil {
				t.Fatalf("first call: %v", errs[0])
			}
			if (errs[1] != nil) != tt.wantErr {
				t.Errorf("second call error = %v; want error: %v", errs[1], tt.wantErr)
			}
			if n := srv.conns.Load(); n != tt.wantConns {
				t.Errorf("%d connections; want %d", n, tt.wantConns)
			}
			if tt.body != nil && !tt.wantErr {
				mu.Lock()
				defer mu.Unlock()
				if fmt.Sprint(got) != "[[one two] [two]]" {
					t.Errorf("server saw bodies %q; want the second replayed on a new connection", got)
				}
			}
		})
	}
}

// TestRetryAfterWriteError: the server reset the idle connection, and the
// request is written into it anyway (as when the reset arrives just after
// the liveness check): the write fails and the request goes to a new
// connection.
func TestRetryAfterWriteError(t *testing.T) {
	srv := newRawServer(t, func(i int, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, okResponse("ok"))
			if i == 0 {
				c.(*net.TCPConn).SetLinger(0) // close with a reset
				return
			}
		}
	})
	tr := newTransport(t)
	tr.noProbe = true
	get(t, tr, srv.URL)
	waitFor(t, "the reset to arrive", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, l := range tr.idle {
			return !l[0].alive()
		}
		return false
	})
	req := mustRequest(t, "POST", srv.URL, strings.NewReader("replayed"))
	if _, body := do(t, tr, req); body != "ok" {
		t.Errorf("body = %q", body)
	}
	if n := srv.conns.Load(); n != 2 {
		t.Errorf("%d connections; want 2", n)
	}
}

// TestNoRetryOnFreshConn: a new connection that fails is the server's
// answer, not a stale connection; net/http does not retry it either.
func TestNoRetryOnFreshConn(t *testing.T) {
	srv := newRawServer(t, func(i int, c net.Conn) {
		readRequest(bufio.NewReader(c))
	})
	req, _ := http.NewRequest("GET", srv.URL, nil)
	_, err := newTransport(t).RoundTrip(req)
	if errClass(err) != "eof" {
		t.Errorf("err = %v; want EOF", err)
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d connections; want 1", n)
	}
}

func TestConnectionCloseResponse(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	tr := newTransport(t)
	for range 2 {
		if resp, _ := get(t, tr, srv.URL); !resp.Close {
			t.Error("resp.Close = false")
		}
	}
	if n := srv.opened.Load(); n != 2 {
		t.Errorf("opened %d connections; want 2", n)
	}
}

func TestRequestClose(t *testing.T) {
	var sawClose atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Close {
			sawClose.Add(1)
		}
	})
	tr := newTransport(t)
	for range 2 {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Close = true
		do(t, tr, req)
	}
	if n := srv.opened.Load(); n != 2 || sawClose.Load() != 2 {
		t.Errorf("opened %d connections, %d requests had Connection: close; want 2 and 2", n, sawClose.Load())
	}
}

func TestEarlyClose(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 64<<10))
	})
	tr := newTransport(t)
	resp, err := tr.RoundTrip(mustRequest(t, "GET", srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if n, err := resp.Body.Read(buf); n != 0 || err == nil {
		t.Errorf("Read after Close = %d, %v; want an error", n, err)
	}
	get(t, tr, srv.URL)
	if n := srv.opened.Load(); n != 2 {
		t.Errorf("opened %d connections; want 2 (a body closed early is not reusable)", n)
	}
	waitFor(t, "the early-closed connection to close", func() bool { return srv.closed.Load() >= 1 })
}

func TestReadAfterEOF(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "abc") })
	tr := newTransport(t)
	resp, err := tr.RoundTrip(mustRequest(t, "GET", srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(resp.Body); string(b) != "abc" || err != nil {
		t.Fatalf("body = %q, %v", b, err)
	}
	// The connection is back in the pool; the body must not touch it.
	get(t, tr, srv.URL)
	if n, err := resp.Body.Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Errorf("Read after EOF = %d, %v; want 0, EOF", n, err)
	}
	resp.Body.Close()
	resp.Body.Close()
	get(t, tr, srv.URL)
	if n := srv.opened.Load(); n != 1 {
		t.Errorf("opened %d connections; want 1", n)
	}
}

func TestNoBodyResponses(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		case "/empty":
			w.Header().Set("Content-Length", "0")
		default:
			w.Header().Set("Content-Length", "1234")
			if r.Method != "HEAD" {
				w.Write(make([]byte, 1234))
			}
		}
	})
	tr := newTransport(t)
	for _, tt := range []struct {
		method, path string
		status       int
		length       int64
	}{
		{"HEAD", "/", 200, 1234},
		{"GET", "/204", 204, 0},
		{"GET", "/304", 304, 0},
		{"GET", "/empty", 200, 0},
	} {
		// The body is neither read nor closed: the connection must be
		// free anyway.
		resp, err := tr.RoundTrip(mustRequest(t, tt.method, srv.URL+tt.path, nil))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tt.status || resp.ContentLength != tt.length || resp.Body != http.NoBody {
			t.Errorf("%s %s = %d, length %d, body %T; want %d, %d, http.NoBody",
				tt.method, tt.path, resp.StatusCode, resp.ContentLength, resp.Body, tt.status, tt.length)
		}
	}
	if n := srv.opened.Load(); n != 1 {
		t.Errorf("opened %d connections; want 1", n)
	}
}

func TestLargeBodies(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cl":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
		case "/chunked":
			for b := big; len(b) > 0; b = b[100000:] {
				w.Write(b[:min(len(b), 100000)])
				w.(http.Flusher).Flush()
				if len(b) < 100000 {
					break
				}
			}
		case "/echo":
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x %v %d", n, h.Sum(nil), r.TransferEncoding, r.ContentLength)
		}
	})
	tr := newTransport(t)
	for _, path := range []string{"/cl", "/chunked"} {
		resp, body := get(t, tr, srv.URL+path)
		if body != string(big) {
			t.Errorf("%s: got %d bytes, want the 1 MiB sent", path, len(body))
		}
		if path == "/chunked" && fmt.Sprint(resp.TransferEncoding) != "[chunked]" {
			t.Errorf("/chunked: TransferEncoding = %v", resp.TransferEncoding)
		}
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(big))
	for _, tt := range []struct {
		name   string
		body   io.Reader
		length int64
		want   string
	}{
		{"known", bytes.NewReader(big), int64(len(big)), fmt.Sprintf("%d %s [] %d", len(big), sum, len(big))},
		{"unknown", opaqueReader{bytes.NewReader(big)}, 0, fmt.Sprintf("%d %s [chunked] -1", len(big), sum)},
		{"knownNotInMemory", opaqueReader{bytes.NewReader(big)}, int64(len(big)), fmt.Sprintf("%d %s [] %d", len(big), sum, len(big))},
	} {
		req := mustRequest(t, "POST", srv.URL+"/echo", tt.body)
		req.ContentLength = tt.length
		if _, got := do(t, tr, req); got != tt.want {
			t.Errorf("%s request body: server saw %q; want %q", tt.name, got, tt.want)
		}
	}
	if n := srv.opened.Load(); n != 1 {
		t.Errorf("opened %d connections; want 1", n)
	}
}

func TestRequestBodyError(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	errBody := errors.New("body broke")
	body := &closeRecorder{Reader: io.MultiReader(strings.NewReader("part"), errReader{errBody})}
	req := mustRequest(t, "POST", srv.URL, nil)
	req.Body = body
	_, err := newTransport(t).RoundTrip(req)
	if !errors.Is(err, errBody) {
		t.Errorf("err = %v; want the body's error", err)
	}
	if !body.closed.Load() {
		t.Error("request body not closed")
	}
}

func TestNoAcceptEncoding(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, "hello")
	zw.Close()
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Accept-Encoding", fmt.Sprint(r.Header["Accept-Encoding"]))
		if r.Header.Get("Accept-Encoding") == "gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz.Bytes())
		}
	})
	tr := newTransport(t)
	if resp, _ := get(t, tr, srv.URL); resp.Header.Get("X-Accept-Encoding") != "[]" {
		t.Errorf("server saw Accept-Encoding %s; want none", resp.Header.Get("X-Accept-Encoding"))
	}
	req := mustRequest(t, "GET", srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, body := do(t, tr, req)
	if body != gz.String() || resp.Header.Get("Content-Encoding") != "gzip" || resp.Uncompressed {
		t.Errorf("gzip response was not passed through as is: %q", body)
	}
}

// recorder is a fake Fallback: the boundary between this transport and
// the one it delegates to.
type recorder struct {
	mu        sync.Mutex
	urls      []string
	closeIdle int
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.urls = append(r.urls, req.URL.String())
	r.mu.Unlock()
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{StatusCode: 299, Body: http.NoBody, Request: req}, nil
}

func (r *recorder) CloseIdleConnections() { r.mu.Lock(); r.closeIdle++; r.mu.Unlock() }

func TestFallback(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	rec := &recorder{}
	proxy, _ := url.Parse("http://proxy.example:3128")
	tr := &Transport{
		Fallback: rec,
		Proxy: func(req *http.Request) (*url.URL, error) {
			switch req.URL.Query().Get("proxy") {
			case "yes":
				return proxy, nil
			case "error":
				return nil, errors.New("bad proxy config")
			}
			return nil, nil
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	traced := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{})
	for _, tt := range []struct {
		name   string
		modify func(*http.Request)
	}{
		{"https", func(r *http.Request) { r.URL.Scheme = "https" }},
		{"otherScheme", func(r *http.Request) { r.URL.Scheme = "ftp" }},
		{"proxied", func(r *http.Request) { r.URL.RawQuery = "proxy=yes" }},
		{"upgrade", func(r *http.Request) { r.Header.Set("Connection", "Upgrade"); r.Header.Set("Upgrade", "websocket") }},
		{"connectionUpgradeOnly", func(r *http.Request) { r.Header.Set("Connection", "keep-alive, upgrade") }},
		{"expect100", func(r *http.Request) { r.Header.Set("Expect", "100-continue") }},
		{"connect", func(r *http.Request) { r.Method = "CONNECT" }},
		{"noHost", func(r *http.Request) { r.URL.Host = "" }},
		{"nilHeader", func(r *http.Request) { r.Header = nil }},
		{"invalidHeaderName", func(r *http.Request) { r.Header["Bad Name"] = []string{"x"} }},
		{"invalidHeaderValue", func(r *http.Request) { r.Header["X"] = []string{"a\r\nb"} }},
		{"invalidTrailer", func(r *http.Request) { r.Trailer = http.Header{"X": {"a\nb"}} }},
		{"invalidMethod", func(r *http.Request) { r.Method = "GE T" }},
		{"idnaHost", func(r *http.Request) { r.URL.Host = "bücher.example" }},
		{"httptrace", func(r *http.Request) { *r = *r.WithContext(traced) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := mustRequest(t, "POST", srv.URL+"/p", strings.NewReader("body"))
			tt.modify(req)
			want := req.URL.String()
			resp, err := tr.RoundTrip(req)
			if err != nil || resp.StatusCode != 299 {
				t.Fatalf("RoundTrip = %v, %v; want the fallback's 299", resp, err)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if got := rec.urls[len(rec.urls)-1]; got != want {
				t.Errorf("fallback got %s; want %s", got, want)
			}
		})
	}
	t.Run("proxyError", func(t *testing.T) {
		body := &closeRecorder{Reader: strings.NewReader("x")}
		req := mustRequest(t, "POST", srv.URL+"/p?proxy=error", body)
		if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "bad proxy config") {
			t.Errorf("err = %v; want the Proxy error", err)
		}
		if !body.closed.Load() {
			t.Error("request body not closed")
		}
	})
	rec.mu.Lock()
	n := len(rec.urls)
	rec.mu.Unlock()
	if _, body := get(t, tr, srv.URL+"/direct"); body != "" {
		t.Errorf("body = %q", body)
	}
	if rec.mu.Lock(); len(rec.urls) != n {
		t.Errorf("plain http request went to the fallback")
	}
	rec.mu.Unlock()
	tr.CloseIdleConnections()
	if rec.mu.Lock(); rec.closeIdle != 1 {
		t.Errorf("fallback's CloseIdleConnections called %d times; want 1", rec.closeIdle)
	}
	rec.mu.Unlock()
}

// TestStreaming: each event must be readable before the server writes the
// next one.
func TestStreaming(t *testing.T) {
	acks := make(chan struct{})
	const events = 5
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range events {
			fmt.Fprintf(w, "data: {\"i\":%d}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-acks:
			case <-r.Context().Done():
				return
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := newTransport(t).RoundTrip(mustRequest(t, "GET", srv.URL, nil).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4096)
	for i := range events {
		want := fmt.Sprintf("data: {\"i\":%d}\n\n", i)
		var got []byte
		for len(got) < len(want) {
			n, err := resp.Body.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("event %d: read %q, then %v", i, got, err)
			}
		}
		if string(got) != want {
			t.Fatalf("event %d = %q; want %q", i, got, want)
		}
		acks <- struct{}{}
	}
	if rest, err := io.ReadAll(resp.Body); len(rest) != 0 || err != nil {
		t.Errorf("after the events: %q, %v", rest, err)
	}
}

func TestCancelWaitingForHeaders(t *testing.T) {
	got := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(got)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-got; cancel() }()
	_, err := newTransport(t).RoundTrip(mustRequest(t, "GET", srv.URL, nil).WithContext(ctx))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v; want context.Canceled", err)
	}
	waitFor(t, "the canceled connection to close", func() bool { return srv.closed.Load() == 1 })
}

// TestLegacyCancel: http.Client sets the deprecated Request.Cancel when
// Client.Timeout is set, so it must work.
func TestLegacyCancel(t *testing.T) {
	got := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(got)
		<-r.Context().Done()
	})
	cancel := make(chan struct{})
	req := mustRequest(t, "GET", srv.URL, nil)
	req.Cancel = cancel
	go func() { <-got; close(cancel) }()
	_, err := newTransport(t).RoundTrip(req)
	if err == nil || err.Error() != "net/http: request canceled" {
		t.Errorf("err = %v; want net/http's request canceled", err)
	}
}

func TestCancelWhileDialing(t *testing.T) {
	dialing := make(chan struct{})
	tr := newTransport(t)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		close(dialing)
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("gave up")}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-dialing; cancel() }()
	body := &closeRecorder{Reader: strings.NewReader("x")}
	_, err := tr.RoundTrip(mustRequest(t, "POST", "http://upstream.invalid/", body).WithContext(ctx))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v; want context.Canceled", err)
	}
	if !body.closed.Load() {
		t.Error("request body not closed")
	}
}

// TestCancelWhileWritingBody: the request body blocks; canceling must
// unblock RoundTrip (net/http closes the body, and so do we).
func TestCancelWhileWritingBody(t *testing.T) {
	started := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		io.Copy(io.Discard, r.Body)
	})
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := newTransport(t).RoundTrip(mustRequest(t, "POST", srv.URL, pr).WithContext(ctx))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v; want context.Canceled", err)
	}
	if _, err := pw.Write([]byte("x")); err != io.ErrClosedPipe {
		t.Errorf("writing to the request body after cancel = %v; want io.ErrClosedPipe", err)
	}
}

// TestDeadlineMidBody: the deadline passes while the body is read. The
// timeout grows until the headers arrive in time on a busy machine.
func TestDeadlineMidBody(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	tr := newTransport(t)
	for timeout := 100 * time.Millisecond; ; timeout *= 4 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		resp, err := tr.RoundTrip(mustRequest(t, "GET", srv.URL, nil).WithContext(ctx))
		if err != nil {
			cancel()
			if errors.Is(err, context.DeadlineExceeded) && timeout < 10*time.Second {
				continue
			}
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		cancel()
		if string(b) != "data: first\n\n" && timeout < 10*time.Second {
			continue
		}
		var ne net.Error
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("body error = %v; want context.DeadlineExceeded, a net.Error timeout", err)
		}
		if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Read after the error = %v; want it again", err)
		}
		resp.Body.Close()
		break
	}
}

func TestCancelMidBody(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	tr := newTransport(t)
	resp, err := tr.RoundTrip(mustRequest(t, "GET", srv.URL, nil).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if n, err := resp.Body.Read(buf); err != nil || string(buf[:n]) != "data: first\n\n" {
		t.Fatalf("first read = %q, %v", buf[:n], err)
	}
	cancel()
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v; want context.Canceled", err)
	}
	resp.Body.Close()
	waitFor(t, "the canceled connection to close", func() bool { return srv.closed.Load() == 1 })
}

func TestClientTimeoutMidBody(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	tr := newTransport(t)
	for timeout := 100 * time.Millisecond; ; timeout *= 4 {
		c := &http.Client{Transport: tr, Timeout: timeout}
		resp, err := c.Get(srv.URL)
		if err != nil {
			if timeout < 10*time.Second {
				continue
			}
			t.Fatal(err)
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("body error = %v; want a net.Error timeout", err)
		}
		break
	}
}

// TestCloseWhileReading: closing the body from another goroutine unblocks
// a Read, as with net/http.
func TestCloseWhileReading(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "x")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	resp, err := newTransport(t).RoundTrip(mustRequest(t, "GET", srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resp.Body.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error)
	go func() {
		_, err := io.ReadAll(resp.Body)
		errc <- err
	}()
	resp.Body.Close()
	if err := <-errc; err == nil {
		t.Error("Read returned no error after Close")
	}
}

func TestConcurrent(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Query().Has("stream") {
			for _, c := range b {
				w.Write([]byte{c})
				w.(http.Flusher).Flush()
			}
			return
		}
		w.Write(b)
	})
	tr := newTransport(t)
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := range 20 {
				want := fmt.Sprintf("g%d-i%d", g, i)
				u := srv.URL
				if i%3 == 0 {
					u += "?stream"
				}
				req := mustRequest(t, "POST", u, strings.NewReader(want))
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Error(err)
					return
				}
				if i%5 == 4 { // abandon some bodies early
					resp.Body.Read(make([]byte, 1))
					resp.Body.Close()
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != want {
					t.Errorf("%s: got %q, %v", want, b, err)
					return
				}
			}
		})
	}
	wg.Wait()
	checkIdleCount(t, tr)
	t.Logf("%d connections for %d calls", srv.opened.Load(), 64*20)
}

func TestIdleTimeout(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	tr := newTransport(t)
	tr.IdleConnTimeout = time.Nanosecond // expired whenever taken
	for range 3 {
		get(t, tr, srv.URL)
	}
	if n := srv.opened.Load(); n != 3 {
		t.Errorf("opened %d connections; want 3", n)
	}
	// The sweeper closes what nobody takes.
	waitFor(t, "the idle connections to be closed", func() bool { return srv.closed.Load() == 3 })
	checkIdleCount(t, tr)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.idle) != 0 {
		t.Errorf("idle pool still holds %v", tr.idle)
	}
}

func TestMaxIdleConnsPerHost(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	tr := newTransport(t)
	tr.MaxIdleConnsPerHost = 1
	useAtOnce(t, tr, srv.URL, 3)
	waitFor(t, "the surplus connections to be closed", func() bool { return srv.closed.Load() == 2 })
	get(t, tr, srv.URL)
	if n := srv.opened.Load(); n != 3 {
		t.Errorf("opened %d connections; want 3", n)
	}

	tr2 := newTransport(t)
	tr2.MaxIdleConnsPerHost = -1
	for range 2 {
		get(t, tr2, srv.URL)
	}
	if n := srv.opened.Load(); n != 5 {
		t.Errorf("opened %d connections; want 5 (none kept with MaxIdleConnsPerHost < 0)", n)
	}
}

// TestMaxIdleConns: a connection put in a full pool closes the one idle
// the longest, whichever its host.
func TestMaxIdleConns(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }
	srvs := []*server{newServer(t, ok), newServer(t, ok), newServer(t, ok)}
	tr := newTransport(t)
	tr.MaxIdleConns = 2
	for _, srv := range srvs {
		get(t, tr, srv.URL)
		checkIdleCount(t, tr)
	}
	waitFor(t, "the first host's connection to be closed", func() bool { return srvs[0].closed.Load() == 1 })
	get(t, tr, srvs[1].URL)
	get(t, tr, srvs[2].URL)
	get(t, tr, srvs[0].URL) // dials again, and closes the second host's
	waitFor(t, "the second host's connection to be closed", func() bool { return srvs[1].closed.Load() == 1 })
	for i, want := range []int64{2, 1, 1} {
		if n := srvs[i].opened.Load(); n != want {
			t.Errorf("host %d: opened %d connections; want %d", i, n, want)
		}
	}
	if n := srvs[2].closed.Load(); n != 0 {
		t.Errorf("host 2: %d connections closed; want 0", n)
	}
	checkIdleCount(t, tr)
	if tr.nidle != 2 {
		t.Errorf("%d idle connections; want 2", tr.nidle)
	}

	// Two connections to one host fill the pool alone; the next to another
	// host closes the older of the two.
	tr.CloseIdleConnections()
	checkIdleCount(t, tr)
	useAtOnce(t, tr, srvs[0].URL, 2)
	get(t, tr, srvs[1].URL)
	checkIdleCount(t, tr)
	tr.mu.Lock()
	n0, n1 := len(tr.idle[srvs[0].Listener.Addr().String()]), len(tr.idle[srvs[1].Listener.Addr().String()])
	tr.mu.Unlock()
	if n0 != 1 || n1 != 1 {
		t.Errorf("idle per host: %d and %d; want 1 and 1", n0, n1)
	}
}

// useAtOnce makes n requests to url, each on a connection of its own (all
// are in use together), then reads and closes their answers, so that n
// connections to url are put back in the pool, the first one first.
func useAtOnce(t *testing.T, tr *Transport, url string, n int) {
	t.Helper()
	var resps []*http.Response
	for range n {
		resp, err := tr.RoundTrip(mustRequest(t, "GET", url, nil))
		if err != nil {
			t.Fatal(err)
		}
		resps = append(resps, resp)
	}
	for _, resp := range resps {
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
}

// checkIdleCount fails t unless the pool's count is its connections'.
func checkIdleCount(t *testing.T, tr *Transport) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, l := range tr.idle {
		n += len(l)
	}
	if n != tr.nidle {
		t.Errorf("idle count %d; the pool holds %d", tr.nidle, n)
	}
}

func TestCloseIdleConnections(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	tr := newTransport(t)
	get(t, tr, srv.URL)
	tr.CloseIdleConnections()
	waitFor(t, "the idle connection to be closed", func() bool { return srv.closed.Load() == 1 })

	// A connection in use is left alone, and closed when it becomes idle
	// before the next request (net/http's rule).
	resp, err := tr.RoundTrip(mustRequest(t, "GET", srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	tr.CloseIdleConnections()
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
		t.Fatalf("body = %q", b)
	}
	waitFor(t, "the newly idle connection to be closed", func() bool { return srv.closed.Load() == 2 })
	get(t, tr, srv.URL)
	get(t, tr, srv.URL)
	if n := srv.opened.Load(); n != 3 {
		t.Errorf("opened %d connections; want 3", n)
	}
}

func TestInformational(t *testing.T) {
	srv := newRouteServer(t, map[string]string{
		"/1xx": "HTTP/1.1 100 Continue\r\n\r\n" +
			"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/101":     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"/many1xx": strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", 200) + okResponse("ok"),
	}, "")
	tr := newTransport(t)
	resp, body := get(t, tr, srv.URL+"/1xx")
	if resp.StatusCode != 200 || body != "ok" || resp.Header.Get("Link") != "" {
		t.Errorf("got %d %q, Link %q; want 200 \"ok\" and the 1xx headers dropped", resp.StatusCode, body, resp.Header.Get("Link"))
	}
	if _, err := tr.RoundTrip(mustRequest(t, "GET", srv.URL+"/101", nil)); err == nil {
		t.Error("101 response: no error")
	}
	get(t, tr, srv.URL+"/1xx")
	tr.MaxResponseHeaderBytes = 4096
	if _, err := tr.RoundTrip(mustRequest(t, "GET", srv.URL+"/many1xx", nil)); err == nil || !strings.Contains(err.Error(), "exceeded 4096 bytes") {
		t.Errorf("1xx responses past the header limit: err = %v", err)
	}
	get(t, tr, srv.URL+"/1xx")
	if n := srv.conns.Load(); n != 3 {
		t.Errorf("%d connections; want 3 (none reused after 101 or an error)", n)
	}
}

func TestHeaderLimit(t *testing.T) {
	srv := newRawServer(t, func(i int, c net.Conn) {
		readRequest(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 1<<20)+"\r\nContent-Length: 0\r\n\r\n")
	})
	tr := newTransport(t)
	tr.MaxResponseHeaderBytes = 64 << 10
	_, err := tr.RoundTrip(mustRequest(t, "GET", srv.URL, nil))
	if err == nil || !strings.Contains(err.Error(), "exceeded 65536 bytes") {
		t.Errorf("err = %v; want the header limit", err)
	}
}

func TestMalformedAndUnsolicited(t *testing.T) {
	srv := newRouteServer(t, map[string]string{
		"/garbage":  "garbage\r\n\r\n",
		"/extra":    okResponse("ok") + okResponse("unasked"),
		"/badchunk": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokZZZ",
	}, okResponse("fine"))
	tr := newTransport(t)
	if _, err := tr.RoundTrip(mustRequest(t, "GET", srv.URL+"/garbage", nil)); err == nil {
		t.Error("malformed response: no error")
	}
	get(t, tr, srv.URL+"/extra")
	resp, err := tr.RoundTrip(mustRequest(t, "GET", srv.URL+"/badchunk", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("malformed chunked body: no error")
	}
	resp.Body.Close()
	get(t, tr, srv.URL+"/fine")
	if n := srv.conns.Load(); n != 4 {
		t.Errorf("%d connections; want 4 (none reused after a bad response)", n)
	}
}

// TestEarlyResponse: the server answers 413 without reading a large body
// and closes; net/http's reader returns that answer, and so do we when the
// answer survives the reset.
func TestEarlyResponse(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	})
	big := bytes.Repeat([]byte("x"), 32<<20)
	for _, rt := range []http.RoundTripper{&http.Transport{}, newTransport(t)} {
		resp, err := rt.RoundTrip(mustRequest(t, "POST", srv.URL, bytes.NewReader(big)))
		if err != nil {
			t.Logf("%T: %v", rt, err)
			continue
		}
		resp.Body.Close()
		t.Logf("%T: %d", rt, resp.StatusCode)
		if resp.StatusCode != 413 {
			t.Errorf("%T: status %d; want 413", rt, resp.StatusCode)
		}
	}
}

func mustRequest(t testing.TB, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }
