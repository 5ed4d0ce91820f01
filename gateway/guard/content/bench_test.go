package content

import (
	"fmt"
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

// benchConfig is 100 phrases (two topics among them) and 10 regexes, none
// of which occurs in prompt4K except "refund" (one phrase).
func benchConfig() Config {
	var phrases []string
	for i := range 80 {
		phrases = append(phrases, fmt.Sprintf("forbidden term %d", i))
	}
	phrases = append(phrases, "refund")
	return Config{
		Phrases: phrases,
		Topics: map[string][]string{
			"weapons": {"bomb", "assault rifle", "explosive", "detonator", "ammunition", "grenade", "napalm", "silencer", "thermite", "pipe bomb"},
			"medical": {"diagnosis", "prescription", "dosage", "overdose", "opioid", "fentanyl", "oxycodone", "chemotherapy", "biopsy"},
		},
		Regexes: []string{
			`acct-\d{6}`, `project\s+(falcon|eagle)`, `ticket #\d{5}`, `confidential\s+draft`, `emp[0-9]{5}`,
			`internal[-_ ]only`, `(?:api|secret)[_-]?key\s*[:=]`, `q[1-4]\s+forecast`, `merger\s+with\s+\w+`, `salary\s+band\s+\d`,
		},
	}
}

func BenchmarkScan(b *testing.B) {
	f := mustNew(b, benchConfig())
	b.Run("ascii4K", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(prompt4K)))
		for b.Loop() {
			f.Scan(prompt4K, nil)
		}
	})
	phrasesOnly := benchConfig()
	phrasesOnly.Regexes = nil
	fp := mustNew(b, phrasesOnly)
	b.Run("ascii4K/phrases", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(prompt4K)))
		for b.Loop() {
			fp.Scan(prompt4K, nil)
		}
	})
}

func BenchmarkNew(b *testing.B) {
	c := benchConfig()
	b.ReportAllocs()
	for b.Loop() {
		mustNew(b, c)
	}
}
