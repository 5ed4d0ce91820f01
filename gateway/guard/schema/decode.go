package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of the numbers Decode accepts (see ErrNumber).
const (
	MaxNumberLen = 256
	MaxNumberExp = 400
)

// DefaultMaxDepth is how deeply objects and arrays may nest in decoded JSON
// when DecodeOptions.MaxDepth is zero.
const DefaultMaxDepth = 1000

// Errors of invalid JSON. A *SyntaxError matches ErrInvalidJSON and exactly
// one of the others with errors.Is.
var (
	ErrInvalidJSON = errors.New("invalid JSON")
	// ErrIncomplete: the text ends before the JSON value does (an answer
	// or a tool call's arguments cut mid-stream), or holds no value.
	ErrIncomplete = errors.New("incomplete JSON")
	// ErrDuplicateKey: an object has the same key twice, which JSON
	// parsers resolve differently (first wins, last wins, or error).
	ErrDuplicateKey = errors.New("duplicate key")
	// ErrTooDeep: nesting deeper than the decoder's MaxDepth.
	ErrTooDeep = errors.New("JSON nested too deeply")
	// ErrUnicode: a string holds invalid UTF-8 or a lone surrogate escape.
	ErrUnicode = errors.New("invalid unicode in JSON string")
	// ErrNumber: a number longer than MaxNumberLen characters or with an
	// exponent beyond ±MaxNumberExp. No float holds it, and validating it
	// against minimum, maximum or multipleOf as an exact rational (as
	// jsonschema does) costs time that grows with the exponent (and fails
	// outright past 1e6, which crashes the validator).
	ErrNumber = errors.New("JSON number out of range")
	// ErrSyntax: any other grammar error.
	ErrSyntax = errors.New("JSON syntax error")
)

// SyntaxError says where and why a text is not acceptable JSON.
type SyntaxError struct {
	// Kind is ErrIncomplete, ErrDuplicateKey, ErrTooDeep, ErrUnicode,
	// ErrNumber or ErrSyntax.
	Kind error
	// Offset is the byte offset in the decoded text.
	Offset int
	// Pointer is the JSON pointer (RFC 6901) of the value being decoded,
	// "" for the top-level value.
	Pointer string
	// Detail says what was wrong; it quotes object keys, never string
	// values.
	Detail string

	toks []string // pointer tokens, innermost first, while unwinding
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%v: %s at %q (byte %d)", e.Kind, e.Detail, e.Pointer, e.Offset)
}

// Unwrap returns e.Kind and ErrInvalidJSON.
func (e *SyntaxError) Unwrap() []error { return []error{e.Kind, ErrInvalidJSON} }

// DecodeOptions change how Decode reads JSON.
type DecodeOptions struct {
	// FoldDuplicates also refuses keys of one object that are equal under
	// Unicode simple case folding ("amount" and "AMOUNT"): Go's
	// encoding/json matches struct fields that way, so a second key that
	// differs only by case overrides the first one for a Go consumer
	// while other consumers see two keys.
	FoldDuplicates bool
	// MaxDepth bounds nesting; 0 means DefaultMaxDepth.
	MaxDepth int
}

// Decode parses one JSON value (RFC 8259) strictly: no trailing data, no
// duplicate keys, valid UTF-8, no lone surrogates. Objects decode to
// map[string]any, arrays to []any, numbers to json.Number, and the rest to
// string, bool and nil, the shapes jsonschema validates. Errors are
// *SyntaxError.
func Decode(text string, opt DecodeOptions) (any, error) {
	d := decoder{s: text, fold: opt.FoldDuplicates, maxDepth: opt.MaxDepth}
	if d.maxDepth <= 0 {
		d.maxDepth = DefaultMaxDepth
	}
	d.skipWS()
	if d.i == len(d.s) {
		return nil, finish(d.fail(ErrIncomplete, "no JSON value"))
	}
	v, err := d.value()
	if err != nil {
		return nil, finish(err)
	}
	d.skipWS()
	if d.i != len(d.s) {
		return nil, finish(d.fail(ErrSyntax, fmt.Sprintf("invalid character %s after the top-level value", quoteChar(d.s[d.i:]))))
	}
	return v, nil
}

