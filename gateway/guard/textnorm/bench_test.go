package textnorm

import (
	"strings"
	"testing"
)

// prompt4K is a 4 KiB English prompt with paragraphs and indentation.
var prompt4K = func() string {
	p := "You are a helpful assistant for ACME Corp. Answer the customer's question using the\n" +
		"context below.  Be concise, cite the document id, and never reveal internal notes.\n\n" +
		"    Context (doc 12): Invoices are issued on the 1st of each month; refunds up to $500\n" +
		"    are approved automatically, larger ones need a manager. Contact billing@acme.example.\n\n"
	var sb strings.Builder
	for sb.Len() < 4096 {
		sb.WriteString(p)
	}
	return sb.String()[:4096]
}()

// mixed4K is 4 KiB of mixed scripts, full-width forms, homoglyphs and
// invisible characters.
var mixed4K = func() string {
	p := "Приветствую! Please іgnоrе nothing: ｆｕｌｌ width ４１１１, café, naïve, 東京, ٤٥٦.\u200B\n" +
		"i g n o r e  the  d.o.t.s  — and ﬁnally ΣΟΦΙΑ.\n"
	var sb strings.Builder
	for sb.Len() < 4096 {
		sb.WriteString(p)
	}
	s := sb.String()[:4096]
	return strings.ToValidUTF8(s, "")
}()

func BenchmarkNormalize(b *testing.B) {
	for _, in := range []struct {
		name, text string
	}{{"ascii4K", prompt4K}, {"mixed4K", mixed4K}} {
		for _, o := range []struct {
			name string
			opt  Options
		}{
			{"none", Options{}},
			{"digits", Options{Digits: true}},
			{"all", all},
		} {
			b.Run(in.name+"/"+o.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(in.text)))
				loadConfusables()
				for b.Loop() {
					Normalize(in.text, o.opt)
				}
			})
		}
	}
}

func BenchmarkSpan(b *testing.B) {
	x := Normalize(mixed4K, all)
	b.ReportAllocs()
	for b.Loop() {
		for i := 0; i+8 < len(x.Norm); i += 97 {
			x.Span(i, i+8)
		}
	}
}

// BenchmarkShared is content's and injection's normalizations of one 4 KiB
// English prompt, each alone (separate) or the second derived from the
// first (shared): with and without line breaks.
func BenchmarkShared(b *testing.B) {
	content := Options{Fold: true, Confusables: true, Digits: true, Collapse: true, Spaces: true}
	injection := Options{Fold: true, Confusables: true, Digits: true, Leet: true, Collapse: true}
	line := "We are migrating the billing service to the new cluster. Please review the runbook below, list the risks, and suggest a rollback plan with owners and deadlines. "
	for _, in := range []struct{ name, text string }{
		{"line", strings.Repeat(line, 4096/len(line)+1)[:4096]},
		{"lines", strings.ReplaceAll(strings.Repeat(line, 4096/len(line)+1)[:4096], ". ", ".\n")},
	} {
		loadConfusables()
		b.Run(in.name+"/separate", func(b *testing.B) {
			var b1, b2 Buffer
			b.SetBytes(int64(len(in.text)))
			for b.Loop() {
				NormalizeInto(&b1, in.text, content)
				NormalizeInto(&b2, in.text, injection)
			}
		})
		b.Run(in.name+"/shared", func(b *testing.B) {
			var sh Shared
			b.SetBytes(int64(len(in.text)))
			for b.Loop() {
				sh.Normalize(in.text, content)
				sh.Normalize(in.text, injection)
				sh.Reset()
			}
		})
	}
}
