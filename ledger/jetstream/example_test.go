package jetstream_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"aigw/ledger/jetstream"
	"aigw/ledger/sequencer"
	"aigw/ledger/signer"
	"aigw/ledger/sqlite"

	"github.com/nats-io/nats.go"
)

// The single-process deployment: an embedded nats-server, a producer (the
// gateway's recorder) and the sequencing loop into SQLite.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "aigw-example-")
	defer os.RemoveAll(dir)

	srv, err := jetstream.RunEmbedded(jetstream.EmbeddedConfig{StoreDir: filepath.Join(dir, "nats"), Port: -1})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL(), nats.InProcessServer(srv))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "ledger.db")})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	key, _, _ := signer.Generate("example.aigw.local/ledger")
	seq, _ := sequencer.New(sequencer.Config{Store: store, Signer: key, OriginPrefix: "example.aigw.local/ledger"})
	shutdown, err := jetstream.StartSequencer(ctx, jetstream.SequencerConfig{Conn: nc, Sequencer: seq, Store: store})
	if err != nil {
		log.Fatal(err)
	}
	defer shutdown(ctx)

	prod, err := jetstream.NewProducer(jetstream.ProducerConfig{Conn: nc})
	if err != nil {
		log.Fatal(err)
	}
	ev := jetstream.NewEvent("acme", "request")
	ev.Attrs = map[string]any{"model": "gpt-4o"}
	// Fail-closed: Record returns once JetStream holds the event.
	if err := prod.Record(ctx, ev, []byte(`{"messages":[{"role":"user","content":"hi"}]}`)); err != nil {
		log.Fatal(err) // errors.Is(err, ledger.ErrBackpressure): answer 503 + Retry-After
	}
	for {
		found, err := store.LookupEvents(ctx, "acme", []string{ev.ID})
		if err != nil {
			log.Fatal(err)
		}
		if i, ok := found[ev.ID]; ok {
			fmt.Println("sequenced at index", i)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Output: sequenced at index 0
}