func finish(e *SyntaxError) error {
	var b strings.Builder
	for i := len(e.toks) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(EscapePointer(e.toks[i]))
	}
	e.Pointer, e.toks = b.String(), nil
	return e
}

// EscapePointer escapes a JSON Pointer reference token (RFC 6901: ~ as
// ~0, / as ~1).
func EscapePointer(tok string) string {
	if !strings.ContainsAny(tok, "~/") {
		return tok
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(tok)
}

type decoder struct {
	s        string
	i        int
	depth    int
	maxDepth int
	fold     bool
}

func (d *decoder) fail(kind error, detail string) *SyntaxError {
	return &SyntaxError{Kind: kind, Offset: d.i, Detail: detail}
}

func (d *decoder) eof(inside string) *SyntaxError {
	return d.fail(ErrIncomplete, "input ends inside "+inside)
}

func (d *decoder) skipWS() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value() (any, *SyntaxError) {
	if d.i >= len(d.s) {
		return nil, d.eof("a value")
	}
	switch c := d.s[d.i]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		s, err := d.str("a string")
		if err != nil {
			return nil, err
		}
		return s, nil
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	default:
		return nil, d.fail(ErrSyntax, fmt.Sprintf("invalid character %s looking for the beginning of a value", quoteChar(d.s[d.i:])))
	}
}

func (d *decoder) literal(lit string) *SyntaxError {
	rest := d.s[d.i:]
	if strings.HasPrefix(rest, lit) {
		d.i += len(lit)
		return nil
	}
	if len(rest) < len(lit) && strings.HasPrefix(lit, rest) {
		d.i = len(d.s)
		return d.eof("literal " + lit)
	}
	for j := 0; j < len(lit) && j < len(rest); j++ {
		if rest[j] != lit[j] {
			d.i += j
			break
		}
	}
	return d.fail(ErrSyntax, fmt.Sprintf("invalid character %s in literal %s", quoteChar(d.s[d.i:]), lit))
}

func (d *decoder) digits() int {
	start := d.i
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		d.i++
	}
	return d.i - start
}

func (d *decoder) number() (any, *SyntaxError) {
	start := d.i
	if d.s[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i == len(d.s):
		return nil, d.eof("a number")
	case d.s[d.i] == '0':
		d.i++
	case d.s[d.i] >= '1' && d.s[d.i] <= '9':
		d.digits()
	default:
		return nil, d.fail(ErrSyntax, fmt.Sprintf("invalid character %s in numeric literal", quoteChar(d.s[d.i:])))
	}
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			if d.i == len(d.s) {
				return nil, d.eof("a number")
			}
			return nil, d.fail(ErrSyntax, fmt.Sprintf("invalid character %s after decimal point in numeric literal", quoteChar(d.s[d.i:])))
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		expAt := d.i
		if d.digits() == 0 {
			if d.i == len(d.s) {
				return nil, d.eof("a number")
			}
			return nil, d.fail(ErrSyntax, fmt.Sprintf("invalid character %s in exponent of numeric literal", quoteChar(d.s[d.i:])))
		}
		exp := strings.TrimLeft(d.s[expAt:d.i], "0")
		if n, err := strconv.Atoi(exp); len(exp) > 4 || err == nil && n > MaxNumberExp {
			d.i = start
			return nil, d.fail(ErrNumber, fmt.Sprintf("exponent beyond ±%d", MaxNumberExp))
		}
	}
	if d.i-start > MaxNumberLen {
		d.i = start
		return nil, d.fail(ErrNumber, fmt.Sprintf("number longer than %d characters", MaxNumberLen))
	}
	return json.Number(d.s[start:d.i]), nil
}

// str decodes the string starting at d.s[d.i] == '"'.
func (d *decoder) str(what string) (string, *SyntaxError) {
	d.i++
	start := d.i
	// Fast path: no escapes.
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			s := d.s[start:d.i]
			d.i++
			return s, nil
		case c == '\\':
			return d.strEscaped(start, what)
		case c < 0x20:
			return "", d.fail(ErrSyntax, fmt.Sprintf("invalid character %s in %s", quoteChar(d.s[d.i:]), what))
		case c < utf8.RuneSelf:
			d.i++
		default:
			if err := d.rune(what); err != nil {
				return "", err
			}
		}
	}
	return "", d.eof(what)
}

