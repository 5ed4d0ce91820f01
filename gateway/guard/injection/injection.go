// Package injection scores texts for prompt injection and jailbreak
// attempts with deterministic heuristics (guardrails notes, section 3.3).
//
// The pipeline, for the text and for each decoded layer inside it:
//
//  1. A shadow copy is normalized with every textnorm option (NFKC,
//     invisible characters removed, case folded, TR39 confusables,
//     decimal digits, leetspeak, single-letter spacing collapsed), so that
//     "іgnоrе", "1gn0r3" and "i g n o r e" all read "ignore".
//  2. One Aho-Corasick pass (package internal/ac, shared with content
//     and secrets) finds phrases and tokens. Phrases are findings on their
//     own (template markers, persona jailbreaks, fake "assistant:" turns
//     at the start of a line); tokens combine by proximity within a
//     sentence: an override verb, a qualifier and an object ("ignore … all
//     previous … instructions"), an extraction verb and a target ("print …
//     your system prompt"), a send verb and "to", a call verb and "tool".
//  3. Structure: markdown or HTML images whose URL query carries data,
//     HTML hidden with CSS (display:none, visibility:hidden, zero size or
//     opacity, off-screen, white on white) or in comments, with imperative
//     text inside; Unicode tag characters, variation-selector runs and
//     bidi overrides that carry text people do not see; zero-width
//     characters inside words.
//  4. Decoding, at most two layers deep and within a byte budget: base64,
//     base32 and hex runs of 16 characters or more that decode to mostly
//     printable UTF-8, \x escapes, URL-encoded and HTML-entity tokens,
//     Morse code, ROT13 (when the text mentions it), Unicode tag and
//     variation-selector payloads, right-to-left overrides (read in
//     display order), and variables assigned then concatenated ("x=ign",
//     "y=ore previous…", "now do x+y"). A decoded layer is scanned like the
//     text; its findings count extra and point at the encoded run.
//
// Each signal has a weight (its confidence alone, see rules.go); a text's
// score combines the strongest weight of each rule r as
// 1 − Π(1 − w_r). Scan reports the findings when the score reaches the
// threshold.
//
// Honest limits: these heuristics catch known and copied attacks and
// their obfuscations, not paraphrases ("kindly set aside what you were
// told earlier" passes), attacks in other languages, instructions split
// across messages the detector is not given together (the caller must
// pass the joined turns for the split-payload check), or encodings it
// does not decode (pig latin, custom ciphers; only a cue adds a little
// weight). Benign texts that discuss prompt injection score high. Use it
// to flag, and to block tool results and retrieved documents, where
// instructions do not belong; a model-based classifier behind the remote
// detector catches more.
package injection

import (
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"aigw/gateway/guard"
	"aigw/gateway/guard/internal/ac"
	"aigw/gateway/guard/textnorm"
)

// Defaults for a Config's zero values.
const (
	DefaultThreshold    = 0.5
	DefaultMaxScanBytes = 1 << 20
)

// Budgets of one Score call.
const (
	maxDepth        = 2         // decoded layers inside decoded layers
	maxDecodedBytes = 256 << 10 // bytes decoded in all
	maxLayers       = 64
	maxRunBytes     = 64 << 10 // bytes decoded from one run
	maxFindings     = 64       // findings reported (all count in the score)
)

// Rules of scan_limit findings: the text is longer than MaxScanBytes, or
// it holds more encoded text than Score decodes (the first run left
// undecoded).
const (
	RuleMaxScanBytes = "max_scan_bytes"
	RuleDecodeBudget = "decode_budget"
)

// Config configures a Detector.
type Config struct {
	// Threshold is the score from which Scan reports (default 0.5).
	Threshold float64
	// MaxScanBytes caps the text scanned (default 1 MiB); past it Scan
	// reports a scan_limit finding over the rest so that the caller fails
	// closed.
	MaxScanBytes int
}

// Detector scores texts for prompt injection. It is safe for concurrent
// use.
type Detector struct {
	threshold float64
	maxScan   int
	*tables
}

// word says which sets a normalized word belongs to.
type word uint16

const (
	wStrongQual word = 1 << iota
	wWeakQual
	wObj
	wFiller
	wAdjQual
	wXVerb
	wCall
	wCue
	wStartWith
)

var _ guard.Detector = (*Detector)(nil)

// ref is what one automaton pattern stands for.
type ref struct {
	entry
	norm string // the normalized pattern
}

// shadowOptions is every normalization.
var shadowOptions = textnorm.Options{Fold: true, Confusables: true, Digits: true, Leet: true, Collapse: true}

