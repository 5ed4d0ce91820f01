// Package secrets finds credentials in text the way gitleaks does, in
// three stages: an Aho-Corasick keyword prefilter (case-insensitive, one
// pass), then each triggered rule's RE2 regex, run only on a window that
// starts at the keyword (after a cheap shape check: a token boundary and
// length, an assignment after a name, user:password@ in a URL), then a
// Shannon entropy threshold and allowlists (placeholders such as EXAMPLE,
// xxxx, <your-key>, ${VAR}; UUIDs and identifiers for the generic rules;
// anything inside a base64 data: URI).
//
// The rules are an embedded JSON file in gitleaks' rule format
// (rules.json; see LICENSE.gitleaks). A finding's Type is the rule id and
// its Score is 1, except for the generic rules (generic-password,
// generic-api-key, bearer-token), whose score grows with the secret's
// entropy from 0.5 at the threshold to 1, and a private key's PEM header
// with no body yet (the start of a stream), 0.5.
//
// A private key's finding covers BEGIN to END when the block is whole, and
// runs to the end of the text when it is not (yet): a PEM block streamed
// in chunks is caught from its header on.
//
// Text where normalizing could change a finding (invisible characters
// next to ASCII, characters NFKC maps to ASCII: textnorm.Affects) is
// scanned on its normalized shadow (textnorm), and findings
// are mapped back.
package secrets

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"aigw/gateway/guard"
	"aigw/gateway/guard/internal/ac"
)

// Config configures a Detector. The zero value uses every rule with its
// own entropy threshold.
type Config struct {
	// MinEntropy, when positive, replaces the Shannon entropy threshold
	// (bits per byte) of every rule that has one (3 for most tokens, 3.5
	// for generic keys).
	MinEntropy float64
}

// Validate checks MinEntropy.
func (c Config) Validate() error {
	if c.MinEntropy < 0 || c.MinEntropy > 8 {
		return fmt.Errorf("secrets: min entropy %v out of [0, 8]", c.MinEntropy)
	}
	return nil
}

// Detector finds secrets. It is safe for concurrent use.
type Detector struct {
	rs         *ruleSet
	minEntropy float64
}

var _ guard.Detector = (*Detector)(nil)

var defaultRules = sync.OnceValue(func() *ruleSet {
	rs, err := compileRules(rulesJSON)
	if err != nil {
		panic(err) // the embedded file is checked by the tests
	}
	return rs
})

// New returns a detector with the embedded rules.
func New(cfg Config) *Detector {
	return &Detector{rs: defaultRules(), minEntropy: cfg.MinEntropy}
}

// Rules lists the rule ids (the finding types), most specific first.
func (d *Detector) Rules() []string {
	ids := make([]string, len(d.rs.rules))
	for i := range d.rs.rules {
		ids[i] = d.rs.rules[i].id
	}
	return ids
}

// cand is a rule's match before overlaps are settled.
type cand struct {
	rule       int
	start, end int
	score      float64
	variant    string
}

// Scan appends the secrets found in text to out, in text order, with
// offsets in text.
func (d *Detector) Scan(text string, out []guard.Finding) []guard.Finding {
	return d.scan(text, out, false, nil)
}

// stats counts a scan's work, for the tests.
type stats struct {
	regexCalls, endSearchBytes int
}

// scan is Scan; force normalizes even when textnorm.Affects says it is not needed
// (for the tests that check textnorm.Affects); st, if not nil, counts the work.
func (d *Detector) scan(text string, out []guard.Finding, force bool, st *stats) []guard.Finding {
	sh := newShadow(text, force)
	s := sh.text
	var hitBuf [32]ac.Match
	hits := d.rs.kw.Append(hitBuf[:0], s)
	if len(hits) == 0 {
		return out
	}
	var done [maxRules]int32 // per rule: where its last match ended
	state := scanState{ends: endFinder{s: s, st: st}}
	var candBuf [8]cand
	cs := candBuf[:0]
	for _, h := range hits {
		for _, ri := range d.rs.byKW[h.Pattern] {
			if h.Start < int(done[ri]) {
				continue
			}
			c, skipTo, ok := d.try(&d.rs.rules[ri], s, h.Start, h.End, st, &state)
			done[ri] = int32(max(int(done[ri]), skipTo))
			if ok {
				c.rule = int(ri)
				cs = append(cs, c)
			}
		}
	}
	if len(cs) == 0 {
		return out
	}
	// Overlaps: the rule listed first wins (specific before generic).
	slices.SortStableFunc(cs, func(a, b cand) int { return a.rule - b.rule })
	kept := cs[:0]
	for _, c := range cs {
		if !slices.ContainsFunc(kept, func(k cand) bool { return c.start < k.end && k.start < c.end }) {
			kept = append(kept, c)
		}
	}
	slices.SortFunc(kept, func(a, b cand) int { return a.start - b.start })
	for _, c := range kept {
		st, en := sh.span(c.start, c.end)
		out = append(out, guard.Finding{Type: d.rs.rules[c.rule].id, Start: st, End: en, Score: c.score, Rule: c.variant})
	}
	return out
}

