package content

import (
	"slices"
	"strings"
	"testing"

	"aigw/gateway/guard"
	"aigw/gateway/guard/internal/guardbench"
	"aigw/gateway/guard/textnorm"
)

// fuzzPhrases share prefixes and suffixes, hold non-ASCII letters, and
// normalize from homoglyphs, full-width forms and spaced letters.
var fuzzPhrases = []string{"bomb", "pipe bomb", "bomb maker", "b", "ob", "project zephyr", "ЗЕФИР", "ｓｅｃｒｅｔ", "s e c r e t", "café", "naïve", "東京", "a b", "ticket-"}

// Scan's phrase findings are the occurrences a brute-force search finds
// in the shadow, mapped back to the text: on any text, long ones (the
// automaton walks quarters at once) included.
func FuzzPhrasesAgreeWithBruteForce(f *testing.F) {
	for _, s := range []string{"a pipe bomb maker", "Project Zephyr", "ＢＯＭＢ b o m b bоmb", "зефир café naïve 東京", guardbench.Text(3000)} {
		f.Add(s)
	}
	flt := mustNew(f, Config{Phrases: fuzzPhrases})
	f.Fuzz(func(t *testing.T, text string) {
		for _, s := range []string{text, strings.Repeat(text+" bomb ", 1024/(len(text)+6)+1)} {
			got, want := sortFindings(flt.Scan(s, nil)), bruteForcePhrases(s, fuzzPhrases)
			if !slices.Equal(got, want) {
				t.Fatalf("Scan(%q):\n%v\nbrute force:\n%v", s, got, want)
			}
		}
	})
}

// bruteForcePhrases returns the occurrences of phrases in the shadow of
// text, mapped back to the text, each once, in sortFindings' order.
func bruteForcePhrases(text string, phrases []string) []guard.Finding {
	norm := textnorm.Normalize(text, shadowOptions)
	var want []guard.Finding
	for _, p := range phrases {
		k := strings.TrimSpace(textnorm.Normalize(p, shadowOptions).Norm)
		for i := 0; i+len(k) <= len(norm.Norm); i++ {
			if strings.HasPrefix(norm.Norm[i:], k) {
				s, e := norm.Span(i, i+len(k))
				want = append(want, guard.Finding{Type: TypePhrase, Start: s, End: e, Score: 1, Rule: p})
			}
		}
	}
	return slices.CompactFunc(sortFindings(want), func(a, b guard.Finding) bool { return compareFindings(a, b) == 0 })
}

// sortFindings sorts fs by start, end and rule, and returns it.
func sortFindings(fs []guard.Finding) []guard.Finding {
	slices.SortFunc(fs, compareFindings)
	return fs
}

func compareFindings(a, b guard.Finding) int {
	if a.Start != b.Start {
		return a.Start - b.Start
	}
	if a.End != b.End {
		return a.End - b.End
	}
	return strings.Compare(a.Rule, b.Rule)
}
