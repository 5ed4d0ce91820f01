package grounding

import "strings"

// citation is one document number the answer cites.
type citation struct {
	num        span // the digits
	n          int
	whole      span // the whole marker ("[1, 3]"), which is not a number claim
	rangeStart bool // the low end of a range [n-m]
}

// citeKeywords name a document before its number: "[Source 2]", "(Doc 1)",
// "Document 3 says". Plurals are allowed ("(Sources 1 and 2)").
var citeKeywords = []string{
	"documents", "document", "docs", "doc", "sources", "source", "references", "reference",
	"refs", "ref", "passages", "passage", "excerpts", "excerpt", "snippets", "snippet",
	"chunks", "chunk", "citations", "citation", "results", "result", "contexts", "context",
}

// runningKeywords may cite a document in running text when capitalized
// ("As Document 2 notes").
var runningKeywords = []string{"Documents", "Document", "Doc", "Sources", "Source", "Passages", "Passage", "Excerpt", "Snippet"}

// scanCitations calls fn for each document number the answer cites:
// [n], [n, m], [n-m], [^n], [Source n], 【n†source】, (Source n), (Docs
// 1 and 2), ^n after a word or punctuation (not "x^2"), and "Document n"
// in running text. Numbers have at most three digits ("[2023]" is a year,
// not a citation). The ranges in skip (code, links) are ignored.
func scanCitations(s string, skip []span, fn func(citation)) {
	var cs []citation
	si := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		var open, close string
		switch {
		case c == '[':
			open, close = "[", "]"
		case c == '(':
			open, close = "(", ")"
		case c == '^':
		case strings.HasPrefix(s[i:], "【"):
			open, close = "【", "】"
		case c == 'D' || c == 'S' || c == 'P' || c == 'E':
		default:
			continue
		}
		if inside(skip, &si, i, i+1) {
			continue
		}
		switch {
		case open != "":
			end := strings.Index(s[i+len(open):min(len(s), i+len(open)+80)], close)
			if end < 0 {
				continue
			}
			end += i + len(open)
			cs = parseCiteList(s, i+len(open), end, open == "(", span{i, end + len(close)}, cs[:0])
			if len(cs) > 0 {
				for _, ct := range cs {
					fn(ct)
				}
				i = end + len(close) - 1
			}
		case c == '^':
			j := digits(s, i+1, len(s))
			if j == i+1 || j-i-1 > 3 || (j < len(s) && (isWordByte(s, j) || s[j] == '.' && j+1 < len(s) && isDigit(s[j+1]))) {
				continue
			}
			if !citeCaretAfter(s, i) {
				continue
			}
			fn(citation{num: span{i + 1, j}, n: atoi(s[i+1 : j]), whole: span{i, j}})
			i = j - 1
		default:
			if r, n := lastRune(s, i, 0); r != 0 && isWordByte(s, i-n) {
				continue
			}
			for _, k := range runningKeywords {
				if !strings.HasPrefix(s[i:], k) {
					continue
				}
				j := i + len(k)
				if j+1 < len(s) && s[j] == ' ' && isDigit(s[j+1]) {
					e := digits(s, j+1, len(s))
					if e-j-1 <= 3 && (e == len(s) || !isWordByte(s, e)) && !(e+1 < len(s) && (s[e] == '.' || s[e] == ',') && isDigit(s[e+1])) {
						fn(citation{num: span{j + 1, e}, n: atoi(s[j+1 : e]), whole: span{i, e}})
						i = e - 1
					}
				}
				break
			}
		}
	}
}

// citeCaretAfter reports whether the ^ at s[i] follows a word of two or
// more letters or closing punctuation: "blue^1", "blue.^2", but not
// "x^2", "2^10" or "(a+b)^2".
func citeCaretAfter(s string, i int) bool {
	r, n := lastRune(s, i, 0)
	switch r {
	case '.', ',', ';', ':', '!', '?', '"', '\'', '”', '’', ']':
		return true
	}
	if r == 0 || !isWordByte(s, i-n) || isDigit(s[i-1]) {
		return false
	}
	// At least two letters before.
	r2, n2 := lastRune(s, i-n, 0)
	return r2 != 0 && isWordByte(s, i-n-n2) && !isDigit(s[i-n-1])
}

// parseCiteList parses s[i:end] (the inside of a bracket) as a citation
// list, appending its numbers to out; it returns out unchanged if it is
// not one. Parentheses need a keyword: "(Source 2)", not "(2)".
func parseCiteList(s string, i, end int, paren bool, whole span, out []citation) []citation {
	base := len(out)
	j := skipSpaces(s, i, end)
	if !paren && j < end && s[j] == '^' {
		j++
	}
	if paren && j+4 < end && strings.EqualFold(s[j:j+4], "see ") {
		j = skipSpaces(s, j+4, end)
	}
	keyword := false
	for _, k := range citeKeywords {
		if j+len(k) <= end && strings.EqualFold(s[j:j+len(k)], k) && (j+len(k) == end || !isWordByte(s, j+len(k))) {
			j += len(k)
			keyword = true
			break
		}
	}
	if paren && !keyword {
		return out
	}
	if keyword {
		j = skipSpaces(s, j, end)
		if j < end && (s[j] == ':' || s[j] == '#') {
			j = skipSpaces(s, j+1, end)
		}
	}
	for {
		if j < end && s[j] == '#' {
			j++
		}
		k := digits(s, j, end)
		if k == j || k-j > 3 {
			return out[:base]
		}
		out = append(out, citation{num: span{j, k}, n: atoi(s[j:k]), whole: whole})
		j = skipSpaces(s, k, end)
		// A range: 2-4, 2–4, 2—4.
		if d := dashAt(s, j, end); d > j {
			r := skipSpaces(s, d, end)
			if r < end && s[r] == '#' {
				r++
			}
			re := digits(s, r, end)
			if re == r || re-r > 3 {
				return out[:base]
			}
			out[len(out)-1].rangeStart = true
			out = append(out, citation{num: span{r, re}, n: atoi(s[r:re]), whole: whole})
			k = re
			j = skipSpaces(s, re, end)
		}
		if j == end {
			return out
		}
		switch {
		case strings.HasPrefix(s[j:end], "†"):
			// 【3†source】
			return out
		case s[j] == ',' || s[j] == ';' || s[j] == '&':
			j = skipSpaces(s, j+1, end)
		case j+4 <= end && strings.EqualFold(s[j:j+4], "and "):
			j = skipSpaces(s, j+4, end)
		case j > k && isDigit(s[j]):
			// [1 2]
			continue
		default:
			return out[:base]
		}
		if j < end && !isDigit(s[j]) && s[j] != '#' {
			if keyword {
				// "(Source 2, p. 4)": the rest is a locator.
				return out
			}
			return out[:base]
		}
	}
}

func skipSpaces(s string, i, end int) int {
	for i < end && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// dashAt returns the end of a hyphen, en dash or em dash at s[i:], or i.
func dashAt(s string, i, end int) int {
	if i < end && s[i] == '-' {
		return i + 1
	}
	for _, d := range []string{"–", "—"} {
		if strings.HasPrefix(s[i:end], d) {
			return i + len(d)
		}
	}
	return i
}
