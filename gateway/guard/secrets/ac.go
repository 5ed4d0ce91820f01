package secrets

import "fmt"

// matcher is an Aho-Corasick automaton over ASCII-case-folded keywords:
// a dense DFA on byte classes (bytes that occur in no keyword share class
// 0, upper and lower case letters share one), premultiplied state numbers
// and a flag bit on transitions into states that end a keyword. It reports
// every occurrence, overlapping ones included, without lowering a copy of
// the text and without allocating.
//
// The modules at hand (coregx/ahocorasick, BobuSumisu/aho-corasick) match
// bytes exactly, so case-insensitive matching would need a lowered copy
// of every text (gitleaks does strings.ToLower): this automaton folds case
// in its byte-class table instead.
type matcher struct {
	cls   [256]uint16
	ncls  uint32
	trans []uint32
	// out[state] lists the keywords that end in state (its own and its
	// suffixes').
	out    [][]uint16
	kwLen  []int
	maxLen int // of a keyword
}

const matchFlag = 1 << 31

// newMatcher builds the automaton; keywords are matched case-insensitively
// (ASCII).
func newMatcher(keywords []string) (*matcher, error) {
	m := &matcher{}
	// Byte classes.
	var seen [256]uint16
	ncls := uint16(1)
	for _, kw := range keywords {
		if kw == "" {
			return nil, fmt.Errorf("empty keyword")
		}
		for i := 0; i < len(kw); i++ {
			c := lowerByte(kw[i])
			if seen[c] == 0 {
				seen[c] = ncls
				ncls++
			}
		}
	}
	for b := 0; b < 256; b++ {
		m.cls[b] = seen[lowerByte(byte(b))]
	}
	m.ncls = uint32(ncls)

	// Trie.
	type node struct {
		next map[uint16]int
		fail int
		out  []uint16
	}
	nodes := []node{{next: map[uint16]int{}}}
	for id, kw := range keywords {
		s := 0
		for i := 0; i < len(kw); i++ {
			c := m.cls[kw[i]]
			t, ok := nodes[s].next[c]
			if !ok {
				t = len(nodes)
				nodes = append(nodes, node{next: map[uint16]int{}})
				nodes[s].next[c] = t
			}
			s = t
		}
		nodes[s].out = append(nodes[s].out, uint16(id))
		m.kwLen = append(m.kwLen, len(kw))
		m.maxLen = max(m.maxLen, len(kw))
	}

	// Failure links and the dense table, breadth first.
	ns := len(nodes)
	if uint64(ns)*uint64(ncls) >= matchFlag {
		return nil, fmt.Errorf("too many keywords")
	}
	next := make([]int, ns*int(ncls))
	queue := []int{0}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if s != 0 {
			nodes[s].out = append(nodes[s].out, nodes[nodes[s].fail].out...)
		}
		for c := 0; c < int(ncls); c++ {
			if t, ok := nodes[s].next[uint16(c)]; ok && c != 0 {
				if s != 0 {
					nodes[t].fail = next[nodes[s].fail*int(ncls)+c]
				}
				next[s*int(ncls)+c] = t
				queue = append(queue, t)
				continue
			}
			if s != 0 {
				next[s*int(ncls)+c] = next[nodes[s].fail*int(ncls)+c]
			}
		}
	}
	m.trans = make([]uint32, len(next))
	for i, t := range next {
		v := uint32(t) * m.ncls
		if len(nodes[t].out) > 0 {
			v |= matchFlag
		}
		m.trans[i] = v
	}
	m.out = make([][]uint16, ns)
	for i := range nodes {
		m.out[i] = nodes[i].out
	}
	return m, nil
}

// hit is a keyword occurrence: keyword id and the offset just past it.
type hit struct {
	kw  uint16
	end int32
}

// scan appends every keyword occurrence in s to hits.
//
// Each byte's transition waits for the one before (a load from a table
// larger than the L1 cache), so a long text is scanned as two halves at
// once, interleaved: the second half starts maxLen-1 bytes early, from the
// start state, and reports only the keywords that end in it.
func (m *matcher) scan(s string, hits []hit) []hit {
	if len(s) < 2*splitScan || m.maxLen == 0 || m.maxLen > splitScan {
		return m.scanFrom(s, 0, 0, hits)
	}
	trans, cls := m.trans, &m.cls
	mid := len(s) / 2
	b := mid - (m.maxLen - 1) // where the second walker starts
	var bBuf [8]hit
	bHits := bBuf[:0]
	sa, sb := uint32(0), uint32(0)
	for i := 0; i < mid; i++ {
		sa = trans[sa+uint32(cls[s[i]])]
		sb = trans[sb+uint32(cls[s[b+i]])]
		if (sa|sb)&matchFlag == 0 {
			continue
		}
		if sa&matchFlag != 0 {
			sa &^= matchFlag
			for _, kw := range m.out[sa/m.ncls] {
				hits = append(hits, hit{kw, int32(i + 1)})
			}
		}
		if sb&matchFlag != 0 {
			sb &^= matchFlag
			if b+i >= mid { // the first half reports the keywords ending before
				for _, kw := range m.out[sb/m.ncls] {
					bHits = append(bHits, hit{kw, int32(b + i + 1)})
				}
			}
		}
	}
	hits = append(hits, bHits...)
	return m.scanFrom(s, b+mid, sb, hits)
}

// splitScan is the length from which scan splits a text in two.
const splitScan = 256

// scanFrom appends the keyword occurrences that end in s[i:] to hits,
// starting in state st (premultiplied, without the flag).
func (m *matcher) scanFrom(s string, i int, st uint32, hits []hit) []hit {
	trans, cls := m.trans, &m.cls
	for ; i < len(s); i++ {
		st = trans[st+uint32(cls[s[i]])]
		if st&matchFlag != 0 {
			st &^= matchFlag
			for _, kw := range m.out[st/m.ncls] {
				hits = append(hits, hit{kw, int32(i + 1)})
			}
		}
	}
	return hits
}

func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// any reports whether s holds a keyword.
func (m *matcher) any(s string) bool {
	trans, cls := m.trans, &m.cls
	st := uint32(0)
	for i := 0; i < len(s); i++ {
		st = trans[st+uint32(cls[s[i]])]
		if st&matchFlag != 0 {
			return true
		}
	}
	return false
}
