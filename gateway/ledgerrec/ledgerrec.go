// Package ledgerrec connects the gateway to the ledger's JetStream
// producer: it adapts *jetstream.Producer to gateway.Recorder.
package ledgerrec

import (
	"context"

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

// Publish starts publishing ev.
func (r JetStream) Publish(ev *ledger.Event, payload []byte) (gateway.Pending, error) {
	f, err := r.Producer.PublishAsync(ev, payload)
	if err != nil {
		return nil, err
	}
	return future{f}, nil
}

type future struct{ f *jetstream.Future }

func (f future) Wait(ctx context.Context) error {
	_, err := f.f.Wait(ctx)
	return err
}
