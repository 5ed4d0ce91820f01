package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"
)

// Server is an HTTP/1.1 server on a loopback port, for a [FakeUpstream] or
// a [BareProxy] in a benchmark.
type Server struct {
	// URL is the base URL, such as "http://127.0.0.1:41234".
	URL string

	srv  *http.Server
	done chan error
}

// Start serves h on 127.0.0.1 on a port the system picks, until Close.
// The server logs nothing and has no timeouts but a 30-second limit on
// reading request headers.
func Start(h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loadgen: listen: %w", err)
	}
	s := &Server{
		URL: "http://" + ln.Addr().String(),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 30 * time.Second,
			ErrorLog:          log.New(io.Discard, "", 0),
		},
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server at once, closing every connection.
func (s *Server) Close() error {
	err := s.srv.Close()
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Shutdown stops the server gracefully: it stops accepting, then waits
// for active requests (streams included) to finish or ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	<-s.done
	return err
}
