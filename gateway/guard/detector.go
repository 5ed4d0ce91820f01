// Package guard holds the contract of the gateway's guardrail detectors:
// a Detector finds things in text and reports them as Findings. Detectors
// live in sub-packages (content, pii, secrets, injection); each is offline,
// allocation-light and safe for concurrent use. Package guard/engine applies
// tenant-scoped policies of checks built on them to a call's input, tool
// results, tool calls and output (streaming too), each decision recorded in
// the ledger.
package guard

// Finding is one thing a detector found in a text.
type Finding struct {
	// Type is what was found: an entity ("CREDIT_CARD", "US_SSN"), a secret
	// rule ("aws-access-key-id"), an injection signal ("instruction_override").
	Type string
	// Start and End are byte offsets in the text given to Scan (the
	// original, not a normalized copy): text[Start:End] is what to redact.
	Start, End int
	// Score is the detector's confidence, 0 to 1.
	Score float64
	// Rule names the pattern or rule that matched, when the detector has
	// several per type (optional).
	Rule string
}

// Detector finds things in text. Implementations are safe for concurrent
// use, keep no reference to text, and never return the matched text itself
// anywhere but through offsets (findings reach the ledger; secrets must not).
type Detector interface {
	// Scan appends what it finds in text to out and returns it.
	Scan(text string, out []Finding) []Finding
}
