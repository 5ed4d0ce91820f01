package a2a

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"aigw/gateway"
	"aigw/gateway/ledgerrec"
	"aigw/ledger"
	"aigw/ledger/jetstream"
	"aigw/ledger/ledgertest"

	njs "github.com/nats-io/nats.go/jetstream"
)

// entryRecorder acknowledges events at once after encoding them as the
// JetStream producer does: what the gateway itself costs, without the
// ledger's round trip.
type entryRecorder struct{}

func (entryRecorder) Publish(evs []*ledger.Event, pls [][]byte) (gateway.Pending, error) {
	for i, ev := range evs {
		cp := *ev
		if i < len(pls) && pls[i] != nil {
			cp.PayloadSHA256, _ = ledger.Commit(pls[i], nil)
		}
		if _, err := cp.Entry(); err != nil {
			return nil, err
		}
	}
	return acked{}, nil
}

// fastAgent answers message/send at once with a completed task.
func fastAgent(tb testing.TB) *httptest.Server {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad request", 400)
			return
		}
		task := `{"kind":"task","id":"t-` + strconv.FormatInt(n.Add(1), 10) + `","contextId":"ctx","status":{"state":"completed"},` +
			`"artifacts":[{"artifactId":"a","parts":[{"kind":"text","text":"done"}]}]}`
		w.Header().Set("Content-Type", "application/json")
		w.Write(appendResponse(nil, req.ID, json.RawMessage(task), nil))
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// hopBody is a message/send of a short text.
func hopBody(i int) []byte {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": i, "method": MethodSend,
		"params": textParams("Summarize the quarterly report in three bullet points.", ledger.NewEventID(), nil)})
	return b
}

