// Package textnorm builds the normalized shadow copy of a text that
// guardrail detectors match on, with the map back to the original's byte
// offsets, so that a finding is redacted or reported where it really is.
//
// Normalize runs in time and memory linear in the input: one pass, NFKC one
// normalization segment at a time (a segment holds at most 30 combining
// marks, so a flood of marks costs the same per byte as plain text), no
// backtracking. Pure ASCII input that no option changes is returned as is,
// without allocating. The offset map is stored as runs, not per byte, so
// mostly-unchanged text costs a few runs. Inputs must be under 2 GiB.
package textnorm

// Options say which normalizations to apply besides the ones always
// applied (NFKC; removing invisible characters: Cf/Cc/Co/Cn except \t \n \r,
// tag characters U+E0000–E007F, bidi controls, zero-width characters, soft
// hyphens, and the other default-ignorable code points such as variation
// selectors and the combining grapheme joiner). Invalid UTF-8 bytes become
// U+FFFD.
//
// The options apply in this order to each character: NFKC, invisible
// removal, Fold, Spaces, Digits, Confusables, Leet, Collapse.
type Options struct {
	// Fold lowercases (simple case folding).
	Fold bool
	// Confusables maps each character to its TR39 confusable skeleton
	// (Cyrillic "і" → "i"), then drops combining marks (Mn), so that "ï"
	// and "i̇" become "i". It applies to non-ASCII characters only: ASCII
	// letters and digits are never merged ("m" does not become "rn",
	// "1" does not become "l"; that is Leet's job).
	Confusables bool
	// Digits maps every decimal digit (unicode.Nd, e.g. Arabic-Indic) to
	// ASCII 0–9 (NFKC already folds full-width digits).
	Digits bool
	// Leet maps 0→o 1→i 3→e 4→a 5→s 7→t @→a $→s (for phrase matching only).
	Leet bool
	// Collapse removes single separators between single letters
	// ("i g n o r e", "a.l.l", "p-r-e") and collapses runs of white space.
	//
	// A separator is one space or tab, or one punctuation character other
	// than brackets and ? ! # & % < >; letters and digits count as letters.
	// A chain of single letters keeps one separator character: in
	// "a.l.l p-r-e" the space is kept ("all pre"). A run of two or more
	// white-space characters becomes one "\n" if it holds a line break,
	// else one " ".
	Collapse bool
	// Spaces maps every white-space character to " " (so, with Collapse,
	// every run of white space becomes one " ").
	Spaces bool
}

// Text is a normalized copy of a string.
type Text struct {
	// Norm is the normalized text.
	Norm string
	// src is the original (not copied).
	src string
	// runs maps Norm back to src, in order of Norm offsets; nil means the
	// identity (Norm is a prefix of src).
	runs []run
}

// run maps Norm[o:next.o] to the original. A linear run (e < 0) maps
// Norm[o+k] to src[s+k]; any other run was produced as a whole by src[s:e].
type run struct {
	o, s, e int32
}

// Normalize returns the normalized copy of s.
// (Implementation: see normalize.go.)

// Span maps a byte range of Norm to the smallest byte range of the
// original that covers every character that produced it.
// (Implementation: see normalize.go.)
