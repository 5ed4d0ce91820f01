package telemetry

import (
	"testing"
	"time"
)

// BenchmarkObserve measures Observe, the cost telemetry adds to every
// call: metrics only; metrics plus a span exported to an OTLP receiver in
// the test (export: the time per call includes the background export's
// share of the CPUs, and its allocations, since the receiver and the
// exporter run in the same process); and metrics plus a span made but
// dropped at a full queue because the collector is stuck (stuck: what
// Observe itself costs the call). dropped/op is the share of spans
// dropped because the exporter did not keep up.
func BenchmarkObserve(b *testing.B) {
	for _, bc := range []struct {
		name       string
		export     bool
		parent     bool
		guardrails bool
		stuck      bool
	}{
		{"metrics", false, false, false, false},
		{"metrics+guardrails", false, false, true, false},
		{"export", true, false, false, false},
		{"export+parent", true, true, false, false},
		{"export+guardrails", true, false, true, false},
		{"stuck", true, false, false, true},
		{"stuck+guardrails", true, false, true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var r *receiver
			if bc.export {
				r = newReceiver(b)
			}
			cfg := Config{BatchTimeout: 50 * time.Millisecond}
			if bc.stuck {
				// The collector never answers: after the first batches,
				// every span is made and dropped at the queue.
				r.block = make(chan struct{})
				cfg.ExportTimeout = time.Hour
			}
			tel := newTel(b, r, cfg)
			if bc.stuck {
				b.Cleanup(func() { close(r.block) }) // before Shutdown
			}
			rec := chatRecord()
			if bc.parent {
				rec.ParentSpanID = "00f067aa0ba902b7"
			}
			if !bc.guardrails {
				rec.Guardrails = nil
			}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				tel.Observe(rec)
				n++
			}
			if bc.export {
				b.StopTimer()
				dropped := counterValue(b, tel, "aigw_telemetry_spans_dropped_total", nil)
				b.ReportMetric(dropped/float64(n), "dropped/op")
			}
		})
	}
}

// BenchmarkObserveParallel is BenchmarkObserve/export from every P.
func BenchmarkObserveParallel(b *testing.B) {
	tel := newTel(b, newReceiver(b), Config{BatchTimeout: 50 * time.Millisecond})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rec := chatRecord()
		rec.Guardrails = nil
		for pb.Next() {
			tel.Observe(rec)
		}
	})
}
