package pii

import (
	"strings"
	"unicode/utf8"

	"aigw/gateway/guard/textnorm"
)

// shadow is the text the scanner reads: the original itself when nothing
// would change it (the fast path), else its JSON-unescaped and/or
// normalized copy with the maps back to the original.
type shadow struct {
	text string
	// nt is set when text is a textnorm copy (of the original, or of the
	// unescaped copy).
	nt *textnorm.Text
	// esc maps the unescaped copy back: esc[i] is the original offset of
	// the escape or character that produced byte i; esc[len] = len(orig).
	esc []int32
}

func (sh *shadow) identity() bool { return sh.nt == nil && sh.esc == nil }

// span maps a byte range of sh.text to the original.
func (sh *shadow) span(s, e int) (int, int) {
	if sh.nt != nil {
		s, e = sh.nt.Span(s, e)
	}
	if sh.esc != nil {
		s, e = int(sh.esc[s]), int(sh.esc[e])
	}
	return s, e
}

// newShadow builds the shadow of s; unescape says whether to decode JSON
// escapes when s holds a \u escape; force, whether to normalize even when
// textnorm.Affects says it would change nothing that matters.
func newShadow(s string, unescape, force bool) shadow {
	sh := shadow{text: s}
	if unescape && strings.Contains(s, `\u`) {
		if d, m, ok := jsonUnescape(s); ok {
			sh.text, sh.esc = d, m
		}
	}
	if force || textnorm.Affects(sh.text) {
		t := textnorm.Normalize(sh.text, textnorm.Options{Digits: true})
		if t.Norm != sh.text {
			sh.nt = &t
			sh.text = t.Norm
		}
	}
	return sh
}

// jsonUnescape decodes the escapes of a JSON string body (\uXXXX with
// surrogate pairs, \n \t \r \b \f \" \\ \/) and keeps everything else,
// invalid escapes included, as is. It returns the map from decoded byte
// offsets to original ones (one entry more than the decoded length).
func jsonUnescape(s string) (string, []int32, bool) {
	var b strings.Builder
	b.Grow(len(s))
	m := make([]int32, 0, len(s)+1)
	changed := false
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			m = append(m, int32(i))
			i++
			continue
		}
		var r rune = -1
		size := 2
		switch s[i+1] {
		case 'n':
			r = '\n'
		case 't':
			r = '\t'
		case 'r':
			r = '\r'
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case '"', '\\', '/':
			r = rune(s[i+1])
		case 'u':
			if v, ok := hex4(s, i+2); ok {
				r, size = v, 6
				if utf16IsHigh(v) {
					if i+12 <= len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
						if lo, ok := hex4(s, i+8); ok && utf16IsLow(lo) {
							r, size = (v-0xD800)<<10+(lo-0xDC00)+0x10000, 12
						}
					}
				}
				if utf16IsHigh(r) || utf16IsLow(r) {
					r = utf8.RuneError
				}
			}
		}
		if r < 0 {
			b.WriteByte(c)
			m = append(m, int32(i))
			i++
			continue
		}
		changed = true
		n := utf8.RuneLen(r)
		b.WriteRune(r)
		for range n {
			m = append(m, int32(i))
		}
		i += size
	}
	if !changed {
		return "", nil, false
	}
	m = append(m, int32(len(s)))
	return b.String(), m, true
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var v rune
	for k := i; k < i+4; k++ {
		c := s[k]
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

func utf16IsHigh(r rune) bool { return 0xD800 <= r && r < 0xDC00 }
func utf16IsLow(r rune) bool  { return 0xDC00 <= r && r < 0xE000 }
