package pii

// ibanLength is the IBAN length per country (SWIFT IBAN registry).
var ibanLength = map[[2]byte]int{
	{'A', 'D'}: 24, {'A', 'E'}: 23, {'A', 'L'}: 28, {'A', 'T'}: 20, {'A', 'Z'}: 28, {'B', 'A'}: 20,
	{'B', 'E'}: 16, {'B', 'G'}: 22, {'B', 'H'}: 22, {'B', 'I'}: 27, {'B', 'R'}: 29, {'B', 'Y'}: 28,
	{'C', 'H'}: 21, {'C', 'R'}: 22, {'C', 'Y'}: 28, {'C', 'Z'}: 24, {'D', 'E'}: 22, {'D', 'J'}: 27,
	{'D', 'K'}: 18, {'D', 'O'}: 28, {'E', 'E'}: 20, {'E', 'G'}: 29, {'E', 'S'}: 24, {'F', 'I'}: 18,
	{'F', 'K'}: 18, {'F', 'O'}: 18, {'F', 'R'}: 27, {'G', 'B'}: 22, {'G', 'E'}: 22, {'G', 'I'}: 23,
	{'G', 'L'}: 18, {'G', 'R'}: 27, {'G', 'T'}: 28, {'H', 'N'}: 28, {'H', 'R'}: 21, {'H', 'U'}: 28,
	{'I', 'E'}: 22, {'I', 'L'}: 23, {'I', 'Q'}: 23, {'I', 'S'}: 26, {'I', 'T'}: 27, {'J', 'O'}: 30,
	{'K', 'W'}: 30, {'K', 'Z'}: 20, {'L', 'B'}: 28, {'L', 'C'}: 32, {'L', 'I'}: 21, {'L', 'T'}: 20,
	{'L', 'U'}: 20, {'L', 'V'}: 21, {'L', 'Y'}: 25, {'M', 'C'}: 27, {'M', 'D'}: 24, {'M', 'E'}: 22,
	{'M', 'K'}: 19, {'M', 'N'}: 20, {'M', 'R'}: 27, {'M', 'T'}: 31, {'M', 'U'}: 30, {'N', 'I'}: 28,
	{'N', 'L'}: 18, {'N', 'O'}: 15, {'O', 'M'}: 23, {'P', 'K'}: 24, {'P', 'L'}: 28, {'P', 'S'}: 29,
	{'P', 'T'}: 25, {'Q', 'A'}: 29, {'R', 'O'}: 24, {'R', 'S'}: 22, {'R', 'U'}: 33, {'S', 'A'}: 24,
	{'S', 'C'}: 31, {'S', 'D'}: 18, {'S', 'E'}: 24, {'S', 'I'}: 19, {'S', 'K'}: 24, {'S', 'M'}: 27,
	{'S', 'O'}: 23, {'S', 'T'}: 25, {'S', 'V'}: 28, {'T', 'L'}: 23, {'T', 'N'}: 24, {'T', 'R'}: 26,
	{'U', 'A'}: 29, {'V', 'A'}: 22, {'V', 'G'}: 24, {'X', 'K'}: 20, {'Y', 'E'}: 30,
}

// iban checks for an IBAN at p (the country code; two check digits
// follow): the country's length of letters and digits, in any case, as one
// word or in groups of four separated by single spaces or dashes, then
// mod-97 == 1.
func (sc *scanner) iban(p int) (int, bool) {
	s := sc.s
	n := len(s)
	cc := [2]byte{s[p] &^ 0x20, s[p+1] &^ 0x20}
	L := ibanLength[cc]
	if L == 0 || p+4 > n || !isDigit(s[p+2]) || !isDigit(s[p+3]) {
		return 0, false
	}
	var buf [34]byte
	cnt, k := 0, p
	var sep byte
	for cnt < L && k < n {
		c := s[k]
		if isAlnum(c) {
			buf[cnt] = c
			if isLetter(c) {
				buf[cnt] &^= 0x20
			}
			cnt++
			k++
			continue
		}
		if (c == ' ' || c == '-') && cnt%4 == 0 && (sep == 0 || sep == c) && k+1 < n && isAlnum(s[k+1]) {
			sep = c
			k++
			continue
		}
		break
	}
	if cnt != L || k < n && isWord(s[k]) {
		return 0, false
	}
	if !ibanMod97(buf[:L]) {
		return 0, false
	}
	return k, sc.emit(eIBAN, p, k, 1, "iban")
}

// ibanMod97 moves the first four characters to the end, reads letters as
// 10–35 and checks the number mod 97 is 1.
func ibanMod97(b []byte) bool {
	rem := 0
	for k := 0; k < len(b); k++ {
		c := b[(k+4)%len(b)]
		switch {
		case '0' <= c && c <= '9':
			rem = (rem*10 + int(c-'0')) % 97
		case 'A' <= c && c <= 'Z':
			rem = (rem*100 + int(c-'A') + 10) % 97
		default:
			return false
		}
	}
	return rem == 1
}
