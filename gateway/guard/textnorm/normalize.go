package textnorm

import (
	"math"
	"slices"
	"sort"
	"sync"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/unicode/norm"
)

// Normalize returns the normalized copy of s.
func Normalize(s string, o Options) Text {
	return normalize(s, o, false, nil)
}

// A Buffer keeps the memory of normalized copies for reuse by
// NormalizeInto, so that a caller that normalizes text after text (from a
// sync.Pool, say) allocates nothing once it has grown. The zero value is
// ready to use. A Buffer is not safe for concurrent use.
type Buffer struct {
	out  []byte
	runs []run
}

// buffers is the pool of GetBuffer and PutBuffer, shared by the detectors
// (each holds a Buffer only while it scans a text).
var buffers = sync.Pool{New: func() any { return new(Buffer) }}

// GetBuffer returns a Buffer from a pool; give it back with PutBuffer once
// the Texts made in it are no longer used.
func GetBuffer() *Buffer { return buffers.Get().(*Buffer) }

// PutBuffer returns buf to GetBuffer's pool, unless it grew past what
// common texts need.
func PutBuffer(buf *Buffer) {
	if cap(buf.out) <= maxPooledBuffer {
		buffers.Put(buf)
	}
}

// maxPooledBuffer is the largest Buffer, in bytes of text, kept for reuse.
const maxPooledBuffer = 256 << 10

// NormalizeInto is Normalize, with the copy in buf's memory: the Text it
// returns is valid only until buf is used again.
func NormalizeInto(buf *Buffer, s string, o Options) Text {
	return normalize(s, o, false, buf)
}

// normalize is Normalize, without the ASCII fast paths if slow (the
// tests check that both agree), in buf's memory if not nil.
func normalize(s string, o Options, slow bool, buf *Buffer) Text {
	if len(s) > math.MaxInt32 {
		panic("textnorm: input of 2 GiB or more")
	}
	b := builder{src: s, opt: o, tab: &asciiTabs[o.index()], slow: slow, buf: buf}
	if o.Confusables {
		loadConfusables()
	}
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf && (i+1 == len(s) || s[i+1] < utf8.RuneSelf) {
			i = b.asciiRun(i)
			continue
		}
		// A region from here to the next ASCII character followed by
		// ASCII or the end: NFKC never composes across the boundary
		// before an ASCII character, so the region normalizes alone. It
		// starts at the ASCII character before a non-ASCII one, if any,
		// as a combining mark may compose with it.
		j := i + 1
		for j < len(s) && (s[j] >= utf8.RuneSelf || j+1 < len(s) && s[j+1] >= utf8.RuneSelf) {
			j++
		}
		b.region(i, j)
		i = j
	}
	b.flush()
	if b.out == nil {
		return Text{Norm: s[:b.n], src: s}
	}
	if buf != nil {
		buf.out, buf.runs = b.out, b.runs
	}
	// b.out is not written again: share it.
	return Text{Norm: unsafe.String(unsafe.SliceData(b.out), len(b.out)), src: s, runs: b.runs}
}

// asciiRun handles ASCII from s[i] on, up to the ASCII character before a
// non-ASCII one, and returns where it stopped.
func (b *builder) asciiRun(i int) int {
	s, t := b.src, b.tab
	if b.slow {
		b.ascii(s[i], i)
		return i + 1
	}
	if !b.opt.Collapse {
		j := i
		for j < len(s) && t.pass[s[j]] {
			j++
		}
		if j < len(s) && s[j] >= utf8.RuneSelf {
			j-- // s[j] goes with the region after it
		}
		if j > i {
			b.mapRun(i, j)
			return j
		}
		b.ascii(s[i], i)
		return i + 1
	}
	if !b.hasSep && !b.hasLet && b.wsCount == 0 {
		if k := b.collapseRun(i); k > i {
			return k
		}
	}
	b.ascii(s[i], i)
	return i + 1
}

// asciiTab says what Normalize does to ASCII bytes for one combination of
// options: m maps them (Fold, Leet); pass says they are kept (not a
// dropped control); class is the Collapse class of the mapped byte, or
// clDrop; word says pass and a letter. Indexes 128–255 (non-ASCII bytes)
// are zero.
type asciiTab struct {
	m     [256]byte
	pass  [256]bool
	word  [256]bool
	class [256]uint8
	kind  [256]uint8 // for collapseEnd
	ident bool       // m is the identity
	// The options that make m: Fold, Leet, Spaces.
	fold, leet, spaces bool
}

