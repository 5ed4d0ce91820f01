package pii

// digits handles a digit run starting at i; it returns where to go on.
func (sc *scanner) digits(i int) int {
	s := sc.s
	n := len(s)
	j := i
	for j < n && isDigit(s[j]) {
		j++
	}
	if i > 0 && isDigit(s[i-1]) {
		return j
	}
	if !sc.boundaryBefore(i) {
		// Glued to a word: an IBAN (country code then check digits), a
		// bech32 address (bc1…), or nothing.
		if i >= 2 && isLetter(s[i-1]) && isLetter(s[i-2]) && sc.boundaryBefore(i-2) {
			if sc.on(eIBAN) {
				if e, ok := sc.iban(i - 2); ok {
					return e
				}
			}
			if sc.on(eCrypto) && s[i] == '1' {
				if e, ok := sc.bech32(i - 2); ok {
					return e
				}
			}
		}
		return sc.skipWord(j)
	}
	if j < n && isLetter(s[j]) {
		if sc.on(eCrypto) {
			if s[i] == '0' && j == i+1 && (s[j] == 'x' || s[j] == 'X') {
				if e, ok := sc.eth(i); ok {
					return e
				}
			} else if s[i] == '1' || s[i] == '3' {
				if e, ok := sc.btc(i); ok {
					return e
				}
			}
		}
		return sc.skipWord(j)
	}
	if j-i <= 3 && j+1 < n && s[j] == '.' && isDigit(s[j+1]) && sc.on(eIP) {
		if e, ok := sc.ipv4(i); ok {
			return e
		}
	}
	return sc.chain(i, j)
}

const maxGroups = 8

// pending is a finding not yet emitted.
type pending struct {
	e     int
	score float64
	rule  string
}

// chain looks at the digit groups that start at i (the first ends at j),
// separated by single spaces, dashes or dots, and reports the longest
// candidate that starts at i.
func (sc *scanner) chain(i, j int) int {
	s := sc.s
	n := len(s)
	var gs [maxGroups][2]int
	var seps [maxGroups]byte
	gs[0] = [2]int{i, j}
	g, nd := 1, j-i
	for k := j; g < maxGroups && nd <= 19; g++ {
		if k+1 >= n || !(s[k] == ' ' || s[k] == '-' || s[k] == '.') || !isDigit(s[k+1]) {
			break
		}
		st := k + 1
		e := st
		for e < n && isDigit(s[e]) {
			e++
		}
		seps[g-1] = s[k]
		gs[g] = [2]int{st, e}
		nd += e - st
		k = e
	}

	// A phone number (it may start before i: '+').
	pEnd, pScore, pStart := -1, 0.0, i
	if sc.on(ePhone) && sc.phoneLike(i, gs[:g]) {
		if i > 0 && s[i-1] == '+' {
			pStart = i - 1
		}
		pEnd, pScore = sc.phone(pStart)
		if pEnd >= 0 {
			if pScore = sc.boost(ePhone, pStart, pScore); pScore < sc.r.min || pStart < sc.last {
				pEnd = -1
			}
		}
	}

	leftGlued := i >= 2 && (s[i-1] == '-' || s[i-1] == '.') && isAlnum(s[i-2])
	var cands [numEntities]pending
	var buf [24]byte
	for m := g - 1; m >= 0 && !leftGlued; m-- {
		end := gs[m][1]
		if end < pEnd || end == pEnd && pStart < i {
			break
		}
		if !sc.boundaryAfter(end) {
			continue
		}
		if end+1 < n && (s[end] == '-' || s[end] == '.') && isAlnum(s[end+1]) {
			continue // glued to what follows: part of a longer token
		}
		sep := byte(0)
		uniform := true
		for k := 0; k < m; k++ {
			if k == 0 {
				sep = seps[0]
			} else if seps[k] != sep {
				uniform = false
				break
			}
		}
		if !uniform {
			continue
		}
		var lens [maxGroups]int
		d := buf[:0]
		for k := 0; k <= m; k++ {
			lens[k] = gs[k][1] - gs[k][0]
			if len(d)+lens[k] > len(buf) {
				d = nil
				break
			}
			d = append(d, s[gs[k][0]:gs[k][1]]...)
		}
		if d == nil {
			continue
		}
		c := sc.numberCandidates(cands[:0], i, d, lens[:m+1], sep)
		if len(c) == 0 {
			continue
		}
		if pEnd == end && pStart == i {
			c = append(c, pending{ePhone, pScore, "phone"})
		}
		for _, p := range c {
			sc.add(p.e, i, end, p.score, p.rule)
		}
		return end
	}
	if pEnd >= 0 {
		sc.add(ePhone, pStart, pEnd, pScore, "phone")
		return pEnd
	}
	return j
}

