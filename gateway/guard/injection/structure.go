package injection

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"aigw/gateway/guard/textnorm"
)

func isLetterOrDigit(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r)
}

// structure looks for markdown and HTML images that carry data out, HTML
// hidden from the reader with imperative text inside, and Unicode
// characters that carry text nobody sees. signals are the spans in text of
// findings and imperative cues.
func (d *Detector) structure(a *accum, text string, l layer, signals [][2]int) {
	if strings.Contains(text, "](") {
		markdownLinks(a, text, l)
	}
	if strings.IndexByte(text, '<') >= 0 {
		htmlImages(a, text, l)
		hiddenHTML(a, text, l, signals, d.cueIn)
	}
	if i := textnorm.IndexNonASCII(text); i >= 0 {
		d.smuggling(a, text, i, l)
	}
}

// markdownLinks finds ![alt](url) and [text](url) whose URL query carries
// data (case 20).
func markdownLinks(a *accum, text string, l layer) {
	for off := 0; ; {
		i := strings.Index(text[off:], "](")
		if i < 0 {
			return
		}
		i += off
		off = i + 2
		// The opening bracket, on the same line, at most 512 bytes back.
		open := strings.LastIndexByte(text[max(0, i-512):i], '[')
		if open < 0 {
			continue
		}
		open += max(0, i-512)
		if strings.IndexByte(text[open:i], '\n') >= 0 {
			continue
		}
		image := open > 0 && text[open-1] == '!'
		url := text[i+2:]
		url = strings.TrimLeft(url, " <")
		if end := strings.IndexAny(url, ") >\n\t\""); end >= 0 {
			url = url[:end]
		}
		w := queryWeight(url)
		if w == 0 {
			continue
		}
		start := open
		if image {
			start--
		} else if w < wImageQuery {
			continue // an ordinary query on a link
		} else {
			w = wLinkQuery
		}
		end := i + 2 + len(url)
		if k := strings.IndexByte(text[end:min(len(text), end+8)], ')'); k >= 0 {
			end += k + 1
		}
		rule := "exfil.markdown_image"
		if !image {
			rule = "exfil.markdown_link"
		}
		a.add(l, TypeExfil, rule, w, start, end)
	}
}

// htmlImages finds <img src="url"> whose URL query carries data.
func htmlImages(a *accum, text string, l layer) {
	for off := 0; ; {
		i := indexFold(text[off:], "<img")
		if i < 0 {
			return
		}
		i += off
		off = i + 4
		end := strings.IndexByte(text[i:min(len(text), i+2048)], '>')
		if end < 0 {
			continue
		}
		tag := text[i : i+end+1]
		j := indexFold(tag, "src=")
		if j < 0 {
			continue
		}
		url := strings.TrimLeft(tag[j+4:], "\"' ")
		if k := strings.IndexAny(url, "\"' >"); k >= 0 {
			url = url[:k]
		}
		if w := queryWeight(url); w > 0 {
			a.add(l, TypeExfil, "exfil.html_image", w, i, i+len(tag))
		}
	}
}

// queryWeight rates an absolute URL's query string: wImageQuery if a
// parameter looks like data (a long, encoded or placeholder value, or a
// name such as d, data, secret), wImagePlainQuery for another query, 0
// for no query or a relative URL.
func queryWeight(url string) float64 {
	lower := strings.ToLower(url)
	if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") && !strings.HasPrefix(lower, "//") {
		return 0
	}
	q := strings.IndexByte(url, '?')
	if q < 0 || q == len(url)-1 {
		return 0
	}
	w := 0.0
	for p := range strings.SplitSeq(url[q+1:], "&") {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		w = max(w, wImagePlainQuery)
		if len(v) >= 16 || strings.ContainsAny(v, "{}<>[]$") || strings.Contains(strings.ToLower(v), "%7b") ||
			strings.Contains(strings.ToLower(v), "%3c") || dataKeys[strings.ToLower(k)] {
			return wImageQuery
		}
	}
	return w
}

