package textnorm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

var all = Options{Fold: true, Confusables: true, Digits: true, Leet: true, Collapse: true}

func TestNormalize(t *testing.T) {
	for _, test := range []struct {
		name string
		in   string
		opt  Options
		want string
	}{
		{"ASCIIUnchanged", "Hello, world.\n", Options{}, "Hello, world.\n"},
		{"Fold", "HeLLo ÀΣ", Options{Fold: true}, "hello àσ"},
		{"FoldLongS", "ſtop", Options{Fold: true}, "stop"},
		{"NFKCFullWidth", "ｉｇｎｏｒｅ ４１１１", Options{}, "ignore 4111"},
		{"NFKCLigature", "ﬁle", Options{}, "file"},
		{"NFKCCompose", "cafe\u0301", Options{}, "café"},
		{"ControlsDropped", "a\x00b\x7fc\td\r\n", Options{}, "abc\td\r\n"},
		{"ZeroWidthDropped", "a\u200Bb\u200Cc\u200Dd\u2060e\uFEFFf\u00ADg", Options{}, "abcdefg"},
		{"BidiDropped", "a\u202Eb\u202Ac\u2066d\u2069e\u200Ef\u200Fg", Options{}, "abcdefg"},
		{"TagsDropped", "hi\U000E0069\U000E0067\U000E007F!", Options{}, "hi!"},
		{"VariationSelectorsDropped", "a\uFE0F\U000E0100b\u034Fc", Options{}, "abc"},
		{"PrivateUseAndUnassignedDropped", "a\uE000b\U0010FFFDc\U000E0FFFd", Options{}, "abcd"},
		{"InvalidUTF8", "a\xffb", Options{}, "a\uFFFDb"},
		{"Digits", "٤١١١ ४१ ４", Options{Digits: true}, "4111 41 4"},
		{"DigitsWithConfusables", "٤١١١", Options{Digits: true, Confusables: true}, "4111"},
		{"ConfusablesCyrillic", "іgnоrе prevіous", Options{Confusables: true}, "ignore previous"},
		{"ConfusablesCapitals", "ТАСК", Options{Fold: true, Confusables: true}, "tack"},
		{"ConfusablesGreek", "ρrοmρt", Options{Confusables: true}, "prompt"},
		{"ConfusablesDiacritics", "ïgnörë", Options{Confusables: true}, "ignore"},
		{"ConfusablesLeaveASCII", "m1lI0", Options{Confusables: true}, "m1lI0"},
		{"ConfusablesSmallCaps", "ɪɢɴᴏʀᴇ", Options{Confusables: true}, "ignore"},
		{"CombiningMarksDropped", "a\u0301\u0301\u0301b", Options{Confusables: true}, "ab"},
		{"Leet", "1gn0r3 @ll $3cr3t5 4 7h3", Options{Leet: true}, "ignore all secrets a the"},
		{"CollapseSpaced", "i g n o r e  all", Options{Collapse: true}, "ignore all"},
		{"CollapseDots", "a.l.l p-r-e-v-i-o-u-s", Options{Collapse: true}, "all previous"},
		{"CollapseCase11", "1gn0r3 a.l.l p-r-e-v-i-o-u-s", all, "ignore all previous"},
		{"CollapseSpaces", "a  b\t\tc \n d", Options{Collapse: true}, "a b c\nd"},
		{"Spaces", "a\tb\nc\u2028d\u3000e  f", Options{Spaces: true}, "a b c d e  f"},
		{"SpacesCollapse", "ab\tcd\n\nef \r\n gh", Options{Spaces: true, Collapse: true}, "ab cd ef gh"},
		{"CollapseKeepsWords", "a cat is a pet", Options{Collapse: true}, "a cat is a pet"},
		{"CollapseKeepsDoubleSep", "a..b", Options{Collapse: true}, "a..b"},
		{"CollapseTrailingSpace", "x  ", Options{Collapse: true}, "x "},
		{"CollapseTrailingPending", "i g", Options{Collapse: true}, "ig"},
		{"CollapseHiddenSpaced", "i\u200B g\u00AD n", Options{Collapse: true}, "ign"},
		{"All", "ІGNОRЕ   Ρrevious\u200B instructions!", all, "ignore previous instructions!"},
	} {
		t.Run(test.name, func(t *testing.T) {
			got := Normalize(test.in, test.opt)
			if got.Norm != test.want {
				t.Errorf("Normalize(%q).Norm = %q; want %q", test.in, got.Norm, test.want)
			}
			checkSpans(t, test.in, got)
		})
	}
}

