package gateway

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"aigw/ledger"
)

// Batch is the ledger events of one unit of work (an agent's call, a
// delegation hop) on their way to the ledger: Add gathers events, Publish
// starts recording those gathered since as one unit (all or none), and
// Ready waits until every published event is durable. Fail-closed (the
// default) an error from Ready means the answer must be withheld;
// fail-open, Ready returns at once and acknowledgements are checked in
// the background (failures counted and logged). Set the exported fields
// before use; methods are safe for concurrent use.
type Batch struct {
	Recorder Recorder
	FailOpen bool
	// Timeout bounds Ready's wait for the acknowledgements.
	Timeout time.Duration
	// Failures counts events the ledger did not take (may be nil).
	Failures *atomic.Int64
	Log      *slog.Logger
	// Tenant and TraceID name the unit in logs.
	Tenant, TraceID string
	// Background, when set, tracks fail-open acknowledgement checks (so an
	// owner can wait for them when it closes).
	Background *sync.WaitGroup

	mu   sync.Mutex
	evs  []*ledger.Event
	pls  [][]byte
	pend []Pending
	err  error // the first failure
}

// Add gathers an event (and its payload, nil for none).
func (b *Batch) Add(ev *ledger.Event, payload []byte) {
	b.mu.Lock()
	b.evs = append(b.evs, ev)
	b.pls = append(b.pls, payload)
	b.mu.Unlock()
}

// Remove drops an event not yet published, and reports whether it did.
func (b *Batch) Remove(ev *ledger.Event) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, e := range b.evs {
		if e == ev {
			b.evs = append(b.evs[:i], b.evs[i+1:]...)
			b.pls = append(b.pls[:i], b.pls[i+1:]...)
			return true
		}
	}
	return false
}

func (b *Batch) failed(n int) {
	if b.Failures != nil {
		b.Failures.Add(int64(n))
	}
}

// Publish starts recording the events gathered since the last Publish, as
// one unit.
func (b *Batch) Publish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.evs) == 0 {
		return
	}
	evs, pls := b.evs, b.pls
	b.evs, b.pls = nil, nil
	pend, err := b.Recorder.Publish(evs, pls)
	if err != nil {
		b.failed(1)
		if b.err == nil {
			b.err = err
		}
		b.Log.Warn("ledger publish failed", "events", len(evs), "tenant", b.Tenant, "trace_id", b.TraceID, "err", err)
		return
	}
	b.pend = append(b.pend, pend)
}

// Ready publishes what is gathered and waits until every published event
// is durable (ctx's values, not its end, govern the wait: it is bounded by
// Timeout). Fail-closed it returns the ledger's failure; fail-open nil.
func (b *Batch) Ready(ctx context.Context) error {
	b.Publish()
	b.mu.Lock()
	pend, err := b.pend, b.err
	b.pend = nil
	b.mu.Unlock()
	if b.FailOpen {
		if err != nil {
			b.Log.Warn("ledger did not take the events (fail-open: answering anyway)", "tenant", b.Tenant, "trace_id", b.TraceID, "err", err)
		}
		if len(pend) > 0 {
			if b.Background != nil {
				b.Background.Add(1)
			}
			go b.await(pend)
		}
		return nil
	}
	if len(pend) > 0 {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.Timeout)
		defer cancel()
		for _, pd := range pend {
			if werr := pd.Wait(wctx); werr != nil {
				b.failed(1)
				if err == nil {
					err = werr
				}
			}
		}
	}
	if err != nil {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return err
}

// await checks a fail-open unit's acknowledgements, counting and logging
// the events the ledger did not take.
func (b *Batch) await(pend []Pending) {
	if b.Background != nil {
		defer b.Background.Done()
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.Timeout)
	defer cancel()
	for _, pd := range pend {
		if err := pd.Wait(ctx); err != nil {
			b.failed(1)
			b.Log.Warn("ledger did not acknowledge events (fail-open)", "tenant", b.Tenant, "trace_id", b.TraceID, "err", err)
		}
	}
}