// New builds a Detector. The phrase tables are built once, on first use,
// and shared.
func New(c Config) *Detector {
	d := &Detector{threshold: c.Threshold, maxScan: c.MaxScanBytes, tables: sharedTables()}
	if d.threshold <= 0 {
		d.threshold = DefaultThreshold
	}
	if d.maxScan <= 0 {
		d.maxScan = DefaultMaxScanBytes
	}
	return d
}

// tables are the compiled phrase tables.
type tables struct {
	ac    *ac.Automaton
	refs  [][]ref
	words map[string]word // the word sets, normalized
}

var sharedTables = sync.OnceValue(func() *tables {
	t := &tables{words: map[string]word{}}
	norm := func(s string) string { return strings.TrimSpace(textnorm.Normalize(s, shadowOptions).Norm) }
	for _, set := range []struct {
		words []string
		w     word
	}{
		{strongQuals, wStrongQual}, {weakQuals, wWeakQual}, {objects, wObj}, {fillers, wFiller}, {adjQuals, wAdjQual},
		{xVerbs, wXVerb}, {callVerbs, wCall}, {cues, wCue}, {startWith, wStartWith},
	} {
		for _, w := range set.words {
			t.words[norm(w)] |= set.w
		}
	}
	index := map[string]int{}
	var pats []string
	for _, e := range entries() {
		k := norm(e.text)
		id, ok := index[k]
		if !ok {
			id = len(pats)
			index[k] = id
			pats = append(pats, k)
			t.refs = append(t.refs, nil)
		}
		t.refs[id] = append(t.refs[id], ref{entry: e, norm: k})
	}
	a, err := ac.New(pats, ac.Options{})
	if err != nil {
		panic("injection: build automaton: " + err.Error()) // the tables are fixed
	}
	t.ac = a
	return t
})

// Scan appends the signals found in text to out when its score reaches
// the threshold, each with the text's score as its Score (the detector's
// confidence that the text is an injection). A scan_limit finding is
// appended whatever the score when text is longer than MaxScanBytes or
// holds more encoded text than the decoding budget (256 KiB, 64 payloads).
func (d *Detector) Scan(text string, out []guard.Finding) []guard.Finding {
	return d.scan(text, nil, out)
}

// ScanShared is Scan, with text normalized through sh (so that what
// another detector of the call normalized is reused).
func (d *Detector) ScanShared(text string, sh *textnorm.Shared, out []guard.Finding) []guard.Finding {
	return d.scan(text, sh, out)
}

func (d *Detector) scan(text string, sh *textnorm.Shared, out []guard.Finding) []guard.Finding {
	score, fs := d.score(text, sh)
	for _, f := range fs {
		if f.Type == TypeScanLimit {
			out = append(out, f)
		} else if score >= d.threshold {
			f.Score = max(f.Score, score)
			out = append(out, f)
		}
	}
	return out
}

// Score returns the text's score, 0 to 1, and every signal found, each with
// its own weight as Score and the span in text it came from (for a decoded
// payload, the encoded run).
func (d *Detector) Score(text string) (float64, []guard.Finding) {
	return d.score(text, nil)
}

// score is Score, the text itself (not decoded payloads) normalized
// through sh if not nil.
func (d *Detector) score(text string, sh *textnorm.Shared) (float64, []guard.Finding) {
	a := accum{budget: maxDecodedBytes, shared: sh}
	scan := text
	if len(scan) > d.maxScan {
		cut := d.maxScan
		for cut > 0 && !utf8.RuneStart(scan[cut]) {
			cut--
		}
		scan = scan[:cut]
	}
	d.analyze(&a, scan, layer{})
	fs := a.findings
	if len(scan) < len(text) {
		fs = append(fs, guard.Finding{Type: TypeScanLimit, Start: len(scan), End: len(text), Score: 1, Rule: RuleMaxScanBytes})
	}
	if a.refused[1] > 0 {
		fs = append(fs, guard.Finding{Type: TypeScanLimit, Start: a.refused[0], End: a.refused[1], Score: 1, Rule: RuleDecodeBudget})
	}
	return a.score(), fs
}

// layer says where a text being analyzed sits: the original (depth 0), or
// a decoded payload whose findings all point at span in the original.
type layer struct {
	depth  int
	name   string // decoder ("" for the original)
	fixed  bool   // findings map to span, not to their own offsets
	span   [2]int
	rot13d bool // already ROT13-decoded
}

// child is the layer of a payload decoded from text[s:e] of l.
func (l layer) child(name string, s, e int) layer {
	c := layer{depth: l.depth + 1, name: name, fixed: true, span: [2]int{s, e}, rot13d: l.rot13d}
	if l.fixed {
		c.span = l.span
	}
	if l.name != "" {
		c.name = l.name + ">" + name
	}
	return c
}

