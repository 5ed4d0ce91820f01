// Package content is the tenant's keyword, phrase, topic and regex policy:
// it finds deny-listed phrases (Aho-Corasick) and tenant regexes (RE2) in a
// text.
//
// Matching runs on the normalized shadow of the text (textnorm with Fold,
// Confusables, Digits and Collapse: "ＢＯＭＢ", "bоmb" with a Cyrillic о and
// "b o m b" all read "bomb") and findings carry offsets in the original.
// Phrases are normalized the same way when the Filter is built. Regexes
// see the shadow too, so they match case-insensitively (they are compiled
// with (?i)), after homoglyphs are mapped and single-letter spacing and
// white-space runs are collapsed: write them against plain lower-case text.
// Line breaks and tabs read as spaces, so phrases match across lines.
//
// Aho-Corasick is package internal/ac (shared with injection and
// secrets): a dense DFA over byte classes, one uint32 per state and class
// (bytes in no phrase share one class, so a row is as wide as the distinct
// bytes of the phrases), walked as four interleaved quarters of the text.
// The tests also check it against a brute-force search.
//
// Limits (errors from New beyond them): MaxRegexes patterns of at most
// MaxRegexLen bytes, each compiling to at most MaxRegexInsts instructions
// (MaxTotalInsts for all); MaxPhrases phrases (topics included) of at most
// MaxPhraseLen bytes. Regexes are RE2 (Go regexp): linear time, no
// backreferences or look-around. Scan caps the shadow that regexes read
// at Config.MaxScanBytes and their total time at Config.RegexBudget
// (checked between patterns); past either it reports a "scan_limit"
// finding over the unread rest so that the caller fails closed instead of
// skipping. Phrases are searched in the whole text (linear time).
package content

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"aigw/gateway/guard"
	"aigw/gateway/guard/internal/ac"
	"aigw/gateway/guard/textnorm"
)

// Limits on a Config.
const (
	MaxRegexes    = 100
	MaxRegexLen   = 500
	MaxRegexInsts = 2000
	MaxTotalInsts = 40000
	MaxPhrases    = 10000
	MaxPhraseLen  = 256
)

// Defaults for a Config's zero values.
const (
	DefaultMaxScanBytes = 1 << 20
	DefaultRegexBudget  = 100 * time.Millisecond
)

// Finding types.
const (
	TypePhrase    = "phrase"
	TypeRegex     = "regex"
	TypeTopic     = "topic:" // + topic name
	TypeScanLimit = "scan_limit"
)

// Rules of scan_limit findings.
const (
	RuleMaxScanBytes = "max_scan_bytes"
	RuleRegexBudget  = "regex_budget"
)

// Config is a tenant's content policy.
type Config struct {
	// Phrases are denied words or phrases.
	Phrases []string
	// Regexes are denied patterns (RE2 syntax).
	Regexes []string
	// Topics maps a topic name to its phrases.
	Topics map[string][]string
	// WholeWord matches phrases only between word boundaries ("ass" not
	// in "class"). Scripts written without spaces (Han, Kana, Hangul)
	// always count as boundaries.
	WholeWord bool
	// MaxScanBytes caps the normalized text regexes scan (default
	// DefaultMaxScanBytes).
	MaxScanBytes int
	// RegexBudget caps the time regexes take on one text (default
	// DefaultRegexBudget).
	RegexBudget time.Duration
}

// Filter finds a Config's phrases and patterns in texts. It is safe for
// concurrent use.
type Filter struct {
	ac         *ac.Automaton
	refs       [][]ref // per automaton pattern: who configured it
	hasPhrases bool
	wholeWord  bool

	regexes  []pattern
	maxScan  int
	budget   time.Duration
	nowSince func(time.Time) time.Duration
}

var _ guard.Detector = (*Filter)(nil)

// ref says who configured an automaton pattern: a phrase or topic (typ,
// rule), or the required literal of regex need-1.
type ref struct {
	typ, rule string
	need      int
}

type pattern struct {
	re   *regexp.Regexp
	src  string // as configured: the finding's Rule
	need string // a literal every match contains, or ""
	// viaAC: need is one of the automaton's patterns (else, if need is
	// set, Scan looks for it with strings.Contains).
	viaAC bool
}

// minACNeed is the shortest required literal found with the automaton:
// shorter ones occur often, and strings.Contains finds them fast.
const minACNeed = 3

// shadowOptions is how texts and phrases are normalized.
// Line breaks and tabs read as spaces, so that phrases match across lines.
var shadowOptions = textnorm.Options{Fold: true, Confusables: true, Digits: true, Collapse: true, Spaces: true}

