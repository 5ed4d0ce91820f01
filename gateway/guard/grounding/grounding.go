// Package grounding checks an answer against the documents its request
// carried (retrieved passages, tool results), offline and
// deterministically: the "tier 0" hallucination checks of the guardrails
// notes (section 2). It finds
//
//   - citations of documents that do not exist ("[3]" with two documents;
//     [n, m], [n-m], [^n], ^n, (Source n), 【n†source】, "Document n");
//   - quotations (≥ 5 words in "...", “...”, „...“, «...», 「...」 or a
//     blockquote) that no document contains, compared word by word after
//     normalization (NFKD, case folding, accents, punctuation, quote and
//     dash variants and white space all ignored), with small differences
//     allowed (QuoteOverlap) and ellipses or [bracketed] insertions
//     splitting the quote into parts that must each be found;
//   - numbers, amounts, percentages and dates that no document contains
//     (formats below);
//   - URLs and e-mail addresses that no document contains;
//   - optionally, capitalized multi-word names that no document contains.
//
// Each is a claim; Check returns the weighted share of unsupported claims
// and a finding for each, with byte offsets in the answer. Code (fenced
// or inline), links and list markers are not claims. Documents splits the
// numbered passages of a prompt into the documents citations count.
//
// Numbers are ASCII digits with "," (or a no-break or thin space) between
// groups of three and "." before decimals ("1.000.000" with two or more
// dot groups is European grouping). "%", "percent", "per cent" and "pct"
// make a percentage; "thousand", "million", "billion", "trillion", "mn",
// "bn", "tn", "k"/"K", "M", "B" (and "m", "b", "T" after a currency
// symbol) scale the value; currency symbols and codes are read but not
// compared. Values compare as exact decimals: "1,000" = "1000" = "1k",
// "$1.2M" = "1,200,000" = "1.2 million", "5%" = "5 percent", and the
// context's number words count ("twelve percent" supports "12%"). A
// number written with decimals, a scale word or as a percentage is also
// supported by a context value that rounds to it ("1.2 million" by
// "1,234,567", "12%" by "12.4%"); plain integers and years must match
// exactly. Dates compare as dates: "2024-03-05" = "March 5th, 2024" = "5
// March 2024" = "03/05/2024" (either day-month order); "March 2024" and
// "March 5" are supported by any full date in that month or on that day.
// Not claims: list markers ("1. ", "2) "), ordinals up to 10th, numbers
// up to 10 after "Step", "Option", "#" and similar labels, citation
// numbers, numbers glued to a letter ("x86", "GPT-4", "COVID-19"), and
// numbers inside quotations checked as quotes. Versions, times and
// fractions (1.2.3, 10:30, 24/7) must appear as written.
//
// What deterministic checks cannot catch: a claim passes when its words
// or numbers occur somewhere in the context, not when the context says
// it. Wrong relations between true values ("revenue fell 12%" when costs
// fell 12%), swapped entities, negations ("is not" vs "is"), paraphrased
// or unquoted invented sentences, numbers written as words in the answer
// ("twelve"), unit errors (12 km vs 12 miles), a citation of an existing
// but wrong document, answers that ignore the context entirely but make
// no checkable claim, and quotes with reordered clauses inside the
// tolerance all pass. Conversely, correct derived values (a sum, a
// difference, a converted currency, a rounded figure without a decimal
// point) and numbers from the model's general knowledge are flagged.
// Single quotes, quotes in languages without quote marks, Unicode
// superscript citations (¹) and non-ASCII digits are not read. Those need
// a grounding model or an LLM judge (notes, section 2): this package is
// the cheap, auditable first line, meant to flag rather than block.
//
// Cost: linear in the answer and the context for numbers, citations and
// links (≈ 150 µs for a 4 KiB answer against 8 KiB of context). Each
// quotation (and name) slides a window over the context's words, so
// quotes cost O(quotes × context words), capped by a work budget
// (DefaultQuoteWork, ≈ 85 ms at worst; beyond it a "scan_limit"
// finding for each quote left unchecked). The context read is capped at
// MaxContextBytes and the answer at MaxAnswerBytes, each with a
// "scan_limit" finding when exceeded.
package grounding

import (
	"cmp"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"aigw/gateway/guard"
)

// Finding types.
const (
	TypeCitation  = "citation_out_of_range"
	TypeQuote     = "quote_not_in_context"
	TypeNumber    = "number_not_in_context"
	TypeURL       = "url_not_in_context"
	TypeName      = "named_value_not_in_context"
	TypeScanLimit = "scan_limit"
)

