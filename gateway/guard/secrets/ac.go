package secrets

import (
	"fmt"

	"aigw/gateway/guard/internal/ac"
)

// matcher finds keywords, ASCII case-insensitively: every occurrence,
// overlapping ones included. It is the automaton of package internal/ac
// (shared with the content and injection checks) with Fold: upper and
// lower case letters share a byte class, so no lowered copy of the text is
// needed (gitleaks does strings.ToLower).
type matcher struct {
	a     *ac.Automaton
	kwLen []int
}

// newMatcher builds the automaton; keywords are matched case-insensitively
// (ASCII).
func newMatcher(keywords []string) (*matcher, error) {
	if len(keywords) > 1<<16 {
		return nil, fmt.Errorf("too many keywords")
	}
	a, err := ac.New(keywords, ac.Options{Fold: true})
	if err != nil {
		return nil, err
	}
	m := &matcher{a: a, kwLen: make([]int, len(keywords))}
	for i := range keywords {
		m.kwLen[i] = a.Len(i)
	}
	return m, nil
}

// hit is a keyword occurrence: keyword id and the offset just past it.
type hit struct {
	kw  uint16
	end int32
}

// scan appends every keyword occurrence in s to hits, by end (the longest
// keyword first among those that end at one byte). Long texts are walked
// as four interleaved quarters (see package internal/ac).
func (m *matcher) scan(s string, hits []hit) []hit {
	var buf [32]ac.Match
	return appendHits(hits, m.a.Append(buf[:0], s))
}

// scanFrom appends the keyword occurrences that end in s[i:] to hits, in
// one pass from state st (0 is the start).
func (m *matcher) scanFrom(s string, i int, st ac.State, hits []hit) []hit {
	var buf [32]ac.Match
	ms, _ := m.a.Walk(buf[:0], s, i, st)
	return appendHits(hits, ms)
}

func appendHits(hits []hit, ms []ac.Match) []hit {
	for _, x := range ms {
		hits = append(hits, hit{kw: uint16(x.Pattern), end: int32(x.End)})
	}
	return hits
}

// any reports whether s holds a keyword.
func (m *matcher) any(s string) bool {
	return m.a.Contains(s)
}