// New checks and compiles a Config.
func New(c Config) (*Filter, error) {
	f := &Filter{wholeWord: c.WholeWord, maxScan: c.MaxScanBytes, budget: c.RegexBudget, nowSince: time.Since}
	if f.maxScan <= 0 {
		f.maxScan = DefaultMaxScanBytes
	}
	if f.budget <= 0 {
		f.budget = DefaultRegexBudget
	}
	if err := f.buildRegexes(c.Regexes); err != nil {
		return nil, err
	}
	if err := f.buildAutomaton(c); err != nil {
		return nil, err
	}
	return f, nil
}

// buildAutomaton builds the automaton of the phrases and of the regexes'
// required literals, so that one pass over the shadow finds both.
func (f *Filter) buildAutomaton(c Config) error {
	n := len(c.Phrases)
	for _, ps := range c.Topics {
		n += len(ps)
	}
	if n > MaxPhrases {
		return fmt.Errorf("content: %d phrases; at most %d", n, MaxPhrases)
	}
	index := map[string]int{} // normalized phrase → automaton pattern
	var pats []string
	add := func(typ, p string) error {
		if len(p) > MaxPhraseLen {
			return fmt.Errorf("content: phrase of %d bytes; at most %d", len(p), MaxPhraseLen)
		}
		k := strings.TrimSpace(textnorm.Normalize(p, shadowOptions).Norm)
		if k == "" {
			return fmt.Errorf("content: phrase %q is empty once normalized", p)
		}
		id, ok := index[k]
		if !ok {
			id = len(pats)
			index[k] = id
			pats = append(pats, k)
			f.refs = append(f.refs, nil)
		}
		r := ref{typ: typ, rule: p}
		if !slices.Contains(f.refs[id], r) {
			f.refs[id] = append(f.refs[id], r)
		}
		f.hasPhrases = true
		return nil
	}
	for _, p := range c.Phrases {
		if err := add(TypePhrase, p); err != nil {
			return err
		}
	}
	topics := make([]string, 0, len(c.Topics))
	for t := range c.Topics {
		topics = append(topics, t)
	}
	slices.Sort(topics) // deterministic pattern order
	for _, t := range topics {
		if t == "" {
			return errors.New("content: topic with an empty name")
		}
		for _, p := range c.Topics[t] {
			if err := add(TypeTopic+t, p); err != nil {
				return err
			}
		}
	}
	for i := range f.regexes {
		p := &f.regexes[i]
		if len(p.need) < minACNeed {
			continue
		}
		id, ok := index[p.need]
		if !ok {
			id = len(pats)
			index[p.need] = id
			pats = append(pats, p.need)
			f.refs = append(f.refs, nil)
		}
		f.refs[id] = append(f.refs[id], ref{need: i + 1})
		p.viaAC = true
	}
	if len(pats) == 0 {
		return nil
	}
	a, err := ac.New(pats, ac.Options{})
	if err != nil {
		return fmt.Errorf("content: build phrase automaton: %w", err)
	}
	f.ac = a
	return nil
}

func (f *Filter) buildRegexes(res []string) error {
	if len(res) > MaxRegexes {
		return fmt.Errorf("content: %d regexes; at most %d", len(res), MaxRegexes)
	}
	total := 0
	for i, src := range res {
		if len(src) > MaxRegexLen {
			return fmt.Errorf("content: regex %d is %d bytes; at most %d", i, len(src), MaxRegexLen)
		}
		tree, err := syntax.Parse(src, syntax.Perl|syntax.FoldCase)
		if err != nil {
			return fmt.Errorf("content: regex %d: %w", i, err)
		}
		prog, err := syntax.Compile(tree.Simplify())
		if err != nil {
			return fmt.Errorf("content: regex %d: %w", i, err)
		}
		if n := len(prog.Inst); n > MaxRegexInsts {
			return fmt.Errorf("content: regex %d compiles to %d instructions; at most %d", i, n, MaxRegexInsts)
		} else {
			total += n
		}
		if total > MaxTotalInsts {
			return fmt.Errorf("content: regexes compile to more than %d instructions", MaxTotalInsts)
		}
		lowerLiterals(tree)
		re, err := regexp.Compile(tree.String())
		if err != nil {
			return fmt.Errorf("content: regex %d: %w", i, err)
		}
		if re.MatchString("") {
			return fmt.Errorf("content: regex %d matches the empty string", i)
		}
		f.regexes = append(f.regexes, pattern{re: re, src: src, need: requiredLiteral(tree)})
	}
	return nil
}

