package content

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"aigw/gateway/guard"
)

func mustNew(t testing.TB, c Config) *Filter {
	t.Helper()
	f, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return f
}

// hit is a finding as the tests see it: the original text it covers.
type hit struct{ typ, rule, text string }

func hits(text string, fs []guard.Finding) []hit {
	var out []hit
	for _, f := range fs {
		out = append(out, hit{f.Type, f.Rule, text[f.Start:f.End]})
	}
	return out
}

func TestScan(t *testing.T) {
	f := mustNew(t, Config{
		Phrases: []string{"Project Falcon", "bomb", "ass"},
		Regexes: []string{`acct-\d{6}`, `(a+)+$`},
		Topics:  map[string][]string{"weapons": {"bomb", "assault rifle"}, "medical": {"diagnosis"}},
	})
	for _, test := range []struct {
		name string
		text string
		want []hit
	}{
		{"Plain", "the project falcon launch", []hit{{"phrase", "Project Falcon", "project falcon"}}},
		{"CaseAndTopicToo", "A BOMB!", []hit{{"phrase", "bomb", "BOMB"}, {"topic:weapons", "bomb", "BOMB"}}},
		// Case 10: homoglyphs (Cyrillic о, Greek ο).
		{"Homoglyphs", "a bоmb and prοject falcon", []hit{
			{"phrase", "bomb", "bоmb"}, {"topic:weapons", "bomb", "bоmb"}, {"phrase", "Project Falcon", "prοject falcon"}}},
		// Case 11 (the part content handles: spacing and dots).
		{"Spaced", "b o m b", []hit{{"phrase", "bomb", "b o m b"}, {"topic:weapons", "bomb", "b o m b"}}},
		{"Dotted", "b.o.m.b", []hit{{"phrase", "bomb", "b.o.m.b"}, {"topic:weapons", "bomb", "b.o.m.b"}}},
		{"FullWidth", "ＢＯＭＢ", []hit{{"phrase", "bomb", "ＢＯＭＢ"}, {"topic:weapons", "bomb", "ＢＯＭＢ"}}},
		// Cases 14 and 15: invisible characters inside.
		{"ZeroWidth", "bo\u200Bmb", []hit{{"phrase", "bomb", "bo\u200Bmb"}, {"topic:weapons", "bomb", "bo\u200Bmb"}}},
		{"TagsAndBidi", "b\U000E0041om\u202Eb", []hit{{"phrase", "bomb", "b\U000E0041om\u202Eb"}, {"topic:weapons", "bomb", "b\U000E0041om\u202Eb"}}},
		{"WhiteSpaceRun", "assault \n\t rifle", []hit{{"phrase", "ass", "ass"}, {"topic:weapons", "assault rifle", "assault \n\t rifle"}}},
		{"Regex", "pay ACCT-123456 now", []hit{{"regex", `acct-\d{6}`, "ACCT-123456"}}},
		{"RegexArabicDigits", "acct-١٢٣٤٥٦", []hit{{"regex", `acct-\d{6}`, "acct-١٢٣٤٥٦"}}},
		// Case 29: ReDoS bait is linear with RE2.
		{"ReDoSBait", strings.Repeat("a", 100000) + "!", nil},
		{"ReDoSMatch", "x " + strings.Repeat("a", 10), []hit{{"regex", `(a+)+$`, strings.Repeat("a", 10)}}},
		{"Topic", "my diagnosis", []hit{{"topic:medical", "diagnosis", "diagnosis"}}},
		{"Overlapping", "assault rifle", []hit{{"phrase", "ass", "ass"}, {"topic:weapons", "assault rifle", "assault rifle"}}},
		// False-positive controls.
		{"Nothing", "the system is down, please ignore the typo above", nil},
		{"NearMiss", "project falco", nil},
	} {
		t.Run(test.name, func(t *testing.T) {
			got := hits(test.text, f.Scan(test.text, nil))
			slices.SortFunc(got, cmpHit)
			want := slices.Clone(test.want)
			slices.SortFunc(want, cmpHit)
			if !slices.Equal(got, want) {
				t.Errorf("Scan(%.40q) = %q; want %q", test.text, got, want)
			}
		})
	}
}

func cmpHit(a, b hit) int {
	return strings.Compare(a.typ+"\x00"+a.rule+"\x00"+a.text, b.typ+"\x00"+b.rule+"\x00"+b.text)
}

