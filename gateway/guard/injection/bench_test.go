package injection

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

func BenchmarkScan(b *testing.B) {
	d := New(Config{})
	for _, in := range []struct{ name, text string }{
		{"ascii4K", prompt4K},
		{"attack4K", prompt4K[:4096-len(attack)-len(b64(attack))-2] + " " + attack + " " + b64(attack)},
	} {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.text)))
			for b.Loop() {
				d.Scan(in.text, nil)
			}
		})
	}
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		New(Config{})
	}
}
