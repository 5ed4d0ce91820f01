package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxSafeInteger is 2^53: integers beyond it cannot be represented exactly
// as IEEE 754 doubles, which is what RFC 8785 numbers are.
const maxSafeInteger = 1 << 53

// maxDepth bounds the nesting of canonicalized JSON, so hostile input cannot
// exhaust the stack.
const maxDepth = 64

// Canonicalize returns the RFC 8785 (JSON Canonicalization Scheme) form of
// the JSON value in data: object members sorted by their UTF-16 code units,
// no insignificant white space, strings with minimal escaping and numbers in
// the ECMAScript shortest round-trip form.
//
// Unlike a lax JCS implementation it refuses input that would silently change
// meaning: invalid UTF-8, lone surrogates, duplicate object keys, and integers
// that a double cannot hold exactly (send those as strings).
//
// It is a single-pass hand-written parser (no reflection): canonicalizing is
// on the path of every ledger event, twice.
//
// SPEC: https://www.rfc-editor.org/rfc/rfc8785
func Canonicalize(data []byte) ([]byte, error) {
	return AppendCanonical(make([]byte, 0, len(data)), data)
}

// AppendCanonical appends the canonical form of data to dst.
func AppendCanonical(dst, data []byte) ([]byte, error) {
	p := canonParser{s: data, out: dst}
	p.ws()
	if err := p.value(0); err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.s) {
		return nil, p.errf("trailing data after value")
	}
	return p.out, nil
}

type canonParser struct {
	s   []byte
	i   int
	out []byte
	tmp []byte // scratch for reordering members
}

func (p *canonParser) errf(format string, args ...any) error {
	return fmt.Errorf("canonical json: offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *canonParser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *canonParser) value(depth int) error {
	if depth > maxDepth {
		return p.errf("nested deeper than %d", maxDepth)
	}
	if p.i >= len(p.s) {
		return p.errf("unexpected end of input")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		_, err := p.str()
		return err
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	default:
		return p.errf("unexpected character %q", c)
	}
}

func (p *canonParser) literal(lit string) error {
	if !bytes.HasPrefix(p.s[p.i:], []byte(lit)) {
		return p.errf("invalid literal")
	}
	p.i += len(lit)
	p.out = append(p.out, lit...)
	return nil
}

func (p *canonParser) array(depth int) error {
	p.i++ // [
	p.out = append(p.out, '[')
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		p.out = append(p.out, ']')
		return nil
	}
	for {
		p.ws()
		if err := p.value(depth + 1); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.s) {
			return p.errf("unterminated array")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.out = append(p.out, ',')
		case ']':
			p.i++
			p.out = append(p.out, ']')
			return nil
		default:
			return p.errf("expected ',' or ']' in array")
		}
	}
}

// span is one member's canonical output: out[start:end], key = decoded key.
type span struct {
	key        []byte
	start, end int
}

func (p *canonParser) object(depth int) error {
	p.i++ // {
	p.out = append(p.out, '{')
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		p.out = append(p.out, '}')
		return nil
	}
	var members []span
	var stack [16]span
	members = stack[:0]
	sorted := true
	for {
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return p.errf("expected a string key")
		}
		start := len(p.out)
		key, err := p.str()
		if err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return p.errf("expected ':' after key")
		}
		p.i++
		p.out = append(p.out, ':')
		p.ws()
		if err := p.value(depth + 1); err != nil {
			return err
		}
		if n := len(members); n > 0 && !lessUTF16(members[n-1].key, key) {
			if bytes.Equal(members[n-1].key, key) {
				return p.errf("duplicate key %q", key)
			}
			sorted = false
		}
		members = append(members, span{key: key, start: start, end: len(p.out)})
		p.ws()
		if p.i >= len(p.s) {
			return p.errf("unterminated object")
		}
		if p.s[p.i] == ',' {
			p.i++
			p.out = append(p.out, ',')
			continue
		}
		if p.s[p.i] != '}' {
			return p.errf("expected ',' or '}' in object")
		}
		p.i++
		break
	}
	if !sorted {
		slices.SortStableFunc(members, func(a, b span) int { return compareUTF16(a.key, b.key) })
		for i := 1; i < len(members); i++ {
			if bytes.Equal(members[i-1].key, members[i].key) {
				return p.errf("duplicate key %q", members[i].key)
			}
		}
		first := members[0].start
		for _, m := range members {
			if m.start < first {
				first = m.start
			}
		}
		p.tmp = p.tmp[:0]
		for i, m := range members {
			if i > 0 {
				p.tmp = append(p.tmp, ',')
			}
			p.tmp = append(p.tmp, p.out[m.start:m.end]...)
		}
		p.out = append(p.out[:first], p.tmp...)
	}
	p.out = append(p.out, '}')
	return nil
}