// index numbers the combinations of options.
func (o Options) index() int {
	i := 0
	for k, on := range []bool{o.Fold, o.Confusables, o.Digits, o.Leet, o.Collapse, o.Spaces} {
		if on {
			i |= 1 << k
		}
	}
	return i
}

var asciiTabs = func() (t [64]asciiTab) {
	for i := range t {
		fold, leetOn, spaces := i&1 != 0, i&8 != 0, i&32 != 0
		for c := range 128 {
			m := byte(c)
			if fold && 'A' <= m && m <= 'Z' {
				m += 'a' - 'A'
			}
			if leetOn {
				m = leet[m]
			}
			if spaces && (m == '\t' || m == '\n' || m == '\r') {
				m = ' '
			}
			pass := c >= 0x20 && c < 0x7f || c == '\t' || c == '\n' || c == '\r'
			t[i].m[c] = m
			t[i].pass[c] = pass
			t[i].class[c] = clDrop
			t[i].kind[c] = kindStop
			if pass {
				t[i].class[c] = asciiClass[m]
				t[i].word[c] = asciiClass[m] == clLetter
				switch t[i].kind[c] = 0; {
				case asciiClass[m] == clSpace && (m == ' ' || m == '\t'):
					t[i].kind[c] = kindSpace | kindSep
				case asciiClass[m] == clSpace:
					t[i].kind[c] = kindSpace
				case asciiClass[m] == clSep:
					t[i].kind[c] = kindSep
				}
			}
		}
		for c := 128; c < 256; c++ {
			t[i].kind[c] = kindStop
		}
		t[i].ident = !fold && !leetOn && !spaces
		t[i].fold, t[i].leet, t[i].spaces = fold, leetOn, spaces
	}
	return t
}()

// mapRun outputs src[i:j] through the ASCII map, byte for byte.
func (b *builder) mapRun(i, j int) {
	s, t := b.src, b.tab
	if b.out == nil {
		if i == b.n {
			k := i
			if j-i < 16 { // short: bytewise
				for k < j && t.m[s[k]] == s[k] {
					k++
				}
			} else {
				k = t.same(s, i, j)
			}
			b.n = k
			if k == j {
				return
			}
			i = k
		}
		b.materialize()
	}
	o := int32(len(b.out))
	if t.ident {
		b.out = append(b.out, s[i:j]...)
	} else {
		b.out = slices.Grow(b.out, j-i)
		if dst := b.out[o : int(o)+j-i]; j-i < 16 { // short: bytewise
			for k, c := range []byte(s[i:j]) {
				dst[k] = t.m[c]
			}
		} else {
			t.mapASCII(dst, s[i:j])
		}
		b.out = b.out[:int(o)+j-i]
	}
	if k := len(b.runs) - 1; k >= 0 && b.runs[k].e < 0 && b.runs[k].s+(o-b.runs[k].o) == int32(i) {
		return
	}
	b.runs = append(b.runs, run{o: o, s: int32(i), e: -1})
}

func (b *builder) materialize() {
	if b.buf != nil && cap(b.buf.out) >= len(b.src)+utf8.UTFMax {
		b.out, b.runs = b.buf.out[:b.n], b.buf.runs[:0]
	} else {
		b.out = make([]byte, b.n, len(b.src)+utf8.UTFMax)
		b.runs = make([]run, 0, 16+len(b.src)/64)
	}
	copy(b.out, b.src[:b.n])
	if b.n > 0 {
		b.runs = append(b.runs, run{o: 0, s: 0, e: -1})
	}
}

var iterPool = sync.Pool{New: func() any { return new(norm.Iter) }}

// region normalizes src[i:j], which starts a normalization segment and
// ends before one.
func (b *builder) region(i, j int) {
	reg := b.src[i:j]
	q := norm.NFKC.QuickSpanString(reg)
	b.origChars(i, i+q)
	if q == len(reg) {
		return
	}
	it := iterPool.Get().(*norm.Iter)
	defer iterPool.Put(it)
	it.InitString(norm.NFKC, reg[q:])
	base := i + q
	prev := 0
	b.pend = b.pend[:0]
	for !it.Done() {
		out := it.Next()
		pos := it.Pos()
		if pos == prev {
			// A piece of a long decomposition whose input is consumed
			// with a later piece.
			b.pend = append(b.pend, out...)
			continue
		}
		if len(b.pend) == 0 && string(out) == reg[q+prev:q+pos] {
			b.origChars(base+prev, base+pos)
			prev = pos
			continue
		}
		b.pend = append(b.pend, out...)
		b.chars(b.pend, int32(base+prev), int32(base+pos))
		b.pend = b.pend[:0]
		prev = pos
	}
	if len(b.pend) > 0 {
		b.chars(b.pend, int32(base+prev), int32(j))
	}
}

