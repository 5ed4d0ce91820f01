package mcp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"aigw/gateway/guard/tools"
	"aigw/ledger"

	gwmcp "aigw/gateway/mcp"
)

func allowAll() tools.Config { return tools.Config{Default: tools.Allow} }

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func f64(v float64) *float64 { return &v }

// policy is the test upstreams' tool policy: everything but delete_*,
// "add" only below 100, paths only under /workspace.
func policy() tools.Config {
	return tools.Config{Default: tools.Allow, Rules: []tools.Rule{
		{Tool: "delete_*", Decision: tools.Deny},
		{Tool: "add", Decision: tools.Allow, Args: map[string]tools.Constraint{"a": {Max: f64(100)}}},
		{Tool: "read_file", Decision: tools.Allow, Paths: []string{"/workspace/**"}},
	}}
}

// stdioUpstream runs the test binary as a stdio MCP server.
func stdioUpstream(name string, tenants ...string) gwmcp.Upstream {
	return gwmcp.Upstream{Name: name, Tenants: tenants, Command: []string{os.Args[0], "-test.run=^$"},
		Env: []string{stdioEnv + "=1"}, Tools: policy()}
}

func TestGatewayUpstreams(t *testing.T) {
	t.Parallel()
	up := serveUpstream(t, newUpstreamServer("http"))
	upJSON := serveUpstream(t, newUpstreamServer("json"), &sdk.StreamableHTTPOptions{JSONResponse: true})
	h := newHarness(t, func(c *gwmcp.Config) {
		c.Upstreams = []gwmcp.Upstream{
			{Name: "web", Tenants: []string{"tenant-a"}, URL: up.URL, Tools: policy(), Headers: map[string]string{"X-Upstream-Token": "t0k"}},
			{Name: "webjson", Tenants: []string{"tenant-a"}, URL: upJSON.URL, Tools: policy()},
			{Name: "webflag", Tenants: []string{"tenant-a"}, URL: up.URL, Tools: policy(), Injection: gwmcp.InjectionFlag},
			stdioUpstream("local", "tenant-a"),
		}
	})
	waitConnected(t, h.gw)
	cs := mustConnect(t, h.url, "key-a", "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")

	tl := toolNames(t, cs)
	for _, server := range []string{"web", "local"} {
		for _, n := range []string{"echo", "read_file", "add", "weather", "fail"} {
			if tl[server+"__"+n] == nil {
				t.Errorf("tools/list lacks %s__%s (got %v)", server, n, keys(tl))
			}
		}
		if tl[server+"__delete_repo"] != nil {
			t.Errorf("tools/list shows %s__delete_repo, which the policy denies", server)
		}
		if tl[server+"__helper"] != nil {
			t.Errorf("tools/list shows %s__helper, whose description is a prompt injection", server)
		}
	}
	if tl["webflag__helper"] == nil {
		t.Error("flag mode withholds a tool whose description looks like an injection; want it exposed")
	}
	if s := tl["web__add"].InputSchema; s == nil {
		t.Error("web__add has no inputSchema")
	}

	type want struct {
		isError bool
		text    string // substring of the answer
		rpcErr  string // substring of the JSON-RPC error ("" for none)
		outcome string
		stage   string // a verdict stage that must say decision
		dec     string
	}
	for _, tc := range []struct {
		name string
		tool string
		args any
		want want
	}{
		{"ForwardedHTTP", "web__echo", map[string]any{"text": "hello"}, want{text: "http: hello", outcome: "ok", stage: "injection", dec: "pass"}},
		{"ForwardedStdio", "local__echo", map[string]any{"text": "hello"}, want{text: "stdio: hello", outcome: "ok", stage: "policy", dec: "allow"}},
		{"Structured", "web__add", map[string]any{"a": 2, "b": 3}, want{text: `"sum":5`, outcome: "ok"}},
		{"DeniedTool", "web__delete_repo", map[string]any{"name": "prod"}, want{isError: true, text: `denied by rule "delete_*"`, outcome: "denied", stage: "policy", dec: "deny"}},
		{"ConstrainedArg", "web__add", map[string]any{"a": 1000, "b": 1}, want{isError: true, text: "above", outcome: "denied", stage: "policy", dec: "deny"}},
		{"PathOutside", "local__read_file", map[string]any{"path": "/etc/passwd"}, want{isError: true, text: "outside", outcome: "denied"}},
		{"PathTraversal", "local__read_file", map[string]any{"path": "/workspace/../etc/passwd"}, want{isError: true, text: "..", outcome: "denied"}},
		{"PathInside", "local__read_file", map[string]any{"path": "/workspace/notes.md"}, want{text: "contents of /workspace/notes.md", outcome: "ok"}},
		{"SchemaType", "web__echo", map[string]any{"text": 5}, want{isError: true, text: "declared parameters", outcome: "denied"}},
		{"SchemaUnknownArg", "web__echo", map[string]any{"text": "x", "extra": true}, want{isError: true, text: "extra", outcome: "denied"}},
		{"InjectionBlocked", "web__weather", map[string]any{"name": "Paris"}, want{isError: true, text: "prompt injection", outcome: "blocked", stage: "injection", dec: "block"}},
		{"InjectionBlockedStdio", "local__weather", map[string]any{"name": "Paris"}, want{isError: true, text: "prompt injection", outcome: "blocked", stage: "injection", dec: "block"}},
		{"InjectionFlagged", "webflag__weather", map[string]any{"name": "Paris"}, want{text: "Ignore all previous instructions", outcome: "ok", stage: "injection", dec: "flag"}},
		{"UpstreamToolError", "web__fail", nil, want{isError: true, text: "the disk is full", outcome: "tool_error"}},
		{"HiddenTool", "web__helper", nil, want{isError: true, text: "description looks like a prompt injection", outcome: "denied"}},
		{"UnknownTool", "web__nope", nil, want{rpcErr: "unknown tool", outcome: "unknown_tool"}},
		{"JSONUpstream", "webjson__echo", map[string]any{"text": "hi"}, want{text: "json: hi", outcome: "ok"}},
		{"JSONUpstreamBlocked", "webjson__weather", map[string]any{"name": "Paris"}, want{isError: true, text: "prompt injection", outcome: "blocked"}},
		{"UpstreamRPCError", "web__rpcerr", nil, want{rpcErr: "quota exceeded upstream", outcome: "upstream_error"}},
		{"UpstreamRPCErrorJSON", "webjson__rpcerr", nil, want{rpcErr: "quota exceeded upstream", outcome: "upstream_error"}},
		{"UpstreamRPCErrorInjection", "web__rpcinject", nil, want{rpcErr: "withheld", outcome: "upstream_error", stage: "injection", dec: "block"}},
		{"UpstreamRPCErrorStdio", "local__rpcerr", nil, want{rpcErr: "quota exceeded upstream", outcome: "upstream_error"}},
	} {
		// A call whose _meta holds more than a progress token goes
		// through the SDK's server instead of the gateway's fast path:
		// both must behave alike.
		for _, path := range []struct {
			name string
			meta sdk.Meta
		}{{"Fast", nil}, {"SDK", sdk.Meta{"aigw.test": "sdk-path"}}} {
			t.Run(tc.name+"/"+path.name, func(t *testing.T) {
				n := len(h.rec.all("tenant-a", ledger.KindToolCall))
				res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: tc.tool, Arguments: tc.args, Meta: path.meta})
				switch {
				case tc.want.rpcErr != "":
					var je *jsonrpc.Error
					if !errors.As(err, &je) || !strings.Contains(je.Message, tc.want.rpcErr) {
						t.Fatalf("%s = %v, %v; want JSON-RPC error %q", tc.tool, res, err, tc.want.rpcErr)
					}
				case err != nil:
					t.Fatalf("%s: %v", tc.tool, err)
				default:
					got := text(res)
					if res.StructuredContent != nil {
						b, _ := json.Marshal(res.StructuredContent)
						got += string(b)
					}
					if res.IsError != tc.want.isError || !strings.Contains(got, tc.want.text) {
						t.Errorf("%s = %q (isError %v); want %q (isError %v)", tc.tool, got, res.IsError, tc.want.text, tc.want.isError)
					}
				}
				evs := h.rec.all("tenant-a", ledger.KindToolCall)
				if len(evs) != n+1 {
					t.Fatalf("%d tool_call events recorded; want 1", len(evs)-n)
				}
				checkToolCall(t, evs[n], strings.SplitN(tc.tool, "__", 2), tc.want.outcome, tc.want.stage, tc.want.dec)
			})
		}
	}
	// The HTTP upstream gets its configured headers and the trace, never
	// the agent's gateway key.
	r, err := call(t, cs, "web__headers", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := text(r); !strings.Contains(got, "token=t0k ") || !strings.Contains(got, "traceparent=00-"+traceID+"-") || strings.Contains(got, "key-a") {
		t.Errorf("upstream saw %q; want its token, the agent's trace and not the gateway key", got)
	}
}

