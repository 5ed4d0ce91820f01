package pii

import (
	"strings"
	"testing"

	"aigw/gateway/guard"
	"aigw/gateway/guard/internal/guardbench"
)

// BenchmarkScan/prompt-4KiB is an English prompt (ASCII fast path);
// mixed-64KiB holds French, German, Chinese and curly quotes too.
func BenchmarkScan(b *testing.B) {
	r := New(Config{})
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
			guardbench.CPULoop(b, len(bc.text), func() { out = r.Scan(bc.text, out[:0]) })
		})
	}
}

// BenchmarkAdversarial: 64 KiB texts made of what triggers the scanners.
func BenchmarkAdversarial(b *testing.B) {
	fill := func(unit string) string { return strings.Repeat(unit, (64<<10)/len(unit)+1)[:64<<10] }
	r := New(Config{})
	for name, text := range map[string]string{
		"colons":        fill("x:a"),
		"hex colons":    "x" + fill(":a1"),
		"digit groups":  fill("4111 "),
		"dashed groups": fill("123-"),
		"phones":        fill("+1 415 555 2671 "),
		"parens":        fill("(415) "),
		"ats":           fill("a@"),
		"domains":       fill("a@b.c."),
		"obfuscated":    fill("a [at] b [dot] "),
		"dotted quads":  fill("1.1.1.1."),
		"long word":     strings.Repeat("a", 32<<10) + fill("4111 1111 1111 1111 ")[:32<<10],
		"cards":         fill("4111 1111 1111 1111 "),
		"base58":        fill("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2 "),
		"escapes":       fill(`\u0034`),
	} {
		b.Run(strings.ReplaceAll(name, " ", "-"), func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			var out []guard.Finding
			guardbench.CPULoop(b, len(text), func() { out = r.Scan(text, out[:0]) })
		})
	}
}