// try runs rule r at the keyword s[start:kwEnd]. It returns the secret's
// span and score if it found one, and the offset before which the rule
// need not run again: the end of its regex match (found a secret or not),
// or, for a rule with skipClass whose regex failed, the end of the run of
// those characters (a later keyword in that run fails the same way; this
// keeps a text full of keywords linear).
func (d *Detector) try(r *rule, s string, start, kwEnd int, st *stats, state *scanState) (cand, int, bool) {
	switch r.kind {
	case kindToken:
		if start > 0 && isWord(s[start-1]) || tokenRun(s, start, r.minLen) < r.minLen {
			return cand{}, 0, false
		}
	case kindAssign:
		if !assignShape(s, kwEnd) {
			return cand{}, 0, false
		}
	case kindURL:
		if !userinfo(s, kwEnd) {
			return cand{}, 0, false
		}
	}
	win := s[start:min(len(s), start+r.maxLen)]
	if st != nil {
		st.regexCalls++
	}
	loc := r.re.FindStringSubmatchIndex(win)
	if loc == nil {
		skip := 0
		if r.skip != nil {
			skip = start
			for skip < len(s) && r.skip[s[skip]] {
				skip++
			}
		}
		return cand{}, skip, false
	}
	matchEnd := start + loc[1]
	ss, se := loc[2*r.secretGroup], loc[2*r.secretGroup+1]
	if ss < 0 || ss == se {
		return cand{}, matchEnd, false
	}
	ss += start
	se += start
	if r.kind == kindToken && matchEnd < len(s) && isAlnum(s[matchEnd]) {
		return cand{}, matchEnd, false // a longer token than the rule's
	}
	c := cand{start: ss, end: se, score: 1}
	if r.kind == kindPEM {
		end, score, variant, ok := pemExtent(s, se, &state.ends)
		if !ok {
			// A header later in the same body would fail the same way.
			return cand{}, max(matchEnd, end), false
		}
		c.end, c.score, c.variant = end, score, variant
		matchEnd = end
	}
	secret := s[c.start:c.end]
	if thr := r.entropy; thr > 0 {
		if r.hexEntropy > 0 && allHex(secret) {
			thr = r.hexEntropy
		}
		if d.minEntropy > 0 {
			thr = d.minEntropy
		}
		h := shannon(secret)
		if h < thr {
			return cand{}, matchEnd, false
		}
		if r.generic {
			c.score = 0.5 + 0.5*min(1, (h-thr)/max(0.5, 4.5-thr))
		}
	}
	// The match, for allowlists: from the start of the name the keyword
	// is in (an assignment's), to the end of the regex match.
	ms := start
	if r.kind == kindAssign {
		for ms > 0 && start-ms < 32 && (isWord(s[ms-1]) || s[ms-1] == '.' || s[ms-1] == '-') {
			ms--
		}
	}
	match := s[ms:matchEnd]
	if r.allow.allows(secret, match) || d.rs.global.allows(secret, match) || state.inDataURI(s, c.start) {
		return cand{}, matchEnd, false
	}
	return c, matchEnd, true
}

