package jetstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"aigw/ledger"
	"aigw/ledger/sequencer"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// Defaults of [SequencerConfig].
const (
	DefaultBatch      = 500
	DefaultMaxWait    = 100 * time.Millisecond
	DefaultLinger     = 5 * time.Millisecond
	DefaultAckWait    = time.Minute
	DefaultLockRetry  = 2 * time.Second
	DefaultMaxBackoff = 5 * time.Second
	DefaultPurgeEvery = time.Second
	DefaultBusyShare  = 0.05
	DefaultMaxDefer   = 10 * time.Second
)

// SequencerConfig configures the sequencing loop of one process.
type SequencerConfig struct {
	// Conn is the NATS connection to consume on. Required.
	Conn *nats.Conn
	// Stream is the stream to read (created if missing, see [EnsureStream]).
	Stream StreamConfig
	// Partitions lists the partitions this process sequences; nil means all
	// of them (0 to Stream.Partitions-1).
	Partitions []int
	// Sequencer appends to the logs. Required. Share one Sequencer per process.
	Sequencer *sequencer.Sequencer
	// Store is the Sequencer's store; its Lock makes this process the one
	// sequencer of a partition. Required.
	Store ledger.Store
	// Batch is the most events fetched and committed at once; default
	// [DefaultBatch] (the knee measured in ingest-limits §3.1).
	Batch int
	// MaxWait is how long a fetch waits to fill a batch; default
	// [DefaultMaxWait]. It bounds the sequencing delay at low rates.
	MaxWait time.Duration
	// Linger is the least time between two batches of a partition that are
	// not full (group commit): under a steady load, the fetcher waits out
	// the rest of it and tops the batch up with what arrived meanwhile, so
	// that commits (a transaction, an fsync and a signed checkpoint each)
	// stay few and large instead of one per call. A batch after a quiet
	// spell is committed at once. It adds at most Linger to the sequencing
	// delay, never to publishing. Default [DefaultLinger]; negative: none.
	// The trade (README, Performance): a longer Linger costs less CPU per
	// event (at 500 calls/s on SQLite, 25ms instead of 5ms cut the
	// gateway's whole CPU per call by 30%: the commits' WAL writes, fsyncs
	// and checkpoint signatures amortized over five times more events), but
	// each commit is then one longer burst of CPU, which the callers feel
	// when the sequencer shares their cores: 5ms instead of 25ms took the
	// gateway's added p99 from 1.38 to 0.95 ms at 500 calls/s and from 3.60
	// to 2.63 ms at 2,000 on two cores (medians of four alternating pairs),
	// with the same open-throttle rate (batches are full there, and Linger
	// only applies to batches that are not).
	Linger time.Duration
	// AckWait is how long JetStream waits for the ack of a delivered message
	// before redelivering it; default [DefaultAckWait]. It must exceed the
	// longest commit: the loop itself rewinds after errors.
	AckWait time.Duration
	// LockRetry is how often a process that does not own a partition tries
	// to take it over; default [DefaultLockRetry].
	LockRetry time.Duration
	// MaxBackoff caps the wait after a failed batch (it doubles from 50ms);
	// default [DefaultMaxBackoff].
	MaxBackoff time.Duration
	// PurgeEvery is how often acknowledged events are purged from the
	// stream; default [DefaultPurgeEvery]; negative never purges (the
	// stream then relies on MaxBytes and MaxAge).
	PurgeEvery time.Duration
	// Busy, if set, reports whether the process's callers are short of CPU
	// now (the gateway: the Go scheduler has a run queue). While it does,
	// each partition rests after a commit so that committing takes at most
	// BusyShare of its time: sequencing falls behind during a burst and
	// catches up when the burst is over, and the burst gets the CPU.
	// Fail-closed callers wait for JetStream's acknowledgement, never for
	// the sequencer, so what lags is only the ledger (proofs, the read
	// API), and by at most MaxDefer. Measured (README, Performance): the
	// gateway's open-throttle throughput on two shared cores 7,900 ->
	// 10,400 calls/s with a share of 0.05.
	Busy func() bool
	// BusyShare is the part of its time a partition may spend committing
	// while Busy; default [DefaultBusyShare].
	BusyShare float64
	// MaxDefer bounds the sequencing delay that Busy may add: a batch whose
	// oldest event has waited longer than that is followed by no rest,
	// whatever Busy says. Default [DefaultMaxDefer]; negative: Busy is
	// ignored.
	MaxDefer time.Duration
	// Metrics, if set, receives the loop's counters.
	Metrics *Metrics
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger

	// afterCommit, if set (tests, export_test.go), runs after a batch is
	// committed and before it is acknowledged; an error stops the partition
	// dead, as a crash would.
	afterCommit func(partition int) error
	// lose, if set (tests, export_test.go), is asked about every delivered
	// message (its stream and consumer sequences); true drops it as if it
	// were lost between the server and this process.
	lose func(streamSeq, deliverySeq uint64) bool
}