// numberCandidates appends the entities that digits d, in groups of
// lens separated by sep (0 for one group), starting at i, can be, with
// their scores (context applied; below MinScore left out).
func (sc *scanner) numberCandidates(c []pending, i int, d []byte, lens []int, sep byte) []pending {
	L := len(d)
	g := len(lens)
	try := func(e int, base float64, rule string) {
		if !sc.on(e) || i < sc.last {
			return
		}
		if score := sc.boost(e, i, base); score >= sc.r.min {
			c = append(c, pending{e, score, rule})
		}
	}
	// Credit card.
	if L >= 12 && L <= 19 && cardGrouping(lens) && cardPrefix(d) && !allSame(d) && luhn(d) {
		try(eCard, 1, "luhn")
	}
	switch {
	case g == 1 && L == 9:
		if ssnValid(d) {
			try(eSSN, 0.05, "ssn-weak")
		}
		if itinDigits(d) {
			try(eITIN, 0.3, "itin-weak")
		}
		if abaValid(d) {
			try(eABA, 0.15, "aba")
		}
		if sinValid(d) {
			try(eSIN, 0.15, "sin")
		}
	case g == 1 && L == 10:
		if nhsValid(d) {
			try(eNHS, 0.15, "nhs")
		}
	case g == 1 && L == 12:
		if aadhaarValid(d) {
			try(eAadhaar, 0.15, "verhoeff")
		}
	case g == 3 && lens[0] == 3 && lens[1] == 2 && lens[2] == 4:
		if ssnValid(d) {
			try(eSSN, 0.5, "ssn")
		}
		if itinDigits(d) && sep != '.' {
			try(eITIN, 0.5, "itin")
		}
	case g == 2 && sep == '-' && (lens[0] == 5 && lens[1] == 4 || lens[0] == 3 && lens[1] == 6):
		if ssnValid(d) {
			try(eSSN, 0.05, "ssn-weak")
		}
	case g == 3 && lens[0] == 4 && lens[1] == 4 && lens[2] == 1 && sep == '-':
		if abaValid(d) {
			try(eABA, 0.4, "aba")
		}
	case g == 3 && lens[0] == 3 && lens[1] == 3 && lens[2] == 4 && sep != '.':
		if nhsValid(d) {
			try(eNHS, 0.4, "nhs")
		}
	case g == 3 && lens[0] == 3 && lens[1] == 3 && lens[2] == 3 && sep != '.':
		if sinValid(d) {
			try(eSIN, 0.4, "sin")
		}
	case g == 3 && lens[0] == 4 && lens[1] == 4 && lens[2] == 4 && sep != '.':
		if aadhaarValid(d) {
			try(eAadhaar, 0.4, "verhoeff")
		}
	}
	return c
}

// cardGrouping: one group, or a first group of 4 and then groups of 3 to 7
// (4-4-4-4, 4-6-5, 4-4-4-4-3…).
func cardGrouping(lens []int) bool {
	if len(lens) == 1 {
		return true
	}
	if len(lens) > 5 || lens[0] != 4 {
		return false
	}
	for _, l := range lens[1:] {
		if l < 3 || l > 7 {
			return false
		}
	}
	return true
}

// cardPrefix: issuer prefixes 2 (22–27), 3, 4, 5, 6, and 1 except for 13
// digits (Presidio leaves out 1 followed by 12 digits: millisecond
// timestamps).
func cardPrefix(d []byte) bool {
	switch d[0] {
	case '3', '4', '5', '6':
		return true
	case '2':
		return '2' <= d[1] && d[1] <= '7'
	case '1':
		return len(d) != 13
	}
	return false
}