// chars handles NFKC output produced by src[s:e] as a whole.
func (b *builder) chars(out []byte, s, e int32) {
	for k := 0; k < len(out); {
		r, size := utf8.DecodeRune(out[k:])
		b.char(r, size, s, e, false)
		k += size
	}
}

// origChars handles src[i:j], unchanged by NFKC.
func (b *builder) origChars(i, j int) {
	for k := i; k < j; {
		r, size := utf8.DecodeRuneInString(b.src[k:j])
		b.char(r, size, int32(k), int32(k+size), true)
		k += size
	}
}

// Span maps a byte range of Norm to the smallest byte range of the
// original that covers every character that produced it. Out-of-range
// arguments are clamped to [0, len(Norm)]; the result is always a valid
// range of the original, on character boundaries.
func (t Text) Span(start, end int) (int, int) {
	n := len(t.Norm)
	start = min(max(start, 0), n)
	end = min(max(end, start), n)
	var s, e int
	switch {
	case t.runs == nil:
		s, e = start, end
	case start == end:
		s = t.startOf(start)
		e = s
	default:
		s = t.startOf(start)
		e = t.endOf(end - 1)
	}
	// Round out to character boundaries of the original (only a range
	// that splits a character of Norm can land inside one).
	for s > 0 && s < len(t.src) && !utf8.RuneStart(t.src[s]) {
		s--
	}
	for e > 0 && e < len(t.src) && !utf8.RuneStart(t.src[e]) {
		e++
	}
	return s, e
}

// runAt returns the index of the run holding Norm byte i (i < len(Norm)).
func (t Text) runAt(i int) int {
	k := sort.Search(len(t.runs), func(k int) bool { return int(t.runs[k].o) > i })
	return k - 1
}

// startOf is the original offset where the character producing Norm byte i
// starts; for i == len(Norm), the end of the last character that produced
// anything.
func (t Text) startOf(i int) int {
	if i >= len(t.Norm) {
		if i == 0 {
			return 0
		}
		return t.endOf(i - 1)
	}
	r := t.runs[t.runAt(i)]
	if r.e < 0 {
		return int(r.s) + i - int(r.o)
	}
	return int(r.s)
}

// endOf is the original offset where the character producing Norm byte i
// ends.
func (t Text) endOf(i int) int {
	r := t.runs[t.runAt(i)]
	if r.e < 0 {
		return int(r.s) + i + 1 - int(r.o)
	}
	return int(r.e)
}

// atom is one output character with the original range that produced it.
type atom struct {
	r    rune
	s, e int32
	// same: its UTF-8 encoding is exactly src[s:e].
	same bool
	// one: it is the only character produced by src[s:e], itself one
	// character (so a same-length encoding maps byte for byte).
	one bool
}

type builder struct {
	src  string
	opt  Options
	tab  *asciiTab
	slow bool    // no fast paths
	buf  *Buffer // memory to reuse, or nil
	pend []byte  // NFKC output waiting for its input range
	// out is nil while the output is src[:n] byte for byte.
	out  []byte
	n    int
	runs []run

	// Collapse state.
	letters  int     // letters emitted since the last non-letter
	chainSep rune    // separator dropped inside the current chain, or 0
	ws       [2]atom // pending white space: first and last
	wsCount  int
	wsNL     bool
	sep      atom // pending separator after a single letter
	hasSep   bool
	letter   atom // pending letter after sep
	hasLet   bool
}

// ascii handles one ASCII byte not followed by a non-ASCII byte.
func (b *builder) ascii(c byte, i int) {
	if !b.tab.pass[c] {
		return // dropped control
	}
	r := b.tab.m[c]
	b.feed(atom{r: rune(r), s: int32(i), e: int32(i + 1), same: r == c, one: true})
}

var leet = func() (t [128]byte) {
	for i := range t {
		t[i] = byte(i)
	}
	for _, p := range []string{"0o", "1i", "3e", "4a", "5s", "7t", "@a", "$s"} {
		t[p[0]] = p[1]
	}
	return t
}()