func (c *SequencerConfig) validate() error {
	switch {
	case c.Conn == nil:
		return errors.New("jetstream: sequencer needs a NATS connection")
	case c.Sequencer == nil:
		return errors.New("jetstream: sequencer needs a sequencer.Sequencer")
	case c.Store == nil:
		return errors.New("jetstream: sequencer needs the store (for its locks)")
	case c.Batch < 0 || c.Batch > 10000:
		return fmt.Errorf("jetstream: batch of %d; want 1 to 10000", c.Batch)
	case c.BusyShare < 0 || c.BusyShare > 1:
		return fmt.Errorf("jetstream: busy share of %g; want 0 to 1", c.BusyShare)
	}
	if err := c.Stream.Validate(); err != nil {
		return err
	}
	c.Stream = c.Stream.withDefaults()
	if c.Partitions == nil {
		for p := range c.Stream.Partitions {
			c.Partitions = append(c.Partitions, p)
		}
	}
	seen := map[int]bool{}
	for _, p := range c.Partitions {
		if p < 0 || p >= c.Stream.Partitions || seen[p] {
			return fmt.Errorf("jetstream: partition %d is not one of %d, or is listed twice", p, c.Stream.Partitions)
		}
		seen[p] = true
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.MaxWait <= 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.LockRetry <= 0 {
		c.LockRetry = DefaultLockRetry
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.PurgeEvery == 0 {
		c.PurgeEvery = DefaultPurgeEvery
	}
	if c.BusyShare == 0 {
		c.BusyShare = DefaultBusyShare
	}
	if c.MaxDefer == 0 {
		c.MaxDefer = DefaultMaxDefer
	}
	return nil
}

const (
	minBackoff = 50 * time.Millisecond
	apiTimeout = 5 * time.Second // JetStream API calls: consumer, ack, purge
)

// StartSequencer starts sequencing the configured partitions of the stream
// and returns at once. For each partition it takes the store lock
// "partition-<p>" (retrying in the background while another process owns
// it), rewinds the durable pull consumer "sequencer-<p>" to its ack floor,
// and then loops: fetch a batch (the next fetch overlaps the commit of the
// current one), group the messages by log keeping their stream order,
// append each log's messages with one [sequencer.Sequencer.Append] (the logs
// of a batch in parallel), and only then acknowledge the batch with one
// DoubleAck of its last message (AckAll). Every message is checked
// ([sequencer.Check], in the fetcher, off the serial path): a malformed one is logged (subject,
// stream sequence and reason, never its content) and terminated, never
// appended; the messages around it are. If an append or the
// ack fails nothing is acknowledged: the loop logs, backs off, rewinds the
// consumer to its ack floor and fetches the same messages again; the
// sequencer skips those a log already holds, so nothing is lost or appended
// twice.
//
// The goroutines live on ctx: cancelling it stops them at once (an append in
// flight is abandoned, never half-written). shutdown stops them gracefully:
// the batch being committed is finished and acknowledged, the locks are
// released, and shutdown returns when everything has stopped, or when its
// ctx ends (it then cancels the rest and waits for it). Call shutdown first,
// then cancel ctx.
func StartSequencer(ctx context.Context, cfg SequencerConfig) (shutdown func(context.Context) error, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	stream, err := EnsureStream(ctx, js, cfg.Stream)
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, log: discardLogger(cfg.Logger), js: js, stream: stream, metrics: cfg.Metrics, stop: make(chan struct{})}
	if r.metrics == nil {
		r.metrics = &Metrics{}
	}
	r.ctx, r.cancel = context.WithCancel(ctx)
	for _, p := range cfg.Partitions {
		r.wg.Add(1)
		go r.run(p)
	}
	var once sync.Once
	return func(ctx context.Context) error {
		once.Do(func() { close(r.stop) })
		done := make(chan struct{})
		go func() { r.wg.Wait(); close(done) }()
		select {
		case <-done:
			r.cancel()
			return nil
		case <-ctx.Done():
			r.cancel()
			<-done
			return fmt.Errorf("jetstream: sequencer shutdown: %w", ctx.Err())
		}
	}, nil
}

type runner struct {
	cfg     SequencerConfig
	log     *slog.Logger
	js      jetstream.JetStream
	stream  jetstream.Stream
	metrics *Metrics
	stop    chan struct{} // closed by shutdown: stop after the current batch
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func (r *runner) stopping() bool {
	select {
	case <-r.stop:
		return true
	default:
		return r.ctx.Err() != nil
	}
}

// sleep waits d, or less if the runner stops; it reports whether to go on.
func (r *runner) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.stop:
		return false
	case <-r.ctx.Done():
		return false
	}
}

