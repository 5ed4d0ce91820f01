package controls

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// The catalogs: one JSON file per framework, data/<framework>.json, each a
// [Catalog]. data/README.md says where every text comes from.
//
//go:embed data/*.json
var dataFS embed.FS

// frameworks is the fixed order of [Frameworks].
var frameworks = []string{NISTAIRMF, AIUC1, FedRAMPModerate, EUAIAct}

// Frameworks returns the names of the embedded frameworks, in a fixed order:
// nist-ai-rmf, aiuc-1, fedramp-moderate, eu-ai-act.
func Frameworks() []string { return slices.Clone(frameworks) }

// parsed is one embedded catalog, parsed and checked once. Its catalog is
// never handed out: [Load] and [Lookup] return copies.
type parsed struct {
	cat *Catalog
	// byKey maps the lookup key (see lookupKey) of every control's ID and
	// OSCALID to its index in cat.Controls.
	byKey map[string]int
	err   error
}

var (
	parseOnce sync.Once
	catalogs  map[string]*parsed
)

func load(framework string) (*parsed, error) {
	parseOnce.Do(func() {
		catalogs = make(map[string]*parsed, len(frameworks))
		for _, f := range frameworks {
			catalogs[f] = parse(f)
		}
	})
	p, ok := catalogs[framework]
	if !ok {
		return nil, fmt.Errorf("unknown framework %q (valid: %s)", framework, strings.Join(frameworks, ", "))
	}
	if p.err != nil {
		return nil, p.err
	}
	return p, nil
}

func parse(framework string) *parsed {
	name := "data/" + framework + ".json"
	b, err := dataFS.ReadFile(name)
	if err != nil {
		return &parsed{err: fmt.Errorf("embedded catalog %s: %w", name, err)}
	}
	var c Catalog
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return &parsed{err: fmt.Errorf("embedded catalog %s: %w", name, err)}
	}
	if dec.More() {
		return &parsed{err: fmt.Errorf("embedded catalog %s: data after the catalog object", name)}
	}
	if c.Framework != framework {
		return &parsed{err: fmt.Errorf("embedded catalog %s: framework is %q, want %q", name, c.Framework, framework)}
	}
	byKey, err := c.index()
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		return &parsed{err: fmt.Errorf("embedded catalog %s: %w", name, err)}
	}
	return &parsed{cat: &c, byKey: byKey}
}

// Load returns the catalog of framework (one of [Frameworks]), or an error
// naming the valid frameworks. The embedded data is parsed and checked once;
// every call returns a new deep copy, which the caller may modify freely.
func Load(framework string) (*Catalog, error) {
	p, err := load(framework)
	if err != nil {
		return nil, err
	}
	c := *p.cat
	c.Controls = make([]Control, len(p.cat.Controls))
	for i, ctl := range p.cat.Controls {
		c.Controls[i] = ctl.clone()
	}
	return &c, nil
}

// Lookup finds a control of framework by its ID ("GOVERN 1.1", "E015",
// "AU-6(1)", "Art. 12") or its OSCALID ("govern-1.1", "e015", "au-6.1",
// "art-12"). Case, spacing and punctuation variants match too: "au-06.01",
// "AU-6 (1)", "Article 12", "art12", and for the AI RMF the abbreviated
// functions of NIST AI 600-1 ("GV-1.1", "MP-2.3", "MS-2.7", "MG-4.1"). The
// control returned is a copy.
func Lookup(framework, id string) (Control, bool) {
	p, err := load(framework)
	if err != nil {
		return Control{}, false
	}
	i, ok := p.byKey[lookupKey(framework, id)]
	if !ok {
		return Control{}, false
	}
	return p.cat.Controls[i].clone(), true
}

func (c Control) clone() Control {
	c.Params = slices.Clone(c.Params)
	c.Rules = slices.Clone(c.Rules)
	return c
}

// index maps the lookup keys of every control's ID and OSCALID to the
// control; two controls with the same key are an error.
func (c *Catalog) index() (map[string]int, error) {
	byKey := make(map[string]int, 2*len(c.Controls))
	for i, ctl := range c.Controls {
		for _, s := range []string{ctl.ID, ctl.OSCALID} {
			k := lookupKey(c.Framework, s)
			if k == "" {
				continue // Validate reports the empty field
			}
			if j, dup := byKey[k]; dup && j != i {
				return nil, fmt.Errorf("controls %q and %q have the same lookup key %q", c.Controls[j].ID, ctl.ID, k)
			}
			byKey[k] = i
		}
	}
	return byKey, nil
}

// oscalToken is the OSCAL TokenDatatype pattern, which control-ids must match.
var oscalToken = regexp.MustCompile(`^(\p{L}|_)(\p{L}|\p{N}|[.\-_])*$`)

