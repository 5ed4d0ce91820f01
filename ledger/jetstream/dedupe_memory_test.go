package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/jetstream"
	"aigw/ledger/ledgertest"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// TestDedupeWindowMemory measures what JetStream's duplicate window costs
// the (embedded) server's heap per event id it remembers: 200,000 events
// published with the default window and with one that has expired by the
// time the heap is read. Run with AIGW_MEASURE=1 (README, Performance).
func TestDedupeWindowMemory(t *testing.T) {
	if os.Getenv("AIGW_MEASURE") == "" {
		t.Skip("set AIGW_MEASURE=1 to measure")
	}
	for _, win := range []time.Duration{jetstream.DefaultDuplicates, 2 * time.Minute, 200 * time.Millisecond} {
		_, nc := ledgertest.JetStream(t)
		js, _ := njs.New(nc)
		scfg := jetstream.StreamConfig{Name: "DEDUPE", SubjectPrefix: "dedupe", Partitions: 1, Duplicates: win}
		if _, err := jetstream.EnsureStream(context.Background(), js, scfg); err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		const n = 200000
		body := make([]byte, 300)
		for i := range n {
			m := nats.NewMsg("dedupe.p0.acme")
			m.Data = body
			m.Header.Set("Nats-Msg-Id", ledger.NewEventID())
			if _, err := js.PublishMsgAsync(m); err != nil {
				t.Fatal(err)
			}
			if i%5000 == 0 {
				<-js.PublishAsyncComplete()
			}
		}
		<-js.PublishAsyncComplete()
		time.Sleep(time.Second)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		grew := int64(after.HeapInuse) - int64(before.HeapInuse)
		fmt.Printf("duplicate window %v: server heap +%d MiB for %d events (%d B per event)\n", win, grew>>20, n, grew/n)
		nc.Close()
	}
}
