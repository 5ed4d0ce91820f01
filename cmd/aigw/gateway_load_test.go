package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/loadgen"
)

// TestGatewayConcurrentStreams holds 300 streams open at once through the
// gateway for a few seconds: not one broken, truncated or stalled stream,
// and every one of them complete in the ledger.
func TestGatewayConcurrentStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	fake, err := loadgen.Start(loadgen.NewFakeUpstream(loadgen.FakeConfig{Chunks: 8, ChunkDelay: 20 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	g := startGW(t, fmt.Sprintf(`
gateway: {admin_key: %s}
providers: [{name: fake, type: openai-compatible, base_url: %s/v1}]
routes: [{name: bench, targets: [{provider: fake, model: gpt-4o-mini}]}]
`, testAdminKey, fake.URL))
	key := g.newKey(t, "load")
	res, err := loadgen.Run(context.Background(), loadgen.Config{
		URL:         g.url() + "/v1/chat/completions",
		Header:      http.Header{"Authorization": {"Bearer " + key}},
		Body:        []byte(`{"model":"bench","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Tell me a story."}]}`),
		Stream:      true,
		Connections: 300,
		Duration:    3 * time.Second,
		Timeout:     20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d streams, %d ok, %d broken, %d errors, %d stalls, max gap %v, latency p50 %v p99 %v", res.Requests, res.OK, res.Broken, res.Errors, res.Stalls, res.MaxGap, res.Latency.P50, res.Latency.P99)
	if res.OK == 0 || res.Broken != 0 || res.Errors != 0 {
		t.Fatalf("%d broken and %d failed streams of %d (%v)", res.Broken, res.Errors, res.Requests, res.Failures)
	}
	// Every stream answered is in the ledger: request, route, attempt,
	// response, one trace each, nothing twice; and the log verifies. The
	// sequencer may still be catching up (it rests while the process is
	// busy, and other tests share it): the log is read again until every
	// call in it is complete, or for 30 s. A pause in its growth says
	// nothing: an event twice is a failure at once, an event missing one
	// once the 30 s are over.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		cp := waitSize(t, g.serveProc, "load", 4)
		body, _ := ledger.SplitNote(cp)
		c, _ := ledger.ParseCheckpointBody(body)
		kinds := map[string]map[string]int{}
		for _, ev := range g.entries(t, "load", c.Size) {
			if kinds[ev.TraceID] == nil {
				kinds[ev.TraceID] = map[string]int{}
			}
			kinds[ev.TraceID][ev.Kind]++
		}
		incomplete := ""
		for id, k := range kinds {
			for kind, n := range k {
				if n > 1 || (kind != ledger.KindRequest && kind != ledger.KindRoute && kind != ledger.KindAttempt && kind != ledger.KindResponse) {
					t.Fatalf("trace %s: %v", id, k)
				}
			}
			if len(k) != 4 {
				incomplete = fmt.Sprintf("trace %s: %v", id, k)
			}
		}
		if incomplete == "" && len(kinds) >= res.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log at %d after 30 s: %d calls in it, %d streams completed; %s", c.Size, len(kinds), res.OK, incomplete)
		}
	}
	if code, out, errs := run(t, "", "verify", "-server", g.url(), "-log", "load", "-vkey", g.vkey); code != 0 {
		t.Fatalf("verify: %s %s", out, errs)
	}
}

// TestGatewayClientGoneMidStream: an agent that hangs up mid-stream leaves
// a complete call in the ledger: request, route, the attempt and an error.
func TestGatewayClientGoneMidStream(t *testing.T) {
	fake, err := loadgen.Start(loadgen.NewFakeUpstream(loadgen.FakeConfig{Chunks: 20, ChunkDelay: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	g := startGW(t, fmt.Sprintf(`
gateway: {admin_key: %s}
providers: [{name: fake, type: openai-compatible, base_url: %s/v1}]
routes: [{name: slow, targets: [{provider: fake, model: gpt-4o-mini}]}]
`, testAdminKey, fake.URL))
	key := g.newKey(t, "acme")
	req, _ := http.NewRequest("POST", g.url()+"/v1/chat/completions", strings.NewReader(`{"model":"slow","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil { // the first event
		t.Fatal(err)
	}
	resp.Body.Close() // hang up mid-stream
	g.expect(t, "acme", resp, traceWant{attempts: 1, terminal: ledger.KindError, routed: true})
	evs := g.checkLedger(t, "acme")
	if last := evs[len(evs)-1]; last.Kind != ledger.KindError || !strings.Contains(string(last.RawAttrs), "client_closed_request") {
		t.Fatalf("last event %s %s", last.Kind, last.RawAttrs)
	}
}