// Validate checks a catalog's consistency: its header is complete; every
// control has an ID, an OSCAL ID (a lowercase OSCAL token) and a title,
// statement and group; IDs and OSCAL IDs are unique; the evidence kind is
// known; automated and hybrid controls name at least one rule; every rule
// named exists, once per control; attestation and hybrid controls say in
// Reason what a person must attest (a clause completing "a person must attest
// that ...": no capitalised first word, no final period), automated controls
// have no Reason, not-applicable ones have a Reason and no rules, and only
// not-applicable controls are retired.
func (c *Catalog) Validate() error {
	var errs []error
	if c.Framework == "" || c.Title == "" || c.Version == "" || c.Source == "" {
		errs = append(errs, errors.New("framework, title, version and source are required"))
	}
	if len(c.Controls) == 0 {
		errs = append(errs, errors.New("no controls"))
	}
	ids := map[string]bool{}
	oscalIDs := map[string]bool{}
	for _, ctl := range c.Controls {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("control %q: %s", ctl.ID, fmt.Sprintf(format, args...)))
		}
		if ctl.ID == "" {
			bad("empty id")
		} else if ids[ctl.ID] {
			bad("duplicate id")
		}
		ids[ctl.ID] = true
		switch {
		case !oscalToken.MatchString(ctl.OSCALID) || ctl.OSCALID != strings.ToLower(ctl.OSCALID):
			bad("oscal_id %q is not a lowercase OSCAL token", ctl.OSCALID)
		case oscalIDs[ctl.OSCALID]:
			bad("duplicate oscal_id %q", ctl.OSCALID)
		}
		oscalIDs[ctl.OSCALID] = true
		if ctl.Group == "" || ctl.Title == "" || ctl.Statement == "" {
			bad("group, title and statement are required")
		}
		for _, p := range ctl.Params {
			if p.ID == "" || p.Value == "" {
				bad("param with an empty id or value")
			}
		}
		seen := map[string]bool{}
		for _, r := range ctl.Rules {
			if _, ok := ruleIndex[r]; !ok {
				bad("unknown rule %q", r)
			}
			if seen[r] {
				bad("rule %q listed twice", r)
			}
			seen[r] = true
		}
		switch ctl.Evidence {
		case Automated:
			if len(ctl.Rules) == 0 {
				bad("automated control without rules")
			}
			if ctl.Reason != "" {
				bad("automated control with a reason")
			}
		case Hybrid, Attestation:
			if ctl.Evidence == Hybrid && len(ctl.Rules) == 0 {
				bad("hybrid control without rules")
			}
			if err := checkAttestReason(ctl.Reason); err != nil {
				bad("%v", err)
			}
		case Inapplicable:
			if ctl.Reason == "" {
				bad("not-applicable control without a reason")
			}
			if len(ctl.Rules) != 0 {
				bad("not-applicable control with rules")
			}
		default:
			bad("unknown evidence %q", ctl.Evidence)
		}
		if ctl.Retired && ctl.Evidence != Inapplicable {
			bad("retired control must be %s", Inapplicable)
		}
	}
	return errors.Join(errs...)
}

// checkAttestReason checks that reason completes "a person must attest
// that ...".
func checkAttestReason(reason string) error {
	switch {
	case reason == "":
		return errors.New("reason (what a person must attest) is required")
	case reason != strings.TrimSpace(reason):
		return errors.New("reason has leading or trailing space")
	case len(reason) > 1 && isUpper(reason[0]) && isLetter(reason[1]):
		// "The policy ..." is a sentence; "AI-generated ..." is fine.
		return fmt.Errorf("reason %q must start in lowercase (it completes \"a person must attest that\")", reason)
	case strings.HasSuffix(reason, "."):
		return fmt.Errorf("reason %q must not end with a period", reason)
	}
	return nil
}

// lookupKey normalises a control identifier so that the spellings [Lookup]
// accepts meet: lowercase; "article"/"art." become "art"; "(n)" becomes ".n";
// spaces and underscores become "-"; a "-" is put between letters and the
// digits that follow them; leading zeros of numbers are dropped. For the AI
// RMF, the NIST AI 600-1 function abbreviations (gv, mp, ms, mg) are spelled
// out.
func lookupKey(framework, s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if rest, ok := strings.CutPrefix(s, "article"); ok {
		s = "art" + rest
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '(':
			ch = '.'
		case ch == ')':
			continue
		case ch == ' ' || ch == '_' || ch == '\t':
			ch = '-'
		}
		n := len(b)
		switch {
		case ch == '-' && n > 0 && (b[n-1] == '-' || b[n-1] == '.'):
			// "art. 12", "a  b": one separator.
			continue
		case ch == '.' && n > 0 && b[n-1] == '-':
			b[n-1] = '.' // "au-6 (1)" -> "au-6.1"
			continue
		case isDigit(ch) && n > 0 && isLetter(b[n-1]):
			b = append(b, '-') // "art12" -> "art-12", "e015" -> "e-015"
		}
		if isDigit(ch) && n > 0 && b[len(b)-1] == '0' && (len(b) == 1 || !isDigit(b[len(b)-2])) {
			b[len(b)-1] = ch // a leading zero: "06" -> "6"
			continue
		}
		b = append(b, ch)
	}
	k := strings.Trim(string(b), "-.")
	if framework == NISTAIRMF {
		for abbr, function := range map[string]string{"gv-": "govern-", "mp-": "map-", "ms-": "measure-", "mg-": "manage-"} {
			if rest, ok := strings.CutPrefix(k, abbr); ok {
				return function + rest
			}
		}
	}
	return k
}

func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isLetter(c byte) bool { return 'a' <= c && c <= 'z' }
func isUpper(c byte) bool  { return 'A' <= c && c <= 'Z' }
