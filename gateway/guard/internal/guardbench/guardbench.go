// Package guardbench holds what the guardrail detectors' benchmarks and
// fuzzers share: realistic text (an English agent prompt and mixed-language
// prose) and CPULoop, which reports thread CPU time next to wall time.
package guardbench

import (
	_ "embed"
	"strings"
	"unicode/utf8"
)

var (
	//go:embed prompt.txt
	prompt string
	//go:embed prose.txt
	prose string
)

// Prompt is the English agent prompt fixture.
func Prompt() string { return prompt }

// Text returns n bytes of realistic text: mostly the prompt (as real
// prompts are), with the prose every fourth piece, cut on a character
// boundary.
func Text(n int) string {
	var sb strings.Builder
	for k := 0; sb.Len() < n; k++ {
		if k%4 == 3 {
			sb.WriteString(prose)
		} else {
			sb.WriteString(prompt)
		}
	}
	s := sb.String()[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
