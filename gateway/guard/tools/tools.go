// Package tools enforces a tenant's (or agent's) tool policy on the tools
// a request declares and on the tool calls in a model's answer: which
// tools may be used, by a name no alias can get around, and which
// arguments they may take (the schema the agent declared, the policy's
// own constraints, allowed paths and domains). It reports violations;
// the guard engine decides whether to block the call or strip what is
// refused (KeepTools, KeepCalls).
package tools

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"aigw/gateway"
	"aigw/gateway/guard/schema"
)

// Decisions of a rule or of the default.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Checks a Violation can come from.
const (
	CheckName           = "name"            // the name is not a plain ASCII tool name
	CheckDeny           = "deny"            // a rule or the default denies the tool
	CheckAlias          = "alias"           // two declared tools differ only by case or separators
	CheckUndeclared     = "undeclared"      // a call names no declared tool
	CheckMaxCalls       = "max_calls"       // more calls than MaxCallsPerRequest
	CheckArguments      = "arguments"       // arguments are not one strict JSON object
	CheckDeclaredSchema = "declared_schema" // arguments fail the declared parameters schema, or it does not compile
	CheckArgs           = "args"            // a rule's argument constraint fails
	CheckSchema         = "schema"          // a rule's schema overlay fails
	CheckTraversal      = "path_traversal"  // a path-like argument has a ".." segment
	CheckPaths          = "paths"           // a path argument is outside a rule's allowed paths
	CheckDomains        = "domains"         // a URL or address argument is outside a rule's allowed domains
)

// Config is a tool policy. The zero Config denies every tool.
type Config struct {
	// Default decides tools no rule matches: "allow" or "deny" ("" is
	// deny).
	Default string
	// Rules match tools by name. A tool any deny rule matches is denied;
	// otherwise a tool allow rules match is allowed, under the
	// constraints of all of them; otherwise Default decides. Order does
	// not matter.
	Rules []Rule
	// MaxCallsPerRequest bounds the tool calls of one answer (0: no
	// bound). Calls past it are violations.
	MaxCallsPerRequest int
	// ValidateDeclared checks call arguments against the parameters
	// schema the agent declared for the tool (tools[].function.parameters).
	ValidateDeclared bool
	// Schemas caches compiled schemas; nil uses the schema package's.
	Schemas *schema.Cache
}

// Rule decides the tools whose names match Tool.
//
// Names are compared case-insensitively, ignoring '_' and '-', with MCP
// and namespace prefixes split off: "mcp__server__tool", "server.tool",
// "server/tool" and "server:tool" are the tool "tool" of the server
// "server". A pattern with a server ("mcp__github__*") matches only tools
// of a matching server. A deny pattern without one ("send_email") matches
// a tool of any server, and any name ending with it at a word boundary
// ("mcp_gmail_send_email", "gmailSendEmail"); an allow pattern without one
// matches only tools without a server.
type Rule struct {
	// Tool is a glob over names: '*' any run, '?' one character.
	Tool string
	// Decision is "allow" or "deny".
	Decision string
	// Args constrains arguments (allow rules), by top-level property name
	// (matched case-insensitively) or by JSON pointer ("/to/0").
	Args map[string]Constraint
	// Schema is a JSON Schema the arguments must also match (allow rules).
	Schema json.RawMessage
	// Paths are the globs path arguments must match (allow rules; '*' does
	// not cross '/', "**" does): "/workspace/**", "~/notes/*.md". A path
	// argument is a string whose property name says path, file, dir,
	// folder or cwd, or which starts with / ./ ../ ~ \ file: or a drive
	// letter. Empty: any path (traversal is refused regardless).
	Paths []string
	// Domains are the host globs URL and e-mail address arguments must
	// match (allow rules; '*' crosses dots): "example.com",
	// "*.example.com". Empty: any domain.
	Domains []string
}

// Constraint constrains one argument.
type Constraint struct {
	// Required: the argument must be present.
	Required bool
	// Forbidden: the argument must be absent.
	Forbidden bool
	// Type is the JSON type the argument must have: string, number,
	// integer, boolean, array, object or null.
	Type string
	// Min and Max bound a number, or a string holding one.
	Min, Max *float64
	// Enum lists the allowed values (numbers compare by value).
	Enum []any
	// Pattern is an RE2 expression the whole string must match.
	Pattern string
	// MaxLength bounds a string's characters or an array's items.
	MaxLength int
}

