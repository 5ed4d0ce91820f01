package grounding

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// benchContext is 8 KiB of retrieved passages: eight numbered documents of
// prose with figures, dates, names and links.
var benchContext = func() []string {
	var docs []string
	for d := range 8 {
		var sb strings.Builder
		for k := 0; sb.Len() < 1000; k++ {
			fmt.Fprintf(&sb, "In fiscal %d the Northwind Trading division %d reported revenue of $%d.%dM, "+
				"up %d.%d%% on the prior year, with %d,%03d active customers as of March %d, %d. ",
				2015+k, d+1, 10+d*3+k, k%10, 2+k%7, d%10, 10+k, 125*d%1000, 1+k%28, 2015+k)
			fmt.Fprintf(&sb, "The board noted that “supply costs rose faster than prices in every region except the north”. ")
			fmt.Fprintf(&sb, "Details: https://reports.example.com/%d/%d. ", d, k)
		}
		docs = append(docs, cut(sb.String(), 1024))
	}
	return docs
}()

// benchAnswer is a 4 KiB answer citing the documents, quoting them and
// repeating their figures, with a few unsupported ones.
var benchAnswer = func() string {
	var sb strings.Builder
	for k := 0; sb.Len() < 4096; k++ {
		d := k % 8
		fmt.Fprintf(&sb, "- In fiscal %d, the Northwind Trading division %d reported revenue of $%d.%d million [%d], "+
			"up %d.%d%% [%d]; as the board put it, “supply costs rose faster than prices in every region except the north” [%d]. ",
			2015+k%2, d+1, 10+d*3+k%2, k%2%10, d+1, 2+k%2%7, d%10, d+1, (d+1)%10)
		fmt.Fprintf(&sb, "It had %d,%03d customers on %d March %d (see https://reports.example.com/%d/%d).\n",
			10+k%2, 125*d%1000, 1+k%2, 2015+k%2, d, k%2)
		if k%4 == 3 {
			// Unsupported: a figure, a citation and a quote.
			fmt.Fprintf(&sb, "Margins reached %d.9%% [%d], and “prices rose faster than costs in the north” [1].\n", k, 9+k%3)
		}
	}
	return cut(sb.String(), 4096)
}()

func cut(s string, n int) string {
	s = s[:min(n, len(s))]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// BenchmarkCheck: a 4 KiB answer against 8 KiB of context, all checks
// (names too in "names").
func BenchmarkCheck(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"default", Config{}},
		{"names", Config{CheckNumbers: true, CheckQuotes: true, CheckCitations: true, CheckNames: true}},
		{"numbers", Config{CheckNumbers: true}},
		{"quotes", Config{CheckQuotes: true}},
		{"citations", Config{CheckCitations: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := New(bc.cfg)
			score, fs := c.Check(benchContext, benchAnswer)
			b.Logf("score %.2f, %d findings", score, len(fs))
			b.SetBytes(int64(len(benchAnswer)))
			b.ReportAllocs()
			for b.Loop() {
				c.Check(benchContext, benchAnswer)
			}
		})
	}
}

// BenchmarkWorstCase: 256 KiB answers built to be slow (every character a
// quote mark, bracket, link start, capitalized word or digit) against 1
// MiB of context.
func BenchmarkWorstCase(b *testing.B) {
	ctx := []string{strings.Repeat("The Quick brown fox 1,234 “jumps over the lazy dog” [1] ", 1<<20/56)}
	c := New(Config{CheckNumbers: true, CheckQuotes: true, CheckCitations: true, CheckNames: true})
	for _, bc := range []struct{ name, unit string }{
		{"quotes", "“a b c d e f ”"},
		{"quotes-known-words", "“brown fox jumps over the lazy” "},
		{"open-quotes", "“\" «"},
		{"names", "Quick Brown Fox Lazy Dog "},
		{"numbers", "1,234.5 $6M 7% 2024-01-02 March 3, 2020 "},
		{"links", "https://x.example/a www.y.example a@b.example "},
		{"brackets", "[1, 2-3] (Source 4) ^5 [[[ (((( "},
		{"backticks", "` `` ``` "},
		{"tags", "<doc id=1> <document "},
	} {
		answer := strings.Repeat(bc.unit, 256<<10/len(bc.unit))
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(answer)))
			for b.Loop() {
				c.Check(ctx, answer)
				Documents([]string{answer})
			}
		})
	}
}
