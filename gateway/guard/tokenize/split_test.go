package tokenize

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"
	"github.com/dlclark/regexp2/v2/helpers"
	"github.com/dlclark/regexp2/v2/syntax"
	"github.com/tiktoken-go/tokenizer"
)

// The library is the reference: its Codec.Count, and its split regexps.
// The patterns are those of codec/o200k_base.go and codec/cl100k_base.go;
// regexp2 runs them with the code that the library's codec package
// generated and registered for exactly these strings (codec/regexp.gen.go).
var refPatterns = map[Encoding]string{
	O200kBase:  `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	Cl100kBase: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
}

var encodings = []Encoding{O200kBase, Cl100kBase}

var refs = struct {
	sync.Once
	codecs  map[Encoding]tokenizer.Codec
	regexps map[Encoding]*regexp2.Regexp
}{}

func refInit() {
	refs.Do(func() {
		refs.codecs = map[Encoding]tokenizer.Codec{}
		refs.regexps = map[Encoding]*regexp2.Regexp{}
		for _, enc := range encodings {
			c, err := tokenizer.Get(tokenizer.Encoding(enc))
			if err != nil {
				panic(err)
			}
			refs.codecs[enc] = c
			refs.regexps[enc] = regexp2.MustCompile(refPatterns[enc], regexp2.None)
		}
	})
}

// refCount is the library's count of s.
func refCount(t testing.TB, enc Encoding, s string) int {
	t.Helper()
	refInit()
	n, err := refs.codecs[enc].Count(s)
	if err != nil {
		t.Fatalf("library Count(%s, %q): %v", enc, s, err)
	}
	return n
}

// refPieces are the library's pieces of s.
func refPieces(t testing.TB, enc Encoding, s string) []string {
	t.Helper()
	refInit()
	var pieces []string
	m, err := refs.regexps[enc].FindStringMatch(s)
	for ; m != nil && err == nil; m, err = refs.regexps[enc].FindNextMatch(m) {
		pieces = append(pieces, m.String())
	}
	if err != nil {
		t.Fatalf("regexp2 on %q: %v", s, err)
	}
	return pieces
}

// pieces are our pieces of s.
func pieces(enc Encoding, s string) []string {
	split := splitO200k
	if enc == Cl100kBase {
		split = splitCl100k
	}
	s = validRunes(s)
	var out []string
	for i := 0; i < len(s); {
		j := split(s, i)
		if j < 0 {
			n, _ := at(s, i)
			i += n
			continue
		}
		if j <= i || j > len(s) || !utf8.ValidString(s[i:j]) {
			panic(fmt.Sprintf("split(%q, %d) = %d", s, i, j))
		}
		out = append(out, s[i:j])
		i = j
	}
	return out
}

// checkMatches fails t unless s splits into the library's pieces and
// counts as many tokens as the library's Codec.Count says.
func checkMatches(t testing.TB, enc Encoding, s string) {
	t.Helper()
	if got, want := pieces(enc, s), refPieces(t, enc, s); !slices.Equal(got, want) {
		t.Errorf("pieces(%s, %q) =\n%q; want\n%q", enc, s, got, want)
	}
	if got, want := count(enc, s), refCount(t, enc, s); got != want {
		t.Errorf("count(%s, %q) = %d; want %d", enc, s, got, want)
	}
}

// The regexp2cg code's character sets (codec/regexp.gen.go): an ASCII
// bitmap, then a CharSet.
var (
	refPrefixSet = syntax.NewCharSetRuntime("\x01\x02\x00\x00\x00\x02\x00\x00\x00\n\n\r\r\x01L\x01N") // [^\n\r\p{L}\p{N}]
	refPunctSet  = syntax.NewCharSetRuntime("\x01\x00\x00\x00\x00\x03\x00\x00\x00\x01 \x01L\x01N")    // [^\s\p{L}\p{N}]
)

// refClassOf classifies r with the predicates of the library's regexp code.
func refClassOf(r rune) uint8 {
	var cl uint8
	set := func(in bool, bits uint8) {
		if in {
			cl |= bits
		}
	}
	set(unicode.IsSpace(r), clSpace)
	set(unicode.In(r, unicode.L), clLetter)
	set(unicode.In(r, unicode.N), clNumber)
	set(unicode.In(r, unicode.Lu, unicode.Lt, unicode.Lm, unicode.Lo, unicode.M), clUpper)
	set(unicode.In(r, unicode.Ll, unicode.Lm, unicode.Lo, unicode.M), clLower)
	set(r < 128 && helpers.IsInASCIIBitmap(r, 0xfc00ffffffffdbff, 0x78000001f8000001) || r >= 128 && refPrefixSet.CharIn(r), clPrefix)
	set(r < 128 && helpers.IsInASCIIBitmap(r, 0xfc00fffeffffc1ff, 0x78000001f8000001) || r >= 128 && refPunctSet.CharIn(r), clPunct)
	return cl
}

// Every rune's classes (from the table, or computed on the fly above it)
// are those of the library's regexp code.
func TestRuneClasses(t *testing.T) {
	bad := 0
	for r := rune(0); r <= unicode.MaxRune && bad < 10; r++ {
		want := refClassOf(r)
		if got := classOf(r); got != want {
			t.Errorf("classOf(%U) = %07b; want %07b", r, got, want)
			bad++
		}
		if got := slowClassOf(r); r >= classTableSize && got != want {
			t.Errorf("slowClassOf(%U) = %07b; want %07b", r, got, want)
			bad++
		}
	}
}

// trickyInputs are the table of TestSplitMatchesTiktoken and the fuzzer's seeds.
var trickyInputs = []string{
	"", "a", "A", " ", "'", "''", "'s", " 's", "x's", "x'S", "x'T'", "'LL", "'Ll", "'lL", "'l", "'re", "'RE", "'rE", "'Re'", "'ve", "'m", "'d", "'D's",
	"don't", "DON'T", "I'LL", "we're", "THEY'VE", "it's", "He'd", "x'ſ", "X'ſt", "'ſ", "'Ss", "’s", "don’t", "can'tt", "'''s", "a'b'c'd",
	"CamelCase", "camelCase", "HTTPServer", "getHTTPResponse", "iPhone", "McDonald's", "ABC", "ABc", "aBC", "A.B.C.", "ǅemal", "ǅ", "ǈǈa", "ʰa", "ªb", "Aʰ", "ʰʰʰ",
	"12345", "1234567", " 123", "a123", "123a", "3.14159", "1,000,000", "²³", "½", "Ⅻ", "٣٤٥٦", "१२३४", "1²3",
	"e\u0301", "E\u0301\u0301", "\u0301", "\u0301e", " \u0301", "\u0301\u0301", "!\u0301a", "\u0301'S", "é", "Å", "ñandú", "Straße", "ÇA", "a\u0301B",
	"日本語", "中文字符", "한국어", "ひらがな カタカナ", "東京は2024年に", "「引用」。、", "漢字abc", "abc漢字", "Ω≈ç√", "ﬁ ﬂ",
	"🦊", "👍🏽", "👨\u200d👩\u200d👧", "❤️", "🇫🇷", "\u200d", "\ufe0f", "a\u200db", "🦊🦊🦊", " 🦊", "🦊a",
	"  word", "   word", "\tword", "\t\tword", "  \tword", "word  ", "word \n", "a  b", "a   ", "   ", "\n", "\n\n", "  \n", "  \n  \n  x",
	"\r\n", "\r\n\r\n", "\r\n\r\n  \n\t x", " \r\n", "x\r\ny", "\r", "\r\r\n\n", "a\n b", "a \n\tb", "\t", "\t\t", "\t\n", "\v\f", "\u0085", "\u00a0a", "\u2003\u2003b", "\u3000x", "\u2028", "\u200b",
	"\x00", "a\x00b", "\x00\x00", "\x7f", "a\x7fb", " \x7f", "\x7f\x7f!", "!\x7f!", " \x7fa", "\x1f", "\x1c\x1d",
	"\xff", "a\xffb", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc3", "é\xc3", "\xef\xbf\xbd", " \xff ", "'\xff",
	"!!!", "...", " ...", "?!\n", "//", "a//b", "</div>\n", "<|endoftext|>", "<|endofprompt|>", " {\n", "});\r\n", "#!/bin/sh\n", "-->//\n\n",
	"func main() {\n\tfmt.Println(\"héllo 🦊\")\n}\n", "if (x != y) { return -1; }  // done\n", "SELECT * FROM t WHERE id=42;",
	"The quick brown fox jumps over the lazy dog.", "Hello, world!", "tiktoken is great!", "antidisestablishmentarianism",
	strings.Repeat("a", 200), strings.Repeat("ab", 100), strings.Repeat(" ", 150) + "x", strings.Repeat("!", 120), strings.Repeat("日本", 60), strings.Repeat("\n", 100),
}

// TestSplitMatchesTiktoken compares pieces and counts with the library's on
// tricky inputs, and pins the library's quirks that the splitter reproduces.
func TestSplitMatchesTiktoken(t *testing.T) {
	for _, enc := range encodings {
		for _, s := range trickyInputs {
			checkMatches(t, enc, s)
		}
	}
	for _, c := range []struct {
		enc  Encoding
		text string
		want []string
	}{
		{O200kBase, "  \n  \n  x", []string{"  \n", "  \n", " ", " x"}}, // \s*[\r\n]+ stops at the first newline
		{O200kBase, "a\x7fb \x7f", []string{"a", "b", " "}},             // DEL matches nothing
		{O200kBase, "x'ſ don'T", []string{"x'ſ", " don'T"}},
		{Cl100kBase, "x'ſ don'T", []string{"x", "'ſ", " don", "'T"}},
		{O200kBase, "a\xffb", []string{"a", "\ufffdb"}}, // the byte becomes U+FFFD, a symbol
		{O200kBase, "getHTTPResponse", []string{"get", "HTTPResponse"}},
		{O200kBase, "   word", []string{"  ", " word"}},
	} {
		if got := pieces(c.enc, c.text); !slices.Equal(got, c.want) {
			t.Errorf("pieces(%s, %q) = %q; want %q", c.enc, c.text, got, c.want)
		}
	}
}

// Both merges agree, on short and long pieces; the counts are compared
// with the library's elsewhere.
func TestMerges(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	texts := slices.Clone(trickyInputs)
	for range 50 {
		texts = append(texts, randomText(rng, 4096))
	}
	for _, enc := range encodings {
		v := encoderOf(enc).vocab
		for _, s := range texts {
			for _, p := range pieces(enc, s) {
				if scan, heap := v.mergeScan(p), v.mergeHeap(p); scan != heap {
					t.Errorf("%s: mergeScan(%q) = %d, mergeHeap = %d", enc, p, scan, heap)
				}
			}
		}
	}
}

// Concurrent counts share the cache of merged pieces.
func TestConcurrentPieceCache(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var texts []string
	var want [][2]int
	for range 32 {
		s := randomText(rng, 1024)
		texts = append(texts, s)
		want = append(want, [2]int{refCount(t, O200kBase, s), refCount(t, Cl100kBase, s)})
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for k := range 4 * len(texts) {
				i := (k*7 + g) % len(texts)
				for e, enc := range encodings {
					if got := count(enc, texts[i]); got != want[i][e] {
						t.Errorf("count(%s, text %d) = %d; want %d", enc, i, got, want[i][e])
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// The vocabulary read through Decode is the whole of the library's, each
// token at its rank, and bytes that are no token have none.
func TestVocab(t *testing.T) {
	for _, c := range []struct {
		enc  Encoding
		size int
	}{{O200kBase, 199998}, {Cl100kBase, 100256}} {
		refInit()
		v := encoderOf(c.enc).vocab
		if v.size != c.size {
			t.Errorf("%s: %d tokens; want %d", c.enc, v.size, c.size)
		}
		ids := make([]uint, 1)
		for id := range v.size {
			ids[0] = uint(id)
			tok, err := refs.codecs[c.enc].Decode(ids)
			if err != nil {
				t.Fatalf("%s: Decode(%d): %v", c.enc, id, err)
			}
			if r := v.rank(tok); r != uint32(id) {
				t.Fatalf("%s: rank(%q) = %d; want %d", c.enc, tok, r, id)
			}
		}
		for _, s := range []string{"\xff\xfe\xfd", "zzqxzzqxzzqx", strings.Repeat("a", 300)} {
			if r := v.rank(s); r != noRank {
				t.Errorf("%s: rank(%q) = %d; want none", c.enc, s, r)
			}
		}
	}
}

// tricky are strings that random text is made of, beside random words and
// random runes.
var tricky = []string{
	"a", "z", "A", "Z", "e", "E", "s", "S", "t", "T", "l", "L", "d", "D", "m", "M", "r", "R", "v", "V", "'", "'", "'", "’", "ſ",
	"0", "7", "42", "2024", " ", " ", " ", "  ", "\t", "\n", "\n\n", "\r", "\r\n", "\v", "\f", "\u0085", "\u00a0", "\u2003", "\u3000", "\u200b", "\u2028",
	".", ",", "!", "?", "/", "//", "-", "_", "(", ")", "{", "}", "<|endoftext|>", "\"", "#", "@", "*", "`", "~", "\x00", "\x7f", "\x1f",
	"\u0301", "\u0308", "é", "ñ", "Ä", "ß", "ǅ", "ʰ", "ª", "Ⅻ", "²", "½", "٣", "१", "ि", "्", "ा",
	"日", "本", "語", "中文", "한국어", "ひらがな", "カタカナ", "ー", "。", "、", "「", "」",
	"🦊", "👍🏽", "👨\u200d👩\u200d👧", "❤️", "🇫🇷", "\u200d", "\ufe0f",
	"\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\ufffd",
	"ا", "ل", "ع", "क", "ष", "Ω", "я", "Я",
	"don't", "I'LL", "we're", "THEY'VE", "it's", "He'd", "CamelCase", "HTTPServer", "iPhone",
}

