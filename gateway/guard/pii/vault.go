package pii

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"aigw/gateway/guard"
)

// Vault holds one call's reversible redactions: each redacted value gets a
// placeholder such as <CREDIT_CARD_1> (the same value, the same
// placeholder), and Restore puts the values back into the answer. A Vault
// is safe for concurrent use; the zero value is ready. It never prints,
// logs or marshals the values it holds (fmt and slog see only a count).
type Vault struct {
	mu sync.Mutex
	m  *vaultMap
}

// vaultMap is the vault's content; its Format keeps values out of
// fmt's output even when a Vault is printed field by field.
type vaultMap struct {
	byValue map[vaultKey]string // type and value → placeholder
	byPH    map[string]string   // placeholder → value
	// tags are the types seen, each with its placeholder tag and the
	// last number used for that tag (types whose tags are one share it):
	// a call holds a few.
	tags   []typeTag
	maxLen int // longest placeholder
}

type vaultKey struct{ typ, value string }

type typeTag struct {
	typ, tag string
	last     *int // shared by the types of one tag
}

// NewVault returns an empty vault.
func NewVault() *Vault { return &Vault{} }

// Redact replaces each finding in text by its placeholder and returns the
// result. Overlapping findings are merged (the longest names the type);
// findings out of range are ignored. A placeholder that text already
// holds is never handed out, so Restore cannot confuse the two.
func (v *Vault) Redact(text string, fs []guard.Finding) string {
	spans := mergeFindings(text, fs)
	if len(spans) == 0 {
		return text
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = &vaultMap{byValue: map[vaultKey]string{}, byPH: map[string]string{}}
	}
	var b strings.Builder
	b.Grow(len(text))
	at := 0
	for _, sp := range spans {
		b.WriteString(text[at:sp.Start])
		b.WriteString(v.m.placeholder(sp.Type, text[sp.Start:sp.End], text))
		at = sp.End
	}
	b.WriteString(text[at:])
	return b.String()
}

// placeholder returns the placeholder of value (of type typ), making one.
func (m *vaultMap) placeholder(typ, value, text string) string {
	key := vaultKey{typ, value}
	if ph, ok := m.byValue[key]; ok {
		return ph
	}
	tag, last := m.tagOf(typ)
	for {
		*last++
		ph := "<" + tag + "_" + strconv.Itoa(*last) + ">"
		if _, taken := m.byPH[ph]; taken || strings.Contains(text, ph) {
			continue
		}
		m.byValue[key] = ph
		m.byPH[ph] = value
		m.maxLen = max(m.maxLen, len(ph))
		return ph
	}
}

// tagOf returns the placeholder tag of type typ and its counter.
func (m *vaultMap) tagOf(typ string) (string, *int) {
	for _, t := range m.tags {
		if t.typ == typ {
			return t.tag, t.last
		}
	}
	tag := placeholderTag(typ)
	var last *int
	for _, t := range m.tags {
		if t.tag == tag {
			last = t.last
			break
		}
	}
	if last == nil {
		last = new(int)
	}
	m.tags = append(m.tags, typeTag{typ: typ, tag: tag, last: last})
	return tag, last
}

// placeholderTag makes a type name a placeholder tag: A–Z, 0–9 and _
// ("aws-access-key-id" → "AWS_ACCESS_KEY_ID").
func placeholderTag(typ string) string {
	b := []byte(typ)
	for k, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[k] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			b[k] = '_'
		}
	}
	if len(b) == 0 {
		return "PII"
	}
	return string(b)
}

// mergeFindings sorts the valid findings and merges overlapping ones.
func mergeFindings(text string, fs []guard.Finding) []guard.Finding {
	var spans []guard.Finding
	for _, f := range fs {
		if 0 <= f.Start && f.Start < f.End && f.End <= len(text) {
			spans = append(spans, f)
		}
	}
	slices.SortFunc(spans, func(a, b guard.Finding) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return b.End - a.End
	})
	out := spans[:0]
	for _, f := range spans {
		if k := len(out) - 1; k >= 0 && f.Start < out[k].End {
			if f.End-f.Start > out[k].End-out[k].Start {
				out[k].Type = f.Type
			}
			out[k].End = max(out[k].End, f.End)
			continue
		}
		out = append(out, f)
	}
	return out
}

// Restore replaces the vault's placeholders in text by their values.
// Anything else that looks like a placeholder stays as it is.
func (v *Vault) Restore(text string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m.byPH) == 0 || strings.IndexByte(text, '<') < 0 {
		return text
	}
	var b strings.Builder
	at := 0
	for i := 0; i < len(text); {
		k := strings.IndexByte(text[i:], '<')
		if k < 0 {
			break
		}
		i += k
		e := i + 1
		for e < len(text) && e-i < v.m.maxLen && isTagByte(text[e]) {
			e++
		}
		if e < len(text) && text[e] == '>' {
			if val, ok := v.m.byPH[text[i:e+1]]; ok {
				if b.Len() == 0 {
					b.Grow(len(text))
				}
				b.WriteString(text[at:i])
				b.WriteString(val)
				at = e + 1
				i = e + 1
				continue
			}
		}
		i++
	}
	if at == 0 {
		return text
	}
	b.WriteString(text[at:])
	return b.String()
}

func isTagByte(c byte) bool { return 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' }

// Len returns how many values the vault holds.
func (v *Vault) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		return 0
	}
	return len(v.m.byPH)
}

// String shows only how many values the vault holds.
func (v *Vault) String() string { return fmt.Sprintf("pii.Vault{%d values}", v.Len()) }

// GoString shows only how many values the vault holds.
func (v *Vault) GoString() string { return v.String() }

// LogValue logs only how many values the vault holds.
func (v *Vault) LogValue() slog.Value { return slog.GroupValue(slog.Int("values", v.Len())) }

// Format prints nothing of the content.
func (m *vaultMap) Format(f fmt.State, _ rune) { fmt.Fprint(f, "REDACTED") }

// RestoreStream returns a Restorer for a streamed answer.
func (v *Vault) RestoreStream() *Restorer { return &Restorer{v: v} }

// Restorer restores placeholders in a stream of chunks, where a
// placeholder may arrive split across chunks. It is not safe for
// concurrent use (one per stream).
type Restorer struct {
	v    *Vault
	hold string
}

// Write takes the next chunk and returns the restored text that can be
// sent on. It holds back a trailing piece that may be the start of a
// placeholder until the next Write or Flush decides.
func (r *Restorer) Write(chunk string) string {
	text := r.hold + chunk
	r.hold = ""
	cut := r.partialAt(text)
	r.hold = text[cut:]
	return r.v.Restore(text[:cut])
}

// Flush returns what is held back, restored: call it at the end of the
// stream.
func (r *Restorer) Flush() string {
	text := r.hold
	r.hold = ""
	return r.v.Restore(text)
}

// partialAt returns where a trailing unfinished placeholder ("<", "<CRE",
// "<CREDIT_CARD_1") starts in text, or len(text).
func (r *Restorer) partialAt(text string) int {
	k := strings.LastIndexByte(text, '<')
	if k < 0 {
		return len(text)
	}
	r.v.mu.Lock()
	maxLen := 0
	if r.v.m != nil {
		maxLen = r.v.m.maxLen
	}
	r.v.mu.Unlock()
	tail := text[k+1:]
	if len(tail)+2 > maxLen {
		return len(text) // too long to be a placeholder missing its '>'
	}
	for i := 0; i < len(tail); i++ {
		if !isTagByte(tail[i]) {
			return len(text)
		}
	}
	return k
}