// Violation is one thing a policy refuses.
type Violation struct {
	// Tool is the tool's name as declared or called.
	Tool string
	// Index is the position of the call in calls (CheckCalls) or of the
	// tool in tools (CheckRequest).
	Index int
	// Check is which check refused it (CheckDeny, CheckArgs, ...).
	Check string
	// Arg is the JSON pointer of the argument concerned, "" for none.
	Arg string
	// Reason says what is wrong, naming the argument. It quotes names,
	// numbers and domains, never other string values of the arguments.
	Reason string
	// Rule is the Tool pattern of the rule that refused it, "default" for
	// the default decision, or the check for built-in checks.
	Rule string
}

// Policy is a compiled Config. It is immutable and safe for concurrent
// use.
type Policy struct {
	defaultAllow     bool
	rules            []*rule
	maxCalls         int
	validateDeclared bool
	cache            *schema.Cache
}

type rule struct {
	pattern string
	allow   bool
	server  *regexp.Regexp // nil: the pattern has no server
	tool    *regexp.Regexp
	args    []argConstraint
	overlay *schema.Validator
	paths   []*regexp.Regexp
	domains []*regexp.Regexp
}

// New compiles a policy.
func New(c Config) (*Policy, error) {
	p := &Policy{maxCalls: c.MaxCallsPerRequest, validateDeclared: c.ValidateDeclared, cache: c.Schemas}
	switch c.Default {
	case Allow:
		p.defaultAllow = true
	case Deny, "":
	default:
		return nil, fmt.Errorf("tool policy: default %q is not allow or deny", c.Default)
	}
	if c.MaxCallsPerRequest < 0 {
		return nil, fmt.Errorf("tool policy: max_calls_per_request %d is negative", c.MaxCallsPerRequest)
	}
	for i, rc := range c.Rules {
		r, err := p.compileRule(rc)
		if err != nil {
			return nil, fmt.Errorf("tool policy: rule %d (%q): %w", i, rc.Tool, err)
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// Validate reports whether New accepts c.
func (c Config) Validate() error {
	_, err := New(c)
	return err
}

func (p *Policy) compileRule(rc Rule) (*rule, error) {
	r := &rule{pattern: rc.Tool}
	switch rc.Decision {
	case Allow:
		r.allow = true
	case Deny:
		if len(rc.Args) > 0 || len(rc.Schema) > 0 || len(rc.Paths) > 0 || len(rc.Domains) > 0 {
			return nil, fmt.Errorf("a deny rule takes no args, schema, paths or domains")
		}
	default:
		return nil, fmt.Errorf("decision %q is not allow or deny", rc.Decision)
	}
	if err := checkName(rc.Tool, true); err != nil {
		return nil, err
	}
	n := canonical(rc.Tool)
	if n.tool == "" {
		n.tool = "*" // "mcp__server": every tool of the server
	}
	var err error
	if n.server != "" {
		if r.server, err = globRegexp(n.server, 0); err != nil {
			return nil, err
		}
	}
	if r.tool, err = globRegexp(n.tool, 0); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(rc.Args))
	for k := range rc.Args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ac, err := compileConstraint(k, rc.Args[k])
		if err != nil {
			return nil, fmt.Errorf("args %q: %w", k, err)
		}
		r.args = append(r.args, ac)
	}
	if len(rc.Schema) > 0 {
		if r.overlay, err = p.compileSchema(rc.Schema); err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
	}
	for _, g := range rc.Paths {
		re, err := globRegexp(cleanPath(g), '/')
		if err != nil {
			return nil, fmt.Errorf("paths %q: %w", g, err)
		}
		r.paths = append(r.paths, re)
	}
	for _, g := range rc.Domains {
		re, err := globRegexp(strings.TrimSuffix(strings.ToLower(g), "."), 0)
		if err != nil {
			return nil, fmt.Errorf("domains %q: %w", g, err)
		}
		r.domains = append(r.domains, re)
	}
	return r, nil
}

func (p *Policy) compileSchema(s []byte) (*schema.Validator, error) {
	if p.cache != nil {
		return p.cache.CompileSchema(s)
	}
	return schema.CompileSchema(s)
}

// matches reports whether r matches n.
func (r *rule) matches(n name) bool {
	if r.server != nil {
		return n.server != "" && r.server.MatchString(n.server) && r.tool.MatchString(n.tool)
	}
	if r.allow {
		return n.server == "" && r.tool.MatchString(n.tool)
	}
	if r.tool.MatchString(n.tool) {
		return true
	}
	for _, s := range n.suffixes {
		if r.tool.MatchString(s) {
			return true
		}
	}
	return false
}

// decide returns whether a tool is allowed, the pattern that decided
// ("default" when none), and the allow rules whose constraints apply.
func (p *Policy) decide(n name) (bool, string, []*rule) {
	var allows []*rule
	for _, r := range p.rules {
		if !r.matches(n) {
			continue
		}
		if !r.allow {
			return false, r.pattern, nil
		}
		allows = append(allows, r)
	}
	if len(allows) > 0 {
		return true, allows[0].pattern, allows
	}
	return p.defaultAllow, "default", nil
}

func deniedReason(tool, by string) string {
	if by == "default" {
		return fmt.Sprintf("tool %s is denied by default (no rule allows it)", quoteName(tool))
	}
	return fmt.Sprintf("tool %s is denied by rule %q", quoteName(tool), by)
}

// CheckRequest checks the tools a request declares: names, policy
// decisions, declared names that differ only by case or separators, and,
// with ValidateDeclared, that each parameters schema compiles. Index is
// the tool's position in tools.
func (p *Policy) CheckRequest(tools []gateway.Tool) []Violation {
	var out []Violation
	seen := make(map[nameKey]string, len(tools))
	for i, t := range tools {
		tn := t.Function.Name
		v := Violation{Tool: tn, Index: i}
		if err := checkName(tn, false); err != nil {
			out = append(out, v.with(CheckName, CheckName, "", err.Error()))
			continue
		}
		n := canonical(tn)
		if ok, by, _ := p.decide(n); !ok {
			out = append(out, v.with(CheckDeny, by, "", deniedReason(tn, by)))
		}
		key := nameKey{n.server, n.tool}
		if other, dup := seen[key]; dup {
			reason := fmt.Sprintf("tool %s is declared twice", quoteName(tn))
			if other != tn {
				reason = fmt.Sprintf("tool %s differs from declared tool %s only by case or separators", quoteName(tn), quoteName(other))
			}
			out = append(out, v.with(CheckAlias, CheckAlias, "", reason))
		} else {
			seen[key] = tn
		}
		if p.validateDeclared && len(t.Function.Parameters) > 0 {
			if _, err := p.compileSchema(t.Function.Parameters); err != nil {
				out = append(out, v.with(CheckDeclaredSchema, CheckDeclaredSchema, "", "declared parameters: "+err.Error()))
			}
		}
	}
	return out
}

type nameKey struct{ server, tool string }

// CheckCalls checks the tool calls of a model's answer against the policy
// and the tools the request declared: the call count, names (a call must
// name a declared tool exactly; a denied tool is denied under every case,
// separator and prefix variant), arguments (one JSON object, no
// duplicate keys even by case, the declared parameters schema with
// ValidateDeclared, the allow rules' constraints, schema overlay, paths
// and domains) and path traversal, refused for every tool. Index is the
// call's position in calls.
func (p *Policy) CheckCalls(declared []gateway.Tool, calls []gateway.ToolCall) []Violation {
	var out []Violation
	for i, c := range calls {
		tn := c.Function.Name
		v := Violation{Tool: tn, Index: i}
		if p.maxCalls > 0 && i >= p.maxCalls {
			out = append(out, v.with(CheckMaxCalls, CheckMaxCalls, "", fmt.Sprintf("call %d is over the limit of %d tool calls per answer", i+1, p.maxCalls)))
			continue
		}
		if err := checkName(tn, false); err != nil {
			out = append(out, v.with(CheckName, CheckName, "", err.Error()))
			continue
		}
		n := canonical(tn)
		decl := findDeclared(declared, tn, n, &v, &out)
		ok, by, allows := p.decide(n)
		if !ok {
			out = append(out, v.with(CheckDeny, by, "", deniedReason(tn, by)))
			continue
		}
		args := c.Function.Arguments
		if strings.TrimSpace(args) == "" {
			args = "{}"
		}
		val, err := schema.Decode(args, schema.DecodeOptions{FoldDuplicates: true})
		if err != nil {
			var at string
			if se, ok := err.(*schema.SyntaxError); ok {
				at = se.Pointer
			}
			out = append(out, v.with(CheckArguments, CheckArguments, at, "arguments are not valid: "+err.Error()))
			continue
		}
		obj, isObj := val.(map[string]any)
		if !isObj {
			out = append(out, v.with(CheckArguments, CheckArguments, "", "arguments must be a JSON object, got "+schema.JSONType(val)))
			continue
		}
		if p.validateDeclared && decl != nil {
			out = p.checkDeclared(out, v, decl, obj)
		}
		for _, r := range allows {
			out = r.check(out, v, obj)
		}
		out = checkTraversal(out, v, obj)
	}
	return out
}

// findDeclared returns the declared tool named tn, or reports the call
// as undeclared (naming a declared alias if there is one).
func findDeclared(declared []gateway.Tool, tn string, n name, v *Violation, out *[]Violation) *gateway.Tool {
	for i := range declared {
		if declared[i].Function.Name == tn {
			return &declared[i]
		}
	}
	var alias string
	for _, d := range declared {
		dn := d.Function.Name
		if checkName(dn, false) == nil {
			if c := canonical(dn); c.server == n.server && c.tool == n.tool {
				alias = dn
				break
			}
		}
	}
	reason := fmt.Sprintf("tool %s is not declared in the request", quoteName(tn))
	if alias != "" {
		reason += fmt.Sprintf(" (declared tool %s differs from it only by case or separators)", quoteName(alias))
	}
	*out = append(*out, v.with(CheckUndeclared, CheckUndeclared, "", reason))
	return nil
}

func (p *Policy) checkDeclared(out []Violation, v Violation, decl *gateway.Tool, obj map[string]any) []Violation {
	params := decl.Function.Parameters
	if len(params) == 0 || string(params) == "null" {
		if len(obj) > 0 {
			keys := sortedKeys(obj)
			return append(out, v.with(CheckDeclaredSchema, CheckDeclaredSchema, "/"+keys[0],
				fmt.Sprintf("tool %s declares no parameters but the call passes %d (first %q)", quoteName(v.Tool), len(obj), truncate(keys[0], 64))))
		}
		return out
	}
	sv, err := p.compileSchema(params)
	if err != nil {
		return append(out, v.with(CheckDeclaredSchema, CheckDeclaredSchema, "", "declared parameters: "+err.Error()))
	}
	return appendSchemaErrors(out, v, CheckDeclaredSchema, CheckDeclaredSchema, "declared parameters", sv.ValidateValue(obj))
}

func appendSchemaErrors(out []Violation, v Violation, check, rule, what string, err error) []Violation {
	if err == nil {
		return out
	}
	ve, ok := err.(*schema.ValidationError)
	if !ok {
		return append(out, v.with(check, rule, "", what+": "+err.Error()))
	}
	for _, d := range ve.Details {
		out = append(out, v.with(check, rule, d.Pointer, fmt.Sprintf("%s: %s (%s)", argRef(d.Pointer), d.Message, what)))
	}
	if ve.More > 0 {
		out = append(out, v.with(check, rule, "", fmt.Sprintf("and %d more failures (%s)", ve.More, what)))
	}
	return out
}

func (v Violation) with(check, rule, arg, reason string) Violation {
	v.Check, v.Rule, v.Arg, v.Reason = check, rule, arg, reason
	return v
}

// KeepTools returns the tools no violation of CheckRequest names, for a
// guard that strips refused tools from the request instead of blocking it.
func KeepTools(tools []gateway.Tool, vs []Violation) []gateway.Tool {
	return keep(tools, vs)
}

// KeepCalls returns the calls no violation of CheckCalls names, for a
// guard that strips refused calls from the answer instead of blocking it.
// When it keeps none, the caller must also change the finish reason.
func KeepCalls(calls []gateway.ToolCall, vs []Violation) []gateway.ToolCall {
	return keep(calls, vs)
}

func keep[T any](items []T, vs []Violation) []T {
	if len(vs) == 0 {
		return items
	}
	bad := make(map[int]bool, len(vs))
	for _, v := range vs {
		bad[v.Index] = true
	}
	out := make([]T, 0, len(items))
	for i, it := range items {
		if !bad[i] {
			out = append(out, it)
		}
	}
	return out
}

func quoteName(s string) string { return fmt.Sprintf("%q", truncate(s, 64)) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
