package loadgen

import (
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestBareProxyStreams holds 300 concurrent streams through BareProxy for
// two seconds: none may break or fail. (Stalls are logged, not checked: on
// a busy machine, or under the race detector, a gap of a second is the
// scheduler's doing.)
func TestBareProxyStreams(t *testing.T) {
	t.Parallel()
	fake := startFake(t, FakeConfig{ChunkDelay: 50 * time.Millisecond}) // 400 ms per stream
	target, _ := url.Parse(fake.URL)
	proxy, err := Start(BareProxy(target))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	res, err := Run(t.Context(), Config{
		URL: proxy.URL + "/v1/chat/completions", Body: streamBody, Stream: true,
		Connections: 300, Duration: 2 * time.Second, // no warm-up: the first streams count even on a starved machine
	})
	if err != nil {
		t.Fatal(err)
	}
	checkSums(t, res)
	t.Logf("%d streams, %.0f/s, p50 %v, p99 %v, %d stalls, max gap %v", res.Requests, res.Achieved, res.Latency.P50, res.Latency.P99, res.Stalls, res.MaxGap)
	if res.OK == 0 || res.Broken != 0 || res.Errors != 0 {
		t.Errorf("ok %d, broken %d, errors %d: %v", res.OK, res.Broken, res.Errors, res.Failures)
	}
	if res.PeakInFlight != 300 || res.Dials != 300 {
		t.Errorf("peak in flight %d, dials %d; want 300 concurrent streams on 300 connections", res.PeakInFlight, res.Dials)
	}
}

// streamingBodyProxy is a proxy with the bug this package must catch: it
// streams the request body to the upstream unbuffered (ContentLength -1)
// while it flushes the response header to the client, before (early) or
// while (!early) the upstream request reads the body. Once a handler has
// written its response header, net/http's HTTP/1 server consumes and
// closes what is left of the request body, so the upstream request fails
// ("http: invalid Read on closed Body") or carries a truncated body, and
// the client gets a 200 stream that is not the upstream's answer.
func streamingBodyProxy(target *url.URL, early bool) http.Handler {
	tr := &http.Transport{MaxIdleConnsPerHost: 1024}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, err := http.NewRequestWithContext(r.Context(), r.Method, target.String()+r.URL.Path, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out.ContentLength = -1
		out.Header = r.Header.Clone()
		type result struct {
			resp *http.Response
			err  error
		}
		done := make(chan result, 1)
		flush := func() {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
		}
		if early {
			flush()
			resp, err := tr.RoundTrip(out)
			done <- result{resp, err}
		} else {
			go func() {
				resp, err := tr.RoundTrip(out)
				done <- result{resp, err}
			}()
			flush()
		}
		res := <-done
		if res.err != nil {
			return // the header is out: all the proxy can do is end the stream
		}
		defer res.resp.Body.Close()
		io.Copy(flushWriter{w}, res.resp.Body)
	})
}

type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	http.NewResponseController(f.w).Flush()
	return n, err
}

// truncatingProxy passes the upstream's first n response bytes and then
// ends the response cleanly (cut false) or drops the connection (cut true).
func truncatingProxy(target *url.URL, n int64, cut bool) http.Handler {
	rp := reverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, n), resp.Body}
		return nil
	}
	if !cut {
		return rp
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp.ServeHTTP(w, r)
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close() // before the final chunk
		}
	})
}

func TestRunDetectsBrokenProxies(t *testing.T) {
	t.Parallel()
	fake := startFake(t, FakeConfig{})
	target, _ := url.Parse(fake.URL)
	tests := []struct {
		name    string
		handler http.Handler
		reason  string // the failure every broken stream must show; "" for any
	}{
		{"request body streamed, header flushed first", streamingBodyProxy(target, true), "no [DONE]"},
		{"request body streamed while header flushed", streamingBodyProxy(target, false), ""},
		{"stream truncated", truncatingProxy(target, 700, false), ""},
		{"stream cut", truncatingProxy(target, 700, true), "stream cut: connection closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			proxy, err := Start(tt.handler)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { proxy.Close() })
			res, err := Run(t.Context(), Config{
				URL: proxy.URL + "/v1/chat/completions", Body: streamBody, Stream: true,
				Connections: 16, Duration: 300 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkSums(t, res)
			t.Logf("%d streams: ok %d, broken %d, errors %d: %v", res.Requests, res.OK, res.Broken, res.Errors, res.Failures)
			if res.Broken == 0 {
				t.Errorf("no broken stream in %d", res.Requests)
			}
			if tt.reason != "" && res.Failures[tt.reason] != res.Broken {
				t.Errorf("failures %v, want %d × %q", res.Failures, res.Broken, tt.reason)
			}
		})
	}
}