var words = strings.Fields("the of and to in is that for it as with was on be by this are at from or have an they which one you had not but what all were when we there can more if no out so said use each she how their will up other about many then them these some her would make like him into time has two see could people my than first been who its now long down day did get come made may part over new sound take only little work know place year live me back give most very after thing our just name good sentence man think say great where help through much before line right too mean old any same tell boy follow came want show also around form three small set put end does another well large must big even such because turn here why ask went men read need land different home us move try kind hand picture again change off play spell air away animal house point page letter mother answer found study still learn should America world high")

// randomText is n bytes or so of text mixing words, code, tricky runes and
// random runes of every plane, with long runs now and then.
func randomText(rng *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		switch k := rng.IntN(100); {
		case k < 35:
			w := words[rng.IntN(len(words))]
			switch rng.IntN(8) {
			case 0:
				w = strings.ToUpper(w)
			case 1:
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			if rng.IntN(3) > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(w)
		case k < 75:
			b.WriteString(tricky[rng.IntN(len(tricky))])
		case k < 90:
			r := rune(rng.IntN(0x3000))
			if rng.IntN(4) == 0 {
				r = rune(rng.IntN(unicode.MaxRune + 1))
			}
			b.WriteRune(r)
		case k < 98:
			b.WriteString(strings.Repeat(" ", 1+rng.IntN(6)))
		default:
			b.WriteString(strings.Repeat(tricky[rng.IntN(len(tricky))], 20+rng.IntN(100)))
		}
	}
	return b.String()
}

