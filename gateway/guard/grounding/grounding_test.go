package grounding

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"aigw/gateway/guard"
)

// got lists the findings as "type:text" (scan limits included).
func got(answer string, fs []guard.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Type+":"+answer[f.Start:f.End])
	}
	return out
}

// checkFindings fails if a finding is out of range, unordered or lacks a
// type or score.
func checkFindings(t testing.TB, answer string, score float64, fs []guard.Finding) {
	t.Helper()
	if score < 0 || score > 1 {
		t.Fatalf("Check(%q): score %v out of 0..1", answer, score)
	}
	for i, f := range fs {
		if f.Start < 0 || f.End > len(answer) || f.Start > f.End || f.Type == "" || f.Score <= 0 || f.Score > 1 {
			t.Fatalf("Check(%q): bad finding %+v", answer, f)
		}
		if f.Start == f.End && f.Type != TypeScanLimit {
			t.Fatalf("Check(%q): empty finding %+v", answer, f)
		}
		if i > 0 && f.Start < fs[i-1].Start {
			t.Fatalf("Check(%q): findings out of order: %+v after %+v", answer, f, fs[i-1])
		}
	}
}

// Case 30 of the guardrails notes (section 5.1): the answer cites [3]
// when only two documents exist and quotes a sentence the context does
// not hold; the faithful answer is the control.
func TestCase30(t *testing.T) {
	prompt := "Use only the context below and cite it.\n\nContext:\n" +
		"[1] The sky appears blue because air molecules scatter the short wavelengths of sunlight more strongly than the long ones.\n" +
		"[2] Grass is green because its cells contain chlorophyll, which absorbs red and blue light and reflects green.\n\n" +
		"Question: why is the sky blue?"
	docs := Documents([]string{prompt})
	if len(docs) != 2 {
		t.Fatalf("Documents = %q; want 2 documents", docs)
	}
	c := New(Config{})

	bad := "The sky is blue because of dust in the upper atmosphere [3]. As the source puts it, " +
		"“dust particles reflect blue light back toward the ground all day long.” Grass is green [2]."
	score, fs := c.Check(docs, bad)
	checkFindings(t, bad, score, fs)
	want := []string{
		TypeCitation + ":3",
		TypeQuote + ":dust particles reflect blue light back toward the ground all day long.",
	}
	if g := got(bad, fs); !slices.Equal(g, want) {
		t.Errorf("hallucinated answer: findings %q; want %q", g, want)
	}
	// Claims: citations [3] (bad) and [2] (good), the quote (bad).
	if wantScore := (WeightCitation + WeightQuote) / (2*WeightCitation + WeightQuote); !near(score, wantScore) || !c.Exceeds(score) {
		t.Errorf("hallucinated answer: score %v; want %v, exceeding the threshold", score, wantScore)
	}

	good := "The sky looks blue [1]: “air molecules scatter the short wavelengths of sunlight more strongly " +
		"than the long ones.” Grass is green because of chlorophyll [2], which \"absorbs red and blue light\" [1, 2]."
	score, fs = c.Check(docs, good)
	checkFindings(t, good, score, fs)
	if len(fs) != 0 || score != 0 || c.Exceeds(score) {
		t.Errorf("faithful answer: score %v, findings %q; want none", score, got(good, fs))
	}

	// The engine's adversarial case 30 as written there.
	docs = Documents([]string{"Context:\n[1] The sky is blue.\n[2] Grass is green.\nQuestion: what color is the sky?"})
	score, fs = c.Check(docs, "The sky is red [3].")
	if g := got("The sky is red [3].", fs); !slices.Equal(g, []string{TypeCitation + ":3"}) || score != 1 {
		t.Errorf("engine case 30: score %v, findings %q; want the citation, score 1", score, g)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestNoContext(t *testing.T) {
	score, fs := New(Config{}).Check(nil, "It cost $5 million [4].")
	if score != 0 || fs != nil {
		t.Errorf("Check(nil, ...) = %v, %v; want 0, nil", score, fs)
	}
}

func TestNumbers(t *testing.T) {
	c := New(Config{CheckNumbers: true})
	for _, test := range []struct {
		doc, answer string
		want        []string // unsupported mentions
	}{
		{"Revenue was 1,000 units.", "They sold 1000 units.", nil},
		{"Revenue was 1000 units.", "They sold 1,000 units and 1,001 returns.", []string{"1,001"}},
		{"Growth was 5 percent.", "Growth was 5%.", nil},
		{"Growth was 5 per cent.", "Growth was 5 %.", nil},
		{"Growth was 5%.", "Growth was 6%.", []string{"6%"}},
		{"The deal was worth 1,200,000 dollars.", "The deal was worth $1.2M, or 1.2 million.", nil},
		{"The deal was worth $1,234,567.", "The deal was worth about $1.2 million.", nil},
		{"The deal was worth $1,200,000.", "The deal was worth $1.3M.", []string{"$1.3M"}},
		{"Churn fell to 12.34%.", "Churn fell to 12.3% (about 12%).", nil},
		{"Churn fell to 12.34%.", "Churn fell to 13%.", []string{"13%"}},
		{"The limit is 10,000 requests.", "The limit is 10k requests, i.e. 10K.", nil},
		{"It has 3 billion parameters.", "It has 3B parameters.", nil},
		{"Total: 1.000.000 EUR.", "Total: 1,000,000 euros.", nil},
		{"The refund window is thirty days; twelve percent are late.", "Refunds within 30 days; 12% are late.", nil},
		{"The refund window is 30 days.", "The refund window is 3 days.", []string{"3"}},
		{"Founded in 2024.", "Founded in 2023.", []string{"2023"}},
		{"Released 2024-03-05.", "Released on March 5, 2024, then on 5 March 2024 and 03/05/2024.", nil},
		{"Released March 5th, 2024.", "Released 2024-03-05, in March 2024, on March 5, in 2024.", nil},
		{"Released March 5th, 2024.", "Released March 6, 2024.", []string{"March 6, 2024"}},
		{"Released 2024-03-05.", "Released in April 2024.", []string{"April 2024"}},
		{"Opens at 10:30.", "Opens at 10:30, not 11:30.", []string{"11:30"}},
		{"Requires version 1.2.3.", "Requires 1.2.3 or 1.2.4.", []string{"1.2.4"}},
		{"A report.", "The 1st and 3rd items, not the 21st.", []string{"21st"}},
		{"A report.", "Steps:\n1. Open it\n2) Close it\n## 3. Done", nil},
		{"A report.", "Step 2 is easy, option 3 too (#4); step 12 is not.", []string{"12"}},
		{"A report.", "Either (1) wait or (2) leave, within (3 days).", []string{"3"}},
		{"Population: 1\u202f250\u202f000; debt 2.5 bn.", "Population 1,250,000 and debt of 2,500 million (2.5 billion).", nil},
		{"A report.", "GPT-4 and COVID-19 on x86; see `port 8080` and https://ex.com/a/123.", []string{TypeURL}},
		{"Nothing here.", "```\nfor i := 0; i < 100; i++ {}\n```\nDone.", nil},
		{"Priced at USD 40.", "Priced at $40.", nil},
		{"Call 555-0100.", "Call 555-0100 or 555-0199.", []string{"0199"}},
	} {
		t.Run(test.answer, func(t *testing.T) {
			c := c
			if strings.Contains(test.answer, "https://") {
				c = New(Config{CheckNumbers: true, CheckCitations: true})
			}
			score, fs := c.Check([]string{test.doc}, test.answer)
			checkFindings(t, test.answer, score, fs)
			var g []string
			for _, f := range fs {
				if f.Type == TypeNumber {
					g = append(g, test.answer[f.Start:f.End])
				} else {
					g = append(g, f.Type)
				}
			}
			if !slices.Equal(g, test.want) {
				t.Errorf("Check(%q, %q): unsupported %q; want %q", test.doc, test.answer, g, test.want)
			}
		})
	}
}

func TestQuotes(t *testing.T) {
	doc := "The committee concluded that the new bridge will not open before the spring of next year, " +
		"citing delays in the delivery of steel. Café owners nearby don't expect customers until then.\n" +
		"Die Brücke wird „frühestens im Frühjahr“ eröffnet, sagte die Sprecherin gestern in Berlin."
	c := New(Config{CheckQuotes: true})
	for _, test := range []struct {
		answer string
		want   []string
	}{
		// Straight, curly and guillemet quotes, case and punctuation.
		{`They said "the new bridge will not open before the spring of next year".`, nil},
		{"They said “The New Bridge will not open before the Spring of next year…”", nil},
		{"They said «the new bridge will not open before the spring».", nil},
		{"Owners say: “cafe owners nearby don’t expect customers until then.”", nil},
		{"Owners say: “ＣＡＦÉ owners nearby don't expect customers”", nil},
		{"Sie sagte: „Die Brücke wird frühestens im Frühjahr eröffnet“.", nil},
		{"Sie sagte: „Die Brücke wird im Sommer eröffnet“.", []string{"Die Brücke wird im Sommer eröffnet"}},
		{"Sie sagte: „die Brücke wird „frühestens im Frühjahr“ eröffnet, sagte die Sprecherin“.", nil},
		// One word changed in a 15-word quote: tolerated; two: not.
		{`"the committee concluded that the new bridge will not open before the summer of next year, citing"`, nil},
		{`"the committee concluded that the old bridge will not open before the summer of next year, citing"`,
			[]string{"the committee concluded that the old bridge will not open before the summer of next year, citing"}},
		// One word added or dropped.
		{`"the committee firmly concluded that the new bridge will not open before the spring of next year"`, nil},
		{`"the committee concluded that the bridge will not open before the spring of next year"`, nil},
		// Short quotes differ word for word.
		{`"the new bridge will open"`, []string{"the new bridge will open"}},
		// Reordered words are not the same sentence.
		{`"next year of spring the before open not will bridge new the"`, []string{"next year of spring the before open not will bridge new the"}},
		// Fewer than five words: not checked.
		{`It is a "brand new bridge".`, nil},
		// Ellipses and bracketed insertions split the quote.
		{`"The committee concluded [...] the new bridge will not open before the spring"`, nil},
		{`"The committee concluded... citing delays in the delivery of steel"`, nil},
		{`"The committee concluded ... citing delays in the delivery of wood"`, []string{"The committee concluded ... citing delays in the delivery of wood"}},
		{`"[The] committee concluded that the [proposed] bridge will not open"`, nil},
		// Blockquotes.
		{"As reported:\n> The committee concluded that the new bridge\n> will not open before the spring of next year.\n\nSo, wait.", nil},
		{"As reported:\n> The mayor promised the bridge would open in May.\n\nSo, wait.",
			[]string{"The mayor promised the bridge would open in May."}},
		// Citations, code and links inside a quote.
		{"“The committee concluded [1] that the new bridge will not open” [2].", nil},
		{"> The committee concluded that the `new bridge` will not open (https://x.example).", nil},
		{"> The mayor said the `new bridge` will open soon (https://x.example).", []string{"The mayor said the `new bridge` will open soon (https://x.example)."}},
		{"“The committee concluded that the `new bridge` will not open”.", nil},
		// Asides are not quotations.
		{"> **Note:** the mayor promised the bridge would open in May.\n\n> [!TIP]\n> Check the schedule every single week.", nil},
		// A quote mark without its closing one in the paragraph.
		{"He said \"the mayor promised it would open in May.\n\nAnd later\" it did.", nil},
		// Quotes in code are not quotations.
		{"Run `echo \"the mayor promised it would open in May\"` now.", nil},
	} {
		t.Run(test.answer, func(t *testing.T) {
			score, fs := c.Check([]string{doc}, test.answer)
			checkFindings(t, test.answer, score, fs)
			var g []string
			for _, f := range fs {
				if f.Type != TypeQuote {
					t.Errorf("unexpected finding %s", f.Type)
				}
				g = append(g, test.answer[f.Start:f.End])
			}
			if !slices.Equal(g, test.want) {
				t.Errorf("Check(%q): unsupported quotes %q; want %q", test.answer, g, test.want)
			}
		})
	}
}

func TestCitations(t *testing.T) {
	docs := []string{"one https://ex.com/[3]", "two"}
	c := New(Config{CheckCitations: true})
	for _, test := range []struct {
		answer string
		want   []string // out-of-range numbers
	}{
		{"Fine [1][2], [1, 2], [1-2], [^2], (Source 1), (Docs 1 and 2), 【2†source】, blue^1.", nil},
		{"Bad [3].", []string{"3"}},
		{"Bad [0] and [1, 3] and [2–4].", []string{"0", "3", "4"}},
		{"Bad [^3], blue^3, blue.^4, (Source 5), (see Document 6, p. 2), 【7†source】, [Doc 8], [Source: 9].", []string{"3", "3", "4", "5", "6", "7", "8", "9"}},
		{"As Document 3 shows, see Source 4.", []string{"3", "4"}},
		// Not citations: math, years, prose, code, links.
		{"x^3 = 2^10 = (a+b)^5; in [2023] [see 3] (3) [3 points] `a[3]` https://ex.com/[3]", nil},
		{"```\nlist[3]\n```\n[1]", nil},
	} {
		t.Run(test.answer, func(t *testing.T) {
			score, fs := c.Check(docs, test.answer)
			checkFindings(t, test.answer, score, fs)
			var g []string
			for _, f := range fs {
				if f.Type != TypeCitation {
					t.Errorf("unexpected finding %s", f.Type)
				}
				g = append(g, test.answer[f.Start:f.End])
			}
			if !slices.Equal(g, test.want) {
				t.Errorf("Check(%q): out of range %q; want %q", test.answer, g, test.want)
			}
		})
	}
}

func TestLinks(t *testing.T) {
	docs := []string{"See https://docs.example.com/guide/setup for setup, or write to help@example.com."}
	c := New(Config{CheckCitations: true})
	answer := "See http://docs.example.com/guide/setup/ (or www.docs.example.com/guide/setup), " +
		"https://docs.example.com/guide/teardown, and help@example.com or sales@example.com."
	score, fs := c.Check(docs, answer)
	checkFindings(t, answer, score, fs)
	want := []string{TypeURL + ":https://docs.example.com/guide/teardown", TypeURL + ":sales@example.com"}
	if g := got(answer, fs); !slices.Equal(g, want) {
		t.Errorf("findings %q; want %q", g, want)
	}
}

func TestNames(t *testing.T) {
	docs := []string{"The Bank of Lisbon lent money to Acme Holdings in Porto."}
	c := New(Config{CheckNames: true})
	for _, test := range []struct {
		answer string
		want   []string
	}{
		{"The Bank of Lisbon lent to Acme Holdings. Yesterday Acme Holdings repaid it.", nil},
		{"The Bank of Madrid lent to Acme Holdings.", []string{"Bank of Madrid"}},
		{"Acme Holdings hired John Smith.", []string{"John Smith"}},
		{"# Key Findings\nAcme Holdings paid.", nil},
	} {
		score, fs := c.Check(docs, test.answer)
		checkFindings(t, test.answer, score, fs)
		var g []string
		for _, f := range fs {
			g = append(g, test.answer[f.Start:f.End])
		}
		if !slices.Equal(g, test.want) {
			t.Errorf("Check(%q): names %q; want %q", test.answer, g, test.want)
		}
	}
	// Off by default.
	if _, fs := New(Config{}).Check(docs, "John Smith said so."); len(fs) != 0 {
		t.Errorf("names checked by default: %v", fs)
	}
}

func TestScore(t *testing.T) {
	docs := []string{"It costs $40 and ships in 3 days.", "Returns take 14 days."}
	c := New(Config{})
	answer := "It costs $40 [1], ships in 5 days [1] and returns take 14 days [4]."
	score, fs := c.Check(docs, answer)
	checkFindings(t, answer, score, fs)
	// Numbers: $40 ok, 5 bad, 14 ok. Citations: [1] ok twice, [4] bad.
	want := (WeightNumber + WeightCitation) / (3*WeightNumber + 3*WeightCitation)
	if !near(score, want) {
		t.Errorf("score %v; want %v", score, want)
	}
	if g := got(answer, fs); !slices.Equal(g, []string{TypeNumber + ":5", TypeCitation + ":4"}) {
		t.Errorf("findings %q", g)
	}
	for _, f := range fs {
		if w := map[string]float64{TypeNumber: WeightNumber, TypeCitation: WeightCitation}[f.Type]; f.Score != w {
			t.Errorf("%s: Score %v; want %v", f.Type, f.Score, w)
		}
	}
	if s, fs := c.Check(docs, "Thanks for asking, happy to help."); s != 0 || len(fs) != 0 {
		t.Errorf("no claims: %v %v", s, fs)
	}
}

func TestConfig(t *testing.T) {
	docs := []string{"one"}
	answer := `It was 7 "quite a different sentence than the one" [2].`
	for _, test := range []struct {
		cfg  Config
		want []string
	}{
		{Config{}, []string{TypeNumber, TypeQuote, TypeCitation}},
		{Config{CheckNumbers: true}, []string{TypeNumber}},
		{Config{CheckQuotes: true, CheckCitations: true}, []string{TypeQuote, TypeCitation}},
		{Config{CheckNames: true}, nil},
	} {
		_, fs := New(test.cfg).Check(docs, answer)
		var g []string
		for _, f := range fs {
			g = append(g, f.Type)
		}
		if !slices.Equal(g, test.want) {
			t.Errorf("%+v: findings %q; want %q", test.cfg, g, test.want)
		}
	}
	c := New(Config{MaxUnsupportedRatio: 0.5})
	if c.Exceeds(0.5) || !c.Exceeds(0.51) {
		t.Error("Exceeds does not follow MaxUnsupportedRatio")
	}
	if New(Config{}).Config().MaxUnsupportedRatio != DefaultMaxUnsupportedRatio {
		t.Error("default ratio not set")
	}
	if err := (Config{MaxUnsupportedRatio: 2}).Validate(); err == nil {
		t.Error("Validate accepted a ratio of 2")
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("Validate(zero) = %v", err)
	}
}

func TestExtra(t *testing.T) {
	c := New(Config{})
	answer := "You asked about 42 widgets; the price is $3 each [1]."
	_, fs := c.Check([]string{"Widgets cost $3."}, answer)
	if g := got(answer, fs); !slices.Equal(g, []string{TypeNumber + ":42"}) {
		t.Errorf("without the question: %q", g)
	}
	_, fs = c.CheckInput(Input{Documents: []string{"Widgets cost $3."}, Extra: []string{"How much are 42 widgets?"}, Answer: answer})
	if len(fs) != 0 {
		t.Errorf("with the question: %q", got(answer, fs))
	}
	// Extra texts are not citable.
	answer = "Widgets cost $3 [2]."
	_, fs = c.CheckInput(Input{Documents: []string{"Widgets cost $3."}, Extra: []string{"How much?"}, Answer: answer})
	if g := got(answer, fs); !slices.Equal(g, []string{TypeCitation + ":2"}) {
		t.Errorf("citing an extra text: %q", g)
	}
}

func TestLimits(t *testing.T) {
	c := New(Config{MaxContextBytes: 64, MaxAnswerBytes: 40})
	doc := strings.Repeat("filler ", 20) + "The price is $99."
	prefix := "The price is $99 and the fee is $5, "
	prefix += strings.Repeat("x", 39-len(prefix))
	answer := prefix + "é unchecked $77." // é straddles the cut at 40
	score, fs := c.Check([]string{doc}, answer)
	checkFindings(t, answer, score, fs)
	g := got(answer, fs)
	want := []string{
		TypeScanLimit + ":" + answer,        // context cut: $99 is not seen
		TypeNumber + ":$99",                 //
		TypeNumber + ":$5",                  //
		TypeScanLimit + ":é unchecked $77.", // the answer's tail (cut before é)
	}
	if !slices.Equal(g, want) {
		t.Errorf("findings %q; want %q", g, want)
	}

	// Many unsupported numbers: findings capped, all counted.
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, "%d.5 ", 100+i)
	}
	score, fs = New(Config{}).Check([]string{"none"}, sb.String())
	if len(fs) != maxFindings || score != 1 {
		t.Errorf("%d findings, score %v; want %d, 1", len(fs), score, maxFindings)
	}
}

