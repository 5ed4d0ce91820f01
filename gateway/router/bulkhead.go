package router

import (
	"context"
	"time"
)

// bulkhead limits the concurrent attempts on one provider: a semaphore
// whose slots are a buffered channel's places.
type bulkhead struct {
	provider string
	sem      chan struct{}
}

func newBulkhead(provider string, limit int) *bulkhead {
	return &bulkhead{provider: provider, sem: make(chan struct{}, limit)}
}

// acquire takes a slot, waiting up to wait for one. It returns
// ErrBulkheadFull when none came free, or ctx's error when ctx ended
// first.
func (b *bulkhead) acquire(ctx context.Context, wait time.Duration) error {
	select {
	case b.sem <- struct{}{}:
		return nil
	default:
	}
	if wait <= 0 {
		return ErrBulkheadFull
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case b.sem <- struct{}{}:
		return nil
	case <-t.C:
		return ErrBulkheadFull
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tryAcquire takes a slot if one is free.
func (b *bulkhead) tryAcquire() bool {
	select {
	case b.sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// release frees a slot taken by acquire or tryAcquire.
func (b *bulkhead) release() { <-b.sem }

func (b *bulkhead) full() bool { return len(b.sem) >= cap(b.sem) }
func (b *bulkhead) inUse() int { return len(b.sem) }
func (b *bulkhead) limit() int { return cap(b.sem) }
