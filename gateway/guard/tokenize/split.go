package tokenize

import (
	"math/bits"
	"unicode"
	"unicode/utf8"

	"aigw/gateway/guard/internal/swar"
)

// The pre-tokenizers split text into the pieces that BPE then merges. They
// reproduce, piece for piece, what github.com/tiktoken-go/tokenizer v0.10.0
// splits with its dlclark/regexp2 patterns (codec/o200k_base.go and
// codec/cl100k_base.go), at about 20 times the speed:
//
//	o200k_base:  [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	            |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	            |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//	cl100k_base: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// The library runs the code regexp2cg generated for these patterns
// (codec/regexp.gen.go), whose behaviour differs from the patterns (and from
// OpenAI's tiktoken) in two ways that are reproduced here on purpose, since
// counts must equal the library's:
//   - in \s*[\r\n]+, \s* backtracks to the first newline of the whitespace
//     run, not the last: "  \n  \n" is two pieces, "  \n" and "  \n";
//   - the ASCII bitmaps of [^\r\n\p{L}\p{N}] and [^\s\p{L}\p{N}] leave out
//     DEL (U+007F), which then matches no alternative and is skipped: it
//     costs no token.
//
// Case folding makes (?i:'s) match 'ſ (U+017F LATIN SMALL LETTER LONG S)
// too. The regexp runs over runes: invalid UTF-8 is first replaced byte by
// byte with U+FFFD, as Go's []rune conversion does (see [validRunes]).

// Rune classes, as bits.
const (
	clSpace  = 1 << iota // \s: unicode.IsSpace
	clLetter             // \p{L}
	clNumber             // \p{N}
	clUpper              // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	clLower              // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
	clPrefix             // [^\r\n\p{L}\p{N}], DEL excepted
	clPunct              // [^\s\p{L}\p{N}], DEL excepted
)

// classTableSize covers the BMP and the SMP (emoji); rarer runes are
// classified on the fly.
const classTableSize = 0x20000

var (
	classTable = buildClassTable()
	asciiClass = [utf8.RuneSelf]uint8(classTable[:utf8.RuneSelf])
)

func buildClassTable() *[classTableSize]uint8 {
	t := new([classTableSize]uint8)
	set := func(tab *unicode.RangeTable, bits uint8) {
		for _, r := range tab.R16 {
			for c := int(r.Lo); c <= int(r.Hi); c += int(r.Stride) {
				t[c] |= bits
			}
		}
		for _, r := range tab.R32 {
			for c := int(r.Lo); c <= int(r.Hi) && c < classTableSize; c += int(r.Stride) {
				t[c] |= bits
			}
		}
	}
	set(unicode.Lu, clLetter|clUpper)
	set(unicode.Lt, clLetter|clUpper)
	set(unicode.Ll, clLetter|clLower)
	set(unicode.Lm, clLetter|clUpper|clLower)
	set(unicode.Lo, clLetter|clUpper|clLower)
	set(unicode.M, clUpper|clLower)
	set(unicode.N, clNumber)
	set(unicode.White_Space, clSpace) // unicode.IsSpace, Latin-1 included
	for c := range t {
		t[c] |= derivedClasses(rune(c), t[c])
	}
	return t
}

// derivedClasses adds clPrefix and clPunct to the classes cl of r.
func derivedClasses(r rune, cl uint8) uint8 {
	if r == 0x7f || cl&(clLetter|clNumber) != 0 {
		return cl
	}
	if r != '\r' && r != '\n' {
		cl |= clPrefix
	}
	if cl&clSpace == 0 {
		cl |= clPunct
	}
	return cl
}

// classOf returns the classes of r.
func classOf(r rune) uint8 {
	if r < classTableSize {
		return classTable[r]
	}
	return slowClassOf(r)
}

// slowClassOf classifies r with the unicode package, as regexp2 does.
func slowClassOf(r rune) uint8 {
	var cl uint8
	switch {
	case unicode.IsSpace(r):
		cl = clSpace
	case unicode.In(r, unicode.Lu, unicode.Lt):
		cl = clLetter | clUpper
	case unicode.Is(unicode.Ll, r):
		cl = clLetter | clLower
	case unicode.In(r, unicode.Lm, unicode.Lo):
		cl = clLetter | clUpper | clLower
	case unicode.Is(unicode.M, r):
		cl = clUpper | clLower
	case unicode.Is(unicode.N, r):
		cl = clNumber
	}
	return derivedClasses(r, cl)
}