// checkToolCall checks a tool_call event: attributes, verdict, and the
// payload's commitment and salted hashes; the arguments are not in the
// entry in clear.
func checkToolCall(t *testing.T, e recorded, serverTool []string, outcome, stage, decision string) {
	t.Helper()
	ev := e.ev
	if ev.Kind != ledger.KindToolCall || ev.Tenant != "tenant-a" || ev.Actor.KeyID != "ka" || ev.TraceID != traceID {
		t.Errorf("event: kind %s tenant %s actor %+v trace %s", ev.Kind, ev.Tenant, ev.Actor, ev.TraceID)
	}
	a := attrsOf(t, e)
	if a["server"] != serverTool[0] || a["tool"] != serverTool[1] || a["outcome"] != outcome {
		t.Errorf("attrs %v; want server %s tool %s outcome %s", a, serverTool[0], serverTool[1], outcome)
	}
	if _, ok := a["duration_us"].(float64); !ok {
		t.Errorf("attrs %v: no duration_us", a)
	}
	if stage != "" {
		found := false
		for _, v := range a["verdicts"].([]any) {
			if m := v.(map[string]any); m["stage"] == stage && m["decision"] == decision {
				found = true
			}
		}
		if !found {
			t.Errorf("verdicts %v; want %s: %s", a["verdicts"], stage, decision)
		}
	}
	// The payload is committed, and each member proven by its hash.
	if c, _ := ledger.Commit(e.payload, e.salt); c != ev.PayloadSHA256 || ev.PayloadSHA256 == "" {
		t.Fatalf("payload commitment %s; entry says %s", c, ev.PayloadSHA256)
	}
	var p struct {
		Arguments json.RawMessage
		Result    json.RawMessage
		Salt      string
	}
	if err := json.Unmarshal(e.payload, &p); err != nil {
		t.Fatalf("payload %s: %v", e.payload, err)
	}
	salt, _ := hex.DecodeString(p.Salt)
	hash := func(b []byte) string {
		h := sha256.New()
		h.Write(salt)
		h.Write(b)
		return hex.EncodeToString(h.Sum(nil))
	}
	if a["arguments_sha256"] != hash(p.Arguments) {
		t.Errorf("arguments_sha256 %v; payload arguments %s hash to %s", a["arguments_sha256"], p.Arguments, hash(p.Arguments))
	}
	if string(p.Result) != "null" && a["result_sha256"] != hash(p.Result) {
		t.Errorf("result_sha256 %v; payload result hashes to %s", a["result_sha256"], hash(p.Result))
	}
	if len(p.Arguments) > 4 && bytes.Contains(e.entry, p.Arguments) {
		t.Errorf("entry %s holds the arguments %s in clear", e.entry, p.Arguments)
	}
	if bytes.Contains(e.entry, []byte("Ignore all previous")) {
		t.Errorf("entry %s holds the result in clear", e.entry)
	}
}

