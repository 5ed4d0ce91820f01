package pii

import (
	"strings"

	"golang.org/x/net/publicsuffix"
)

// email looks for an address around the '@' at a.
func (sc *scanner) email(a int) int {
	if !sc.on(eEmail) {
		return a + 1
	}
	s := sc.s
	ls := a
	for ls > 0 && a-ls <= 64 && class[s[ls-1]]&cLocal != 0 {
		ls--
	}
	for ls < a && s[ls] == '.' {
		ls++
	}
	if ls == a || a-ls > 64 || ls < sc.last {
		return a + 1
	}
	end, ok := sc.domain(a + 1)
	if !ok {
		return a + 1
	}
	sc.emit(eEmail, ls, end, 1, "email")
	return end
}

// bracket handles '[', '(' and '{': an obfuscated '@' ("[at]", "(at)",
// "{at}", any case, spaces around allowed), or a phone number's area code
// in parentheses.
func (sc *scanner) bracket(i int) int {
	s := sc.s
	n := len(s)
	c := s[i]
	if c == '(' && i+1 < n && isDigit(s[i+1]) && sc.on(ePhone) && sc.boundaryBefore(i) && i >= sc.last {
		if end, score := sc.phone(i); end >= 0 {
			if sc.emit(ePhone, i, end, score, "phone") {
				return end
			}
		}
		return i + 1
	}
	if !sc.on(eEmail) || i+3 >= n || lower(s[i+1]) != 'a' || lower(s[i+2]) != 't' || s[i+3] != closing(c) {
		return i + 1
	}
	// Local part: before the bracket, maybe after spaces.
	e := i
	for k := 0; k < 2 && e > 0 && s[e-1] == ' '; k++ {
		e--
	}
	ls := e
	for ls > 0 && e-ls <= 64 && class[s[ls-1]]&cLocal != 0 {
		ls--
	}
	for ls < e && s[ls] == '.' {
		ls++
	}
	if ls == e || e-ls > 64 || ls < sc.last {
		return i + 4
	}
	k := i + 4
	for j := 0; j < 2 && k < n && s[k] == ' '; j++ {
		k++
	}
	end, ok := sc.domain(k)
	if !ok {
		return i + 4
	}
	sc.emit(eEmail, ls, end, 1, "email-obfuscated")
	return end
}

func closing(c byte) byte {
	switch c {
	case '[':
		return ']'
	case '(':
		return ')'
	}
	return '}'
}

// domain reads a domain name at k: labels separated by '.' or by an
// obfuscated dot ("[dot]", "(dot)", "{dot}", spaces around allowed). The
// name needs two labels or more, an alphabetic top-level label (or
// xn--) and a public suffix with a registrable label in front of it.
func (sc *scanner) domain(k int) (int, bool) {
	s := sc.s
	n := len(s)
	var buf [253]byte
	b := buf[:0]
	labels, end, tld := 0, -1, 0
	for {
		st := k
		for k < n && (isAlnum(s[k]) || s[k] == '-') {
			k++
		}
		if k == st || k-st > 63 || s[st] == '-' || s[k-1] == '-' || len(b)+(k-st)+1 > len(buf) {
			break
		}
		if labels > 0 {
			b = append(b, '.')
		}
		tld = len(b)
		for j := st; j < k; j++ {
			b = append(b, lower(s[j]))
		}
		labels++
		end = k
		if k+1 < n && s[k] == '.' && isAlnum(s[k+1]) {
			k++
			continue
		}
		if nk, ok := obfuscatedDot(s, k); ok {
			k = nk
			continue
		}
		break
	}
	if labels < 2 || end < n && (isWord(s[end]) || s[end] == '@') {
		return 0, false
	}
	name := string(b)
	top := name[tld:]
	if len(top) < 2 || !strings.HasPrefix(top, "xn--") && !allLetters(top) {
		return 0, false
	}
	suffix, icann := publicsuffix.PublicSuffix(name)
	if !icann && !strings.Contains(suffix, ".") || len(suffix) >= len(name) {
		return 0, false
	}
	return end, true
}

// obfuscatedDot matches " [dot] " (any bracket, any case, up to two
// spaces each side) at k followed by a label character.
func obfuscatedDot(s string, k int) (int, bool) {
	n := len(s)
	for j := 0; j < 2 && k < n && s[k] == ' '; j++ {
		k++
	}
	if k+5 > n {
		return 0, false
	}
	c := s[k]
	if c != '[' && c != '(' && c != '{' || lower(s[k+1]) != 'd' || lower(s[k+2]) != 'o' || lower(s[k+3]) != 't' || s[k+4] != closing(c) {
		return 0, false
	}
	k += 5
	for j := 0; j < 2 && k < n && s[k] == ' '; j++ {
		k++
	}
	if k >= n || !isAlnum(s[k]) {
		return 0, false
	}
	return k, true
}

func allLetters(s string) bool {
	for k := 0; k < len(s); k++ {
		if !isLetter(s[k]) {
			return false
		}
	}
	return true
}