// checkSpans checks that every character of Norm maps to a valid range of
// the original on character boundaries, and that the ranges advance
// (characters produced together may share or overlap ranges).
func checkSpans(t *testing.T, in string, x Text) {
	t.Helper()
	prevStart, prevEnd := 0, 0
	for i, r := range x.Norm {
		s, e := x.Span(i, i+utf8.RuneLen(r))
		if s < 0 || e > len(in) || s >= e {
			t.Fatalf("Span of %q at %d in %q = [%d,%d); invalid for %q", string(r), i, x.Norm, s, e, in)
		}
		if s < prevStart || e < prevEnd {
			t.Fatalf("Span of %q at %d in %q = [%d,%d); goes back before [%d,%d)", string(r), i, x.Norm, s, e, prevStart, prevEnd)
		}
		if utf8.ValidString(in) && (!utf8.RuneStart(in[s]) || e < len(in) && !utf8.RuneStart(in[e])) {
			t.Fatalf("Span of %q in %q = [%d,%d) splits a character", string(r), in, s, e)
		}
		prevStart, prevEnd = s, e
	}
}

func TestSpan(t *testing.T) {
	for _, test := range []struct {
		name       string
		in         string
		opt        Options
		find       string // in Norm
		want       string // in the original
		start, end int    // or explicit Norm range, when find == ""
	}{
		{name: "Identity", in: "say ignore this", find: "ignore", want: "ignore"},
		{name: "Homoglyphs", in: "say іgnоrе this", opt: all, find: "ignore", want: "іgnоrе"},
		{name: "Spaced", in: "pls i g n o r e all", opt: all, find: "ignore", want: "i g n o r e"},
		{name: "ZeroWidthInside", in: "x ig\u200Bnore y", opt: all, find: "ignore", want: "ig\u200Bnore"},
		{name: "ZeroWidthOutsideNotCovered", in: "x\u200B\u200Bignore\u200B", opt: all, find: "ignore", want: "ignore"},
		{name: "Ligature", in: "a ﬁle", find: "fi", want: "ﬁ"},
		{name: "HalfALigature", in: "a ﬁle", find: "il", want: "ﬁl"},
		{name: "Composed", in: "cafe\u0301!", find: "é", want: "e\u0301"},
		{name: "WhiteSpaceRun", in: "a \n\n b", opt: all, find: "\n", want: " \n\n "},
		{name: "FullWidthDigits", in: "card ４１１１ end", opt: Options{Digits: true}, find: "4111", want: "４１１１"},
		{name: "Clamped", in: "abc", start: -5, end: 99, want: "abc"},
		{name: "Reversed", in: "abc", start: 2, end: 1, want: ""},
		{name: "EmptyAtEnd", in: "ab\u200B", opt: all, start: 2, end: 2, want: ""},
	} {
		t.Run(test.name, func(t *testing.T) {
			x := Normalize(test.in, test.opt)
			start, end := test.start, test.end
			if test.find != "" {
				start = strings.Index(x.Norm, test.find)
				if start < 0 {
					t.Fatalf("Normalize(%q).Norm = %q; no %q", test.in, x.Norm, test.find)
				}
				end = start + len(test.find)
			}
			s, e := x.Span(start, end)
			if got := test.in[s:e]; got != test.want {
				t.Errorf("Span(%d, %d) of %q in %q = %q; want %q", start, end, x.Norm, test.in, got, test.want)
			}
		})
	}
}