// TestCountMatchesTiktoken compares pieces and counts with the library's on
// 4 MB of random text (2 per encoding), in chunks of 1 byte to 8 KiB.
func TestCountMatchesTiktoken(t *testing.T) {
	total := 2 << 20 // per encoding
	if testing.Short() || raceEnabled {
		total = 256 << 10
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, enc := range encodings {
		for done := 0; done < total; {
			s := randomText(rng, 1+rng.IntN(8<<10))
			done += len(s)
			checkMatches(t, enc, s)
			if t.Failed() {
				return
			}
		}
	}
	for _, s := range []string{prompt4K(), benchEnglish(), benchCode(t), benchCJK()} {
		for _, enc := range encodings {
			checkMatches(t, enc, s)
		}
	}
}

// FuzzSplitMatchesTiktoken compares pieces and counts with the library's.
func FuzzSplitMatchesTiktoken(f *testing.F) {
	for _, s := range trickyInputs {
		f.Add(s)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		f.Add(randomText(rng, 64))
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, enc := range encodings {
			checkMatches(t, enc, s)
		}
	})
}

// The benchmark texts: 4 KiB of English prose, of Go code and of mixed
// Chinese, Japanese and English.
func benchEnglish() string {
	const prose = "Before the gateway forwards a request, it estimates how many tokens the prompt will use, so that the rate limiter can reserve them. " +
		"The estimate doesn't have to be perfect: when the provider reports its usage, the difference is returned to the tenant's budget. " +
		"Still, we'd rather be close. A request that's counted too low lets concurrent calls overshoot; one that's counted too high is refused for no reason. " +
		"Customers paste whole documents (contracts, logs, meeting notes, and the occasional novel) into their prompts, and agents resend the history on every turn. " +
		"On Tuesday, 14 March, the on-call engineer noticed that p99 latency had doubled after the guardrails were enabled for three large tenants. "
	return trimUTF8(strings.Repeat(prose, 4096/len(prose)+1), 4096)
}

