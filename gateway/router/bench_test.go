package router_test

import (
	"context"
	"testing"

	"aigw/gateway"
	"aigw/gateway/mock"
	"aigw/gateway/router"
)

// BenchmarkChat measures the router's overhead: a chat straight to the
// provider against the same chat through a two-target route, over HTTP to
// the OpenAI fake and in process to the built-in mock provider (where the
// router's own cost is not hidden by the network).
func BenchmarkChat(b *testing.B) {
	u := newUpstream(b, "a")
	m := gateway.Target{Name: "mock/m", Provider: "mock", Kind: "mock", Model: "echo", Upstream: mock.New("mock")}
	second := newUpstream(b, "b").target
	for _, bc := range []struct {
		name string
		t    gateway.Target
	}{
		{"upstream=openai-fake", u.target},
		{"upstream=mock", m},
	} {
		up := bc.t
		b.Run(bc.name+"/direct", func(b *testing.B) {
			req := chatReq(up.Model)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := up.Upstream.Chat(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/router", func(b *testing.B) {
			r, err := router.New(router.Config{Routes: []router.Route{{Name: "m", Targets: []router.RouteTarget{{Target: up}, {Target: second}}}}})
			if err != nil {
				b.Fatal(err)
			}
			req := chatReq("m")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Chat(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
