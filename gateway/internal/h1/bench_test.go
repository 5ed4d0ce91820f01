//go:build unix

package h1

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"
)

const benchAnswer = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello there, this is an answer"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":7,"total_tokens":17}}`

var benchRequest = []byte(`{"model":"m","messages":[{"role":"user","content":"hi there, how are you today? tell me something"}]}`)

// cpuTime is the process's user+system CPU time: client and server share
// the process, and wall time on 2 shared cores says little about cost.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchTransports(b *testing.B, run func(b *testing.B, rt http.RoundTripper)) {
	b.Run("std", func(b *testing.B) {
		tr := &http.Transport{MaxIdleConnsPerHost: 256}
		defer tr.CloseIdleConnections()
		run(b, tr)
	})
	b.Run("h1", func(b *testing.B) {
		tr := &Transport{}
		defer tr.CloseIdleConnections()
		run(b, tr)
	})
	b.Run("h1-noprobe", func(b *testing.B) {
		tr := &Transport{noProbe: true}
		defer tr.CloseIdleConnections()
		run(b, tr)
	})
}

func parallelCalls(b *testing.B, rt http.RoundTripper, url string) {
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	c0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		// A context that can end, as the gateway's requests have: it
		// costs this transport a context.AfterFunc per call.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		buf := make([]byte, 4096)
		for pb.Next() {
			req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(benchRequest))
			req.Header.Set("Content-Type", "application/json")
			resp, err := rt.RoundTrip(req)
			if err != nil {
				b.Error(err)
				return
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					if err != io.EOF {
						b.Error(err)
					}
					break
				}
			}
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkRoundTrip: a chat completion answered with ~300 bytes of JSON.
func BenchmarkRoundTrip(b *testing.B) {
	srv := newServer(b, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, benchAnswer)
	})
	benchTransports(b, func(b *testing.B, rt http.RoundTripper) { parallelCalls(b, rt, srv.URL+"/v1/chat/completions") })
}

// BenchmarkStream: a streamed completion of 8 SSE events, each flushed.
func BenchmarkStream(b *testing.B) {
	var events [8][]byte
	for i := range events {
		events[i] = fmt.Appendf(nil, "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"token %d\"}}]}\n\n", i)
	}
	srv := newServer(b, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, e := range events {
			w.Write(e)
			f.Flush()
		}
	})
	benchTransports(b, func(b *testing.B, rt http.RoundTripper) { parallelCalls(b, rt, srv.URL+"/v1/chat/completions") })
}
