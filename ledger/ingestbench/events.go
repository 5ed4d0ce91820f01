package ingestbench

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"aigw/ledger"
	"aigw/ledger/jetstream"

	"golang.org/x/time/rate"
)

// models are the (provider, model) pairs events name.
var models = [][2]string{
	{"openai", "gpt-4o-2024-08-06"},
	{"anthropic", "claude-sonnet-4-5"},
	{"gemini", "gemini-2.5-pro"},
	{"bedrock", "anthropic.claude-3-haiku-20240307-v1:0"},
}

// generator makes realistic gateway events of a given entry size: requests
// and responses of chat calls, with every number fixed-width so that a
// padding attribute computed once per shape gives the exact size.
type generator struct {
	logs    []string
	pad     []string // by log*16 + shape
	payload []byte
	r       *rand.Rand
	n       uint64
}

func newGenerator(logs []string, size, payloadSize int) (*generator, error) {
	g := &generator{logs: logs, r: rand.New(rand.NewPCG(1, 2))}
	if payloadSize > 0 {
		g.payload = make([]byte, payloadSize)
		for i := range g.payload {
			g.payload[i] = byte('a' + i%26)
		}
	}
	g.pad = make([]string, len(logs)*16)
	for l := range logs {
		for shape := range 16 {
			ev := g.event(l, shape, "")
			if g.payload != nil {
				ev.PayloadSHA256 = strings.Repeat("0", 64)
			}
			e, err := ev.Entry()
			if err != nil {
				return nil, fmt.Errorf("ingestbench: sample event: %w", err)
			}
			if len(e) > size {
				return nil, fmt.Errorf("ingestbench: events are at least %d bytes; event size %d is too small", len(e), size)
			}
			g.pad[l*16+shape] = strings.Repeat("x", size-len(e))
		}
	}
	return g, nil
}

// clone returns a generator for one producer, sharing the paddings.
func (g *generator) clone(seed uint64) *generator {
	c := *g
	c.r = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c.n = seed
	return &c
}

// next returns the next event, and its payload (nil without one).
func (g *generator) next() (*ledger.Event, []byte) {
	g.n++
	l := int(g.n % uint64(len(g.logs)))
	shape := int(g.r.Uint32() % 16)
	return g.event(l, shape, g.pad[l*16+shape]), g.payload
}

func (g *generator) hex(n int) string {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := g.r.Uint64()
		for j := i; j < min(n, i+8); j++ {
			b[j] = byte(v >> (8 * (j - i)))
		}
	}
	return hex.EncodeToString(b)
}

// event builds an event of log l with a shape (bit 3: response, bits 1-2:
// model, bit 0: streaming) as the gateway would.
func (g *generator) event(l, shape int, pad string) *ledger.Event {
	m := models[(shape>>1)&3]
	stream := shape&1 == 1
	num := func(lo int) int { return lo + int(g.r.Uint32()%uint32(9*lo)) } // lo digits, fixed width
	kind := ledger.KindRequest
	if shape&8 != 0 {
		kind = ledger.KindResponse
	}
	ev := jetstream.NewEvent(g.logs[l], kind)
	ev.Actor = ledger.Actor{KeyID: "key_" + g.hex(4), AgentID: fmt.Sprintf("agent-invoice-%02d", g.r.Uint32()%100)}
	ev.TraceID = g.hex(16)
	ev.Policy = "sha256:9f2c7a1e0b6d4c3f"
	if kind == ledger.KindRequest {
		ev.Attrs = map[string]any{
			"provider": m[0], "model": m[1], "route": "chat-default", "stream": stream,
			"max_tokens": 1024, "temperature": "0.2", "messages": num(10),
			"request_sha256": g.hex(32),
			"client":         map[string]any{"ip": "10.20.30.40", "user_agent": "openai-python/1.54.3"},
			"tools":          []any{"search_invoices", "get_vendor"},
		}
	} else {
		p, c := num(100), num(100)
		ev.Attrs = map[string]any{
			"provider": m[0], "model": m[1], "route": "chat-default", "stream": stream,
			"status": 200, "latency_ms": num(100), "ttft_ms": num(100), "finish_reason": "stop",
			"tokens":          map[string]any{"prompt": p, "completion": c, "cached": num(100)},
			"response_sha256": g.hex(32),
			"guardrails": []any{
				map[string]any{"name": "pii", "verdict": "pass", "ms": num(1)},
				map[string]any{"name": "prompt_injection", "verdict": "pass", "score": "0.02", "ms": num(10)},
			},
		}
	}
	ev.Attrs["pad"] = pad
	return ev
}

// worker is one producer: it publishes events until its ctx ends and keeps
// what happened to each.
type worker struct {
	gen       *generator
	prod      *jetstream.Producer
	lim       *rate.Limiter
	stop      *atomic.Bool
	measuring *atomic.Bool
	published *atomic.Uint64
	failed    *atomic.Uint64

	acked     []eventKey      // acknowledged events
	failedIDs []eventKey      // events whose publish failed: possibly stored
	lat       []time.Duration // publish-to-ack of events acknowledged in the window
}

// eventKey is an event id as 16 bytes: the run keeps hundreds of thousands
// of them, and pointer-free keys cost the garbage collector nothing.
type eventKey [16]byte

func keyOf(id string) eventKey {
	var k eventKey
	hex.Decode(k[0:4], []byte(id[0:8]))
	hex.Decode(k[4:6], []byte(id[9:13]))
	hex.Decode(k[6:8], []byte(id[14:18]))
	hex.Decode(k[8:10], []byte(id[19:23]))
	hex.Decode(k[10:16], []byte(id[24:36]))
	return k
}

func (w *worker) fail(id string) {
	w.failedIDs = append(w.failedIDs, keyOf(id))
	if w.measuring.Load() {
		w.failed.Add(1)
	}
}

func (w *worker) ack(id string, d time.Duration) {
	w.acked = append(w.acked, keyOf(id))
	w.published.Add(1)
	if w.measuring.Load() {
		w.lat = append(w.lat, d)
	}
}

// runSync publishes fail-closed: each event waits for its PubAck.
func (w *worker) runSync(ctx context.Context) {
	for !w.stop.Load() && ctx.Err() == nil {
		if w.lim != nil && w.lim.Wait(ctx) != nil {
			return
		}
		ev, payload := w.gen.next()
		t0 := time.Now()
		if _, err := w.prod.Append(ctx, ev, payload); err != nil {
			w.fail(ev.ID)
			continue
		}
		w.ack(ev.ID, time.Since(t0))
	}
}

// runAsync publishes without waiting; a second goroutine awaits the futures
// in order, at most window of them outstanding.
func (w *worker) runAsync(ctx context.Context, window int) {
	type pending struct {
		f  *jetstream.Future
		id string
		t0 time.Time
	}
	ch := make(chan pending, window)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range ch {
			if _, err := p.f.Wait(context.Background()); err != nil { // bounded by the producer's Timeout
				w.fail(p.id)
				continue
			}
			w.ack(p.id, time.Since(p.t0))
		}
	}()
	var refused []eventKey
	for !w.stop.Load() && ctx.Err() == nil {
		if w.lim != nil && w.lim.Wait(ctx) != nil {
			break
		}
		ev, payload := w.gen.next()
		t0 := time.Now()
		f, err := w.prod.PublishAsync(ev, payload)
		if err != nil {
			refused = append(refused, keyOf(ev.ID))
			if w.measuring.Load() {
				w.failed.Add(1)
			}
			continue
		}
		ch <- pending{f, ev.ID, t0}
	}
	close(ch)
	<-done
	w.failedIDs = append(w.failedIDs, refused...)
}
