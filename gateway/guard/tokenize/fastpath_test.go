package tokenize

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// run, eight ASCII bytes at a time for letters, and lowerRun agree with
// the class table rune by rune: every byte (ASCII or not) after runs of
// every length.
func TestRunLetters(t *testing.T) {
	slow := func(s string, i int, want uint8) int {
		for i < len(s) {
			n, cl := at(s, i)
			if cl&want == 0 {
				break
			}
			i += n
		}
		return i
	}
	for _, cls := range []uint8{clLower, clLetter} {
		for c := range 256 {
			for n := range 20 {
				for _, tail := range []string{"", "xyz", "é", "ÉTÉ", " tail"} {
					s := "aBcdEfghijklmnopqrstuvwxyz"[:n] + string(rune(c)) + tail
					if c >= 0x80 {
						s = s[:n] + string([]byte{byte(c)}) + tail // a lone byte too
					}
					for i := range len(s) {
						want := slow(s, i, cls)
						if got := run(s, i, cls); got != want {
							t.Fatalf("run(%q, %d, %d) = %d; want %d", s, i, cls, got, want)
						}
						if got := lowerRun(s, i); cls == clLower && got != want {
							t.Fatalf("lowerRun(%q, %d) = %d; want %d", s, i, got, want)
						}
					}
				}
			}
		}
	}
}

// Text's cache of long texts returns what count returns: for texts seen
// again (the cached path), in either encoding, of one length or not.
func TestTextCache(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 1))
	var texts []string
	for range 200 {
		texts = append(texts, randomText(rng, cacheMin+rng.IntN(2000)))
	}
	texts = append(texts, strings.Repeat("a", 300), strings.Repeat("a", 301), strings.Repeat("b", 300))
	for round := range 3 {
		for _, s := range texts {
			for _, enc := range encodings {
				if got, want := Text(enc, s), count(enc, s); got != want {
					t.Fatalf("round %d: Text(%s, %q) = %d; want %d", round, enc, s, got, want)
				}
			}
		}
	}
}