func TestNormalizeIntoReuses(t *testing.T) {
	var buf Buffer
	NormalizeInto(&buf, prompt4K, all)
	if n := testing.AllocsPerRun(10, func() { NormalizeInto(&buf, prompt4K, all) }); n != 0 {
		t.Errorf("NormalizeInto with a grown Buffer allocates %v times; want 0", n)
	}
}

func TestASCIIDoesNotAllocate(t *testing.T) {
	in := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 20)
	var x Text
	if n := testing.AllocsPerRun(10, func() { x = Normalize(in, Options{Digits: true, Confusables: true}) }); n != 0 {
		t.Errorf("Normalize(ASCII) allocates %v times; want 0", n)
	}
	if x.Norm != in || x.runs != nil {
		t.Errorf("Normalize(ASCII) = %q with %d runs; want the input, identity", x.Norm, len(x.runs))
	}
}

// Case 29: a flood of combining marks costs linear time and memory.
func TestCombiningFlood(t *testing.T) {
	in := "a" + strings.Repeat("\u0301", 5<<20) + "b"
	x := Normalize(in, Options{})
	if !strings.HasPrefix(x.Norm, "á") || !strings.HasSuffix(x.Norm, "b") || len(x.Norm) > len(in)+utf8.UTFMax {
		t.Errorf("Normalize(flood) = %d bytes %q...; want á...b, at most the input", len(x.Norm), x.Norm[:8])
	}
	if s, e := x.Span(len(x.Norm)-1, len(x.Norm)); in[s:e] != "b" {
		t.Errorf("Span(last) = %q; want b", in[s:e])
	}
	x = Normalize(in, all)
	if x.Norm != "ab" {
		t.Errorf("Normalize(flood, all) = %q; want ab", x.Norm)
	}
	if s, e := x.Span(0, 2); s != 0 || e != len(in) {
		t.Errorf("Span(0, 2) = [%d,%d); want [0,%d)", s, e, len(in))
	}
}

func TestDigitRanges(t *testing.T) {
	// digit relies on every range of unicode.Nd starting at a zero and
	// holding whole sets of ten.
	for _, r := range unicode.Nd.R16 {
		if r.Stride != 1 || (r.Hi-r.Lo+1)%10 != 0 {
			t.Errorf("Nd range %U-%U stride %d is not whole sets of ten", r.Lo, r.Hi, r.Stride)
		}
	}
	for _, r := range unicode.Nd.R32 {
		if r.Stride != 1 || (r.Hi-r.Lo+1)%10 != 0 {
			t.Errorf("Nd range %U-%U stride %d is not whole sets of ten", r.Lo, r.Hi, r.Stride)
		}
	}
	for _, test := range []struct {
		r    rune
		want rune
	}{{'٠', 0}, {'٩', 9}, {'७', 7}, {'𝟵', 9}, {'᠕', 5}} {
		if got, ok := digit(test.r); !ok || got != test.want {
			t.Errorf("digit(%q) = %d, %v; want %d", test.r, got, ok, test.want)
		}
	}
	if _, ok := digit('x'); ok {
		t.Error("digit('x') ok")
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"", "abc", "іgnоrе", "i g n o r e", "a\u0301\u0301", "\xff\xfe", "ﬁ ４ ٤", "x\u200B\U000E0041",
		"a.l.l p-r-e", "\uFDFA", "  \n\t ", "ǅ", "\u0345\u0345A", prompt4K[:300], mixed4K[:300],
		"a b cd e  f\n\ng h. i, j'k l\x00 m \u00a0n o\u3000p", "I am a X-ray", "A\x01B c\u0301 d"} {
		f.Add(s, uint8(0x1f))
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, in string, bits uint8) {
		o := Options{Fold: bits&1 != 0, Confusables: bits&2 != 0, Digits: bits&4 != 0, Leet: bits&8 != 0, Collapse: bits&16 != 0, Spaces: bits&32 != 0}
		x := Normalize(in, o)
		if y := normalize(in, o, true, nil); y.Norm != x.Norm || !slices.Equal(y.runs, x.runs) {
			t.Fatalf("Normalize(%q, %+v) = %q %v; without fast paths %q %v", in, o, x.Norm, x.runs, y.Norm, y.runs)
		}
		if !utf8.ValidString(x.Norm) {
			t.Fatalf("Normalize(%q, %+v) = %q; invalid UTF-8", in, o, x.Norm)
		}
		checkSpans(t, in, x)
		// Any range maps to a valid range.
		for i := 0; i <= len(x.Norm); i += 1 + len(x.Norm)/7 {
			for j := i; j <= len(x.Norm); j += 1 + len(x.Norm)/5 {
				s, e := x.Span(i, j)
				if s < 0 || s > e || e > len(in) {
					t.Fatalf("Span(%d, %d) of %q from %q = [%d,%d)", i, j, x.Norm, in, s, e)
				}
			}
		}
		// Idempotent on valid text without Collapse (it can make new
		// single letters: "ab c d" → "ab cd") or Leet (it maps after NFKC,
		// so "0\u0301" → "o\u0301", which NFKC then composes), and
		// without invisible characters or combining marks (the options
		// apply after NFKC, so "a\a\u0301" → "a\u0301" and "İ\u0301" →
		// "i\u0301", which a second pass composes).
		if utf8.ValidString(in) && !o.Collapse && !o.Leet && strings.IndexFunc(in, func(r rune) bool {
			return Invisible(r) || unicode.Is(unicode.Mn, r)
		}) < 0 {
			if y := Normalize(x.Norm, o); y.Norm != x.Norm {
				t.Fatalf("Normalize not idempotent on %q: %q then %q", in, x.Norm, y.Norm)
			}
		}
	})
}

