package tools

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"aigw/gateway"
)

func f64(f float64) *float64 { return &f }

// testConfig is the billing agent's policy of the guardrails notes (4.2),
// with file, notification and MCP rules added.
func testConfig() Config {
	return Config{
		Default:            Deny,
		ValidateDeclared:   true,
		MaxCallsPerRequest: 4,
		Rules: []Rule{
			{Tool: "get_*", Decision: Allow},
			{Tool: "refund", Decision: Allow, Args: map[string]Constraint{
				"amount":   {Required: true, Min: f64(0), Max: f64(500)},
				"currency": {Enum: []any{"EUR", "USD"}},
			}},
			{Tool: "read_file", Decision: Allow, Paths: []string{"/workspace/**", "docs/**"}},
			{Tool: "notify", Decision: Allow, Domains: []string{"example.com", "*.example.com"}},
			{Tool: "send_email", Decision: Deny},
			{Tool: "mcp__github__*", Decision: Deny},
			{Tool: "mcp__jira__*", Decision: Allow, Schema: json.RawMessage(`{"properties":{"priority":{"enum":["low","high"]}}}`)},
		},
	}
}

func tool(name, params string) gateway.Tool {
	t := gateway.Tool{Type: "function", Function: gateway.FunctionDecl{Name: name}}
	if params != "" {
		t.Function.Parameters = json.RawMessage(params)
	}
	return t
}

// declared are the tools the agent declares, with their parameters.
var declared = []gateway.Tool{
	tool("get_invoice", `{"type":"object","properties":{"id":{"type":"string"}},"required":["id"],"additionalProperties":false}`),
	tool("get_status", ""),
	// refund's declared schema is loose on purpose: the policy's
	// constraints must catch what it lets through.
	tool("refund", `{"type":"object","properties":{"amount":{},"currency":{"type":"string"}}}`),
	tool("read_file", `{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}`),
	tool("notify", `{"type":"object","properties":{"to":{},"subject":{"type":"string"},"body":{"type":"string"},"link":{"type":"string"}},"required":["to"],"additionalProperties":false}`),
	tool("send_email", `{"type":"object"}`),
	tool("mcp__jira__create_ticket", `{"type":"object","properties":{"title":{"type":"string"},"priority":{"type":"string"}}}`),
	tool("mcp__github__create_issue", `{"type":"object"}`),
}

func call(name, args string) gateway.ToolCall {
	return gateway.ToolCall{ID: "call_1", Type: "function", Function: gateway.FunctionCall{Name: name, Arguments: args}}
}

