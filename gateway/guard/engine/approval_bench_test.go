package engine

import (
	"context"
	"testing"
	"time"
)

// BenchmarkApprovalStore: one approval's life (add, decide, use) in each
// store, and a decision on one replica waking the call waiting on another.
func BenchmarkApprovalStore(b *testing.B) {
	stores := []struct {
		name string
		new  func(b *testing.B) (ApprovalStore, ApprovalStore)
	}{
		{"memory", func(b *testing.B) (ApprovalStore, ApprovalStore) { s := NewMemoryApprovals(0); return s, s }},
		{"redis", func(b *testing.B) (ApprovalStore, ApprovalStore) {
			c1, c2 := newRedisClient(b), newRedisClient(b)
			prefix := testPrefix(b, c1)
			s1, s2 := NewRedisApprovals(c1, prefix, 0, time.Hour), NewRedisApprovals(c2, prefix, 0, time.Hour)
			b.Cleanup(func() { s1.Close(); s2.Close() })
			waitSubscribed(b, c1, prefix, 2)
			return s1, s2
		}},
	}
	ctx := context.Background()
	for _, st := range stores {
		b.Run(st.name+"/lifecycle", func(b *testing.B) {
			sa, sb := st.new(b)
			b.ReportAllocs()
			for b.Loop() {
				ap := newApproval("acme")
				if err := sa.Add(ctx, ap); err != nil {
					b.Fatal(err)
				}
				if _, err := sb.Decide(ctx, "acme", ap.ID, true, "Ada", "ok"); err != nil {
					b.Fatal(err)
				}
				if _, err := sa.Consume(ctx, "acme", ap.ID, ap.Check); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(st.name+"/wake", func(b *testing.B) {
			sa, sb := st.new(b)
			b.ReportAllocs()
			for b.Loop() {
				ap := newApproval("acme")
				if err := sa.Add(ctx, ap); err != nil {
					b.Fatal(err)
				}
				woken := make(chan error, 1)
				go func() { _, err := sa.Wait(ctx, "acme", ap.ID); woken <- err }()
				if _, err := sb.Decide(ctx, "acme", ap.ID, true, "Ada", "ok"); err != nil {
					b.Fatal(err)
				}
				if err := <-woken; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
