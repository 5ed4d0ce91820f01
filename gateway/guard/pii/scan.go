package pii

import (
	"math/bits"

	"aigw/gateway/guard"
	"aigw/gateway/guard/internal/swar"
)

// Byte classes.
const (
	cDigit = 1 << iota
	cUpper
	cLower
	cUnder
	cTrig  // starts a candidate: digit @ : [ ( {
	cLocal // e-mail local part: alnum . _ % + -
	cHex
)

const (
	cLetter = cUpper | cLower
	cAlnum  = cDigit | cLetter
	cWord   = cAlnum | cUnder
)

var class = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] |= cDigit | cTrig | cLocal | cHex
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= cUpper | cLocal
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= cLower | cLocal
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] |= cHex
		t[c-'a'+'A'] |= cHex
	}
	t['_'] |= cUnder | cLocal
	for _, c := range "@:[({" {
		t[c] |= cTrig
	}
	for _, c := range ".%+-" {
		t[c] |= cLocal
	}
	return t
}()

func isDigit(c byte) bool  { return class[c]&cDigit != 0 }
func isLetter(c byte) bool { return class[c]&cLetter != 0 }
func isAlnum(c byte) bool  { return class[c]&cAlnum != 0 }
func isWord(c byte) bool   { return class[c]&cWord != 0 }
func isHex(c byte) bool    { return class[c]&cHex != 0 }

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// scanner is one Scan's state.
type scanner struct {
	r   *Recognizer
	s   string
	out []guard.Finding
	// [lastStart, last) is the last finding: findings never overlap
	// (but several entities may share one span).
	lastStart, last int
	// ctxAt and ctx cache the context entities of the words before ctxAt.
	ctxAt int
	ctx   uint32
	ctxOK bool
	// phoneLib counts the numbers libphonenumber validated.
	phoneLib int
}

func (sc *scanner) on(e int) bool { return sc.r.on&(1<<e) != 0 }

func (sc *scanner) run() {
	s := sc.s
	n := len(s)
	// trig marks the candidate starts in s[at:at+8] (see triggers).
	at, trig := -8, uint64(0)
	for i := 0; i < n; {
		if class[s[i]]&cTrig == 0 {
			if i+8 > n {
				i++
				continue
			}
			if i >= at+8 || i < at {
				at, trig = i, triggers(swar.Load(s, i))
			}
			if m := trig >> (8 * (i - at)); m != 0 {
				i += bits.TrailingZeros64(m) / 8
			} else {
				i = at + 8
			}
			continue
		}
		var next int
		switch c := s[i]; {
		case isDigit(c):
			next = sc.digits(i)
		case c == '@':
			next = sc.email(i)
		case c == ':':
			next = sc.ipv6(i)
		default:
			next = sc.bracket(i)
		}
		i = max(next, i+1)
	}
}

// triggers marks the bytes of the word x (eight bytes of text, see
// package swar) that start a candidate (cTrig: a digit or one of @ : [ ( {).
func triggers(x uint64) uint64 {
	v := x &^ swar.High
	m := swar.GE(v, '0')&^swar.GE(v, ':'+1) | swar.EQ(v, '@') | swar.EQ(v, '[') | swar.EQ(v, '(') | swar.EQ(v, '{')
	return m &^ (x & swar.High)
}

// boundaryBefore reports whether a word starts at i (regexp \b): the byte
// before is not a word byte, or i follows a backslash escape such as \n
// (text copied raw from a JSON string).
func (sc *scanner) boundaryBefore(i int) bool {
	if i == 0 {
		return true
	}
	p := sc.s[i-1]
	if !isWord(p) {
		return true
	}
	return (p == 'n' || p == 't' || p == 'r') && i >= 2 && sc.s[i-2] == '\\'
}

// boundaryAfter reports whether a word ends at i.
func (sc *scanner) boundaryAfter(i int) bool {
	return i >= len(sc.s) || !isWord(sc.s[i])
}

// skipWord returns the end of the word (alnum and _) around i.
func (sc *scanner) skipWord(i int) int {
	for i < len(sc.s) && isWord(sc.s[i]) {
		i++
	}
	return i
}

// emit records a finding for entity e at [start, end) with base score
// base if, with context, it scores enough. It reports whether it did.
func (sc *scanner) emit(e int, start, end int, base float64, rule string) bool {
	if !sc.on(e) {
		return false
	}
	score := sc.boost(e, start, base)
	if score < sc.r.min {
		return false
	}
	return sc.add(e, start, end, score, rule)
}