// Rules of findings besides the number rules (RuleNumber, ...).
const (
	RuleCitation        = "citation"
	RuleQuote           = "quote"
	RuleBlockquote      = "blockquote"
	RuleURL             = "url"
	RuleEmail           = "email"
	RuleName            = "name"
	RuleMaxContextBytes = "max_context_bytes"
	RuleMaxAnswerBytes  = "max_answer_bytes"
	RuleQuoteBudget     = "quote_budget"
)

// Weights of the claims, also the Score of their findings.
const (
	WeightCitation = 1.0
	WeightQuote    = 0.9
	WeightURL      = 0.8
	WeightNumber   = 0.6
	WeightName     = 0.5
)

// Defaults.
const (
	DefaultMaxUnsupportedRatio = 0.3
	DefaultMinQuoteWords       = 5
	DefaultQuoteOverlap        = 0.9
	DefaultMaxContextBytes     = 1 << 20
	DefaultMaxAnswerBytes      = 256 << 10
	// DefaultQuoteWork caps the window moves and LCS cells spent on quotes
	// and names in one Check (tens of milliseconds at worst).
	DefaultQuoteWork = 1 << 25
	maxFindings      = 256 // findings returned (all count in the score)
)

// Config configures a Checker. The zero Config is the default: numbers,
// quotes and citations checked, names not.
type Config struct {
	// MaxUnsupportedRatio is the score above which Exceeds reports true
	// (default 0.3).
	MaxUnsupportedRatio float64
	// CheckNumbers, CheckQuotes and CheckCitations (which covers URLs and
	// e-mail addresses too) select the checks. When none of them nor
	// CheckNames is set, the first three are on: set the ones you want.
	CheckNumbers, CheckQuotes, CheckCitations bool
	// CheckNames checks capitalized multi-word names ("Acme Holdings",
	// "Bank of Lisbon"). Off by default: title-case phrases that are not
	// names ("Key Findings") make it noisier than the others.
	CheckNames bool
	// MinQuoteWords is the fewest words a quotation needs to be checked
	// (default 5; shorter quotes are scare quotes or terms).
	MinQuoteWords int
	// QuoteOverlap is the share of a quotation's words that must appear,
	// in order, within a window of the context as long as the quote
	// (default 0.9: a 10-word quote may have one word changed, added or
	// dropped; shorter ones must match word for word).
	QuoteOverlap float64
	// MaxContextBytes caps the documents and extra texts read (default 1
	// MiB); the rest is ignored and a scan_limit finding says so.
	MaxContextBytes int
	// MaxAnswerBytes caps the answer checked (default 256 KiB); a
	// scan_limit finding covers the unchecked rest.
	MaxAnswerBytes int
}

// Validate reports settings out of range (New replaces them by defaults).
func (c Config) Validate() error {
	var errs []error
	if c.MaxUnsupportedRatio < 0 || c.MaxUnsupportedRatio > 1 {
		errs = append(errs, errors.New("grounding: max unsupported ratio must be within 0..1"))
	}
	if c.QuoteOverlap < 0 || c.QuoteOverlap > 1 {
		errs = append(errs, errors.New("grounding: quote overlap must be within 0..1"))
	}
	if c.MinQuoteWords < 0 || c.MaxContextBytes < 0 || c.MaxAnswerBytes < 0 {
		errs = append(errs, errors.New("grounding: limits must not be negative"))
	}
	return errors.Join(errs...)
}

// Checker checks answers against their context. It is safe for concurrent
// use.
type Checker struct {
	cfg Config
}

// New returns a Checker; unset or invalid fields of cfg take their
// defaults.
func New(cfg Config) *Checker {
	if !cfg.CheckNumbers && !cfg.CheckQuotes && !cfg.CheckCitations && !cfg.CheckNames {
		cfg.CheckNumbers, cfg.CheckQuotes, cfg.CheckCitations = true, true, true
	}
	if cfg.MaxUnsupportedRatio <= 0 || cfg.MaxUnsupportedRatio > 1 {
		cfg.MaxUnsupportedRatio = DefaultMaxUnsupportedRatio
	}
	if cfg.MinQuoteWords <= 0 {
		cfg.MinQuoteWords = DefaultMinQuoteWords
	}
	if cfg.QuoteOverlap <= 0 || cfg.QuoteOverlap > 1 {
		cfg.QuoteOverlap = DefaultQuoteOverlap
	}
	if cfg.MaxContextBytes <= 0 {
		cfg.MaxContextBytes = DefaultMaxContextBytes
	}
	if cfg.MaxAnswerBytes <= 0 {
		cfg.MaxAnswerBytes = DefaultMaxAnswerBytes
	}
	return &Checker{cfg: cfg}
}