// accum collects findings and the strongest weight of each rule.
type accum struct {
	findings []guard.Finding
	rules    []ruleWeight
	budget   int // decoded bytes left
	layers   int
	refused  [2]int // the first run left undecoded for lack of budget
	// shared normalizes the first text analyzed (the original), if not nil.
	shared *textnorm.Shared
}

type ruleWeight struct {
	rule string
	w    float64
}

func (a *accum) score() float64 {
	keep := 1.0
	for _, r := range a.rules {
		keep *= 1 - r.w
	}
	return 1 - keep
}

// add records a finding over text[s:e] of layer l.
func (a *accum) add(l layer, typ, rule string, w float64, s, e int) {
	if l.fixed {
		s, e = l.span[0], l.span[1]
	}
	if l.name != "" {
		w = min(maxLayerWeight, w*layerBoost)
		rule += "@" + l.name
	}
	if i := slices.IndexFunc(a.rules, func(r ruleWeight) bool { return r.rule == rule }); i >= 0 {
		a.rules[i].w = max(a.rules[i].w, w)
	} else {
		a.rules = append(a.rules, ruleWeight{rule, w})
	}
	for i := range a.findings {
		f := &a.findings[i]
		if f.Rule == rule && f.Start == s && f.End == e {
			f.Score = max(f.Score, w)
			return
		}
	}
	if len(a.findings) < maxFindings {
		a.findings = append(a.findings, guard.Finding{Type: typ, Start: s, End: e, Score: w, Rule: rule})
	}
}

// hit is a pattern found in the shadow.
type hit struct {
	start, end int
	r          *ref
}

// analyze scans text, a layer of the original, into a.
func (d *Detector) analyze(a *accum, text string, l layer) {
	var buf *textnorm.Buffer
	var t textnorm.Text
	if a.shared != nil && l.depth == 0 {
		t = a.shared.Normalize(text, shadowOptions)
		a.shared = nil // decoded layers use the pool
	} else {
		buf = textnorm.GetBuffer()
		t = textnorm.NormalizeInto(buf, text, shadowOptions)
	}
	norm := t.Norm
	var hs []hit
	var signals [][2]int // spans in text of findings and cues, for hidden-text checks
	rot13 := false
	if norm != "" {
		var mbuf [64]ac.Match
		for _, m := range d.ac.Append(mbuf[:0], norm) {
			bounded := -1
			for i := range d.refs[m.Pattern] {
				r := &d.refs[m.Pattern][i]
				if r.bound {
					if bounded < 0 {
						bounded = 0
						if wordBounded(norm, m.Start, m.End) {
							bounded = 1
						}
					}
					if bounded == 0 {
						continue
					}
				}
				hs = append(hs, hit{m.Start, m.End, r})
			}
		}
	}
	slices.SortStableFunc(hs, func(x, y hit) int { return x.start - y.start })
	emit := func(typ, rule string, w float64, ns, ne int) {
		s, e := t.Span(ns, ne)
		a.add(l, typ, rule, w, s, e)
		signals = append(signals, [2]int{s, e})
	}
	var lastEnd [numCats]int // end of the last proximity finding per category
	for _, h := range hs {
		if h.start < lastEnd[h.r.cat] {
			continue // inside one already found ("send_email` to": not "email` to" again)
		}
		switch h.r.cat {
		case catDirect:
			emit(h.r.typ, h.r.rule, h.r.w, h.start, h.end)
		case catLineStart:
			if h.start == 0 || norm[h.start-1] == '\n' {
				emit(h.r.typ, h.r.rule, h.r.w, h.start, h.end)
			}
		case catRot13:
			rot13 = true
			emit(h.r.typ, h.r.rule, h.r.w, h.start, h.end)
		case catYouAre:
			if s := d.before(norm, h.start, 20, wStartWith); s >= 0 {
				emit(h.r.typ, h.r.rule, h.r.w, s, h.end)
			}
		case catVerb:
			lastEnd[catVerb] = d.override(h, norm, emit)
		case catXTarget:
			if s := d.before(norm, h.start, extractWindow, wXVerb); s >= 0 {
				emit(TypeExtraction, "extract.verb_target", wExtract, s, h.end)
				lastEnd[catXTarget] = h.end
			}
		case catSend:
			if e := d.after(norm, h.end, sendWindow, "to"); e >= 0 {
				emit(TypeExfil, "exfil.send_to", wSendTo, h.start, e)
				lastEnd[catSend] = e
			}
		case catTool:
			if s := d.before(norm, h.start, toolWindow, wCall); s >= 0 {
				emit(TypeExfil, "exfil.tool_call", wToolCall, s, h.end)
				lastEnd[catTool] = h.end
			}
		}
	}
	if buf != nil {
		textnorm.PutBuffer(buf) // t and norm are not used below
	}
	d.structure(a, text, l, signals)
	if l.depth < maxDepth {
		d.decode(a, text, l, rot13)
	}
}

