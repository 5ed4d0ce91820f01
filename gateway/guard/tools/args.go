package tools

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/mail"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"aigw/gateway/guard/schema"
)

type argConstraint struct {
	key     string // property name, or JSON pointer when it starts with '/'
	c       Constraint
	re      *regexp.Regexp
	enum    []any // c.Enum decoded as Decode would decode them
	min     *big.Rat
	max     *big.Rat
	pointer []string // tokens when key is a pointer
}

var jsonTypes = []string{"", "string", "number", "integer", "boolean", "array", "object", "null"}

func compileConstraint(key string, c Constraint) (argConstraint, error) {
	ac := argConstraint{key: key, c: c}
	if key == "" {
		return ac, fmt.Errorf("empty argument name")
	}
	if strings.HasPrefix(key, "/") {
		for _, t := range strings.Split(key[1:], "/") {
			ac.pointer = append(ac.pointer, strings.NewReplacer("~1", "/", "~0", "~").Replace(t))
		}
	}
	if c.Required && c.Forbidden {
		return ac, fmt.Errorf("both required and forbidden")
	}
	if !slices.Contains(jsonTypes, c.Type) {
		return ac, fmt.Errorf("type %q is not a JSON type", c.Type)
	}
	if c.Pattern != "" {
		re, err := regexp.Compile("^(?:" + c.Pattern + ")$")
		if err != nil {
			return ac, fmt.Errorf("pattern: %w", err)
		}
		ac.re = re
	}
	if c.Min != nil {
		ac.min = new(big.Rat).SetFloat64(*c.Min)
	}
	if c.Max != nil {
		ac.max = new(big.Rat).SetFloat64(*c.Max)
	}
	if (c.Min != nil && ac.min == nil) || (c.Max != nil && ac.max == nil) {
		return ac, fmt.Errorf("min or max is not a finite number")
	}
	if ac.min != nil && ac.max != nil && ac.min.Cmp(ac.max) > 0 {
		return ac, fmt.Errorf("min %v is above max %v", *c.Min, *c.Max)
	}
	if c.MaxLength < 0 {
		return ac, fmt.Errorf("max_length %d is negative", c.MaxLength)
	}
	for _, e := range c.Enum {
		b, err := json.Marshal(e)
		if err != nil {
			return ac, fmt.Errorf("enum value %v: %w", e, err)
		}
		v, err := schema.Decode(string(b), schema.DecodeOptions{})
		if err != nil {
			return ac, fmt.Errorf("enum value %v: %w", e, err)
		}
		ac.enum = append(ac.enum, v)
	}
	return ac, nil
}

// lookup finds the argument, matching property names case-insensitively
// (a Go executor decoding into a struct does; Decode has refused objects
// whose keys collide that way).
func (ac *argConstraint) lookup(obj map[string]any) (any, string, bool) {
	toks := ac.pointer
	if toks == nil {
		toks = []string{ac.key}
	}
	var cur any = obj
	ptr := ""
	for _, t := range toks {
		switch c := cur.(type) {
		case map[string]any:
			k, ok := foldLookup(c, t)
			if !ok {
				return nil, "", false
			}
			cur, ptr = c[k], ptr+"/"+schema.EscapePointer(k)
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(c) {
				return nil, "", false
			}
			cur, ptr = c[i], ptr+"/"+t
		default:
			return nil, "", false
		}
	}
	return cur, ptr, true
}

func foldLookup(m map[string]any, key string) (string, bool) {
	if _, ok := m[key]; ok {
		return key, true
	}
	for k := range m {
		if strings.EqualFold(k, key) {
			return k, true
		}
	}
	return "", false
}