// char handles one character of NFKC output; src[s:e] produced it, and
// orig says it is the original character itself (size bytes long there).
func (b *builder) char(r rune, size int, s, e int32, orig bool) {
	if r == utf8.RuneError && size == 1 {
		b.feed(atom{r: utf8.RuneError, s: s, e: e})
		return
	}
	if r < utf8.RuneSelf {
		if orig {
			b.ascii(byte(r), int(s))
			return
		}
		if !b.tab.pass[r] {
			return
		}
		b.feed(atom{r: rune(b.tab.m[r]), s: s, e: e})
		return
	}
	if Invisible(r) {
		return
	}
	in := r
	if b.opt.Fold {
		r = fold(r)
	}
	if b.opt.Spaces && unicode.IsSpace(r) {
		r = ' '
	}
	if b.opt.Digits {
		if d, ok := digit(r); ok {
			r = '0' + d
		}
	}
	if b.opt.Confusables && r >= utf8.RuneSelf {
		if rep, ok := confusables[r]; ok {
			single := orig && utf8.RuneCountInString(rep) == 1
			for _, x := range rep {
				if b.opt.Digits {
					if d, ok := digit(x); ok {
						x = '0' + d
					}
				}
				if b.opt.Leet && x < utf8.RuneSelf {
					x = rune(leet[x])
				}
				b.feed(atom{r: x, s: s, e: e, one: single})
			}
			return
		}
	}
	if b.opt.Leet && r < utf8.RuneSelf {
		r = rune(leet[r])
	}
	b.feed(atom{r: r, s: s, e: e, same: orig && r == in, one: orig})
}

// feed passes an atom through Collapse, if on.
func (b *builder) feed(a atom) {
	if !b.opt.Collapse {
		b.put(a)
		return
	}
	switch class(a.r) {
	case clSpace:
		if b.hasLet {
			b.resolveLetter()
		}
		if a.r == '\n' || a.r == '\r' || a.r == 0x2028 || a.r == 0x2029 || a.r == 0x85 {
			b.wsNL = true
		}
		if b.wsCount == 0 {
			b.ws[0] = a
		}
		b.ws[1] = a
		b.wsCount++
		return
	case clLetter:
		b.flushSpace()
		if b.hasLet {
			// The pending letter was not single: keep everything.
			b.hasSep, b.hasLet = false, false
			b.emit(b.sep)
			b.emit(b.letter)
			b.emit(a)
			return
		}
		if b.hasSep {
			b.letter, b.hasLet = a, true
			return
		}
		b.emit(a)
	case clSep:
		b.flushSpace()
		b.resolvePending()
		if b.letters == 1 {
			b.sep, b.hasSep = a, true
			return
		}
		b.emit(a)
	default:
		b.flushSpace()
		b.resolvePending()
		b.emit(a)
	}
}

// resolvePending settles the pending separator and letter before a
// non-letter.
func (b *builder) resolvePending() {
	if b.hasLet {
		b.resolveLetter()
	}
	if b.hasSep {
		b.hasSep = false
		b.emit(b.sep)
	}
}

// resolveLetter: the pending letter is followed by a non-letter, so it is
// single and the pending separator between two single letters goes, unless
// the chain already uses another separator.
func (b *builder) resolveLetter() {
	b.hasSep, b.hasLet = false, false
	if b.chainSep == 0 || b.chainSep == b.sep.r {
		sep := b.sep.r
		b.emit(b.letter)
		b.letters, b.chainSep = 1, sep
		return
	}
	b.emit(b.sep)
	b.emit(b.letter)
}

// flushSpace settles pending white space before a non-space.
func (b *builder) flushSpace() {
	if b.wsCount == 0 {
		return
	}
	first, last := b.ws[0], b.ws[1]
	count, nl := b.wsCount, b.wsNL
	b.wsCount, b.wsNL = 0, false
	if count == 1 {
		if first.r == ' ' || first.r == '\t' {
			// A single separator candidate.
			b.resolvePending()
			if b.letters == 1 {
				b.sep, b.hasSep = first, true
				return
			}
		}
		b.resolvePending()
		b.emit(first)
		return
	}
	b.resolvePending()
	r := rune(' ')
	if nl {
		r = '\n'
	}
	b.emit(atom{r: r, s: first.s, e: last.e})
}

// flush settles everything pending at the end of the input.
func (b *builder) flush() {
	if !b.opt.Collapse {
		return
	}
	b.resolvePending()
	if b.wsCount > 0 {
		first, last := b.ws[0], b.ws[1]
		if b.wsCount == 1 {
			b.emit(first)
		} else {
			r := rune(' ')
			if b.wsNL && !b.opt.Spaces {
				r = '\n'
			}
			b.emit(atom{r: r, s: first.s, e: last.e})
		}
	}
}