// TestQuoteBudget: past the work budget a quote is reported as a scan
// limit, not as unsupported.
func TestQuoteBudget(t *testing.T) {
	m := &matcher{ids: []int32{0, 1, 2, 3, 4, 5}, segs: []int{6}, need: make([]int32, 6), have: make([]int32, 6), work: 3}
	if _, ok := m.find([]int32{0, 1, 2, 3, 4}, 5); ok {
		t.Error("find ignored its budget")
	}
	m.work = 1000
	if found, ok := m.find([]int32{1, 2, 3, 4, 5}, 5); !found || !ok {
		t.Error("find failed with budget")
	}
}

// TestConcurrent runs checks in parallel (for -race): results match the
// sequential ones.
func TestConcurrent(t *testing.T) {
	c := New(Config{CheckNumbers: true, CheckQuotes: true, CheckCitations: true, CheckNames: true})
	wantScore, wantFs := c.Check(benchContext, benchAnswer)
	if len(wantFs) == 0 {
		t.Fatal("the benchmark answer has no findings")
	}
	done := make(chan error)
	for g := range 8 {
		go func() {
			var err error
			for range 20 {
				ctx, answer := benchContext, benchAnswer
				if g%2 == 1 {
					ctx, answer = []string{"Other text, 42 units."}, "It was 42 units [1]."
				}
				score, fs := c.Check(ctx, answer)
				if g%2 == 0 && (score != wantScore || !slices.Equal(fs, wantFs)) {
					err = fmt.Errorf("goroutine %d: %v %v; want %v %v", g, score, fs, wantScore, wantFs)
				}
				if g%2 == 1 && (score != 0 || len(fs) != 0) {
					err = fmt.Errorf("goroutine %d: %v %v; want none", g, score, fs)
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestSubtract(t *testing.T) {
	for _, test := range []struct {
		spans, cut, want []span
	}{
		{[]span{{0, 10}}, nil, []span{{0, 10}}},
		{[]span{{0, 10}}, []span{{2, 4}, {6, 8}}, []span{{0, 2}, {4, 6}, {8, 10}}},
		{[]span{{0, 4}, {6, 10}}, []span{{3, 7}}, []span{{0, 3}, {7, 10}}},
		{[]span{{5, 10}}, []span{{0, 1}, {2, 6}, {9, 20}}, []span{{6, 9}}},
		{[]span{{0, 4}, {6, 10}}, []span{{0, 20}}, nil},
		{[]span{{0, 4}, {6, 10}}, []span{{4, 6}}, []span{{0, 4}, {6, 10}}},
	} {
		if got := subtract(test.spans, test.cut); !slices.Equal(got, test.want) {
			t.Errorf("subtract(%v, %v) = %v; want %v", test.spans, test.cut, got, test.want)
		}
	}
}
