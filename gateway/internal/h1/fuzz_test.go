package h1

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzResponse answers a GET with the fuzzed bytes, then closes. This
// transport must neither panic nor hang, and where net/http's transport
// returns a response, this one must return the same status, body bytes and
// body error class.
func FuzzResponse(f *testing.F) {
	for _, a := range rawAnswers {
		f.Add([]byte(a))
	}
	for _, a := range []string{
		okResponse(`{"id":"x"}`),
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\ndata: \r\n3\r\nx\n\n\r\n0\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nextra",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=1\r\na\r\n0\r\nT: 1\r\n\r\n",
	} {
		f.Add([]byte(a))
	}
	var answer atomic.Pointer[[]byte]
	srv := newRawServer(f, func(i int, c net.Conn) {
		if _, _, err := readRequest(bufio.NewReader(c)); err != nil {
			return
		}
		c.Write(*answer.Load())
		lingerClose(c)
	})
	std := &http.Transport{DisableCompression: true, MaxResponseHeaderBytes: 8 << 10}
	ours := &Transport{MaxResponseHeaderBytes: 8 << 10}
	f.Cleanup(std.CloseIdleConnections)
	f.Fuzz(func(t *testing.T, data []byte) {
		answer.Store(&data)
		defer std.CloseIdleConnections()
		defer ours.CloseIdleConnections()
		type result struct {
			err, bodyErr error
			status       int
			body         string
		}
		var res [2]result
		for i, rt := range []http.RoundTripper{std, ours} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/", nil)
			resp, err := rt.RoundTrip(req)
			res[i].err = err
			if err == nil {
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				res[i].status, res[i].body, res[i].bodyErr = resp.StatusCode, string(b), err
			}
			if ctx.Err() != nil {
				t.Fatalf("%T hung on %q", rt, data)
			}
		}
		s, o := res[0], res[1]
		if s.err == nil && s.status == http.StatusSwitchingProtocols {
			// net/http hands over the connection; this transport does not
			// do upgrades and fails the request.
			if o.err == nil {
				t.Errorf("101 answer: h1 returned status %d, no error", o.status)
			}
			return
		}
		if (s.err == nil) != (o.err == nil) || s.status != o.status || s.body != o.body ||
			(s.bodyErr == nil) != (o.bodyErr == nil) {
			t.Errorf("answer %q\nnet/http: %d %q, err %v, body err %v\nh1:       %d %q, err %v, body err %v",
				data, s.status, s.body, s.err, s.bodyErr, o.status, o.body, o.err, o.bodyErr)
		}
	})
}
