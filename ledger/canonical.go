package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxSafeInteger is 2^53: integers beyond it cannot be represented exactly
// as IEEE 754 doubles, which is what RFC 8785 numbers are.
const maxSafeInteger = 1 << 53

// Canonicalize returns the RFC 8785 (JSON Canonicalization Scheme) form of
// the JSON value in data: object members sorted by their UTF-16 code units,
// no insignificant white space, strings with minimal escaping and numbers in
// the ECMAScript shortest round-trip form.
//
// Unlike a lax JCS implementation it refuses input that would silently change
// meaning: invalid UTF-8, duplicate object keys, and numbers that are not
// exactly representable as a double (send those as strings).
//
// SPEC: https://www.rfc-editor.org/rfc/rfc8785
func Canonicalize(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("canonical json: trailing data after value")
	}
	var buf bytes.Buffer
	if err := writeCanonical(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// member is one object member kept in input order until it is sorted.
type member struct {
	key string
	val any
}

// decodeValue reads one JSON value with the token API so that duplicate keys
// can be detected (encoding/json silently keeps the last one).
func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			var members []member
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("canonical json: %w", err)
				}
				key, ok := kt.(string)
				if !ok {
					return nil, errors.New("canonical json: object key is not a string")
				}
				if seen[key] {
					return nil, fmt.Errorf("canonical json: duplicate key %q", key)
				}
				seen[key] = true
				val, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				members = append(members, member{key, val})
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("canonical json: %w", err)
			}
			return members, nil
		case '[':
			arr := []any{}
			for dec.More() {
				val, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, val)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("canonical json: %w", err)
			}
			return arr, nil
		}
		return nil, fmt.Errorf("canonical json: unexpected %v", t)
	case string:
		return t, nil
	case json.Number:
		return t, nil
	case bool, nil:
		return t, nil
	}
	return nil, fmt.Errorf("canonical json: unexpected token %v", tok)
}

func writeCanonical(buf *bytes.Buffer, v any) error {
	switch t := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		if t {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case string:
		return writeString(buf, t)
	case json.Number:
		s, err := canonicalNumber(string(t))
		if err != nil {
			return err
		}
		buf.WriteString(s)
	case []any:
		buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeCanonical(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case []member:
		sort.Slice(t, func(i, j int) bool { return lessUTF16(t[i].key, t[j].key) })
		buf.WriteByte('{')
		for i, m := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeString(buf, m.key); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := writeCanonical(buf, m.val); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		return fmt.Errorf("canonical json: unsupported type %T", v)
	}
	return nil
}

// lessUTF16 orders strings by their UTF-16 code units, as RFC 8785 §3.2.3 requires.
func lessUTF16(a, b string) bool {
	// Fast path: for code points below U+D800 (almost all keys) UTF-8 byte
	// order and UTF-16 order agree.
	ascii := true
	for i := 0; i < len(a) && ascii; i++ {
		ascii = a[i] < utf8.RuneSelf
	}
	for i := 0; i < len(b) && ascii; i++ {
		ascii = b[i] < utf8.RuneSelf
	}
	if ascii {
		return a < b
	}
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return ua[i] < ub[i]
		}
	}
	return len(ua) < len(ub)
}

const hexDigits = "0123456789abcdef"

// writeString writes s as a JSON string with RFC 8785 escaping: only '"', '\\'
// and control characters are escaped; everything else is literal UTF-8.
func writeString(buf *bytes.Buffer, s string) error {
	if !utf8.ValidString(s) {
		return errors.New("canonical json: string is not valid UTF-8")
	}
	buf.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			buf.WriteString(`\"`)
		case c == '\\':
			buf.WriteString(`\\`)
		case c >= 0x20:
			buf.WriteByte(c)
		case c == '\b':
			buf.WriteString(`\b`)
		case c == '\f':
			buf.WriteString(`\f`)
		case c == '\n':
			buf.WriteString(`\n`)
		case c == '\r':
			buf.WriteString(`\r`)
		case c == '\t':
			buf.WriteString(`\t`)
		default:
			buf.WriteString(`\u00`)
			buf.WriteByte(hexDigits[c>>4])
			buf.WriteByte(hexDigits[c&0xf])
		}
	}
	buf.WriteByte('"')
	return nil
}

// canonicalNumber formats a JSON number literal as ECMAScript's
// Number.prototype.toString does (RFC 8785 §3.2.2.3), refusing values that a
// double cannot hold exactly when they are written as integers.
func canonicalNumber(lit string) (string, error) {
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("canonical json: number %q out of range", lit)
	}
	if !strings.ContainsAny(lit, ".eE") {
		// An integer literal must survive the trip through a double.
		if math.Abs(f) > maxSafeInteger {
			return "", fmt.Errorf("canonical json: integer %s is not exactly representable; send it as a string", lit)
		}
	}
	return FormatNumber(f), nil
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
		if n-1 < 0 {
			sign = "-"
		}
		ex := n - 1
		if ex < 0 {
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
