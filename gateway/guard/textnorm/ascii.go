package textnorm

import (
	"math/bits"
	"strings"

	"aigw/gateway/guard/internal/swar"
)

// The ASCII fast paths.
//
// On ASCII text with nothing pending, Collapse outputs every byte through
// the ASCII map except in three places: a dropped control, a run of two
// or more white-space characters (one character), and a chain of single
// letters ("a.b", "i g n"). collapseRun finds the first chain or stop (a
// non-ASCII byte, the ASCII byte before one, a dropped control) in one
// pass over the text's words, outputs the text before it with its
// white-space runs collapsed, and leaves the rest to feed. The ASCII map
// itself (Fold, Spaces, Leet) runs eight bytes at a time (package swar).

const (
	lsb = swar.Ones
	msb = swar.High
)

// load8 reads s[i:i+8] as a little-endian word; bytes past the end of s
// read as '#' (ASCII, neither a letter, white space nor a separator).
func load8(s string, i int) uint64 {
	if i+8 <= len(s) && i >= 0 {
		return swar.Load(s, i)
	}
	x := uint64('#') * lsb
	for k := 0; i+k < len(s); k++ {
		x = x&^(0xff<<(8*k)) | uint64(s[i+k])<<(8*k)
	}
	return x
}

// collapseRun outputs, from s[i] on, the longest stretch whose Collapse
// output is its bytes through the ASCII map with white-space runs
// collapsed, ending with nothing pending, and returns its end. It stops
// at the first single letter that a separator and another single letter
// follow (a chain feed collapses), and before the first stop (a non-ASCII
// byte, the ASCII byte before one, a dropped control) after the last
// word of two or more letters before it. It keeps the Collapse state as
// feed would. Nothing is pending when it is called.
func (b *builder) collapseRun(i int) int {
	s, t := b.src, b.tab
	if b.letters == 1 && !t.word[s[i]] {
		return i // the single letter before may start a chain
	}
	k, pairs := b.collapseEnd(i)
	if k == i {
		return i
	}
	if pairs {
		b.outputCollapsed(i, k)
	} else {
		b.mapRun(i, k)
	}
	// The letters at the end of the stretch.
	j := k
	for j > i && t.word[s[j-1]] {
		j--
	}
	if j == i {
		b.letters += k - i
	} else {
		b.letters = k - j
	}
	b.chainSep = 0
	return k
}

// Kinds of bytes for collapseEnd (asciiTab.kind): letters are 0.
const (
	kindSpace = 1 << iota // white space
	kindSep               // a separator candidate: Collapse may drop it between single letters
	kindStop              // non-ASCII, or a dropped control
)

// collapseEnd returns the end of the stretch collapseRun outputs from s[i],
// and whether it holds a run of two or more white-space characters.
func (b *builder) collapseEnd(i int) (int, bool) {
	s, word, kind := b.src, &b.tab.word, &b.tab.kind
	pairs := false
	run := b.letters // letters since the last non-letter
	for j := i; ; j++ {
		k := j
		for k < len(s) && word[s[k]] {
			k++
		}
		if k == len(s) {
			return len(s), pairs
		}
		if k > j {
			run += k - j
			j = k
		}
		kd := kind[s[j]]
		if kd&kindStop != 0 {
			if s[j] >= 0x80 && j > i {
				j-- // the ASCII byte before a non-ASCII one goes with it
			}
			return b.backOff(i, j), pairs
		}
		if kd&kindSpace != 0 && j+1 < len(s) && kind[s[j+1]]&kindSpace != 0 {
			pairs = true
		}
		if run == 1 && kd&kindSep != 0 && j+1 < len(s) && word[s[j+1]] && (j+2 == len(s) || !word[s[j+2]] && kind[s[j+2]]&kindStop == 0) {
			return j - 1, pairs // a single letter, a separator, a single letter: a chain
		}
		run = 0
	}
}