var dataKeys = map[string]bool{
	"d": true, "data": true, "q": true, "secret": true, "token": true, "key": true, "password": true, "pass": true,
	"pwd": true, "p": true, "c": true, "content": true, "msg": true, "m": true, "text": true, "s": true, "exfil": true,
	"leak": true, "info": true, "payload": true, "conv": true, "history": true, "chat": true, "user": true,
	"email": true, "session": true, "cookie": true, "creds": true, "prompt": true, "memory": true, "x": true,
}

// hiddenHTML finds HTML comments and elements hidden with CSS (case 17).
// A hidden region with a signal or an imperative cue inside weighs
// wHiddenImper; a CSS-hidden one without, wHiddenAlone; a comment
// without, nothing.
func hiddenHTML(a *accum, text string, l layer, signals [][2]int, cueIn func(string) bool) {
	imperative := func(s, e int) bool {
		for _, sg := range signals {
			if sg[0] < e && sg[1] > s {
				return true
			}
		}
		return cueIn(text[s:e])
	}
	for off := 0; ; {
		i := strings.Index(text[off:], "<!--")
		if i < 0 {
			break
		}
		i += off
		end := strings.Index(text[i+4:], "-->")
		stop := len(text)
		if end >= 0 {
			stop = i + 4 + end + 3
		}
		off = stop
		if imperative(i+4, stop) {
			a.add(l, TypeHidden, "hidden.html_comment", wHiddenImper, i, stop)
		}
	}
	// Tags hide text: none without a '<' (most texts), and only with a
	// style or the hidden attribute somewhere. (That search waits for the
	// first tag with attributes, the only kind hiddenStyle can find hidden:
	// a text whose only tags have none, such as PII placeholders, costs no
	// search for the two words.)
	words := -1 // 1: "style" or "hidden" is in text; -1: not searched yet
	for off := 0; off < len(text); {
		i := strings.IndexByte(text[off:], '<')
		if i < 0 {
			return
		}
		i += off
		off = i + 1
		if i+1 >= len(text) || !isASCIILetter(text[i+1]) {
			continue
		}
		end := strings.IndexByte(text[i:min(len(text), i+1024)], '>')
		if end < 0 {
			continue
		}
		tag := text[i+1 : i+end]
		name := tag
		if k := strings.IndexAny(tag, " \t\n/"); k >= 0 {
			name = tag[:k]
		}
		if len(name) == len(tag) {
			continue // no attributes: hiddenStyle("") is false
		}
		if words < 0 {
			words = 0
			if indexFold(text, "style") >= 0 || indexFold(text, "hidden") >= 0 {
				words = 1
			}
		}
		if words == 0 {
			return
		}
		if !hiddenStyle(tag[len(name):]) {
			continue
		}
		body := i + end + 1
		stop := len(text)
		if k := indexFold(text[body:min(len(text), body+maxRunBytes)], "</"+name); k >= 0 {
			stop = body + k
		}
		w := wHiddenAlone
		if imperative(body, stop) {
			w = wHiddenImper
		}
		a.add(l, TypeHidden, "hidden.css", w, i, stop)
		off = stop
	}
}