// at returns the size and the classes of the rune of s at byte i.
func at(s string, i int) (size int, cl uint8) {
	if c := s[i]; c < utf8.RuneSelf {
		return 1, asciiClass[c]
	}
	return atMultibyte(s, i)
}

func atMultibyte(s string, i int) (size int, cl uint8) {
	r, size := utf8.DecodeRuneInString(s[i:])
	return size, classOf(r)
}

// run returns the end of the run of runes of s from i that have one of the
// classes want.
func run(s string, i int, want uint8) int {
	letters := want == clLower || want == clLetter
	for i < len(s) {
		if letters && i+8 <= len(s) {
			// ASCII letters, eight at a time (a word's end is found
			// without a branch per letter, and its mispredictions).
			x := swar.Load(s, i)
			if want == clLetter {
				x |= 0x20 * swar.Ones // no other byte turns into a lower-case letter
			}
			stop := notLower(x)
			if stop == 0 {
				i += 8
				continue
			}
			k := bits.TrailingZeros64(stop) / 8
			if i += k; x>>(8*k)&0x80 == 0 {
				return i // an ASCII byte that is no letter
			}
		}
		if c := s[i]; c < utf8.RuneSelf {
			if asciiClass[c]&want == 0 {
				break
			}
			i++
			continue
		}
		n, cl := atMultibyte(s, i)
		if cl&want == 0 {
			break
		}
		i += n
	}
	return i
}

// notLower marks the bytes of x that are not lower-case ASCII letters
// (non-ASCII ones included).
func notLower(x uint64) uint64 {
	y := x &^ swar.High
	return (^(swar.GE(y, 'a') &^ swar.GE(y, 'z'+1)) | x) & swar.High
}

// lowerRun is run(s, i, clLower), eight ASCII bytes at a time.
func lowerRun(s string, i int) int {
	for ; i+8 <= len(s); i += 8 {
		x := swar.Load(s, i)
		if stop := notLower(x); stop != 0 {
			k := bits.TrailingZeros64(stop) / 8
			if x>>(8*k)&0x80 == 0 {
				return i + k // an ASCII byte that is no letter
			}
			return run(s, i+k, clLower)
		}
	}
	return run(s, i, clLower)
}

// A splitter returns the end of the piece of s that starts at byte i (i <
// len(s)), or -1 if no alternative of the pattern matches there; the regexp
// then skips the rune at i.
type splitter func(s string, i int) int

// splitO200k is the pre-tokenizer of o200k_base.
func splitO200k(s string, i int) int {
	// The commonest pieces first, as wordO200k splits them: a lower-case
	// ASCII word, after a space or not.
	if c := s[i]; 'a' <= c && c <= 'z' {
		return contraction(s, lowerRun(s, i+1))
	} else if c == ' ' && i+1 < len(s) && 'a' <= s[i+1] && s[i+1] <= 'z' {
		return contraction(s, lowerRun(s, i+2))
	}
	n, cl := at(s, i)
	if cl&(clPrefix|clUpper|clLower) != 0 {
		if j := wordO200k(s, i, n, cl); j > 0 {
			return j
		}
	}
	return otherEnd(s, i, cl, true)
}

// splitCl100k is the pre-tokenizer of cl100k_base.
func splitCl100k(s string, i int) int {
	if j := contraction(s, i); j > i {
		return j
	}
	n, cl := at(s, i)
	if cl&clPrefix != 0 && i+n < len(s) {
		if _, next := at(s, i+n); next&clLetter != 0 {
			return run(s, i+n, clLetter)
		}
	}
	if cl&clLetter != 0 {
		return run(s, i, clLetter)
	}
	return otherEnd(s, i, cl, false)
}

// otherEnd matches the alternatives both patterns end with at i, where a
// rune of classes cl is: \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
// ([\r\n]* without slash: cl100k). It returns -1 if none matches.
func otherEnd(s string, i int, cl uint8, slash bool) int {
	if cl&clNumber != 0 {
		return numberEnd(s, i)
	}
	if j := punctEnd(s, i, slash); j > 0 {
		return j
	}
	if cl&clSpace != 0 {
		return spaceEnd(s, i)
	}
	return -1
}