// Config returns the configuration in effect (defaults filled in).
func (c *Checker) Config() Config { return c.cfg }

// Exceeds reports whether score is above MaxUnsupportedRatio.
func (c *Checker) Exceeds(score float64) bool { return score > c.cfg.MaxUnsupportedRatio }

// Input is what CheckInput checks.
type Input struct {
	// Documents are the citable documents, document n being Documents[n-1]
	// (see Documents to split numbered passages).
	Documents []string
	// Extra are other texts the answer may repeat without citing them: the
	// user's question, the system prompt, unnumbered tool results. They
	// support numbers, quotes, links and names but are not documents.
	Extra []string
	// Answer is the text checked.
	Answer string
}

// Check checks answer against the documents in context (see CheckInput).
func (c *Checker) Check(context []string, answer string) (score float64, findings []guard.Finding) {
	return c.CheckInput(Input{Documents: context, Answer: answer})
}

// CheckInput returns the weighted share of the answer's claims that the
// context does not support (0 to 1: the sum of the weights of unsupported
// claims over the sum of the weights of all claims; 0 when the answer
// makes none) and a finding for each unsupported claim (at most 256, in
// order of their offsets in the answer, each with its weight as Score),
// plus scan_limit findings (Score 1, not part of the score) when a limit
// cut the check short.
//
// With no documents and no extra texts there is nothing to ground the
// answer in: CheckInput returns 0 and no findings.
func (c *Checker) CheckInput(in Input) (score float64, findings []guard.Finding) {
	if len(in.Documents)+len(in.Extra) == 0 {
		return 0, nil
	}
	r := run{c: c, answer: in.Answer, ndocs: len(in.Documents)}
	if len(r.answer) > c.cfg.MaxAnswerBytes {
		cut := c.cfg.MaxAnswerBytes
		for cut > 0 && !utf8.RuneStart(r.answer[cut]) {
			cut--
		}
		r.limit(span{cut, len(in.Answer)}, RuleMaxAnswerBytes)
		r.answer = r.answer[:cut]
	}
	r.texts = capTexts(in.Documents, in.Extra, c.cfg.MaxContextBytes)
	if n := totalLen(in.Documents) + totalLen(in.Extra); n > c.cfg.MaxContextBytes {
		r.limit(span{0, len(in.Answer)}, RuleMaxContextBytes)
	}
	r.sc = scratchPool.Get().(*scratch)
	defer r.sc.release()
	r.check()
	slices.SortStableFunc(r.out, func(a, b guard.Finding) int { return a.Start - b.Start })
	if r.total > 0 {
		score = min(1, r.bad/r.total)
	}
	return score, r.out
}

// run is one CheckInput.
type run struct {
	c          *Checker
	answer     string
	texts      []string // documents, then extra texts (capped)
	ndocs      int
	sc         *scratch
	indexed    bool
	total, bad float64
	nfind      int
	out        []guard.Finding
}

func (r *run) limit(sp span, rule string) {
	r.out = append(r.out, guard.Finding{Type: TypeScanLimit, Start: sp.start, End: sp.end, Score: 1, Rule: rule})
}

// claim counts a claim of weight w, reporting it when unsupported.
func (r *run) claim(w float64, supported bool, typ, rule string, sp span) {
	r.total += w
	if supported {
		return
	}
	r.bad += w
	if r.nfind < maxFindings && sp.start < sp.end {
		r.nfind++
		r.out = append(r.out, guard.Finding{Type: typ, Start: sp.start, End: sp.end, Score: w, Rule: rule})
	}
}

func (r *run) check() {
	cfg := r.c.cfg
	a := r.answer
	fences, inline := codeSpans(a)
	urls, emails := linkSpans(a)
	skip := merge(slices.Concat(fences, inline, urls, emails))

	// Citations are scanned in any case: their numbers are not values.
	var cites []span
	scanCitations(a, skip, func(ct citation) {
		if n := len(cites); n == 0 || cites[n-1] != ct.whole {
			cites = append(cites, ct.whole)
		}
		if cfg.CheckCitations {
			r.claim(WeightCitation, ct.n >= 1 && ct.n <= r.ndocs, TypeCitation, RuleCitation, ct.num)
		}
	})
	if cfg.CheckCitations && len(urls)+len(emails) > 0 {
		r.checkLinks(urls, emails)
	}

	var quoted []span
	if cfg.CheckQuotes {
		quoted = r.checkQuotes(quoteSpans(a, skip, fences), merge(slices.Concat(urls, emails)))
	}
	if cfg.CheckNumbers {
		r.checkNumbers(merge(slices.Concat(skip, cites, quoted, listMarkers(a, nil))))
	}
	if cfg.CheckNames {
		r.checkNames(merge(slices.Concat(skip, quoted, headingLines(a, nil))))
	}
}