// errDead is returned when the test hook killed a partition.
var errDead = errors.New("partition loop killed by a test hook")

// run owns partition p whenever it can, until the runner stops.
func (r *runner) run(p int) {
	defer r.wg.Done()
	lg := r.log.With("partition", p)
	waiting := false
	for !r.stopping() {
		release, err := r.cfg.Store.Lock(r.ctx, LockName(p))
		if err != nil {
			switch {
			case errors.Is(err, ledger.ErrLocked):
				if !waiting {
					lg.Info("partition is owned by another sequencer; waiting to take it over")
					waiting = true
				}
			case r.ctx.Err() == nil:
				lg.Warn("cannot lock partition", "err", err)
			}
			if !r.sleep(r.cfg.LockRetry) {
				return
			}
			continue
		}
		waiting = false
		lg.Info("sequencing partition")
		r.metrics.setOwned(p, true)
		err = r.own(p, lg)
		r.metrics.setOwned(p, false)
		release()
		if err != nil { // errDead
			lg.Warn("partition loop stopped", "err", err)
			return
		}
	}
}

// own sequences partition p while this process holds its lock. It returns
// nil when the runner stops, or errDead.
func (r *runner) own(p int, lg *slog.Logger) error {
	// Logs are forgotten the first time they are seen under this lock: the
	// Sequencer may hold state from before another process appended to them.
	forgotten := map[string]bool{}
	// floor is the last stream sequence this process acknowledged: if the
	// consumer vanished (or its deletion was done but not confirmed), the
	// rewind restarts there rather than at the start of the stream.
	var floor streamFloor
	backoff := minBackoff
	for !r.stopping() {
		cons, err := r.rewind(p, &floor)
		if err == nil {
			var progress bool
			progress, err = r.consume(p, cons, forgotten, &floor, lg)
			if err == nil || errors.Is(err, errDead) {
				return err
			}
			if progress {
				backoff = minBackoff
			}
		}
		r.metrics.addError(p, err)
		lg.Error("sequencing failed; rewinding to the last acknowledged event", "err", err, "retry_in", backoff)
		if !r.sleep(backoff) {
			return nil
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
	}
	return nil
}

// rewind (re)creates the partition's durable consumer so that it delivers
// from its ack floor: whatever was delivered and not acknowledged (to a
// previous owner, or before an error) comes again at once and in stream
// order, instead of after AckWait and out of order. (Deleting and creating
// works on every JetStream version; ResetConsumer needs nats-server 2.14.)
func (r *runner) rewind(p int, floor *streamFloor) (jetstream.Consumer, error) {
	if !r.cfg.Conn.IsConnected() {
		// A request buffered while reconnecting can reach a server whose
		// JetStream is not up yet and get no answer: wait and retry instead.
		return nil, errors.New("not connected to NATS")
	}
	// Right after a reconnect the first API request may go unanswered:
	// probe with a short timeout before the real calls.
	probe, cancelProbe := context.WithTimeout(r.ctx, time.Second)
	_, err := r.js.AccountInfo(probe)
	cancelProbe()
	if err != nil {
		return nil, fmt.Errorf("JetStream not ready: %w", err)
	}
	ctx, cancel := context.WithTimeout(r.ctx, apiTimeout)
	defer cancel()
	info, err := r.stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", r.cfg.Stream.Name, err)
	}
	if !info.Created.Equal(floor.created) { // a new stream: sequences start over
		floor.seq, floor.created = 0, info.Created
	}
	name := ConsumerName(p)
	start := floor.seq + 1
	switch c, err := r.stream.Consumer(ctx, name); {
	case err == nil:
		info := c.CachedInfo()
		start = max(start, info.AckFloor.Stream+1, info.Config.OptStartSeq)
		if err := r.stream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("delete consumer %s to rewind it: %w", name, err)
		}
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	default:
		return nil, fmt.Errorf("read consumer %s: %w", name, err)
	}
	cc := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "aigw ledger sequencer of partition " + fmt.Sprint(p),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       r.cfg.AckWait,
		MaxDeliver:    -1,
		FilterSubject: r.cfg.Stream.PartitionFilter(p),
		// In flight at once: a batch prefetched, one being committed, one
		// queued for the acker and one being acknowledged; with room.
		MaxAckPending: 6 * r.cfg.Batch,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
	if start > 1 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	c, err := r.stream.CreateConsumer(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s from stream sequence %d: %w", name, start, err)
	}
	return c, nil
}

// streamFloor is the last stream sequence acknowledged in a stream (known
// by its creation time).
type streamFloor struct {
	seq     uint64
	created time.Time
}