// wordO200k matches o200k's two word alternatives at i, where the rune of
// size n and classes cl is; each tries first with that rune as the optional
// leading [^\r\n\p{L}\p{N}], then without it. It returns 0 if neither
// matches.
func wordO200k(s string, i, n int, cl uint8) int {
	prefixed := cl&clPrefix != 0 && i+n < len(s)
	if prefixed {
		if j := lowerWord(s, i+n); j > 0 {
			return contraction(s, j)
		}
	}
	if j := lowerWord(s, i); j > 0 {
		return contraction(s, j)
	}
	if prefixed {
		if j := upperWord(s, i+n); j > 0 {
			return contraction(s, j)
		}
	}
	if j := upperWord(s, i); j > 0 {
		return contraction(s, j)
	}
	return 0
}

// lowerWord matches [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+
// at i, backtracking as the regexp does: the upper run is maximal, then gives
// back runes until a lower one follows. It returns 0 if nothing matches.
func lowerWord(s string, i int) int {
	last := 0 // the end of the last rune of the upper run that is also lower
	for i < len(s) {
		n, cl := 1, uint8(0)
		if c := s[i]; c < utf8.RuneSelf { // at(s, i), inlined by hand
			cl = asciiClass[c]
		} else {
			n, cl = atMultibyte(s, i)
		}
		if cl&clUpper == 0 {
			if cl&clLower != 0 {
				return run(s, i, clLower)
			}
			break
		}
		i += n
		if cl&clLower != 0 {
			last = i
		}
	}
	// The lower run that starts on the last such rune is that rune alone:
	// the next one is \p{Lu}, \p{Lt} or not a letter.
	return last
}

// upperWord matches [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*
// at i, or returns 0.
func upperWord(s string, i int) int {
	j := run(s, i, clUpper)
	if j == i {
		return 0
	}
	return run(s, j, clLower)
}

// contraction returns the end of (?i:'s|'t|'re|'ve|'m|'ll|'d) at i, or i.
// (?i:s) is [STstſ] in regexp2.
func contraction(s string, i int) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return i
	}
	third := func(want byte) int {
		if i+2 < len(s) && s[i+2]|0x20 == want {
			return i + 3
		}
		return i
	}
	switch s[i+1] {
	case 's', 'S', 't', 'T', 'm', 'M', 'd', 'D':
		return i + 2
	case 'r', 'R', 'v', 'V':
		return third('e')
	case 'l', 'L':
		return third('l')
	case 0xc5: // ſ is C5 BF
		if i+2 < len(s) && s[i+2] == 0xbf {
			return i + 3
		}
	}
	return i
}

// numberEnd matches \p{N}{1,3} at i, where a number is.
func numberEnd(s string, i int) int {
	for k := 0; k < 3 && i < len(s); k++ {
		n, cl := at(s, i)
		if cl&clNumber == 0 {
			break
		}
		i += n
	}
	return i
}

// punctEnd matches " ?[^\s\p{L}\p{N}]+[\r\n/]*" (o200k) or
// " ?[^\s\p{L}\p{N}]+[\r\n]*" (cl100k) at i, or returns 0.
func punctEnd(s string, i int, slash bool) int {
	j := i
	if s[j] == ' ' {
		j++
	}
	k := run(s, j, clPunct)
	if k == j {
		return 0
	}
	for k < len(s) && (s[k] == '\r' || s[k] == '\n' || slash && s[k] == '/') {
		k++
	}
	return k
}

// spaceEnd matches \s*[\r\n]+|\s+(?!\S)|\s+ at i, where a space is. It
// stops at the first newline, which ends the piece (the regexp scans the
// whole run first: "\n \n \n …" costs it quadratic time).
func spaceEnd(s string, i int) int {
	last, runes := i, 0
	j := i
	for j < len(s) {
		if s[j] == '\r' || s[j] == '\n' { // \s*[\r\n]+, backtracked to the first newline
			for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
				j++
			}
			return j
		}
		n, cl := at(s, j)
		if cl&clSpace == 0 {
			break
		}
		last = j
		j += n
		runes++
	}
	if j == len(s) || runes == 1 { // \s+(?!\S) at the end, or \s+
		return j
	}
	return last // \s+(?!\S): the last space goes with what follows
}

// validRunes returns s with every byte of invalid UTF-8 replaced by U+FFFD,
// as the regexp sees it.
func validRunes(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s)+len(s)/2)
	for _, r := range s {
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}
