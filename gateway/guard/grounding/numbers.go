package grounding

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kinds of number mentions (the Rule of their findings).
const (
	RuleNumber  = "number"
	RulePercent = "percent"
	RuleMoney   = "money"
	RuleDate    = "date"
	RuleYear    = "year"
	RuleOrdinal = "ordinal"
	RuleLiteral = "literal" // versions, times, fractions: 1.2.3, 10:30, 24/7
)

// mention is one number, amount, percentage or date in a text (the
// formats are described in the package documentation).
type mention struct {
	start, end int
	rule       string
	key        numKey // the value, date or literal
	alt        numKey // the other reading of an ambiguous numeric date (or 0)
	approx     bool   // rounding tolerance applies: [lo, hi) supports it
	lo, hi     float64
	small      bool      // a plain integer 0–10 (or an ordinal up to 10th)
	parts      [3]numKey // value keys of a date's numbers (context side only)
}

// numKey identifies a value, a date or a literal; its top four bits say
// which. Values and literals are 60-bit FNV hashes of their canonical
// form (a collision, about one in 10^18 per pair, would only make a
// number look supported).
type numKey uint64

const (
	keyValue numKey = (iota + 1) << 60
	keyLiteral
	keyDate  // year, month, day
	keyMonth // year, month
	keyDay   // month, day
	keyMask  = 1<<60 - 1
)

func dateKey(y, m, d int) numKey { return keyDate | numKey(y&0xffff)<<16 | numKey(m)<<8 | numKey(d) }
func monthKey(y, m int) numKey   { return keyMonth | numKey(y&0xffff)<<16 | numKey(m)<<8 }
func dayKey(m, d int) numKey     { return keyDay | numKey(m)<<8 | numKey(d) }

// literalKey is the key of a literal written as parts (a tag and its
// numbers).
func literalKey(parts ...string) numKey {
	h := uint64(fnvOffset)
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			h = (h ^ uint64(p[i])) * fnvPrime
		}
		h = (h ^ 0xff) * fnvPrime
	}
	return keyLiteral | numKey(h)&keyMask
}

// decimalKey is the key of the decimal intDigits.fracDigits × 10^scale,
// made from its significant digits and exponent (1.2 million, 1,200,000
// and 1200k are one key), and its value. ok is false for absurdly long
// numbers (compared as literals instead).
func decimalKey(intDigits, fracDigits string, scale int) (key numKey, v float64, ok bool) {
	if len(intDigits)+len(fracDigits) > 40 {
		return 0, 0, false
	}
	var b [48]byte
	m := append(append(b[:0], intDigits...), fracDigits...)
	exp := scale - len(fracDigits)
	for len(m) > 0 && m[0] == '0' {
		m = m[1:]
	}
	for len(m) > 0 && m[len(m)-1] == '0' {
		m = m[:len(m)-1]
		exp++
	}
	if len(m) == 0 {
		exp = 0
	}
	h := uint64(fnvOffset)
	var u uint64
	for _, c := range m {
		h = (h ^ uint64(c)) * fnvPrime
		u = u*10 + uint64(c-'0')
	}
	h = (h ^ uint64(exp+1000)) * fnvPrime
	switch {
	case len(m) > 18:
		v, _ = strconv.ParseFloat(string(m)+"e"+strconv.Itoa(exp), 64)
	case exp >= 0:
		v = float64(u) * math.Pow10(exp)
	default:
		v = float64(u) / math.Pow10(-exp)
	}
	return keyValue | numKey(h)&keyMask, v, true
}

// intKey is the value key of the integer n.
func intKey(n int) numKey {
	k, _, _ := decimalKey(strconv.Itoa(n), "", 0)
	return k
}

// lowerWord lower-cases the ASCII word w into buf (for map look-ups that
// do not allocate); words longer than buf come back empty.
func lowerWord(buf []byte, w string) []byte {
	if len(w) > cap(buf) {
		return buf[:0]
	}
	b := buf[:len(w)]
	for i := 0; i < len(w); i++ {
		b[i] = w[i] | 0x20
	}
	return b
}

