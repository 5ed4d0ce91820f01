package ac

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"aigw/gateway/guard/internal/guardbench"
)

// naive is the specification of Append: every occurrence of every
// pattern, by end, then longest first, then by id.
func naive(patterns []string, fold bool, s string) []Match {
	var ms []Match
	for end := 1; end <= len(s); end++ {
		var at []Match
		for id, p := range patterns {
			if len(p) > end {
				continue
			}
			t := s[end-len(p) : end]
			if t == p || fold && asciiOnlyDiff(t, p) {
				at = append(at, Match{Pattern: id, Start: end - len(p), End: end})
			}
		}
		slices.SortStableFunc(at, func(x, y Match) int { return y.End - y.Start - (x.End - x.Start) })
		ms = append(ms, at...)
	}
	return ms
}

// asciiOnlyDiff says that t and p, of one length, differ at most in the case
// of ASCII letters (Fold leaves other bytes alone).
func asciiOnlyDiff(t, p string) bool {
	for i := 0; i < len(t); i++ {
		if lower(t[i]) != lower(p[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func mustNew(t testing.TB, patterns []string, opt Options) *Automaton {
	t.Helper()
	a, err := New(patterns, opt)
	if err != nil {
		t.Fatalf("New(%q) = %v", patterns, err)
	}
	return a
}

// check compares Append, Walk and Contains with naive on s.
func check(t testing.TB, a *Automaton, patterns []string, fold bool, s string) {
	t.Helper()
	want := naive(patterns, fold, s)
	if got := a.Append(nil, s); !slices.Equal(got, want) {
		t.Fatalf("patterns %q (fold %v) in %q:\nAppend = %v\nnaive  = %v", patterns, fold, s, got, want)
	}
	if got, _ := a.Walk(nil, s, 0, 0); !slices.Equal(got, want) {
		t.Fatalf("patterns %q (fold %v) in %q:\nWalk  = %v\nnaive = %v", patterns, fold, s, got, want)
	}
	// In two pieces, the second from the state the first ends in.
	k := len(s) / 3
	got, st := a.Walk(nil, s[:k], 0, 0)
	if got, _ = a.Walk(got, s, k, st); !slices.Equal(got, want) {
		t.Fatalf("patterns %q (fold %v) in %q:\nWalk in two at %d = %v\nnaive = %v", patterns, fold, s, k, got, want)
	}
	if got := a.Contains(s); got != (len(want) > 0) {
		t.Fatalf("patterns %q (fold %v): Contains(%q) = %v; want %v", patterns, fold, s, got, !got)
	}
}

func TestKnown(t *testing.T) {
	patterns := []string{"he", "she", "his", "hers", "sk-", "sk-ant-", "he"}
	a := mustNew(t, patterns, Options{Fold: true})
	text := "uSHErs and SK-ANT-x"
	var got []string
	for _, m := range a.Append(nil, text) {
		got = append(got, fmt.Sprintf("%d:%d:%s", m.End, m.Pattern, text[m.Start:m.End]))
	}
	want := []string{"4:1:SHE", "4:0:HE", "4:6:HE", "6:3:HErs", "14:4:SK-", "18:5:SK-ANT-"}
	if !slices.Equal(got, want) {
		t.Errorf("Append = %v; want %v", got, want)
	}
	if ms := mustNew(t, patterns, Options{}).Append(nil, text); len(ms) != 0 {
		t.Errorf("without Fold: Append = %v; want none", ms)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New([]string{"a", ""}, Options{}); err == nil {
		t.Error(`New("a", "") succeeded`)
	}
	a := mustNew(t, nil, Options{})
	if ms := a.Append(nil, strings.Repeat("abc", 500)); len(ms) != 0 || a.Contains("abc") {
		t.Errorf("no patterns: Append = %v", ms)
	}
}

// randomCase returns the patterns and texts of one random case: small
// alphabets (so that patterns overlap and share prefixes and suffixes),
// upper case, bytes outside the patterns, non-ASCII and invalid UTF-8,
// texts from a few bytes to several split quarters, patterns from one
// byte to longer than a quarter.
func randomCase(rng *rand.Rand) (patterns []string, fold bool, texts []string) {
	alphabets := []string{"ab", "abc ", "aAbB", "ab\x00\xff", "abcdefghij .", "aé\u0301ı", "AaZz{}[`@"}
	alpha := alphabets[rng.IntN(len(alphabets))]
	str := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alpha[rng.IntN(len(alpha))]
		}
		return string(b)
	}
	fold = rng.IntN(2) == 0
	maxLen := []int{2, 4, 8, 40, 200}[rng.IntN(5)]
	for range 1 + rng.IntN(30) {
		patterns = append(patterns, str(1+rng.IntN(maxLen)))
	}
	if rng.IntN(4) == 0 { // a duplicate, or the same letters in other case
		p := patterns[rng.IntN(len(patterns))]
		if rng.IntN(2) == 0 {
			p = strings.ToUpper(p)
		}
		patterns = append(patterns, p)
	}
	for range 4 {
		n := []int{rng.IntN(8), rng.IntN(300), 4*splitMin + rng.IntN(64), rng.IntN(5000)}[rng.IntN(4)]
		s := str(n)
		// Plant patterns, across the quarter boundaries too.
		b := []byte(s)
		for range rng.IntN(20) {
			p := patterns[rng.IntN(len(patterns))]
			if len(p) > len(b) {
				continue
			}
			at := rng.IntN(len(b) - len(p) + 1)
			if q := len(b) / 4; q > 0 && rng.IntN(2) == 0 {
				at = max(0, min(len(b)-len(p), q*(1+rng.IntN(3))-rng.IntN(len(p))))
			}
			copy(b[at:], p)
		}
		texts = append(texts, string(b))
	}
	return patterns, fold, texts
}

// Append and Contains agree with the naive search on random patterns and
// texts.
func TestAgreesWithNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for range 800 {
		patterns, fold, texts := randomCase(rng)
		a := mustNew(t, patterns, Options{Fold: fold})
		for _, s := range texts {
			check(t, a, patterns, fold, s)
		}
	}
}

// Adversarial texts: every pattern a prefix and a suffix of the others
// ("a", "aa", …), at every length around the split.
func TestAdversarial(t *testing.T) {
	var chain []string
	for n := 1; n <= 70; n++ {
		chain = append(chain, strings.Repeat("a", n))
	}
	for _, c := range []struct {
		patterns []string
		fold     bool
		unit     string
	}{
		{chain, false, "a"},
		{chain, true, "A"},
		{[]string{"ab", "aba", "bab", "abab", "b"}, false, "ab"},
		{[]string{"x" + strings.Repeat("y", 60) + "z", "y", "yz"}, true, "xY"},
	} {
		a := mustNew(t, c.patterns, Options{Fold: c.fold})
		for n := 0; n <= 4*splitMin+300; n += 1 + n/50 {
			s := strings.Repeat(c.unit, n/len(c.unit)+1)[:n]
			check(t, a, c.patterns, c.fold, s)
		}
	}
}

// Append reads the text, not an earlier one: a state left from a text
// never leaks into the next.
func TestAppendKeepsDst(t *testing.T) {
	a := mustNew(t, []string{"ab"}, Options{})
	dst := a.Append(nil, strings.Repeat("ab", 300))
	n := len(dst)
	dst = a.Append(dst, "b")
	if len(dst) != n || n != 300 {
		t.Errorf("Append = %d, then %d matches; want 300 twice", n, len(dst))
	}
}

func FuzzAppend(f *testing.F) {
	f.Add("he|she|his|hers", "ushers and SHE", true)
	f.Add("a|aa|aaa", strings.Repeat("a", 600), false)
	f.Add("ab|b|bab", strings.Repeat("ab", 400)+"\xff", true)
	f.Add("ignore|previous instructions", guardbench.Text(1200), false)
	f.Fuzz(func(t *testing.T, pats, s string, fold bool) {
		s = s[:min(len(s), 1<<13)] // naive is slow
		var patterns []string
		for p := range strings.SplitSeq(pats, "|") {
			if p != "" && len(patterns) < 64 {
				patterns = append(patterns, p)
			}
		}
		a := mustNew(t, patterns, Options{Fold: fold})
		check(t, a, patterns, fold, s)
		// The text repeated crosses the split with the patterns in it.
		if len(s) > 0 {
			check(t, a, patterns, fold, strings.Repeat(s, 4*splitMin/len(s)+2))
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	words := strings.Fields("ignore disregard forget override bypass your instructions system prompt previous send forward " +
		"upload email tool function plugin api jailbreak developer mode verbatim reveal print the above")
	a := mustNew(b, words, Options{})
	text := strings.ToLower(guardbench.Text(4096))
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	var buf [64]Match
	for b.Loop() {
		a.Append(buf[:0], text)
	}
}
