package grounding

import (
	"slices"
	"strings"
	"testing"
)

func FuzzCheck(f *testing.F) {
	for _, s := range [][2]string{
		{"[1] The sky is blue.\n[2] Grass is green.", "The sky is red [3]. “The sky is red every single day.”"},
		{"Revenue was $1.2M on 2024-03-05, up 5%.", "Revenue: 1,200,000 (5 percent) on March 5th, 2024; 10:30; v1.2.3; 1.000.000,5"},
		{"<doc id=1>Alpha</doc>", "> quoted block line\n> more text here now\n\n```\ncode \"x\"\n```\n`[9]` ^2 x^2 (Source 9) 【4†a】 https://x.y/z a@b.co"},
		{"Bank of Lisbon", "\"unterminated „quote « nested » “ ... [..] …\" Bank of Madrid Dr. Who"},
		{"", "\xff\xfe 1,00 1,000,0000 12.3.4.5.6 99999999999999999999999999999999999999999999999 $ % [1-] [-1] [1,] ^"},
	} {
		f.Add(s[0], s[1])
	}
	all := New(Config{CheckNumbers: true, CheckQuotes: true, CheckCitations: true, CheckNames: true})
	small := New(Config{CheckNumbers: true, CheckQuotes: true, CheckCitations: true, CheckNames: true, MaxContextBytes: 16, MaxAnswerBytes: 24})
	f.Fuzz(func(t *testing.T, doc, answer string) {
		docs := Documents([]string{doc})
		for _, c := range []*Checker{all, small} {
			score, fs := c.CheckInput(Input{Documents: docs, Extra: []string{doc}, Answer: answer})
			checkFindings(t, answer, score, fs)
			score2, fs2 := c.CheckInput(Input{Documents: docs, Extra: []string{doc}, Answer: answer})
			if score != score2 || !slices.Equal(fs, fs2) {
				t.Fatalf("not deterministic: %v %v vs %v %v", score, fs, score2, fs2)
			}
		}
		// An answer that is the context itself cites and quotes nothing
		// unsupported (its numbers and quotes are the context's own).
		if !strings.ContainsAny(doc, "[]<>^()【") && len(doc) < 4096 {
			_, fs := all.Check([]string{doc}, doc)
			for _, f := range fs {
				if f.Type == TypeNumber || f.Type == TypeURL || f.Type == TypeName {
					t.Fatalf("Check(doc, doc): %s %q unsupported by itself", f.Type, doc[f.Start:f.End])
				}
			}
		}
	})
}

func FuzzDocuments(f *testing.F) {
	f.Add("Context:\n[1] a\n[2] b\nDocument 3: c\n<doc id=4>d</doc><document index=\"5\">e")
	f.Add("<doc")
	f.Add("[1000]\n[1001]")
	f.Fuzz(func(t *testing.T, text string) {
		docs, other := SplitDocuments([]string{text, text})
		if len(docs) > maxDocNumber {
			t.Fatalf("%d documents", len(docs))
		}
		n := 0
		for _, d := range append(docs, other...) {
			n += len(d)
		}
		if n > 2*len(text)+len(docs) {
			t.Fatalf("output (%d bytes) longer than input (%d)", n, 2*len(text))
		}
	})
}
