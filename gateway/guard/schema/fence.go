package schema

import (
	"strings"
)

// StripFence returns the content of a Markdown code fence (``` or ~~~,
// with or without an info string such as "json") that wraps the whole
// text, and whether there was one. A fence whose closing line is missing
// (an answer cut mid-stream) is stripped too, leaving the cut JSON. Other
// text is returned as it is.
func StripFence(text string) (string, bool) {
	t := strings.TrimSpace(text)
	var fence string
	switch {
	case strings.HasPrefix(t, "```"):
		fence = "```"
	case strings.HasPrefix(t, "~~~"):
		fence = "~~~"
	case t != "" && (strings.HasPrefix("```", t) || strings.HasPrefix("~~~", t)):
		return "", true // an opening fence cut short
	default:
		return text, false
	}
	body := t[len(fence):]
	if nl := strings.IndexByte(body, '\n'); nl >= 0 {
		if strings.Contains(body[:nl], fence[:1]) {
			return text, false // not an opening fence line
		}
		body = body[nl+1:]
	} else {
		// One line: ```json {"a":1}```
		body = strings.TrimLeft(body, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
	}
	body = strings.TrimSpace(body)
	body = strings.TrimSuffix(body, fence)
	return strings.TrimSpace(body), true
}

// Repairable applies trivial repairs to an answer that should be JSON:
// a byte order mark and surrounding white space, a wrapping code fence,
// trailing commas before '}' or ']' (outside strings). It returns the
// repaired text and true when that decodes as JSON (check it against the
// schema with Validate), or text and false. It never completes truncated
// JSON or rewrites values.
func Repairable(text string) (string, bool) {
	s := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(text), "\ufeff"))
	s, _ = StripFence(s)
	s = dropTrailingCommas(s)
	if _, err := Decode(s, DecodeOptions{}); err != nil {
		return text, false
	}
	return s, true
}

// dropTrailingCommas removes commas followed (after white space) by '}'
// or ']', outside strings.
func dropTrailingCommas(s string) string {
	var b []byte // nil until the first removal
	inStr, esc := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		drop := false
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == ',':
			j := i + 1
			for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r') {
				j++
			}
			drop = j < len(s) && (s[j] == '}' || s[j] == ']')
		}
		if drop && b == nil {
			b = append(make([]byte, 0, len(s)), s[:i]...)
		}
		if b != nil && !drop {
			b = append(b, c)
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}