// emit outputs an atom, keeping the Collapse letter count.
func (b *builder) emit(a atom) {
	if class(a.r) == clLetter {
		b.letters++
		if b.letters > 1 {
			b.chainSep = 0
		}
	} else {
		b.letters = 0
		b.chainSep = 0
	}
	b.put(a)
}

// put appends an atom to the output and records where it came from.
func (b *builder) put(a atom) {
	if b.out == nil {
		if a.same && int(a.s) == b.n {
			b.n = int(a.e)
			return
		}
		b.materialize()
	}
	o := int32(len(b.out))
	if a.r < utf8.RuneSelf {
		b.out = append(b.out, byte(a.r))
	} else {
		b.out = utf8.AppendRune(b.out, a.r)
	}
	size := int32(len(b.out)) - o
	if a.one && size == a.e-a.s {
		if k := len(b.runs) - 1; k >= 0 && b.runs[k].e < 0 && b.runs[k].s+(o-b.runs[k].o) == a.s {
			return
		}
		b.runs = append(b.runs, run{o: o, s: a.s, e: -1})
		return
	}
	if k := len(b.runs) - 1; k >= 0 && b.runs[k].e == a.e && b.runs[k].s == a.s {
		return
	}
	b.runs = append(b.runs, run{o: o, s: a.s, e: a.e})
}

const (
	clOther = iota
	clLetter
	clSpace
	clSep
	clDrop
)

var asciiClass = func() (t [128]uint8) {
	for c := 0; c < 128; c++ {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			t[c] = clLetter
		case c == ' ', c == '\t', c == '\n', c == '\r', c == '\v', c == '\f':
			t[c] = clSpace
		}
	}
	for _, c := range ".-_*'`~,/\\|+:;=^\"" {
		t[c] = clSep
	}
	return t
}()

func class(r rune) uint8 {
	if r < utf8.RuneSelf {
		return asciiClass[r]
	}
	switch {
	case unicode.IsLetter(r), unicode.IsDigit(r), unicode.Is(unicode.M, r):
		return clLetter
	case unicode.IsSpace(r):
		return clSpace
	case unicode.In(r, unicode.Pd, unicode.Po, unicode.Pc):
		return clSep
	}
	return clOther
}

// Invisible reports whether r is removed by Normalize whatever the
// options: a format, control (but \t \n \r), private-use, surrogate or
// unassigned code point, or a default-ignorable one (tag characters, bidi
// controls, zero-width characters, soft hyphen, variation selectors,
// combining grapheme joiner, Hangul fillers).
func Invisible(r rune) bool {
	if r < utf8.RuneSelf {
		return r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f
	}
	switch {
	case r == 0x034F, // combining grapheme joiner
		r == 0x115F, r == 0x1160, r == 0x3164, r == 0xFFA0, // Hangul fillers
		r == 0x17B4, r == 0x17B5, // Khmer inherent vowels
		0x180B <= r && r <= 0x180F,   // Mongolian variation selectors
		0xFE00 <= r && r <= 0xFE0F,   // variation selectors
		0xE0000 <= r && r <= 0xE0FFF: // tags, variation selectors supplement
		return true
	case r == 0x2028, r == 0x2029:
		return false // line and paragraph separators: white space
	}
	return !unicode.IsGraphic(r)
}

// fold is simple case folding to lower case (ſ → s, ς → σ, K → k).
func fold(r rune) rune {
	return unicode.ToLower(unicode.ToUpper(r))
}

// digit returns the value of a non-ASCII decimal digit. Unicode encodes
// each set of decimal digits as a contiguous 0–9 run, so within a range of
// unicode.Nd the value is the distance from its start modulo 10.
func digit(r rune) (rune, bool) {
	if r < 0x660 {
		return 0, false
	}
	if r <= 0xFFFF {
		rs := unicode.Nd.R16
		k := sort.Search(len(rs), func(k int) bool { return rune(rs[k].Hi) >= r })
		if k < len(rs) && rune(rs[k].Lo) <= r {
			return (r - rune(rs[k].Lo)) % 10, true
		}
		return 0, false
	}
	rs := unicode.Nd.R32
	k := sort.Search(len(rs), func(k int) bool { return rune(rs[k].Hi) >= r })
	if k < len(rs) && rune(rs[k].Lo) <= r {
		return (r - rune(rs[k].Lo)) % 10, true
	}
	return 0, false
}
