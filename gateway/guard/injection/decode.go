package injection

import (
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"html"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// sublayer analyzes a decoded payload within the budget, and adds an
// encoded_payload finding over its run when it holds any signal.
func (d *Detector) sublayer(a *accum, decoded string, l layer) bool {
	if decoded == "" {
		return false
	}
	if a.layers >= maxLayers || a.budget < len(decoded) {
		if a.refused[1] == 0 {
			a.refused = l.span
		}
		return false
	}
	a.layers++
	a.budget -= len(decoded)
	before := len(a.rules)
	d.analyze(a, decoded, l)
	if len(a.rules) == before {
		return false
	}
	// The run itself: its span is the layer's (fixed) span.
	name := l.name
	if k := strings.LastIndexByte(name, '>'); k >= 0 {
		name = name[k+1:]
	}
	span := l.span
	if !l.fixed {
		span = [2]int{0, len(decoded)} // ROT13 of the original: same offsets
	}
	a.add(layer{fixed: true, span: span}, TypeEncoded, "encoded."+name, wEncodedWithHits, 0, 0)
	return true
}

// decode finds encoded runs in text and analyzes what they decode to.
func (d *Detector) decode(a *accum, text string, l layer, rot13 bool) {
	d.decodeRuns(a, text, l)
	if strings.Contains(text, `\x`) {
		d.decodeEscapes(a, text, l)
	}
	if strings.IndexByte(text, '%') >= 0 || strings.IndexByte(text, '&') >= 0 {
		d.decodeTokens(a, text, l)
	}
	if morseCue(text) {
		d.decodeMorse(a, text, l)
	}
	if rot13 && !l.rot13d {
		c := l
		c.rot13d = true
		c.depth++
		if c.name == "" {
			c.name = "rot13"
		} else {
			c.name += ">rot13"
		}
		// ROT13 keeps offsets: the layer maps to text as the parent does.
		d.sublayer(a, rot13Of(text), c)
	}
	if strings.IndexByte(text, '=') >= 0 && strings.IndexByte(text, '+') >= 0 {
		d.decodeSplit(a, text, l)
	}
}

// morseCue says that text holds ".-", "-." or "..." (in one pass over its
// dots).
func morseCue(text string) bool {
	for i := strings.IndexByte(text, '.'); i >= 0; {
		if i > 0 && text[i-1] == '-' || i+1 < len(text) && (text[i+1] == '-' || text[i+1] == '.' && i+2 < len(text) && text[i+2] == '.') {
			return true
		}
		k := strings.IndexByte(text[i+1:], '.')
		if k < 0 {
			return false
		}
		i += k + 1
	}
	return false
}

// b64Class marks the bytes of base64 (standard and URL-safe) runs.
var b64Class = func() (t [256]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_" {
		t[c] = true
	}
	return t
}()

// minRun is the shortest base64, base32 or hex run decoded.
const minRun = 16

// decodeRuns decodes base64, base32 and hex runs of minRun characters or
// more that decode to mostly printable UTF-8 (so a UUID, a git SHA, or a
// base64 image is left alone).
func (d *Detector) decodeRuns(a *accum, text string, l layer) {
	// A run of minRun or more holds text[p+minRun-1] for the first p at
	// or after the last run's end where it may start: test that byte
	// first, and skip minRun bytes when it is not base64.
	for p := 0; p+minRun <= len(text); {
		q := p + minRun - 1
		if !b64Class[text[q]] {
			p = q + 1
			continue
		}
		i := q
		for i > p && b64Class[text[i-1]] {
			i--
		}
		j := q + 1
		for j < len(text) && b64Class[text[j]] {
			j++
		}
		end := j
		for end < len(text) && end-j < 2 && text[end] == '=' {
			end++
		}
		if j-i >= minRun {
			d.decodeRun(a, text[i:j], l, i, end)
		}
		p = end
		if p == j {
			p++
		}
	}
}

