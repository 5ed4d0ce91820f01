package main

import (
	"runtime"
	"runtime/metrics"
	"sync"
)

// runQueue tells the sequencer when the gateway's goroutines wait for a
// CPU (jetstream.SequencerConfig.Busy): the Go scheduler's count of
// runnable goroutines, smoothed over the last few samples (each call takes
// one), at or above four per GOMAXPROCS (measured on two cores: 1.4 to 3.7
// at 2,000 calls/s, which the gateway serves with CPU to spare, 13 to 45 at
// open throttle). Calls in flight would be a worse signal:
// a thousand open streams waiting for their upstream's next chunk are
// many calls and no CPU.
type runQueue struct {
	mu     sync.Mutex
	sample [1]metrics.Sample
	avg    float64
	ok     bool
}

func newRunQueue() *runQueue {
	q := &runQueue{sample: [1]metrics.Sample{{Name: "/sched/goroutines/runnable:goroutines"}}}
	metrics.Read(q.sample[:])
	q.ok = q.sample[0].Value.Kind() == metrics.KindUint64
	return q
}

// busy reports whether goroutines queue for the CPU.
func (q *runQueue) busy() bool {
	if !q.ok {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	metrics.Read(q.sample[:])
	q.avg = 0.7*q.avg + 0.3*float64(q.sample[0].Value.Uint64())
	return q.avg >= float64(4*runtime.GOMAXPROCS(0))
}
