package grounding

import (
	"strings"
	"unicode/utf8"
)

// quote is a quoted span of the answer: its content (without the quote
// marks) and the fragments that must each appear in the context (the
// content split at ellipses and bracketed insertions: "the sky [...] is
// blue", "the [company's] revenue").
type quote struct {
	whole span
	frags []span
	block bool // a blockquote
}

// quotePairs are the opening quote marks and their closing ones. Single
// quotes are left out: ' and ’ are also apostrophes.
var quotePairs = []struct{ open, close, close2 string }{
	{`"`, `"`, ""},
	{"“", "”", ""},
	{"„", "“", "”"},
	{"«", "»", ""},
	{"「", "」", ""},
	{"『", "』", ""},
}

const maxQuoteBytes = 8 << 10

// quoteSpans finds the answer's quotations: blockquotes (consecutive
// lines starting with ">", as a whole, outside the fenced code blocks in
// fences) and inline quotes ("...", “...”, „...“, «...», 「...」) opened
// outside the spans in skip (code and links) and closed in the same
// paragraph, before the next fenced block and within 8 KiB (an unclosed
// mark is not a quote). Quotes inside a quote belong to it.
func quoteSpans(s string, skip, fences []span) []quote {
	var blocks []span
	fi := 0
	for i := 0; i < len(s); {
		lineEnd := strings.IndexByte(s[i:], '\n')
		if lineEnd < 0 {
			lineEnd = len(s)
		} else {
			lineEnd += i
		}
		j := i
		for j < lineEnd && j-i < 3 && s[j] == ' ' {
			j++
		}
		if j < lineEnd && s[j] == '>' && !inside(fences, &fi, j, j+1) {
			if n := len(blocks); n > 0 && blocks[n-1].end+1 >= i {
				blocks[n-1].end = lineEnd
			} else {
				blocks = append(blocks, span{j + 1, lineEnd})
			}
		}
		i = lineEnd + 1
	}
	var out []quote
	bi := 0
	closers := make([][2]*finder, len(quotePairs))
	for k, p := range quotePairs {
		closers[k] = [2]*finder{newFinder(s, p.close), newFinder(s, p.close2)}
	}
	para := [2]*finder{newFinder(s, "\n\n"), newFinder(s, "\n \n")}
	fi = 0
	for i := 0; i < len(s); {
		if len(skip) > 0 && i >= skip[0].start {
			if i < skip[0].end {
				i = skip[0].end
			}
			skip = skip[1:]
			continue
		}
		if bi < len(blocks) && i >= blocks[bi].start {
			b := blocks[bi]
			bi++
			if !callout(s[b.start:b.end]) {
				out = append(out, quote{whole: trimSpan(s, b), block: true})
			}
			i = max(i, b.end)
			continue
		}
		c := s[i]
		if c != '"' && c < utf8.RuneSelf {
			i++
			continue
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		for k, p := range quotePairs {
			if !strings.HasPrefix(s[i:], p.open) {
				continue
			}
			start := i + len(p.open)
			limit := min(len(s), start+maxQuoteBytes)
			if bi < len(blocks) {
				limit = min(limit, blocks[bi].start)
			}
			for fi < len(fences) && fences[fi].end <= start {
				fi++
			}
			if fi < len(fences) {
				limit = min(limit, max(fences[fi].start, start))
			}
			// The closing mark, in the same paragraph.
			end := min(closers[k][0].next(start), closers[k][1].next(start))
			if end >= limit || min(para[0].next(start), para[1].next(start)) < end {
				break
			}
			out = append(out, quote{whole: trimSpan(s, span{start, end})})
			n = end + len(p.close) - i
			if p.close2 != "" && strings.HasPrefix(s[end:], p.close2) {
				n = end + len(p.close2) - i
			}
			break
		}
		i += n
	}
	for k := range out {
		out[k].frags = fragments(s, out[k].whole)
	}
	return out
}

// finder returns the next occurrence of sub in s at or after a position;
// asked at positions that never decrease, it reads s once in all.
type finder struct {
	s, sub string
	at     int // the last occurrence found (len(s) if none); -1 before the first search
}

func (f *finder) next(from int) int {
	if f.sub == "" {
		return len(f.s)
	}
	if f.at < from {
		if k := strings.Index(f.s[from:], f.sub); k >= 0 {
			f.at = from + k
		} else {
			f.at = len(f.s)
		}
	}
	return f.at
}

func newFinder(s, sub string) *finder { return &finder{s: s, sub: sub, at: -1} }
func trimSpan(s string, sp span) span {
	for sp.start < sp.end && (s[sp.start] == ' ' || s[sp.start] == '\t' || s[sp.start] == '\n' || s[sp.start] == '\r') {
		sp.start++
	}
	for sp.end > sp.start && (s[sp.end-1] == ' ' || s[sp.end-1] == '\t' || s[sp.end-1] == '\n' || s[sp.end-1] == '\r') {
		sp.end--
	}
	return sp
}

// fragments splits a quote at ellipses ("...", "…") and bracketed
// insertions ("[...]", "[sic]", "[the company]").
func fragments(s string, q span) []span {
	var out []span
	start := q.start
	for i := q.start; i < q.end; {
		cut, next := -1, 0
		switch {
		case s[i] == '[':
			if e := strings.IndexByte(s[i:min(q.end, i+64)], ']'); e >= 0 {
				cut, next = i, i+e+1
			}
		case strings.HasPrefix(s[i:q.end], "..."):
			cut, next = i, i+3
		case strings.HasPrefix(s[i:q.end], "…"):
			cut, next = i, i+len("…")
		}
		if cut < 0 {
			i++
			continue
		}
		if cut > start {
			out = append(out, span{start, cut})
		}
		start, i = next, next
	}
	if q.end > start {
		out = append(out, span{start, q.end})
	}
	return out
}

// matcher finds phrases in the context's words.
type matcher struct {
	ids  []int32 // vocabulary ids of the context's words, text after text
	segs []int   // end of each text in ids
	need []int32 // per id: occurrences in the phrase sought
	have []int32 // per id: occurrences in the window
	row  []int32 // LCS scratch
	work int     // steps left (window moves and LCS cells)
}

// find reports whether phrase (vocabulary ids, -1 for words the context
// lacks) occurs in one text of the context: some window of len(phrase)
// words holds at least need of its words, in order (longest common
// subsequence). ok is false when the work budget ran out first.
//
// A window the size of the phrase suffices: a phrase of n words with one
// word changed, added or dropped leaves n-1 of them inside some n-word
// window of the text. Windows are counted as multisets while they slide
// (linear time); only windows with enough words are checked for order.
func (m *matcher) find(phrase []int32, need int) (found, ok bool) {
	known := 0
	for _, id := range phrase {
		if id >= 0 {
			m.need[id]++
			known++
		}
	}
	defer func() {
		for _, id := range phrase {
			if id >= 0 {
				m.need[id] = 0
			}
		}
	}()
	if known < need || need <= 0 {
		return need <= 0, true
	}
	n := len(phrase)
	start := 0
	for _, end := range m.segs {
		seg := m.ids[start:end]
		start = end
		w := min(n, len(seg))
		if w < need {
			continue
		}
		if m.work < len(seg) {
			return false, false
		}
		m.work -= len(seg)
		matched := 0
		for i, id := range seg {
			if m.need[id] > 0 {
				if m.have[id] < m.need[id] {
					matched++
				}
				m.have[id]++
			}
			if i >= w {
				if out := seg[i-w]; m.need[out] > 0 {
					m.have[out]--
					if m.have[out] < m.need[out] {
						matched--
					}
				}
			}
			if i < w-1 || matched < need {
				continue
			}
			win := seg[i-w+1 : i+1]
			if m.work < n*w {
				m.clear(win)
				return false, false
			}
			m.work -= n * w
			if m.lcs(phrase, win) >= need {
				m.clear(win)
				return true, true
			}
		}
		m.clear(seg[len(seg)-w:])
	}
	return false, true
}

func (m *matcher) clear(win []int32) {
	for _, id := range win {
		m.have[id] = 0
	}
}

// lcs is the length of the longest common subsequence of a and b.
func (m *matcher) lcs(a, b []int32) int {
	if cap(m.row) < len(b)+1 {
		m.row = make([]int32, len(b)+1)
	}
	row := m.row[:len(b)+1]
	clear(row)
	for _, x := range a {
		var diag int32
		for j, y := range b {
			up := row[j+1]
			switch {
			case x == y:
				row[j+1] = diag + 1
			case row[j] > up:
				row[j+1] = row[j]
			}
			diag = up
		}
	}
	return int(row[len(b)])
}

// callout reports whether a blockquote is the answer's own aside, not a
// quotation: a GitHub alert ("> [!NOTE]") or one opening with "Note:",
// "**Tip**" and the like.
func callout(b string) bool {
	t := strings.TrimLeft(b, " *_")
	if strings.HasPrefix(t, "[!") {
		return true
	}
	e := letters(t, 0, len(t))
	if e == 0 || e == len(t) {
		return false
	}
	var buf [16]byte
	switch string(lowerWord(buf[:0:16], t[:e])) {
	case "note", "tip", "warning", "important", "caution", "disclaimer", "summary", "tldr", "nb":
		rest := strings.TrimLeft(t[e:], " *_")
		return strings.HasPrefix(rest, ":") || strings.HasPrefix(t[e:], "*") || strings.HasPrefix(t[e:], "_")
	}
	return false
}
