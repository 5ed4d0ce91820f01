package secrets

import (
	"aigw/gateway/guard/textnorm"
)

// shadow is the text the detector reads: the original itself when
// normalizing would not change it (the fast path), else its textnorm copy
// (NFKC, invisible characters removed) with the map back.
type shadow struct {
	text string
	nt   *textnorm.Text
}

func newShadow(s string, force bool) shadow {
	if !force && !textnorm.Affects(s) {
		return shadow{text: s}
	}
	t := textnorm.Normalize(s, textnorm.Options{})
	if t.Norm == s {
		return shadow{text: s}
	}
	return shadow{text: t.Norm, nt: &t}
}

// span maps a byte range of sh.text to the original.
func (sh *shadow) span(s, e int) (int, int) {
	if sh.nt == nil {
		return s, e
	}
	return sh.nt.Span(s, e)
}