// item is one fetched message, checked.
type item struct {
	msg  jetstream.Msg
	log  string
	seq  uint64 // stream sequence
	rec  sequencer.Record
	bad  error     // why the message is malformed
	left uint64    // messages of the partition not yet delivered
	at   time.Time // when JetStream stored the message
}

type batch struct {
	items  []item
	err    error
	waited time.Duration // how long the loop waited for it
}

// consume runs the fetch → append → ack loop on cons until the runner stops
// (nil), a batch fails, or the test hook kills it. Three goroutines overlap:
// the fetcher gets (and frames) batch N+1 while this loop appends batch N
// and the acker acknowledges batch N-1. progress reports whether any batch
// was appended; *floor is the last stream sequence acknowledged.
func (r *runner) consume(p int, cons jetstream.Consumer, forgotten map[string]bool, floor *streamFloor, lg *slog.Logger) (progress bool, err error) {
	fetched := make(chan *batch) // unbuffered: one batch prefetched while one commits
	quit := make(chan struct{})
	go r.fetch(p, cons, fetched, quit)
	acks := make(chan *commit, 1) // one committed batch queued while one is acknowledged
	ackErr := make(chan error, 1)
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		for c := range acks {
			if err := r.ack(p, c, lg); err != nil {
				ackErr <- err
				for range acks { // committed, never acknowledged: redelivered after the rewind and skipped
				}
				return
			}
			floor.seq = c.last().seq
		}
	}()
	defer func() {
		close(quit)
		for range fetched { // a prefetched batch is dropped: the next rewind redelivers it
		}
		close(acks) // acknowledge what is committed (a graceful stop) ...
		<-ackDone
		if err == nil { // ... and report if that failed
			select {
			case err = <-ackErr:
			default:
			}
		}
	}()
	// After a rewind, the first batches may hold events a log already has
	// even though JetStream counts them as first deliveries.
	suspect := 2
	for {
		var b *batch
		t0 := time.Now()
		select {
		case <-r.stop:
			return progress, nil
		case <-r.ctx.Done():
			return progress, nil
		case err := <-ackErr:
			return progress, err
		case b = <-fetched:
		}
		if b.err != nil {
			return progress, fmt.Errorf("fetch from consumer %s: %w", ConsumerName(p), b.err)
		}
		b.waited = time.Since(t0)
		c, err := r.commit(p, b, suspect > 0, forgotten)
		if err != nil {
			return progress, err
		}
		progress = true
		suspect--
		select {
		case acks <- c:
		case err := <-ackErr:
			return progress, err
		}
		r.rest(p, c)
	}
}

// restStep is how often a rest checks whether the callers are still busy:
// the sequencer goes back to full speed within it of a burst's end.
const restStep = 5 * time.Millisecond

// rest yields the CPU to the callers after commit c while they are busy
// (SequencerConfig.Busy): up to (1-share)/share times the commit's time, in
// steps of restStep, and not past MaxDefer of the batch's oldest event.
func (r *runner) rest(p int, c *commit) {
	if r.cfg.Busy == nil || r.cfg.MaxDefer < 0 || len(c.b.items) == 0 {
		return
	}
	share := r.cfg.BusyShare
	want := time.Duration(float64(c.busy) * (1 - share) / share)
	if left := r.cfg.MaxDefer - sinceOrZero(c.b.items[0].at); want > left {
		want = left
	}
	var rested time.Duration
	for rested < want && r.cfg.Busy() {
		d := min(restStep, want-rested)
		if !r.sleep(d) {
			return
		}
		rested += d
		r.metrics.rested(p, d)
	}
}

// fetch fetches and checks batches and hands them over, until quit.
func (r *runner) fetch(p int, cons jetstream.Consumer, out chan<- *batch, quit <-chan struct{}) {
	defer close(out)
	prefix := len(r.cfg.Stream.partitionPrefix(p))
	var last time.Time // when the previous batch was handed over
	// delivered is the consumer sequence of the last message received: the
	// consumer is new (rewind), so its deliveries count from 1.
	var delivered uint64
	for {
		select {
		case <-quit:
			return
		default:
		}
		// Adaptive batches (group commit): take what is already there, up to
		// Batch, without waiting; only when nothing is there, wait for the
		// first message. Batches then grow with the rate (full at high
		// load) and a quiet log's events are committed at once instead of
		// waiting MaxWait for a batch to fill (publish p99 at 10k ev/s).
		b := r.fetchBatch(cons, prefix, &delivered, true, r.cfg.Batch)
		if len(b.items) == 0 && b.err == nil {
			b = r.fetchBatch(cons, prefix, &delivered, false, 1)
		}
		if len(b.items) == 0 && b.err == nil {
			continue
		}
		// Group commit: a batch that is not full and comes within Linger of
		// the previous one waits out the rest of Linger and takes what
		// arrived meanwhile.
		if wait := time.Until(last.Add(r.cfg.Linger)); wait > 0 && b.err == nil && len(b.items) < r.cfg.Batch {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-quit:
				t.Stop()
				return
			}
			more := r.fetchBatch(cons, prefix, &delivered, true, r.cfg.Batch-len(b.items))
			b.items, b.err = append(b.items, more.items...), more.err
		}
		select {
		case out <- b:
			last = time.Now()
		case <-quit:
			return
		}
		if b.err != nil {
			return
		}
	}
}

