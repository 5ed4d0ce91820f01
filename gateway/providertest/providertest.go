// Package providertest runs fake LLM provider servers for tests. Each fake
// speaks one provider's wire format, taken from its public API reference,
// replays recorded responses and SSE streams from testdata/providers, and
// injects faults on demand: error statuses with Retry-After, overload,
// malformed chunks, streams cut mid-answer and upstreams that hang.
package providertest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Fault is what a fake does to one request instead of (or while) answering
// normally. The zero Fault answers normally.
type Fault struct {
	// Status, if not 0, answers with this status and the provider's error
	// body (Type and Message fill it; defaults per status).
	Status     int
	Type       string
	Message    string
	RetryAfter string // Retry-After header value
	// Delay waits before answering (a slow upstream).
	Delay time.Duration
	// Hang never answers: the handler waits until the client goes away.
	Hang bool
	// CutAfter, if > 0, cuts the connection of a streamed answer after
	// that many events (no end marker, no clean close).
	CutAfter int
	// MalformedAt, if > 0, replaces that event (1-based) of a streamed
	// answer with bytes that do not parse.
	MalformedAt int
	// ErrorEventAt, if > 0, sends the provider's in-stream error event
	// (e.g. Anthropic's overloaded_error) as that event and stops.
	ErrorEventAt int
}

// Request is a request a fake received.
type Request struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// Server is a fake provider server.
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	faults   []Fault
	requests []Request
	inflight int
	maxIn    int
}

// newServer starts a fake with handler h, closed when t ends.
func newServer(t testing.TB, h func(s *Server, w http.ResponseWriter, r *http.Request, body []byte, f Fault)) *Server {
	s := &Server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		var f Fault
		if len(s.faults) > 0 {
			f, s.faults = s.faults[0], s.faults[1:]
		}
		s.inflight++
		s.maxIn = max(s.maxIn, s.inflight)
		s.mu.Unlock()
		defer func() { s.mu.Lock(); s.inflight--; s.mu.Unlock() }()
		if f.Hang {
			<-r.Context().Done()
			return
		}
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return
			}
		}
		h(s, w, r, body, f)
	}))
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
	})
	return s
}

// Push queues faults for the next requests, one each, in order.
func (s *Server) Push(faults ...Fault) {
	s.mu.Lock()
	s.faults = append(s.faults, faults...)
	s.mu.Unlock()
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// MaxInFlight is the largest number of requests handled at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxIn
}

// Cut hijacks the connection and closes it without a proper end: the
// client sees a stream cut mid-answer.
func Cut(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// Fixture reads testdata/providers/<name> from the module root.
func Fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(FixturePath(name))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return b
}

// FixturePath is the path of testdata/providers/<name> in the module.
func FixturePath(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "providers", name)
}

// waitOrDone sleeps d unless ctx ends first.
func waitOrDone(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}
