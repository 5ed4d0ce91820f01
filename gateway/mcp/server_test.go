package mcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"aigw/gateway"
	gwmcp "aigw/gateway/mcp"
)

const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

func TestContextFeatures(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	cs := mustConnect(t, h.url, "key-a", "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01", "X-Aigw-Agent", "planner")
	ctx := context.Background()

	tools := toolNames(t, cs)
	for _, n := range []string{gwmcp.ToolModels, gwmcp.ToolGuardrails, gwmcp.ToolBudgets, gwmcp.ToolUsage, gwmcp.ToolProof} {
		if tools[n] == nil {
			t.Errorf("tools/list lacks %s (got %v)", n, keys(tools))
		}
	}
	res, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatalf("ListResources: %v", err)
	}
	var uris []string
	for _, r := range res.Resources {
		uris = append(uris, r.URI)
	}
	slices.Sort(uris)
	want := []string{gwmcp.ResourceBudgets, gwmcp.ResourceGuardrails, gwmcp.ResourceModels, gwmcp.ResourceUsage}
	if !slices.Equal(uris, want) {
		t.Errorf("resources = %v; want %v", uris, want)
	}

	for _, tc := range []struct {
		tool string
		args any
		want []string // substrings of the JSON answer
	}{
		{gwmcp.ToolModels, nil, []string{`"gpt-4o"`}},
		{gwmcp.ToolGuardrails, nil, []string{`"tenant":"tenant-a"`, `"key":"ka"`}},
		{gwmcp.ToolBudgets, nil, []string{`"tenant":"tenant-a"`, `"remaining_usd":"42.50"`}},
		{gwmcp.ToolUsage, map[string]any{"from": "2026-01-01", "to": "2026-01-02T00:00:00Z"}, []string{`"tenant":"tenant-a"`, `"span_h":24`, `"from":"2026-01-01T00:00:00Z"`}},
		{gwmcp.ToolUsage, nil, []string{`"tenant":"tenant-a"`}},
		{gwmcp.ToolProof, map[string]any{"trace_id": traceID}, []string{`"tenant":"tenant-a"`, `"leaf_index":3`}},
	} {
		r, err := call(t, cs, tc.tool, tc.args)
		if err != nil {
			t.Fatalf("%s: %v", tc.tool, err)
		}
		if r.IsError {
			t.Fatalf("%s: tool error %q", tc.tool, text(r))
		}
		for _, w := range tc.want {
			if !strings.Contains(text(r), w) {
				t.Errorf("%s = %s; want it to contain %s", tc.tool, text(r), w)
			}
		}
		if tc.tool == gwmcp.ToolModels && strings.Contains(text(r), "gpt-secret") {
			t.Errorf("models = %s: lists a model the key may not use", text(r))
		}
		if r.StructuredContent == nil {
			t.Errorf("%s: no structured content", tc.tool)
		}
	}
	for _, tc := range []struct {
		tool string
		args any
		want string
	}{
		{gwmcp.ToolProof, map[string]any{"trace_id": "nope"}, "trace_id must be 32 lowercase hex digits"},
		{gwmcp.ToolProof, map[string]any{"trace_id": strings.Repeat("0", 31) + "1"}, "not found"},
		{gwmcp.ToolUsage, map[string]any{"from": "2026-02-01", "to": "2026-01-01"}, "from must be before to"},
		{gwmcp.ToolUsage, map[string]any{"from": "yesterday"}, "from: want RFC 3339"},
		{gwmcp.ToolUsage, map[string]any{"tenant": "tenant-b"}, "invalid arguments"},
	} {
		r, err := call(t, cs, tc.tool, tc.args)
		if err != nil {
			t.Fatalf("%s(%v): %v", tc.tool, tc.args, err)
		}
		if !r.IsError || !strings.Contains(text(r), tc.want) {
			t.Errorf("%s(%v) = %q (isError %v); want a tool error with %q", tc.tool, tc.args, text(r), r.IsError, tc.want)
		}
	}

	for _, uri := range append(want, "aigw://proof/"+traceID) {
		rr, err := cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: uri})
		if err != nil {
			t.Fatalf("ReadResource(%s): %v", uri, err)
		}
		if len(rr.Contents) != 1 || rr.Contents[0].MIMEType != "application/json" || !json.Valid([]byte(rr.Contents[0].Text)) {
			t.Errorf("ReadResource(%s) = %+v; want one JSON content", uri, rr.Contents)
		}
		if uri != gwmcp.ResourceModels && !strings.Contains(rr.Contents[0].Text, `"tenant":"tenant-a"`) {
			t.Errorf("ReadResource(%s) = %s; want tenant-a's", uri, rr.Contents[0].Text)
		}
	}
	if _, err := cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: "aigw://proof/" + strings.Repeat("0", 31) + "1"}); err == nil {
		t.Error("ReadResource(unknown proof) succeeded")
	}

	prompts, err := cs.ListPrompts(ctx, nil)
	if err != nil || len(prompts.Prompts) != 2 {
		t.Fatalf("ListPrompts = %v, %v; want 2 prompts", prompts, err)
	}
	p, err := cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: gwmcp.PromptContext})
	if err != nil {
		t.Fatalf("GetPrompt(context): %v", err)
	}
	if pt := p.Messages[0].Content.(*sdk.TextContent).Text; !strings.Contains(pt, `"remaining_usd": "42.50"`) || !strings.Contains(pt, "gpt-4o") {
		t.Errorf("context prompt = %s", pt)
	}
	p, err = cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: gwmcp.PromptVerify, Arguments: map[string]string{"trace_id": traceID}})
	if err != nil {
		t.Fatalf("GetPrompt(verify): %v", err)
	}
	if pt := p.Messages[0].Content.(*sdk.TextContent).Text; !strings.Contains(pt, `"leaf_index": 3`) {
		t.Errorf("verify prompt = %s", pt)
	}

	// Every request is an mcp event of tenant-a, in the agent's trace.
	evs := h.rec.all("", "")
	methods := map[string]int{}
	for _, e := range evs {
		ev := e.ev
		if ev.Tenant != "tenant-a" || ev.Kind != gwmcp.KindMCP || ev.Actor.KeyID != "ka" || ev.Actor.AgentID != "planner" || ev.Policy != "p1" {
			t.Errorf("event %s: tenant %s kind %s actor %+v policy %q; want tenant-a mcp ka/planner p1", ev.ID, ev.Tenant, ev.Kind, ev.Actor, ev.Policy)
		}
		if ev.TraceID != traceID {
			t.Errorf("event %s: trace id %s; want the agent's %s", ev.ID, ev.TraceID, traceID)
		}
		attrs := attrsOf(t, e)
		m, _ := attrs["method"].(string)
		methods[m]++
		if _, ok := attrs["duration_us"].(float64); !ok || attrs["outcome"] == nil {
			t.Errorf("event %s attrs %v: want outcome and duration_us", ev.ID, attrs)
		}
	}
	for m, n := range map[string]int{"initialize": 1, "tools/list": 1, "tools/call": 11, "resources/list": 1, "resources/read": 6, "prompts/list": 1, "prompts/get": 2} {
		if methods[m] != n {
			t.Errorf("%d %s events; want %d (all: %v)", methods[m], m, n, methods)
		}
	}
	// A tool error and a JSON-RPC error say so.
	var sawToolError, sawError bool
	for _, e := range evs {
		a := attrsOf(t, e)
		switch a["outcome"] {
		case gwmcp.OutcomeToolError:
			sawToolError = a["name"] == gwmcp.ToolProof || a["name"] == gwmcp.ToolUsage || sawToolError
		case gwmcp.OutcomeError:
			sawError = a["method"] == "resources/read" && a["error"] != nil
		}
	}
	if !sawToolError || !sawError {
		t.Errorf("tool error recorded %v, JSON-RPC error recorded %v; want both", sawToolError, sawError)
	}
}

func TestContextFeaturesLeftOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *gwmcp.Config) {
		c.Guardrails, c.Budgets, c.Usage, c.Proof = nil, nil, nil, nil
	})
	cs := mustConnect(t, h.url, "key-a")
	tools := toolNames(t, cs)
	if len(tools) != 1 || tools[gwmcp.ToolModels] == nil {
		t.Errorf("tools = %v; want only %s", keys(tools), gwmcp.ToolModels)
	}
	if _, err := call(t, cs, gwmcp.ToolBudgets, nil); err == nil {
		t.Errorf("calling %s (not configured) succeeded", gwmcp.ToolBudgets)
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	post := func(auth, session string) *http.Response {
		return postJSON(t, h.url, initialize, "Authorization", auth, "Mcp-Session-Id", session)
	}
	for _, tc := range []struct {
		name, auth string
		status     int
		code       string
	}{
		{"NoKey", "", 401, "invalid_api_key"},
		{"WrongKey", "Bearer sk-wrong", 401, "invalid_api_key"},
		{"NotBearer", "Basic a2V5LWE=", 401, "invalid_api_key"},
		{"RevokedKey", "Bearer key-revoked", 401, "invalid_api_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(tc.auth, "")
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e struct {
				Error struct{ Message, Type, Code string }
			}
			if resp.StatusCode != tc.status || json.Unmarshal(body, &e) != nil || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Errorf("status %d body %s; want %d with an OpenAI-style error %q", resp.StatusCode, body, tc.status, tc.code)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate header")
			}
		})
	}
	if _, err := connect(t, h.url, "sk-wrong"); err == nil {
		t.Error("the SDK client connected with a wrong key")
	}
	// The revoked key of a known tenant is recorded in its log.
	if e := h.rec.last(t, "tenant-a", gwmcp.KindMCP); attrsOf(t, e)["outcome"] != gwmcp.OutcomeRefused || e.ev.Actor.KeyID != "krev" {
		t.Errorf("refusal event = %s; want outcome refused for krev", e.entry)
	}

	// A session belongs to its key: another key cannot use it, even of
	// the same tenant.
	resp := post("Bearer key-a", "")
	sid := resp.Header.Get("Mcp-Session-Id")
	resp.Body.Close()
	if resp.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: status %d session %q", resp.StatusCode, sid)
	}
	for _, key := range []string{"key-b", "key-a2"} {
		resp := postJSON(t, h.url, `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}`,
			"Authorization", "Bearer "+key, "Mcp-Session-Id", sid, "Mcp-Protocol-Version", "2025-11-25")
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || bytes.Contains(body, []byte("aigw_")) {
			t.Errorf("%s on key-a's session: status %d body %s; want 403", key, resp.StatusCode, body)
		}
	}

	// A bad agent id is refused before the ledger would refuse it.
	if _, err := connect(t, h.url, "key-a", "X-Aigw-Agent", strings.Repeat("a", 200)); err == nil {
		t.Error("connected with a 200-byte agent id")
	}
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	upA := serveUpstream(t, newUpstreamServer("a"))
	upB := serveUpstream(t, newUpstreamServer("b"))
	h := newHarness(t, func(c *gwmcp.Config) {
		c.Upstreams = []gwmcp.Upstream{
			{Name: "alpha", Tenants: []string{"tenant-a"}, URL: upA.URL, Tools: allowAll()},
			{Name: "beta", Tenants: []string{"tenant-b"}, URL: upB.URL, Tools: allowAll()},
			{Name: "shared", Tenants: []string{"tenant-a", "tenant-b"}, URL: upB.URL, Tools: allowAll()},
		}
	})
	waitConnected(t, h.gw)
	a := mustConnect(t, h.url, "key-a")
	b := mustConnect(t, h.url, "key-b")

	ta, tb := toolNames(t, a), toolNames(t, b)
	if ta["alpha__echo"] == nil || ta["shared__echo"] == nil || ta["beta__echo"] != nil {
		t.Errorf("tenant-a tools = %v; want alpha__* and shared__*, no beta__*", keys(ta))
	}
	if tb["beta__echo"] == nil || tb["shared__echo"] == nil || tb["alpha__echo"] != nil {
		t.Errorf("tenant-b tools = %v; want beta__* and shared__*, no alpha__*", keys(tb))
	}

	// B cannot call A's upstream, and learns nothing of it.
	_, err := call(t, b, "alpha__echo", map[string]any{"text": "hi"})
	var je *jsonrpc.Error
	if !errors.As(err, &je) || !strings.Contains(je.Message, "unknown tool") {
		t.Errorf("tenant-b calling alpha__echo: %v; want unknown tool", err)
	}
	r, err := call(t, b, "beta__echo", map[string]any{"text": "hi"})
	if err != nil || text(r) != "b: hi" {
		t.Fatalf("tenant-b calling beta__echo = %v, %v", r, err)
	}
	// B's context is B's.
	r, err = call(t, b, gwmcp.ToolBudgets, nil)
	if err != nil || !strings.Contains(text(r), `"tenant":"tenant-b"`) {
		t.Errorf("tenant-b budgets = %v, %v; want tenant-b's", r, err)
	}
	for _, e := range h.rec.all("tenant-a", "") {
		if e.ev.Actor.KeyID != "ka" {
			t.Errorf("tenant-a's log holds an event of key %q: %s", e.ev.Actor.KeyID, e.entry)
		}
	}
	for _, e := range h.rec.all("tenant-b", "") {
		if e.ev.Actor.KeyID != "kb" || bytes.Contains(e.entry, []byte("alpha")) && attrsOf(t, e)["name"] != "alpha__echo" {
			t.Errorf("tenant-b's log holds %s", e.entry)
		}
	}
}

