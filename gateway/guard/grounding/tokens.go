package grounding

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// token is one word of a text: a maximal run of letters, digits and marks
// (one character for Han, Hiragana and Katakana, which have no spaces),
// with invisible format characters (zero-width space, soft hyphen) inside
// it skipped. Punctuation, quotes, dashes and white space separate words
// and are otherwise ignored, so their Unicode variants never matter.
type token struct {
	start, end int    // byte offsets in the text
	hash       uint64 // FNV-1a of the normalized word
	upper      bool   // its first character is upper case
	letters    bool   // it has no digits
}

// The normalized word is NFKD, case-folded to lower case, with combining
// marks dropped ("Café", "CAFE" and "ｃａｆé" are the same word).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// isInvisible reports format characters that may sit inside a word
// without splitting it (U+200B, U+00AD, joiners, bidi marks).
func isInvisible(r rune) bool {
	return r == 0xAD || (r > 0x7F && unicode.Is(unicode.Cf, r))
}

func isIdeograph(r rune) bool {
	return r >= 0x3040 && (unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r))
}

// tokenize appends the words of s[from:to] to out. It runs in linear time
// and allocates only to grow out.
func tokenize(s string, from, to int, out []token) []token {
	var (
		buf [32]byte
		in  bool
		t   token
	)
	h := uint64(fnvOffset)
	flush := func(end int) {
		if in {
			t.end = end
			if h != fnvOffset {
				t.hash = h
				out = append(out, t)
			}
			in = false
		}
	}
	for i := from; i < to; {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			default:
				flush(i)
				i++
				continue
			}
			if !in {
				in, h = true, fnvOffset
				t = token{start: i, upper: 'A' <= s[i] && s[i] <= 'Z', letters: true}
			}
			if '0' <= c && c <= '9' {
				t.letters = false
			}
			h = (h ^ uint64(c)) * fnvPrime
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case isInvisible(r):
			i += n
			continue
		case isIdeograph(r):
			flush(i)
			t = token{start: i, end: i + n}
			t.hash, t.letters = hashRune(fnvOffset, unicode.ToLower(r)), true
			out = append(out, t)
			i += n
			continue
		case !isWordRune(r):
			flush(i)
			i += n
			continue
		}
		if !in {
			in, h = true, fnvOffset
			t = token{start: i, upper: unicode.IsUpper(r) || unicode.IsTitle(r), letters: true}
		}
		if unicode.IsDigit(r) {
			t.letters = false
		}
		// NFKD of one character, marks dropped, lower-cased.
		d := norm.NFKD.AppendString(buf[:0], s[i:i+n])
		for len(d) > 0 {
			dr, dn := utf8.DecodeRune(d)
			d = d[dn:]
			if unicode.IsMark(dr) {
				continue
			}
			h = hashRune(h, unicode.ToLower(dr))
		}
		i += n
	}
	flush(to)
	return out
}

// hashRune adds r, UTF-8 encoded, to the FNV-1a hash h.
func hashRune(h uint64, r rune) uint64 {
	if r < utf8.RuneSelf {
		return (h ^ uint64(r)) * fnvPrime
	}
	var e [utf8.UTFMax]byte
	for _, b := range e[:utf8.EncodeRune(e[:], r)] {
		h = (h ^ uint64(b)) * fnvPrime
	}
	return h
}

// hashWord is the hash tokenize gives the word w (lower-case ASCII).
func hashWord(w string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(w); i++ {
		h = (h ^ uint64(w[i])) * fnvPrime
	}
	return h
}