func mustNew(t testing.TB, c Config) *Policy {
	t.Helper()
	p, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// want is one expected violation: its check, rule (if set), argument
// pointer (if set) and a substring of its reason (if set).
type want struct{ check, rule, arg, reason string }

func checkViolations(t *testing.T, got []Violation, wants []want) {
	t.Helper()
	if len(wants) == 0 {
		if len(got) != 0 {
			t.Fatalf("violations %+v; want none", got)
		}
		return
	}
	for _, w := range wants {
		if !slices.ContainsFunc(got, func(v Violation) bool {
			return v.Check == w.check && (w.rule == "" || v.Rule == w.rule) && (w.arg == "" || v.Arg == w.arg) &&
				strings.Contains(v.Reason, w.reason)
		}) {
			t.Errorf("violations %+v; want one with %+v", got, w)
		}
	}
	for _, v := range got {
		if v.Reason == "" || v.Check == "" || v.Rule == "" {
			t.Errorf("violation %+v lacks a reason, check or rule", v)
		}
	}
}

// Case 23: a denied tool reached by a renamed alias, a case variant or an
// MCP or namespace prefix.
func TestCase23Aliases(t *testing.T) {
	p := mustNew(t, testConfig())
	for _, test := range []struct {
		name  string
		wants []want
	}{
		{"send_email", []want{{check: CheckDeny, rule: "send_email", reason: `"send_email" is denied by rule "send_email"`}}},
		{"Send_Email", []want{{check: CheckDeny, rule: "send_email"}, {check: CheckUndeclared, reason: `declared tool "send_email" differs`}}},
		{"send-email", []want{{check: CheckDeny, rule: "send_email"}, {check: CheckUndeclared}}},
		{"SEND-EMAIL", []want{{check: CheckDeny, rule: "send_email"}}},
		{"sendEmail", []want{{check: CheckDeny, rule: "send_email"}}},
		{"SendEmail", []want{{check: CheckDeny, rule: "send_email"}}},
		{"sendemail", []want{{check: CheckDeny, rule: "send_email"}}},
		{"mcp__gmail__send_email", []want{{check: CheckDeny, rule: "send_email"}}},
		{"MCP__Gmail__Send-Email", []want{{check: CheckDeny, rule: "send_email"}}},
		{"gmail.send_email", []want{{check: CheckDeny, rule: "send_email"}}},
		{"gmail/send_email", []want{{check: CheckDeny, rule: "send_email"}}},
		{"gmail:sendEmail", []want{{check: CheckDeny, rule: "send_email"}}},
		{"functions.send_email", []want{{check: CheckDeny, rule: "send_email"}}},
		{"mcp_gmail_send_email", []want{{check: CheckDeny, rule: "send_email"}}},
		{"gmailSendEmail", []want{{check: CheckDeny, rule: "send_email"}}},
		{"mcp__github__create_issue", []want{{check: CheckDeny, rule: "mcp__github__*"}}},
		{"MCP__GitHub__createIssue", []want{{check: CheckDeny, rule: "mcp__github__*"}}},
		{"github.create_issue", []want{{check: CheckDeny, rule: "mcp__github__*"}}},
		{"git-hub/create-issue", []want{{check: CheckDeny, rule: "mcp__github__*"}}},
		{"mcp__github", []want{{check: CheckDeny, rule: "mcp__github__*"}}},
		// Homoglyphs and invisible characters are not tool names.
		{"ѕend_email", []want{{check: CheckName, reason: "character"}}},
		{"send\u200b_email", []want{{check: CheckName}}},
		{"", []want{{check: CheckName, reason: "empty"}}},
		// An allowed tool under another spelling is still not the
		// declared tool.
		{"Get-Invoice", []want{{check: CheckUndeclared, reason: `declared tool "get_invoice" differs`}}},
		// An MCP server's tool is not the local tool of the same name.
		{"mcp__evil__get_invoice", []want{{check: CheckDeny, rule: "default"}, {check: CheckUndeclared}}},
		{"evil.refund", []want{{check: CheckDeny, rule: "default"}}},
		// Allowed, declared: no violation (controls).
		{"get_invoice", nil},
		{"mcp__jira__create_ticket", nil},
	} {
		t.Run(test.name, func(t *testing.T) {
			args := `{}`
			if test.name == "get_invoice" {
				args = `{"id":"INV-1"}`
			}
			got := p.CheckCalls(declared, []gateway.ToolCall{call(test.name, args)})
			checkViolations(t, got, test.wants)
		})
	}
}

func TestCase23Request(t *testing.T) {
	p := mustNew(t, testConfig())
	tools := []gateway.Tool{
		tool("get_invoice", `{"type":"object"}`), // 0 allowed
		tool("Send_Email", `{"type":"object"}`),  // 1 denied under a case variant
		tool("mcp__github__create_issue", ""),    // 2 denied by server
		tool("get-invoice", ""),                  // 3 alias of 0
		tool("lookup", ""),                       // 4 denied by default
		tool("ѕend_email", ""),                   // 5 homoglyph
		tool("get_report", `{"type":"objekt"}`),  // 6 declared schema does not compile
		tool("mcp__jira__search", ""),            // 7 allowed
	}
	got := p.CheckRequest(tools)
	checkViolations(t, got, []want{
		{check: CheckDeny, rule: "send_email", reason: `"Send_Email"`},
		{check: CheckDeny, rule: "mcp__github__*"},
		{check: CheckAlias, reason: `"get-invoice" differs from declared tool "get_invoice"`},
		{check: CheckDeny, rule: "default", reason: `"lookup"`},
		{check: CheckName},
		{check: CheckDeclaredSchema, reason: "does not compile"},
	})
	bad := map[int]bool{}
	for _, v := range got {
		bad[v.Index] = true
	}
	if bad[0] || bad[7] || !bad[1] || !bad[2] || !bad[3] || !bad[4] || !bad[5] || !bad[6] {
		t.Errorf("violating indexes %v; want 1-6", bad)
	}
	kept := KeepTools(tools, got)
	if len(kept) != 2 || kept[0].Function.Name != "get_invoice" || kept[1].Function.Name != "mcp__jira__search" {
		t.Errorf("KeepTools = %v; want get_invoice, mcp__jira__search", kept)
	}
}

// Case 24: an allowed tool with arguments outside the policy.
func TestCase24Arguments(t *testing.T) {
	p := mustNew(t, testConfig())
	for _, test := range []struct {
		name, tool, args string
		wants            []want
	}{
		// Path traversal, in every disguise.
		{"Traversal", "read_file", `{"path":"../../etc/passwd"}`, []want{{check: CheckTraversal, arg: "/path", reason: "argument /path: path traversal"}}},
		{"TraversalInside", "read_file", `{"path":"/workspace/../etc/passwd"}`, []want{{check: CheckTraversal}, {check: CheckPaths}}},
		{"TraversalEncoded", "read_file", `{"path":"/workspace/..%2f..%2fetc%2fpasswd"}`, []want{{check: CheckTraversal}}},
		{"TraversalDoubleEncoded", "read_file", `{"path":"/workspace/%252e%252e/etc"}`, []want{{check: CheckTraversal}}},
		{"TraversalFullwidth", "read_file", `{"path":"/workspace/．．／．．／etc/passwd"}`, []want{{check: CheckTraversal}}},
		{"TraversalBackslash", "read_file", `{"path":"C:\\work\\..\\Windows\\win.ini"}`, []want{{check: CheckTraversal}}},
		{"TraversalFileURL", "read_file", `{"path":"file:///workspace/../etc/passwd"}`, []want{{check: CheckTraversal}}},
		{"TraversalNested", "read_file", `{"path":"/workspace/a","extra":{"files":["ok","../x"]}}`, []want{{check: CheckTraversal, arg: "/extra/files/1"}}},
		{"TraversalCaseVariantKey", "read_file", `{"PATH":"/etc/passwd"}`, []want{{check: CheckPaths, arg: "/PATH"}}},
		{"PathOutside", "read_file", `{"path":"/etc/shadow"}`, []want{{check: CheckPaths, rule: "read_file", arg: "/path", reason: "outside the allowed paths"}}},
		{"PathHome", "read_file", `{"path":"~/.ssh/id_rsa"}`, []want{{check: CheckPaths}}},
		{"PathEncodedSlash", "read_file", `{"path":"/etc%2fpasswd"}`, []want{{check: CheckPaths}}},
		// Recipients and URLs outside the allowed domains.
		{"ToOtherDomain", "notify", `{"to":"ceo@other.com"}`, []want{{check: CheckDomains, rule: "notify", arg: "/to", reason: `argument /to: domain "other.com"`}}},
		{"ToDisplayName", "notify", `{"to":"Boss <ceo@other.com>"}`, []want{{check: CheckDomains, reason: `"other.com"`}}},
		{"ToList", "notify", `{"to":"team@example.com, ceo@other.com"}`, []want{{check: CheckDomains, reason: `"other.com"`}}},
		{"ToArray", "notify", `{"to":["team@example.com","ceo@other.com"]}`, []want{{check: CheckDomains, arg: "/to/1"}}},
		{"ToLookalikeSuffix", "notify", `{"to":"ceo@example.com.other.com"}`, []want{{check: CheckDomains}}},
		{"ToDoubleAt", "notify", `{"to":"ceo@other.com@example.com"}`, []want{{check: CheckDomains, reason: "malformed"}}},
		{"ToCaseVariantKey", "notify", `{"TO":"ceo@other.com"}`, []want{{check: CheckDomains}}},
		{"LinkUserinfo", "notify", `{"to":"a@example.com","link":"https://example.com@evil.com/x"}`, []want{{check: CheckDomains, arg: "/link", reason: `"evil.com"`}}},
		{"ToSemicolonList", "notify", `{"to":"team@example.com; ceo@other.com"}`, []want{{check: CheckDomains, reason: `"other.com"`}}},
		{"ToSpaceList", "notify", `{"to":"team@example.com ceo@other.com"}`, []want{{check: CheckDomains, reason: `"other.com"`}}},
		{"LinkWithSpace", "notify", `{"to":"a@example.com","link":"https://evil.com/?q=a b"}`, []want{{check: CheckDomains, reason: `"evil.com"`}}},
		{"LinkBackslash", "notify", `{"to":"a@example.com","link":"https://example.com\\@evil.com/"}`, []want{{check: CheckDomains}}},
		{"LinkEncodedHost", "notify", `{"to":"a@example.com","link":"https://evil%2Ecom/"}`, []want{{check: CheckDomains}}},
		{"LinkIP", "notify", `{"to":"a@example.com","link":"http://169.254.169.254/latest/meta-data"}`, []want{{check: CheckDomains, reason: `"169.254.169.254"`}}},
		{"LinkNoScheme", "notify", `{"to":"a@example.com","link":"evil.com/x"}`, []want{{check: CheckDomains, reason: `"evil.com"`}}},
		{"LinkLookalike", "notify", `{"to":"a@example.com","link":"https://exаmple.com/"}`, []want{{check: CheckDomains}}},
		{"Mailto", "notify", `{"to":"mailto:ceo@other.com?subject=x"}`, []want{{check: CheckDomains}}},
		// Amounts above the maximum, however written.
		{"AmountAboveMax", "refund", `{"amount":1e9,"currency":"EUR"}`, []want{{check: CheckArgs, rule: "refund", arg: "/amount", reason: "argument /amount: 1e+09 is above the maximum 500"}}},
		{"AmountJustAboveMax", "refund", `{"amount":500.0000000000000001}`, []want{{check: CheckArgs, arg: "/amount"}}},
		{"AmountNegative", "refund", `{"amount":-5}`, []want{{check: CheckArgs, reason: "below the minimum 0"}}},
		{"AmountString", "refund", `{"amount":"1000000000"}`, []want{{check: CheckArgs, reason: "above the maximum"}}},
		{"AmountUnderscoreString", "refund", `{"amount":"1_000_000"}`, []want{{check: CheckArgs, reason: "want a number"}}},
		{"AmountCaseVariantKey", "refund", `{"AMOUNT":1e9}`, []want{{check: CheckArgs, arg: "/AMOUNT"}}},
		{"AmountMissing", "refund", `{"currency":"EUR"}`, []want{{check: CheckArgs, reason: "required"}}},
		{"CurrencyNotInEnum", "refund", `{"amount":5,"currency":"BTC"}`, []want{{check: CheckArgs, arg: "/currency", reason: "not one of the 2 allowed"}}},
		// Properties the declared schema does not allow.
		{"ExtraProperty", "notify", `{"to":"a@example.com","bcc":"x@example.com"}`, []want{{check: CheckDeclaredSchema, reason: "bcc"}}},
		{"DeclaredTypeWrong", "get_invoice", `{"id":42}`, []want{{check: CheckDeclaredSchema, arg: "/id", reason: "argument /id"}}},
		{"DeclaredRequired", "get_invoice", `{}`, []want{{check: CheckDeclaredSchema, reason: "missing property"}}},
		{"NoParametersDeclared", "get_status", `{"verbose":true}`, []want{{check: CheckDeclaredSchema, reason: "declares no parameters"}}},
		{"OverlaySchema", "mcp__jira__create_ticket", `{"title":"t","priority":"urgent"}`, []want{{check: CheckSchema, rule: "mcp__jira__*", arg: "/priority"}}},
		// Controls: allowed tools with arguments inside the policy.
		{"LegitPath", "read_file", `{"path":"/workspace/src/main.go"}`, nil},
		{"LegitRelativePath", "read_file", `{"path":"./docs/guide/intro.md"}`, nil},
		{"LegitDottedName", "read_file", `{"path":"/workspace/v1..v2.diff"}`, nil},
		{"LegitDomain", "notify", `{"to":"team@example.com","subject":"Q3 / Q4 plan","body":"See ../README and https://other.com/x for details.","link":"https://docs.example.com/a?b=c"}`, nil},
		{"LegitProseMentions", "notify", `{"to":"team@example.com","body":"Ask ceo@other.com or visit https://other.com/x today."}`, nil},
		{"LegitMailto", "notify", `{"to":"mailto:team@example.com?subject=hi"}`, nil},
		{"LegitSubdomainList", "notify", `{"to":["Ops <ops@alerts.example.com>","team@example.com"]}`, nil},
		{"LegitAmount", "refund", `{"amount":499.99,"currency":"USD"}`, nil},
		{"LegitAmountString", "refund", `{"amount":" 500 ","currency":"EUR"}`, nil},
		{"LegitNoArgs", "get_status", ``, nil},
		{"LegitOverlay", "mcp__jira__create_ticket", `{"title":"t","priority":"low"}`, nil},
	} {
		t.Run(test.name, func(t *testing.T) {
			got := p.CheckCalls(declared, []gateway.ToolCall{call(test.tool, test.args)})
			checkViolations(t, got, test.wants)
			for _, v := range got {
				if strings.Contains(v.Reason, "passwd") || strings.Contains(v.Reason, "ceo") || strings.Contains(v.Reason, "BTC") {
					t.Errorf("reason %q quotes an argument value", v.Reason)
				}
			}
		})
	}
}

// Case 25: arguments that are not valid JSON, or JSON with duplicate keys.
func TestCase25InvalidArguments(t *testing.T) {
	p := mustNew(t, testConfig())
	for _, test := range []struct {
		name, args string
		reason     string
	}{
		{"DuplicateKey", `{"amount":1,"amount":1e9}`, `duplicate key: key "amount" appears twice`},
		{"DuplicateEscapedKey", `{"amount":1,"\u0061mount":1e9}`, "duplicate key"},
		{"DuplicateCaseVariant", `{"amount":1,"Amount":1e9}`, `keys "amount" and "Amount" differ only by case`},
		{"DuplicateKelvin", `{"k":1,"\u212a":2,"amount":1}`, "duplicate key"},
		{"DuplicateNested", `{"amount":1,"meta":{"a":1,"a":2}}`, `at "/meta/a"`},
		{"DuplicateInArray", `{"amount":1,"lines":[{"qty":1},{"qty":1,"QTY":9}]}`, `at "/lines/1/QTY"`},
		{"Truncated", `{"amount":1,`, "incomplete JSON"},
		{"TruncatedString", `{"amount":1,"currency":"EU`, "incomplete JSON"},
		{"SingleQuotes", `{'amount':1}`, "JSON syntax error"},
		{"TrailingComma", `{"amount":1,}`, "trailing comma"},
		{"TrailingData", `{"amount":1}{"amount":1e9}`, "after the top-level value"},
		{"NotAnObject", `[1]`, "must be a JSON object, got array"},
		{"DoubleEncoded", `"{\"amount\":1}"`, "must be a JSON object, got string"},
		{"HugeExponent", `{"amount":1e10000000}`, "out of range"},
		{"InvalidUTF8", "{\"amount\":1,\"currency\":\"E\xffR\"}", "invalid unicode"},
		{"LoneSurrogate", `{"amount":1,"currency":"\ud800"}`, "lone high surrogate"},
	} {
		t.Run(test.name, func(t *testing.T) {
			got := p.CheckCalls(declared, []gateway.ToolCall{call("refund", test.args)})
			checkViolations(t, got, []want{{check: CheckArguments, rule: CheckArguments, reason: test.reason}})
		})
	}
	// Control: the same call with valid arguments.
	if got := p.CheckCalls(declared, []gateway.ToolCall{call("refund", `{"amount":1,"currency":"EUR","note":"Amount and amount"}`)}); len(got) != 0 {
		t.Errorf("valid arguments: %+v", got)
	}
}

func TestMaxCallsAndKeepCalls(t *testing.T) {
	p := mustNew(t, testConfig())
	calls := []gateway.ToolCall{
		call("get_invoice", `{"id":"1"}`),
		call("send_email", `{}`),
		call("get_invoice", `{"id":"2"}`),
		call("refund", `{"amount":10}`),
		call("get_invoice", `{"id":"3"}`), // the fifth, over 4
		call("get_invoice", `{"id":"4"}`),
	}
	got := p.CheckCalls(declared, calls)
	checkViolations(t, got, []want{{check: CheckDeny, rule: "send_email"}, {check: CheckMaxCalls, reason: "call 5 is over the limit of 4"}})
	var idx []int
	for _, v := range got {
		idx = append(idx, v.Index)
	}
	if !slices.Equal(idx, []int{1, 4, 5}) {
		t.Errorf("violation indexes %v; want [1 4 5]", idx)
	}
	kept := KeepCalls(calls, got)
	if len(kept) != 3 || kept[0].Function.Arguments != `{"id":"1"}` || kept[2].Function.Name != "refund" {
		t.Errorf("KeepCalls = %+v", kept)
	}
	if all := KeepCalls(calls[:1], nil); len(all) != 1 {
		t.Errorf("KeepCalls without violations dropped calls")
	}
}

func TestUndeclaredCall(t *testing.T) {
	p := mustNew(t, testConfig())
	got := p.CheckCalls(declared, []gateway.ToolCall{call("get_weather", `{}`)})
	checkViolations(t, got, []want{{check: CheckUndeclared, reason: `"get_weather" is not declared`}})
	// With no declared tools every call is undeclared.
	got = p.CheckCalls(nil, []gateway.ToolCall{call("get_invoice", `{"id":"1"}`)})
	checkViolations(t, got, []want{{check: CheckUndeclared}})
}

func TestDefaultAllow(t *testing.T) {
	p := mustNew(t, Config{Default: Allow, Rules: []Rule{{Tool: "send_email", Decision: Deny}}})
	decl := []gateway.Tool{tool("lookup", `{"type":"object","properties":{"q":{"type":"integer"}}}`), tool("Send-Email", "")}
	checkViolations(t, p.CheckCalls(decl, []gateway.ToolCall{call("Send-Email", `{}`)}), []want{{check: CheckDeny, rule: "send_email"}})
	// Declared schemas are not checked without ValidateDeclared.
	checkViolations(t, p.CheckCalls(decl, []gateway.ToolCall{call("lookup", `{"q":"text"}`)}), nil)
	// Traversal is refused with no rule at all.
	checkViolations(t, p.CheckCalls(decl, []gateway.ToolCall{call("lookup", `{"q":"../../etc/passwd"}`)}), []want{{check: CheckTraversal, rule: CheckTraversal}})
	checkViolations(t, p.CheckRequest(decl), []want{{check: CheckDeny, rule: "send_email"}})
}

func TestZeroConfigDeniesAll(t *testing.T) {
	p := mustNew(t, Config{})
	checkViolations(t, p.CheckCalls(declared, []gateway.ToolCall{call("get_invoice", `{"id":"1"}`)}), []want{{check: CheckDeny, rule: "default"}})
}

func TestRuleMatching(t *testing.T) {
	for _, test := range []struct {
		pattern, decision, name string
		match                   bool
	}{
		{"get_*", Allow, "get_invoice", true},
		{"get_*", Allow, "GetInvoice", true},
		{"get_*", Allow, "mcp__billing__get_invoice", false}, // allow without server: local tools only
		{"mcp__billing__get_*", Allow, "billing.get_invoice", true},
		{"mcp__*", Allow, "mcp__any__tool", true},
		{"mcp__*", Allow, "tool", false},
		{"mcp__*__*", Deny, "srv/tool", true},
		{"send_email", Deny, "resend_email", false},
		{"send_email", Deny, "email", false},
		{"send_email", Deny, "send_email_v2", false},
		{"send_*", Deny, "send_email_v2", true},
		{"delete_?", Deny, "delete_x", true},
		{"*", Deny, "anything.at/all", true},
	} {
		r, err := (&Policy{}).compileRule(Rule{Tool: test.pattern, Decision: test.decision})
		if err != nil {
			t.Fatalf("compileRule(%q): %v", test.pattern, err)
		}
		if got := r.matches(canonical(test.name)); got != test.match {
			t.Errorf("%s rule %q matches %q = %v; want %v", test.decision, test.pattern, test.name, got, test.match)
		}
	}
}

func TestNewErrors(t *testing.T) {
	for _, test := range []struct {
		name string
		c    Config
		err  string
	}{
		{"Default", Config{Default: "maybe"}, "default"},
		{"Decision", Config{Rules: []Rule{{Tool: "x", Decision: "permit"}}}, "decision"},
		{"DenyWithArgs", Config{Rules: []Rule{{Tool: "x", Decision: Deny, Paths: []string{"/"}}}}, "deny rule takes no"},
		{"PatternChars", Config{Rules: []Rule{{Tool: "x y", Decision: Allow}}}, "character"},
		{"EmptyPattern", Config{Rules: []Rule{{Decision: Allow}}}, "empty"},
		{"BadRegexp", Config{Rules: []Rule{{Tool: "x", Decision: Allow, Args: map[string]Constraint{"a": {Pattern: "("}}}}}, "pattern"},
		{"MinAboveMax", Config{Rules: []Rule{{Tool: "x", Decision: Allow, Args: map[string]Constraint{"a": {Min: f64(2), Max: f64(1)}}}}}, "above max"},
		{"BadType", Config{Rules: []Rule{{Tool: "x", Decision: Allow, Args: map[string]Constraint{"a": {Type: "float"}}}}}, "JSON type"},
		{"RequiredForbidden", Config{Rules: []Rule{{Tool: "x", Decision: Allow, Args: map[string]Constraint{"a": {Required: true, Forbidden: true}}}}}, "both"},
		{"BadSchema", Config{Rules: []Rule{{Tool: "x", Decision: Allow, Schema: json.RawMessage(`{"type":7}`)}}}, "schema"},
		{"NegativeMax", Config{MaxCallsPerRequest: -1}, "negative"},
	} {
		t.Run(test.name, func(t *testing.T) {
			err := test.c.Validate()
			if err == nil || !strings.Contains(err.Error(), test.err) {
				t.Fatalf("Validate = %v; want error containing %q", err, test.err)
			}
		})
	}
	if err := testConfig().Validate(); err != nil {
		t.Errorf("testConfig: %v", err)
	}
}

func TestConstraintPointer(t *testing.T) {
	p := mustNew(t, Config{Rules: []Rule{{Tool: "pay", Decision: Allow, Args: map[string]Constraint{
		"/payee/iban": {Pattern: `DE[0-9]{20}`},
		"/lines/0":    {Type: "integer", MaxLength: 3},
		"note":        {Forbidden: true},
		"tags":        {MaxLength: 2},
	}}}})
	decl := []gateway.Tool{tool("pay", "")}
	checkViolations(t, p.CheckCalls(decl, []gateway.ToolCall{call("pay", `{"Payee":{"IBAN":"GB00"},"lines":[1.5],"note":"x","tags":["a","b","c"]}`)}), []want{
		{check: CheckArgs, arg: "/Payee/IBAN", reason: "does not match the pattern"},
		{check: CheckArgs, arg: "/lines/0", reason: "want integer"},
		{check: CheckArgs, arg: "/note", reason: "forbidden"},
		{check: CheckArgs, arg: "/tags", reason: "3 items is longer than 2"},
	})
	checkViolations(t, p.CheckCalls(decl, []gateway.ToolCall{call("pay", `{"payee":{"iban":"DE12345678901234567890"},"lines":[2],"tags":["a"]}`)}), nil)
}

// FuzzCheckCalls: any arguments give violations, never a panic; those
// with a key twice in one object (also by case) or that are not one JSON
// object are refused as arguments, per an oracle built on
// encoding/json's tokenizer.
func FuzzCheckCalls(f *testing.F) {
	for _, s := range []string{
		`{"amount":1,"amount":1e9}`, `{"amount":1,"AMOUNT":1e9}`, `{"amount":1,"\u0061mount":2}`, `{"a":{"b":1,"B":2}}`,
		`{"amount":5,"currency":"EUR"}`, `{"path":"../x"}`, `{"to":"a@b.c"}`, `[{"a":1,"a":2}]`, `{"amount":1,`, ``, `null`,
	} {
		f.Add("refund", s)
	}
	f.Add("read_file", `{"path":"/workspace/%2e%2e/x"}`)
	f.Add("notify", `{"to":"x@example.com"}`)
	p := mustNew(f, testConfig())
	f.Fuzz(func(t *testing.T, name, args string) {
		vs := p.CheckCalls(declared, []gateway.ToolCall{call(name, args)})
		argErr := slices.ContainsFunc(vs, func(v Violation) bool { return v.Check == CheckArguments })
		for _, v := range vs {
			if v.Index != 0 || v.Reason == "" || v.Rule == "" {
				t.Fatalf("bad violation %+v", v)
			}
		}
		if slices.ContainsFunc(vs, func(v Violation) bool { return v.Check == CheckName || v.Check == CheckDeny }) {
			return // arguments not looked at
		}
		if strings.TrimSpace(args) == "" {
			args = "{}"
		}
		if json.Valid([]byte(args)) && (foldDuplicateOracle(args) || !strings.HasPrefix(strings.TrimSpace(args), "{")) && !argErr {
			t.Fatalf("CheckCalls(%q, %q) = %+v; want an arguments violation", name, args, vs)
		}
		if !json.Valid([]byte(args)) && !argErr {
			t.Fatalf("CheckCalls(%q, %q) = %+v; invalid JSON accepted", name, args, vs)
		}
	})
}

// foldDuplicateOracle reports whether an object of s, valid JSON, has two
// keys equal under case folding.
func foldDuplicateOracle(s string) bool {
	d := json.NewDecoder(strings.NewReader(s))
	type frame struct {
		obj    bool
		keys   []string
		expect bool
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, ok := tok.(string); ok && top != nil && top.obj && top.expect {
			if slices.ContainsFunc(top.keys, func(o string) bool { return strings.EqualFold(o, k) }) {
				return true
			}
			top.keys = append(top.keys, k)
			top.expect = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, expect: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].expect = true
		}
	}
}