func (ac *argConstraint) check(val any) string {
	c := &ac.c
	if c.Type != "" && !hasType(val, c.Type) {
		return fmt.Sprintf("is %s, want %s", schema.JSONType(val), c.Type)
	}
	if ac.min != nil || ac.max != nil {
		n, ok := number(val)
		if !ok {
			return fmt.Sprintf("is %s, want a number", schema.JSONType(val))
		}
		if ac.min != nil && n.Cmp(ac.min) < 0 {
			return fmt.Sprintf("%s is below the minimum %v", showNumber(n), *c.Min)
		}
		if ac.max != nil && n.Cmp(ac.max) > 0 {
			return fmt.Sprintf("%s is above the maximum %v", showNumber(n), *c.Max)
		}
	}
	if len(ac.enum) > 0 && !slices.ContainsFunc(ac.enum, func(e any) bool { return equalJSON(e, val) }) {
		return fmt.Sprintf("value is not one of the %d allowed values", len(ac.enum))
	}
	if ac.re != nil {
		s, ok := val.(string)
		if !ok {
			return fmt.Sprintf("is %s, want a string matching the pattern", schema.JSONType(val))
		}
		if !ac.re.MatchString(s) {
			return fmt.Sprintf("string does not match the pattern %q", c.Pattern)
		}
	}
	if c.MaxLength > 0 {
		switch v := val.(type) {
		case string:
			if n := utf8.RuneCountInString(v); n > c.MaxLength {
				return fmt.Sprintf("string of %d characters is longer than %d", n, c.MaxLength)
			}
		case []any:
			if len(v) > c.MaxLength {
				return fmt.Sprintf("array of %d items is longer than %d", len(v), c.MaxLength)
			}
		}
	}
	return ""
}

// number reads a JSON number, or a string that is exactly a JSON number
// (not "1_000", "0x10", "1,000" or other digits, which executors parse in
// different ways).
func number(val any) (*big.Rat, bool) {
	var lit string
	switch v := val.(type) {
	case json.Number:
		lit = string(v)
	case string:
		d, err := schema.Decode(strings.TrimSpace(v), schema.DecodeOptions{})
		n, ok := d.(json.Number)
		if err != nil || !ok {
			return nil, false
		}
		lit = string(n)
	default:
		return nil, false
	}
	// Decode bounds exponents (schema.MaxNumberExp), so this is cheap.
	return new(big.Rat).SetString(lit)
}

