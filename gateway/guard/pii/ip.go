package pii

import "net/netip"

// ipv4 checks for a dotted quad at i (digits; a word starts there).
func (sc *scanner) ipv4(i int) (int, bool) {
	s := sc.s
	n := len(s)
	if i >= 2 && s[i-1] == '.' && isAlnum(s[i-2]) {
		return 0, false // part of a longer dotted token
	}
	k := i
	for part := 0; part < 4; part++ {
		if part > 0 {
			if k >= n || s[k] != '.' {
				return 0, false
			}
			k++
		}
		st := k
		for k < n && k-st < 4 && isDigit(s[k]) {
			k++
		}
		if k == st || k-st > 3 {
			return 0, false
		}
	}
	if !sc.boundaryAfter(k) || k+1 < n && (s[k] == '.' || s[k] == '-') && isAlnum(s[k+1]) {
		return 0, false
	}
	a, err := netip.ParseAddr(s[i:k])
	if err != nil || !a.Is4() {
		return 0, false
	}
	score := 1.0
	if prevWordIn(s, i, versionWords) {
		score = 0.3
	}
	return k, sc.emit(eIP, i, k, score, "ipv4")
}

// ipv6 looks for an IPv6 address around the ':' at i.
func (sc *scanner) ipv6(i int) int {
	s := sc.s
	n := len(s)
	if !sc.on(eIP) {
		return i + 1
	}
	st := i
	for st > 0 && (isHex(s[st-1]) || s[st-1] == ':') {
		st--
	}
	en := i
	for en < n && (isHex(s[en]) || s[en] == ':' || s[en] == '.') {
		en++
	}
	if st < sc.last || !sc.boundaryBefore(st) {
		return en // the rest of this run would fail the same way
	}
	for en > i && (s[en-1] == '.' || s[en-1] == ':' && (en-2 < st || s[en-2] != ':')) {
		en--
	}
	if en < n && (isWord(s[en]) || s[en] == '%') {
		return max(en, i+1)
	}
	tok := s[st:en]
	colons, digits, double := 0, 0, false
	for k := 0; k < len(tok); k++ {
		switch c := tok[k]; {
		case c == ':':
			colons++
			if k > 0 && tok[k-1] == ':' {
				double = true
			}
		case isDigit(c):
			digits++
		}
	}
	if colons < 2 || digits == 0 || !double && colons != 7 {
		return max(en, i+1)
	}
	a, err := netip.ParseAddr(tok)
	if err != nil || !a.Is6() {
		return max(en, i+1)
	}
	sc.emit(eIP, st, en, 1, "ipv6")
	return max(en, i+1)
}
