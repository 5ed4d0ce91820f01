package secrets

import (
	"strings"
	"testing"

	"aigw/gateway/guard"
	"aigw/gateway/guard/internal/guardbench"
)

func BenchmarkScan(b *testing.B) {
	d := New(Config{})
	leak := "\n    env:\n      DATABASE_URL: postgres://app:" + rnd(alnum, 16) + "@db:5432/app\n      GITHUB_TOKEN: ghp_" + rnd(alnum, 36) + "\n"
	withSecret := guardbench.Text(4096-len(leak)) + leak
	for _, bc := range []struct {
		name string
		text string
	}{
		{"prompt-4KiB", guardbench.Text(4096)},
		{"prompt-with-secrets-4KiB", withSecret},
		{"mixed-64KiB", guardbench.Text(64 << 10)},
		{"normalized-4KiB", "\u200b" + guardbench.Text(4093)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.text)))
			b.ReportAllocs()
			var out []guard.Finding
			guardbench.CPULoop(b, len(bc.text), func() { out = d.Scan(bc.text, out[:0]) })
		})
	}
}

// BenchmarkAdversarial: 64 KiB texts packed with keywords.
func BenchmarkAdversarial(b *testing.B) {
	d := New(Config{})
	for name, text := range adversarial() {
		b.Run(strings.ReplaceAll(name, " ", "-"), func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			var out []guard.Finding
			guardbench.CPULoop(b, len(text), func() { out = d.Scan(text, out[:0]) })
		})
	}
}