func TestWholeWord(t *testing.T) {
	f := mustNew(t, Config{Phrases: []string{"ass", "東京", "c++"}, WholeWord: true})
	for _, test := range []struct {
		text string
		want int
	}{
		{"a class act", 0},
		{"kick ass", 1},
		{"ass.", 1},
		{"assess", 0},
		{"私は東京に", 1}, // no spaces in Japanese: boundaries everywhere
		{"c++11 and c++", 2},
	} {
		if got := len(f.Scan(test.text, nil)); got != test.want {
			t.Errorf("Scan(%q) found %d; want %d", test.text, got, test.want)
		}
	}
}

// Case 28: text beyond the regex scan limit is reported, never skipped.
func TestScanLimit(t *testing.T) {
	f := mustNew(t, Config{Regexes: []string{`secret-\d+`}, Phrases: []string{"payload"}, MaxScanBytes: 4096})
	text := strings.Repeat("filler text ", 1000) + " payload secret-42"
	fs := f.Scan(text, nil)
	var limit, phrase *guard.Finding
	for i := range fs {
		switch fs[i].Type {
		case TypeScanLimit:
			limit = &fs[i]
		case TypePhrase:
			phrase = &fs[i]
		case TypeRegex:
			t.Errorf("regex found beyond the limit: %+v", fs[i])
		}
	}
	if limit == nil || limit.Rule != RuleMaxScanBytes || limit.End != len(text) || limit.Start > 4096 || limit.Start < 4000 {
		t.Errorf("scan_limit = %+v; want [~4096, %d) %s", limit, len(text), RuleMaxScanBytes)
	}
	if phrase == nil || text[phrase.Start:phrase.End] != "payload" {
		t.Errorf("phrase = %+v; want payload found past the regex limit", phrase)
	}
	// Under the limit: no scan_limit.
	if fs := f.Scan("short secret-1", nil); len(fs) != 1 || fs[0].Type != TypeRegex {
		t.Errorf("Scan(short) = %+v; want one regex finding", fs)
	}
}

func TestRegexBudget(t *testing.T) {
	f := mustNew(t, Config{Regexes: []string{`a`, `b`, `c`}})
	calls := 0
	f.nowSince = func(time.Time) time.Duration {
		calls++
		return time.Duration(calls) * 60 * time.Millisecond // over budget at the second check
	}
	fs := f.Scan("a b c", nil)
	if len(fs) != 3 || fs[0].Rule != "a" || fs[1].Rule != "b" || fs[2].Type != TypeScanLimit || fs[2].Rule != RuleRegexBudget {
		t.Errorf("Scan over budget = %+v; want a, b, then scan_limit", fs)
	}
}

// Case 29: 10 MB of combining marks is normalized and scanned in linear time.
func TestCombiningFlood(t *testing.T) {
	f := mustNew(t, Config{Phrases: []string{"bomb"}, Regexes: []string{`b\s*o\s*m\s*b`}})
	text := "b" + strings.Repeat("\u0301", 5<<20) + "omb"
	fs := f.Scan(text, nil)
	if len(fs) < 2 {
		t.Fatalf("Scan(flood) = %d findings; want the phrase, the regex (and scan_limit)", len(fs))
	}
	if fs[0].Type != TypePhrase || fs[0].Start != 0 || fs[0].End != len(text) {
		t.Errorf("Scan(flood)[0] = %+v; want phrase over all", fs[0])
	}
}

func TestNewLimits(t *testing.T) {
	many := make([]string, MaxRegexes+1)
	for i := range many {
		many[i] = fmt.Sprintf("x%d", i)
	}
	for _, test := range []struct {
		name string
		c    Config
		want string
	}{
		{"TooManyRegexes", Config{Regexes: many}, "regexes"},
		{"RegexTooLong", Config{Regexes: []string{strings.Repeat("a", MaxRegexLen+1)}}, "bytes"},
		{"RegexTooBig", Config{Regexes: []string{`[a-z]{999}[0-9]{999}[a-f]{999}`}}, "instructions"},
		{"Backreference", Config{Regexes: []string{`(a)\1`}}, "regex 0"},
		{"Lookahead", Config{Regexes: []string{`a(?=b)`}}, "regex 0"},
		{"EmptyMatch", Config{Regexes: []string{`a*`}}, "empty"},
		{"EmptyPhrase", Config{Phrases: []string{" \u200B "}}, "empty"},
		{"PhraseTooLong", Config{Phrases: []string{strings.Repeat("a", MaxPhraseLen+1)}}, "bytes"},
		{"TooManyPhrases", Config{Phrases: make([]string, MaxPhrases+1)}, "phrases"},
		{"EmptyTopic", Config{Topics: map[string][]string{"": {"x"}}}, "topic"},
	} {
		t.Run(test.name, func(t *testing.T) {
			_, err := New(test.c)
			if err == nil || !strings.Contains(err.Error(), test.want) {
				t.Errorf("New = %v; want an error about %q", err, test.want)
			}
		})
	}
	if _, err := New(Config{}); err != nil {
		t.Errorf("New(empty) = %v", err)
	}
}

