package sqlite_test

import (
	"fmt"
	"testing"

	"aigw/ledger"
	"aigw/ledger/sqlite"
	"aigw/ledger/storetest"
)

func benchStore(b *testing.B) *sqlite.Store {
	b.Helper()
	path := tempDB(b)
	s, err := sqlite.Open(b.Context(), sqlite.Config{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkAppendBatch appends batches of 1 KiB events (realistic attributes,
// UUIDv7 ids) to one growing log: 4 is one call's events, 40 a group commit
// of ten calls, 500 a full batch. Only AppendBatch is timed: building the
// batch (encoding, hashing, signing) is the sequencer's cost.
func BenchmarkAppendBatch(b *testing.B) {
	for _, n := range []int{4, 40, 500} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s := benchStore(b)
			a := storetest.NewAppender(b, "bench")
			next := func() *ledger.Batch {
				items := make([]storetest.Item, n)
				for i := range items {
					items[i].Event = storetest.SizedEvent(b, a.Log(), 1024)
				}
				return a.Next(b, items...)
			}
			rows := 0
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				batch := next()
				b.StartTimer()
				if err := s.AppendBatch(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
				rows += n
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkLookupEvents looks up the ids of a batch of 1000 (half of them in
// the log), as the sequencer does to skip redeliveries, in a log of 20,000.
func BenchmarkLookupEvents(b *testing.B) {
	s := benchStore(b)
	a := storetest.NewAppender(b, "bench")
	for range 20 {
		a.Append(b, s, tinyItems(a.Log(), 1000)...)
	}
	var ids []string
	for i := range 500 {
		ids = append(ids, a.Entry(uint64(i*40)).EventID, ledger.NewEventID())
	}
	b.ReportAllocs()
	for b.Loop() {
		found, err := s.LookupEvents(b.Context(), a.Log(), ids)
		if err != nil || len(found) != 500 {
			b.Fatalf("LookupEvents = %d found, %v", len(found), err)
		}
	}
}

// BenchmarkInclusionProof builds an inclusion proof from the store's tiles
// in a log of 70,000 (three tile levels), the read API's hot path.
func BenchmarkInclusionProof(b *testing.B) {
	s := benchStore(b)
	a := storetest.NewAppender(b, "bench")
	for range 7 {
		a.Append(b, s, tinyItems(a.Log(), 10000)...)
	}
	size := a.Size()
	i := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ledger.InclusionProof(b.Context(), s, a.Log(), i, size); err != nil {
			b.Fatal(err)
		}
		i = (i + 7919) % size
	}
}

func tinyItems(log string, n int) []storetest.Item {
	items := make([]storetest.Item, n)
	for i := range items {
		items[i].Event = storetest.TinyEvent(log)
	}
	return items
}