// backOff returns the last point at or before k, from i on, that follows
// two letters (so that nothing is pending there), or i.
func (b *builder) backOff(i, k int) int {
	s, t := b.src, b.tab
	for ; k > i; k-- {
		if t.word[s[k-1]] && (k-2 >= i && t.word[s[k-2]] || k-1 == i && b.letters > 0) {
			return k
		}
	}
	return i
}

// outputCollapsed outputs src[i:k] through the ASCII map, each run of two
// or more white-space characters as one character (see collapseRun).
func (b *builder) outputCollapsed(i, k int) {
	s := b.src
	from := i
	for q := i; q < k; q += 8 {
		x := load8(s, q)
		// White space: bytes up to ' ' (the stretch holds no other control).
		sp := ^swar.GE(x&^msb, 0x21) & msb &^ (x & msb)
		if sp == 0 {
			continue
		}
		next := uint64(0)
		if q+8 < k && s[q+8] <= ' ' {
			next = 1 << 63
		}
		pairs := sp & (sp>>8 | next)
		if q+8 > k {
			pairs &= 1<<(8*(k-q-1)) - 1 // pairs within the stretch
		}
		for pairs != 0 {
			p := q + bits.TrailingZeros64(pairs)/8
			if p < from {
				pairs &= pairs - 1
				continue
			}
			e := p + 2
			for e < k && s[e] <= ' ' {
				e++
			}
			if p > from {
				b.mapRun(from, p)
			}
			r := rune(' ')
			if !b.opt.Spaces && strings.ContainsAny(s[p:e], "\n\r") {
				r = '\n' // as flushSpace: a run with a line break is one
			}
			b.put(atom{r: r, s: int32(p), e: int32(e)})
			from = e
			pairs &= pairs - 1
		}
	}
	if from < k {
		b.mapRun(from, k)
	}
}

// changes returns the mask of the bytes of the ASCII word x that the map
// changes, or may change: upper-case letters (Fold), digits, '@' and '$'
// (Leet), \t \n and \r (Spaces).
func (t *asciiTab) changes(x uint64) uint64 {
	var c uint64
	if t.fold {
		c = swar.GE(x, 'A') &^ swar.GE(x, 'Z'+1)
	}
	if t.leet {
		c |= swar.GE(x, '0')&^swar.GE(x, '9'+1) | swar.EQ(x, '@') | swar.EQ(x, '$')
	}
	if t.spaces {
		c |= ^swar.GE(x, 0x20) & msb
	}
	return c
}

// same returns the end of the longest stretch of ASCII src[i:j], from i,
// that the map leaves as is.
func (t *asciiTab) same(s string, i, j int) int {
	for ; i+8 <= j && j <= len(s); i += 8 {
		if c := t.changes(swar.Load(s, i)); c != 0 {
			return i + bits.TrailingZeros64(c)/8
		}
	}
	for ; i < j && t.m[s[i]] == s[i]; i++ {
	}
	return i
}

// mapASCII writes src, ASCII bytes that are kept (no dropped control),
// through the map to dst, eight bytes at a time where it can.
func (t *asciiTab) mapASCII(dst []byte, src string) {
	m, fold, leet, spaces := &t.m, t.fold, t.leet, t.spaces
	k := 0
	for ; k+8 <= len(src) && k+8 <= len(dst); k += 8 {
		x := swar.Load(src, k)
		if leet && swar.GE(x, '0')&^swar.GE(x, '9'+1)|swar.EQ(x, '@')|swar.EQ(x, '$') != 0 {
			for n := k; n < k+8; n++ {
				dst[n] = m[src[n]]
			}
			continue
		}
		if fold {
			x |= (swar.GE(x, 'A') &^ swar.GE(x, 'Z'+1)) >> 2 // 0x80 >> 2: 'a' - 'A'
		}
		if spaces && ^swar.GE(x, 0x20)&msb != 0 {
			cr := swar.EQ(x, '\t') | swar.EQ(x, '\n') | swar.EQ(x, '\r')
			x = x&^(cr>>7*0xff) | cr>>2 // ' '
		}
		swar.Store(dst, k, x)
	}
	for ; k < len(src); k++ {
		dst[k] = m[src[k]]
	}
}