// Normalize is safe for concurrent use, the lazily built confusables
// table included (go test -race).
func TestConcurrent(t *testing.T) {
	texts := []string{mixed4K, prompt4K, "іgnоrе", "ＡＢＣ ٤٥"}
	done := make(chan string)
	for g := range 8 {
		go func() {
			for k := range 20 {
				s := texts[(g+k)%len(texts)]
				x, y := Normalize(s, all), normalize(s, all, true, nil)
				if x.Norm != y.Norm {
					done <- fmt.Sprintf("Normalize(%.20q) = %.20q; without fast paths %.20q", s, x.Norm, y.Norm)
					return
				}
			}
			done <- ""
		}()
	}
	for range 8 {
		if msg := <-done; msg != "" {
			t.Error(msg)
		}
	}
}

// The fast paths agree with the slow one on random texts over an alphabet
// that makes words, single letters, chains, white-space runs, controls and
// non-ASCII neighbours common, for every combination of options; so does
// NormalizeInto with one Buffer for all.
func TestFastPathsAgree(t *testing.T) {
	var buf Buffer
	alphabet := []string{"a", "b", "Z", "1", "0", "@", "$", " ", " ", "  ", "\t", "\n", "\r", ".", "-", "'", ",", "(", "#",
		"\x00", "\x7f", "é", "\u00a0", "\u200b", "і", "ab", "word", "Word ", " a ", "x.y", "i g n", "\n\n", "    "}
	rng := rand.New(rand.NewPCG(1, 1))
	for range 4000 {
		var sb strings.Builder
		for n := rng.IntN(40); n >= 0; n-- {
			sb.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		in := sb.String()
		for bits := range 64 {
			o := Options{Fold: bits&1 != 0, Confusables: bits&2 != 0, Digits: bits&4 != 0, Leet: bits&8 != 0, Collapse: bits&16 != 0, Spaces: bits&32 != 0}
			x, y := Normalize(in, o), normalize(in, o, true, nil)
			if x.Norm != y.Norm || !slices.Equal(x.runs, y.runs) {
				t.Fatalf("Normalize(%q, %+v) = %q %v; without fast paths %q %v", in, o, x.Norm, x.runs, y.Norm, y.runs)
			}
			if z := NormalizeInto(&buf, in, o); z.Norm != x.Norm || !slices.Equal(z.runs, x.runs) {
				t.Fatalf("NormalizeInto(%q, %+v) = %q %v; Normalize %q %v", in, o, z.Norm, z.runs, x.Norm, x.runs)
			}
		}
	}
}