// str parses a JSON string at p.i, writes its canonical form, and returns
// its decoded value: a slice of the input when the string has no escapes
// (no allocation), else a new slice.
func (p *canonParser) str() ([]byte, error) {
	p.i++ // opening quote
	in := p.i
	begin := len(p.out)
	p.out = append(p.out, '"')
	var val []byte // decoded value, only built when escapes occur
	escaped := false
	for {
		// Copy a run of plain bytes.
		j := p.i
		for j < len(p.s) {
			c := p.s[j]
			if c == '"' || c == '\\' || c < 0x20 {
				break
			}
			j++
		}
		run := p.s[p.i:j]
		if !utf8.Valid(run) {
			return nil, p.errf("string is not valid UTF-8")
		}
		p.out = append(p.out, run...)
		if escaped {
			val = append(val, run...)
		}
		p.i = j
		if p.i >= len(p.s) {
			return nil, p.errf("unterminated string")
		}
		c := p.s[p.i]
		if c == '"' {
			p.i++
			p.out = append(p.out, '"')
			if escaped {
				return val, nil
			}
			return p.s[in : p.i-1], nil
		}
		if c < 0x20 {
			return nil, p.errf("control character in string")
		}
		// Backslash escape.
		if !escaped {
			escaped = true
			val = append(val, p.out[begin+1:]...)
		}
		if p.i+1 >= len(p.s) {
			return nil, p.errf("unterminated escape")
		}
		e := p.s[p.i+1]
		p.i += 2
		var r rune
		switch e {
		case '"', '\\', '/':
			r = rune(e)
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'n':
			r = '\n'
		case 'r':
			r = '\r'
		case 't':
			r = '\t'
		case 'u':
			u, ok := p.hex4()
			if !ok {
				return nil, p.errf("bad \\u escape")
			}
			r = rune(u)
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || p.i+1 >= len(p.s) || p.s[p.i] != '\\' || p.s[p.i+1] != 'u' {
					return nil, p.errf("lone surrogate in string")
				}
				p.i += 2
				u2, ok := p.hex4()
				if !ok {
					return nil, p.errf("bad \\u escape")
				}
				r = utf16.DecodeRune(r, rune(u2))
				if r == utf8.RuneError {
					return nil, p.errf("invalid surrogate pair in string")
				}
			}
		default:
			return nil, p.errf("invalid escape \\%c", e)
		}
		val = utf8.AppendRune(val, r)
		p.out = appendEscapedRune(p.out, r)
	}
}