// maxLinkSearches caps the links looked up as substrings of the whole
// context (those not among its own links), each a pass over the context.
const maxLinkSearches = 16

// linkKey is the form in which links compare: lower case, without scheme,
// "www." or trailing slash.
func linkKey(l string) string {
	k := asciiLower(l)
	for _, p := range []string{"https://", "http://"} {
		k = strings.TrimPrefix(k, p)
	}
	return strings.TrimRight(strings.TrimPrefix(k, "www."), "/")
}

// checkLinks reports URLs and e-mail addresses the context lacks. A link
// is supported by a context link with the same key or one it is a prefix
// of ("example.com/docs" by "https://www.example.com/docs/setup"), or, for
// the first 16 others, by occurring anywhere in the context's text.
func (r *run) checkLinks(urls, emails []span) {
	var keys []string
	for _, t := range r.texts {
		us, es := linkSpans(t)
		for _, sp := range append(us, es...) {
			keys = append(keys, linkKey(t[sp.start:sp.end]))
		}
	}
	slices.Sort(keys)
	var lower string
	searches := 0
	supported := func(key string) bool {
		if i, _ := slices.BinarySearch(keys, key); i < len(keys) && strings.HasPrefix(keys[i], key) {
			return true
		}
		if searches >= maxLinkSearches {
			return false
		}
		searches++
		if lower == "" {
			var sb strings.Builder
			for _, t := range r.texts {
				sb.WriteString(asciiLower(t))
				sb.WriteByte('\n')
			}
			lower = sb.String()
		}
		return strings.Contains(lower, key)
	}
	for _, u := range urls {
		key := linkKey(r.answer[u.start:u.end])
		r.claim(WeightURL, key == "" || supported(key), TypeURL, RuleURL, u)
	}
	for _, e := range emails {
		r.claim(WeightURL, supported(linkKey(r.answer[e.start:e.end])), TypeURL, RuleEmail, e)
	}
}

// index tokenizes the context once, for quotes and names.
func (r *run) index() *matcher {
	sc := r.sc
	if r.indexed {
		return &sc.m
	}
	r.indexed = true
	m := &sc.m
	m.ids, m.segs = m.ids[:0], m.segs[:0]
	for _, t := range r.texts {
		sc.toks = tokenize(t, 0, len(t), sc.toks[:0])
		for _, tk := range sc.toks {
			id, ok := sc.vocab[tk.hash]
			if !ok {
				id = int32(len(sc.vocab))
				sc.vocab[tk.hash] = id
			}
			m.ids = append(m.ids, id)
		}
		m.segs = append(m.segs, len(m.ids))
	}
	n := len(sc.vocab)
	if cap(m.need) < n {
		m.need, m.have = make([]int32, n), make([]int32, n)
	}
	m.need, m.have = m.need[:n], m.have[:n]
	m.work = DefaultQuoteWork
	return m
}

// phrase returns the vocabulary ids of the words of a[sp] (-1 for words
// the context lacks).
func (r *run) phrase(sp span, out []int32) []int32 {
	r.sc.atoks = tokenize(r.answer, sp.start, sp.end, r.sc.atoks[:0])
	for _, tk := range r.sc.atoks {
		id, ok := r.sc.vocab[tk.hash]
		if !ok {
			id = -1
		}
		out = append(out, id)
	}
	return out
}

// checkQuotes checks the quotations long enough to count and returns their
// spans. Links inside a quotation (its source, usually) are not part of
// it.
func (r *run) checkQuotes(qs []quote, links []span) (checked []span) {
	cfg := r.c.cfg
	for _, q := range qs {
		q.frags = subtract(q.frags, links)
		words := 0
		for _, f := range q.frags {
			r.sc.atoks = tokenize(r.answer, f.start, f.end, r.sc.atoks[:0])
			words += len(r.sc.atoks)
		}
		if words < cfg.MinQuoteWords {
			continue
		}
		m := r.index()
		var frags [][]int32
		for _, f := range q.frags {
			frags = append(frags, r.phrase(f, nil))
		}
		found, ok := true, true
		for _, ids := range frags {
			if len(ids) < 2 && len(frags) > 1 {
				continue
			}
			// Long quotes are checked in pieces of at most 256 words.
			pieces := (len(ids) + 255) / 256
			size := (len(ids) + pieces - 1) / max(pieces, 1)
			for p := 0; p < len(ids) && found && ok; p += size {
				piece := ids[p:min(p+size, len(ids))]
				need := int(math.Ceil(cfg.QuoteOverlap*float64(len(piece)) - 1e-9))
				found, ok = m.find(piece, need)
			}
			if !found || !ok {
				break
			}
		}
		if !ok {
			r.limit(q.whole, RuleQuoteBudget)
			continue
		}
		rule := RuleQuote
		if q.block {
			rule = RuleBlockquote
		}
		r.claim(WeightQuote, found, TypeQuote, rule, q.whole)
		checked = append(checked, q.whole)
	}
	return checked
}