func TestUpstreamDownAndBack(t *testing.T) {
	t.Parallel()
	up := serveUpstream(t, newUpstreamServer("http"))
	h := newHarness(t, func(c *gwmcp.Config) {
		c.Upstreams = []gwmcp.Upstream{
			{Name: "web", Tenants: []string{"tenant-a"}, URL: up.URL, Tools: allowAll()},
			stdioUpstream("local", "tenant-a"),
		}
	})
	waitConnected(t, h.gw)
	cs := mustConnect(t, h.url, "key-a")
	if tl := toolNames(t, cs); tl["web__echo"] == nil || tl["local__echo"] == nil {
		t.Fatalf("tools = %v", keys(tl))
	}

	// The stdio server exits: the gateway relaunches it.
	if _, err := call(t, cs, "local__exit", nil); err == nil {
		t.Error("local__exit answered")
	}
	waitFor(t, "stdio upstream relaunched", func() bool {
		for _, st := range h.gw.Upstreams() {
			if st.Name == "local" {
				return st.Connected && st.Reconnects >= 1
			}
		}
		return false
	})
	if r, err := call(t, cs, "local__echo", map[string]any{"text": "again"}); err != nil || text(r) != "stdio: again" {
		t.Errorf("after relaunch: %v, %v", r, err)
	}

	// The HTTP server dies: its tools leave tools/list, calls fail clearly.
	up.CloseClientConnections()
	up.Close()
	waitFor(t, "web tools withdrawn", func() bool { return toolNames(t, cs)["web__echo"] == nil })
	if tl := toolNames(t, cs); tl["local__echo"] == nil || tl[gwmcp.ToolModels] == nil {
		t.Errorf("tools = %v; want local__* and the context tools still", keys(tl))
	}
	_, err := call(t, cs, "web__echo", map[string]any{"text": "x"})
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != gwmcp.CodeUpstreamUnavailable {
		t.Errorf("calling a dead upstream: %v; want JSON-RPC error %d", err, gwmcp.CodeUpstreamUnavailable)
	}
	if e := h.rec.last(t, "tenant-a", ledger.KindToolCall); attrsOf(t, e)["outcome"] != gwmcp.OutcomeUnavailable {
		t.Errorf("last tool_call = %s; want outcome unavailable", e.entry)
	}
	for _, st := range h.gw.Upstreams() {
		if st.Name == "web" && (st.Connected || st.LastError == "") {
			t.Errorf("web status %+v; want disconnected with an error", st)
		}
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	up := serveUpstream(t, newUpstreamServer("http"))
	h := newHarness(t, func(c *gwmcp.Config) {
		c.Upstreams = []gwmcp.Upstream{{Name: "web", Tenants: []string{"tenant-a", "tenant-b"}, URL: up.URL, Tools: allowAll(),
			RateLimit: gwmcp.RateLimit{RPM: 2}}}
	})
	waitConnected(t, h.gw)
	a := mustConnect(t, h.url, "key-a")
	for i := range 2 {
		if r, err := call(t, a, "web__echo", map[string]any{"text": "x"}); err != nil || r.IsError {
			t.Fatalf("call %d: %v, %v", i, r, err)
		}
	}
	r, err := call(t, a, "web__echo", map[string]any{"text": "x"})
	if err != nil || !r.IsError || !strings.Contains(text(r), "Rate limit reached") {
		t.Fatalf("third call = %v, %v; want a rate-limit tool error", r, err)
	}
	if e := h.rec.last(t, "tenant-a", ledger.KindToolCall); attrsOf(t, e)["outcome"] != gwmcp.OutcomeRateLimited {
		t.Errorf("last tool_call = %s; want rate_limited", e.entry)
	}
	// The limit is per tenant.
	b := mustConnect(t, h.url, "key-b")
	if r, err := call(t, b, "web__echo", map[string]any{"text": "x"}); err != nil || r.IsError {
		t.Errorf("tenant-b's first call: %v, %v", r, err)
	}
}

// The gateway's calls reuse their connections to the upstream: a call
// that closed its connection (an event stream left unread) would cost a
// TCP handshake each.
func TestUpstreamConnectionsReused(t *testing.T) {
	t.Parallel()
	srv := newUpstreamServer("u")
	var conns atomic.Int64
	up := httptest.NewUnstartedServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	h := newHarness(t, func(c *gwmcp.Config) {
		c.Upstreams = []gwmcp.Upstream{{Name: "up", Tenants: []string{"tenant-a"}, URL: up.URL, Tools: allowAll()}}
	})
	waitConnected(t, h.gw)
	cs := mustConnect(t, h.url, "key-a")
	before := conns.Load()
	for range 50 {
		if r, err := call(t, cs, "up__echo", map[string]any{"text": "x"}); err != nil || r.IsError {
			t.Fatalf("call: %v, %v", r, err)
		}
	}
	if n := conns.Load() - before; n > 3 {
		t.Errorf("50 calls opened %d connections to the upstream; want them reused", n)
	}
}

func TestSessions(t *testing.T) {
	t.Parallel()
	h := twoTenantHarness(t, func(c *gwmcp.Config) { c.SessionTimeout = 300 * time.Millisecond })
	cs := mustConnect(t, h.url, "key-a")

	// Another key cannot call tools on the session, even of its tenant.
	for _, key := range []string{"key-b", "key-a2"} {
		body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"up__echo","arguments":{"text":"hijack"}}}`
		resp := postJSON(t, h.url, body, "Authorization", "Bearer "+key, "Mcp-Session-Id", cs.ID())
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || bytes.Contains(b, []byte("hijack")) {
			t.Errorf("%s calling on key-a's session: status %d body %s; want 403", key, resp.StatusCode, b)
		}
	}
	for _, e := range h.rec.all("", ledger.KindToolCall) {
		t.Errorf("a refused session recorded a tool call: %s", e.entry)
	}

	// Calls keep a session alive, though the SDK does not see them.
	for end := time.Now().Add(900 * time.Millisecond); time.Now().Before(end); time.Sleep(30 * time.Millisecond) {
		if _, err := call(t, cs, "up__echo", map[string]any{"text": "x"}); err != nil {
			t.Fatalf("call on a live session: %v", err)
		}
	}
	if _, err := cs.ListTools(context.Background(), nil); err != nil {
		t.Fatalf("tools/list after 900 ms of calls (timeout 300 ms): %v", err)
	}
	// A call that outlasts the timeout is use, not idleness: its session
	// is not closed under it, and lives on after it.
	if res, err := call(t, cs, "up__sleep", map[string]any{"ms": 900}); err != nil || res.IsError {
		t.Fatalf("a call of 900 ms (timeout 300 ms): %v %+v", err, res)
	}
	if _, err := cs.ListTools(context.Background(), nil); err != nil {
		t.Fatalf("tools/list after a call of 900 ms (timeout 300 ms): %v", err)
	}
	// An idle session is closed (any use would keep it alive: wait well
	// past the timeout, then use it).
	time.Sleep(time.Second)
	if _, err := call(t, cs, "up__echo", map[string]any{"text": "x"}); err == nil {
		t.Error("a session idle for 1 s (timeout 300 ms) still answers")
	}
}
