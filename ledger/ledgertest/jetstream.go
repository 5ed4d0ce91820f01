package ledgertest

import (
	"os"
	"sync/atomic"
	"testing"
	"time"

	"aigw/ledger/jetstream"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DefaultNATSURL is the machine's NATS JetStream server that tests use
// unless AIGW_TEST_NATS says otherwise.
const DefaultNATSURL = "nats://127.0.0.1:4222"

// JetStream starts an embedded nats-server with JetStream, on a random port
// (never 4222, the machine's real server) and a store directory private to
// t, and returns it with an in-process client connection. Both are closed
// when t ends. Restart a server on its store directory with
// srv.StoreDir() and [jetstream.RunEmbedded].
func JetStream(t testing.TB) (*server.Server, *nats.Conn) {
	t.Helper()
	srv, err := jetstream.RunEmbedded(jetstream.EmbeddedConfig{StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatalf("ledgertest: embedded JetStream: %v", err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	var done atomic.Bool
	nc, err := nats.Connect(srv.ClientURL(), nats.InProcessServer(srv),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if !done.Load() { // t.Logf panics once t has ended
				t.Logf("ledgertest: nats client: %v", err)
			}
		}))
	if err != nil {
		t.Fatalf("ledgertest: connect to embedded JetStream: %v", err)
	}
	t.Cleanup(nc.Close)
	t.Cleanup(func() { done.Store(true) })
	return srv, nc
}

// NATSURL returns the URL of the machine's NATS JetStream server
// (AIGW_TEST_NATS, default [DefaultNATSURL]) after checking that it answers;
// it fails t if it does not. Tests using it must create streams and
// subjects of their own and delete them when done.
func NATSURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("AIGW_TEST_NATS")
	if url == "" {
		url = DefaultNATSURL
	}
	nc, err := nats.Connect(url, nats.Timeout(3*time.Second), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("nats at %s: %v (set AIGW_TEST_NATS, see README)", url, err)
	}
	defer nc.Close()
	if err := nc.FlushTimeout(3 * time.Second); err != nil {
		t.Fatalf("nats at %s does not answer: %v (set AIGW_TEST_NATS, see README)", url, err)
	}
	return url
}
