package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"aigw/ledger"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of [ProducerConfig].
const (
	DefaultPublishTimeout = 2 * time.Second
	DefaultMaxPending     = 4000
	DefaultStallWait      = 500 * time.Millisecond
)

// ProducerConfig configures a [Producer].
type ProducerConfig struct {
	// Conn is the NATS connection to publish on. Required.
	Conn *nats.Conn
	// Stream names the subjects events go to (its prefix and partitions).
	// The producer does not create the stream: without one, every publish
	// fails with backpressure.
	Stream StreamConfig
	// Timeout bounds a fail-closed publish, from the call to the PubAck,
	// retries included, and the wait for an async PubAck; default
	// [DefaultPublishTimeout]. A ctx deadline shorter than it wins.
	Timeout time.Duration
	// MaxPending bounds the async publishes in flight; default [DefaultMaxPending].
	MaxPending int
	// StallWait is how long [Producer.PublishAsync] waits for room when
	// MaxPending publishes are in flight before it fails with backpressure;
	// default [DefaultStallWait].
	StallWait time.Duration
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
}

// Producer publishes ledger events to the stream. It is safe for concurrent
// use. It implements the gateway's recorder: [Producer.Record].
type Producer struct {
	cfg      ProducerConfig
	js       jetstream.JetStream
	log      *slog.Logger
	prefixes []string // per partition: "<prefix>.<p>."

	asyncFailed atomic.Int64 // async publishes that failed since the last Flush
}

// NewProducer returns a producer publishing on cfg.Conn.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if cfg.Conn == nil {
		return nil, errors.New("jetstream: producer needs a NATS connection")
	}
	if err := cfg.Stream.Validate(); err != nil {
		return nil, err
	}
	cfg.Stream = cfg.Stream.withDefaults()
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultPublishTimeout
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.StallWait <= 0 {
		cfg.StallWait = DefaultStallWait
	}
	p := &Producer{cfg: cfg, log: discardLogger(cfg.Logger)}
	js, err := jetstream.New(cfg.Conn,
		jetstream.WithDefaultTimeout(cfg.Timeout),
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(cfg.Timeout),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			p.asyncFailed.Add(1)
			p.log.Warn("async publish of a ledger event failed", "subject", m.Subject, "event_id", m.Header.Get(jetstream.MsgIDHeader), "err", err)
		}))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	p.js = js
	p.prefixes = make([]string, cfg.Stream.Partitions)
	for i := range p.prefixes {
		p.prefixes[i] = cfg.Stream.partitionPrefix(i)
	}
	return p, nil
}

// NewEvent returns an event of a tenant's log with a fresh UUIDv7 id and
// the current time; the caller fills the rest.
func NewEvent(tenant, kind string) *ledger.Event {
	return &ledger.Event{ID: ledger.NewEventID(), Tenant: tenant, Kind: kind, Time: time.Now()}
}

// Ack is JetStream's acknowledgement of an event.
type Ack struct {
	Stream   string
	Sequence uint64
	// Duplicate: JetStream already held this event id (a retry within the
	// duplicate window); nothing new was stored.
	Duplicate bool
	// PayloadSHA256 is the payload commitment written into the entry ("" for
	// an event without payload).
	PayloadSHA256 string
}

// message validates ev and builds its message. A non-nil payload (even
// empty) is committed to with a fresh salt: the published entry is ev with
// PayloadSHA256 set (ev itself is not modified).
func (p *Producer) message(ev *ledger.Event, payload []byte) (*nats.Msg, string, error) {
	if ev == nil {
		return nil, "", &ledger.EventError{Reason: "nil event"}
	}
	// Validates every field and the entry's size.
	body, commitment, err := appendBody(make([]byte, 0, bodySize(ev, payload)), ev, payload)
	if err != nil {
		return nil, "", err
	}
	if max := p.cfg.Conn.MaxPayload(); max > 0 && int64(len(body))+int64(len(ev.ID))+64 > max {
		return nil, "", &ledger.EventError{Field: "payload", Reason: fmt.Sprintf("message of %d bytes is over the server's %d-byte limit", len(body), max)}
	}
	m := &nats.Msg{
		Subject: p.subject(ev.Tenant),
		Header:  nats.Header{jetstream.MsgIDHeader: []string{ev.ID}},
		Data:    body,
	}
	return m, commitment, nil
}

// subject is the subject of a tenant's events: its partition's prefix and
// the tenant.
func (p *Producer) subject(tenant string) string {
	return p.prefixes[p.cfg.Stream.Partition(tenant)] + tenant
}

// Record publishes an event and returns once JetStream has acknowledged it
// (fail-closed). See [Producer.Append].
func (p *Producer) Record(ctx context.Context, ev *ledger.Event, payload []byte) error {
	_, err := p.Append(ctx, ev, payload)
	return err
}

