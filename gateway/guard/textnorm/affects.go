package textnorm

import (
	"math/bits"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/unicode/norm"

	"aigw/gateway/guard/internal/swar"
)

// Affects reports whether normalizing s could change what a detector
// finds in it, so that most text skips textnorm.Normalize:
//   - an ASCII control character (but \t \n \r), or invalid UTF-8;
//   - a non-ASCII decimal digit;
//   - an invisible character next to ASCII that is not white space (a
//     zero-width space inside a number or a token, say; not the joiners of
//     an emoji sequence);
//   - a character NFKC maps to ASCII letters, digits or '@' (full-width
//     forms, ligatures, superscripts);
//   - one NFKC maps to other ASCII (no-break space, full-width colon,
//     ellipsis) next to an ASCII letter or digit.
//
// Accented letters, curly quotes, dashes, CJK text with its full-width
// punctuation and emoji need no normalization.
func Affects(s string) bool {
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	for i := 0; i < len(b); {
		if i+8 <= len(b) {
			w := swar.Load(s, i)
			const hi, lo20, x7f = 0x8080808080808080, 0x2020202020202020, 0x7f7f7f7f7f7f7f7f
			if w&hi == 0 && (w-lo20)&^w&hi == 0 && ((w^x7f)-0x0101010101010101)&^(w^x7f)&hi == 0 {
				i += 8 // eight printable ASCII bytes
				continue
			}
		}
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 || relevant(s, i, n, r) {
			return true // invalid UTF-8 too: textnorm makes it U+FFFD
		}
		i += n
	}
	return false
}

// relevant reports whether the non-ASCII character r at s[i:i+n] needs
// normalization (see Affects).
func relevant(s string, i, n int, r rune) bool {
	if unicode.IsDigit(r) {
		return true
	}
	var prev, next byte
	if i > 0 {
		prev = s[i-1]
	}
	if i+n < len(s) {
		next = s[i+n]
	}
	if Invisible(r) {
		return asciiInk(prev) || asciiInk(next)
	}
	dec := norm.NFKC.PropertiesString(s[i:]).Decomposition()
	if len(dec) == 0 || string(dec) == string(norm.NFC.PropertiesString(s[i:]).Decomposition()) {
		return false // unchanged, or a canonical composite NFKC keeps
	}
	other := false
	for _, c := range dec {
		switch {
		case c >= utf8.RuneSelf:
		case asciiAlnum(c) || c == '@':
			return true
		default:
			other = true
		}
	}
	return other && (asciiAlnum(prev) || asciiAlnum(next))
}

func asciiAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// asciiInk: printable ASCII other than the space.
func asciiInk(c byte) bool { return '!' <= c && c <= '~' }

// IndexNonASCII returns the index of the first non-ASCII byte of s, or -1.
func IndexNonASCII(s string) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if w := swar.Load(s, i) & swar.High; w != 0 {
			return i + bits.TrailingZeros64(w)/8
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return i
		}
	}
	return -1
}