func TestRequiredLiteral(t *testing.T) {
	f := mustNew(t, Config{Regexes: []string{`acct-\d{6}`, `(foo|bar)baz+`, `ÄÖ\d`, `\d+`, `(?:x|y)+zz`, `a{2,}`}})
	for i, want := range []string{"acct-", "ba", "", "", "zz", "a"} {
		if got := f.regexes[i].need; got != want {
			t.Errorf("need[%d] = %q; want %q", i, got, want)
		}
	}
}

// The phrase automaton agrees with a brute-force search.
func TestAutomatonAgreesWithBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(n int) string {
		b := make([]byte, 1+rng.IntN(n))
		for i := range b {
			b[i] = "abcab "[rng.IntN(6)]
		}
		return strings.TrimSpace(string(b))
	}
	for range 300 {
		var phrases []string
		for range 1 + rng.IntN(20) {
			if w := word(5); w != "" {
				phrases = append(phrases, w)
			}
		}
		if len(phrases) == 0 {
			continue
		}
		f := mustNew(t, Config{Phrases: phrases})
		text := word(200)
		got, want := sortFindings(f.Scan(text, nil)), bruteForcePhrases(text, phrases)
		if !slices.Equal(got, want) {
			t.Fatalf("phrases %q in %q: automaton %v; brute force %v", phrases, text, got, want)
		}
	}
}

func FuzzScan(f *testing.F) {
	for _, s := range []string{"bomb", "b o m b", "ＢＯＭＢ", "\xff\xfe", "acct-123456", "a\u0301\u0301"} {
		f.Add(s)
	}
	flt := mustNew(f, Config{Phrases: []string{"bomb", "o m"}, Regexes: []string{`acct-\d{6}`, `m\W`}, Topics: map[string][]string{"t": {"b"}}, WholeWord: true})
	f.Fuzz(func(t *testing.T, text string) {
		for _, fd := range flt.Scan(text, nil) {
			if fd.Start < 0 || fd.Start > fd.End || fd.End > len(text) {
				t.Fatalf("Scan(%q): finding %+v out of range", text, fd)
			}
		}
	})
}

func TestRegexCase(t *testing.T) {
	f := mustNew(t, Config{Regexes: []string{`Project\s+[A-Z]+7`, `(?i)MiXeD`, `[^a-z ]{3}`}})
	for _, test := range []struct {
		text string
		want []string
	}{
		{"PROJECT FALCON7", []string{"PROJECT FALCON7"}},
		{"project falcon7", []string{"project falcon7"}},
		{"mixed", []string{"mixed"}},
		{"ab 123", []string{"123"}},
		{"ABC", nil}, // the shadow is lower case: [^a-z] does not see capitals
	} {
		var got []string
		for _, f := range f.Scan(test.text, nil) {
			got = append(got, test.text[f.Start:f.End])
		}
		if !slices.Equal(got, test.want) {
			t.Errorf("Scan(%q) = %q; want %q", test.text, got, test.want)
		}
	}
}

// Scan is safe for concurrent use: parallel scans agree with serial ones.
func TestConcurrent(t *testing.T) {
	cfg := benchConfig()
	// The regex time budget is wall time: on a loaded machine under -race,
	// 8 goroutines on 2 cores can exceed the default and report a
	// scan_limit the serial scan did not (a flaky failure, not a race).
	cfg.RegexBudget = time.Minute
	f := mustNew(t, cfg)
	texts := []string{prompt4K, "a bоmb", "ticket #12345 and acct-123456", "ＢＯＭＢ diagnosis", strings.Repeat("x", 5000)}
	want := make([][]guard.Finding, len(texts))
	for i, s := range texts {
		want[i] = f.Scan(s, nil)
	}
	done := make(chan string)
	for g := range 8 {
		go func() {
			for k := range 50 {
				i := (g + k) % len(texts)
				if got := f.Scan(texts[i], nil); !slices.Equal(got, want[i]) {
					done <- fmt.Sprintf("Scan(%.30q) = %v; serially %v", texts[i], got, want[i])
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