// rune steps over one multi-byte UTF-8 character.
func (d *decoder) rune(what string) *SyntaxError {
	r, size := utf8.DecodeRuneInString(d.s[d.i:])
	if r == utf8.RuneError && size <= 1 {
		if !utf8.FullRuneInString(d.s[d.i:]) {
			d.i = len(d.s)
			return d.eof(what)
		}
		return d.fail(ErrUnicode, "invalid UTF-8 in "+what)
	}
	d.i += size
	return nil
}

func (d *decoder) strEscaped(start int, what string) (string, *SyntaxError) {
	b := make([]byte, 0, d.i-start+16)
	b = append(b, d.s[start:d.i]...)
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return string(b), nil
		case c < 0x20:
			return "", d.fail(ErrSyntax, fmt.Sprintf("invalid character %s in %s", quoteChar(d.s[d.i:]), what))
		case c < utf8.RuneSelf && c != '\\':
			b = append(b, c)
			d.i++
		case c >= utf8.RuneSelf:
			at := d.i
			if err := d.rune(what); err != nil {
				return "", err
			}
			b = append(b, d.s[at:d.i]...)
		default: // backslash
			if d.i+1 >= len(d.s) {
				d.i = len(d.s)
				return "", d.eof(what)
			}
			e := d.s[d.i+1]
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, err := d.unicodeEscape(what)
				if err != nil {
					return "", err
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				d.i++
				return "", d.fail(ErrSyntax, fmt.Sprintf("invalid escape %s in %s", quoteChar(d.s[d.i:]), what))
			}
			d.i += 2
		}
	}
	return "", d.eof(what)
}

// hex4 reads the four hex digits after "\u" at d.s[d.i].
func (d *decoder) hex4(what string) (rune, *SyntaxError) {
	var r rune
	for j := 2; j < 6; j++ {
		if d.i+j >= len(d.s) {
			d.i = len(d.s)
			return 0, d.eof(what)
		}
		c := d.s[d.i+j]
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			d.i += j
			return 0, d.fail(ErrSyntax, fmt.Sprintf("invalid character %s in \\u escape in %s", quoteChar(d.s[d.i:]), what))
		}
		r = r<<4 | rune(v)
	}
	d.i += 6
	return r, nil
}

func (d *decoder) unicodeEscape(what string) (rune, *SyntaxError) {
	at := d.i
	r, err := d.hex4(what)
	if err != nil {
		return 0, err
	}
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		d.i = at
		return 0, d.fail(ErrUnicode, "lone low surrogate escape in "+what)
	case r < 0xD800 || r > 0xDBFF:
		return r, nil
	}
	// High surrogate: a low one must follow.
	rest := d.s[d.i:]
	if len(rest) < 2 && strings.HasPrefix(`\u`, rest) {
		d.i = len(d.s)
		return 0, d.eof(what)
	}
	if !strings.HasPrefix(rest, `\u`) {
		d.i = at
		return 0, d.fail(ErrUnicode, "lone high surrogate escape in "+what)
	}
	lo, err := d.hex4(what)
	if err != nil {
		return 0, err
	}
	if lo < 0xDC00 || lo > 0xDFFF {
		d.i = at
		return 0, d.fail(ErrUnicode, "high surrogate escape not followed by a low one in "+what)
	}
	return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), nil
}

func (d *decoder) push() *SyntaxError {
	d.depth++
	if d.depth > d.maxDepth {
		return d.fail(ErrTooDeep, fmt.Sprintf("more than %d nested objects and arrays", d.maxDepth))
	}
	return nil
}

// foldLinear is the object size up to which case-folded duplicates are
// found by comparing with every earlier key rather than through a map.
const foldLinear = 16

