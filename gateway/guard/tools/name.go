package tools

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// maxNameLen bounds tool names (OpenAI allows 64, Anthropic 128; MCP
// prefixes add the server name).
const maxNameLen = 256

// checkName refuses names outside ASCII letters, digits and _ - . : /
// (every provider restricts tool names to a subset of these), so that a
// homoglyph ("ѕend_email" with a Cyrillic ѕ) or an invisible character
// cannot make a name that looks like another.
func checkName(s string, pattern bool) error {
	if s == "" {
		return fmt.Errorf("empty tool name")
	}
	if len(s) > maxNameLen {
		return fmt.Errorf("tool name longer than %d bytes", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '-', c == '.', c == ':', c == '/':
		case pattern && (c == '*' || c == '?'):
		default:
			return fmt.Errorf("tool name has character %q at byte %d (want ASCII letters, digits, _ - . : /)", rune(c), i)
		}
	}
	return nil
}

// name is a tool name reduced for comparison: the server (MCP server or
// namespace, "" when there is none) and the tool, lowercase and without
// '_' and '-', so that "Send_Email", "send-email", "sendEmail" and
// "SENDEMAIL" are one name, and "mcp__gmail__send_email",
// "gmail.send_email", "gmail/send_email" and "gmail:send_email" are the
// tool "sendemail" of the server "gmail".
type name struct {
	server, tool string
	// suffixes are the word-aligned suffixes of the whole name, squashed:
	// for "mcp_gmail_send_email", mcpgmailsendemail, gmailsendemail,
	// sendemail and email.
	suffixes []string
}

// canonical reduces s, a name checked by checkName or a pattern.
func canonical(s string) name {
	rest := s
	var server string
	if len(rest) >= 5 && strings.EqualFold(strings.ReplaceAll(rest[:5], "-", "_"), "mcp__") {
		rest = rest[5:]
		if i := strings.Index(strings.ReplaceAll(rest, "-", "_"), "__"); i >= 0 {
			server, rest = rest[:i], rest[i+2:]
		} else {
			server, rest = rest, "" // "mcp__server": the server, no tool
		}
	}
	if i := strings.LastIndexAny(rest, ".:/"); i >= 0 {
		if server != "" {
			server += "."
		}
		server, rest = server+rest[:i], rest[i+1:]
	}
	n := name{server: squash(server), tool: squash(rest)}
	ws := words(s)
	n.suffixes = make([]string, len(ws))
	for k := range ws {
		n.suffixes[k] = strings.Join(ws[k:], "")
	}
	return n
}

// squash lowercases s and drops '_' and '-'; '.', ':' and '/' become '.'.
func squash(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '_' || c == '-':
		case c == ':' || c == '/':
			b = append(b, '.')
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// words splits a name into lowercase words at separators and camelCase
// boundaries: "mcp__GitHub__createIssue" is mcp git hub create issue,
// "HTTPRequest" is http request.
func words(s string) []string {
	var out []string
	start := -1
	flush := func(end int) {
		if start >= 0 && end > start {
			out = append(out, strings.ToLower(s[start:end]))
		}
		start = -1
	}
	isUpper := func(c byte) bool { return c >= 'A' && c <= 'Z' }
	isLower := func(c byte) bool { return c >= 'a' && c <= 'z' }
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := isUpper(c) || isLower(c) || c >= '0' && c <= '9' || c == '*' || c == '?'
		if !alnum {
			flush(i)
			continue
		}
		if start >= 0 && isUpper(c) && (isLower(s[i-1]) || i+1 < len(s) && isLower(s[i+1]) && isUpper(s[i-1])) {
			flush(i)
		}
		if start < 0 {
			start = i
		}
	}
	flush(len(s))
	return out
}

// globRegexp compiles a glob: '*' matches any run of characters (except
// sep, when sep is not 0), "**" any run, '?' one character (except sep).
func globRegexp(glob string, sep byte) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	star, one := ".*", "."
	if sep != 0 {
		star = "[^" + regexp.QuoteMeta(string(sep)) + "]*"
		one = "[^" + regexp.QuoteMeta(string(sep)) + "]"
	}
	for i := 0; i < len(glob); {
		switch {
		case strings.HasPrefix(glob[i:], "**"):
			b.WriteString(".*")
			i += 2
		case glob[i] == '*':
			b.WriteString(star)
			i++
		case glob[i] == '?':
			b.WriteString(one)
			i++
		default:
			_, size := utf8.DecodeRuneInString(glob[i:])
			b.WriteString(regexp.QuoteMeta(glob[i : i+size]))
			i += size
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}
