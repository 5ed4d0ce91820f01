package pii

import (
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// phoneLike reports whether the digit groups gs starting at i are worth asking libphonenumber about: a leading +, or 7 to 15
// digits in groups that are not a date or an SSN, or a bare 10 to 12 digit
// run after a phone context word.
func (sc *scanner) phoneLike(i int, gs [][2]int) bool {
	s := sc.s
	if i > 0 && s[i-1] == '+' {
		return true
	}
	if len(gs) == 1 {
		l := gs[0][1] - gs[0][0]
		ok := l == 10 || l == 11 && s[i] == '1' || l >= 10 && l <= 12 && s[i] == '0'
		return ok && sc.context(i)&(1<<ePhone) != 0
	}
	nd := 0
	for _, g := range gs {
		nd += g[1] - g[0]
		if nd >= 7 {
			return true
		}
	}
	return false
}

// phoneRegions are tried, in order, for a national number written with a
// leading trunk 0 (10 digits or more with the 0).
var phoneRegions = [...]string{"GB", "DE", "FR", "IT", "ES", "NL", "AU", "IN"}

// phone parses a phone number at p (a digit, '+' or '('): digit groups
// separated by one space, dash or dot, the area code possibly in
// parentheses. It returns the end and the base score, or -1.
func (sc *scanner) phone(p int) (int, float64) {
	s := sc.s
	n := len(s)
	k := p
	plus := s[k] == '+'
	if plus {
		k++
	}
	var d [16]byte
	var lens [maxGroups]int
	nd, groups, end := 0, 0, -1
	paren := false
	for k < n && groups < maxGroups {
		open := s[k] == '('
		if open {
			if paren || groups > 1 {
				break
			}
			k++
		}
		if k >= n || !isDigit(s[k]) {
			break
		}
		st := k
		for k < n && isDigit(s[k]) {
			if nd < len(d) {
				d[nd] = s[k]
			}
			nd++
			k++
		}
		if nd > 15 {
			return -1, 0
		}
		if open {
			if k >= n || s[k] != ')' {
				break
			}
			paren = true
			k++
		}
		lens[groups] = k - st
		groups++
		end = k
		if k+1 < n && (s[k] == ' ' || s[k] == '-' || s[k] == '.') && (isDigit(s[k+1]) || s[k+1] == '(') {
			k++
			continue
		}
		if open && k < n && isDigit(s[k]) {
			continue
		}
		break
	}
	if end < 0 || nd < 7 || !sc.boundaryAfter(end) {
		return -1, 0
	}
	if end+1 < n && (s[end] == '-' || s[end] == '.') && isAlnum(s[end+1]) {
		return -1, 0
	}
	if !plus && !paren && groups == 3 {
		a, b, c := lens[0], lens[1], lens[2]
		if a == 4 && b == 2 && c == 2 || a == 2 && b == 2 && (c == 4 || c == 2) || a == 3 && b == 2 && c == 4 {
			return -1, 0 // a date or an SSN
		}
	}
	num := string(d[:nd])
	valid, exact := false, true
	switch {
	case plus:
		valid, exact = sc.validPhone("+"+num, "ZZ")
	case d[0] == '0' && nd >= 10:
		for _, r := range phoneRegions {
			if valid, exact = sc.validPhone(num, r); valid {
				break
			}
		}
	case nd == 10 && d[0] >= '2':
		if valid, exact = sc.validPhone(num, "US"); !valid && d[0] >= '6' {
			valid, exact = sc.validPhone(num, "IN")
		}
	case nd == 11 && d[0] == '1':
		valid, exact = sc.validPhone(num, "US")
	}
	if !valid {
		return -1, 0
	}
	score := 0.4
	switch {
	case plus:
		score = 0.7
	case paren || groups > 1:
		score = 0.6
	}
	if !exact {
		score -= 0.1
	}
	return end, score
}

// phoneLibBudget is how many numbers a Scan has libphonenumber validate:
// it takes about 10 µs a number (its metadata are regular expressions).
// The numbers after those get its possible-number check (lengths per
// country, about 1 µs), and 0.1 less score, so that a text full of phone
// numbers still scans in linear time at a few MB/s.
const phoneLibBudget = 8

// validPhone checks num (digits, maybe with a leading +) for region; exact
// says whether libphonenumber validated it or only found it possible.
func (sc *scanner) validPhone(num, region string) (valid, exact bool) {
	if sc.phoneLib < phoneLibBudget {
		sc.phoneLib++
		pn, err := phonenumbers.Parse(num, region)
		return err == nil && phonenumbers.IsValidNumber(pn), true
	}
	return possiblePhone(num, region), false
}

// possiblePhone is libphonenumber's possible-number check, without its
// parser: the country code is split off by hand.
func possiblePhone(num, region string) bool {
	var cc int
	nat := num
	if num[0] == '+' {
		d := num[1:]
		for l := 1; l <= 3 && l < len(d); l++ {
			c, _ := strconv.Atoi(d[:l])
			if phonenumbers.GetRegionCodeForCountryCode(c) != "ZZ" {
				cc, nat = c, d[l:]
				break
			}
		}
	} else {
		cc = phonenumbers.GetCountryCodeForRegion(region)
		switch {
		case region == "US" && len(nat) == 11:
			nat = nat[1:] // the 1 before the area code
		case region != "IT":
			nat = strings.TrimPrefix(nat, "0") // the trunk prefix
		}
	}
	n, err := strconv.ParseUint(nat, 10, 64)
	if cc == 0 || err != nil || n == 0 {
		return false
	}
	c32 := int32(cc)
	return phonenumbers.IsPossibleNumber(&phonenumbers.PhoneNumber{CountryCode: &c32, NationalNumber: &n})
}
