package jetstream_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/jetstream"
	"aigw/ledger/ledgertest"
	"aigw/ledger/postgres"
	"aigw/ledger/sequencer"
	"aigw/ledger/signer"
	"aigw/ledger/sqlite"
	"aigw/verify"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/note"
)

const origin = "aigw.test/ledger"

// keys is the checkpoint key of every test: a Sequencer started later (a
// restarted process) must trust the checkpoints an earlier one signed.
var keys = sync.OnceValue(func() *signer.Signer {
	s, _, err := signer.Generate(origin)
	if err != nil {
		panic(err)
	}
	return s
})

func newSQLite(t testing.TB) ledger.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "ledger.db")})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newPostgres(t testing.TB) ledger.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Config{DSN: ledgertest.PostgresDSN(t)})
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var stores = []struct {
	name string
	open func(testing.TB) ledger.Store
}{
	{"SQLite", newSQLite},
	{"Postgres", newPostgres},
}

// testLogger sends logs to t.Logf and, if buf is not nil, to buf too.
func testLogger(t testing.TB, buf *syncBuffer) *slog.Logger {
	if buf == nil {
		return ledgertest.TestLogger(t)
	}
	return slog.New(slog.NewTextHandler(multiWriter{tWriter{t}, buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

type multiWriter []interface{ Write([]byte) (int, error) }

func (m multiWriter) Write(p []byte) (int, error) {
	for _, w := range m {
		w.Write(p)
	}
	return len(p), nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// env is one test's NATS connection, stream and store.
type env struct {
	t      *testing.T
	nc     *nats.Conn
	js     njs.JetStream
	stream jetstream.StreamConfig
	store  ledger.Store
	prod   *jetstream.Producer
}

func newEnv(t *testing.T, nc *nats.Conn, store ledger.Store, stream jetstream.StreamConfig) *env {
	t.Helper()
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jetstream.EnsureStream(t.Context(), js, stream); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	prod, err := jetstream.NewProducer(jetstream.ProducerConfig{Conn: nc, Stream: stream, Logger: testLogger(t, nil)})
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	return &env{t: t, nc: nc, js: js, stream: stream, store: store, prod: prod}
}

// embeddedEnv runs an embedded server for the test.
func embeddedEnv(t *testing.T, store ledger.Store) *env {
	_, nc := ledgertest.JetStream(t)
	return newEnv(t, nc, store, jetstream.StreamConfig{})
}

type seqOpt func(*jetstream.SequencerConfig)

// start starts a sequencer process (its own Sequencer) and stops it when t
// ends; the returned stop does it earlier.
func (e *env) start(store ledger.Store, m *jetstream.Metrics, opts ...seqOpt) (stop func()) {
	e.t.Helper()
	seq, err := sequencer.New(sequencer.Config{Store: store, Signer: keys(), OriginPrefix: origin, Logger: testLogger(e.t, nil)})
	if err != nil {
		e.t.Fatalf("sequencer.New: %v", err)
	}
	cfg := jetstream.SequencerConfig{
		Conn: e.nc, Stream: e.stream, Sequencer: seq, Store: store, Metrics: m,
		MaxWait: 50 * time.Millisecond, LockRetry: 100 * time.Millisecond, Logger: testLogger(e.t, nil),
	}
	for _, o := range opts {
		o(&cfg)
	}
	shutdown, err := jetstream.StartSequencer(e.t.Context(), cfg)
	if err != nil {
		e.t.Fatalf("StartSequencer: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := shutdown(ctx); err != nil {
				e.t.Errorf("sequencer shutdown: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// event returns a realistic gateway event of log.
func event(log string) *ledger.Event {
	var r [20]byte
	rand.Read(r[:])
	ev := jetstream.NewEvent(log, []string{ledger.KindRequest, ledger.KindResponse}[r[0]%2])
	ev.Actor = ledger.Actor{KeyID: "key_" + hex.EncodeToString(r[1:5]), AgentID: "agent-7"}
	ev.TraceID = hex.EncodeToString(r[4:20])
	ev.Attrs = map[string]any{"model": "gpt-4o", "provider": "openai", "tokens": map[string]any{"prompt": 812, "completion": int(r[2])}, "latency_ms": 120 + int(r[3])}
	return ev
}

// published is what a test published to a log, in order.
type published struct {
	ids      []string
	payloads map[string][]byte
}

// add appends the events of q (published after p's) to p, payloads too, so
// that checkLog checks them all.
func (p *published) add(q *published) {
	p.ids = append(p.ids, q.ids...)
	maps.Copy(p.payloads, q.payloads)
}

// publish publishes n events to each log, fail-closed, interleaving the
// logs; every third event carries a payload.
func (e *env) publish(n int, logs ...string) map[string]*published {
	e.t.Helper()
	out := map[string]*published{}
	for _, log := range logs {
		out[log] = &published{payloads: map[string][]byte{}}
	}
	for i := range n {
		for _, log := range logs {
			ev := event(log)
			var payload []byte
			if i%3 == 0 {
				payload = []byte(fmt.Sprintf(`{"messages":[{"role":"user","content":"question %d"}]}`, i))
			}
			ack, err := e.prod.Append(e.t.Context(), ev, payload)
			if err != nil {
				e.t.Fatalf("Append event %d of %q: %v", i, log, err)
			}
			if ack.Duplicate || (payload != nil) != (ack.PayloadSHA256 != "") {
				e.t.Fatalf("Append event %d of %q = %+v", i, log, ack)
			}
			out[log].ids = append(out[log].ids, ev.ID)
			if payload != nil {
				out[log].payloads[ev.ID] = payload
			}
		}
	}
	return out
}

// waitSize waits until the log has at least n entries.
func waitSize(t *testing.T, s ledger.Store, log string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := s.Head(t.Context(), log)
		if err != nil {
			t.Fatalf("Head(%q): %v", log, err)
		}
		if h.Size >= uint64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %q has %d entries after 30s; want %d", log, h.Size, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkLog checks that the log holds exactly want's events, in want's order,
// with their payloads, and that it verifies (leaves, chain, tiles, signed
// checkpoint) with the verify package.
func checkLog(t *testing.T, s ledger.Store, log string, want *published) {
	t.Helper()
	ctx := t.Context()
	entries, err := s.ReadEntries(ctx, log, 0, len(want.ids)+10)
	if err != nil {
		t.Fatalf("ReadEntries(%q): %v", log, err)
	}
	if len(entries) != len(want.ids) {
		t.Fatalf("log %q has %d entries; want %d", log, len(entries), len(want.ids))
	}
	for i, e := range entries {
		if e.Index != uint64(i) || e.EventID != want.ids[i] {
			t.Fatalf("log %q entry %d is {index %d, event %s}; want {index %d, event %s} (publish order)", log, i, e.Index, e.EventID, i, want.ids[i])
		}
		if p, ok := want.payloads[e.EventID]; ok {
			got, err := s.ReadPayload(ctx, log, e.Index)
			if err != nil || !bytes.Equal(got.Data, p) {
				t.Errorf("ReadPayload(%q, %d) = %q, %v; want %q", log, e.Index, got.Data, err, p)
			}
		}
	}
	if h, err := s.Head(ctx, log); err != nil || h.Size != uint64(len(want.ids)) {
		t.Fatalf("Head(%q) = size %d, %v; want %d", log, h.Size, err, len(want.ids))
	}
	res, err := verify.Log(ctx, verify.StoreSource(s), log, verify.Options{Verifiers: note.VerifierList(keys().Verifier()), Payloads: true})
	if err != nil {
		t.Fatalf("verify.Log(%q): %v", log, err)
	}
	if res.Size != uint64(len(want.ids)) {
		t.Fatalf("verify.Log(%q) verified a tree of %d; want %d", log, res.Size, len(want.ids))
	}
}

func TestSequenceInPublishOrder(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			store := st.open(t)
			e := embeddedEnv(t, store)
			var m jetstream.Metrics
			e.start(store, &m)
			want := e.publish(700, "acme", "globex", "system")
			for log, p := range want {
				waitSize(t, store, log, len(p.ids))
				checkLog(t, store, log, p)
			}
			s := m.Snapshot()
			if got := s.Appended(); got != 2100 {
				t.Errorf("metrics: %d appended; want 2100", got)
			}
			if ps := s.Partitions[0]; !ps.Owned || ps.Errors != 0 || ps.Terminated != 0 || ps.Batches == 0 {
				t.Errorf("metrics of partition 0 = %+v", ps)
			}
			if got := s.Logs["acme"]; got != 700 {
				t.Errorf("metrics: log acme size %d; want 700", got)
			}
		})
	}
}

func TestPartitions(t *testing.T) {
	t.Parallel()
	store := newSQLite(t)
	_, nc := ledgertest.JetStream(t)
	e := newEnv(t, nc, store, jetstream.StreamConfig{Partitions: 4})
	logs := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	var m0, m1, m2 jetstream.Metrics
	e.start(store, &m0, func(c *jetstream.SequencerConfig) { c.Partitions = []int{} }) // a gateway-only replica
	e.start(store, &m1, func(c *jetstream.SequencerConfig) { c.Partitions = []int{0, 1} })
	e.start(store, &m2, func(c *jetstream.SequencerConfig) { c.Partitions = []int{2, 3} })
	want := e.publish(50, logs...)
	for _, log := range logs {
		waitSize(t, store, log, 50)
		checkLog(t, store, log, want[log])
	}
	s0, s1, s2 := m0.Snapshot(), m1.Snapshot(), m2.Snapshot()
	if len(s0.Partitions) != 0 || s0.Appended() != 0 {
		t.Errorf("a sequencer of no partitions took part: %+v", s0.Partitions)
	}
	if s1.Appended()+s2.Appended() != 400 {
		t.Errorf("appended %d + %d; want 400 in all", s1.Appended(), s2.Appended())
	}
	for _, log := range logs {
		p := e.stream.Partition(log)
		s := s1
		if p >= 2 {
			s = s2
		}
		if s.Logs[log] != 50 {
			t.Errorf("log %q (partition %d) was not sequenced by the process owning its partition", log, p)
		}
	}
}

func TestDuplicatePublish(t *testing.T) {
	t.Parallel()
	store := newSQLite(t)
	e := embeddedEnv(t, store)
	var m jetstream.Metrics
	e.start(store, &m)
	ev := event("acme")
	a1, err := e.prod.Append(t.Context(), ev, nil)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := e.prod.Append(t.Context(), ev, nil) // a retry, within the window
	if err != nil {
		t.Fatal(err)
	}
	if a1.Duplicate || !a2.Duplicate || a2.Sequence != a1.Sequence {
		t.Errorf("publishing an event twice: acks %+v then %+v; want the second a duplicate of the first", a1, a2)
	}
	want := e.publish(5, "acme")
	want["acme"].ids = append([]string{ev.ID}, want["acme"].ids...)
	waitSize(t, store, "acme", 6)
	// The batch is acknowledged just after its commit: wait for that too,
	// or deleting the stream below races the acknowledgement (which then
	// fails, the batch is redelivered and counted as duplicates).
	waitFor(t, func() bool { return m.Snapshot().Partitions[0].Appended >= 6 }, "the first batches to be acknowledged")

	// A fresh stream has forgotten the id: the sequencer's lookup finds it.
	s, err := e.js.Stream(t.Context(), jetstream.DefaultStreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(t.Context()); err != nil { // as good as a stream past its duplicate window
		t.Fatal(err)
	}
	if err := e.js.DeleteStream(t.Context(), jetstream.DefaultStreamName); err != nil {
		t.Fatal(err)
	}
	if _, err := jetstream.EnsureStream(t.Context(), e.js, e.stream); err != nil {
		t.Fatal(err)
	}
	if a3, err := e.prod.Append(t.Context(), ev, nil); err != nil || a3.Duplicate {
		t.Fatalf("publishing the event to a fresh stream = %+v, %v; want a new message", a3, err)
	}
	more := e.publish(3, "acme")
	want["acme"].add(more["acme"])
	waitSize(t, store, "acme", 9)
	checkLog(t, store, "acme", want["acme"])
	// The metrics count a batch once it is acknowledged, just after the
	// commit that made the log's size visible: wait for them too.
	waitFor(t, func() bool { s := m.Snapshot().Partitions[0]; return s.Appended >= 9 }, "the metrics to count the appends")
	if s := m.Snapshot().Partitions[0]; s.Duplicates != 1 || s.Appended != 9 {
		t.Errorf("metrics: %d appended, %d duplicates; want 9 and 1", s.Appended, s.Duplicates)
	}
}

// TestCrashBetweenCommitAndAck stops a sequencer after its first commit and
// before the ack, then starts another: the batch is redelivered and skipped.
func TestCrashBetweenCommitAndAck(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			store := st.open(t)
			e := embeddedEnv(t, store)
			want := e.publish(300, "acme") // in the stream before the sequencer starts: one batch of 300
			var crashed sync.Once
			dead := make(chan struct{})
			stop := e.start(store, nil, func(c *jetstream.SequencerConfig) {
				jetstream.SetAfterCommit(c, func(int) error {
					crashed.Do(func() { close(dead) })
					return errors.New("crash")
				})
			})
			<-dead
			stop()
			waitSize(t, store, "acme", 300) // committed before the crash
			more := e.publish(100, "acme")
			want["acme"].add(more["acme"])

			var m jetstream.Metrics
			e.start(store, &m)
			waitSize(t, store, "acme", 400)
			waitFor(t, func() bool { return m.Snapshot().Partitions[0].Duplicates == 300 }, "the redelivered batch to be skipped")
			checkLog(t, store, "acme", want["acme"])
			if s := m.Snapshot().Partitions[0]; s.Appended != 100 || s.Duplicates != 300 {
				t.Errorf("after the restart: %d appended, %d duplicates; want 100 and 300", s.Appended, s.Duplicates)
			}
		})
	}
}

// TestLostDelivery loses messages between the server and the sequencer
// (as a dropped connection loses what was in flight): one in the middle of
// the stream and one while others follow it at once. The consumer counts
// them as delivered, so an acknowledgement of a later message (AckAll)
// would acknowledge them too; instead the gap in the consumer's delivery
// sequence fails the batch, the loop rewinds to the ack floor, and every
// event is in the log once, in publish order.
func TestLostDelivery(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			store := st.open(t)
			e := embeddedEnv(t, store)
			want := e.publish(40, "acme")
			var lost sync.Map // stream sequences lost once
			var m jetstream.Metrics
			e.start(store, &m, func(c *jetstream.SequencerConfig) {
				jetstream.SetLose(c, func(streamSeq, _ uint64) bool {
					if streamSeq != 10 && streamSeq != 55 {
						return false
					}
					_, done := lost.LoadOrStore(streamSeq, true)
					return !done
				})
			})
			waitSize(t, store, "acme", 40)
			more := e.publish(40, "acme") // stream sequences 41 to 80, one at a time
			want["acme"].add(more["acme"])
			waitSize(t, store, "acme", 80)
			checkLog(t, store, "acme", want["acme"])
			for _, seq := range []uint64{10, 55} {
				if _, ok := lost.Load(seq); !ok {
					t.Errorf("stream sequence %d was never delivered", seq)
				}
			}
			if s := m.Snapshot().Partitions[0]; s.Errors < 2 || s.LostDeliveries != 2 || s.Appended != 80 {
				t.Errorf("metrics: %d errors (rewinds), %d lost deliveries, %d appended; want at least 2, 2 and 80", s.Errors, s.LostDeliveries, s.Appended)
			}
		})
	}
}

// TestConnectionCutMidDelivery runs the sequencer's NATS connection through
// a TCP proxy that, once armed, drops the first data the server sends the
// sequencer with a JetStream message in it and cuts the connection, as a
// network fault would: messages the consumer counts as delivered never
// arrive. The client reconnects through the proxy; events published
// afterwards follow. Every event is in the log once, in publish order.
func TestConnectionCutMidDelivery(t *testing.T) {
	t.Parallel()
	store := newSQLite(t)
	srv, nc := ledgertest.JetStream(t)
	e := newEnv(t, nc, store, jetstream.StreamConfig{})
	px := startCutProxy(t, srv.Addr().String())
	seqConn, err := nats.Connect("nats://"+px.addr(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(seqConn.Close)
	want := e.publish(100, "acme") // a backlog: the first fetch is a burst of 100 messages
	px.arm()
	var m jetstream.Metrics
	e.start(store, &m, func(c *jetstream.SequencerConfig) { c.Conn = seqConn })
	waitFor(t, px.fired, "the proxy to cut a delivery")
	for range 5 { // published after the cut, one at a time
		more := e.publish(20, "acme")
		want["acme"].add(more["acme"])
		time.Sleep(20 * time.Millisecond)
	}
	waitSize(t, store, "acme", 200)
	checkLog(t, store, "acme", want["acme"])
	if s := m.Snapshot().Partitions[0]; s.LostDeliveries == 0 || s.Appended != 200 {
		t.Errorf("metrics after the cut: %d lost deliveries (of %d errors), %d appended; want some and 200", s.LostDeliveries, s.Errors, s.Appended)
	}
}

// cutProxy forwards TCP connections to a NATS server; armed, it drops the
// first chunk from the server that holds a JetStream message (its reply
// subject) and closes both sides.
type cutProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	cut    atomic.Bool
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }
func (p *cutProxy) arm()         { p.armed.Store(true) }
func (p *cutProxy) fired() bool  { return p.cut.Load() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		go p.pipe(s, c, false) // client to server, as is
		go p.pipe(c, s, true)  // server to client, cut once armed
	}
}

// pipe copies src to dst until either fails, then closes both. With cut,
// once armed it drops the first chunk that holds a JetStream message.
func (p *cutProxy) pipe(dst, src net.Conn, cut bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if cut && n > 0 && bytes.Contains(buf[:n], []byte("$JS.ACK.")) && p.armed.CompareAndSwap(true, false) {
			p.cut.Store(true)
			return
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// faultyStore breaks AppendBatch while broken is set: before calling through
// (FailAndNotPersist) or after it (FailButPersist).
type faultyStore struct {
	ledger.Store
	mu      sync.Mutex
	broken  bool
	persist bool
	fails   int
	block   bool // instead of failing, wait for ctx to end
	entered chan struct{}
}

func (s *faultyStore) set(broken bool) {
	s.mu.Lock()
	s.broken = broken
	s.mu.Unlock()
}

func (s *faultyStore) AppendBatch(ctx context.Context, b *ledger.Batch) error {
	s.mu.Lock()
	broken, persist, block := s.broken, s.persist, s.block
	if broken {
		s.fails++
	}
	s.mu.Unlock()
	switch {
	case broken && block:
		select {
		case s.entered <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	case broken && persist:
		if err := s.Store.AppendBatch(ctx, b); err != nil {
			return err
		}
		return errors.New("injected: committed, then the connection dropped")
	case broken:
		return errors.New("injected: database unavailable")
	}
	return s.Store.AppendBatch(ctx, b)
}

func (s *faultyStore) failures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fails
}

// TestSequenceErrors breaks the store under a running sequencer, then
// repairs it: nothing partial is visible meanwhile, and afterwards every
// event is in the log once, in order.
func TestSequenceErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		persist bool
	}{
		{"FailAndNotPersist", false},
		{"FailButPersist", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := &faultyStore{Store: newSQLite(t), persist: tt.persist}
			e := embeddedEnv(t, fs)
			var m jetstream.Metrics
			e.start(fs, &m)
			want := e.publish(20, "acme")
			waitSize(t, fs, "acme", 20)

			fs.set(true)
			more := e.publish(200, "acme")
			want["acme"].add(more["acme"])
			if tt.persist {
				// Each failed batch is committed: its redelivery is skipped,
				// and the loop moves on.
				waitFor(t, func() bool { return fs.failures() >= 1 }, "a failed append")
			} else {
				waitFor(t, func() bool { return fs.failures() >= 3 }, "three failed appends")
				if h, err := fs.Head(t.Context(), "acme"); err != nil || h.Size != 20 {
					t.Errorf("log size %d (%v) while the store fails; want 20 (nothing partial)", h.Size, err)
				}
			}
			fs.set(false)
			waitSize(t, fs, "acme", 220)
			waitFor(t, func() bool {
				s := m.Snapshot().Partitions[0]
				return s.Errors > 0 && s.Appended+s.Duplicates >= 220
			}, "the failed batches to be counted, retried and acknowledged")
			checkLog(t, fs, "acme", want["acme"])
			if s := m.Snapshot().Partitions[0]; tt.persist != (s.Duplicates > 0) {
				t.Errorf("metrics: %d duplicates; want some only if failed batches were committed", s.Duplicates)
			}
		})
	}
}

// TestKillMidBatch cancels the sequencer's context while an append is in
// flight: nothing of the batch is visible, and a restarted sequencer appends
// all of it.
func TestKillMidBatch(t *testing.T) {
	t.Parallel()
	fs := &faultyStore{Store: newSQLite(t), block: true, entered: make(chan struct{}, 1)}
	e := embeddedEnv(t, fs)
	want := e.publish(150, "acme")
	fs.set(true)
	ctx, cancel := context.WithCancel(t.Context())
	seq, err := sequencer.New(sequencer.Config{Store: fs, Signer: keys(), OriginPrefix: origin})
	if err != nil {
		t.Fatal(err)
	}
	shutdown, err := jetstream.StartSequencer(ctx, jetstream.SequencerConfig{Conn: e.nc, Sequencer: seq, Store: fs, Logger: testLogger(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	<-fs.entered
	cancel() // the process dies mid-append
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h, err := fs.Head(t.Context(), "acme"); err != nil || h.Size != 0 {
		t.Fatalf("after a kill mid-batch the log has %d entries (%v); want 0", h.Size, err)
	}
	fs.set(false)
	e.start(fs, nil)
	waitSize(t, fs, "acme", 150)
	checkLog(t, fs, "acme", want["acme"])
}

// TestServerRestart restarts the embedded nats-server on its store
// directory (and port): first with events in the stream that were never
// sequenced, then under a running sequencer.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	store := newSQLite(t)
	dir := t.TempDir()
	srv, err := jetstream.RunEmbedded(jetstream.EmbeddedConfig{StoreDir: dir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	port := srv.Addr().(*net.TCPAddr).Port
	restart := func() {
		t.Helper()
		srv.Shutdown()
		srv.WaitForShutdown()
		srv, err = jetstream.RunEmbedded(jetstream.EmbeddedConfig{StoreDir: dir, Port: port, Logger: testLogger(t, nil)})
		if err != nil {
			t.Fatalf("restart on the same store directory and port: %v", err)
		}
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	reconnected := make(chan struct{}, 1)
	nc, err := nats.Connect(srv.ClientURL(), nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	connected := func() {
		t.Helper()
		select {
		case <-reconnected:
		case <-time.After(30 * time.Second):
			t.Fatal("the client did not reconnect")
		}
	}
	e := newEnv(t, nc, store, jetstream.StreamConfig{})
	stop := e.start(store, nil)
	want := e.publish(100, "acme")
	waitSize(t, store, "acme", 100)
	stop()
	more := e.publish(250, "acme") // acknowledged by JetStream, not sequenced
	want["acme"].add(more["acme"])

	restart()
	connected()
	more = e.publish(50, "acme")
	want["acme"].add(more["acme"])
	var m jetstream.Metrics
	e.start(store, &m)
	waitSize(t, store, "acme", 400)

	restart() // under the running sequencer
	connected()
	more = e.publish(50, "acme")
	want["acme"].add(more["acme"])
	waitSize(t, store, "acme", 450)
	checkLog(t, store, "acme", want["acme"])
}

// TestMalformedMessages publishes raw messages that are not valid events
// between good ones: each is logged and terminated, nothing of it appended,
// and the good events around it are sequenced in order.
func TestMalformedMessages(t *testing.T) {
	t.Parallel()
	store := newSQLite(t)
	e := embeddedEnv(t, store)
	subject := e.stream.Subject("acme")
	raw := func(subject, id string, body []byte) {
		t.Helper()
		m := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
		if id != "" {
			m.Header.Set(njs.MsgIDHeader, id)
		}
		if _, err := e.js.PublishMsg(t.Context(), m); err != nil {
			t.Fatalf("raw publish: %v", err)
		}
	}
	entry := func(ev *ledger.Event) []byte {
		b, err := ev.Entry()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const secret = "SECRET-PROMPT-CONTENT"
	want := &published{payloads: map[string][]byte{}}
	good := func() {
		want.add(e.publish(2, "acme")["acme"])
	}
	good()
	raw(subject, ledger.NewEventID(), []byte("not json "+secret))
	good()
	other := event("globex")
	raw(subject, other.ID, entry(other)) // wrong tenant for the subject
	good()
	withPayload := event("acme")
	commitment, salt := ledger.Commit([]byte("the real payload"), nil)
	withPayload.PayloadSHA256 = commitment
	raw(subject, withPayload.ID, jetstream.EncodeBody(entry(withPayload), salt, []byte(secret), true)) // payload does not match
	good()
	nonCanonical := event("acme")
	raw(subject, nonCanonical.ID, append([]byte("{ "), entry(nonCanonical)[1:]...))
	mismatched := event("acme")
	raw(subject, ledger.NewEventID(), entry(mismatched)) // Nats-Msg-Id is not the event id
	raw(jetstream.DefaultSubjectPrefix+".0.Bad.Log", "", entry(event("acme")))
	good()
	// A batch with one bad member is dropped whole: its good member too.
	goodMember, stranger := event("acme"), event("globex")
	raw(subject, goodMember.ID, jetstream.EncodeBatch([][]byte{entry(goodMember), entry(stranger)}))
	good()
	raw(subject, ledger.NewEventID(), []byte{0, 2, 0, 0, 1, 0, '{'}) // truncated batch
	good()
	raw(subject, "", []byte{0, 1, 0, 0, 0, 200, '{'}) // truncated envelope, last of the batch
	const bad = 9

	var logs syncBuffer
	var m jetstream.Metrics
	e.start(store, &m, func(c *jetstream.SequencerConfig) { c.Logger = testLogger(t, &logs) })
	waitSize(t, store, "acme", len(want.ids))
	waitFor(t, func() bool { return m.Snapshot().Partitions[0].Terminated == bad }, "the malformed messages to be terminated")
	checkLog(t, store, "acme", want)
	if h, _ := store.Head(t.Context(), "globex"); h.Size != 0 {
		t.Errorf("log globex has %d entries; want none (its event was on acme's subject)", h.Size)
	}
	out := logs.String()
	if n := strings.Count(out, "dropping malformed message"); n != bad {
		t.Errorf("%d malformed messages logged; want %d:\n%s", n, bad, out)
	}
	for _, want := range []string{"subject=" + subject, "payload does not match its commitment", `event of \"globex\" sent to log \"acme\"`, "not in canonical form", "Nats-Msg-Id"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, secret) {
		t.Errorf("logs show message content %q:\n%s", secret, out)
	}
	c, err := e.js.Consumer(t.Context(), jetstream.DefaultStreamName, jetstream.ConsumerName(0))
	if err != nil {
		t.Fatal(err)
	}
	if info := c.CachedInfo(); info.NumAckPending != 0 || info.NumRedelivered != 0 || info.NumPending != 0 {
		t.Errorf("consumer after the batch: %d ack pending, %d redelivered, %d pending; want 0, 0, 0", info.NumAckPending, info.NumRedelivered, info.NumPending)
	}
}

// TestTwoSequencers runs two sequencer processes on one store and stream:
// one owns the partition; when it stops, the other takes over.
func TestTwoSequencers(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			store := st.open(t)
			e := embeddedEnv(t, store)
			var m1, m2 jetstream.Metrics
			stop1 := e.start(store, &m1)
			waitFor(t, func() bool { return m1.Snapshot().Partitions[0].Owned }, "the first process to own the partition")
			e.start(store, &m2)
			want := e.publish(300, "acme")
			waitSize(t, store, "acme", 300)
			if m2.Snapshot().Appended() != 0 || m2.Snapshot().Partitions[0].Owned {
				t.Fatalf("the second process sequenced while the first owned the partition: %+v", m2.Snapshot())
			}
			stop1()
			more := e.publish(200, "acme")
			want["acme"].add(more["acme"])
			waitSize(t, store, "acme", 500)
			checkLog(t, store, "acme", want["acme"])
			if s := m2.Snapshot(); !s.Partitions[0].Owned || s.Appended() != 200 {
				t.Errorf("after the takeover the second process appended %d (owned %v); want 200", s.Appended(), s.Partitions[0].Owned)
			}
		})
	}
}

func TestProducerRefusesInvalidEvents(t *testing.T) {
	t.Parallel()
	_, nc := ledgertest.JetStream(t)
	e := newEnv(t, nc, nil, jetstream.StreamConfig{})
	big := event("acme")
	big.Attrs["blob"] = strings.Repeat("x", ledger.MaxEntrySize)
	for _, tt := range []struct {
		name    string
		ev      *ledger.Event
		payload []byte
	}{
		{"ErrNilEvent", nil, nil},
		{"ErrNoID", &ledger.Event{Tenant: "acme", Kind: "request", Time: time.Now()}, nil},
		{"ErrBadTenant", jetstream.NewEvent("Acme!", "request"), nil},
		{"ErrBadKind", jetstream.NewEvent("acme", "Request"), nil},
		{"ErrEntryTooLarge", big, nil},
		{"ErrPayloadTooLarge", event("acme"), make([]byte, jetstream.DefaultEmbeddedMaxPayload+1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.prod.Append(t.Context(), tt.ev, tt.payload)
			var evErr *ledger.EventError
			if !errors.As(err, &evErr) {
				t.Fatalf("Append = %v; want a *ledger.EventError", err)
			}
			if _, err := e.prod.PublishAsync(tt.ev, tt.payload); !errors.As(err, &evErr) {
				t.Fatalf("PublishAsync = %v; want a *ledger.EventError", err)
			}
		})
	}
	s, err := e.js.Stream(t.Context(), jetstream.DefaultStreamName)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(t.Context()); err != nil || info.State.Msgs != 0 {
		t.Errorf("stream holds %d messages (%v); want none", info.State.Msgs, err)
	}
}

func TestProducerBackpressure(t *testing.T) {
	t.Parallel()
	srv, nc := ledgertest.JetStream(t)
	e := newEnv(t, nc, nil, jetstream.StreamConfig{})
	prod, err := jetstream.NewProducer(jetstream.ProducerConfig{Conn: nc, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := prod.Record(t.Context(), event("acme"), nil); err != nil {
		t.Fatalf("Record with the stream up: %v", err)
	}
	f, err := prod.PublishAsync(event("acme"), []byte("p"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Wait(t.Context()); err != nil {
		t.Fatalf("async publish with the stream up: %v", err)
	}
	if err := prod.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}

	t.Run("StreamGone", func(t *testing.T) {
		if err := e.js.DeleteStream(t.Context(), jetstream.DefaultStreamName); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := prod.Record(t.Context(), event("acme"), nil)
		if !errors.Is(err, ledger.ErrBackpressure) {
			t.Fatalf("Record with no stream = %v; want ErrBackpressure", err)
		}
		t.Logf("failed after %v: %v", time.Since(start), err)
		f, err := prod.PublishAsync(event("acme"), nil)
		if err == nil {
			_, err = f.Wait(t.Context())
		}
		if !errors.Is(err, ledger.ErrBackpressure) {
			t.Fatalf("async publish with no stream = %v; want ErrBackpressure", err)
		}
		if err := prod.Flush(t.Context()); !errors.Is(err, ledger.ErrBackpressure) {
			t.Fatalf("Flush after a failed async publish = %v; want ErrBackpressure", err)
		}
	})
	t.Run("StreamFull", func(t *testing.T) {
		cfg := jetstream.StreamConfig{MaxBytes: 64 << 10}
		if _, err := jetstream.EnsureStream(t.Context(), e.js, cfg); err != nil {
			t.Fatal(err)
		}
		var err error
		for i := 0; i < 200 && err == nil; i++ {
			err = prod.Record(t.Context(), event("acme"), make([]byte, 1024))
		}
		if !errors.Is(err, ledger.ErrBackpressure) {
			t.Fatalf("Record into a full stream = %v; want ErrBackpressure", err)
		}
		t.Logf("full: %v", err)
	})
	t.Run("ServerDown", func(t *testing.T) {
		srv.Shutdown()
		srv.WaitForShutdown()
		start := time.Now()
		err := prod.Record(t.Context(), event("acme"), nil)
		if !errors.Is(err, ledger.ErrBackpressure) {
			t.Fatalf("Record with the server down = %v; want ErrBackpressure", err)
		}
		t.Logf("failed after %v: %v", time.Since(start), err)

		async, err := jetstream.NewProducer(jetstream.ProducerConfig{Conn: nc, Timeout: 300 * time.Millisecond, MaxPending: 2, StallWait: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		var futures []*jetstream.Future
		for range 3 {
			f, err := async.PublishAsync(event("acme"), nil)
			if err != nil {
				if !errors.Is(err, ledger.ErrBackpressure) {
					t.Fatalf("PublishAsync with the server down = %v; want ErrBackpressure", err)
				}
				continue
			}
			futures = append(futures, f)
		}
		if len(futures) == 3 {
			t.Fatalf("3 async publishes in flight with MaxPending 2 and no server")
		}
		for _, f := range futures {
			if _, err := f.Wait(t.Context()); !errors.Is(err, ledger.ErrBackpressure) {
				t.Fatalf("Wait with the server down = %v; want ErrBackpressure", err)
			}
		}
	})
}

// TestMachineNATS runs the pipeline against the machine's nats-server (a
// separate process, possibly an older version) on a stream of its own.
func TestMachineNATS(t *testing.T) {
	t.Parallel()
	url := ledgertest.NATSURL(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var r [4]byte
	rand.Read(r[:])
	suffix := hex.EncodeToString(r[:])
	stream := jetstream.StreamConfig{Name: "AUDIT_TEST_" + suffix, SubjectPrefix: "aigwtest." + suffix, MaxBytes: 64 << 20}
	store := newSQLite(t)
	e := newEnv(t, nc, store, stream)
	t.Cleanup(func() {
		if err := e.js.DeleteStream(context.Background(), stream.Name); err != nil {
			t.Errorf("delete stream %s: %v", stream.Name, err)
		}
	})
	want := e.publish(150, "acme", "globex")
	var m jetstream.Metrics
	stop := e.start(store, &m)
	for log, p := range want {
		waitSize(t, store, log, len(p.ids))
		checkLog(t, store, log, p)
	}
	stop()
	more := e.publish(50, "acme") // redelivery after a rewind, on this server version
	want["acme"].add(more["acme"])
	e.start(store, nil)
	waitSize(t, store, "acme", 200)
	checkLog(t, store, "acme", want["acme"])
}

// TestPurgeKeepsOtherPartitions: events published under one partition
// layout (2 partitions) and not yet sequenced survive the purges of a
// sequencer running with another layout (1 partition), and are sequenced
// once a process owns their partition again.
func TestPurgeKeepsOtherPartitions(t *testing.T) {
	t.Parallel()
	store := newSQLite(t)
	_, nc := ledgertest.JetStream(t)
	two := newEnv(t, nc, store, jetstream.StreamConfig{Partitions: 2})
	var logs1 []string // logs of partition 1 in the two-partition layout
	for _, l := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		if two.stream.Partition(l) == 1 {
			logs1 = append(logs1, l)
		}
	}
	if len(logs1) == 0 {
		t.Fatal("no log hashes to partition 1")
	}
	want := two.publish(20, logs1...)

	one := newEnv(t, nc, store, jetstream.StreamConfig{Partitions: 1})
	stop := one.start(store, nil, func(c *jetstream.SequencerConfig) { c.PurgeEvery = time.Millisecond })
	other := one.publish(30, "zz")
	waitSize(t, store, "zz", 30)
	checkLog(t, store, "zz", other["zz"])
	one.publish(5, "zz") // more batches, more purges
	waitSize(t, store, "zz", 35)
	stop()

	two.start(store, nil, func(c *jetstream.SequencerConfig) { c.Partitions = []int{1} })
	for _, l := range logs1 {
		waitSize(t, store, l, 20)
		checkLog(t, store, l, want[l])
	}
}

// TestBatchMessages: events published as a batch (one message) land in
// their log in order, each once, payloads included; a republished batch is
// skipped event by event; a batch spanning two logs is refused.
func TestBatchMessages(t *testing.T) {
	t.Parallel()
	store := newSQLite(t)
	e := embeddedEnv(t, store)
	var m jetstream.Metrics
	e.start(store, &m)
	want := &published{payloads: map[string][]byte{}}
	var batches [][]*ledger.Event
	for b := range 50 {
		evs := make([]*ledger.Event, 1+b%4)
		pls := make([][]byte, len(evs))
		for i := range evs {
			evs[i] = event("acme")
			want.ids = append(want.ids, evs[i].ID)
			if i%2 == 0 {
				pls[i] = []byte(fmt.Sprintf("payload %d/%d", b, i))
				want.payloads[evs[i].ID] = pls[i]
			}
		}
		f, err := e.prod.PublishBatchAsync(evs, pls)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		batches = append(batches, evs)
	}
	waitSize(t, store, "acme", len(want.ids))
	// Republish every batch (a retry after a lost ack): nothing changes.
	for _, evs := range batches {
		f, err := e.prod.PublishBatchAsync(evs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// A fresh batch after the republished ones proves they were processed.
	last := []*ledger.Event{event("acme"), event("acme")}
	if f, err := e.prod.PublishBatchAsync(last, nil); err != nil {
		t.Fatal(err)
	} else if _, err := f.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	want.ids = append(want.ids, last[0].ID, last[1].ID)
	waitSize(t, store, "acme", len(want.ids))
	checkLog(t, store, "acme", want)
	var evErr *ledger.EventError
	if _, err := e.prod.PublishBatchAsync([]*ledger.Event{event("acme"), event("globex")}, nil); !errors.As(err, &evErr) {
		t.Fatalf("a batch over two logs: %v", err)
	}
}

// TestGroupCommit: under a steady stream of events, one at a time, batches
// that come within Linger of each other are grouped, so there are far fewer
// commits than events; without Linger nearly every event is its own batch.
// Every event is appended either way.
func TestGroupCommit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		linger time.Duration
	}{{"linger", 50 * time.Millisecond}, {"none", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := newSQLite(t)
			e := embeddedEnv(t, store)
			var m jetstream.Metrics
			e.start(store, &m, func(c *jetstream.SequencerConfig) { c.Linger = tc.linger })
			for !m.Snapshot().Partitions[0].Owned { // the sequencer is running
				time.Sleep(5 * time.Millisecond)
			}
			const n = 100
			want := &published{payloads: map[string][]byte{}}
			for range n { // one event at a time, 2 ms apart
				p := e.publish(1, "acme")["acme"]
				want.add(p)
				time.Sleep(2 * time.Millisecond)
			}
			waitSize(t, store, "acme", n)
			checkLog(t, store, "acme", want)
			ps := m.Snapshot().Partitions[0]
			t.Logf("%d events in %d batches", n, ps.Batches)
			if tc.linger > 0 && ps.Batches > n/4 {
				t.Errorf("%d events in %d batches with a linger of %v; want them grouped (at most %d batches)", n, ps.Batches, tc.linger, n/4)
			}
		})
	}
}

// While the callers are busy, the sequencer rests after a commit (sequencing
// falls behind), and it catches up as soon as they are not; MaxDefer bounds
// how long the events wait whatever Busy says.
func TestBusyDefersSequencing(t *testing.T) {
	t.Run("until not busy", func(t *testing.T) {
		t.Parallel()
		store := newSQLite(t)
		e := embeddedEnv(t, store)
		var busy atomic.Bool
		var m jetstream.Metrics
		e.start(store, &m, func(c *jetstream.SequencerConfig) {
			c.Busy, c.BusyShare, c.MaxDefer = busy.Load, 1e-6, time.Hour
		})
		want := e.publish(3, "acme")["acme"]
		waitSize(t, store, "acme", 3)
		busy.Store(true)
		first := e.publish(1, "acme")["acme"] // committed, then the loop rests (~10^6 times the commit)
		waitSize(t, store, "acme", 4)
		waitFor(t, func() bool { return m.Snapshot().Partitions[0].Rested > 0 }, "the loop to rest")
		rest := e.publish(5, "acme")["acme"]
		time.Sleep(300 * time.Millisecond)
		if h, err := store.Head(t.Context(), "acme"); err != nil || h.Size != 4 {
			t.Fatalf("Head while busy = %d, %v; want 4 (the events after the rest's start wait)", h.Size, err)
		}
		busy.Store(false)
		waitSize(t, store, "acme", 9)
		for _, p := range []*published{first, rest} {
			want.add(p)
		}
		checkLog(t, store, "acme", want)
	})
	t.Run("at most MaxDefer", func(t *testing.T) {
		t.Parallel()
		store := newSQLite(t)
		e := embeddedEnv(t, store)
		var m jetstream.Metrics
		e.start(store, &m, func(c *jetstream.SequencerConfig) {
			c.Busy, c.BusyShare, c.MaxDefer = func() bool { return true }, 1e-6, 200*time.Millisecond
		})
		want := &published{payloads: map[string][]byte{}}
		for range 5 { // five batches, each followed by a rest of at most 200 ms
			p := e.publish(2, "acme")["acme"]
			want.add(p)
			waitSize(t, store, "acme", len(want.ids))
		}
		checkLog(t, store, "acme", want)
		if ps := m.Snapshot().Partitions[0]; ps.Rested == 0 {
			t.Errorf("Rested = 0 with Busy always true; want rests")
		}
	})
	t.Run("bad share", func(t *testing.T) {
		t.Parallel()
		_, err := jetstream.StartSequencer(t.Context(), jetstream.SequencerConfig{
			Conn: &nats.Conn{}, Sequencer: &sequencer.Sequencer{}, Store: newSQLite(t), BusyShare: 2,
		})
		if err == nil || !strings.Contains(err.Error(), "busy share") {
			t.Errorf("StartSequencer with a busy share of 2: %v; want an error naming it", err)
		}
	})
}
