package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"aigw/gateway"
	"aigw/gateway/httpapi"
	"aigw/gateway/ledgerrec"
	"aigw/gateway/openai"
	"aigw/gateway/router"
	"aigw/ledger/jetstream"
	"aigw/ledger/ledgertest"
	"aigw/loadgen"

	njs "github.com/nats-io/nats.go/jetstream"
)

// newBenchGateway runs the API against a fake upstream that answers at
// once, recording into a real (embedded) JetStream, fail-closed.
func newBenchGateway(b *testing.B) (gw, proxy, upstream string) {
	fake, err := loadgen.Start(loadgen.NewFakeUpstream(loadgen.FakeConfig{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fake.Close() })
	_, nc := ledgertest.JetStream(b)
	js, _ := njs.New(nc)
	scfg := jetstream.StreamConfig{Name: "AUDIT", SubjectPrefix: "aigw.audit", Partitions: 1}
	if _, err := jetstream.EnsureStream(context.Background(), js, scfg); err != nil {
		b.Fatal(err)
	}
	prod, err := jetstream.NewProducer(jetstream.ProducerConfig{Conn: nc, Stream: scfg})
	if err != nil {
		b.Fatal(err)
	}
	up, _ := openai.New(openai.Config{Name: "fake", BaseURL: fake.URL + "/v1"})
	rt, err := router.New(router.Config{Routes: []router.Route{{Name: "bench", Targets: []router.RouteTarget{{Target: gateway.Target{Name: "fake/m", Provider: "fake", Model: "m", Upstream: up}}}}}})
	if err != nil {
		b.Fatal(err)
	}
	pipe, _ := gateway.NewPipeline(gateway.PipelineConfig{Router: rt, Recorder: ledgerrec.JetStream{Producer: prod}})
	h, err := httpapi.New(httpapi.Config{Pipeline: pipe, Authenticate: func(ctx context.Context, secret string) (gateway.Caller, error) {
		return gateway.Caller{Tenant: "bench", KeyID: "key_1"}, nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	pu, _ := url.Parse(fake.URL)
	px := httptest.NewServer(loadgen.BareProxy(pu))
	b.Cleanup(px.Close)
	return srv.URL, px.URL, fake.URL
}

func post(b *testing.B, c *http.Client, url string, body []byte) {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer x")
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// BenchmarkChat compares one chat completion, one at a time, straight to
// the fake upstream, through a bare reverse proxy (the cost of a hop), and
// through the gateway (router, provider, the call's four ledger events
// acknowledged by JetStream): gateway − proxy is what aigw adds to a hop.
func BenchmarkChat(b *testing.B) {
	gw, px, up := newBenchGateway(b)
	body := []byte(`{"model":"bench","messages":[{"role":"user","content":"Hello, how are you today?"}]}`)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Run("straight", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			post(b, c, up+"/v1/chat/completions", body)
		}
	})
	b.Run("proxy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			post(b, c, px+"/v1/chat/completions", body)
		}
	})
	b.Run("gateway", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			post(b, c, gw+"/v1/chat/completions", body)
		}
	})
	sbody := []byte(`{"model":"bench","stream":true,"messages":[{"role":"user","content":"Hello, how are you today?"}]}`)
	b.Run("stream-straight", func(b *testing.B) {
		for b.Loop() {
			post(b, c, up+"/v1/chat/completions", sbody)
		}
	})
	b.Run("stream-proxy", func(b *testing.B) {
		for b.Loop() {
			post(b, c, px+"/v1/chat/completions", sbody)
		}
	})
	b.Run("stream-gateway", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			post(b, c, gw+"/v1/chat/completions", sbody)
		}
	})
}
