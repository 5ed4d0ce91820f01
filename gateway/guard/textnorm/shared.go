package textnorm

import (
	"slices"
	"strings"
	"sync"
	"unsafe"

	"aigw/gateway/guard/internal/swar"
)

// A Shared normalizes the texts of one caller (the guardrail engine's
// checks of one call) for several detectors, so that a text one detector
// normalized is not normalized again from scratch for the next:
//   - the same text with the same options is returned as it is;
//   - a text normalized with Collapse and Spaces but not Leet (content's
//     options) is the base of the same text with Leet instead of Spaces
//     (injection's): when the text is printable ASCII (\t \n \r allowed)
//     without '@' or '$', and no single \t \n or \r follows a single
//     letter, both make the same choices, so the second is the first's
//     output through the Leet map, the white space Spaces changed put
//     back from the original (derive). Otherwise it is normalized.
//
// Every result is what Normalize returns (the tests check it). The zero
// value is ready to use; a Shared is not safe for concurrent use, and a
// Text it returns is valid until Reset (or PutShared).
type Shared struct {
	bases   []base // texts normalized with base options, maxBases at most
	scratch []Buffer
	n       int // scratch buffers in use
}

// A base is a text normalized with Collapse and Spaces but not Leet, and
// the memory of its copy and of the copy derived from it.
type base struct {
	opt  Options
	text Text
	buf  Buffer
	// The copy derived from it with dopt, if hasDerived, in derived.
	dopt       Options
	dtext      Text
	hasDerived bool
	derived    []byte
}

// maxBases is how many texts a Shared keeps as bases (a call's messages);
// further ones are normalized alone.
const maxBases = 16

// Normalize returns the normalized copy of s, as Normalize does.
func (sh *Shared) Normalize(s string, o Options) Text {
	for i := range sh.bases {
		b := &sh.bases[i]
		if b.text.src != s {
			continue
		}
		switch {
		case b.opt == o:
			return b.text
		case b.hasDerived && b.dopt == o:
			return b.dtext
		case !b.hasDerived && derivable(b.opt, o):
			if t, ok := b.derive(o); ok {
				b.dopt, b.dtext, b.hasDerived = o, t, true
				return t
			}
		}
	}
	if o.Collapse && o.Spaces && !o.Leet && len(sh.bases) < maxBases {
		if len(sh.bases) < cap(sh.bases) {
			sh.bases = sh.bases[:len(sh.bases)+1] // reuse its memory
		} else {
			sh.bases = append(sh.bases, base{})
		}
		b := &sh.bases[len(sh.bases)-1]
		b.opt, b.text = o, NormalizeInto(&b.buf, s, o)
		return b.text
	}
	if sh.n == len(sh.scratch) {
		sh.scratch = append(sh.scratch, Buffer{})
	}
	sh.n++
	return NormalizeInto(&sh.scratch[sh.n-1], s, o)
}

// Reset forgets the texts normalized so far (not the memory).
func (sh *Shared) Reset() {
	for i := range sh.bases {
		b := &sh.bases[i]
		b.text, b.dtext, b.hasDerived = Text{}, Text{}, false
	}
	sh.bases, sh.n = sh.bases[:0], 0
}

// derivable reports whether a text normalized with from may be the base
// of the same text normalized with to (see Shared).
func derivable(from, to Options) bool {
	return from.Collapse && to.Collapse && from.Spaces && !to.Spaces && !from.Leet && to.Leet && from.Fold == to.Fold
}

// identity is the runs of a copy that differs from its original only
// byte for byte (read-only).
var identity = []run{{o: 0, s: 0, e: -1}}

// derive returns the base text normalized with o instead (derivable), or
// false if its original is not one derive handles.
func (b *base) derive(o Options) (Text, bool) {
	t := b.text
	s := t.src
	safe, spaces := leetSafe(s)
	if !safe {
		return Text{}, false
	}
	n := len(t.Norm)
	out := slices.Grow(b.derived[:0], n)[:n]
	// The base's copy through Leet: only its digits change. Without
	// \t \n \r, Spaces changed nothing, and that is the derived copy.
	leetDigits(out, t.Norm)
	if spaces && !restoreSpaces(out, t) {
		return Text{}, false
	}
	b.derived = out
	norm := unsafe.String(unsafe.SliceData(out), n)
	runs := t.runs
	switch {
	case (runs == nil || slices.Equal(runs, identity)) && norm == s[:n]:
		runs = nil // Normalize keeps an unchanged prefix of the original
	case runs == nil:
		runs = identity
	}
	return Text{Norm: norm, src: s, runs: runs}, true
}

