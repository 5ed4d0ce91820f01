package jetstream

import (
	"context"
	"testing"

	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestEnsureStreamLeavesItAlone: a second EnsureStream with the same
// configuration finds the stream as wanted (no update, which races in
// nats-server while another process creates a consumer).
func TestEnsureStreamLeavesItAlone(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := StreamConfig{Name: "AUDIT_SAME", SubjectPrefix: "audit-same"}
	s, err := EnsureStream(context.Background(), js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.withDefaults()
	want := jetstream.StreamConfig{
		Description: "aigw ledger write-ahead: events not yet sequenced", Subjects: []string{d.SubjectPrefix + ".>"},
		Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew, Storage: jetstream.FileStorage, Replicas: d.Replicas,
		Duplicates: d.Duplicates, MaxAge: d.MaxAge, MaxBytes: d.MaxBytes, MaxMsgs: -1, MaxMsgsPerSubject: -1, MaxMsgSize: d.MaxMsgSize, MaxConsumers: -1,
	}
	if !sameStream(s.CachedInfo().Config, want) {
		t.Fatalf("the stream as created is not seen as wanted:\n%+v\n%+v", s.CachedInfo().Config, want)
	}
}