// fetchBatch fetches up to n messages: those already pending (noWait), or
// else those to arrive within MaxWait. *delivered is the consumer sequence
// of the last message received before; a message that does not follow it
// fails the batch (see errLostDelivery).
func (r *runner) fetchBatch(cons jetstream.Consumer, prefix int, delivered *uint64, noWait bool, n int) *batch {
	b := &batch{}
	var mb jetstream.MessageBatch
	var err error
	if noWait {
		mb, err = cons.FetchNoWait(n)
	} else {
		mb, err = cons.Fetch(n, jetstream.FetchMaxWait(r.cfg.MaxWait))
	}
	if err != nil {
		b.err = err
		return b
	}
	b.items = make([]item, 0, min(n, 64)) // grows with a large batch; small ones stay small
	for m := range mb.Messages() {
		if b.err != nil {
			continue // the batch is dropped: let the fetch finish
		}
		md, mdErr := m.Metadata()
		switch {
		case mdErr != nil: // checkMsg marks the message bad; the next one cannot be checked
			*delivered = unknownDelivery
		case r.cfg.lose != nil && r.cfg.lose(md.Sequence.Stream, md.Sequence.Consumer):
			continue
		case *delivered != unknownDelivery && md.Sequence.Consumer != *delivered+1:
			b.err = fmt.Errorf("%w: delivery %d of the consumer came after %d", errLostDelivery, md.Sequence.Consumer, *delivered)
			continue
		default:
			*delivered = md.Sequence.Consumer
		}
		b.items = checkMsg(b.items, m, md, mdErr, prefix)
	}
	if err := mb.Error(); err != nil && b.err == nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
		b.err = err
	}
	return b
}

// errLostDelivery fails a batch when a message the server delivered did not
// arrive (the connection dropped with it in flight, or a fetch ended before
// it came): the consumer counts it as delivered and waiting for its ack, so
// acknowledging any later message (AckAll) would acknowledge it too, and
// its event would never reach the ledger though its producer had JetStream's
// acknowledgement. Checking that each delivery follows the last one makes
// such a loss a failed batch: the loop rewinds to the ack floor, and the
// message comes again, in order.
var errLostDelivery = errors.New("a delivered message was lost in transit")

// unknownDelivery stands for the consumer sequence after a message whose
// metadata could not be read: the next message is not checked against it
// (a gap there would rewind to the same unreadable message forever).
const unknownDelivery = ^uint64(0)

// checkMsg decodes a message of a partition whose subjects start with
// prefix bytes and checks its framing: subject, envelope or batch,
// Nats-Msg-Id. It appends one item per event (a batch gives several), or
// one bad item for a malformed message. md is the message's metadata, or
// mdErr why it could not be read. The entries themselves are checked here
// too (sequencer.Check), in the fetcher, so that Sequencer.Append does not
// check them again on its serial path.
func checkMsg(dst []item, m jetstream.Msg, md *jetstream.MsgMetadata, mdErr error, prefix int) []item {
	it := item{msg: m}
	if mdErr != nil {
		it.bad = fmt.Errorf("no JetStream metadata: %w", mdErr)
		return append(dst, it)
	}
	it.seq, it.left, it.at = md.Sequence.Stream, md.NumPending, md.Timestamp
	it.rec.Redelivered = md.NumDelivered > 1
	subj := m.Subject()
	if len(subj) <= prefix || !ledger.ValidLogName(subj[prefix:]) {
		it.bad = errors.New("subject does not end in a log name")
		return append(dst, it)
	}
	it.log = subj[prefix:]
	id := m.Headers().Get(jetstream.MsgIDHeader)
	body := m.Data()
	if !isBatch(body) {
		it.bad = checkBody(&it, body, id, true)
		return append(dst, it)
	}
	start := len(dst)
	first := true
	err := splitBatch(body, func(b []byte) error {
		e := it
		if err := checkBody(&e, b, id, first); err != nil {
			return err
		}
		first = false // the Nats-Msg-Id is the first event's
		dst = append(dst, e)
		return nil
	})
	if err != nil {
		it.bad = err
		return append(dst[:start], it)
	}
	return dst
}

