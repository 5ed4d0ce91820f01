package loadgen

import (
	"net/url"
	"testing"
)

// benchRoundTrip measures one request and its whole response over a
// keep-alive loopback connection, with the generator's client. Time and
// allocations are those of the client and the server together.
func benchRoundTrip(b *testing.B, u string, body []byte, stream bool) {
	cfg := Config{URL: u, Body: body, Stream: stream, Connections: 1}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	r, err := newRunner(cfg)
	if err != nil {
		b.Fatal(err)
	}
	w := newWorker(r, 0)
	if err := w.dial(b.Context()); err != nil {
		b.Fatal(err)
	}
	defer w.closeConn()
	b.ReportAllocs()
	for b.Loop() {
		if o := w.roundTrip(b.Context()); o.kind != kindOK {
			b.Fatalf("%s: %s", u, o.reason)
		}
	}
}

var benchCases = []struct {
	name   string
	path   string
	body   []byte
	stream bool
}{
	{"chat", "/v1/chat/completions", chatBody, false},
	{"stream", "/v1/chat/completions", []byte(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello."}]}`), true},
	{"stream_usage", "/v1/chat/completions", streamBody, true},
	{"embeddings", "/v1/embeddings", []byte(`{"model":"text-embedding-3-small","input":"Say hello."}`), false},
	{"models", "/v1/models", nil, false},
}

func BenchmarkFakeUpstream(b *testing.B) {
	fake := startFake(b, FakeConfig{})
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) { benchRoundTrip(b, fake.URL+bc.path, bc.body, bc.stream) })
	}
}

// BenchmarkBareProxy is the same through BareProxy: the difference is
// what a bare reverse proxy costs on this machine.
func BenchmarkBareProxy(b *testing.B) {
	fake := startFake(b, FakeConfig{})
	target, _ := url.Parse(fake.URL)
	proxy, err := Start(BareProxy(target))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { proxy.Close() })
	for _, bc := range benchCases[:3] {
		b.Run(bc.name, func(b *testing.B) { benchRoundTrip(b, proxy.URL+bc.path, bc.body, bc.stream) })
	}
}