func postHop(tb testing.TB, c *http.Client, url string, body []byte, gw bool) {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if gw {
		req.Header.Set("Authorization", "Bearer key-a")
		req.Header.Set(HeaderAgent, "a")
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"completed"`)) {
		tb.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
}

func jetStreamRecorder(tb testing.TB) gateway.Recorder {
	_, nc := ledgertest.JetStream(tb)
	js, _ := njs.New(nc)
	scfg := jetstream.StreamConfig{Name: "AUDIT", SubjectPrefix: "aigw.audit", Partitions: 1}
	if _, err := jetstream.EnsureStream(context.Background(), js, scfg); err != nil {
		tb.Fatal(err)
	}
	prod, err := jetstream.NewProducer(jetstream.ProducerConfig{Conn: nc, Stream: scfg})
	if err != nil {
		tb.Fatal(err)
	}
	return ledgerrec.JetStream{Producer: prod}
}

// TestA2AOverhead measures what an A2A hop through the gateway adds to a
// message/send straight to the agent (a local agent answering at once):
// calls alternate between the two, so the machine's noise hits both
// alike; it prints the p50 and p99 of each and their difference, for the
// task store and ledger variants. Run with AIGW_OVERHEAD=1
// (AIGW_OVERHEAD_ONLY=<variant> for one).
func TestA2AOverhead(t *testing.T) {
	if os.Getenv("AIGW_OVERHEAD") == "" {
		t.Skip("set AIGW_OVERHEAD=1 to measure")
	}
	if os.Getenv("GOGC") == "" { // as `aigw serve` runs
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("AIGW_OVERHEAD_CALLS")); err == nil && v > 0 {
		n = v
	}
	rc := newRedisClient(t)
	for _, v := range []struct {
		name  string
		store func() TaskStore
		rec   func() gateway.Recorder
	}{
		{"memory", func() TaskStore { return NewMemoryStore(0) }, func() gateway.Recorder { return entryRecorder{} }},
		{"redis", func() TaskStore { return NewRedisStore(rc, testPrefix(t, rc), 0) }, func() gateway.Recorder { return entryRecorder{} }},
		{"memory+jetstream", func() TaskStore { return NewMemoryStore(0) }, func() gateway.Recorder { return jetStreamRecorder(t) }},
		{"redis+jetstream", func() TaskStore { return NewRedisStore(rc, testPrefix(t, rc), 0) }, func() gateway.Recorder { return jetStreamRecorder(t) }},
	} {
		if only := os.Getenv("AIGW_OVERHEAD_ONLY"); only != "" && only != v.name {
			continue
		}
		agent := fastAgent(t)
		card := &AgentCard{Name: "fast", Capabilities: AgentCapabilities{Streaming: true}}
		g := newGateway(t, Config{Recorder: v.rec(), Store: v.store(), Logger: slogDiscard(),
			Agents: []Agent{{Name: "fast", Tenant: "acme", URL: agent.URL, Card: card, Callers: []string{"a"}}}})
		// A bare reverse proxy: what any HTTP hop costs on this machine.
		au, _ := url.Parse(agent.URL)
		rp := httputil.NewSingleHostReverseProxy(au)
		rp.Transport = &http.Transport{MaxIdleConnsPerHost: 16}
		bare := httptest.NewServer(rp)
		t.Cleanup(bare.Close)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		const warm = 300
		var direct, proxied, via []time.Duration
		for i := range n + warm {
			for j, u := range []string{agent.URL, bare.URL, g.srv.URL + "/a2a/fast"} {
				body := hopBody(i)
				start := time.Now()
				postHop(t, client, u, body, j == 2)
				d := time.Since(start)
				if i < warm {
					continue
				}
				switch j {
				case 0:
					direct = append(direct, d)
				case 1:
					proxied = append(proxied, d)
				default:
					via = append(via, d)
				}
			}
		}
		slices.Sort(direct)
		slices.Sort(proxied)
		slices.Sort(via)
		q := func(s []time.Duration, f float64) time.Duration {
			return s[int(f*float64(len(s)-1))].Round(time.Microsecond)
		}
		fmt.Printf("a2a overhead %-17s calls=%d  direct p50=%v p99=%v | bare proxy added p50=%v p99=%v | gateway p50=%v p99=%v added p50=%v p99=%v\n",
			v.name, n, q(direct, .5), q(direct, .99), q(proxied, .5)-q(direct, .5), q(proxied, .99)-q(direct, .99),
			q(via, .5), q(via, .99), q(via, .5)-q(direct, .5), q(via, .99)-q(direct, .99))
	}
}

// BenchmarkHop is one message/send, one at a time, straight to a local
// agent and through the gateway (in-memory store, events encoded and
// acknowledged at once).
func BenchmarkHop(b *testing.B) {
	agent := fastAgent(b)
	card := &AgentCard{Name: "fast"}
	g := newGateway(b, Config{Recorder: entryRecorder{}, Logger: slogDiscard(),
		Agents: []Agent{{Name: "fast", Tenant: "acme", URL: agent.URL, Card: card, Callers: []string{"a"}}}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for _, c := range []struct {
		name string
		url  string
		gw   bool
	}{{"direct", agent.URL, false}, {"gateway", g.srv.URL + "/a2a/fast", true}} {
		b.Run(c.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				postHop(b, client, c.url, hopBody(i), c.gw)
			}
		})
	}
}

// BenchmarkHandler is the gateway's handling of a hop without the
// client's HTTP round trip (the agent is still called over HTTP).
func BenchmarkHandler(b *testing.B) {
	agent := fastAgent(b)
	g := newGateway(b, Config{Recorder: entryRecorder{}, Logger: slogDiscard(),
		Agents: []Agent{{Name: "fast", Tenant: "acme", URL: agent.URL, Card: &AgentCard{Name: "fast"}, Callers: []string{"a"}}}})
	i := 0
	for b.Loop() {
		i++
		req := httptest.NewRequest(http.MethodPost, "/a2a/fast", bytes.NewReader(hopBody(i)))
		req.Header.Set("Authorization", "Bearer key-a")
		req.Header.Set(HeaderAgent, "a")
		w := httptest.NewRecorder()
		g.p.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Body.String())
		}
	}
}

func BenchmarkToken(b *testing.B) {
	s, _ := NewSigner("aigw", testKey)
	cl := testHop("acme", "", Budget{NanoUSD: 1e9, Tokens: 1000}).Claims
	cl.Chain = []string{"a", "b", "c"}
	cl.Expires = time.Now().Add(time.Hour).Unix()
	tok, _ := s.Sign(&cl)
	b.Run("Sign", func(b *testing.B) {
		for b.Loop() {
			s.Sign(&cl)
		}
	})
	b.Run("VerifySignature", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("VerifyCached", func(b *testing.B) {
		now := time.Now()
		for b.Loop() {
			if _, err := s.Verify(tok, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkNarrow(b *testing.B) {
	bd := bounds{scopes: []string{"tool:*", "model:gpt-4o", "skill:search"}, capScope: []string{"tool:search", "model:*"},
		budget: Budget{NanoUSD: 1e9, Tokens: 1000}, expires: time.Now().Add(time.Hour).Unix(), maxDepth: 4}
	req := &DelegationRequest{Scopes: []string{"tool:search"}, Budget: &RequestBudget{NanoUSD: int64p(1e8)}}
	now := time.Now()
	for b.Loop() {
		if _, _, _, _, rerr := narrow(bd, req, 2, now); rerr != nil {
			b.Fatal(rerr)
		}
	}
}

func BenchmarkTranslate(b *testing.B) {
	task := json.RawMessage(`{"kind":"task","id":"b-task-1","contextId":"ctx","status":{"state":"working","message":{"kind":"message","role":"agent","messageId":"m","taskId":"b-task-1","parts":[{"kind":"text","text":"on it"}]}},"artifacts":[{"artifactId":"a","parts":[{"kind":"text","text":"done"}]}]}`)
	for b.Loop() {
		if _, err := translate(task, "b-task-1", "01a21dc5-29df-7517-988f-a212094be2b6", true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStore(b *testing.B) {
	rc := newRedisClient(b)
	for _, c := range []struct {
		name string
		s    TaskStore
	}{{"memory", NewMemoryStore(0)}, {"redis", NewRedisStore(rc, testPrefix(b, rc), 0)}} {
		b.Run(c.name+"/BeginUpdate", func(b *testing.B) {
			for b.Loop() {
				h := testHop("acme", "", UnlimitedBudget)
				if _, err := c.s.Begin(bg, h, "k"+h.ID()); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.s.Update(bg, "acme", h.ID(), Update{State: StateCompleted, UpstreamTaskID: "u", Result: json.RawMessage(`{"kind":"task"}`), Settle: "k" + h.ID()}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