// checkBody decodes one event's body into it and checks it; with checkID,
// msgID must be the event's id.
func checkBody(it *item, body []byte, msgID string, checkID bool) error {
	var err error
	it.rec.Entry, it.rec.Salt, it.rec.Payload, err = decodeBody(body)
	if err != nil {
		return err
	}
	// A cheap sanity check that the dedupe key is the event id (a mismatch
	// would only weaken JetStream's dedupe: the sequencer dedupes by the
	// entry's id).
	if checkID && (!ledger.ValidEventID(msgID) || !containsID(it.rec.Entry, msgID)) {
		return fmt.Errorf("Nats-Msg-Id %q is not the event's id", msgID)
	}
	// Check here, in the fetcher, while the previous batch commits: the
	// sequencer's serial path then skips it (Record.EventID).
	info, err := sequencer.Check(it.log, &it.rec)
	if err != nil {
		return err
	}
	it.rec.EventID = info.ID
	return nil
}

// containsID reports whether entry has the member "id":"<id>".
func containsID(entry []byte, id string) bool {
	var pat [6 + 36 + 1]byte
	n := copy(pat[:], `"id":"`)
	n += copy(pat[n:], id)
	pat[n] = '"'
	return bytes.Contains(entry, pat[:n+1])
}

// logBatch is the part of a batch that goes to one log.
type logBatch struct {
	log     string
	items   []*item // in stream order
	size    uint64  // log size after the append (0: unchanged)
	appends int     // events appended (the others were already in the log)
}

