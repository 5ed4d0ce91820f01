package textnorm

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	tr39 "github.com/mtibben/confusables"
	"golang.org/x/text/unicode/norm"
)

// confusables maps a non-ASCII character to what Options.Confusables turns
// it into: its TR39 skeleton, NFKD, lower-cased, with combining marks (Mn)
// removed, recomposed (NFC). Characters that map to themselves are absent.
// Built on first use (tens of milliseconds; detectors build it in their
// constructors by normalizing their patterns) and read-only afterwards.
//
// TR39 skeletons of lower-case letters are often not Latin (Cyrillic "т"
// → "ᴛ", "к" → "ĸ") while their capitals are ("Т" → "T"); an attacker can
// use either, so each character takes the first of the skeletons of its
// lower case, upper case and itself that is all ASCII, else the skeleton
// of its lower case. Latin small capitals map to their letters.
var (
	confusables     map[rune]string
	confusablesOnce sync.Once
)

func loadConfusables() {
	confusablesOnce.Do(func() { confusables = buildConfusables() })
}

// inTable says whether r gets a table entry: non-ASCII characters of
// planes 0 and 1 (every confusable that survives NFKC), except Hangul
// syllables and CJK ideographs, which are not used to spoof Latin text and
// would only bloat the table.
func inTable(r rune) bool {
	switch {
	case r < utf8.RuneSelf, r > 0x1FFFF,
		0xD800 <= r && r <= 0xDFFF,
		0xAC00 <= r && r <= 0xD7A3,
		0x3400 <= r && r <= 0x4DBF,
		0x4E00 <= r && r <= 0x9FFF:
		return false
	}
	return !Invisible(r)
}

func buildConfusables() map[rune]string {
	// The confusables package exposes only Skeleton, so skeletonize every
	// candidate at once, one per line: NFD and the TR39 table act on each
	// line alone ("\n" is a starter and maps to itself).
	type entry struct {
		r     rune
		first int // index of its first line
		n     int // lines: lower case, upper case, itself (when they differ)
	}
	var (
		sb      strings.Builder
		entries []entry
		lines   int
	)
	add := func(r rune) {
		sb.WriteRune(r)
		sb.WriteByte('\n')
		lines++
	}
	for r := rune(0x80); r <= 0x1FFFF; r++ {
		if !inTable(r) {
			continue
		}
		e := entry{r: r, first: lines}
		lo, up := unicode.ToLower(r), unicode.ToUpper(r)
		add(lo)
		if up != lo {
			add(up)
		}
		if r != lo && r != up {
			add(r)
		}
		e.n = lines - e.first
		entries = append(entries, e)
	}
	skel := strings.Split(tr39.Skeleton(sb.String()), "\n")
	if len(skel) != lines+1 {
		panic("textnorm: confusables skeletons do not line up")
	}
	m := make(map[rune]string, 4096)
	for _, e := range entries {
		out := clean(skel[e.first])
		for k := 1; k < e.n && !isASCII(out); k++ {
			if c := clean(skel[e.first+k]); isASCII(c) {
				out = c
			}
		}
		if out != string(e.r) {
			m[e.r] = out
		}
	}
	// Make the mapping idempotent: map the results again (TR39's
	// prototypes are fixed points, but case folding and dropping marks
	// can land on another entry, as "ϛ" → "σ" → "o").
	for r, v := range m {
		for range 4 {
			var sb strings.Builder
			for _, x := range v {
				if y, ok := m[x]; ok {
					sb.WriteString(y)
				} else {
					sb.WriteRune(x)
				}
			}
			if sb.String() == v {
				break
			}
			v = sb.String()
		}
		m[r] = v
	}
	return m
}

// clean brings a skeleton back to what Normalize outputs (NFKC, lower
// case), drops its combining marks and recomposes it.
func clean(s string) string {
	var buf []byte
	for _, x := range norm.NFKD.String(s) {
		if unicode.Is(unicode.Mn, x) || Invisible(x) {
			continue
		}
		if c, ok := smallCaps[x]; ok {
			x = c
		}
		buf = utf8.AppendRune(buf, fold(x))
	}
	return norm.NFC.String(string(buf))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// smallCaps maps Latin small capitals (and the turned w that TR39 gives
// for Cyrillic "м") to ASCII.
var smallCaps = map[rune]rune{
	'ᴀ': 'a', 'ʙ': 'b', 'ᴄ': 'c', 'ᴅ': 'd', 'ᴇ': 'e', 'ꜰ': 'f', 'ɢ': 'g',
	'ʜ': 'h', 'ɪ': 'i', 'ᴊ': 'j', 'ᴋ': 'k', 'ʟ': 'l', 'ᴍ': 'm', 'ɴ': 'n',
	'ᴏ': 'o', 'ᴘ': 'p', 'ꞯ': 'q', 'ʀ': 'r', 'ꜱ': 's', 'ᴛ': 't', 'ᴜ': 'u',
	'ᴠ': 'v', 'ᴡ': 'w', 'ʏ': 'y', 'ᴢ': 'z', 'ʍ': 'm',
}
