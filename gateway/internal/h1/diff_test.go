package h1

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// outcome is what a caller sees of one call: what must not depend on the
// transport.
type outcome struct {
	Err      string // class of the RoundTrip error
	Status   int
	Proto    string
	Header   http.Header // without Date
	Length   int64
	TE       []string
	Close    bool
	Body     string
	BodyErr  string // class of the body's error
	Trailer  http.Header
	FirstErr string // class of the first error, RoundTrip's or the body's
}

func call(rt http.RoundTripper, req *http.Request) outcome {
	var o outcome
	resp, err := rt.RoundTrip(req)
	o.Err = errClass(err)
	o.FirstErr = o.Err
	if err != nil {
		return o
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	o.Status, o.Proto, o.Length, o.TE, o.Close = resp.StatusCode, resp.Proto, resp.ContentLength, resp.TransferEncoding, resp.Close
	o.Header = resp.Header.Clone()
	o.Header.Del("Date")
	o.Body, o.BodyErr, o.FirstErr = string(b), errClass(err), errClass(err)
	o.Trailer = resp.Trailer
	return o
}

// stdTransport is the reference: net/http's transport as the gateway
// configures it, without the transparent gzip this package does not do.
func stdTransport(t testing.TB) *http.Transport {
	tr := &http.Transport{DisableCompression: true, MaxResponseHeaderBytes: 8 << 10}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func h1Transport(t testing.TB) *Transport {
	tr := newTransport(t)
	tr.MaxResponseHeaderBytes = 8 << 10
	return tr
}

// TestDifferential sends the same requests to the same server behaviours
// through net/http's transport and this one, and compares what the caller
// sees.
func TestDifferential(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, `{"compressed":true}`)
	zw.Close()
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/json":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"x","choices":[]}`)
		case "/sse":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 4 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
			}
			io.WriteString(w, "data: [DONE]\n\n")
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.WriteHeader(304)
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		case "/trailer":
			w.Header().Set("Trailer", "X-Usage")
			io.WriteString(w, "body")
			w.(http.Flusher).Flush()
			w.Header().Set("X-Usage", "17")
		case "/redirect":
			http.Redirect(w, r, "/json", http.StatusFound)
		case "/500":
			http.Error(w, `{"error":"overloaded"}`, 500)
		case "/gzip":
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz.Bytes())
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s host=%q ua=%q cl=%d te=%v close=%v ct=%q body=%q",
				r.Method, r.URL.RequestURI(), r.Host, r.Header["User-Agent"], r.ContentLength,
				r.TransferEncoding, r.Close, r.Header.Get("Content-Type"), b)
		case "/hang":
			<-r.Context().Done()
		case "/hangbody":
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	})
	raw := newRawServer(t, func(i int, c net.Conn) {
		req, _, err := readRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.WriteString(c, rawAnswers[strings.TrimPrefix(req.URL.Path, "/")])
		lingerClose(c)
	})

	type tc struct {
		name    string
		req     func() *http.Request
		timeout time.Duration
		onlyErr bool // the outcome depends on timing: compare the error class only
	}
	reqTo := func(method, url string, body func() io.Reader, f ...func(*http.Request)) func() *http.Request {
		return func() *http.Request {
			var b io.Reader
			if body != nil {
				b = body()
			}
			r, _ := http.NewRequest(method, url, b)
			for _, f := range f {
				f(r)
			}
			return r
		}
	}
	cases := []tc{}
	for _, p := range []string{"/json", "/sse", "/204", "/304", "/close", "/trailer", "/redirect", "/500", "/nothing"} {
		cases = append(cases, tc{name: "GET" + p, req: reqTo("GET", srv.URL+p, nil)})
	}
	cases = append(cases,
		tc{name: "HEAD/json", req: reqTo("HEAD", srv.URL+"/json", nil)},
		tc{name: "gzipAsked", req: reqTo("GET", srv.URL+"/gzip", nil, func(r *http.Request) { r.Header.Set("Accept-Encoding", "gzip") })},
		tc{name: "POSTbytes", req: reqTo("POST", srv.URL+"/echo?q=1", func() io.Reader { return strings.NewReader(`{"model":"m"}`) }, func(r *http.Request) { r.Header.Set("Content-Type", "application/json") })},
		tc{name: "POSTunknownLength", req: reqTo("POST", srv.URL+"/echo", func() io.Reader { return opaqueReader{strings.NewReader("streamed body")} })},
		tc{name: "hostOverride", req: reqTo("GET", srv.URL+"/echo", nil, func(r *http.Request) { r.Host = "api.example.com" })},
		tc{name: "userAgent", req: reqTo("GET", srv.URL+"/echo", nil, func(r *http.Request) { r.Header.Set("User-Agent", "aigw/1") })},
		tc{name: "noUserAgent", req: reqTo("GET", srv.URL+"/echo", nil, func(r *http.Request) { r.Header.Set("User-Agent", "") })},
		tc{name: "requestClose", req: reqTo("GET", srv.URL+"/echo", nil, func(r *http.Request) { r.Close = true })},
		tc{name: "deadlineHeaders", req: reqTo("GET", srv.URL+"/hang", nil), timeout: 50 * time.Millisecond},
		tc{name: "deadlineBody", req: reqTo("GET", srv.URL+"/hangbody", nil), timeout: 300 * time.Millisecond, onlyErr: true},
	)
	for name := range rawAnswers {
		cases = append(cases, tc{name: "raw/" + name, req: reqTo("GET", raw.URL+"/"+name, nil)})
	}

	std, ours := stdTransport(t), h1Transport(t)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			var got [2]outcome
			for i, rt := range []http.RoundTripper{std, ours} {
				req := tt.req()
				if tt.timeout > 0 {
					ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
					defer cancel()
					req = req.WithContext(ctx)
				}
				got[i] = call(rt, req)
			}
			if tt.onlyErr {
				got[0] = outcome{FirstErr: got[0].FirstErr}
				got[1] = outcome{FirstErr: got[1].FirstErr}
			}
			if s, o := fmt.Sprintf("%+v", got[0]), fmt.Sprintf("%+v", got[1]); s != o {
				t.Errorf("net/http: %s\nh1:       %s", s, o)
			}
		})
	}
}

