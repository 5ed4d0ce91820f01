// Package ledgerrec connects the gateway to the ledger's JetStream
// producer: it adapts *jetstream.Producer to gateway.Recorder.
package ledgerrec

import (
	"context"
	"fmt"

	"aigw/gateway"
	"aigw/ledger"
	"aigw/ledger/jetstream"
)

// JetStream records gateway events with a JetStream producer: each event is
// published asynchronously and Pending.Wait waits for its PubAck.
type JetStream struct {
	Producer *jetstream.Producer
}

var _ gateway.Recorder = JetStream{}

var _ gateway.HealthChecker = JetStream{}

// Publish starts publishing events of one log as one JetStream message.
func (r JetStream) Publish(events []*ledger.Event, payloads [][]byte) (gateway.Pending, error) {
	f, err := r.Producer.PublishBatchAsync(events, payloads)
	if err != nil {
		return nil, err
	}
	return future{f}, nil
}

// Healthy fails when the producer's NATS connection is down.
func (r JetStream) Healthy() error {
	if !r.Producer.Connected() {
		return fmt.Errorf("ledger: NATS connection down: %w", ledger.ErrBackpressure)
	}
	return nil
}

type future struct{ f *jetstream.Future }

func (f future) Wait(ctx context.Context) error {
	_, err := f.f.Wait(ctx)
	return err
}
