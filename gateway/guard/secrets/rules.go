package secrets

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"aigw/gateway/guard/internal/ac"
)

// rulesJSON is the default rule set. Its format follows gitleaks' config
// (id, description, regex, secretGroup, entropy, keywords, allowlists with
// regexes and stopwords), in JSON, plus the fields that tell where the
// regex runs (kind, minLen, maxLen, generic).
//
//go:embed rules.json
var rulesJSON []byte

// ruleFile is the rule file's shape.
type ruleFile struct {
	Title     string        `json:"title"`
	Notice    string        `json:"notice"`
	Allowlist allowlistSpec `json:"allowlist"`
	Rules     []ruleSpec    `json:"rules"`
}

type allowlistSpec struct {
	Description string `json:"description"`
	// RegexTarget is what the regexes match: "secret" (the default) or
	// "match" (the whole regex match, from the keyword on; for an
	// assignment, from the start of the name the keyword is in).
	RegexTarget string   `json:"regexTarget"`
	Regexes     []string `json:"regexes"`
	Stopwords   []string `json:"stopwords"`
}

type ruleSpec struct {
	ID          string          `json:"id"`
	Description string          `json:"description"`
	Regex       string          `json:"regex"`
	SecretGroup int             `json:"secretGroup"`
	Entropy     float64         `json:"entropy"`
	Keywords    []string        `json:"keywords"`
	Allowlists  []allowlistSpec `json:"allowlists"`
	// Kind says what is checked before the regex runs at a keyword:
	//   token:  the keyword starts the secret; a word starts there and at
	//           least minLen token characters follow;
	//   assign: the keyword is in a name followed by an assignment (= : :=
	//           => after an optional quote);
	//   url:    the keyword is a scheme; user:password@ follows;
	//   pem:    the regex matches a PEM header; the finding runs to the
	//           END line (or the end of the text);
	//   plain:  nothing.
	Kind   string `json:"kind"`
	MinLen int    `json:"minLen"`
	// MaxLen bounds the text the regex sees, from the keyword's start.
	MaxLen int `json:"maxLen"`
	// Generic rules score by entropy and give way to specific rules that
	// find the same secret.
	Generic bool `json:"generic"`
	// HexEntropy, when set, is the entropy threshold for a secret made of
	// hex digits only (at most 4 bits a character, so a random one often
	// stays under a threshold meant for base64).
	HexEntropy float64 `json:"hexEntropy"`
	// SkipClass (the inside of a regexp character class) is set when the
	// regex, failing at a keyword, also fails at any later keyword inside
	// the run of these characters from the first (the regex starts with
	// the keyword and a greedy run of this class that must be followed by
	// some other character): the run is then skipped.
	SkipClass string `json:"skipClass"`
}

// rule is a compiled rule.
type rule struct {
	id          string
	re          *regexp.Regexp // anchored at the keyword
	secretGroup int
	entropy     float64
	hexEntropy  float64
	kind        int
	minLen      int
	maxLen      int
	generic     bool
	skip        *[256]bool
	allow       allowlist
}

const (
	kindToken = iota
	kindAssign
	kindURL
	kindPEM
	kindPlain
)

var kinds = map[string]int{"token": kindToken, "assign": kindAssign, "url": kindURL, "pem": kindPEM, "plain": kindPlain}

// allowlist drops a secret that matches one of its regexes (or whose
// whole match matches one of its match regexes) or contains one of its
// stopwords (case-insensitively).
type allowlist struct {
	res      []*regexp.Regexp
	matchRes []*regexp.Regexp
	stop     *ac.Automaton // the stopwords, ASCII case-insensitive
}

func (a *allowlist) allows(secret, match string) bool {
	for _, re := range a.res {
		if re.MatchString(secret) {
			return true
		}
	}
	for _, re := range a.matchRes {
		if re.MatchString(match) {
			return true
		}
	}
	return a.stop != nil && a.stop.Contains(secret)
}

