package pii

import (
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"aigw/gateway/guard"
)

// benchText returns n bytes of realistic text: the prompt and prose
// fixtures, repeated, cut on a character boundary.
func benchText(tb testing.TB, n int) string {
	tb.Helper()
	var parts []string
	for _, f := range []string{"testdata/prompt.txt", "testdata/prose.txt"} {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		parts = append(parts, string(b))
	}
	var sb strings.Builder
	for k := 0; sb.Len() < n; k++ {
		// Mostly the English prompt, as real prompts are.
		if k%4 == 3 {
			sb.WriteString(parts[1])
		} else {
			sb.WriteString(parts[0])
		}
	}
	s := sb.String()[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// BenchmarkScan/prompt-4KiB is an English prompt (ASCII fast path);
// mixed-64KiB holds French, German, Chinese and curly quotes too.
func BenchmarkScan(b *testing.B) {
	r := New(Config{})
	for _, bc := range []struct {
		name string
		text string
	}{
		{"prompt-4KiB", benchText(b, 4096)},
		{"mixed-64KiB", benchText(b, 64<<10)},
		{"normalized-4KiB", "\u200b" + benchText(b, 4093)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.text)))
			b.ReportAllocs()
			var out []guard.Finding
			cpuLoop(b, len(bc.text), func() { out = r.Scan(bc.text, out[:0]) })
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
			cpuLoop(b, len(text), func() { out = r.Scan(text, out[:0]) })
		})
	}
}
