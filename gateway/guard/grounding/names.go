package grounding

import "strings"

// nameConnectors may join the words of a name: "Bank of Lisbon", "Ludwig
// van Beethoven".
var nameConnectors = hashSet("of", "de", "del", "der", "van", "von", "la", "le", "da", "di", "du", "y", "and", "&")

// nameStarters are capitalized words that start sentences, not names;
// they are dropped from the front of a run ("The Acme Group" → "Acme
// Group").
var nameStarters = hashSet("the", "a", "an", "this", "that", "these", "those", "in", "on", "at", "for",
	"from", "to", "by", "with", "and", "but", "or", "if", "when", "while", "as", "after", "before",
	"according", "per", "its", "their", "our", "his", "her", "my", "your", "we", "i", "it", "they",
	"he", "she", "you", "yes", "no", "note", "however", "also", "both", "each", "all", "some",
	"source", "sources", "document", "documents", "answer", "summary", "step", "see", "mr", "mrs",
	"ms", "dr", "prof", "st")

func hashSet(words ...string) map[uint64]bool {
	m := make(map[uint64]bool, len(words))
	for _, w := range words {
		m[hashWord(w)] = true
	}
	return m
}

// headingLines returns Markdown headings ("# ..."), which are title case
// by convention.
func headingLines(s string, out []span) []span {
	for i := 0; i < len(s); {
		lineEnd := strings.IndexByte(s[i:], '\n')
		if lineEnd < 0 {
			lineEnd = len(s)
		} else {
			lineEnd += i
		}
		if t := strings.TrimLeft(s[i:lineEnd], " \t"); strings.HasPrefix(t, "#") {
			out = append(out, span{i, lineEnd})
		}
		i = lineEnd + 1
	}
	return out
}

// checkNames reports runs of two or more capitalized words (joined by
// single spaces, possibly by connectors such as "of") that no text of the
// context contains, word for word in order (case-insensitive).
func (r *run) checkNames(skip []span) {
	a := r.answer
	toks := tokenize(a, 0, len(a), nil)
	si := 0
	var ids []int32
	for i := 0; i < len(toks); {
		if !toks[i].upper || !toks[i].letters || inside(skip, &si, toks[i].start, toks[i].end) {
			i++
			continue
		}
		// Extend the run over single spaces.
		j := i + 1
		for j < len(toks) && a[toks[j-1].end:toks[j].start] == " " {
			t := toks[j]
			if t.upper && t.letters {
				j++
				continue
			}
			if nameConnectors[t.hash] && j+1 < len(toks) && toks[j+1].upper && toks[j+1].letters && a[t.end:toks[j+1].start] == " " {
				j += 2
				continue
			}
			break
		}
		start := i
		for start < j && nameStarters[toks[start].hash] {
			start++
		}
		if j-start >= 2 {
			sp := span{toks[start].start, toks[j-1].end}
			m := r.index()
			ids = r.phrase(sp, ids[:0])
			found, ok := m.find(ids, len(ids))
			if ok && !found && j-start >= 3 && sentenceStart(a, sp.start) {
				// "Yesterday Acme Corp": the first word may be capitalized
				// only because it starts the sentence.
				found, ok = m.find(ids[1:], len(ids)-1)
			}
			if !ok {
				r.limit(sp, RuleQuoteBudget)
			} else {
				r.claim(WeightName, found, TypeName, RuleName, sp)
			}
		}
		i = j
	}
}

// sentenceStart reports whether only spaces, quotes or list markers stand
// between s[i] and the start of a line or the end of a sentence.
func sentenceStart(s string, i int) bool {
	for i > 0 {
		c := s[i-1]
		switch c {
		case ' ', '\t', '"', '*', '-', '>', '(', '#':
			i--
			continue
		case '\n', '.', '!', '?', ':':
			return true
		}
		if c >= 0x80 {
			return true // typographic quotes and the like
		}
		return isDigit(c) && i >= 2 && (s[i-2] == '\n' || s[i-2] == ' ')
	}
	return true
}
