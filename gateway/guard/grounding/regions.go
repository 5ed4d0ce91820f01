package grounding

import (
	"slices"
	"strings"
)

// span is a byte range [start, end) of the answer.
type span struct{ start, end int }

// inside reports whether [start, end) lies within one of spans (sorted,
// disjoint), advancing *i past spans that end before start (so a caller
// asking in increasing order pays linear time overall).
func inside(spans []span, i *int, start, end int) bool {
	for *i < len(spans) && spans[*i].end <= start {
		*i++
	}
	return *i < len(spans) && spans[*i].start <= start && end <= spans[*i].end
}

// merge sorts spans and merges the overlapping ones.
func merge(spans []span) []span {
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	out := spans[:0]
	for _, s := range spans {
		if n := len(out); n > 0 && s.start <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, s.end)
			continue
		}
		out = append(out, s)
	}
	return out
}

// codeSpans returns the answer's code: fenced blocks (``` or ~~~ to the
// matching fence or the end) and inline code (`...` on one line), each in
// order. Code is not a claim: its numbers, quotes and brackets are not
// checked.
func codeSpans(s string) (fences, inline []span) {
	for i := 0; i < len(s); {
		lineEnd := strings.IndexByte(s[i:], '\n')
		if lineEnd < 0 {
			lineEnd = len(s)
		} else {
			lineEnd += i
		}
		t := strings.TrimLeft(s[i:lineEnd], " \t>")
		if fence := fenceOf(t); fence != "" {
			start := i
			end := len(s)
			for j := lineEnd + 1; j < len(s); {
				le := strings.IndexByte(s[j:], '\n')
				if le < 0 {
					le = len(s)
				} else {
					le += j
				}
				if strings.HasPrefix(strings.TrimLeft(s[j:le], " \t>"), fence) {
					end = le
					break
				}
				j = le + 1
			}
			fences = append(fences, span{start, end})
			i = end + 1
			continue
		}
		// Inline code on this line.
		for j := i; j < lineEnd; {
			k := strings.IndexByte(s[j:lineEnd], '`')
			if k < 0 {
				break
			}
			k += j
			n := k
			for n < lineEnd && s[n] == '`' {
				n++
			}
			ticks := s[k:n]
			c := strings.Index(s[n:min(lineEnd, n+4096)], ticks)
			if c < 0 {
				j = n
				continue
			}
			inline = append(inline, span{k, n + c + len(ticks)})
			j = n + c + len(ticks)
		}
		i = lineEnd + 1
	}
	return fences, inline
}

func fenceOf(line string) string {
	for _, f := range []string{"```", "~~~"} {
		if strings.HasPrefix(line, f) {
			return f
		}
	}
	return ""
}

// linkSpans returns the answer's URLs (http://, https://, www.) and e-mail
// addresses, up to the first space or closing bracket, without trailing
// punctuation.
func linkSpans(s string) (urls, emails []span) {
	for i := 0; i < len(s); {
		k := indexLinkStart(s[i:])
		if k < 0 {
			break
		}
		start := i + k
		end := urlEnd(s, start)
		urls = append(urls, span{start, end})
		i = max(end, start+1)
	}
	// E-mail addresses: the word run around each '@'.
	ui := 0
	for i := 0; i < len(s); {
		k := strings.IndexByte(s[i:], '@')
		if k < 0 {
			break
		}
		at := i + k
		a := at
		for a > 0 && isEmailByte(s[a-1]) {
			a--
		}
		b := at + 1
		for b < len(s) && isEmailByte(s[b]) {
			b++
		}
		for b > at+1 && s[b-1] == '.' {
			b--
		}
		if a < at && b > at+1 && strings.IndexByte(s[at+1:b], '.') >= 0 && !inside(urls, &ui, at, at+1) {
			emails = append(emails, span{a, b})
		}
		i = b
		if i <= at {
			i = at + 1
		}
	}
	return urls, emails
}

func isEmailByte(c byte) bool {
	return isDigit(c) || isASCIILetter(c) || c == '.' || c == '_' || c == '-' || c == '+' || c == '%'
}

// indexLinkStart finds the next "http://", "https://" or "www." (any
// case) at a word start.
func indexLinkStart(s string) int {
	for k := 0; k < len(s); k++ {
		c := s[k] | 0x20
		if c != 'h' && c != 'w' || k > 0 && isWordByte(s, k-1) {
			continue
		}
		for _, p := range []string{"http://", "https://", "www."} {
			if len(s)-k >= len(p) && strings.EqualFold(s[k:k+len(p)], p) {
				return k
			}
		}
	}
	return -1
}

// urlEnd returns the end of the URL starting at s[start]: the first
// space, control character, quote or angle bracket, without trailing
// punctuation or an unbalanced closing parenthesis.
func urlEnd(s string, start int) int {
	end := start
	for end < len(s) {
		c := s[end]
		if c <= ' ' || c == '"' || c == '<' || c == '>' || c == '`' || c == '\'' || c == 0x7f {
			break
		}
		if c >= 0x80 {
			// Typographic quotes and dashes end a URL; other non-ASCII
			// letters (IRIs) do not.
			if strings.HasPrefix(s[end:], "“") || strings.HasPrefix(s[end:], "”") || strings.HasPrefix(s[end:], "’") ||
				strings.HasPrefix(s[end:], "»") || strings.HasPrefix(s[end:], "—") || strings.HasPrefix(s[end:], "\u00a0") {
				break
			}
		}
		end++
	}
	for end > start {
		c := s[end-1]
		if strings.IndexByte(".,;:!?*_", c) >= 0 {
			end--
			continue
		}
		if c == ')' && strings.Count(s[start:end], "(") < strings.Count(s[start:end], ")") {
			end--
			continue
		}
		if c == ']' && strings.Count(s[start:end], "[") < strings.Count(s[start:end], "]") {
			end--
			continue
		}
		break
	}
	return end
}

// listMarkers returns the numbers that start list items or headings
// ("1. ", "2) ", "## 3. "): structure, not claims.
func listMarkers(s string, out []span) []span {
	for i := 0; i < len(s); {
		lineEnd := strings.IndexByte(s[i:], '\n')
		if lineEnd < 0 {
			lineEnd = len(s)
		} else {
			lineEnd += i
		}
		j := i
		for j < lineEnd && (s[j] == ' ' || s[j] == '\t' || s[j] == '#' || s[j] == '>' || s[j] == '*' || s[j] == '-') {
			j++
		}
		k := digits(s, j, lineEnd)
		if k > j && k-j <= 3 && k+1 < lineEnd && (s[k] == '.' || s[k] == ')') && (s[k+1] == ' ' || s[k+1] == '\t') {
			out = append(out, span{j, k})
		}
		i = lineEnd + 1
	}
	return out
}