// add records a finding unless it overlaps the last one (several
// entities may share one span).
func (sc *scanner) add(e int, start, end int, score float64, rule string) bool {
	if start < sc.last && (start != sc.lastStart || end != sc.last) {
		return false
	}
	sc.out = append(sc.out, guard.Finding{Type: entityNames[e], Start: start, End: end, Score: score, Rule: rule})
	sc.lastStart, sc.last = start, end
	return true
}

// boost applies the context words before start to a score.
func (sc *scanner) boost(e int, start int, score float64) float64 {
	if score >= 1 {
		return score
	}
	if sc.context(start)&(1<<e) != 0 {
		score = min(1, max(score+contextBoost, contextFloor))
	}
	return score
}

// context returns the entities that have a context word among the five
// words before start.
func (sc *scanner) context(start int) uint32 {
	if sc.ctxOK && sc.ctxAt == start {
		return sc.ctx
	}
	sc.ctxAt, sc.ctxOK = start, true
	sc.ctx = contextBefore(sc.s, start)
	return sc.ctx
}

// contextBefore looks at the five words (alphanumeric runs) before start,
// within 256 bytes.
func contextBefore(s string, start int) uint32 {
	var m uint32
	i := start
	lim := max(0, start-256)
	var buf [24]byte
	for w := 0; w < 5; w++ {
		for i > lim && !isAlnum(s[i-1]) {
			i--
		}
		if i == lim {
			break
		}
		e := i
		for i > lim && isAlnum(s[i-1]) {
			i--
		}
		word := s[i:e]
		if len(word) > len(buf) || !isLetter(word[0]) {
			continue
		}
		for k := 0; k < len(word); k++ {
			buf[k] = lower(word[k])
		}
		lw := buf[:len(word)]
		if b, ok := contextIndex[string(lw)]; ok {
			m |= b
		} else if len(lw) > 3 && lw[len(lw)-1] == 's' {
			m |= contextIndex[string(lw[:len(lw)-1])]
		}
	}
	return m
}

// contextWords are Presidio's context words per entity (with a few more).
var contextWords = [numEntities][]string{
	eCard:    {"credit", "card", "visa", "mastercard", "cc", "amex", "discover", "jcb", "diners", "maestro", "instapayment", "debit", "creditcard", "payment"},
	eIBAN:    {"iban", "bank", "transaction", "account", "transfer", "swift"},
	eSSN:     {"social", "security", "ssn", "ssid", "ss"},
	eITIN:    {"individual", "taxpayer", "itin", "tax", "payer", "taxid", "tin"},
	eABA:     {"aba", "routing", "abarouting", "association", "bankrouting", "rtn"},
	eNHS:     {"national", "health", "service", "nhs"},
	eSIN:     {"sin", "social", "insurance", "canada", "canadian"},
	eAadhaar: {"aadhaar", "aadhar", "adhaar", "uidai", "uid"},
	eEmail:   {"email", "mail", "e-mail"},
	eIP:      {"ip", "ipv4", "ipv6", "host", "server"},
	ePhone:   {"phone", "telephone", "tel", "cell", "cellphone", "mobile", "call", "fax", "whatsapp"},
	eCrypto:  {"wallet", "btc", "bitcoin", "crypto", "eth", "ethereum", "address"},
}

var contextIndex = func() map[string]uint32 {
	m := map[string]uint32{}
	for e, ws := range contextWords {
		for _, w := range ws {
			m[w] |= 1 << e
		}
	}
	return m
}()

// versionWords before a dotted quad make it a version, not an address.
var versionWords = map[string]bool{"version": true, "ver": true, "v": true, "release": true, "build": true, "firmware": true}

// prevWordIn reports whether the word just before start (case-folded) is
// in set.
func prevWordIn(s string, start int, set map[string]bool) bool {
	i := start
	for i > 0 && start-i < 8 && (s[i-1] == ' ' || s[i-1] == '\t' || s[i-1] == ':') {
		i--
	}
	e := i
	for i > 0 && e-i <= 16 && isLetter(s[i-1]) {
		i--
	}
	if e-i == 0 || e-i > 16 {
		return false
	}
	var buf [16]byte
	for k := i; k < e; k++ {
		buf[k-i] = lower(s[k])
	}
	return set[string(buf[:e-i])]
}
