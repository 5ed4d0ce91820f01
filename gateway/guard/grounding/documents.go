package grounding

import (
	"strings"
)

// maxDocNumber is the highest document number Documents honours; a marker
// with a higher number is ordinary text.
const maxDocNumber = 1000

// docKeywords name a passage at the start of a line: "Document 1:",
// "Source 2 -", "[Doc 3]".
var docKeywords = []string{"document", "doc", "source", "passage", "context", "chunk", "result", "excerpt", "snippet", "reference"}

// Documents splits texts into the documents an answer may cite. Texts
// holding numbered passages are cut at their markers:
//
//   - "[1] ...", "【1】 ...", "[Document 1] ..." at the start of a line;
//   - "Document 1:", "Doc 1.", "Source 1 -", "Passage 1)" (also after "#",
//     "*" or "**") at the start of a line, followed by ":", ".", ")", "-",
//     "—" or the end of the line;
//   - <doc id=1>, <document index="2">, <doc> tags (anywhere), each up to
//     its closing tag or the next opening one; unnumbered tags are
//     numbered in order.
//
// Document n is element n-1 of the result: passages are placed by their
// number (a gap leaves an empty document, and passages with the same
// number, in one text or several, are joined). Text before the first
// marker (a heading such as "Context:") and texts without markers are
// left out as soon as one text has numbered passages, since they are not
// citable; SplitDocuments returns them. Texts without any marker are
// returned whole, one document each.
func Documents(texts []string) []string {
	docs, _ := SplitDocuments(texts)
	return docs
}

// SplitDocuments is Documents that also returns the other text: the parts
// of texts outside numbered passages when there are any (preambles, text
// after a closing tag, texts without markers), which may still support an
// answer (Input.Extra) but cannot be cited.
func SplitDocuments(texts []string) (docs, other []string) {
	type passage struct {
		n    int
		text string
	}
	var (
		passages []passage
		rest     []string
		numbered bool
	)
	for _, t := range texts {
		ps, pre := splitText(t)
		if len(ps) == 0 {
			rest = append(rest, t)
			continue
		}
		numbered = true
		if strings.TrimSpace(pre) != "" {
			rest = append(rest, pre)
		}
		for _, p := range ps {
			passages = append(passages, passage{p.n, p.text})
		}
	}
	if !numbered {
		return append([]string(nil), texts...), nil
	}
	for _, p := range passages {
		for len(docs) < p.n {
			docs = append(docs, "")
		}
		if docs[p.n-1] == "" {
			docs[p.n-1] = p.text
		} else {
			docs[p.n-1] += "\n" + p.text
		}
	}
	return docs, rest
}

type numberedText struct {
	n    int
	text string
}

// splitText cuts one text at its passage markers, returning the passages
// and the text outside them.
func splitText(t string) (ps []numberedText, other string) {
	if ps, other = splitTags(t); len(ps) > 0 {
		return ps, other
	}
	type marker struct{ start, body, n int }
	var ms []marker
	for i := 0; i < len(t); {
		lineEnd := strings.IndexByte(t[i:], '\n')
		if lineEnd < 0 {
			lineEnd = len(t)
		} else {
			lineEnd += i
		}
		if body, n := lineMarker(t, i, lineEnd); n > 0 {
			ms = append(ms, marker{i, body, n})
		}
		i = lineEnd + 1
	}
	if len(ms) == 0 {
		return nil, t
	}
	for k, m := range ms {
		end := len(t)
		if k+1 < len(ms) {
			end = ms[k+1].start
		}
		ps = append(ps, numberedText{m.n, strings.TrimSpace(t[m.body:end])})
	}
	return ps, t[:ms[0].start]
}

// lineMarker reads a passage marker at the start of the line t[i:end],
// returning where the passage starts and its number (0 if none).
func lineMarker(t string, i, end int) (body, n int) {
	j := i
	for j < end && (t[j] == ' ' || t[j] == '\t' || t[j] == '#' || t[j] == '*' || t[j] == '>') {
		j++
	}
	open := ""
	switch {
	case j < end && t[j] == '[':
		open = "]"
		j++
	case strings.HasPrefix(t[j:end], "【"):
		open = "】"
		j += len("【")
	}
	kw := false
	for _, k := range docKeywords {
		if j+len(k) <= end && strings.EqualFold(t[j:j+len(k)], k) {
			e := j + len(k)
			if e < end && (t[e] == 's' || t[e] == 'S') {
				e++
			}
			if e < end && (t[e] == ' ' || t[e] == '#') {
				j, kw = e, true
				for j < end && (t[j] == ' ' || t[j] == '#') {
					j++
				}
			}
			break
		}
	}
	if open == "" && !kw {
		return 0, 0
	}
	k := digits(t, j, end)
	if k == j || k-j > 4 {
		return 0, 0
	}
	n = atoi(t[j:k])
	if n < 1 || n > maxDocNumber {
		return 0, 0
	}
	if open != "" {
		if !strings.HasPrefix(t[k:end], open) {
			return 0, 0
		}
		b := k + len(open)
		if b < end && t[b] == ':' {
			b++
		}
		return b, n
	}
	// "Document 1" must end the line or be followed by a separator.
	e := k
	for e < end && t[e] == '*' {
		e++
	}
	e = skipSpaces(t, e, end)
	if e == end {
		return e, n
	}
	for _, sep := range []string{":", ".", ")", "-", "—", "–", "]"} {
		if strings.HasPrefix(t[e:end], sep) {
			if sep == "." && e+1 < end && isDigit(t[e+1]) {
				return 0, 0
			}
			b := e + len(sep)
			for b < end && t[b] == '*' {
				b++
			}
			return b, n
		}
	}
	return 0, 0
}