func showNumber(n *big.Rat) string {
	f, _ := n.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func hasType(val any, t string) bool {
	if t == "integer" {
		n, ok := val.(json.Number)
		if !ok {
			return false
		}
		r, ok := new(big.Rat).SetString(string(n))
		return ok && r.IsInt()
	}
	return schema.JSONType(val) == t
}

func equalJSON(a, b any) bool {
	an, aok := a.(json.Number)
	bn, bok := b.(json.Number)
	if aok && bok {
		ar, ok1 := new(big.Rat).SetString(string(an))
		br, ok2 := new(big.Rat).SetString(string(bn))
		return ok1 && ok2 && ar.Cmp(br) == 0
	}
	return reflect.DeepEqual(a, b)
}

// check applies the rule's constraints to a call's arguments.
func (r *rule) check(out []Violation, v Violation, obj map[string]any) []Violation {
	for i := range r.args {
		ac := &r.args[i]
		val, ptr, ok := ac.lookup(obj)
		if !ok {
			if ac.c.Required {
				p := ac.key
				if ac.pointer == nil {
					p = "/" + schema.EscapePointer(ac.key)
				}
				out = append(out, v.with(CheckArgs, r.pattern, p, fmt.Sprintf("argument %s is required by rule %q", p, r.pattern)))
			}
			continue
		}
		if ac.c.Forbidden {
			out = append(out, v.with(CheckArgs, r.pattern, ptr, fmt.Sprintf("argument %s is forbidden by rule %q", ptr, r.pattern)))
			continue
		}
		if msg := ac.check(val); msg != "" {
			out = append(out, v.with(CheckArgs, r.pattern, ptr, fmt.Sprintf("argument %s: %s (rule %q)", ptr, msg, r.pattern)))
		}
	}
	if r.overlay != nil {
		out = appendSchemaErrors(out, v, CheckSchema, r.pattern, fmt.Sprintf("schema of rule %q", r.pattern), r.overlay.ValidateValue(obj))
	}
	if len(r.paths) == 0 && len(r.domains) == 0 {
		return out
	}
	walkStrings(obj, "", "", func(ptr, key, s string) {
		if len(r.paths) > 0 && pathish(key, s) {
			p := cleanPath(s)
			if !slices.ContainsFunc(r.paths, func(re *regexp.Regexp) bool { return re.MatchString(p) }) {
				out = append(out, v.with(CheckPaths, r.pattern, ptr, fmt.Sprintf("argument %s: path is outside the allowed paths of rule %q", ptr, r.pattern)))
			}
		}
		if len(r.domains) > 0 {
			hosts, bad := hostsIn(key, s)
			if bad != "" {
				out = append(out, v.with(CheckDomains, r.pattern, ptr, fmt.Sprintf("argument %s: %s (rule %q allows only some domains)", ptr, bad, r.pattern)))
			}
			for _, h := range hosts {
				if !slices.ContainsFunc(r.domains, func(re *regexp.Regexp) bool { return re.MatchString(h) }) {
					out = append(out, v.with(CheckDomains, r.pattern, ptr, fmt.Sprintf("argument %s: domain %q is not an allowed domain of rule %q", ptr, truncate(h, 128), r.pattern)))
				}
			}
		}
	})
	return out
}

// checkTraversal refuses, for every tool, path-like arguments with a ".."
// segment, also when percent-encoded or written with look-alike dots and
// slashes that NFKC folds ("．．／", "‥/").
func checkTraversal(out []Violation, v Violation, obj map[string]any) []Violation {
	walkStrings(obj, "", "", func(ptr, key, s string) {
		token := !strings.ContainsAny(s, " \t\r\n") && (strings.Contains(s, "..") || strings.Contains(s, "%") || !isASCII(s))
		if (pathish(key, s) || token) && traversal(s) {
			out = append(out, v.with(CheckTraversal, CheckTraversal, ptr, fmt.Sprintf("argument %s: path traversal (a \"..\" segment) is refused", ptr)))
		}
	})
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func traversal(s string) bool {
	forms := []string{s}
	if !isASCII(s) {
		forms = append(forms, norm.NFKC.String(s))
	}
	for _, f := range forms {
		for range 3 {
			if dotDotSegment(f) {
				return true
			}
			u, err := url.PathUnescape(f)
			if err != nil || u == f {
				break
			}
			f = u
		}
	}
	return false
}

// dotDotSegment reports a ".." segment between '/' or '\' separators.
func dotDotSegment(s string) bool {
	for len(s) > 0 {
		i := strings.IndexAny(s, `/\`)
		seg := s
		if i >= 0 {
			seg, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if strings.TrimSpace(seg) == ".." {
			return true
		}
	}
	return false
}

var pathWords = []string{"path", "paths", "file", "files", "filename", "filenames", "filepath", "dir", "dirs", "directory", "folder", "cwd", "workdir"}

// pathish reports whether a string argument is a file path: its
// property name says so, or it starts like one.
func pathish(key, s string) bool {
	if s == "" || strings.ContainsAny(s, "\n\r") || len(s) > 4096 {
		return false
	}
	if lastWordIn(key, pathWords) {
		return true
	}
	switch {
	case strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//"),
		strings.HasPrefix(s, "./"), strings.HasPrefix(s, "../"), strings.HasPrefix(s, `.\`), strings.HasPrefix(s, `..\`),
		strings.HasPrefix(s, `\`), strings.HasPrefix(s, "~") && !strings.ContainsAny(s, " \t"),
		len(s) >= 5 && strings.EqualFold(s[:5], "file:"):
		return true
	case len(s) >= 3 && (s[0]|0x20 >= 'a' && s[0]|0x20 <= 'z') && s[1] == ':' && (s[2] == '\\' || s[2] == '/'):
		return true // C:\ or C:/
	}
	return false
}

// cleanPath normalizes a path argument (or a path glob) for matching:
// the path of a file: URL, '\' as '/', and path.Clean.
func cleanPath(s string) string {
	if len(s) >= 5 && strings.EqualFold(s[:5], "file:") {
		if u, err := url.Parse(s); err == nil {
			s = u.Path
		}
	}
	s = strings.ReplaceAll(s, `\`, "/")
	return path.Clean(s)
}

var (
	urlWords     = []string{"url", "urls", "uri", "link", "href", "endpoint", "host", "hostname", "domain", "website", "webhook", "callback"}
	addressWords = []string{"to", "cc", "bcc", "recipient", "recipients", "email", "emails", "address", "addresses", "from", "sender", "attendees", "invitees"}
	schemeRE     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)
)

// hostsIn returns the hosts of a URL or the domains of e-mail addresses
// in a string argument, or why it cannot tell (a malformed URL or
// address). A string is a URL when it starts with a scheme and "//", or
// its property name says url, host, domain, link...; it holds addresses
// when it parses as an address list, or its property name says to, cc,
// recipients, email... (then every word with an '@' is one). Other
// strings, prose mentioning a URL or an address among them, give nothing.
func hostsIn(key, s string) ([]string, string) {
	t := strings.TrimSpace(s)
	switch {
	case len(t) >= 7 && strings.EqualFold(t[:7], "mailto:"):
		addrs := t[len("mailto:"):]
		if i := strings.IndexByte(addrs, '?'); i >= 0 {
			addrs = addrs[:i]
		}
		var out []string
		for _, a := range strings.Split(addrs, ",") {
			a, err := url.PathUnescape(strings.TrimSpace(a))
			if err != nil || strings.Count(a, "@") != 1 {
				return nil, "malformed mailto URL"
			}
			out = append(out, addressDomain(a))
		}
		return out, ""
	case schemeRE.MatchString(t) || strings.HasPrefix(t, "//"):
		u, err := url.Parse(t)
		if err != nil {
			return nil, "not a valid URL"
		}
		if strings.EqualFold(u.Scheme, "file") {
			return nil, ""
		}
		h := normHost(u.Hostname())
		if h == "" {
			return nil, "URL without a host"
		}
		return []string{h}, ""
	case lastWordIn(key, urlWords):
		u, err := url.Parse("http://" + t)
		if err != nil || u.Hostname() == "" || strings.ContainsAny(t, " \t\r\n") {
			return nil, "not a valid host or URL"
		}
		return []string{normHost(u.Hostname())}, ""
	}
	if !strings.Contains(t, "@") {
		return nil, ""
	}
	if list, err := mail.ParseAddressList(t); err == nil {
		out := make([]string, 0, len(list))
		for _, a := range list {
			out = append(out, addressDomain(a.Address))
		}
		return out, ""
	}
	if lastWordIn(key, addressWords) {
		// "a@x.com; b@y.com", "a@x.com b@y.com": every word with an '@'.
		var out []string
		for _, w := range strings.FieldsFunc(t, func(r rune) bool { return strings.ContainsRune(" \t\r\n,;<>()\"'", r) }) {
			switch strings.Count(w, "@") {
			case 0:
			case 1:
				out = append(out, addressDomain(w))
			default:
				return nil, "malformed e-mail address"
			}
		}
		return out, ""
	}
	if i := strings.LastIndexByte(t, '@'); !strings.ContainsAny(t, " \t\r\n") && strings.Contains(t[i+1:], ".") {
		return nil, "malformed e-mail address" // "ceo@other.com@example.com"
	}
	return nil, ""
}

// lastWordIn reports whether the last word of a property name is one of
// ws: "file_path", "targetDir", "callback_url", not "file_content".
func lastWordIn(key string, ws []string) bool {
	w := words(key)
	return len(w) > 0 && slices.Contains(ws, w[len(w)-1])
}

func addressDomain(a string) string {
	d := a[strings.LastIndexByte(a, '@')+1:]
	d = strings.TrimSuffix(strings.TrimPrefix(d, "["), "]")
	return normHost(d)
}

func normHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

// walkStrings calls fn for every string in v with its JSON pointer and
// the property name it is under (for arrays, the array's), keys in order.
func walkStrings(v any, ptr, key string, fn func(ptr, key, s string)) {
	switch v := v.(type) {
	case string:
		fn(ptr, key, v)
	case []any:
		for i, e := range v {
			walkStrings(e, ptr+"/"+strconv.Itoa(i), key, fn)
		}
	case map[string]any:
		for _, k := range sortedKeys(v) {
			walkStrings(v[k], ptr+"/"+schema.EscapePointer(k), k, fn)
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// argRef names an argument by its JSON pointer in a reason.
func argRef(ptr string) string {
	if ptr == "" {
		return "arguments"
	}
	return "argument " + ptr
}