func allSame(d []byte) bool {
	for _, c := range d[1:] {
		if c != d[0] {
			return false
		}
	}
	return true
}

func luhn(d []byte) bool {
	sum := 0
	dbl := false
	for k := len(d) - 1; k >= 0; k-- {
		v := int(d[k] - '0')
		if dbl {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		dbl = !dbl
	}
	return sum%10 == 0
}

// ssnValid applies Presidio's invalidations (all one digit, group 00,
// serial 0000, area 000 or 666, the sample numbers) and the SSA rule that
// no area starts with 9 (that range is ITINs).
func ssnValid(d []byte) bool {
	if len(d) != 9 || allSame(d) || d[0] == '9' {
		return false
	}
	if d[3] == '0' && d[4] == '0' || string(d[5:]) == "0000" {
		return false
	}
	for _, p := range [...]string{"000", "666", "123456789", "98765432", "078051120"} {
		if len(d) >= len(p) && string(d[:len(p)]) == p {
			return false
		}
	}
	return true
}

// itinDigits: 9, two digits, then a group in 50–65, 70–88, 90–92, 94–99.
func itinDigits(d []byte) bool {
	if len(d) != 9 || d[0] != '9' {
		return false
	}
	g := int(d[3]-'0')*10 + int(d[4]-'0')
	return 50 <= g && g <= 65 || 70 <= g && g <= 88 || 90 <= g && g <= 92 || 94 <= g && g <= 99
}

// abaValid: a Federal Reserve routing symbol (00–12, 21–32, 61–72, 80)
// and the 3-7-1 checksum.
func abaValid(d []byte) bool {
	if len(d) != 9 || allSame(d) {
		return false
	}
	p := int(d[0]-'0')*10 + int(d[1]-'0')
	if !(p <= 12 || 21 <= p && p <= 32 || 61 <= p && p <= 72 || p == 80) {
		return false
	}
	sum := 0
	for k, w := range [...]int{3, 7, 1, 3, 7, 1, 3, 7, 1} {
		sum += w * int(d[k]-'0')
	}
	return sum%10 == 0
}

// nhsValid: weights 10 down to 1 over the ten digits, sum mod 11 == 0.
func nhsValid(d []byte) bool {
	if len(d) != 10 || allSame(d) {
		return false
	}
	sum := 0
	for k := range 10 {
		sum += (10 - k) * int(d[k]-'0')
	}
	return sum%11 == 0
}

// sinValid: Luhn; no SIN starts with 8 (business numbers).
func sinValid(d []byte) bool {
	return len(d) == 9 && d[0] != '8' && !allSame(d) && luhn(d)
}

// aadhaarValid: 12 digits, first 2–9, not a palindrome, Verhoeff.
func aadhaarValid(d []byte) bool {
	if len(d) != 12 || d[0] < '2' || allSame(d) {
		return false
	}
	pal := true
	for k := 0; k < 6; k++ {
		if d[k] != d[11-k] {
			pal = false
			break
		}
	}
	return !pal && verhoeff(d)
}

var verhoeffD = [10][10]uint8{
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
	{1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
	{2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
	{3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
	{4, 0, 1, 2, 3, 9, 5, 6, 7, 8},
	{5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
	{6, 5, 9, 8, 7, 1, 0, 4, 3, 2},
	{7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
	{8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
	{9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
}

var verhoeffP = [8][10]uint8{
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
	{1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
	{5, 8, 0, 3, 7, 9, 6, 1, 4, 2},
	{8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
	{9, 4, 5, 3, 1, 2, 6, 8, 7, 0},
	{4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
	{2, 7, 9, 3, 8, 0, 6, 4, 1, 5},
	{7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
}

func verhoeff(d []byte) bool {
	c := uint8(0)
	for k := 0; k < len(d); k++ {
		c = verhoeffD[c][verhoeffP[k%8][d[len(d)-1-k]-'0']]
	}
	return c == 0
}