func (p *canonParser) hex4() (uint16, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	var u uint16
	for _, c := range p.s[p.i : p.i+4] {
		u <<= 4
		switch {
		case c >= '0' && c <= '9':
			u |= uint16(c - '0')
		case c >= 'a' && c <= 'f':
			u |= uint16(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			u |= uint16(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return u, true
}

const hexDigits = "0123456789abcdef"

// appendEscapedRune appends r as RFC 8785 writes it inside a string.
func appendEscapedRune(out []byte, r rune) []byte {
	switch {
	case r == '"':
		return append(out, '\\', '"')
	case r == '\\':
		return append(out, '\\', '\\')
	case r >= 0x20:
		return utf8.AppendRune(out, r)
	case r == '\b':
		return append(out, '\\', 'b')
	case r == '\f':
		return append(out, '\\', 'f')
	case r == '\n':
		return append(out, '\\', 'n')
	case r == '\r':
		return append(out, '\\', 'r')
	case r == '\t':
		return append(out, '\\', 't')
	default:
		return append(out, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
	}
}

// appendString appends s as a canonical JSON string.
func appendString(out []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("canonical json: string is not valid UTF-8")
	}
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			out = append(out, c)
			continue
		}
		out = appendEscapedRune(out, rune(c))
	}
	return append(out, '"'), nil
}

func (p *canonParser) number() error {
	start := p.i
	j := p.i
	if p.s[j] == '-' {
		j++
	}
	if j >= len(p.s) {
		return p.errf("bad number")
	}
	if p.s[j] == '0' {
		j++
	} else if p.s[j] >= '1' && p.s[j] <= '9' {
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
	} else {
		return p.errf("bad number")
	}
	isInt := true
	if j < len(p.s) && p.s[j] == '.' {
		isInt = false
		j++
		k := j
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		if j == k {
			return p.errf("bad number")
		}
	}
	if j < len(p.s) && (p.s[j] == 'e' || p.s[j] == 'E') {
		isInt = false
		j++
		if j < len(p.s) && (p.s[j] == '+' || p.s[j] == '-') {
			j++
		}
		k := j
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		if j == k {
			return p.errf("bad number")
		}
	}
	lit := p.s[start:j]
	p.i = j
	// Fast path: short integers are already canonical (but "-0" is "0").
	if isInt && len(lit) <= 15 {
		if string(lit) == "-0" {
			p.out = append(p.out, '0')
		} else {
			p.out = append(p.out, lit...)
		}
		return nil
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return p.errf("number %s out of range", lit)
	}
	canon := FormatNumber(f)
	// An integer literal that a double cannot hold exactly would silently
	// change (2^53+1 becomes 2^53): refuse it. One that it holds exactly,
	// however large (1e20 written out), is its own canonical form.
	if isInt && math.Abs(f) >= maxSafeInteger && canon != string(lit) {
		return p.errf("integer %s is not exactly representable; send it as a string", lit)
	}
	p.out = append(p.out, canon...)
	return nil
}

// lessUTF16 orders strings by their UTF-16 code units, as RFC 8785 §3.2.3 requires.
func lessUTF16[T ~string | ~[]byte](a, b T) bool {
	// Fast path: UTF-8 byte order equals code point order, which equals
	// UTF-16 order unless a code point at or above U+E000 meets a
	// supplementary one (encoded in UTF-16 as surrogates, D800–DFFF).
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	if i == n {
		return len(a) < len(b)
	}
	if a[i] < 0xee && b[i] < 0xee { // both below U+E000 at the first difference
		return a[i] < b[i]
	}
	ua, ub := utf16.Encode([]rune(string(a))), utf16.Encode([]rune(string(b)))
	for k := 0; k < len(ua) && k < len(ub); k++ {
		if ua[k] != ub[k] {
			return ua[k] < ub[k]
		}
	}
	return len(ua) < len(ub)
}

// compareUTF16 is lessUTF16 as a three-way comparison, for slices.SortFunc.
func compareUTF16[T ~string | ~[]byte](a, b T) int {
	switch {
	case string(a) == string(b):
		return 0
	case lessUTF16(a, b):
		return -1
	}
	return 1
}

// FormatNumber formats a finite float64 as ECMAScript's Number.prototype.toString.
func FormatNumber(f float64) string {
	if f == 0 {
		return "0" // -0 too
	}
	neg := f < 0
	if neg {
		f = -f
	}
	// Shortest round-trip digits and decimal exponent.
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddddde±xx
	mant, expStr, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expStr)
	k := len(digits)
	n := exp + 1 // position of the decimal point relative to the digits
	var s string
	switch {
	case k <= n && n <= 21:
		s = digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		s = digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		s = "0." + strings.Repeat("0", -n) + digits
	default:
		sign := "+"
		ex := n - 1
		if ex < 0 {
			sign = "-"
			ex = -ex
		}
		if k == 1 {
			s = digits + "e" + sign + strconv.Itoa(ex)
		} else {
			s = digits[:1] + "." + digits[1:] + "e" + sign + strconv.Itoa(ex)
		}
	}
	if neg {
		return "-" + s
	}
	return s
}