// splitTags cuts t at <doc ...> or <document ...> tags.
func splitTags(t string) (ps []numberedText, other string) {
	lower := asciiLower(t)
	var sb strings.Builder
	last, seq := 0, 0
	closing := map[string]*finder{"doc": newFinder(lower, "</doc>"), "document": newFinder(lower, "</document>")}
	opening := newFinder(lower, "<doc")
	for i := 0; i < len(t); {
		k := strings.Index(lower[i:], "<doc")
		if k < 0 {
			break
		}
		k += i
		name := "doc"
		if strings.HasPrefix(lower[k+1:], "document") {
			name = "document"
		}
		a := k + 1 + len(name)
		if a >= len(t) || (t[a] != '>' && t[a] != ' ' && t[a] != '\t' && t[a] != '\n') {
			i = k + 1
			continue
		}
		gt := strings.IndexByte(t[a:], '>')
		if gt < 0 {
			break
		}
		gt += a
		seq++
		n := tagNumber(lower[a:gt])
		if n <= 0 {
			n = seq
		}
		body := gt + 1
		end := len(t)
		next := len(t)
		if c := closing[name].next(body); c < len(t) {
			end = c
			next = end + len("</"+name+">")
		}
		if o := nextTag(lower, opening, body); o < end {
			end, next = o, o
		}
		sb.WriteString(t[last:k])
		last = next
		if n <= maxDocNumber {
			ps = append(ps, numberedText{n, strings.TrimSpace(t[body:end])})
		}
		i = next
	}
	if len(ps) == 0 {
		return nil, t
	}
	sb.WriteString(t[last:])
	return ps, sb.String()
}

// nextTag returns the offset of the next <doc or <document opening tag
// from i in lower (len(lower) if none); opening finds "<doc".
func nextTag(lower string, opening *finder, i int) int {
	for {
		k := opening.next(i)
		if k >= len(lower) {
			return len(lower)
		}
		a := k + 4
		if strings.HasPrefix(lower[a:], "ument") {
			a += 5
		}
		if a < len(lower) && (lower[a] == '>' || lower[a] == ' ' || lower[a] == '\t' || lower[a] == '\n') {
			return k
		}
		i = k + 1
	}
}

// tagNumber reads id= or index= from a tag's attributes ("id=1",
// `index="2"`, `id='doc-3'` gives 3), or 0.
func tagNumber(attrs string) int {
	for _, name := range []string{"index", "id", "number", "n"} {
		for off := 0; ; {
			k := strings.Index(attrs[off:], name)
			if k < 0 {
				break
			}
			k += off
			off = k + 1
			if k > 0 && attrs[k-1] != ' ' && attrs[k-1] != '\t' && attrs[k-1] != '\n' {
				continue
			}
			j := k + len(name)
			for j < len(attrs) && attrs[j] == ' ' {
				j++
			}
			if j >= len(attrs) || attrs[j] != '=' {
				continue
			}
			j++
			for j < len(attrs) && (attrs[j] == ' ' || attrs[j] == '"' || attrs[j] == '\'') {
				j++
			}
			// A prefix such as "doc-" before the number.
			v := j
			for v < len(attrs) && attrs[v] != '"' && attrs[v] != '\'' && attrs[v] != ' ' && !isDigit(attrs[v]) {
				v++
			}
			e := digits(attrs, v, len(attrs))
			if e > v && e-v <= 4 && (e == len(attrs) || attrs[e] == '"' || attrs[e] == '\'' || attrs[e] == ' ') {
				return atoi(attrs[v:e])
			}
			return 0
		}
	}
	return 0
}

// asciiLower lower-cases ASCII letters only, keeping every offset.
func asciiLower(t string) string {
	for i := 0; i < len(t); i++ {
		if 'A' <= t[i] && t[i] <= 'Z' {
			b := []byte(t)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return t
}