// Append validates an event, publishes it with Nats-Msg-Id set to its id and
// waits for the PubAck, for at most the configured Timeout.
//
// A non-nil payload (even empty) is stored beside the entry, which commits to
// it with a fresh salt. An invalid event returns a *[ledger.EventError] and is
// not published: the event is validated and encoded by [ledger.Event.Entry]
// (every field, canonical form, size), so the published entry is canonical by
// construction, and the sequencer checks it again on receipt
// ([aigw/ledger/sequencer.Check]), since anything can publish to the stream.
// Every other failure (no PubAck in time, no stream, stream
// full, connection down) returns an error wrapping [ledger.ErrBackpressure]:
// the event may or may not be in the stream, and calling Append again with
// the same event (same id) is safe: JetStream drops the repeat within its
// duplicate window, and the sequencer skips an id its log already holds. (A
// repeat with a payload commits with a new salt; whichever copy is sequenced
// first is the one kept.)
func (p *Producer) Append(ctx context.Context, ev *ledger.Event, payload []byte) (Ack, error) {
	m, commitment, err := p.message(ev, payload)
	if err != nil {
		return Ack{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	pa, err := p.js.PublishMsg(ctx, m) // retries no-responders (leader elections) with the same message
	if err != nil {
		return Ack{}, p.publishError(ev.ID, m.Subject, err)
	}
	return Ack{Stream: pa.Stream, Sequence: pa.Sequence, Duplicate: pa.Duplicate, PayloadSHA256: commitment}, nil
}

// publishError classifies a publish failure: a message the stream refuses
// for its size is the event's fault; anything else is backpressure.
func (p *Producer) publishError(id, subject string, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum || errors.Is(err, nats.ErrMaxPayload) {
		return &ledger.EventError{Field: "payload", Reason: "message too large for the stream: " + err.Error()}
	}
	return fmt.Errorf("publish event %s to %s: %w: %w", id, subject, ledger.ErrBackpressure, err)
}

// Future is the outcome of an async publish.
type Future struct {
	p          *Producer
	paf        jetstream.PubAckFuture
	id         string
	subject    string
	commitment string
}

// PublishAsync validates an event and publishes it without waiting for the
// PubAck; [Future.Wait] or [Producer.Flush] wait for it. At most MaxPending
// publishes are in flight: when the window is full, PublishAsync waits up to
// StallWait for room and then fails with [ledger.ErrBackpressure]. Errors are
// those of [Producer.Append].
func (p *Producer) PublishAsync(ev *ledger.Event, payload []byte) (*Future, error) {
	m, commitment, err := p.message(ev, payload)
	if err != nil {
		return nil, err
	}
	paf, err := p.js.PublishMsgAsync(m, jetstream.WithStallWait(p.cfg.StallWait))
	if err != nil {
		return nil, p.publishError(ev.ID, m.Subject, err)
	}
	return &Future{p: p, paf: paf, id: ev.ID, subject: m.Subject, commitment: commitment}, nil
}

// PublishBatchAsync publishes events of one log as one message: JetStream
// holds all of them or none, and the sequencer appends them in order, in
// one transaction. payloads[i] is events[i]'s payload (nil: none; payloads
// may be shorter than events). The batch's Nats-Msg-Id is the first
// event's id. Errors are those of [Producer.Append]; an event of another
// log than the first is an *[ledger.EventError].
func (p *Producer) PublishBatchAsync(events []*ledger.Event, payloads [][]byte) (*Future, error) {
	if len(events) == 0 {
		return nil, &ledger.EventError{Reason: "empty batch"}
	}
	payload := func(i int) []byte {
		if i < len(payloads) {
			return payloads[i]
		}
		return nil
	}
	if len(events) == 1 {
		return p.PublishAsync(events[0], payload(0))
	}
	body, err := appendBatch(nil, events, payload)
	if err != nil {
		return nil, err
	}
	subject := p.subject(events[0].Tenant)
	if max := p.cfg.Conn.MaxPayload(); max > 0 && int64(len(body))+64 > max {
		return nil, &ledger.EventError{Field: "payload", Reason: fmt.Sprintf("batch of %d bytes is over the server's %d-byte limit", len(body), max)}
	}
	m := &nats.Msg{Subject: subject, Header: nats.Header{jetstream.MsgIDHeader: []string{events[0].ID}}, Data: body}
	paf, err := p.js.PublishMsgAsync(m, jetstream.WithStallWait(p.cfg.StallWait))
	if err != nil {
		return nil, p.publishError(events[0].ID, subject, err)
	}
	return &Future{p: p, paf: paf, id: events[0].ID, subject: subject}, nil
}

// Wait waits for the PubAck of an async publish. It fails with an error
// wrapping [ledger.ErrBackpressure] if the publish failed, if no PubAck came
// within the producer's Timeout, or if ctx ends first; publishing the same
// event again is then safe.
func (f *Future) Wait(ctx context.Context) (Ack, error) {
	select {
	case pa := <-f.paf.Ok():
		return Ack{Stream: pa.Stream, Sequence: pa.Sequence, Duplicate: pa.Duplicate, PayloadSHA256: f.commitment}, nil
	case err := <-f.paf.Err():
		return Ack{}, f.p.publishError(f.id, f.subject, err)
	case <-ctx.Done():
		return Ack{}, f.p.publishError(f.id, f.subject, ctx.Err())
	}
}

// Flush waits until every async publish made so far is acknowledged or has
// failed. It returns an error wrapping [ledger.ErrBackpressure] if ctx ends
// first, or if any async publish failed since the previous Flush (the
// futures of those say which).
func (p *Producer) Flush(ctx context.Context) error {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return fmt.Errorf("flush %d pending ledger events: %w: %w", p.js.PublishAsyncPending(), ledger.ErrBackpressure, ctx.Err())
	}
	if n := p.asyncFailed.Swap(0); n > 0 {
		return fmt.Errorf("%d async ledger publishes failed: %w", n, ledger.ErrBackpressure)
	}
	return nil
}

// MaxPayload is the largest message the server takes, in bytes.
func (p *Producer) MaxPayload() int64 { return p.cfg.Conn.MaxPayload() }

// Connected reports whether the producer's NATS connection is up.
func (p *Producer) Connected() bool { return p.cfg.Conn.IsConnected() }

// Pending returns the number of async publishes in flight.
func (p *Producer) Pending() int { return p.js.PublishAsyncPending() }