func (d *Detector) decodeRun(a *accum, run string, l layer, s, e int) {
	hexRun, b32, std, url := true, true, false, false
	for i := 0; i < len(run); i++ {
		c := run[i]
		isHex := '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
		hexRun = hexRun && isHex
		b32 = b32 && ('A' <= c && c <= 'Z' || '2' <= c && c <= '7')
		std = std || c == '+' || c == '/'
		url = url || c == '-' || c == '_'
	}
	if std && url {
		return
	}
	try := func(name string, dec func(string) ([]byte, bool)) bool {
		// Test a prefix first: a long binary payload fails fast.
		if len(run) > 512 {
			if p, ok := dec(run[:512]); !ok || !printable(p) {
				return false
			}
		}
		out, ok := dec(run[:min(len(run), maxRunBytes)])
		if !ok || !printable(out) {
			return false
		}
		d.sublayer(a, string(out), l.child(name, s, e))
		return true
	}
	switch {
	case hexRun:
		try("hex", decodeHex)
	case b32:
		if !try("base32", decodeBase32) {
			try("base64", decodeBase64)
		}
	case url:
		try("base64", decodeBase64URL)
	default:
		try("base64", decodeBase64)
	}
}

func decodeHex(s string) ([]byte, bool) {
	s = s[:len(s)&^1]
	b, err := hex.DecodeString(s)
	return b, err == nil
}

func decodeBase64(s string) ([]byte, bool) { return decodeB64(base64.RawStdEncoding, s) }

func decodeBase64URL(s string) ([]byte, bool) { return decodeB64(base64.RawURLEncoding, s) }

func decodeB64(enc *base64.Encoding, s string) ([]byte, bool) {
	if len(s)%4 == 1 {
		s = s[:len(s)-1]
	}
	b, err := enc.DecodeString(s)
	return b, err == nil
}

func decodeBase32(s string) ([]byte, bool) {
	s = s[:len(s)/8*8]
	b, err := base32.StdEncoding.DecodeString(s)
	return b, err == nil && len(b) > 0
}

// printable says that b is mostly text: valid UTF-8 (but for a cut last
// character), nine in ten characters printable, and three in five letters
// or spaces.
func printable(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	n, print, letters := 0, 0, 0
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			if len(b)-i < utf8.UTFMax && !utf8.FullRune(b[i:]) {
				break // cut
			}
			return false
		}
		n++
		if unicode.IsPrint(r) || r == '\n' || r == '\t' || r == '\r' {
			print++
		}
		if unicode.IsLetter(r) || r == ' ' || r == '\n' {
			letters++
		}
		i += size
	}
	return n > 0 && print*10 >= n*9 && letters*5 >= n*3
}

var escapeRun = regexp.MustCompile(`(?:\\x[0-9a-fA-F]{2}){6,}`)

// decodeEscapes decodes runs of \xHH escapes.
func (d *Detector) decodeEscapes(a *accum, text string, l layer) {
	for _, m := range escapeRun.FindAllStringIndex(text, 64) {
		run := text[m[0]:min(m[1], m[0]+4*maxRunBytes)]
		b := make([]byte, 0, len(run)/4)
		for i := 0; i+4 <= len(run); i += 4 {
			v, _ := hex.DecodeString(run[i+2 : i+4])
			b = append(b, v...)
		}
		if printable(b) {
			d.sublayer(a, string(b), l.child("hex", m[0], m[1]))
		}
	}
}

var (
	entityRef = regexp.MustCompile(`&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,31});`)
	urlEscape = regexp.MustCompile(`%[0-9a-fA-F]{2}`)
)

// maxEscapeGap is the most text between two escapes of one cluster.
const maxEscapeGap = 64

// decodeTokens decodes clusters of three or more URL escapes or HTML
// character references (each within maxEscapeGap bytes of the next, on
// one line), with the rest of their line, so that "&#105;&#103;…
// &#97;&#108;&#108; … instructions" reads as a whole.
func (d *Detector) decodeTokens(a *accum, text string, l layer) {
	clusters := func(re *regexp.Regexp, name string, dec func(string) string) {
		ms := re.FindAllStringIndex(text, 4096)
		for i := 0; i < len(ms); {
			j := i + 1
			for j < len(ms) && ms[j][0]-ms[j-1][1] <= maxEscapeGap && strings.IndexByte(text[ms[j-1][1]:ms[j][0]], '\n') < 0 {
				j++
			}
			if j-i >= 3 {
				// The cluster and the rest of its line, on both sides.
				s, e := ms[i][0], ms[j-1][1]
				if k := strings.LastIndexByte(text[max(0, s-256):s], '\n'); k >= 0 {
					s = max(0, s-256) + k + 1
				} else {
					s = max(0, s-256)
				}
				if k := strings.IndexByte(text[e:min(len(text), e+256)], '\n'); k >= 0 {
					e += k
				} else {
					e = min(len(text), e+256)
				}
				for s < len(text) && !utf8.RuneStart(text[s]) {
					s++
				}
				for e < len(text) && !utf8.RuneStart(text[e]) {
					e++
				}
				if e-s <= maxRunBytes {
					if out := dec(text[s:e]); out != text[s:e] && printable([]byte(out)) {
						d.sublayer(a, out, l.child(name, s, e))
					}
				}
			}
			i = j
		}
	}
	if strings.IndexByte(text, '%') >= 0 {
		clusters(urlEscape, "url", urlDecode)
	}
	if strings.IndexByte(text, '&') >= 0 {
		clusters(entityRef, "html", html.UnescapeString)
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// urlDecode decodes %HH escapes and + as a space.
func urlDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			v, _ := hex.DecodeString(s[i+1 : i+3])
			b.WriteByte(v[0])
			i += 2
		case c == '+':
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func rot13Of(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = 'a' + (c-'a'+13)%26
		case 'A' <= c && c <= 'Z':
			b[i] = 'A' + (c-'A'+13)%26
		}
	}
	return string(b)
}