// checkNumbers checks the answer's numbers and dates outside skip.
func (r *run) checkNumbers(skip []span) {
	a := r.answer
	var ms []mention
	scanDates(a, 0, len(a), skip, func(m mention) { ms = append(ms, m) })
	dates := make([]span, 0, len(ms))
	for _, m := range ms {
		dates = append(dates, span{m.start, m.end})
	}
	scanNumbers(a, 0, len(a), merge(append(skip, dates...)), false, func(m mention) {
		if m.small && (m.rule == RuleOrdinal || labelBefore(a, m.start) || m.start > 0 && a[m.start-1] == '(' && m.end < len(a) && a[m.end] == ')') {
			return
		}
		ms = append(ms, m)
	})
	if len(ms) == 0 {
		return
	}
	x := numIndex{keys: r.sc.nums}
	for _, t := range r.texts {
		scanNumbers(t, 0, len(t), nil, true, x.add)
		scanDates(t, 0, len(t), nil, x.add)
	}
	x.finish()
	for _, m := range ms {
		r.claim(WeightNumber, x.supports(m), TypeNumber, m.rule, span{m.start, m.end})
	}
}

// subtract returns spans (sorted, disjoint) without the parts covered by
// cut (sorted, disjoint).
func subtract(spans, cut []span) []span {
	if len(cut) == 0 || len(spans) == 0 {
		return spans
	}
	// The first cut that ends after the first span starts.
	k, _ := slices.BinarySearchFunc(cut, spans[0].start, func(c span, start int) int { return cmp.Compare(c.end, start+1) })
	var out []span
	for _, s := range spans {
		for ; k < len(cut) && cut[k].start < s.end; k++ {
			c := cut[k]
			if c.end <= s.start {
				continue
			}
			if c.start > s.start {
				out = append(out, span{s.start, c.start})
			}
			s.start = max(s.start, c.end)
			if c.end > s.end {
				break // c may cover the next span too
			}
		}
		if s.start < s.end {
			out = append(out, s)
		}
	}
	return out
}

// labelBefore reports whether a word that numbers the answer's own parts
// ("Step 2", "Option 3", "#4") comes just before s[i]. (Enumerations such
// as "(2)" are not claims either.)
func labelBefore(s string, i int) bool {
	if i > 0 && s[i-1] == '#' {
		return true
	}
	if i < 2 || s[i-1] != ' ' {
		return false
	}
	b := i - 1
	for b > 0 && isASCIILetter(s[b-1]) {
		b--
	}
	var buf [16]byte
	switch string(lowerWord(buf[:0:16], s[b:i-1])) {
	case "step", "steps", "option", "options", "phase", "stage", "part", "tip", "item", "items",
		"reason", "example", "method", "approach", "point", "question", "no", "number":
		return true
	}
	return false
}

// capTexts returns docs then extra, cut to max bytes in all (on a
// character boundary).
func capTexts(docs, extra []string, maxBytes int) []string {
	out := make([]string, 0, len(docs)+len(extra))
	left := maxBytes
	for _, list := range [][]string{docs, extra} {
		for _, t := range list {
			if len(t) > left {
				cut := left
				for cut > 0 && !utf8.RuneStart(t[cut]) {
					cut--
				}
				t = t[:cut]
			}
			left -= len(t)
			out = append(out, t)
		}
	}
	return out
}

func totalLen(ts []string) int {
	n := 0
	for _, t := range ts {
		n += len(t)
	}
	return n
}

// scratch holds the buffers of one check, pooled.
type scratch struct {
	toks, atoks []token
	vocab       map[uint64]int32
	nums        map[numKey]struct{}
	m           matcher
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{vocab: make(map[uint64]int32), nums: make(map[numKey]struct{})}
}}

func (s *scratch) release() {
	if len(s.vocab) > 1<<16 || len(s.nums) > 1<<16 || cap(s.toks) > 1<<18 {
		return // let a huge check's buffers go
	}
	clear(s.vocab)
	clear(s.nums)
	scratchPool.Put(s)
}