func (d *decoder) object() (any, *SyntaxError) {
	if err := d.push(); err != nil {
		return nil, err
	}
	d.i++
	m := map[string]any{}
	var folded map[string]string // folded key -> key, past foldLinear keys
	d.skipWS()
	if d.i == len(d.s) {
		return nil, d.eof("an object")
	}
	if d.s[d.i] == '}' {
		d.i++
		d.depth--
		return m, nil
	}
	for {
		if d.i == len(d.s) {
			return nil, d.eof("an object")
		}
		if d.s[d.i] != '"' {
			return nil, d.fail(ErrSyntax, fmt.Sprintf("invalid character %s looking for the beginning of an object key", quoteChar(d.s[d.i:])))
		}
		keyAt := d.i
		key, err := d.str("an object key")
		if err != nil {
			return nil, err
		}
		if _, dup := m[key]; dup {
			d.i = keyAt
			err := d.fail(ErrDuplicateKey, fmt.Sprintf("key %q appears twice in one object", truncate(key, 64)))
			err.toks = append(err.toks, key)
			return nil, err
		}
		if d.fold {
			if other, dup := foldDuplicate(m, &folded, key); dup {
				d.i = keyAt
				err := d.fail(ErrDuplicateKey, fmt.Sprintf("keys %q and %q differ only by case", truncate(other, 64), truncate(key, 64)))
				err.toks = append(err.toks, key)
				return nil, err
			}
		}
		d.skipWS()
		if d.i == len(d.s) {
			return nil, d.eof("an object")
		}
		if d.s[d.i] != ':' {
			return nil, d.fail(ErrSyntax, fmt.Sprintf("invalid character %s after object key", quoteChar(d.s[d.i:])))
		}
		d.i++
		d.skipWS()
		v, err := d.value()
		if err != nil {
			err.toks = append(err.toks, key)
			return nil, err
		}
		m[key] = v
		d.skipWS()
		if d.i == len(d.s) {
			return nil, d.eof("an object")
		}
		switch d.s[d.i] {
		case ',':
			d.i++
			d.skipWS()
			if d.i < len(d.s) && d.s[d.i] == '}' {
				return nil, d.fail(ErrSyntax, "trailing comma before '}'")
			}
		case '}':
			d.i++
			d.depth--
			return m, nil
		default:
			return nil, d.fail(ErrSyntax, fmt.Sprintf("invalid character %s after object key:value pair", quoteChar(d.s[d.i:])))
		}
	}
}

// foldDuplicate reports an earlier key of m equal to key under simple case
// folding. Past foldLinear keys it keeps *folded, a map by folded key.
func foldDuplicate(m map[string]any, folded *map[string]string, key string) (string, bool) {
	if *folded == nil && len(m) < foldLinear {
		for k := range m {
			if strings.EqualFold(k, key) {
				return k, true
			}
		}
		return "", false
	}
	if *folded == nil {
		*folded = make(map[string]string, 2*len(m))
		for k := range m {
			(*folded)[foldKey(k)] = k
		}
	}
	fk := foldKey(key)
	if k, ok := (*folded)[fk]; ok {
		return k, true
	}
	(*folded)[fk] = key
	return "", false
}

// foldKey maps every rune to the smallest rune of its simple case folding
// orbit, so that foldKey(a) == foldKey(b) exactly when strings.EqualFold(a, b).
func foldKey(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		min := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < min {
				min = f
			}
		}
		b = utf8.AppendRune(b, min)
	}
	return string(b)
}

func (d *decoder) array() (any, *SyntaxError) {
	if err := d.push(); err != nil {
		return nil, err
	}
	d.i++
	a := []any{}
	d.skipWS()
	if d.i == len(d.s) {
		return nil, d.eof("an array")
	}
	if d.s[d.i] == ']' {
		d.i++
		d.depth--
		return a, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			err.toks = append(err.toks, strconv.Itoa(len(a)))
			return nil, err
		}
		a = append(a, v)
		d.skipWS()
		if d.i == len(d.s) {
			return nil, d.eof("an array")
		}
		switch d.s[d.i] {
		case ',':
			d.i++
			d.skipWS()
			if d.i < len(d.s) && d.s[d.i] == ']' {
				return nil, d.fail(ErrSyntax, "trailing comma before ']'")
			}
		case ']':
			d.i++
			d.depth--
			return a, nil
		default:
			return nil, d.fail(ErrSyntax, fmt.Sprintf("invalid character %s after array element", quoteChar(d.s[d.i:])))
		}
	}
}

// quoteChar quotes the character at the start of s for an error message.
func quoteChar(s string) string {
	r, _ := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return fmt.Sprintf("byte 0x%02x", s[0])
	}
	return strconv.QuoteRune(r)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
