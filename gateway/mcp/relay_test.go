package mcp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"aigw/gateway"
	"aigw/ledger"

	gwmcp "aigw/gateway/mcp"
)

// agent is an MCP client that keeps what the gateway relays to it and
// answers the upstream's requests: sampling, elicitation and roots.
type agent struct {
	mu       sync.Mutex
	progress []*sdk.ProgressNotificationParams
	logs     []*sdk.LoggingMessageParams
	sampled  atomic.Int32
	// onSample runs before the sampling answer leaves.
	onSample func()
}

func (a *agent) client(capable bool) *sdk.Client {
	opts := &sdk.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *sdk.ProgressNotificationClientRequest) {
			a.mu.Lock()
			a.progress = append(a.progress, r.Params)
			a.mu.Unlock()
		},
		LoggingMessageHandler: func(_ context.Context, r *sdk.LoggingMessageRequest) {
			a.mu.Lock()
			a.logs = append(a.logs, r.Params)
			a.mu.Unlock()
		},
	}
	if capable {
		opts.CreateMessageHandler = func(_ context.Context, r *sdk.CreateMessageRequest) (*sdk.CreateMessageResult, error) {
			a.sampled.Add(1)
			if a.onSample != nil {
				a.onSample()
			}
			prompt := r.Params.Messages[0].Content.(*sdk.TextContent).Text
			return &sdk.CreateMessageResult{Role: "assistant", Model: "m1", Content: &sdk.TextContent{Text: "LLM says: " + prompt}}, nil
		}
		opts.ElicitationHandler = func(context.Context, *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
			return &sdk.ElicitResult{Action: "accept", Content: map[string]any{"branch": "main"}}, nil
		}
	} else {
		opts.Capabilities = &sdk.ClientCapabilities{} // not even roots
	}
	c := sdk.NewClient(&sdk.Implementation{Name: "test-agent", Version: "1"}, opts)
	c.AddRoots(&sdk.Root{URI: "file:///workspace", Name: "workspace"})
	return c
}

func (a *agent) counts() (progress, logs int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.progress), len(a.logs)
}

func relayHarness(t *testing.T) *harness {
	t.Helper()
	up := serveUpstream(t, newUpstreamServer("http"))
	upJSON := serveUpstream(t, newUpstreamServer("json"), &sdk.StreamableHTTPOptions{JSONResponse: true})
	h := newHarness(t, func(c *gwmcp.Config) {
		c.Upstreams = []gwmcp.Upstream{
			{Name: "web", Tenants: []string{"tenant-a"}, URL: up.URL, Tools: allowAll()},
			stdioUpstream("local", "tenant-a"),
			{Name: "webjson", Tenants: []string{"tenant-a"}, URL: upJSON.URL, Tools: allowAll()},
		}
		c.Upstreams[1].Tools = allowAll()
	})
	waitConnected(t, h.gw)
	return h
}

// relaySession connects a capable agent to a relayHarness, on tenant-a's
// key-a.
func relaySession(t *testing.T) (*harness, *agent, *sdk.ClientSession) {
	t.Helper()
	h := relayHarness(t)
	a := &agent{}
	cs, err := connectClient(t, a.client(true), h.url, "key-a")
	if err != nil {
		t.Fatal(err)
	}
	return h, a, cs
}

// toolCalls returns the tool_call events of tenant-a of one tool.
func toolCalls(t *testing.T, h *harness, tool string) []recorded {
	t.Helper()
	var out []recorded
	for _, e := range h.rec.all("tenant-a", ledger.KindToolCall) {
		if attrsOf(t, e)["tool"] == tool {
			out = append(out, e)
		}
	}
	return out
}