var morse = map[string]byte{
	".-": 'a', "-...": 'b', "-.-.": 'c', "-..": 'd', ".": 'e', "..-.": 'f', "--.": 'g', "....": 'h', "..": 'i',
	".---": 'j', "-.-": 'k', ".-..": 'l', "--": 'm', "-.": 'n', "---": 'o', ".--.": 'p', "--.-": 'q', ".-.": 'r',
	"...": 's', "-": 't', "..-": 'u', "...-": 'v', ".--": 'w', "-..-": 'x', "-.--": 'y', "--..": 'z',
	"-----": '0', ".----": '1', "..---": '2', "...--": '3', "....-": '4', ".....": '5', "-....": '6', "--...": '7',
	"---..": '8', "----.": '9',
}

// decodeMorse decodes runs of Morse code (dots, dashes, spaces, slashes)
// of eight letters or more.
func (d *Detector) decodeMorse(a *accum, text string, l layer) {
	isMorse := func(c byte) bool { return c == '.' || c == '-' || c == ' ' || c == '/' || c == '|' }
	for i := 0; i < len(text); {
		if text[i] != '.' && text[i] != '-' {
			i++
			continue
		}
		j := i
		for j < len(text) && isMorse(text[j]) {
			j++
		}
		run := strings.TrimRight(text[i:j], " /|")
		if len(run) >= 24 {
			var b strings.Builder
			letters, bad := 0, 0
			for w := range strings.FieldsFuncSeq(run, func(r rune) bool { return r == '/' || r == '|' }) {
				if b.Len() > 0 {
					b.WriteByte(' ')
				}
				for code := range strings.FieldsSeq(w) {
					if c, ok := morse[code]; ok {
						b.WriteByte(c)
						letters++
					} else {
						bad++
					}
				}
			}
			if letters >= 8 && bad*5 <= letters {
				d.sublayer(a, b.String(), l.child("morse", i, i+len(run)))
			}
		}
		i = j
	}
}

var (
	assignment = regexp.MustCompile(`\b([A-Za-z]\w{0,15})\s*=\s*["'“]?([^"'”\n;]{1,300})`)
	concat     = regexp.MustCompile(`\b([A-Za-z]\w{0,15})\s*\+\s*([A-Za-z]\w{0,15})(?:\s*\+\s*([A-Za-z]\w{0,15}))?\b`)
)

// decodeSplit reassembles a payload split into variables (case 22): "x =
// 'ign'", "y = 'ore previous…'", then "x + y".
func (d *Detector) decodeSplit(a *accum, text string, l layer) {
	vals := map[string]string{}
	first := -1
	for _, m := range assignment.FindAllStringSubmatchIndex(text, 32) {
		vals[text[m[2]:m[3]]] = strings.TrimRight(text[m[4]:m[5]], " ")
		if first < 0 {
			first = m[0]
		}
	}
	if len(vals) < 2 {
		return
	}
	for _, m := range concat.FindAllStringSubmatchIndex(text, 8) {
		var b strings.Builder
		n := 0
		for k := 2; k+1 < len(m); k += 2 {
			if m[k] < 0 {
				continue
			}
			v, ok := vals[text[m[k]:m[k+1]]]
			if !ok {
				b.Reset()
				break
			}
			b.WriteString(v)
			n++
		}
		if n >= 2 && b.Len() > 0 {
			d.sublayer(a, b.String(), l.child("split", min(first, m[0]), max(m[1], first)))
		}
	}
}