// ordinalSuffix reports whether s (two bytes) is st, nd, rd or th.
func ordinalSuffix(s string) bool {
	a, b := s[0]|0x20, s[1]|0x20
	return a == 's' && b == 't' || a == 'n' && b == 'd' || a == 'r' && b == 'd' || a == 't' && b == 'h'
}

// monthOf is the month a lower-case English month name or abbreviation
// names, or 0.
func monthOf(w string) int {
	switch w {
	case "january", "jan":
		return 1
	case "february", "feb":
		return 2
	case "march", "mar":
		return 3
	case "april", "apr":
		return 4
	case "may":
		return 5
	case "june", "jun":
		return 6
	case "july", "jul":
		return 7
	case "august", "aug":
		return 8
	case "september", "sep", "sept":
		return 9
	case "october", "oct":
		return 10
	case "november", "nov":
		return 11
	case "december", "dec":
		return 12
	}
	return 0
}

// numberWord is the value of a lower-case number word, or -1; the
// context's number words support the answer's digits ("twelve percent"
// supports "12%"); the answer's own number words are not checked.
func numberWord(w string) int {
	switch w {
	case "zero":
		return 0
	case "one":
		return 1
	case "two":
		return 2
	case "three":
		return 3
	case "four":
		return 4
	case "five":
		return 5
	case "six":
		return 6
	case "seven":
		return 7
	case "eight":
		return 8
	case "nine":
		return 9
	case "ten":
		return 10
	case "eleven":
		return 11
	case "twelve", "dozen":
		return 12
	case "thirteen":
		return 13
	case "fourteen":
		return 14
	case "fifteen":
		return 15
	case "sixteen":
		return 16
	case "seventeen":
		return 17
	case "eighteen":
		return 18
	case "nineteen":
		return 19
	case "twenty":
		return 20
	case "thirty":
		return 30
	case "forty":
		return 40
	case "fifty":
		return 50
	case "sixty":
		return 60
	case "seventy":
		return 70
	case "eighty":
		return 80
	case "ninety":
		return 90
	case "hundred":
		return 100
	}
	return -1
}

