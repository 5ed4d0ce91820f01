package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	for _, test := range []struct {
		name    string
		in      string
		fold    bool
		want    any   // when err is nil
		err     error // kind
		pointer string
	}{
		{name: "Object", in: ` {"a": [1, -2.5e3, true, false, null, "x"]} `,
			want: map[string]any{"a": []any{json.Number("1"), json.Number("-2.5e3"), true, false, nil, "x"}}},
		{name: "Escapes", in: `"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"`, want: "\"\\/\b\f\n\r\té😀"},
		{name: "EscapedKeysEqual", in: `{"amount":1,"\u0061mount":1e9}`, err: ErrDuplicateKey, pointer: "/amount"},
		{name: "Duplicate", in: `{"amount":1,"amount":1e9}`, err: ErrDuplicateKey, pointer: "/amount"},
		{name: "DuplicateNested", in: `{"a":[{"b":1},{"c/d":1,"c/d":2}]}`, err: ErrDuplicateKey, pointer: "/a/1/c~1d"},
		{name: "CaseVariantsAllowed", in: `{"amount":1,"AMOUNT":2}`, want: map[string]any{"amount": json.Number("1"), "AMOUNT": json.Number("2")}},
		{name: "CaseVariantsFolded", in: `{"amount":1,"AMOUNT":2}`, fold: true, err: ErrDuplicateKey, pointer: "/AMOUNT"},
		{name: "KelvinFolded", in: `{"k":1,"\u212a":2}`, fold: true, err: ErrDuplicateKey},
		{name: "FoldedManyKeys", in: manyKeys(40) + `,"KEY39":0}`, fold: true, err: ErrDuplicateKey, pointer: "/KEY39"},
		{name: "FoldedManyKeysDistinct", in: manyKeys(40) + `}`, fold: true},
		{name: "Empty", in: "  ", err: ErrIncomplete},
		{name: "CutObject", in: `{"a":1,`, err: ErrIncomplete},
		{name: "CutKey", in: `{"a":{"bc`, err: ErrIncomplete, pointer: "/a"},
		{name: "CutEscape", in: `"ab\u00`, err: ErrIncomplete},
		{name: "CutSurrogatePair", in: `"\ud83d\`, err: ErrIncomplete},
		{name: "CutRune", in: "\"\xe2\x82", err: ErrIncomplete},
		{name: "CutNumber", in: `[1.`, err: ErrIncomplete, pointer: "/0"},
		{name: "CutExponent", in: `[1e+`, err: ErrIncomplete},
		{name: "CutLiteral", in: `[nul`, err: ErrIncomplete},
		{name: "BadLiteral", in: `[nulx]`, err: ErrSyntax},
		{name: "LeadingZero", in: `01`, err: ErrSyntax},
		{name: "TrailingData", in: `{} {}`, err: ErrSyntax},
		{name: "TrailingCommaObject", in: `{"a":1,}`, err: ErrSyntax},
		{name: "TrailingCommaArray", in: `[1,]`, err: ErrSyntax},
		{name: "SingleQuotes", in: `{'a':1}`, err: ErrSyntax},
		{name: "ControlInString", in: "\"a\nb\"", err: ErrSyntax},
		{name: "BadEscape", in: `"\x"`, err: ErrSyntax},
		{name: "InvalidUTF8", in: "\"a\xffb\"", err: ErrUnicode},
		{name: "LoneHigh", in: `"\ud800x"`, err: ErrUnicode},
		{name: "LoneLow", in: `"\udc00"`, err: ErrUnicode},
		{name: "HighThenNotLow", in: `"\ud800\u0041"`, err: ErrUnicode},
		{name: "HugeExponent", in: `{"amount":1e10000000}`, err: ErrNumber, pointer: "/amount"},
		{name: "HugeNegativeExponent", in: `[1E-00401]`, err: ErrNumber},
		{name: "LongNumber", in: strings.Repeat("9", MaxNumberLen+1), err: ErrNumber},
		{name: "LargestExponent", in: `[1e400,-1E-400,1e0000000400]`, want: []any{json.Number("1e400"), json.Number("-1E-400"), json.Number("1e0000000400")}},
		{name: "TooDeep", in: strings.Repeat("[", DefaultMaxDepth+1) + strings.Repeat("]", DefaultMaxDepth+1), err: ErrTooDeep},
		{name: "DeepEnough", in: strings.Repeat("[", DefaultMaxDepth) + strings.Repeat("]", DefaultMaxDepth), want: nested(DefaultMaxDepth)},
	} {
		t.Run(test.name, func(t *testing.T) {
			got, err := Decode(test.in, DecodeOptions{FoldDuplicates: test.fold})
			if test.err == nil {
				if err != nil {
					t.Fatalf("Decode(%q) = %v", test.in, err)
				}
				if test.want != nil && !reflect.DeepEqual(got, test.want) {
					t.Fatalf("Decode(%q) = %#v; want %#v", test.in, got, test.want)
				}
				return
			}
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, test.err) || !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("Decode(%q) = %v; want %v", test.in, err, test.err)
			}
			if test.pointer != "" && se.Pointer != test.pointer {
				t.Errorf("Decode(%q) pointer = %q; want %q (%v)", test.in, se.Pointer, test.pointer, err)
			}
			if se.Offset < 0 || se.Offset > len(test.in) {
				t.Errorf("Decode(%q) offset %d out of range", test.in, se.Offset)
			}
		})
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"key%d":0`, i)
	}
	return b.String()
}

func nested(n int) any {
	var v any = []any{}
	for range n - 1 {
		v = []any{v}
	}
	return v
}

// FuzzDecode checks the strict decoder against encoding/json: what it
// accepts, encoding/json accepts with the same value, and re-encoding
// decodes to the same value; grammar errors are grammar errors there
// too; every cut of an accepted text is incomplete (or a whole number).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"amount":1,"amount":1e9}`, `{"amount":1,"AMOUNT":1e9}`, `{"a":[1,2,{"b":null}],"c":"\u00e9\ud83d\ude00"}`,
		`[]`, `{}`, `"x"`, `-0.5e-7`, `true`, `{"a":1,}`, `[1,]`, `"\ud800"`, "\"\xff\"", `{"path":"../../etc/passwd"}`,
		`{"k":1,"\u212a":2}`, ` [ 1 , 2 ] `, `01`, `1.`, `{"a"}`, validOrder,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, fold := range []bool{false, true} {
			v, err := Decode(s, DecodeOptions{FoldDuplicates: fold})
			valid := json.Valid([]byte(s))
			if err != nil {
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("Decode(%q) error %T, not *SyntaxError", s, err)
				}
				if (errors.Is(err, ErrSyntax) || errors.Is(err, ErrIncomplete)) && valid {
					t.Fatalf("Decode(%q) = %v; encoding/json accepts it", s, err)
				}
				if errors.Is(err, ErrDuplicateKey) && !fold && !hasExactDuplicate(t, s) {
					t.Fatalf("Decode(%q) = %v; no exact duplicate", s, err)
				}
				continue
			}
			if !valid {
				t.Fatalf("Decode(%q) accepted; encoding/json refuses it", s)
			}
			d := json.NewDecoder(strings.NewReader(s))
			d.UseNumber()
			var want any
			if err := d.Decode(&want); err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			if !reflect.DeepEqual(v, want) {
				t.Fatalf("Decode(%q) = %#v; encoding/json %#v", s, v, want)
			}
			enc, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			again, err := Decode(string(enc), DecodeOptions{FoldDuplicates: fold})
			if err != nil || !reflect.DeepEqual(again, v) {
				t.Fatalf("round trip of %q: %q decodes to %#v, %v", s, enc, again, err)
			}
			if len(s) <= 256 {
				trimmed := strings.TrimRight(s, " \t\r\n")
				for n := range len(trimmed) {
					_, err := Decode(trimmed[:n], DecodeOptions{FoldDuplicates: fold})
					if err != nil && !errors.Is(err, ErrIncomplete) {
						t.Fatalf("Decode(%q), a cut of %q = %v; want ErrIncomplete", trimmed[:n], s, err)
					}
					if err == nil && !isNumber(trimmed[:n]) {
						t.Fatalf("Decode(%q), a cut of %q, accepted", trimmed[:n], s)
					}
				}
			}
		}
	})
}

func isNumber(s string) bool {
	s = strings.TrimSpace(s)
	return s != "" && strings.Trim(s, "-+.eE0123456789") == ""
}

// hasExactDuplicate reports whether some object in s, which encoding/json
// accepts, repeats a key, by decoding with json.Decoder tokens.
func hasExactDuplicate(t *testing.T, s string) bool {
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	type frame struct {
		obj    bool
		keys   map[string]bool
		expect bool // next string token is a key
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		top := func() *frame {
			if len(stack) == 0 {
				return nil
			}
			return stack[len(stack)-1]
		}
		f := top()
		if k, isKey := tok.(string); isKey && f != nil && f.obj && f.expect {
			if f.keys[k] {
				return true
			}
			f.keys[k] = true
			f.expect = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, keys: map[string]bool{}, expect: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if f := top(); f != nil && f.obj {
			f.expect = true
		}
	}
}
