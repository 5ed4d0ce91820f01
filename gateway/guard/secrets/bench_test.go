package secrets

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

func BenchmarkScan(b *testing.B) {
	d := New(Config{})
	leak := "\n    env:\n      DATABASE_URL: postgres://app:" + rnd(alnum, 16) + "@db:5432/app\n      GITHUB_TOKEN: ghp_" + rnd(alnum, 36) + "\n"
	withSecret := benchText(b, 4096-len(leak)) + leak
	for _, bc := range []struct {
		name string
		text string
	}{
		{"prompt-4KiB", benchText(b, 4096)},
		{"prompt-with-secrets-4KiB", withSecret},
		{"mixed-64KiB", benchText(b, 64<<10)},
		{"normalized-4KiB", "\u200b" + benchText(b, 4093)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.text)))
			b.ReportAllocs()
			var out []guard.Finding
			cpuLoop(b, len(bc.text), func() { out = d.Scan(bc.text, out[:0]) })
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
			cpuLoop(b, len(text), func() { out = d.Scan(text, out[:0]) })
		})
	}
}
