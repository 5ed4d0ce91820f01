package mcp_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	njs "github.com/nats-io/nats.go/jetstream"

	"aigw/gateway"
	"aigw/gateway/ledgerrec"
	"aigw/ledger"
	"aigw/ledger/jetstream"
	"aigw/ledger/ledgertest"

	gwmcp "aigw/gateway/mcp"
)

// jetStreamRecorder records into an embedded JetStream, as `aigw serve`
// does by default (fail-closed: every answer waits for its PubAck).
func jetStreamRecorder(t testing.TB) gateway.Recorder {
	t.Helper()
	_, nc := ledgertest.JetStream(t)
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	scfg := jetstream.StreamConfig{Name: "AUDIT", SubjectPrefix: "aigw.audit", Partitions: 1}
	if _, err := jetstream.EnsureStream(context.Background(), js, scfg); err != nil {
		t.Fatal(err)
	}
	prod, err := jetstream.NewProducer(jetstream.ProducerConfig{Conn: nc, Stream: scfg})
	if err != nil {
		t.Fatal(err)
	}
	return ledgerrec.JetStream{Producer: prod}
}

// ackRecorder does what the ledger's producer does before it publishes
// (commit the payload, build and validate the entry), and acknowledges at
// once.
type ackRecorder struct{}

func (ackRecorder) Publish(evs []*ledger.Event, pls [][]byte) (gateway.Pending, error) {
	for i, ev := range evs {
		e := *ev
		if i < len(pls) && pls[i] != nil {
			e.PayloadSHA256, _ = ledger.Commit(pls[i], nil)
		}
		if _, err := e.Entry(); err != nil {
			return nil, err
		}
	}
	return pending{}, nil
}

// overheadSetup is an upstream MCP server over streamable HTTP, a
// session straight to it, and a session to it through the gateway (the
// production policy shape: allow with argument constraints, a rate limit,
// injection inspection on), or, with a nil rec, through a bare reverse
// proxy (httputil.ReverseProxy: what any HTTP hop costs here).
// AIGW_OVERHEAD_UPSTREAM=process runs the upstream in a process of its
// own.
func overheadSetup(t testing.TB, rec gateway.Recorder) (direct, viaGW *sdk.ClientSession) {
	t.Helper()
	var url string
	if os.Getenv("AIGW_OVERHEAD_UPSTREAM") == "process" {
		url = upstreamProcess(t)
	} else {
		url = serveUpstream(t, newUpstreamServer("u")).URL
	}
	if rec == nil {
		target, _ := neturl.Parse(url)
		px := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
		t.Cleanup(px.Close)
		return mustConnect(t, url, ""), mustConnect(t, px.URL, "")
	}
	h := newHarness(t, func(c *gwmcp.Config) {
		c.Logger = nil
		c.Recorder = rec
		c.Upstreams = []gwmcp.Upstream{{Name: "up", Tenants: []string{"tenant-a"}, URL: url, Tools: policy(),
			RateLimit: gwmcp.RateLimit{RPM: 100_000_000}}}
	})
	waitConnected(t, h.gw)
	return mustConnect(t, url, ""), mustConnect(t, h.url, "key-a")
}

var overheadArgs = map[string]any{"text": "Summarize the quarterly report in three bullet points."}

// TestMCPOverhead measures what the gateway adds to an MCP tool call:
// calls alternate between a session straight to a local upstream MCP
// server (streamable HTTP) and a session through the gateway to the same
// server, so the machine's noise hits both alike; it prints the p50 and
// p99 of each and their difference, recording into memory (entries
// encoded, acknowledged at once) and into an embedded JetStream
// (fail-closed). Run with AIGW_OVERHEAD=1.
func TestMCPOverhead(t *testing.T) {
	if os.Getenv("AIGW_OVERHEAD") == "" {
		t.Skip("set AIGW_OVERHEAD=1 to measure")
	}
	// As `aigw serve` runs (GOGC=400 unless set).
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	for _, c := range []struct {
		name string
		rec  func(t testing.TB) gateway.Recorder
	}{
		{"bare-proxy", func(testing.TB) gateway.Recorder { return nil }},
		{"memory-ledger", func(testing.TB) gateway.Recorder { return ackRecorder{} }},
		{"jetstream-ledger", jetStreamRecorder},
	} {
		if only := os.Getenv("AIGW_OVERHEAD_ONLY"); only != "" && only != c.name {
			continue
		}
		direct, viaGW := overheadSetup(t, c.rec(t))
		const n, warm = 2000, 300
		var a, b []time.Duration
		ctx := context.Background()
		for i := range n + warm {
			for j, cs := range []*sdk.ClientSession{direct, viaGW} {
				name := "echo"
				if j == 1 && c.name != "bare-proxy" {
					name = "up__echo"
				}
				start := time.Now()
				res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: overheadArgs})
				d := time.Since(start)
				if err != nil || res.IsError {
					t.Fatalf("%s: %v %v", name, res, err)
				}
				if i < warm {
					continue
				}
				if j == 0 {
					a = append(a, d)
				} else {
					b = append(b, d)
				}
			}
		}
		slices.Sort(a)
		slices.Sort(b)
		q := func(s []time.Duration, f float64) time.Duration { return s[int(f*float64(len(s)-1))] }
		line := fmt.Sprintf("mcp overhead %-16s calls=%d  direct p50=%v p99=%v  via gateway p50=%v p99=%v  added p50=%v p99=%v",
			c.name, n, q(a, .5), q(a, .99), q(b, .5), q(b, .99), q(b, .5)-q(a, .5), q(b, .99)-q(a, .99))
		fmt.Println(line)
		t.Log(line)
	}
}

// BenchmarkToolCall is one MCP tool call (SDK client, streamable HTTP, a
// local upstream) made directly and through the gateway (policy, rate
// limit, injection inspection, tool_call event encoded and acknowledged
// at once).
func BenchmarkToolCall(b *testing.B) {
	direct, viaGW := overheadSetup(b, ackRecorder{})
	for _, c := range []struct {
		name, tool string
		cs         *sdk.ClientSession
	}{{"direct", "echo", direct}, {"gateway", "up__echo", viaGW}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.cs.CallTool(ctx, &sdk.CallToolParams{Name: c.tool, Arguments: overheadArgs}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
