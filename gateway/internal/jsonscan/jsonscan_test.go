package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	tooDeep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{`{}`, true}, {` [ ] `, true}, {`{"a": [1, -2.5e+3, true, false, null, "x\u00e9\n"]}`, true},
		{`"\ud800"`, true}, {`0`, true}, {`-0.0E-0`, true}, {deep, true},
		{``, false}, {`{`, false}, {`{"a" 1}`, false}, {`{"a":1,}`, false}, {`[1 2]`, false},
		{`01`, false}, {`1.`, false}, {`1e`, false}, {`-`, false}, {`+1`, false}, {`.5`, false},
		{`tru`, false}, {`nul`, false}, {`"\x"`, false}, {`"\u12g4"`, false}, {`"\u123"`, false},
		{"\"a\tb\"", false}, {`"abc`, false}, {`{} {}`, false}, {`{1:2}`, false}, {tooDeep, false},
	} {
		if got := Valid([]byte(tt.in)); got != tt.want {
			t.Errorf("Valid(%.40q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestStr(t *testing.T) {
	for _, tt := range []struct {
		in            string
		ok, esc, high bool
		next          int
	}{
		{`"plain" x`, true, false, false, 7},
		{`"a\"b"`, true, true, false, 6},
		{`"é"`, true, false, true, 4},
		{`"\u00e9é"`, true, true, true, 10},
		{`"open`, false, false, false, 0},
	} {
		s := Scanner{B: []byte(tt.in)}
		ok, esc, high := s.Str()
		if ok != tt.ok || esc != tt.esc || high != tt.high || ok && s.I != tt.next {
			t.Errorf("Str(%q) = %v, %v, %v at %d; want %v, %v, %v at %d", tt.in, ok, esc, high, s.I, tt.ok, tt.esc, tt.high, tt.next)
		}
	}
}

// FuzzValid: Valid agrees with encoding/json on every input nested less
// than MaxDepth deep (deeper, Valid refuses what encoding/json may take).
func FuzzValid(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}]}`, `"\u00e9\ud83d\ude00"`, `-12.5e-3`, `[true,false]`, `{"a":1,}`, "\"\x01\"", `01`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, want := Valid(b), json.Valid(b)
		if got && !want {
			t.Fatalf("Valid(%q) = true, encoding/json refuses it", b)
		}
		if !got && want && nesting(b) < MaxDepth {
			t.Fatalf("Valid(%q) = false, encoding/json accepts it", b)
		}
	})
}

// nesting is the deepest nesting of brackets in b outside strings (for
// valid JSON).
func nesting(b []byte) int {
	depth, most, in := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == '{' || c == '['):
			depth++
			most = max(most, depth)
		case !in && (c == '}' || c == ']'):
			depth--
		}
	}
	return most
}
