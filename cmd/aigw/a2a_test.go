package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// a2aAgent is a fake A2A agent: it answers message/send with a completed
// task and, when next is set, first delegates to next through the gateway
// with the delegation token it was given.
type a2aAgent struct {
	srv    *httptest.Server
	gw     func() string
	key    string
	name   string
	next   string
	chat   bool // calls the model "mock" under its token first
	mu     sync.Mutex
	tokens []string
	calls  int
	chats  []string // the status and body of each model call
}

func newA2AAgent(t *testing.T, name string) *a2aAgent {
	a := &a2aAgent{name: name}
	a.srv = httptest.NewServer(a)
	t.Cleanup(a.srv.Close)
	return a
}

func (a *a2aAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/.well-known/agent-card.json") {
		json.NewEncoder(w).Encode(map[string]any{"name": a.name, "description": "fake " + a.name, "url": a.srv.URL, "version": "1",
			"protocolVersion": "0.3.0", "capabilities": map[string]any{"streaming": false}, "defaultInputModes": []string{"text/plain"},
			"defaultOutputModes": []string{"text/plain"}, "skills": []any{map[string]any{"id": "work", "name": "work", "description": "work", "tags": []string{"t"}}}})
		return
	}
	var req struct {
		ID     any    `json:"id"`
		Method string `json:"method"`
	}
	body, _ := io.ReadAll(r.Body)
	json.Unmarshal(body, &req)
	tok := r.Header.Get("X-Aigw-Delegation")
	a.mu.Lock()
	a.tokens = append(a.tokens, tok)
	a.calls++
	n := a.calls
	a.mu.Unlock()
	state := "completed"
	if a.chat {
		// A model call of its own, charged to its delegation.
		q, _ := http.NewRequest("POST", a.gw()+"/v1/chat/completions", strings.NewReader(`{"model":"mock","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`))
		q.Header.Set("Content-Type", "application/json")
		q.Header.Set("Authorization", "Bearer "+a.key)
		q.Header.Set("X-Aigw-Agent", a.name)
		q.Header.Set("X-Aigw-Delegation", tok)
		if resp, err := http.DefaultClient.Do(q); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			a.mu.Lock()
			a.chats = append(a.chats, fmt.Sprintf("%d %s", resp.StatusCode, b))
			a.mu.Unlock()
		}
	}
	if a.next != "" {
		// Delegate onwards, through the gateway, under the token.
		msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"role":"user","kind":"message","messageId":"%s-%d","parts":[{"kind":"text","text":"sub-task"}]}}}`, a.name, n)
		q, _ := http.NewRequest("POST", a.gw()+"/a2a/"+a.next, strings.NewReader(msg))
		q.Header.Set("Content-Type", "application/json")
		q.Header.Set("Authorization", "Bearer "+a.key)
		q.Header.Set("X-Aigw-Agent", a.name)
		q.Header.Set("X-Aigw-Delegation", tok)
		resp, err := http.DefaultClient.Do(q)
		if err != nil || resp.StatusCode != 200 {
			state = "failed"
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Contains(b, []byte(`"completed"`)) {
				state = "failed"
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"kind":"task","id":"%s-task-%d","contextId":"ctx-%d","status":{"state":%q}}}`, mustJSON(req.ID), a.name, n, n, state)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestA2AChainThroughServe: agent A (the test) delegates to B through
// `aigw serve`; B delegates to C through it with the token it was given;
// each hop gets its own, narrower token; an agent not allowed to delegate
// to C is refused with a JSON-RPC error; `aigw delegation tree` proves the
// task's tree from the ledger.
func TestA2AChainThroughServe(t *testing.T) {
	b, c := newA2AAgent(t, "b"), newA2AAgent(t, "c")
	dir := t.TempDir()
	path := filepath.Join(dir, "aigw.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`
gateway:
  admin_key: %s
a2a:
  agents:
    - {name: b, tenant: acme, url: %s, callers: [a], scopes: ["model:*", "tool:search"], max_budget: {usd: "1.00", tokens: 10000}}
    - {name: c, tenant: acme, url: %s, callers: [b]}
`, testAdminKey, b.srv.URL, c.srv.URL)), 0o600)
	data := filepath.Join(dir, "data")
	g := &gwProc{serveProc: startServe(t, "-config", path, "-data-dir", data), traces: map[string][]traceWant{}}
	key := g.newKey(t, "acme")
	b.gw, b.key, b.next, b.chat = g.url, key, "c", true

	send := func(agent, caller, msgID string) (int, string) {
		msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":"r1","method":"message/send","params":{"message":{"role":"user","kind":"message","messageId":%q,"parts":[{"kind":"text","text":"research this"}]}}}`, msgID)
		q, _ := http.NewRequest("POST", g.url()+"/a2a/"+agent, strings.NewReader(msg))
		q.Header.Set("Content-Type", "application/json")
		q.Header.Set("Authorization", "Bearer "+key)
		q.Header.Set("X-Aigw-Agent", caller)
		resp, err := http.DefaultClient.Do(q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	code, out := send("b", "a", "m-1")
	var res struct {
		Result struct {
			ID     string
			Status struct{ State string }
		}
		Error *struct{ Code int }
	}
	if err := json.Unmarshal([]byte(out), &res); code != 200 || err != nil || res.Error != nil || res.Result.Status.State != "completed" {
		t.Fatalf("A → B: %d %s", code, out)
	}
	if len(b.tokens) != 1 || len(c.tokens) != 1 || b.tokens[0] == "" || c.tokens[0] == "" || b.tokens[0] == c.tokens[0] {
		t.Fatalf("each hop needs its own token: b %d, c %d", len(b.tokens), len(c.tokens))
	}
	// B's own model call was charged to its delegation; once B's task has
	// ended, its token allows no more.
	if len(b.chats) != 1 || !strings.HasPrefix(b.chats[0], "200 ") {
		t.Fatalf("b's model call under its token: %q", b.chats)
	}
	chat := func(tok, agent string) (int, string) {
		q, _ := http.NewRequest("POST", g.url()+"/v1/chat/completions", strings.NewReader(`{"model":"mock","messages":[{"role":"user","content":"hi"}]}`))
		q.Header.Set("Content-Type", "application/json")
		q.Header.Set("Authorization", "Bearer "+key)
		q.Header.Set("X-Aigw-Agent", agent)
		q.Header.Set("X-Aigw-Delegation", tok)
		resp, err := http.DefaultClient.Do(q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	if code, out := chat(b.tokens[0], "b"); code != 403 || !strings.Contains(out, `"delegation_ended"`) {
		t.Fatalf("b's model call after its task completed: %d %s", code, out)
	}
	if code, out := chat(b.tokens[0], "c"); code != 403 || !strings.Contains(out, `"invalid_delegation"`) {
		t.Fatalf("b's token sent by c: %d %s", code, out)
	}
	// A retried message is the same task: no second call downstream.
	if code, out2 := send("b", "a", "m-1"); code != 200 || !strings.Contains(out2, res.Result.ID) || b.calls != 1 {
		t.Fatalf("retry: %d %s (b called %d times)", code, out2, b.calls)
	}
	// A may not delegate to C directly.
	if code, out := send("c", "a", "m-2"); !strings.Contains(out, `"error"`) {
		t.Fatalf("a delegated to c: %d %s", code, out)
	}
	// The tree, from the ledger alone.
	var tree string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, stdout, stderr := run(t, "", "delegation", "tree", "-tenant", "acme", "-task", res.Result.ID, "-data-dir", data)
		if code == 0 && strings.Contains(stdout, `"c"`) {
			tree = stdout
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delegation tree: exit %d\n%s\n%s", code, stdout, stderr)
		}
	}
	if !strings.Contains(tree, `"b"`) || !strings.Contains(tree, `"c"`) {
		t.Fatalf("tree lacks a hop:\n%s", tree)
	}
	if code, out, errs := run(t, "", "verify", "-server", g.url(), "-log", "acme", "-vkey", vkeyOf(t, g)); code != 0 {
		t.Fatalf("verify: %d %s %s", code, out, errs)
	}
}

func vkeyOf(t *testing.T, g *gwProc) string {
	var h struct {
		VKey string `json:"vkey"`
	}
	if err := json.Unmarshal(getOK(t, g.url()+"/healthz"), &h); err != nil {
		t.Fatal(err)
	}
	return h.VKey
}