// rawAnswers are written by the raw server in answer to GET /<name>.
var rawAnswers = map[string]string{
	"http10":        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited body",
	"noLength":      "HTTP/1.1 200 OK\r\n\r\nuntil EOF",
	"informational": "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + okResponse("final"),
	"truncatedCL":   "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
	"truncatedTE":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
	"badChunk":      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc",
	"garbage":       "garbage\r\n\r\n",
	"empty":         "",
	"bigHeader":     "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 9000) + "\r\nContent-Length: 0\r\n\r\n",
	"clAndTE":       "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"twoCL":         "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
	"connClose":     "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
	"noReason":      "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok",
	"bareLF":        "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
	"status99":      "HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok",
	"chunkTrailer":  "HTTP/1.1 200 OK\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: v\r\n\r\n",
	"notModifiedCL": "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
}

// TestWireDifferential: the bytes of the request on the wire are net/http's
// (whose transport was asked not to add Accept-Encoding).
func TestWireDifferential(t *testing.T) {
	var mu sync.Mutex
	var last []byte
	raw := newRawServer(t, func(i int, c net.Conn) {
		var buf bytes.Buffer
		br := bufio.NewReader(io.TeeReader(c, &buf))
		for {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			mu.Lock()
			last = bytes.Clone(buf.Bytes())
			mu.Unlock()
			buf.Reset()
			io.WriteString(c, okResponse("ok"))
		}
	})
	for _, tt := range []struct {
		name string
		req  func() *http.Request
	}{
		{"GET", func() *http.Request { r, _ := http.NewRequest("GET", raw.URL+"/p?q=1&r=%20", nil); return r }},
		{"POSTbytes", func() *http.Request {
			r, _ := http.NewRequest("POST", raw.URL+"/v1/chat/completions", bytes.NewReader([]byte(`{"model":"m"}`)))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer k")
			return r
		}},
		{"POSTunknownLength", func() *http.Request {
			r, _ := http.NewRequest("POST", raw.URL+"/", opaqueReader{strings.NewReader(strings.Repeat("z", 70000))})
			return r
		}},
		{"trailer", func() *http.Request {
			r, _ := http.NewRequest("POST", raw.URL+"/", opaqueReader{strings.NewReader("abc")})
			r.Trailer = http.Header{"X-Sum": {"1"}}
			return r
		}},
		{"hostOverride", func() *http.Request {
			r, _ := http.NewRequest("GET", raw.URL+"/", nil)
			r.Host = "api.example.com:8443"
			return r
		}},
		{"invalidHost", func() *http.Request {
			r, _ := http.NewRequest("GET", raw.URL+"/", nil)
			r.Host = "bad host/x"
			return r
		}},
		{"close", func() *http.Request { r, _ := http.NewRequest("GET", raw.URL+"/", nil); r.Close = true; return r }},
		{"noUserAgent", func() *http.Request {
			r, _ := http.NewRequest("DELETE", raw.URL+"/", nil)
			r.Header["User-Agent"] = nil
			return r
		}},
		{"emptyMethod", func() *http.Request { r, _ := http.NewRequest("GET", raw.URL+"/", nil); r.Method = ""; return r }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var wire [2]string
			for i, rt := range []http.RoundTripper{stdTransport(t), h1Transport(t)} {
				resp, err := rt.RoundTrip(tt.req())
				if err != nil {
					t.Fatalf("%T: %v", rt, err)
				}
				io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				wire[i] = string(last)
				mu.Unlock()
			}
			if wire[0] != wire[1] {
				t.Errorf("net/http wrote\n%q\nh1 wrote\n%q", wire[0], wire[1])
			}
		})
	}
}
