package router

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"aigw/gateway"
)

// errClosedEarly is the error of a committed stream attempt whose caller
// closed it before its end.
var errClosedEarly = errors.New("stream closed by the caller before its end")

// stream is a committed stream: it replays the first chunk, then passes
// the upstream's chunks through. When it ends (io.EOF, an error, or Close
// before either) it ends its attempt exactly once: breaker, bulkhead slot,
// context, counters, and the attempt's report.
type stream struct {
	a          *attempt
	inner      gateway.Stream
	first      *gateway.ChatChunk // replayed by the first Next; read only by Next
	pendingEOF bool               // the upstream ended cleanly before any chunk
	ttfb       time.Duration
	stopClose  func() bool // unregisters the close on the caller's context end

	// ioMu serializes the upstream stream's Next and Close (Close first
	// ends the attempt's context, which unblocks a Next in progress).
	ioMu sync.Mutex

	done atomic.Bool
	// finished is closed once the stream's end is fully handled, its
	// attempt reported included. Whoever sees the end (Next, Close, from
	// any goroutine) waits for it, so that the report is never later than
	// what the caller does next (record the call's end).
	finished chan struct{}
	mu       sync.Mutex
	ended    bool
	endErr   error // what Next returns once ended
	usage    *gateway.Usage
	closeErr error
}

var _ gateway.Stream = (*stream)(nil)

// Next returns the next chunk; after the stream ended, the error it ended
// with (io.EOF for a clean end), or an error after Close.
func (s *stream) Next() (*gateway.ChatChunk, error) {
	if s.done.Load() {
		<-s.finished
		return nil, s.terminal()
	}
	if c := s.first; c != nil {
		s.first = nil
		return c, nil
	}
	if s.pendingEOF {
		return nil, s.finish(io.EOF, false)
	}
	s.ioMu.Lock()
	c, err := s.inner.Next()
	s.ioMu.Unlock()
	if err != nil {
		return nil, s.finish(err, false)
	}
	return c, nil
}

// Buffered reports whether the next chunk is already here (see
// gateway.Buffered); like Next, it is not to be called concurrently with Next.
func (s *stream) Buffered() bool {
	if s.first != nil || s.pendingEOF {
		return true
	}
	if s.done.Load() {
		return false
	}
	b, ok := s.inner.(gateway.Buffered)
	return ok && b.Buffered()
}

// Usage returns the upstream's usage (see gateway.Stream); like Next, it
// is not to be called concurrently with Next.
func (s *stream) Usage() *gateway.Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return s.usage
	}
	return s.inner.Usage()
}

// Close ends the stream; it is safe to call more than once and from
// another goroutine than Next's.
func (s *stream) Close() error {
	s.finish(nil, true)
	s.mu.Lock()
	err := s.closeErr
	s.closeErr = nil
	s.mu.Unlock()
	return err
}

func (s *stream) terminal() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endErr
}

// finish ends the stream the first time it is called (err is how Next saw
// it end; closing: Close was called) and returns what Next should return.
func (s *stream) finish(err error, closing bool) error {
	s.mu.Lock()
	if s.ended {
		e := s.endErr
		s.mu.Unlock()
		<-s.finished // another goroutine is ending it: wait for its report
		return e
	}
	s.ended = true
	s.done.Store(true)
	s.endErr = err
	if closing {
		s.endErr = errStreamClosed
		if cerr := s.a.parent.Err(); cerr != nil {
			// Closed because the caller's context ended (the agent left).
			s.endErr = fmt.Errorf("%w: %w", errStreamClosed, cerr)
		}
	}
	endErr := s.endErr
	s.mu.Unlock()

	a := s.a
	s.stopClose()
	if closing {
		// End the context first: it unblocks a Next in progress.
		a.cancel(errClosedEarly)
	}
	s.ioMu.Lock()
	var usage *gateway.Usage
	if !closing {
		usage = s.inner.Usage()
	}
	cerr := s.inner.Close()
	s.ioMu.Unlock()
	s.mu.Lock()
	s.usage = usage
	s.mu.Unlock()
	var outcome string
	status := 0
	rerr := err
	switch {
	case closing:
		outcome, rerr = gateway.OutcomeCanceled, errClosedEarly
	case errors.Is(err, io.EOF):
		outcome, rerr = gateway.OutcomeOK, nil
	default:
		outcome, _, status, rerr = a.settle(err)
	}
	d := time.Since(a.begin)
	a.end(outcome, d, s.ttfb)
	a.report(outcome, status, rerr, "", d)
	if closing {
		s.mu.Lock()
		s.closeErr = cerr
		s.mu.Unlock()
	}
	close(s.finished)
	return endErr
}
