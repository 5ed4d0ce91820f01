package pii

import (
	"aigw/gateway/guard/internal/guardbench"
	"aigw/gateway/guard/textnorm"
	"slices"
	"testing"

	"aigw/gateway/guard"
)

func TestNeedsNorm(t *testing.T) {
	for _, test := range []struct {
		text string
		want bool
	}{
		{"plain ASCII text, tabs\tand\r\nnewlines", false},
		{"hello “world” — café, naïve, Müller", false},
		{"会议纪要：第三季度的目标。负责人：王先生。", false},
		{"family 👨\u200d👩\u200d👧 and ❤\ufe0f", false},
		{"e\u0301 combining", false},
		{"card 4111\u200b1111", true},
		{"x \u200b1111", true},
		{"wait… what", true},
		{"ｐａｓｓ", true},
		{"no\u00a0break", true},
		{"٤١١١", true},
		{"a\x00b", true},
		{"时间：10点", true},
		{"m² area", true},
		{"user＠example", true},
	} {
		if got := textnorm.Affects(test.text); got != test.want {
			t.Errorf("textnorm.Affects(%q) = %v; want %v", test.text, got, test.want)
		}
	}
}

// checkFindings fails if a finding is out of range, empty or overlaps the
// one before (other than sharing its span).
func checkFindings(t *testing.T, text string, fs []guard.Finding) {
	t.Helper()
	for i, f := range fs {
		if f.Start < 0 || f.End > len(text) || f.Start >= f.End || f.Score <= 0 || f.Score > 1 || f.Type == "" {
			t.Fatalf("Scan(%q): bad finding %+v", text, f)
		}
		if i > 0 {
			p := fs[i-1]
			if f.Start < p.End && (f.Start != p.Start || f.End != p.End) {
				t.Fatalf("Scan(%q): %+v overlaps %+v", text, f, p)
			}
		}
	}
}

func fuzzSeeds(f *testing.F) {
	for _, s := range []string{
		"4111 1111 1111 1111", "4111\u200b1111\u200b1111\u200b1111", "４１１１ １１１１ １１１１ １１１１",
		"ssn 536-22-1234", "gb82 west 1234 5698 7654 32", `{"a":"\u0034\u0031\u0031\u0031 1111 1111 1111"}`,
		"john.doe [at] example [dot] com", "a@b.com", "2001:db8::1", "::ffff:1.2.3.4", "+1 (415) 555-2671",
		"1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
		"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", `\ud83d\ude00 \ud800 \u12`, "a\\n4111 1111 1111 1111",
		"(((((", "[at][at]", "@@@@", ":::::", "1.2.3.4.5.6", "+++1", "\xff\xfe4111",
	} {
		f.Add(s)
	}
	f.Add(guardbench.Prompt())
}

// FuzzScan: Scan never panics, its findings are in range and in order, and
// skipping normalization (textnorm.Affects false) finds what normalizing finds.
func FuzzScan(f *testing.F) {
	fuzzSeeds(f)
	r := New(Config{MinScore: 0.01})
	f.Fuzz(func(t *testing.T, text string) {
		fs := r.Scan(text, nil)
		checkFindings(t, text, fs)
		if !textnorm.Affects(text) {
			if forced := r.scan(text, nil, true); !slices.Equal(fs, forced) {
				t.Fatalf("Scan(%q) = %v; normalized: %v", text, fs, forced)
			}
		}
	})
}

// FuzzVault: redacting all findings and restoring gives the text back,
// whole or streamed in any two pieces.
func FuzzVault(f *testing.F) {
	fuzzSeeds(f)
	r := New(Config{})
	f.Fuzz(func(t *testing.T, text string) {
		v := NewVault()
		red := v.Redact(text, r.Scan(text, nil))
		if got := v.Restore(red); got != text {
			t.Fatalf("Restore(Redact(%q)) = %q", text, got)
		}
		for _, cut := range []int{len(red) / 3, len(red) / 2, len(red) - 1} {
			if cut < 0 {
				continue
			}
			rs := v.RestoreStream()
			got := rs.Write(red[:cut]) + rs.Write(red[cut:]) + rs.Flush()
			if got != text {
				t.Fatalf("streamed restore of %q cut at %d = %q", red, cut, got)
			}
		}
	})
}