func benchCode(tb testing.TB) string {
	b, err := os.ReadFile("bpe.go")
	if err != nil {
		tb.Fatal(err)
	}
	return trimUTF8(strings.Repeat(string(b), 4096/len(b)+1), 4096)
}

func benchCJK() string {
	const mixed = "网关在调用模型之前估算提示词的令牌数量，以便速率限制器预留配额。" +
		"東京のチームは2024年に新しいガードレールを導入しました。The p99 latency was 2 ms before the change. " +
		"请检查以下运行手册，列出风险，并提出带有负责人和截止日期的回滚计划。" +
		"「トークン数」はプロバイダーが報告する使用量と照合されます。한국어 텍스트도 포함됩니다. "
	return trimUTF8(strings.Repeat(mixed, 4096/len(mixed)+1), 4096)
}

// trimUTF8 cuts s to at most n bytes, on a rune boundary.
func trimUTF8(s string, n int) string {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// BenchmarkCountText counts 4 KiB texts (Text's cache of long texts left
// out) with the library ("tiktoken-go") and with the splitter, without
// ("split-nocache") and with its cache of merged pieces ("split", which
// then holds all the text's pieces after the first iteration).
func BenchmarkCountText(b *testing.B) {
	for _, text := range []struct {
		name string
		s    string
	}{{"english", benchEnglish()}, {"code", benchCode(b)}, {"cjk", benchCJK()}} {
		for _, enc := range encodings {
			refInit()
			uncached := *encoderOf(enc)
			uncached.cache = nil
			for _, impl := range []struct {
				name  string
				count func(string) int
			}{
				{"tiktoken-go", func(s string) int { n, _ := refs.codecs[enc].Count(s); return n }},
				{"split-nocache", uncached.count},
				{"split", encoderOf(enc).count},
			} {
				b.Run(text.name+"/"+string(enc)+"/"+impl.name, func(b *testing.B) {
					b.SetBytes(int64(len(text.s)))
					b.ReportAllocs()
					for b.Loop() {
						impl.count(text.s)
					}
				})
			}
		}
	}
}