// The upstream's progress notifications and log messages about a call
// reach the agent, on the event stream that answers its call (progress
// under the agent's own token), over streamable HTTP; over stdio, the
// progress does. The call is still one tool_call event.
func TestRelayProgress(t *testing.T) {
	t.Parallel()
	h, a, cs := relaySession(t)
	for _, server := range []string{"web", "local"} {
		a.mu.Lock()
		a.progress, a.logs = nil, nil
		a.mu.Unlock()
		res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: server + "__progress", Meta: sdk.Meta{"progressToken": "tok-" + server}})
		if err != nil || text(res) != "done" {
			t.Fatalf("%s__progress = %v, %v", server, res, err)
		}
		waitFor(t, server+" progress relayed", func() bool { p, _ := a.counts(); return p == 3 })
		if server == "web" {
			waitFor(t, "the log message relayed", func() bool { _, l := a.counts(); return l == 1 })
			if l := a.logs[0]; l.Level != "info" || l.Data != "working on it" {
				t.Errorf("log message %+v", l)
			}
		}
		a.mu.Lock()
		for i, p := range a.progress {
			if p.ProgressToken != "tok-"+server || p.Progress != float64(i+1) || p.Total != 3 || p.Message != fmt.Sprintf("step %d", i+1) {
				t.Errorf("%s: progress %d = %+v; want token tok-%s, %d of 3", server, i, p, server, i+1)
			}
		}
		a.mu.Unlock()
		calls := toolCalls(t, h, "progress")
		if len(calls) != 1 {
			t.Fatalf("%d tool_call events of progress; want 1", len(calls))
		}
		if n := attrsOf(t, calls[0])["relayed_notifications"]; server == "web" && n != float64(4) || server == "local" && n != float64(3) {
			t.Errorf("%s: relayed_notifications = %v", server, n)
		}
		h.rec.mu.Lock()
		h.rec.entries = nil
		h.rec.mu.Unlock()
	}

	// On the wire: the answer is an event stream, the progress (under the
	// agent's token, here a number) and the log message, then the result.
	body := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"web__progress","arguments":{},"_meta":{"progressToken":42}}}`
	events := rawCall(t, h.url, "key-a", cs.ID(), body)
	if len(events) != 5 {
		t.Fatalf("%d events; want 3 progress, 1 log, the result: %q", len(events), events)
	}
	for i, ev := range events[:3] {
		if !strings.Contains(ev, `"method":"notifications/progress"`) || !strings.Contains(ev, `"progressToken":42`) || !strings.Contains(ev, fmt.Sprintf(`"progress":%d`, i+1)) {
			t.Errorf("event %d = %s; want progress %d with token 42", i, ev, i+1)
		}
	}
	if !strings.Contains(events[3], `"notifications/message"`) || !strings.Contains(events[4], `"id":9,"result":`) || !strings.Contains(events[4], "done") {
		t.Errorf("events = %q; want the log message, then the result", events[3:])
	}
	// Over stdio, the progress the SDK's client hands over before the
	// result.
	events = rawCall(t, h.url, "key-a", cs.ID(), `{"jsonrpc":"2.0","id":"s","method":"tools/call","params":{"name":"local__progress","arguments":{},"_meta":{"progressToken":"t"}}}`)
	if len(events) != 4 || !strings.Contains(events[2], `"progress":3,"progressToken":"t"`) || !strings.Contains(events[3], `"id":"s","result":`) {
		t.Errorf("stdio events = %q; want 3 progress with token \"t\", then the result", events)
	}
	// A call without a progress token asks the upstream for none.
	events = rawCall(t, h.url, "key-a", cs.ID(), `{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"web__progress","arguments":{}}}`)
	if len(events) != 2 || strings.Contains(events[0], "progress") {
		t.Errorf("events = %q; want the log message and the result", events)
	}
}

// rawCall POSTs body on a session and returns the data of the events of
// the answer (an event stream).
func rawCall(t *testing.T, url, key, sid, body string) []string {
	t.Helper()
	resp := postJSON(t, url, body, "Authorization", "Bearer "+key, "Mcp-Session-Id", sid)
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("status %d content type %q; want 200 text/event-stream", resp.StatusCode, ct)
	}
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, d)
		}
	}
	return events
}

// The upstream's sampling, elicitation and roots requests during a call
// reach the agent, whose answers reach the upstream; each exchange is an
// "mcp" event beside the call's one tool_call event. An agent that did
// not declare a capability, a stdio upstream, and a request that looks
// like a prompt injection get the upstream a JSON-RPC error, not a hang.
func TestRelayRequests(t *testing.T) {
	t.Parallel()
	h, a, cs := relaySession(t)
	plain, err := connectClient(t, (&agent{}).client(false), h.url, "key-a")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cs   *sdk.ClientSession
		tool string
		args any
		want string
	}{
		{"sampling", cs, "web__sample", echoIn{"the quarterly report"}, "sampled: LLM says: the quarterly report"},
		{"elicitation", cs, "web__elicit", nil, "elicited: accept main"},
		{"roots", cs, "web__roots", nil, "roots: file:///workspace"},
		{"no sampling capability", plain, "web__sample", echoIn{"x"}, "the agent does not support sampling"},
		{"no elicitation capability", plain, "web__elicit", nil, "the agent does not support elicitation"},
		{"no roots capability", plain, "web__roots", nil, "the agent does not support roots"},
		{"injection", cs, "web__sample", echoIn{injected}, "the aigw gateway withheld this request"},
		// Over stdio, the gateway declares no such capability: the SDK's
		// client answers method not found.
		{"stdio", cs, "local__sample", echoIn{"x"}, `method not found: "sampling/createMessage"`},
		{"stdio roots", cs, "local__roots", nil, `method not found: "roots/list"`},
		// An upstream answering application/json sends its requests on
		// its session's own stream, where nothing ties them to a call
		// (the SDK's client words the gateway's refusal so).
		{"json upstream", cs, "webjson__sample", echoIn{"x"}, `method not found: "sampling/createMessage"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(h.rec.all("tenant-a", ledger.KindToolCall))
			sampled := a.sampled.Load()
			res, err := c.cs.CallTool(context.Background(), &sdk.CallToolParams{Name: c.tool, Arguments: c.args})
			if err != nil || !strings.Contains(text(res), c.want) || strings.HasPrefix(c.want, "sampled") != strings.HasPrefix(text(res), "sampled") {
				t.Fatalf("%s = %v, %v; want %q", c.tool, text(res), err, c.want)
			}
			if n := len(h.rec.all("tenant-a", ledger.KindToolCall)) - before; n != 1 {
				t.Errorf("%d tool_call events; want 1", n)
			}
			if c.name == "injection" && a.sampled.Load() != sampled {
				t.Error("the agent was asked a request that looks like an injection")
			}
		})
	}

	// A call the SDK serves (here, for a _meta key the fast path leaves
	// to it) relays nothing: the upstream's request gets an error.
	resp := postJSON(t, h.url, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"web__sample","arguments":{"text":"x"},"_meta":{"other":1}}}`,
		"Authorization", "Bearer key-a", "Mcp-Session-Id", cs.ID(), "Mcp-Protocol-Version", cs.InitializeResult().ProtocolVersion)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(b, []byte(`is not supported by the aigw gateway here`)) {
		t.Errorf("SDK-served call answered %s; want the upstream's error", b)
	}

	// The exchanges are recorded: method, server, tool, outcome, and the
	// request and answer committed in the payload.
	var outcomes []string
	for _, e := range h.rec.all("tenant-a", gwmcp.KindMCP) {
		a := attrsOf(t, e)
		if a["server"] != "web" {
			continue
		}
		outcomes = append(outcomes, fmt.Sprint(a["method"], " ", a["outcome"]))
		if c, _ := ledger.Commit(e.payload, e.salt); c != e.ev.PayloadSHA256 || c == "" {
			t.Errorf("payload commitment %s; entry says %s", c, e.ev.PayloadSHA256)
		}
		var p struct{ Request, Answer json.RawMessage }
		if err := json.Unmarshal(e.payload, &p); err != nil || len(p.Request) == 0 || len(p.Answer) == 0 {
			t.Errorf("payload %s: %v", e.payload, err)
		}
		if a["method"] == "sampling/createMessage" && a["outcome"] == "ok" && !bytes.Contains(p.Answer, []byte("LLM says: the quarterly report")) {
			t.Errorf("sampling answer in the payload = %s", p.Answer)
		}
	}
	want := []string{"sampling/createMessage ok", "elicitation/create ok", "roots/list ok", "sampling/createMessage error",
		"elicitation/create error", "roots/list error", "sampling/createMessage blocked"}
	if fmt.Sprint(outcomes) != fmt.Sprint(want) {
		t.Errorf("relayed exchanges recorded: %q; want %q", outcomes, want)
	}
}

// Fail-closed: an agent's answer reaches the upstream only once the
// ledger has acknowledged the exchange's event.
func TestRelayFailClosed(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	srv := sdk.NewServer(&sdk.Implementation{Name: "upstream-sampler", Version: "1"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "sample", Description: "Asks the client's model."},
		func(ctx context.Context, req *sdk.CallToolRequest, in echoIn) (*sdk.CallToolResult, any, error) {
			res, err := req.Session.CreateMessage(ctx, &sdk.CreateMessageParams{MaxTokens: 50,
				Messages: []*sdk.SamplingMessage{{Role: "user", Content: &sdk.TextContent{Text: in.Text}}}})
			if err != nil {
				got <- "error: " + err.Error()
			} else {
				got <- "answer: " + res.Content.(*sdk.TextContent).Text
			}
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "ok"}}}, nil, nil
		})
	up := serveUpstream(t, srv)
	h := newHarness(t, func(c *gwmcp.Config) {
		c.Upstreams = []gwmcp.Upstream{{Name: "web", Tenants: []string{"tenant-a"}, URL: up.URL, Tools: allowAll()}}
	})
	waitConnected(t, h.gw)
	a := &agent{onSample: func() { h.rec.set(false, true) }} // acknowledgements lost from now on
	cs, err := connectClient(t, a.client(true), h.url, "key-a")
	if err != nil {
		t.Fatal(err)
	}
	_, err = call(t, cs, "web__sample", echoIn{"secret plans"})
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != gwmcp.CodeLedgerUnavailable {
		t.Errorf("call = %v; want JSON-RPC error %d", err, gwmcp.CodeLedgerUnavailable)
	}
	if g := <-got; !strings.HasPrefix(g, "error: ") || strings.Contains(g, "secret plans") {
		t.Errorf("the upstream got %q; want an error, not the agent's answer", g)
	}
}

// Only the session a request was relayed on can answer it: an answer
// with its id POSTed on another session (another tenant's, or another of
// the same key) is dropped, and the agent's own answer gets through.
func TestRelayAnswerOnlyFromItsSession(t *testing.T) {
	t.Parallel()
	up := serveUpstream(t, newUpstreamServer("u"))
	h := twoTenantHarness(t, func(c *gwmcp.Config) {
		c.Upstreams = append(c.Upstreams, gwmcp.Upstream{Name: "web", Tenants: []string{"tenant-a"}, URL: up.URL, Tools: allowAll()})
	})
	other := mustConnect(t, h.url, "key-a")
	otherTenant := mustConnect(t, h.url, "key-b")
	// The gateway's first relayed request is "aigw-r-1": the forgers know
	// its id.
	forged := `{"jsonrpc":"2.0","id":"aigw-r-1","result":{"role":"assistant","model":"x","content":{"type":"text","text":"FORGED"}}}`
	var forgeries atomic.Int32
	a := &agent{onSample: func() {
		for _, f := range []struct{ key, sid string }{{"key-a", other.ID()}, {"key-b", otherTenant.ID()}} {
			resp := postJSON(t, h.url, forged, "Authorization", "Bearer "+f.key, "Mcp-Session-Id", f.sid)
			resp.Body.Close()
			forgeries.Add(1)
		}
	}}
	cs, err := connectClient(t, a.client(true), h.url, "key-a")
	if err != nil {
		t.Fatal(err)
	}
	res, err := call(t, cs, "web__sample", echoIn{"hello"})
	if err != nil || text(res) != "sampled: LLM says: hello" {
		t.Errorf("web__sample = %q, %v; want the agent's own answer", text(res), err)
	}
	if n := forgeries.Load(); n != 2 {
		t.Errorf("%d forged answers POSTed while the request was pending; want 2", n)
	}
}

// A relayed message that spans lines (an upstream may send a JSON
// message over several data lines) stays one event, each line a data
// field of its own.
func TestWriteSSEMultiLine(t *testing.T) {
	for _, data := range []string{`{"a":1}`, "{\n\"a\":\r\n1,\r\"b\":2}", "{\n\n}"} {
		w := httptest.NewRecorder()
		gwmcp.WriteSSE(w, []byte(data))
		wrote := w.Body.String()
		r := gateway.NewSSEReader(w.Body, 0)
		ev, err := r.Next()
		if err != nil || ev.Event != "message" || !json.Valid(ev.Data) {
			t.Fatalf("writeSSE(%q) wrote %q: event %q data %q, %v; want one message event of valid JSON", data, wrote, ev.Event, ev.Data, err)
		}
		var got, want any
		json.Unmarshal(ev.Data, &got)
		json.Unmarshal([]byte(data), &want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("writeSSE(%q): data %q; want the same JSON", data, ev.Data)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Errorf("writeSSE(%q) wrote %q: more than one event (%v)", data, wrote, err)
		}
	}
}