func compileAllowlist(specs ...allowlistSpec) (allowlist, error) {
	var a allowlist
	var stop []string
	for _, s := range specs {
		for _, r := range s.Regexes {
			re, err := regexp.Compile(r)
			if err != nil {
				return a, fmt.Errorf("allowlist regex %q: %w", r, err)
			}
			switch s.RegexTarget {
			case "", "secret":
				a.res = append(a.res, re)
			case "match":
				a.matchRes = append(a.matchRes, re)
			default:
				return a, fmt.Errorf("allowlist regexTarget %q (secret or match)", s.RegexTarget)
			}
		}
		stop = append(stop, s.Stopwords...)
	}
	if len(stop) > 0 {
		m, err := ac.New(stop, ac.Options{Fold: true})
		if err != nil {
			return a, fmt.Errorf("stopwords: %w", err)
		}
		a.stop = m
	}
	return a, nil
}

// ruleSet is a compiled rule file: the rules, the keyword automaton and
// which rules each keyword triggers.
type ruleSet struct {
	rules  []rule
	global allowlist
	kw     *ac.Automaton // the keywords, ASCII case-insensitive
	byKW   [][]uint16    // keyword id → rule indexes
}

const maxRules = 256

// compileRules compiles a rule file.
func compileRules(data []byte) (*ruleSet, error) {
	var f ruleFile
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("secrets rules: %w", err)
	}
	if len(f.Rules) == 0 || len(f.Rules) > maxRules {
		return nil, fmt.Errorf("secrets rules: %d rules (1 to %d)", len(f.Rules), maxRules)
	}
	rs := &ruleSet{}
	var err error
	if rs.global, err = compileAllowlist(f.Allowlist); err != nil {
		return nil, fmt.Errorf("secrets rules: global %w", err)
	}
	var keywords []string
	kwIndex := map[string]int{}
	ids := map[string]bool{}
	for _, s := range f.Rules {
		if s.ID == "" || ids[s.ID] {
			return nil, fmt.Errorf("secrets rules: rule without id or duplicate id %q", s.ID)
		}
		ids[s.ID] = true
		kind, ok := kinds[s.Kind]
		if !ok {
			return nil, fmt.Errorf("secrets rules: %s: unknown kind %q", s.ID, s.Kind)
		}
		re, err := regexp.Compile(`^(?:` + s.Regex + `)`)
		if err != nil {
			return nil, fmt.Errorf("secrets rules: %s: %w", s.ID, err)
		}
		if s.SecretGroup < 0 || s.SecretGroup > re.NumSubexp() {
			return nil, fmt.Errorf("secrets rules: %s: secretGroup %d of %d groups", s.ID, s.SecretGroup, re.NumSubexp())
		}
		if len(s.Keywords) == 0 {
			return nil, fmt.Errorf("secrets rules: %s: no keywords", s.ID)
		}
		if s.MaxLen <= 0 {
			return nil, fmt.Errorf("secrets rules: %s: maxLen must be positive", s.ID)
		}
		al, err := compileAllowlist(s.Allowlists...)
		if err != nil {
			return nil, fmt.Errorf("secrets rules: %s: %w", s.ID, err)
		}
		var skip *[256]bool
		if s.SkipClass != "" {
			cre, err := regexp.Compile(`^[` + s.SkipClass + `]$`)
			if err != nil {
				return nil, fmt.Errorf("secrets rules: %s: skipClass: %w", s.ID, err)
			}
			skip = new([256]bool)
			for b := range 256 {
				skip[b] = cre.MatchString(string(rune(b))) && b < 0x80
			}
		}
		idx := len(rs.rules)
		rs.rules = append(rs.rules, rule{
			id: s.ID, re: re, secretGroup: s.SecretGroup, entropy: s.Entropy, hexEntropy: s.HexEntropy, kind: kind,
			minLen: s.MinLen, maxLen: s.MaxLen, generic: s.Generic, skip: skip, allow: al,
		})
		for _, k := range s.Keywords {
			k = strings.ToLower(k)
			ki, ok := kwIndex[k]
			if !ok {
				ki = len(keywords)
				kwIndex[k] = ki
				keywords = append(keywords, k)
				rs.byKW = append(rs.byKW, nil)
			}
			rs.byKW[ki] = append(rs.byKW[ki], uint16(idx))
		}
	}
	if rs.kw, err = ac.New(keywords, ac.Options{Fold: true}); err != nil {
		return nil, fmt.Errorf("secrets rules: keywords: %w", err)
	}
	return rs, nil
}
