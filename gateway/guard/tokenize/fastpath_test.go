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

// fastPiece, count's fast path, cuts the pieces the splitter cuts, with
// their shortKeys, wherever it takes one; and count with it equals count
// without it (the splitter for every piece), on random text and on words
// (lower-case, capitalized, after a space or punctuation) of every length
// before every ASCII byte.
func TestFastPieceAgrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 3))
	var texts []string
	for range 300 {
		texts = append(texts, randomText(rng, 1+rng.IntN(2000)))
	}
	for n := range 18 {
		for c := range 128 {
			for _, lead := range []string{"", " ", "x", "  ", "A", " Q", "\nZ", ",", ". ", " (", "'"} {
				texts = append(texts, lead+"abcdefghijklmnopqrs"[:n]+string(rune(c))+"'s tail of the text")
				texts = append(texts, lead+"abcdefghijklmnopqrs"[:n]+string(rune(c))+" tail, of the text")
			}
		}
	}
	for _, enc := range encodings {
		e := encoderOf(enc)
		slow := *e
		slow.words = 0
		for _, s := range texts {
			checkFastPieces(t, e, s)
			if got, want := e.count(s), slow.count(s); got != want {
				t.Fatalf("count(%s, %q) = %d; without the fast path %d", enc, s, got, want)
			}
		}
	}
}

func checkFastPieces(t *testing.T, e *encoder, s string) {
	t.Helper()
	for i := 0; i+16 <= len(s); i++ {
		j, key := e.fastPiece(s, i)
		if j == i {
			continue
		}
		if want := e.split(s, i); j != want {
			t.Fatalf("fastPiece(%q, %d) = %d; the splitter cuts at %d", s, i, j, want)
		}
		if j-i <= shortMax && key != shortKey(s[i:j]) || j-i > shortMax && key != 0 {
			t.Fatalf("fastPiece(%q, %d): key %#x for %q", s, i, key, s[i:j])
		}
	}
}

// FuzzFastPiece checks fastPiece against the splitter and count
// against count without it, in both encodings.
func FuzzFastPiece(f *testing.F) {
	for _, s := range []string{" the quick brown fox's tail, jumped", "abcdefghijklmnopq rstuvwxyz", " migrating the billing service.",
		"wordX and wordé and word'll be", "Hello, World. IXa I. Ab'c A5 Zz\n", " a b c d e f g h i j k l m n o p", "x\xffy z\x80 rollback deadlines"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, enc := range encodings {
			e := encoderOf(enc)
			checkFastPieces(t, e, s)
			slow := *e
			slow.words = 0
			if got, want := e.count(s), slow.count(s); got != want {
				t.Fatalf("count(%s, %q) = %d; without the fast path %d", enc, s, got, want)
			}
		}
	})
}
