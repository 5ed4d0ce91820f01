package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"aigw/ledger"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

type bearer struct {
	base http.RoundTripper
	key  string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.base.RoundTrip(r)
}

// TestMCPThroughServe: an agent's MCP client (the official SDK) connects
// to `aigw serve`'s /mcp with its gateway key; it reads its models and
// guardrail rules, gets a ledger inclusion proof for one of its calls, and
// calls an upstream MCP server's tool through the gateway (namespaced, a
// denied tool refused); every MCP request and tool call is in its log.
func TestMCPThroughServe(t *testing.T) {
	type textIn struct {
		Text string `json:"text"`
	}
	upSrv := sdk.NewServer(&sdk.Implementation{Name: "upstream", Version: "1"}, nil)
	sdk.AddTool(upSrv, &sdk.Tool{Name: "echo", Description: "Echoes its text."},
		func(_ context.Context, _ *sdk.CallToolRequest, in textIn) (*sdk.CallToolResult, any, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "echo: " + in.Text}}}, nil, nil
		})
	sdk.AddTool(upSrv, &sdk.Tool{Name: "delete_repo", Description: "Deletes a repository."},
		func(_ context.Context, _ *sdk.CallToolRequest, in textIn) (*sdk.CallToolResult, any, error) {
			t.Error("a denied tool reached the upstream")
			return &sdk.CallToolResult{}, nil, nil
		})
	up := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return upSrv }, nil))
	t.Cleanup(up.Close) // after the gateway (cleanups run last first) lets go of it
	g := startGW(t, fmt.Sprintf(`
gateway:
  admin_key: %s
mcp:
  upstreams:
    - name: repo
      tenants: [acme]
      url: %s
      tools: {default: allow, deny: [delete_*]}
`, testAdminKey, up.URL))
	key := g.newKey(t, "acme")
	// A chat call whose events the agent will prove.
	req, _ := http.NewRequest("POST", g.url()+"/v1/chat/completions", strings.NewReader(chatBody("mock", "hello", false)))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("chat: %v %v", resp, err)
	}
	resp.Body.Close()
	trace := resp.Header.Get("X-Aigw-Trace-Id")
	waitSize(t, g.serveProc, "acme", 4)

	client := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil)
	ctx := context.Background()
	cs, err := client.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: g.url() + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{http.DefaultTransport, key}}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tl := range lt.Tools {
		names[tl.Name] = true
	}
	for _, want := range []string{"aigw_models", "aigw_guardrails", "aigw_budgets", "aigw_proof", "repo__echo"} {
		if !names[want] {
			t.Errorf("tools/list lacks %s: %v", want, names)
		}
	}
	if names["repo__delete_repo"] {
		t.Error("a denied tool is listed")
	}
	text := func(r *sdk.CallToolResult) string {
		var b strings.Builder
		for _, c := range r.Content {
			if tc, ok := c.(*sdk.TextContent); ok {
				b.WriteString(tc.Text)
			}
		}
		return b.String()
	}
	r, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "aigw_models"})
	if err != nil || r.IsError || !strings.Contains(text(r), "mock") {
		t.Fatalf("aigw_models: %v %+v", err, r)
	}
	r, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "aigw_proof", Arguments: map[string]any{"trace_id": trace}})
	if err != nil || r.IsError {
		t.Fatalf("aigw_proof: %v %s", err, text(r))
	}
	var out struct {
		Proof struct {
			TreeSize   uint64 `json:"tree_size"`
			Checkpoint string
			Entries    []struct {
				Index    uint64
				LeafHash string   `json:"leaf_hash"`
				Proof    []string `json:"inclusion_proof"`
			}
		}
	}
	if err := json.Unmarshal([]byte(text(r)), &out); err != nil || len(out.Proof.Entries) != 4 {
		t.Fatalf("proof: %v %s", err, text(r))
	}
	// Each proof folds to the checkpoint's root (RFC 6962).
	body, _ := ledger.SplitNote([]byte(out.Proof.Checkpoint))
	cp, err := ledger.ParseCheckpointBody(body)
	if err != nil || cp.Size != out.Proof.TreeSize {
		t.Fatalf("checkpoint: %v %+v", err, cp)
	}
	for _, e := range out.Proof.Entries {
		leaf, hs := unhex(t, e.LeafHash), make([]ledger.Hash, len(e.Proof))
		for i, p := range e.Proof {
			hs[i] = unhex(t, p)
		}
		if err := ledger.VerifyInclusion(leaf, e.Index, cp.Size, hs, cp.Root); err != nil {
			t.Fatalf("entry %d: %v", e.Index, err)
		}
	}
	r, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "repo__echo", Arguments: map[string]any{"text": "hi"}})
	if err != nil || r.IsError || text(r) != "echo: hi" {
		t.Fatalf("repo__echo: %v %s", err, text(r))
	}
	r, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "repo__delete_repo", Arguments: map[string]any{"text": "x"}})
	if err == nil && (r == nil || !r.IsError) {
		t.Fatalf("a denied tool was called: %+v", r)
	}
	cs.Close()
	// The log holds the MCP requests and the tool calls.
	var kinds map[string]int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		kinds = map[string]int{}
		for _, ev := range budgetEvents(t, g, "acme", 1) {
			kinds[ev.Kind]++
		}
		if kinds["mcp"] >= 4 && kinds[ledger.KindToolCall] >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log kinds %v; want the MCP requests and both tool calls", kinds)
		}
	}
	if code, out, errs := run(t, "", "verify", "-server", g.url(), "-log", "acme", "-vkey", g.vkey); code != 0 {
		t.Fatalf("verify: %d %s %s", code, out, errs)
	}
}

func unhex(t *testing.T, s string) ledger.Hash {
	t.Helper()
	var h ledger.Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		t.Fatalf("hash %q", s)
	}
	copy(h[:], b)
	return h
}