// restoreSpaces puts back in out, t's copy through Leet, the \t \n and
// \r that Spaces made spaces (see derive), or returns false.
func restoreSpaces(out []byte, t Text) bool {
	s, n := t.src, len(t.Norm)
	for k, r := range t.runs {
		end := n
		if k+1 < len(t.runs) {
			end = int(t.runs[k+1].o)
		}
		if r.e < 0 { // byte for byte: the controls (\t \n \r) are kept
			seg := s[r.s : int(r.s)+end-int(r.o)]
			for i := 0; i < len(seg); {
				if i+8 <= len(seg) && ^(swar.Load(seg, i)+0x60*lsb)&msb == 0 { // ASCII: none under 0x20
					i += 8
					continue
				}
				for e := min(i+8, len(seg)); i < e; i++ {
					if seg[i] < 0x20 {
						out[int(r.o)+i] = seg[i]
					}
				}
			}
			continue
		}
		// A run of white space made one character: a line break if it
		// holds one (Spaces made it a space).
		if end != int(r.o)+1 || t.Norm[r.o] != ' ' {
			return false // not expected from ASCII
		}
		if strings.ContainsAny(s[r.s:r.e], "\n\r") {
			out[r.o] = '\n'
		}
	}
	return true
}

// leetDigits writes norm, ASCII without '@' or '$', through Leet to dst.
func leetDigits(dst []byte, norm string) {
	copy(dst, norm)
	for i := 0; i < len(norm); {
		end := min(i+8, len(norm))
		if end == i+8 && swar.GE(swar.Load(norm, i), '0')&^swar.GE(swar.Load(norm, i), '9'+1) == 0 {
			i = end
			continue
		}
		for ; i < end; i++ {
			if c := norm[i]; '0' <= c && c <= '9' {
				dst[i] = leet[c]
			}
		}
	}
}

// leetSafe reports whether normalizing s with and without Leet and Spaces
// (see Shared) makes the same Collapse choices: s is printable ASCII, \t
// \n and \r, without '@' and '$' (letters only with Leet), and no single
// \t \n or \r (a separator only with Spaces, or not the same one) follows
// a single letter; and whether s holds \t \n or \r.
func leetSafe(s string) (safe, spaces bool) {
	for i := 0; i < len(s); {
		if i+8 <= len(s) {
			x := swar.Load(s, i)
			a := x &^ msb
			// Non-ASCII, under 0x20, 0x7f, '@' or '$'.
			if (x|^(a+0x60*lsb)|(a+lsb)|swar.EQ(a, '@')|swar.EQ(a, '$'))&msb == 0 {
				i += 8
				continue
			}
		}
		switch c := s[i]; {
		case c >= 0x7f, c == '@', c == '$':
			return false, false
		case c >= 0x20:
		case c == '\t', c == '\n', c == '\r':
			spaces = true
			single := (i == 0 || !asciiSpace(s[i-1])) && (i+1 == len(s) || !asciiSpace(s[i+1]))
			if single && i >= 1 && asciiAlnum(s[i-1]) && (i == 1 || !asciiAlnum(s[i-2])) {
				return false, false
			}
		default:
			return false, false
		}
		i++
	}
	return true, spaces
}

// asciiSpace: the white space of printable ASCII text.
func asciiSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// shareds is the pool of GetShared and PutShared.
var shareds = sync.Pool{New: func() any { return new(Shared) }}

// GetShared returns a Shared from a pool; give it back with PutShared once
// the Texts it returned are no longer used.
func GetShared() *Shared { return shareds.Get().(*Shared) }

// PutShared resets sh and returns it to GetShared's pool, unless it grew
// past what common texts need.
func PutShared(sh *Shared) {
	sh.Reset()
	size := 0
	for _, b := range sh.bases[:cap(sh.bases)] {
		size += cap(b.buf.out) + cap(b.derived)
	}
	for _, b := range sh.scratch {
		size += cap(b.out)
	}
	if size <= maxPooledBuffer {
		shareds.Put(sh)
	}
}
