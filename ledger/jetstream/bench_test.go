package jetstream_test

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/jetstream"
	"aigw/ledger/ledgertest"
	"aigw/ledger/sequencer"

	njs "github.com/nats-io/nats.go/jetstream"
)

// sizedEvent returns a realistic event of log whose entry is size bytes.
func sizedEvent(tb testing.TB, log string, size int) *ledger.Event {
	ev := event(log)
	ev.Attrs["note"] = ""
	e, err := ev.Entry()
	if err != nil || len(e) > size {
		tb.Fatalf("event of %d bytes (%v) does not fit in %d", len(e), err, size)
	}
	ev.Attrs["note"] = strings.Repeat("x", size-len(e))
	return ev
}

func benchProducer(b *testing.B) *jetstream.Producer {
	_, nc := ledgertest.JetStream(b)
	js, err := njs.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := jetstream.EnsureStream(b.Context(), js, jetstream.StreamConfig{MaxBytes: -1}); err != nil {
		b.Fatal(err)
	}
	p, err := jetstream.NewProducer(jetstream.ProducerConfig{Conn: nc, MaxPending: 4000})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkPublishSync publishes 1 KiB events fail-closed (each waits for
// its PubAck) with Nats-Msg-Id to an embedded server; the event's encoding
// is part of the cost, as in the gateway.
func BenchmarkPublishSync(b *testing.B) {
	b.Run("conc=1", func(b *testing.B) {
		p := benchProducer(b)
		ev := sizedEvent(b, "acme", 1024)
		b.ReportAllocs()
		b.SetBytes(1024)
		for b.Loop() {
			ev.ID = ledger.NewEventID()
			if err := p.Record(b.Context(), ev, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("conc=64", func(b *testing.B) {
		p := benchProducer(b)
		b.ReportAllocs()
		b.SetBytes(1024)
		b.SetParallelism(32) // × GOMAXPROCS 2
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			ev := sizedEvent(b, "acme", 1024)
			for pb.Next() {
				ev.ID = ledger.NewEventID()
				if err := p.Record(b.Context(), ev, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	})
}

// BenchmarkPublishAsync publishes 1 KiB events with Nats-Msg-Id without
// waiting for each PubAck (4000 in flight), and flushes at the end.
func BenchmarkPublishAsync(b *testing.B) {
	p := benchProducer(b)
	ev := sizedEvent(b, "acme", 1024)
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		ev.ID = ledger.NewEventID()
		if _, err := p.PublishAsync(ev, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSequencerAppend appends batches of 500 1 KiB events to one log
// with sequencer.Append, as the sequencing loop does per batch.
func BenchmarkSequencerAppend(b *testing.B) {
	for _, st := range stores {
		b.Run("store="+st.name, func(b *testing.B) {
			store := st.open(b)
			seq, err := sequencer.New(sequencer.Config{Store: store, Signer: keys(), OriginPrefix: origin})
			if err != nil {
				b.Fatal(err)
			}
			const batch = 500
			tmpl, err := sizedEvent(b, "acme", 1024).Entry()
			if err != nil {
				b.Fatal(err)
			}
			idAt := bytes.Index(tmpl, []byte(`"id":"`)) + len(`"id":"`)
			recs := make([]sequencer.Record, batch)
			var n atomic.Int64
			b.ReportAllocs()
			b.SetBytes(batch * 1024)
			for b.Loop() {
				for i := range recs {
					e := bytes.Clone(tmpl)
					copy(e[idAt:], ledger.NewEventID())
					recs[i] = sequencer.Record{Entry: e}
				}
				res, err := seq.Append(b.Context(), "acme", recs)
				if err != nil {
					b.Fatal(err)
				}
				n.Add(int64(len(res)))
			}
			b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n.Load()), "ns/event")
		})
	}
}