func BenchmarkCheckCalls(b *testing.B) {
	p := mustNew(b, testConfig())
	for _, n := range []int{1, 4} {
		calls := make([]gateway.ToolCall, n)
		for i := range calls {
			calls[i] = call("notify", fmt.Sprintf(`{"to":["team@example.com","ops@alerts.example.com"],"subject":"Invoice %d overdue","body":"Customer 4711 has not paid invoice INV-%d; see the attached statement.","link":"https://billing.example.com/invoices/%d"}`, i, i, i))
		}
		if vs := p.CheckCalls(declared, calls); len(vs) != 0 {
			b.Fatal(vs)
		}
		b.Run(fmt.Sprintf("calls=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if vs := p.CheckCalls(declared, calls); len(vs) != 0 {
					b.Fatal(vs)
				}
			}
		})
	}
}

func BenchmarkCheckRequest(b *testing.B) {
	p := mustNew(b, testConfig())
	b.ReportAllocs()
	for b.Loop() {
		p.CheckRequest(declared)
	}
}

func TestConcurrentUse(t *testing.T) {
	p := mustNew(t, testConfig())
	done := make(chan bool)
	for g := range 8 {
		go func() {
			defer func() { done <- true }()
			for i := range 100 {
				vs := p.CheckCalls(declared, []gateway.ToolCall{
					call("refund", fmt.Sprintf(`{"amount":%d}`, 400+g*10+i%20)),
					call("read_file", `{"path":"../secret"}`),
				})
				amountBad := 400+g*10+i%20 > 500
				if got := slices.ContainsFunc(vs, func(v Violation) bool { return v.Check == CheckArgs }); got != amountBad {
					t.Errorf("amount %d: violations %+v", 400+g*10+i%20, vs)
					return
				}
				if !slices.ContainsFunc(vs, func(v Violation) bool { return v.Check == CheckTraversal && v.Index == 1 }) {
					t.Errorf("traversal not reported: %+v", vs)
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
}
