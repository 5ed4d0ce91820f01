package pricing

import "strings"

// Model names as traffic spells them differ from the table's: dated
// snapshots, "-latest" aliases, Bedrock inference profiles and ARNs. The
// tolerant lookup removes only tokens that name a version of the same
// model, never a word that names another model ("-mini", "-lite", "-5"),
// so gpt-4o-mini never resolves to gpt-4o.

// bedrockGeos are the prefixes of Bedrock cross-region inference
// profiles ("us.anthropic.claude-...").
var bedrockGeos = [...]string{"us.", "us-gov.", "eu.", "apac.", "jp.", "au.", "ca.", "global."}

// names returns the forms of model to look up, most specific first: the
// name as given, then the model it designates with the provider's
// decorations removed (Bedrock ARN and inference-profile prefix, Gemini's
// "models/").
func names(kind, model string) []string {
	out := []string{model}
	m := model
	switch kind {
	case "bedrock":
		if strings.HasPrefix(m, "arn:") {
			if i := strings.LastIndexByte(m, '/'); i >= 0 {
				m = m[i+1:]
			}
		}
		for _, g := range bedrockGeos {
			if rest, ok := strings.CutPrefix(m, g); ok && strings.IndexByte(rest, '.') > 0 {
				m = rest
				break
			}
		}
	case "gemini":
		m = strings.TrimPrefix(m, "models/")
	}
	if m != model && m != "" {
		out = append(out, m)
	}
	return out
}

// stages returns name (lower-cased) and each shorter name left by removing
// one more trailing version token, longest first. Version tokens:
// "-latest", dates ("-2024-08-06", "-20250929", "-0613" as MMDD), Gemini
// revisions ("-001"), and for Bedrock (colon true) revisions and context
// variants (":0", ":200k"), removed together with the "-vN" before them.
func stages(name string, colon bool) []string {
	s := strings.ToLower(name)
	out := []string{s}
	for {
		n := trimVersion(s, colon)
		if n == s || n == "" {
			return out
		}
		s = n
		out = append(out, s)
	}
}

// trimVersion removes one trailing version token from s, or returns s.
func trimVersion(s string, colon bool) string {
	if colon {
		if i := strings.LastIndexByte(s, ':'); i > 0 && colonToken(s[i+1:]) {
			s = s[:i]
			if j := strings.LastIndex(s, "-v"); j > 0 && allDigits(s[j+2:]) {
				s = s[:j]
			}
			return s
		}
	}
	if t, ok := strings.CutSuffix(s, "-latest"); ok {
		return t
	}
	i := strings.LastIndexByte(s, '-')
	if i <= 0 {
		return s
	}
	tail := s[i+1:]
	switch {
	case len(tail) == 8 && allDigits(tail) && date(tail[:4], tail[4:6], tail[6:]):
		return s[:i]
	case len(tail) == 4 && allDigits(tail) && date("2000", tail[:2], tail[2:]):
		return s[:i]
	case len(tail) == 3 && allDigits(tail) && tail[0] == '0':
		return s[:i]
	case len(tail) == 2 && allDigits(tail) && len(s) >= 11:
		// "-YYYY-MM-DD": tail is DD.
		d := s[len(s)-11:]
		if d[0] == '-' && d[5] == '-' && d[8] == '-' && allDigits(d[1:5]) && allDigits(d[6:8]) && date(d[1:5], d[6:8], tail) {
			return s[:len(s)-11]
		}
	}
	return s
}

// colonToken reports whether t, after a colon, is a Bedrock revision
// ("0") or context variant ("200k", "1m").
func colonToken(t string) bool {
	t = strings.TrimSuffix(strings.TrimSuffix(t, "k"), "m")
	return t != "" && allDigits(t)
}

// date reports whether year, month and day (digits) form a plausible
// date of this century.
func date(year, month, day string) bool {
	if len(year) != 4 || year[:2] != "20" {
		return false
	}
	m := int(month[0]-'0')*10 + int(month[1]-'0')
	d := int(day[0]-'0')*10 + int(day[1]-'0')
	return m >= 1 && m <= 12 && d >= 1 && d <= 31
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