func TestFailClosed(t *testing.T) {
	t.Parallel()
	up := serveUpstream(t, newUpstreamServer("u"))
	h := newHarness(t, func(c *gwmcp.Config) {
		c.Upstreams = []gwmcp.Upstream{{Name: "up", Tenants: []string{"tenant-a"}, URL: up.URL, Tools: allowAll()}}
	})
	waitConnected(t, h.gw)
	cs := mustConnect(t, h.url, "key-a")
	for _, mode := range []struct {
		name       string
		down, lost bool
	}{{"PublishFails", true, false}, {"AckLost", false, true}} {
		h.rec.set(mode.down, mode.lost)
		for _, tool := range []string{gwmcp.ToolBudgets, "up__echo"} {
			_, err := call(t, cs, tool, map[string]any{"text": "x"})
			var je *jsonrpc.Error
			if !errors.As(err, &je) || je.Code != gwmcp.CodeLedgerUnavailable {
				t.Errorf("%s: %s with the ledger failing: %v; want JSON-RPC error %d", mode.name, tool, err, gwmcp.CodeLedgerUnavailable)
			}
		}
		if _, err := cs.ListTools(context.Background(), nil); err == nil {
			t.Errorf("%s: tools/list answered with the ledger failing", mode.name)
		}
	}
	h.rec.set(false, false)
	if r, err := call(t, cs, "up__echo", map[string]any{"text": "x"}); err != nil || text(r) != "u: x" {
		t.Errorf("after the ledger came back: %v, %v", r, err)
	}
	if h.gw.LedgerFailures() == 0 {
		t.Error("no ledger failure counted")
	}
}