// scaleWord is the power of ten a lower-case scale word stands for, or 0.
func scaleWord(w string) int {
	switch w {
	case "hundred":
		return 2
	case "thousand":
		return 3
	case "million", "mn", "mln":
		return 6
	case "billion", "bn", "bln":
		return 9
	case "trillion", "tn":
		return 12
	}
	return 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isASCIILetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

// digits returns the end of the run of ASCII digits at s[i:].
func digits(s string, i, to int) int {
	for i < to && isDigit(s[i]) {
		i++
	}
	return i
}

// letters returns the end of the run of ASCII letters at s[i:].
func letters(s string, i, to int) int {
	for i < to && isASCIILetter(s[i]) {
		i++
	}
	return i
}

// wordAt reports whether s[i:] starts with word (ASCII, any case) followed
// by a non-letter.
func wordAt(s string, i, to int, word string) bool {
	e := i + len(word)
	return e <= to && strings.EqualFold(s[i:e], word) && (e == to || !isWordByte(s, e))
}

// isWordByte reports whether a letter or digit starts at s[i].
func isWordByte(s string, i int) bool {
	c := s[i]
	if c < utf8.RuneSelf {
		return isDigit(c) || isASCIILetter(c)
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// lastRune is the character ending at s[i] (exclusive), or 0.
func lastRune(s string, i, from int) (rune, int) {
	if i <= from {
		return 0, 0
	}
	return utf8.DecodeLastRuneInString(s[from:i])
}

// space returns the end of at most one space, tab or no-break space at
// s[i:].
func space(s string, i, to int) int {
	if i < to && (s[i] == ' ' || s[i] == '\t') {
		return i + 1
	}
	if strings.HasPrefix(s[i:to], "\u00a0") {
		return i + 2
	}
	return i
}

// groupSep returns the end of a thousands separator at s[i:] followed by
// exactly three digits, or -1.
func groupSep(s string, i, to int) int {
	n := 0
	switch {
	case i < to && s[i] == ',':
		n = 1
	case strings.HasPrefix(s[i:to], "\u00a0"):
		n = 2
	case strings.HasPrefix(s[i:to], "\u202f"), strings.HasPrefix(s[i:to], "\u2009"):
		n = 3
	default:
		return -1
	}
	j := i + n
	if digits(s, j, to) != j+3 || (j+3 < to && isDigit(s[j+3])) {
		return -1
	}
	return j
}

var currencies = []string{"$", "€", "£", "¥", "₹", "₩", "₽", "₺", "₪", "₦", "₱", "USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "CNY", "INR"}

// moneyBefore returns where a currency symbol or code ending at s[i]
// (after at most one space) starts, or -1.
func moneyBefore(s string, from, i int) int {
	if i > from && s[i-1] == ' ' {
		i--
	}
	if i <= from {
		return -1
	}
	if c := s[i-1]; c != '$' && c < 0x80 && (c < 'A' || c > 'Z') {
		return -1
	}
	for _, c := range currencies {
		if i-len(c) >= from && s[i-len(c):i] == c {
			return i - len(c)
		}
	}
	return -1
}

func validDate(y, m, d int) bool {
	if m < 1 || m > 12 || d < 1 {
		return false
	}
	days := [...]int{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	return d <= days[m-1] && y >= 0
}

func atoi(s string) int {
	n := 0
	for i := 0; i < len(s) && i < 9; i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// year2 reads a two-digit year: 00–49 as 20xx, 50–99 as 19xx.
func year2(s string) int {
	y := atoi(s)
	if len(s) == 2 {
		if y < 50 {
			return 2000 + y
		}
		return 1900 + y
	}
	return y
}

// scanNumbers calls fn for each number, amount, percentage, numeric date
// and literal in s[from:to], in order, skipping the ranges in skip (sorted,
// disjoint). With words, number words ("twelve", "three million") are
// reported too. It runs in linear time.
func scanNumbers(s string, from, to int, skip []span, words bool, fn func(mention)) {
	i := from
	for i < to {
		if len(skip) > 0 && i >= skip[0].start {
			if i < skip[0].end {
				i = skip[0].end
			}
			skip = skip[1:]
			continue
		}
		c := s[i]
		if words && isASCIILetter(c) {
			if r, _ := lastRune(s, i, from); r != 0 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
				i = letters(s, i, to)
				continue
			}
			i = scanNumberWord(s, i, to, fn)
			continue
		}
		if !isDigit(c) {
			i++
			continue
		}
		r, _ := lastRune(s, i, from)
		if unicode.IsLetter(r) || r == '_' {
			// Part of a name: x86, v2, A4.
			for i < to && (isDigit(s[i]) || isASCIILetter(s[i]) || s[i] == '.' && i+1 < to && isDigit(s[i+1])) {
				i++
			}
			continue
		}
		if r == '-' || r == '.' {
			if p, _ := lastRune(s, i-1, from); unicode.IsLetter(p) {
				// GPT-4, COVID-19, Fig.3 (a name or a reference).
				i = digits(s, i, to)
				continue
			}
		}
		i = scanNumber(s, from, i, to, fn)
	}
}

// scanNumberWord reads a number word at s[i:] (context side), returning
// where to go on.
func scanNumberWord(s string, i, to int, fn func(mention)) int {
	e := letters(s, i, to)
	if e-i > 9 || (e < to && isWordByte(s, e)) {
		return e
	}
	var buf [16]byte
	w := lowerWord(buf[:0:16], s[i:e])
	v := numberWord(string(w))
	if v < 0 {
		return e
	}
	hundred := string(w) == "hundred"
	end := e
	// twenty-five
	if v >= 20 && v < 100 && end+1 < to && s[end] == '-' {
		ue := letters(s, end+1, to)
		if u := numberWord(string(lowerWord(buf[:0:16], s[end+1:ue]))); u > 0 && u < 10 {
			v += u
			end = ue
		}
	}
	scale := 0
	if j := space(s, end, to); j > end {
		ue := letters(s, j, to)
		if sc := scaleWord(string(lowerWord(buf[:0:16], s[j:ue]))); sc > 0 {
			scale, end = sc, ue
		}
	}
	if hundred {
		v, scale = 1, 2
	}
	key, f, _ := decimalKey(strconv.Itoa(v), "", scale)
	fn(mention{start: i, end: end, rule: RuleNumber, key: key, lo: f, hi: f})
	return end
}

// scanNumber reads the number starting with the digit at s[i] and reports
// it; it returns where to go on.
func scanNumber(s string, from, i, to int, fn func(mention)) int {
	j := digits(s, i, to)
	intPart := s[i:j]

	// Numeric dates, times and fractions.
	if j+1 < to && (s[j] == '-' || s[j] == '/' || s[j] == '.' || s[j] == ':') && isDigit(s[j+1]) {
		sep := s[j]
		k := digits(s, j+1, to)
		second := s[j+1 : k]
		third := ""
		l := k
		if k+1 < to && s[k] == sep && isDigit(s[k+1]) {
			l = digits(s, k+1, to)
			third = s[k+1 : l]
		}
		glued := l < to && (isDigit(s[l]) || s[l] == sep && l+1 < to && isDigit(s[l+1]))
		switch {
		case glued:
		case len(intPart) == 4 && (sep == '-' || sep == '/') && len(second) <= 2 && third != "" && len(third) <= 2:
			y, m, d := atoi(intPart), atoi(second), atoi(third)
			if validDate(y, m, d) {
				fn(dateMention(i, l, y, m, d))
				return l
			}
		case len(intPart) <= 2 && sep != ':' && len(second) <= 2 && (len(third) == 2 || len(third) == 4):
			a, b, y := atoi(intPart), atoi(second), year2(third)
			var keys []numKey
			if validDate(y, a, b) {
				keys = append(keys, dateKey(y, a, b))
			}
			if validDate(y, b, a) && a != b {
				keys = append(keys, dateKey(y, b, a))
			}
			if len(keys) > 0 {
				m := mention{start: i, end: l, rule: RuleDate, key: keys[0], parts: [3]numKey{intKey(y), intKey(a), intKey(b)}}
				if len(keys) > 1 {
					m.alt = keys[1]
				}
				fn(m)
				return l
			}
		case sep == ':' && len(intPart) <= 2 && len(second) == 2 && (third == "" || len(third) == 2):
			h := strings.TrimLeft(intPart, "0")
			fn(mention{start: i, end: l, rule: RuleLiteral, key: literalKey("time", h, second, third)})
			return l
		case sep == '/' && third == "":
			fn(mention{start: i, end: k, rule: RuleLiteral, key: literalKey("/", intPart, second)})
			return k
		}
	}

	// Groups of thousands.
	var sb strings.Builder
	grouped := false
	for {
		k := groupSep(s, j, to)
		if k < 0 {
			break
		}
		if !grouped {
			sb.WriteString(intPart)
			grouped = true
		}
		sb.WriteString(s[k : k+3])
		j = k + 3
	}
	frac := ""
	if !grouped && len(intPart) <= 3 && j+8 <= to && s[j] == '.' && digits(s, j+1, to) == j+4 && s[j+4] == '.' && digits(s, j+5, to) == j+8 {
		// European grouping: 1.000.000 (and 1.000.000,50).
		sb.WriteString(intPart)
		for j+4 <= to && s[j] == '.' && digits(s, j+1, to) == j+4 {
			sb.WriteString(s[j+1 : j+4])
			j += 4
		}
		grouped = true
		if j+1 < to && s[j] == ',' && isDigit(s[j+1]) {
			k := digits(s, j+1, to)
			frac, j = s[j+1:k], k
		}
	}
	if grouped {
		intPart = sb.String()
	}
	if frac == "" && j+1 < to && s[j] == '.' && isDigit(s[j+1]) {
		k := digits(s, j+1, to)
		if k+1 < to && s[k] == '.' && isDigit(s[k+1]) {
			// A version or an address: 1.2.3, 10.0.0.1.
			for k+1 < to && s[k] == '.' && isDigit(s[k+1]) {
				k = digits(s, k+1, to)
			}
			fn(mention{start: i, end: k, rule: RuleLiteral, key: literalKey(".", s[i:k])})
			return k
		}
		frac, j = s[j+1:k], k
	}
	end := j

	// Suffixes.
	rule := RuleNumber
	start := i
	money := false
	if c := moneyBefore(s, from, i); c >= 0 {
		rule, money, start = RuleMoney, true, c
	}
	scale, percent, ordinal := 0, false, false
	if j+2 <= to && frac == "" {
		if ordinalSuffix(s[j:j+2]) && (j+2 == to || !isWordByte(s, j+2)) {
			ordinal, end = true, j+2
		}
	}
	if !ordinal {
		k := space(s, j, to)
		switch {
		case k < to && s[k] == '%':
			percent, end = true, k+1
		case k < to && isASCIILetter(s[k]):
			we := letters(s, k, to)
			var buf [16]byte
			w := string(lowerWord(buf[:0:16], s[k:we]))
			attached := k == j && we-k == 1 && (we == to || !isWordByte(s, we))
			switch {
			case w == "percent" || w == "pct" || w == "percentage":
				percent, end = true, we
			case w == "per" && wordAt(s, space(s, we, to), to, "cent"):
				percent, end = true, space(s, we, to)+4
			case scaleWord(w) > 0 && (k > j || len(w) > 1) && (we == to || !isWordByte(s, we)):
				scale, end = scaleWord(w), we
			case attached:
				switch c := s[k]; {
				case c == 'k' || c == 'K':
					scale = 3
				case c == 'M' || money && c == 'm':
					scale = 6
				case c == 'B' || money && c == 'b':
					scale = 9
				case money && c == 'T':
					scale = 12
				}
				if scale > 0 {
					end = we
				}
			}
		}
	}
	key, v, ok := decimalKey(intPart, frac, scale)
	if !ok {
		fn(mention{start: start, end: end, rule: RuleLiteral, key: literalKey("n", intPart, frac)})
		return end
	}
	switch {
	case percent:
		rule = RulePercent
	case ordinal:
		rule = RuleOrdinal
	case !money && frac == "" && scale == 0 && !grouped && len(intPart) == 4 && intPart[0] != '0' && v >= 1000 && v <= 2999:
		rule = RuleYear
	}
	m := mention{start: start, end: end, rule: rule, key: key, lo: v, hi: v}
	if frac != "" || scale > 0 || percent {
		unit := math.Pow10(scale - len(frac))
		m.approx, m.lo, m.hi = true, v-unit/2, v+unit/2
	}
	m.small = frac == "" && scale == 0 && !percent && !money && v <= 10
	fn(m)
	return end
}

// dateMention is the full date y-m-d.
func dateMention(start, end, y, m, d int) mention {
	return mention{start: start, end: end, rule: RuleDate, key: dateKey(y, m, d), parts: [3]numKey{intKey(y), intKey(m), intKey(d)}}
}

// scanDates calls fn for each date written with a month name in
// s[from:to] ("March 5, 2024", "5th of March 2024", "Mar. 2024", "March
// 5"): full dates get a "D:" key, month and year an "M:" key, month and
// day an "MD:" key. "May" counts only capitalized.
func scanDates(s string, from, to int, skip []span, fn func(mention)) {
	for i := from; i < to; {
		if len(skip) > 0 && i >= skip[0].start {
			if i < skip[0].end {
				i = skip[0].end
			}
			skip = skip[1:]
			continue
		}
		if !isASCIILetter(s[i]) {
			i++
			continue
		}
		e := letters(s, i, to)
		if r, _ := lastRune(s, i, from); unicode.IsLetter(r) || unicode.IsDigit(r) || e-i < 3 || e-i > 9 || (e < to && isWordByte(s, e)) {
			i = e
			continue
		}
		var buf [16]byte
		mo := monthOf(string(lowerWord(buf[:0:16], s[i:e])))
		if mo == 0 || (mo == 5 && s[i] != 'M') {
			i = e
			continue
		}
		after := e
		if after < to && s[after] == '.' && e-i <= 4 {
			after++
		}
		start, end := i, after
		day := 0
		// Day before: "5 March", "5th of March".
		b := i
		if b-1 >= from && s[b-1] == ' ' {
			b--
			if b-3 >= from && strings.EqualFold(s[b-3:b], " of") {
				b -= 3
			}
			if b-2 >= from && isASCIILetter(s[b-1]) && isASCIILetter(s[b-2]) {
				if ordinalSuffix(s[b-2 : b]) {
					b -= 2
				}
			}
			db := b
			for db > from && isDigit(s[db-1]) && b-db < 2 {
				db--
			}
			if db < b && (db == from || !isWordByte(s, db-1)) {
				day, start = atoi(s[db:b]), db
			}
		}
		k := space(s, after, to)
		if day == 0 && k > after {
			// Day after: "March 5".
			de := digits(s, k, to)
			if de > k && de-k <= 2 && (de == to || !isDigit(s[de])) {
				dend := de
				if de+2 <= to {
					if ordinalSuffix(s[de:de+2]) && (de+2 == to || !isWordByte(s, de+2)) {
						dend = de + 2
					}
				}
				if dend == to || !isWordByte(s, dend) {
					day, end = atoi(s[k:de]), dend
				}
			}
		}
		// Year: "March 2024", "March 5, 2024", "5 March 2024".
		year := 0
		y := end
		if y < to && s[y] == ',' {
			y++
		}
		y = space(s, y, to)
		if ye := digits(s, y, to); ye-y == 4 && y > end && (ye == to || !isWordByte(s, ye)) {
			year, end = atoi(s[y:ye]), ye
		}
		switch {
		case day > 0 && year > 0 && validDate(year, mo, day):
			fn(dateMention(start, end, year, mo, day))
		case day > 0 && year == 0 && validDate(2000, mo, day):
			fn(mention{start: start, end: end, rule: RuleDate, key: dayKey(mo, day), parts: [3]numKey{intKey(day)}})
		case day == 0 && year > 0:
			fn(mention{start: start, end: end, rule: RuleDate, key: monthKey(year, mo), parts: [3]numKey{intKey(year)}})
		default:
			i = e
			continue
		}
		i = max(end, e)
	}
}

// numIndex holds the numbers and dates of the context.
type numIndex struct {
	keys   map[numKey]struct{} // values, literals and dates (the month and the day of every full date too)
	values []float64           // sorted, for rounding tolerance
}

func (x *numIndex) add(m mention) {
	for _, k := range [...]numKey{m.key, m.alt, m.parts[0], m.parts[1], m.parts[2]} {
		if k == 0 {
			continue
		}
		x.keys[k] = struct{}{}
		if k&^keyMask == keyDate {
			y, mo, d := int(k>>16&0xffff), int(k>>8&0xff), int(k&0xff)
			x.keys[monthKey(y, mo)] = struct{}{}
			x.keys[dayKey(mo, d)] = struct{}{}
		}
	}
	if m.rule != RuleDate && m.rule != RuleLiteral {
		x.values = append(x.values, m.lo)
	}
}

func (x *numIndex) finish() {
	slices.Sort(x.values)
	x.values = slices.Compact(x.values)
}

// supports reports whether the context holds the mention's value or date.
func (x *numIndex) supports(m mention) bool {
	if _, ok := x.keys[m.key]; ok {
		return true
	}
	if m.alt != 0 {
		if _, ok := x.keys[m.alt]; ok {
			return true
		}
	}
	if m.approx {
		i, _ := slices.BinarySearch(x.values, m.lo)
		return i < len(x.values) && x.values[i] < m.hi
	}
	return false
}