func isWord(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; !('0' <= s[i] && s[i] <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isBase64(c byte) bool { return isAlnum(c) || c == '+' || c == '/' || c == '=' }

// tokenRun counts token characters (alnum and _ - . + / = ~) from i, up
// to need.
func tokenRun(s string, i, need int) int {
	n := 0
	for ; i < len(s) && n < need; i++ {
		c := s[i]
		if !isWord(c) && c != '-' && c != '.' && c != '+' && c != '/' && c != '=' && c != '~' {
			break
		}
		n++
	}
	return n
}

// assignShape reports whether an assignment follows the keyword that ends
// at k: the rest of a name ([\w.-], up to 24), an optional closing quote
// (maybe escaped),
// up to three blanks, then = or :.
func assignShape(s string, k int) bool {
	i := k
	for n := 0; i < len(s) && n < 24 && (isWord(s[i]) || s[i] == '.' || s[i] == '-'); n++ {
		i++
	}
	if i+1 < len(s) && s[i] == '\\' && isQuote(s[i+1]) {
		i++ // an escaped quote, in JSON inside a string
	}
	if i < len(s) && isQuote(s[i]) {
		i++
	}
	for n := 0; i < len(s) && n < 3 && (s[i] == ' ' || s[i] == '\t'); n++ {
		i++
	}
	return i < len(s) && (s[i] == '=' || s[i] == ':')
}

func isQuote(c byte) bool { return c == '"' || c == '\'' || c == '`' }

// userinfo reports whether the URL whose scheme ends at k has
// user:password@ before its path.
func userinfo(s string, k int) bool {
	colon := false
	for i := k; i < len(s) && i < k+512; i++ {
		switch s[i] {
		case ':':
			colon = true
		case '@':
			return colon
		case '/', '?', '#', ' ', '\t', '\n', '\r', '"', '\'':
			return false
		}
	}
	return false
}

// shannon is the Shannon entropy of s in bits per byte.
func shannon(s string) float64 {
	if len(s) == 0 {
		return 0
	}
	var cnt [256]int
	for i := 0; i < len(s); i++ {
		cnt[s[i]]++
	}
	n := float64(len(s))
	h := 0.0
	for _, c := range cnt {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// scanState is what one scan remembers between keywords, so that texts
// full of keywords stay linear.
type scanState struct {
	ends endFinder
	// [b64lo, b64hi] is a run of base64 characters met before.
	b64lo, b64hi int
	b64ok        bool
}

// inDataURI reports whether offset i lies in the payload of a base64
// data: URI (an inline image, say).
func (ss *scanState) inDataURI(s string, i int) bool {
	k := i
	for k > 0 && isBase64(s[k-1]) {
		if ss.b64ok && ss.b64lo < k && k <= ss.b64hi {
			k = ss.b64lo // the rest of the run is known
			break
		}
		k--
	}
	ss.b64lo, ss.b64hi, ss.b64ok = k, i, true
	return strings.HasSuffix(s[:k], ";base64,")
}

// endFinder finds "-----END" markers, remembering the last search so
// that a text full of headers is searched once.
type endFinder struct {
	s     string
	st    *stats
	from  int // the last search started here…
	found int // …and found this (-1: none up to the end of the text)
	ok    bool
}

// next returns the first "-----END" at or after i, or -1.
func (f *endFinder) next(i int) int {
	if f.ok && f.from <= i && (f.found < 0 || i <= f.found) {
		return f.found
	}
	f.from, f.ok = i, true
	k := strings.Index(f.s[i:], "-----END")
	if f.st != nil {
		f.st.endSearchBytes += len(f.s) - i
		if k >= 0 {
			f.st.endSearchBytes -= len(f.s) - i - k - 8
		}
	}
	f.found = -1
	if k >= 0 {
		f.found = i + k
	}
	return f.found
}

// pemExtent finds where a private key whose header ends at he ends: after
// its END line when the block is whole (within 64 KiB); else at the end
// of its base64 body, which runs to the end of the text when the block is
// still arriving. A block needs a base64 line of 32 characters or more,
// except a bare header at the very end of the text (a stream's start:
// score 0.5). A header followed by prose is a mention, not a key. When it
// reports no key, end is where the body it looked at ends.
func pemExtent(s string, he int, ends *endFinder) (end int, score float64, variant string, ok bool) {
	const limit = 64 << 10
	if k := ends.next(he); k >= 0 && k-he <= limit {
		tail := s[k+8:]
		if j := strings.Index(tail[:min(len(tail), 120)], "-----"); j >= 0 && strings.Contains(tail[:j], "PRIVATE KEY") {
			if longestBase64(s[he:k]) < 32 {
				return k, 0, "", false
			}
			return k + 8 + j + 5, 1, "pem-block", true
		}
	}
	rest := s[he:min(len(s), he+limit)]
	n := 0
	for n < len(rest) && (isBase64(rest[n]) || strings.IndexByte("\r\n\\ \t:,-", rest[n]) >= 0) {
		n++
	}
	body := rest[:n]
	long := longestBase64(body) >= 32
	atEnd := he+n == len(s)
	end = he + len(strings.TrimRight(body, " \t\r\n\\"))
	switch {
	case long:
		return end, 1, "pem-partial", true
	case atEnd:
		return end, 0.5, "pem-header", true
	}
	return he + n, 0, "", false
}

// longestBase64 is the length of the longest run of base64 characters in
// s (a PEM body line is 64).
func longestBase64(s string) int {
	best, run := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isBase64(c) {
			run++
			best = max(best, run)
			continue
		}
		run = 0
		if c == '\\' && i+1 < len(s) && (s[i+1] == 'n' || s[i+1] == 'r') {
			i++ // a JSON-escaped line break
		}
	}
	return best
}
