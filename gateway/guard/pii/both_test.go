package pii_test

import (
	"aigw/gateway/guard/internal/guardbench"
	"testing"

	"aigw/gateway/guard"
	"aigw/gateway/guard/pii"
	"aigw/gateway/guard/secrets"
)

// BenchmarkBoth runs the default PII recognizer and secrets detector one
// after the other on the same text, as a policy with both checks does.
func BenchmarkBoth(b *testing.B) {
	r := pii.New(pii.Config{})
	d := secrets.New(secrets.Config{})
	for _, bc := range []struct {
		name string
		text string
	}{
		{"prompt-4KiB", guardbench.Text(4096)},
		{"mixed-64KiB", guardbench.Text(64 << 10)},
		{"normalized-4KiB", "\u200b" + guardbench.Text(4093)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.text)))
			b.ReportAllocs()
			var out []guard.Finding
			guardbench.CPULoop(b, len(bc.text), func() {
				out = r.Scan(bc.text, out[:0])
				out = d.Scan(bc.text, out)
			})
		})
	}
}