// appendChecked appends g's valid items to their log. Every item was
// checked in the fetcher (checkMsg): the invalid ones are marked bad and
// left out, the valid ones carry their event id, so Sequencer.Append does
// not parse them again.
func (r *runner) appendChecked(g *logBatch) error {
	recs := make([]sequencer.Record, 0, len(g.items))
	for _, it := range g.items {
		if it.bad == nil {
			recs = append(recs, it.rec)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	res, err := r.cfg.Sequencer.Append(r.ctx, g.log, recs)
	if err != nil {
		return fmt.Errorf("append %d events to log %q: %w", len(recs), g.log, err)
	}
	for _, x := range res {
		if !x.Duplicate {
			g.appends++
			g.size = max(g.size, x.Index+1)
		}
	}
	return nil
}

// commit is a batch whose events are in their logs.
type commit struct {
	b      *batch
	groups []*logBatch
	bad    uint64        // malformed messages
	took   time.Duration // in Sequencer.Append
	busy   time.Duration // in commit
}

func (c *commit) last() *item { return &c.b.items[len(c.b.items)-1] }

// commit appends a batch, log by log (the logs in parallel).
func (r *runner) commit(p int, b *batch, suspect bool, forgotten map[string]bool) (*commit, error) {
	start := time.Now()
	c := &commit{b: b}
	byLog := map[string]*logBatch{}
	for i := range b.items {
		it := &b.items[i]
		if it.bad != nil {
			continue
		}
		it.rec.Redelivered = it.rec.Redelivered || suspect
		g := byLog[it.log]
		if g == nil {
			g = &logBatch{log: it.log}
			byLog[it.log] = g
			c.groups = append(c.groups, g)
		}
		g.items = append(g.items, it)
	}
	for _, g := range c.groups {
		if !forgotten[g.log] {
			r.cfg.Sequencer.Forget(g.log)
			forgotten[g.log] = true
		}
	}

	t0 := time.Now()
	var err error
	switch len(c.groups) {
	case 0:
	case 1:
		err = r.appendChecked(c.groups[0])
	default:
		var eg errgroup.Group
		for _, g := range c.groups {
			eg.Go(func() error { return r.appendChecked(g) })
		}
		err = eg.Wait()
	}
	if err != nil {
		return nil, err
	}
	c.took = time.Since(t0)
	for i := range b.items {
		if b.items[i].bad != nil {
			c.bad++
		}
	}
	if r.cfg.afterCommit != nil {
		if err := r.cfg.afterCommit(p); err != nil {
			return nil, fmt.Errorf("%w: %w", errDead, err)
		}
	}
	c.busy = time.Since(start)
	return c, nil
}

// ack acknowledges a committed batch: it terminates its malformed messages
// (logging them), acknowledges its last message (AckAll: the whole batch)
// and waits for the server to confirm, then counts it and maybe purges.
func (r *runner) ack(p int, c *commit, lg *slog.Logger) error {
	start := time.Now()
	items := c.b.items
	last := len(items) - 1
	for i := range items {
		it := &items[i]
		if it.bad == nil {
			continue
		}
		lg.Warn("dropping malformed message", "subject", it.msg.Subject(), "stream_seq", it.seq, "reason", it.bad)
		if it.seq != items[last].seq { // the last message is acknowledged below, which has the same effect
			if err := it.msg.Term(); err != nil {
				lg.Debug("term malformed message", "stream_seq", it.seq, "err", err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(r.ctx, apiTimeout)
	defer cancel()
	if err := items[last].msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("acknowledge batch up to stream sequence %d (it is committed and will be skipped when redelivered): %w", items[last].seq, err)
	}
	var appended uint64
	for _, g := range c.groups {
		appended += uint64(g.appends)
	}
	r.metrics.batchDone(p, batchStats{
		size: len(items), appended: appended, duplicates: uint64(len(items)) - c.bad - appended, terminated: c.bad,
		commit: c.took, busy: c.busy, acking: time.Since(start), waiting: c.b.waited,
		ackFloor: items[last].seq, pending: items[last].left, lag: sinceOrZero(items[0].at),
	}, func(logs map[string]uint64) {
		for _, g := range c.groups {
			if g.size > 0 {
				logs[g.log] = g.size
			}
		}
	})
	r.maybePurge(p, items[last].seq, lg)
	return nil
}

// maybePurge deletes the partition's acknowledged messages from the stream,
// at most every PurgeEvery.
func (r *runner) maybePurge(p int, ackFloor uint64, lg *slog.Logger) {
	if r.cfg.PurgeEvery < 0 || !r.metrics.purgeDue(p, r.cfg.PurgeEvery) {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, apiTimeout)
	defer cancel()
	// Purge only this partition's subjects, even with one partition: events
	// of other subjects under the prefix (partitions of an earlier
	// configuration, not yet sequenced) must never be purged with it.
	opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSequence(ackFloor + 1), jetstream.WithPurgeSubject(r.cfg.Stream.PartitionFilter(p))}
	if err := r.stream.Purge(ctx, opts...); err != nil {
		lg.Warn("purge sequenced events from the stream", "below_stream_seq", ackFloor+1, "err", err)
	}
}

// Backlog returns the events of partition p that its sequencer has not
// acknowledged: those not yet delivered plus those delivered and being
// committed.
func Backlog(ctx context.Context, js jetstream.JetStream, cfg StreamConfig, p int) (uint64, error) {
	cfg = cfg.withDefaults()
	c, err := js.Consumer(ctx, cfg.Name, ConsumerName(p))
	if err != nil {
		return 0, fmt.Errorf("jetstream: consumer %s of stream %s: %w", ConsumerName(p), cfg.Name, err)
	}
	info := c.CachedInfo()
	return info.NumPending + uint64(info.NumAckPending), nil
}

// Metrics are the counters of a process's sequencing loops, for the binary
// to export. The zero value is ready to use; it is safe for concurrent use.
type Metrics struct {
	mu    sync.Mutex
	parts map[int]*PartitionStats
	logs  map[string]uint64
	purge map[int]time.Time
}

// PartitionStats are the counters of one partition.
type PartitionStats struct {
	// Owned: this process holds the partition's lock now.
	Owned bool
	// Batches acknowledged, and the events they held: appended, skipped as
	// already in their log, and terminated as malformed.
	Batches, Appended, Duplicates, Terminated uint64
	// Errors counts failed batches (each followed by a rewind and a retry);
	// LostDeliveries those of them that failed because a delivered message
	// did not arrive (see errLostDelivery): a fault between the server and
	// the sequencer, not in the store.
	Errors, LostDeliveries uint64
	// LastBatch is the size of the last batch and LastCommit how long its
	// appends took.
	LastBatch  int
	LastCommit time.Duration
	// Busy is the loop's total time committing batches (Appending of it in
	// Sequencer.Append), and Waiting its total time waiting for the next
	// batch to be fetched: Busy near the elapsed time means the sequencer is
	// the bottleneck. Acking is the total time acknowledging batches (and
	// purging), which overlaps the next commit.
	Busy, Appending, Acking, Waiting time.Duration
	// AckFloor is the stream sequence of the last acknowledged message.
	AckFloor uint64
	// Pending is the number of the partition's messages not yet delivered
	// when the last batch was fetched: the backlog, without the batch in
	// flight ([Backlog] asks the server for the exact number).
	Pending uint64
	// Lag is how long the first event of the last batch waited between
	// JetStream storing it and its batch being committed to the ledger and
	// acknowledged: how far the ledger runs behind the gateways.
	Lag time.Duration
	// Rested is the loop's total time yielding to busy callers
	// (SequencerConfig.Busy).
	Rested time.Duration
}

// Snapshot is a copy of [Metrics].
type Snapshot struct {
	Partitions map[int]PartitionStats
	// Logs holds the size of every log this process appended to, as of its
	// last append.
	Logs map[string]uint64
}

// Appended returns the events appended over all partitions.
func (s Snapshot) Appended() uint64 {
	var n uint64
	for _, p := range s.Partitions {
		n += p.Appended
	}
	return n
}

// Snapshot returns a copy of the counters.
func (m *Metrics) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Snapshot{Partitions: map[int]PartitionStats{}, Logs: map[string]uint64{}}
	for p, ps := range m.parts {
		s.Partitions[p] = *ps
	}
	for l, n := range m.logs {
		s.Logs[l] = n
	}
	return s
}

// Settled is s with its gauges (partitions owned, the last batch, the
// backlog, the lag: a sequencer's current state) cleared and its counters
// and total times kept: what a sequencer that stopped leaves to the
// counters of the one after it ([Snapshot.Add]).
func (s Snapshot) Settled() Snapshot {
	out := Snapshot{Partitions: make(map[int]PartitionStats, len(s.Partitions)), Logs: maps.Clone(s.Logs)}
	for n, ps := range s.Partitions {
		ps.Owned, ps.LastBatch, ps.LastCommit, ps.Pending, ps.Lag = false, 0, 0, 0, 0
		out.Partitions[n] = ps
	}
	return out
}

// Add is the counters of a running sequencer, cur, on top of s, those of
// the sequencers before it ([Snapshot.Settled]): counts and total times
// add up, the gauges are cur's, the acknowledgement floor and each log's
// size the larger. A new field of [PartitionStats] must be placed here.
func (s Snapshot) Add(cur Snapshot) Snapshot {
	out := Snapshot{Partitions: maps.Clone(s.Partitions), Logs: maps.Clone(s.Logs)}
	if out.Partitions == nil {
		out.Partitions = map[int]PartitionStats{}
	}
	if out.Logs == nil {
		out.Logs = map[string]uint64{}
	}
	for n, c := range cur.Partitions {
		b := out.Partitions[n]
		c.Batches += b.Batches
		c.Appended += b.Appended
		c.Duplicates += b.Duplicates
		c.Terminated += b.Terminated
		c.Errors += b.Errors
		c.LostDeliveries += b.LostDeliveries
		c.Busy += b.Busy
		c.Appending += b.Appending
		c.Acking += b.Acking
		c.Waiting += b.Waiting
		c.Rested += b.Rested
		c.AckFloor = max(c.AckFloor, b.AckFloor)
		out.Partitions[n] = c
	}
	for l, n := range cur.Logs {
		out.Logs[l] = max(out.Logs[l], n)
	}
	return out
}

// Set replaces the counters with s: how a process shows the counters of a
// sequencer that runs in another process (aigw serve's sequencer process).
func (m *Metrics) Set(s Snapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.part(0) // allocates the maps
	clear(m.parts)
	clear(m.logs)
	for p, ps := range s.Partitions {
		m.parts[p] = &ps
	}
	for l, n := range s.Logs {
		m.logs[l] = n
	}
}

// part returns the stats of p; m.mu must be held.
func (m *Metrics) part(p int) *PartitionStats {
	if m.parts == nil {
		m.parts = map[int]*PartitionStats{}
		m.logs = map[string]uint64{}
		m.purge = map[int]time.Time{}
	}
	ps := m.parts[p]
	if ps == nil {
		ps = &PartitionStats{}
		m.parts[p] = ps
	}
	return ps
}

func (m *Metrics) setOwned(p int, owned bool) {
	m.mu.Lock()
	m.part(p).Owned = owned
	m.mu.Unlock()
}

func (m *Metrics) addError(p int, err error) {
	m.mu.Lock()
	ps := m.part(p)
	ps.Errors++
	if errors.Is(err, errLostDelivery) {
		ps.LostDeliveries++
	}
	m.mu.Unlock()
}

type batchStats struct {
	size                             int
	appended, duplicates, terminated uint64
	commit, busy, acking, waiting    time.Duration
	ackFloor, pending                uint64
	lag                              time.Duration
}

func (m *Metrics) batchDone(p int, b batchStats, logs func(map[string]uint64)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.part(p)
	ps.Batches++
	ps.Appended += b.appended
	ps.Duplicates += b.duplicates
	ps.Terminated += b.terminated
	ps.LastBatch, ps.LastCommit, ps.Lag = b.size, b.commit, b.lag
	ps.Busy += b.busy
	ps.Appending += b.commit
	ps.Acking += b.acking
	ps.Waiting += b.waiting
	ps.AckFloor, ps.Pending = b.ackFloor, b.pending
	logs(m.logs)
}

func (m *Metrics) rested(p int, d time.Duration) {
	m.mu.Lock()
	m.part(p).Rested += d
	m.mu.Unlock()
}

// purgeDue reports whether partition p should purge now, and if so records it.
func (m *Metrics) purgeDue(p int, every time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.part(p)
	if now := time.Now(); now.Sub(m.purge[p]) >= every {
		m.purge[p] = now
		return true
	}
	return false
}

// sinceOrZero is the time since t, or 0 for a zero t.
func sinceOrZero(t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return time.Since(t)
}
