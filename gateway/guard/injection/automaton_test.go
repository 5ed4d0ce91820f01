package injection

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"aigw/gateway/guard/internal/ac"
	"aigw/gateway/guard/internal/guardbench"
	"aigw/gateway/guard/textnorm"
)

// bruteForce is every occurrence of the tables' patterns in the shadow
// norm, in the automaton's order: by end, then longest first.
func bruteForce(norm string) []ac.Match {
	var ms []ac.Match
	for end := 1; end <= len(norm); end++ {
		var at []ac.Match
		for id, rs := range det.refs {
			p := rs[0].norm
			if len(p) <= end && norm[end-len(p):end] == p {
				at = append(at, ac.Match{Pattern: id, Start: end - len(p), End: end})
			}
		}
		slices.SortStableFunc(at, func(x, y ac.Match) int { return y.End - y.Start - (x.End - x.Start) })
		ms = append(ms, at...)
	}
	return ms
}

// obfuscate writes s as attackers do: homoglyphs, leetspeak, full-width
// forms, letters spaced out, case changed, invisible characters.
func obfuscate(rng *rand.Rand, s string) string {
	var b strings.Builder
	for _, r := range s {
		switch rng.IntN(12) {
		case 0:
			if h, ok := map[rune]string{'a': "а", 'e': "е", 'o': "о", 'i': "і", 'c': "с", 'p': "р", 'y': "у", 's': "ѕ"}[r]; ok {
				b.WriteString(h)
				continue
			}
		case 1:
			if h, ok := map[rune]string{'a': "4", 'e': "3", 'i': "1", 'o': "0", 's': "$", 't': "7"}[r]; ok {
				b.WriteString(h)
				continue
			}
		case 2:
			if 'a' <= r && r <= 'z' {
				b.WriteRune(r - 'a' + 'Ａ')
				continue
			}
		case 3:
			b.WriteRune(r)
			b.WriteByte(' ')
			continue
		case 4:
			b.WriteString(strings.ToUpper(string(r)))
			continue
		case 5:
			b.WriteRune(r)
			b.WriteString("\u200b")
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// attackText is random text made of the tables' own phrases, plain and
// obfuscated, with ordinary prose between them.
func attackText(rng *rand.Rand) string {
	prose := guardbench.Text(2048)
	var b strings.Builder
	for range rng.IntN(40) {
		switch rng.IntN(4) {
		case 0:
			i := rng.IntN(len(prose) - 64)
			b.WriteString(strings.ToValidUTF8(prose[i:i+rng.IntN(64)], ""))
		case 1:
			b.WriteString(obfuscate(rng, entries()[rng.IntN(len(entries()))].text))
		default:
			b.WriteString(entries()[rng.IntN(len(entries()))].text)
		}
		b.WriteString([]string{" ", "\n", "", ". ", "  "}[rng.IntN(5)])
	}
	return b.String()
}

// The automaton finds in the shadow of a text (normalized as analyze
// normalizes it) what a brute-force search finds, in the same order, on
// texts made of the tables' phrases, obfuscated or not, short and long
// (interleaved quarters).
func TestAutomatonAgreesWithBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	found := 0
	for range 150 {
		text := attackText(rng)
		norm := textnorm.Normalize(text, shadowOptions).Norm
		got, want := det.ac.Append(nil, norm), bruteForce(norm)
		if !slices.Equal(got, want) {
			t.Fatalf("shadow %q:\nautomaton   %v\nbrute force %v", norm, got, want)
		}
		found += len(got)
	}
	if found < 1000 {
		t.Errorf("%d matches in all; the texts hold too few phrases to test anything", found)
	}
}

func FuzzAutomaton(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 3))
	for range 8 {
		f.Add(attackText(rng))
	}
	f.Add(attack)
	f.Fuzz(func(t *testing.T, text string) {
		norm := textnorm.Normalize(text, shadowOptions).Norm
		if got, want := det.ac.Append(nil, norm), bruteForce(norm); !slices.Equal(got, want) {
			t.Fatalf("shadow %q:\nautomaton   %v\nbrute force %v", norm, got, want)
		}
	})
}