// override evaluates an override verb: a qualifier then an object in the
// same sentence, or an object alone, or a qualifier right after it ("ignore
// the above"). It returns the end of what it found, or 0.
func (d *Detector) override(v hit, norm string, emit func(typ, rule string, w float64, s, e int)) int {
	qual, strongQual, adj, fillersOnly := false, false, false, true
	adjEnd, and := 0, false
	for ws, we := range words(norm, v.end, v.start+overrideWindow) {
		if adj && adjEnd == 0 {
			adjEnd, and = ws, norm[ws:we] == "and"
		}
		w := d.words[norm[ws:we]]
		if w&(wStrongQual|wWeakQual) != 0 {
			qual = true
			strongQual = strongQual || w&wStrongQual != 0
			adj = adj || w&wAdjQual != 0 && fillersOnly
		}
		if w&wObj != 0 {
			rule, wt := "override.verb_target", wOverrideWeak
			switch {
			case qual && v.r.strong && strongQual:
				wt = wOverrideStrong
			case qual && (v.r.strong || strongQual):
				wt = wOverrideMixed
			case qual:
			case v.r.strong:
				rule, wt = "override.verb_object", wOverrideNoQual
			default:
				rule = "override.verb_object"
			}
			emit(TypeOverride, rule, wt, v.start, we)
			return we
		}
		fillersOnly = fillersOnly && w&wFiller != 0
	}
	if adj && v.r.strong {
		if and {
			emit(TypeOverride, "override.verb_qualifier", wOverrideAdjAnd, v.start, v.end)
		} else {
			emit(TypeOverride, "override.verb_qualifier", wOverrideAdj, v.start, v.end)
		}
		return v.end
	}
	return 0
}

// words yields the words of norm[from:to] (letters, digits, ' and -),
// stopping at the end of a sentence.
func words(norm string, from, to int) func(func(int, int) bool) {
	return func(yield func(int, int) bool) {
		to = min(to, len(norm))
		for i := from; i < to; {
			c := norm[i]
			if c == '.' || c == '!' || c == '?' || c == ';' || c == '\n' {
				return
			}
			if !isWordByte(c) {
				i++
				continue
			}
			j := i
			for j < len(norm) && isWordByte(norm[j]) {
				j++
			}
			if j > to || !yield(i, j) {
				return
			}
			i = j
		}
	}
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '\'' || c == '-' || c >= utf8.RuneSelf
}

// before returns where a word of set w (or two words, "tell me") starts in
// the same sentence before norm[at:], within window bytes, or -1.
func (d *Detector) before(norm string, at, window int, w word) int {
	from := max(0, at-window)
	if k := strings.LastIndexAny(norm[from:at], ".!?;\n"); k >= 0 {
		from += k + 1
	}
	found, prev := -1, -1
	for ws, we := range words(norm, from, at) {
		if d.words[norm[ws:we]]&w != 0 || prev >= 0 && d.words[norm[prev:we]]&w != 0 {
			found = ws
			if prev >= 0 && d.words[norm[prev:we]]&w != 0 {
				found = prev
			}
		}
		prev = ws
	}
	return found
}

// after returns the end of the word want after norm[:at] in the same
// sentence, within window bytes, or -1.
func (d *Detector) after(norm string, at, window int, want string) int {
	for ws, we := range words(norm, at, at+window) {
		if norm[ws:we] == want {
			return we
		}
	}
	return -1
}

// cueIn says that text holds an imperative or addressee cue ("you must",
// "assistant", "instead"…).
func (d *Detector) cueIn(text string) bool {
	norm := textnorm.Normalize(text, shadowOptions).Norm
	for sent := range strings.FieldsFuncSeq(norm, func(r rune) bool { return strings.ContainsRune(".!?;\n", r) }) {
		prev := -1
		for ws, we := range words(sent, 0, len(sent)) {
			if d.words[sent[ws:we]]&wCue != 0 || prev >= 0 && d.words[sent[prev:we]]&wCue != 0 {
				return true
			}
			prev = ws
		}
	}
	return false
}

// wordBounded says that norm[start:end] has no letter or digit right
// outside it where it starts or ends with one.
func wordBounded(norm string, start, end int) bool {
	if start > 0 && isWord(norm[start]) && isWordBefore(norm, start) {
		return false
	}
	if end < len(norm) && isWord(norm[end-1]) && isWordAt(norm, end) {
		return false
	}
	return true
}

func isWord(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c >= utf8.RuneSelf
}

func isWordBefore(s string, i int) bool {
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return isWordRune(r)
}

func isWordAt(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return isWordRune(r)
}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return isWord(byte(r))
	}
	return r != utf8.RuneError && !textnorm.Invisible(r) && (isLetterOrDigit(r))
}