// lowerLiterals turns the case-insensitive literals of re (parsed with
// FoldCase) into lower-case, case-sensitive ones: the shadow is lower case,
// and Go's regexp skips to a case-sensitive literal prefix with a fast
// search, which a (?i) pattern loses. Character classes stay folded.
func lowerLiterals(re *syntax.Regexp) {
	if re.Op == syntax.OpLiteral && re.Flags&syntax.FoldCase != 0 {
		for i, r := range re.Rune {
			re.Rune[i] = unicode.ToLower(r)
		}
		re.Flags &^= syntax.FoldCase
	}
	for _, sub := range re.Sub {
		lowerLiterals(sub)
	}
}

// requiredLiteral returns a lower-case ASCII literal that every match of
// re contains, or "" (then the regex always runs).
func requiredLiteral(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		s := string(re.Rune)
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				return ""
			}
		}
		return strings.ToLower(s)
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiteral(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiteral(re.Sub[0])
		}
	case syntax.OpConcat:
		best := ""
		for _, sub := range re.Sub {
			if l := requiredLiteral(sub); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}

// Scan appends the phrases, topics and patterns found in text to out.
func (f *Filter) Scan(text string, out []guard.Finding) []guard.Finding {
	return f.scan(text, nil, out)
}

// ScanShared is Scan, with text normalized through sh (so that the other
// detectors of a call may reuse what it does).
func (f *Filter) ScanShared(text string, sh *textnorm.Shared, out []guard.Finding) []guard.Finding {
	return f.scan(text, sh, out)
}

func (f *Filter) scan(text string, sh *textnorm.Shared, out []guard.Finding) []guard.Finding {
	if text == "" || f.ac == nil && len(f.regexes) == 0 {
		return out
	}
	var t textnorm.Text
	if sh != nil {
		t = sh.Normalize(text, shadowOptions)
	} else {
		buf := textnorm.GetBuffer()
		defer textnorm.PutBuffer(buf)
		t = textnorm.NormalizeInto(buf, text, shadowOptions)
	}
	norm := t.Norm
	var found [(MaxRegexes + 63) / 64]uint64 // regexes whose literal occurs
	if f.ac != nil && norm != "" {
		var mbuf [32]ac.Match
		for _, m := range f.ac.Append(mbuf[:0], norm) {
			s, e, bounded := -1, -1, true
			for _, r := range f.refs[m.Pattern] {
				if r.need > 0 {
					if m.End <= f.maxScan {
						found[(r.need-1)/64] |= 1 << ((r.need - 1) % 64)
					}
					continue
				}
				if s < 0 {
					bounded = !f.wholeWord || wordBounded(norm, m.Start, m.End)
					s, e = t.Span(m.Start, m.End)
				}
				if bounded {
					out = append(out, guard.Finding{Type: r.typ, Start: s, End: e, Score: 1, Rule: r.rule})
				}
			}
		}
	}
	if len(f.regexes) == 0 {
		return out
	}
	scan := norm
	if len(scan) > f.maxScan {
		cut := f.maxScan
		for cut > 0 && !utf8.RuneStart(scan[cut]) {
			cut--
		}
		scan = scan[:cut]
	}
	start := time.Now()
	for i, p := range f.regexes {
		if i > 0 && f.nowSince(start) > f.budget {
			s, _ := t.Span(0, 0)
			return append(out, guard.Finding{Type: TypeScanLimit, Start: s, End: len(text), Score: 1, Rule: RuleRegexBudget})
		}
		if p.viaAC && found[i/64]&(1<<(i%64)) == 0 || !p.viaAC && p.need != "" && !strings.Contains(scan, p.need) {
			continue
		}
		for _, m := range p.re.FindAllStringIndex(scan, maxMatches) {
			s, e := t.Span(m[0], m[1])
			out = append(out, guard.Finding{Type: TypeRegex, Start: s, End: e, Score: 1, Rule: p.src})
		}
	}
	if len(scan) < len(norm) {
		s, _ := t.Span(len(scan), len(scan))
		out = append(out, guard.Finding{Type: TypeScanLimit, Start: s, End: len(text), Score: 1, Rule: RuleMaxScanBytes})
	}
	return out
}

// maxMatches bounds the findings of one regex in one text.
const maxMatches = 1000

// wordBounded says that norm[start:end] has no word character right
// outside it on a side where it starts or ends with one.
func wordBounded(norm string, start, end int) bool {
	first, _ := utf8.DecodeRuneInString(norm[start:])
	if before, n := utf8.DecodeLastRuneInString(norm[:start]); n > 0 && isWord(before) && isWord(first) {
		return false
	}
	last, _ := utf8.DecodeLastRuneInString(norm[:end])
	if after, n := utf8.DecodeRuneInString(norm[end:]); n > 0 && isWord(after) && isWord(last) {
		return false
	}
	return true
}

// isWord: letters, digits, marks and '_', except scripts written without
// spaces between words.
func isWord(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_'
	}
	if unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul, unicode.Thai) {
		return false
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r)
}