func TestFailOpen(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *gwmcp.Config) { c.FailOpen = true })
	cs := mustConnect(t, h.url, "key-a")
	h.rec.set(true, false)
	if r, err := call(t, cs, gwmcp.ToolBudgets, nil); err != nil || r.IsError {
		t.Errorf("fail-open with the ledger down: %v, %v; want the answer", r, err)
	}
	if h.gw.LedgerFailures() == 0 {
		t.Error("no ledger failure counted")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	base := func() gwmcp.Config {
		return gwmcp.Config{Authenticate: authenticate, Recorder: &recorder{}}
	}
	up := gwmcp.Upstream{Name: "up", Tenants: []string{"t"}, URL: "http://127.0.0.1:1/mcp"}
	for _, tc := range []struct {
		name string
		edit func(*gwmcp.Config)
		want string
	}{
		{"NoAuth", func(c *gwmcp.Config) { c.Authenticate = nil }, "Authenticate"},
		{"NoRecorder", func(c *gwmcp.Config) { c.Recorder = nil }, "Recorder"},
		{"BadName", func(c *gwmcp.Config) { u := up; u.Name = "a__b"; c.Upstreams = []gwmcp.Upstream{u} }, "name must be"},
		{"NoTenants", func(c *gwmcp.Config) { u := up; u.Tenants = nil; c.Upstreams = []gwmcp.Upstream{u} }, "no tenants"},
		{"BadTenant", func(c *gwmcp.Config) { u := up; u.Tenants = []string{"A B"}; c.Upstreams = []gwmcp.Upstream{u} }, "not a valid tenant"},
		{"Both", func(c *gwmcp.Config) { u := up; u.Command = []string{"x"}; c.Upstreams = []gwmcp.Upstream{u} }, "both url and command"},
		{"Neither", func(c *gwmcp.Config) { u := up; u.URL = ""; c.Upstreams = []gwmcp.Upstream{u} }, "neither"},
		{"BadURL", func(c *gwmcp.Config) { u := up; u.URL = "ftp://x"; c.Upstreams = []gwmcp.Upstream{u} }, "http or https"},
		{"Dup", func(c *gwmcp.Config) { c.Upstreams = []gwmcp.Upstream{up, up} }, "two upstreams"},
		{"BadPolicy", func(c *gwmcp.Config) { u := up; u.Tools.Default = "maybe"; c.Upstreams = []gwmcp.Upstream{u} }, "default"},
		{"BadInjection", func(c *gwmcp.Config) { u := up; u.Injection = "ignore"; c.Upstreams = []gwmcp.Upstream{u} }, "injection"},
		{"BadEnv", func(c *gwmcp.Config) {
			u := up
			u.URL = ""
			u.Command = []string{"x"}
			u.Env = []string{"NOEQUALS"}
			c.Upstreams = []gwmcp.Upstream{u}
		}, "KEY=value"},
		{"ClientTimeout", func(c *gwmcp.Config) { c.HTTPClient = &http.Client{Timeout: time.Second} }, "no Timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v; want an error with %q", err, tc.want)
			}
			if _, err := gwmcp.New(context.Background(), c); err == nil {
				t.Error("New accepted it")
			}
		})
	}
	c := base()
	c.Upstreams = []gwmcp.Upstream{up}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate(valid) = %v", err)
	}
}

func TestUpstreamLogValueRedacts(t *testing.T) {
	t.Parallel()
	u := gwmcp.Upstream{Name: "gh", Tenants: []string{"t"}, URL: "https://user:pw@api.example/mcp?token=sekret",
		Headers: map[string]string{"Authorization": "Bearer sekret"}}
	var b strings.Builder
	logger := newTextLogger(&b)
	logger.Info("upstream", "up", u)
	if strings.Contains(b.String(), "sekret") || strings.Contains(b.String(), "pw") {
		t.Errorf("log line %q holds a credential", b.String())
	}
}

// attrsOf decodes an event's attributes.
func attrsOf(t testing.TB, e recorded) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.ev.RawAttrs, &m); err != nil {
		t.Fatalf("attrs of %s: %v", e.entry, err)
	}
	return m
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

var _ gateway.Recorder = (*recorder)(nil)