// hiddenStyle says that a tag's attributes hide it.
func hiddenStyle(attrs string) bool {
	var b strings.Builder
	for i := 0; i < len(attrs); i++ {
		c := attrs[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\'':
			if b.Len() > 0 && b.String()[b.Len()-1] != ' ' {
				b.WriteByte(' ')
			}
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	s := strings.ReplaceAll(b.String(), ": ", ":")
	s = strings.ReplaceAll(s, " :", ":")
	if strings.Contains(s, "display:none") || strings.Contains(s, "visibility:hidden") ||
		zeroValue(s, "font-size:") || zeroValue(s, "opacity:") || zeroValue(s, "max-height:") && strings.Contains(s, "overflow:hidden") ||
		strings.Contains(s, "left:-9999") || strings.Contains(s, "text-indent:-9999") || strings.Contains(s, "top:-9999") {
		return true
	}
	if s == "hidden" || strings.HasPrefix(s, "hidden ") || strings.Contains(s, " hidden") && !strings.Contains(s, "overflow:hidden") && !strings.Contains(s, "aria-hidden") {
		return true
	}
	// White on white.
	return white(s, "color:") && (white(s, "background-color:") || white(s, "background:"))
}

// zeroValue says that property (e.g. "opacity:") is set to 0.
func zeroValue(s, property string) bool {
	for off := 0; ; {
		i := strings.Index(s[off:], property)
		if i < 0 {
			return false
		}
		i += off + len(property)
		off = i
		if i < len(s) && s[i] == '0' && (i+1 == len(s) || s[i+1] != '.' && (s[i+1] < '0' || s[i+1] > '9')) {
			return true
		}
	}
}

// white says that property (e.g. "color:") is white.
func white(s, property string) bool {
	for off := 0; ; {
		i := strings.Index(s[off:], property)
		if i < 0 {
			return false
		}
		if i+off > 0 && s[i+off-1] == '-' && property == "color:" {
			off += i + len(property) // background-color:
			continue
		}
		i += off + len(property)
		off = i
		v := s[i:]
		for _, w := range []string{"#fff;", "#ffffff", "white", "rgb(255,255,255)", "rgba(255,255,255"} {
			if strings.HasPrefix(v, w) {
				return true
			}
		}
		if v == "#fff" || strings.HasPrefix(v, "#fff ") {
			return true
		}
	}
}

func isASCIILetter(c byte) bool {
	return 'a' <= c|0x20 && c|0x20 <= 'z'
}

// indexFold is strings.Index ignoring ASCII case: for an ASCII sub (every
// caller's but the closing tag of a non-ASCII element name), the first i
// such that strings.EqualFold(s[i:i+len(sub)], sub), or -1. Such a window
// of len(sub) bytes folds to sub only if it is ASCII and equal to it but
// for the case of its letters, so the search goes from one occurrence of
// sub's rarest byte (either case) to the next, with IndexByte, and
// compares the bytes around it: a text full of the first byte ("s" of
// "style") costs no comparison per occurrence. Any other sub is anchored
// at its first byte (and that byte's upper case, for a lower-case letter)
// and compared with strings.EqualFold.
func indexFold(s, sub string) int {
	n := len(sub)
	if n == 0 {
		return 0
	}
	if n > len(s) {
		return -1
	}
	// The anchor: sub[p], searched as c0 or c1.
	p, ascii := 0, true
	for k := 0; k < n && ascii; k++ {
		if ascii = sub[k] < utf8.RuneSelf; ascii && byteRarity[sub[k]|asciiFoldBit(sub[k])] < byteRarity[sub[p]|asciiFoldBit(sub[p])] {
			p = k
		}
	}
	equal := asciiEqualFold
	c0, c1 := sub[p], sub[p]
	switch {
	case !ascii:
		p, c0, c1, equal = 0, sub[0], sub[0], strings.EqualFold
		if 'a' <= c0 && c0 <= 'z' {
			c1 = c0 - ('a' - 'A')
		}
	case isASCIILetter(c0):
		c0, c1 = c0|0x20, c0&^0x20
	}
	// Occurrences of the anchor at q in [p, last) start a window at q-p;
	// the next ones of c0 and c1 (-1: none) are each searched again only
	// once passed.
	last := len(s) - n + p + 1
	next0, next1 := -2, -2
	if c1 == c0 {
		next1 = -1
	}
	for i := p; i < last; {
		if next0 != -1 && next0 < i {
			if next0 = strings.IndexByte(s[i:last], c0); next0 >= 0 {
				next0 += i
			}
		}
		if next1 != -1 && next1 < i {
			if next1 = strings.IndexByte(s[i:last], c1); next1 >= 0 {
				next1 += i
			}
		}
		q := next0
		if q < 0 || next1 >= 0 && next1 < q {
			q = next1
		}
		if q < 0 {
			return -1
		}
		if equal(s[q-p:q-p+n], sub) {
			return q - p
		}
		i = q + 1
	}
	return -1
}

// asciiFoldBit is the bit that makes an ASCII letter lower case (0 for
// any other byte).
func asciiFoldBit(c byte) byte {
	if isASCIILetter(c) {
		return 0x20
	}
	return 0
}

// asciiEqualFold says that w equals the ASCII string sub (of the same
// length) but for the case of ASCII letters.
func asciiEqualFold(w, sub string) bool {
	for k := 0; k < len(sub); k++ {
		a, b := w[k], sub[k]
		if a != b && (!isASCIILetter(a) || a|0x20 != b|0x20) {
			return false
		}
	}
	return true
}

// byteRarity ranks bytes by how often they occur in English text and
// markup, rarest lowest: letters by their frequency in English, white
// space and markup punctuation after them.
var byteRarity = func() (t [256]uint8) {
	const common = " etaoinshrdlcumwfgypbvkjxqz" // most frequent first
	for c := range t {
		t[c] = 1 // other bytes: rare
	}
	for k := 0; k < len(common); k++ {
		t[common[k]] = uint8(len(common) + 1 - k)
	}
	return t
}()

// smuggling looks at the layer's text from its first non-ASCII byte from:
// Unicode tag characters (case 14), variation-selector runs, bidi controls
// (case 15) and zero-width characters inside words. Tag and
// variation-selector payloads and right-to-left overrides are decoded.
func (d *Detector) smuggling(a *accum, text string, from int, l layer) {
	var (
		tagStart, tagN = -1, 0
		tagBuf         []byte
		vsStart, vsN   = -1, 0
		vsBuf          []byte
		zw, zwS, zwE   = 0, 0, 0
		prev           rune
		flagSequence   bool
	)
	if from > 0 {
		prev = rune(text[from-1])
	}
	flushTags := func(end int) {
		if tagN >= 2 && !(flagSequence && tagN <= 7) {
			a.add(l, TypeHidden, "hidden.unicode_tags", wTags, tagStart, end)
			if l.depth < maxDepth {
				d.sublayer(a, string(tagBuf), l.child("tags", tagStart, end))
			}
		}
		tagStart, tagN, tagBuf = -1, 0, tagBuf[:0]
	}
	flushVS := func(end int) {
		if vsN >= 4 {
			a.add(l, TypeHidden, "hidden.variation_selectors", wVarSel, vsStart, end)
			if l.depth < maxDepth && printable(vsBuf) {
				d.sublayer(a, string(vsBuf), l.child("variation_selectors", vsStart, end))
			}
		}
		vsStart, vsN, vsBuf = -1, 0, vsBuf[:0]
	}
	for i, r := range text[from:] {
		i += from
		switch {
		case 0xE0000 <= r && r <= 0xE007F:
			if tagN == 0 {
				tagStart = i
				flagSequence = prev == 0x1F3F4
			}
			tagN++
			if 0xE0020 <= r && r <= 0xE007E && len(tagBuf) < maxRunBytes {
				tagBuf = append(tagBuf, byte(r-0xE0000))
			}
		case 0xFE00 <= r && r <= 0xFE0F || 0xE0100 <= r && r <= 0xE01EF:
			if vsN == 0 {
				vsStart = i
			}
			vsN++
			if len(vsBuf) < maxRunBytes {
				if r <= 0xFE0F {
					vsBuf = append(vsBuf, byte(r-0xFE00))
				} else {
					vsBuf = append(vsBuf, byte(r-0xE0100+16))
				}
			}
		default:
			if tagN > 0 {
				flushTags(i)
			}
			if vsN > 0 {
				flushVS(i)
			}
			switch r {
			case 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069:
				end := len(text)
				if k := strings.IndexAny(text[i:], "\u202C\u2069\n"); k >= 0 {
					end = i + k
				}
				if r != 0x202C && r != 0x2069 {
					a.add(l, TypeHidden, "hidden.bidi", wBidi, i, end)
					if r == 0x202E && l.depth < maxDepth {
						// Right-to-left override: people read the run reversed.
						d.sublayer(a, reverse(text[i+utf8.RuneLen(r):end]), l.child("bidi", i, end))
					}
				}
			case 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD:
				if prev < utf8.RuneSelf && isASCIILetter(byte(prev)) {
					if n := i + utf8.RuneLen(r); n < len(text) && isASCIILetter(text[n]) {
						if zw == 0 {
							zwS = i
						}
						zw++
						zwE = n
					}
				}
			}
		}
		prev = r
	}
	if tagN > 0 {
		flushTags(len(text))
	}
	if vsN > 0 {
		flushVS(len(text))
	}
	if zw >= 2 {
		a.add(l, TypeHidden, "hidden.zero_width", wZeroWidth, zwS, zwE)
	}
}

func reverse(s string) string {
	rs := []rune(s)
	slices.Reverse(rs)
	return string(rs)
}
