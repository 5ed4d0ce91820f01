package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aigw/gateway/providertest"
	"aigw/ledger"
	"aigw/ledger/ledgertest"
)

// send sends a request with an Authorization header and a Content-Type
// (each none when "") and returns the status, the headers and the body.
func send(t *testing.T, method, url, authorization, contentType, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// getAuth sends a GET with an Authorization header (none when "") and
// returns the status and the body.
func getAuth(t *testing.T, url, authorization string) (int, []byte) {
	t.Helper()
	code, _, b := send(t, http.MethodGet, url, authorization, "", "")
	return code, b
}

// rawCall sends a request and returns the status, the decoded OpenAI error
// (if any), the headers.
func rawCall(t *testing.T, method, url, key, contentType, body string) (int, map[string]any, http.Header) {
	t.Helper()
	auth := ""
	if key != "" {
		auth = "Bearer " + key
	}
	code, h, b := send(t, method, url, auth, contentType, body)
	var e struct {
		Error map[string]any `json:"error"`
	}
	if code >= 400 {
		if err := json.Unmarshal(b, &e); err != nil || e.Error == nil {
			t.Fatalf("%s %s: status %d with a body that is not an OpenAI error: %q", method, url, code, b)
		}
	}
	return code, e.Error, h
}

func TestGatewayBadInput(t *testing.T) {
	a, b := providertest.NewOpenAI(t), providertest.NewOpenAI(t)
	cfg := strings.Replace(openAIConfig(a, b), "gateway:\n", "gateway:\n  max_body_bytes: 65536\n", 1)
	g := startGW(t, cfg)
	key := g.newKey(t, "acme")
	scoped := g.newKey(t, "acme", "text-embedding-*")
	other := g.newKey(t, "globex")
	chat := g.url() + "/v1/chat/completions"
	for _, test := range []struct {
		name, key, ct, body string
		status              int
		typ, code, param    string
		recorded            bool // a request and an error event in acme's log
	}{
		{"MalformedJSON", key, "application/json", `{"model":"gpt-4o-mini","messages":[`, 400, "invalid_request_error", "", "", true},
		{"NotAnObject", key, "application/json", `[1,2]`, 400, "invalid_request_error", "", "", true},
		{"TrailingData", key, "application/json", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]} {}`, 400, "invalid_request_error", "", "", true},
		{"UnknownField", key, "application/json", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temprature":1}`, 400, "invalid_request_error", "", "temprature", true},
		{"WrongType", key, "application/json", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"n":"two"}`, 400, "invalid_request_error", "invalid_type", "n", true},
		{"MissingMessages", key, "application/json", `{"model":"gpt-4o-mini"}`, 400, "invalid_request_error", "invalid_value", "messages", true},
		{"EmptyMessages", key, "application/json", `{"model":"gpt-4o-mini","messages":[]}`, 400, "invalid_request_error", "invalid_value", "messages", true},
		{"BadRole", key, "application/json", `{"model":"gpt-4o-mini","messages":[{"role":"wizard","content":"hi"}]}`, 400, "invalid_request_error", "invalid_value", "messages[0].role", true},
		{"ToolWithoutID", key, "application/json", `{"model":"gpt-4o-mini","messages":[{"role":"tool","content":"42"}]}`, 400, "invalid_request_error", "invalid_value", "messages[0].tool_call_id", true},
		{"Temperature", key, "application/json", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":3}`, 400, "invalid_request_error", "invalid_value", "temperature", true},
		{"StreamOptionsWithoutStream", key, "application/json", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}`, 400, "invalid_request_error", "invalid_value", "stream_options", true},
		{"BadToolName", key, "application/json", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"no spaces"}}]}`, 400, "invalid_request_error", "invalid_value", "tools[0].function.name", true},
		{"UnknownModel", key, "application/json", `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, 404, "invalid_request_error", "model_not_found", "model", true},
		{"ModelOutsideKeyScope", scoped, "application/json", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, 404, "invalid_request_error", "model_not_found", "model", true},
		{"WrongContentType", key, "text/plain", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, 415, "invalid_request_error", "unsupported_content_type", "", true},
		{"TooLarge", key, "application/json", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("x", 70000) + `"}]}`, 413, "invalid_request_error", "request_too_large", "", true},
		{"NoKey", "", "application/json", `{}`, 401, "invalid_request_error", "invalid_api_key", "", false},
		{"BadKey", "aigw_" + strings.Repeat("B", 43), "application/json", `{}`, 401, "invalid_request_error", "invalid_api_key", "", false},
		{"NotAKey", "sk-" + strings.Repeat("z", 40), "application/json", `{}`, 401, "invalid_request_error", "invalid_api_key", "", false},
	} {
		t.Run(test.name, func(t *testing.T) {
			status, e, h := rawCall(t, "POST", chat, test.key, test.ct, test.body)
			if status != test.status || e["type"] != test.typ || (test.code != "" && e["code"] != test.code) || (test.param != "" && e["param"] != test.param) {
				t.Fatalf("status %d error %v; want %d %s %s %s", status, e, test.status, test.typ, test.code, test.param)
			}
			if msg, _ := e["message"].(string); msg == "" || strings.Contains(msg, key) {
				t.Fatalf("error message %q is empty or leaks the key", msg)
			}
			if test.recorded {
				g.expect(t, "acme", &http.Response{Header: h}, traceWant{terminal: ledger.KindError})
			}
		})
	}
	// An agent id the ledger could not record is refused up front.
	req, _ := http.NewRequest("POST", chat, strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Aigw-Agent", "agent\tone")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Fatalf("control character in X-Aigw-Agent: %v %v", resp.Status, err)
	} else {
		resp.Body.Close()
		g.expect(t, "acme", resp, traceWant{terminal: ledger.KindError})
	}

	// A revoked key is refused at once, and the refusal is in its tenant's log.
	revoked := g.newKey(t, "acme")
	code, kb := g.admin(t, "GET", "/admin/tenants/acme/keys", "")
	var keys struct {
		Data []struct{ ID, Prefix string }
	}
	json.Unmarshal(kb, &keys)
	kid := ""
	for _, k := range keys.Data {
		if strings.HasPrefix(revoked, k.Prefix) {
			kid = k.ID
		}
	}
	if code != 200 || kid == "" {
		t.Fatalf("list keys: %d %s", code, kb)
	}
	if code, b := g.admin(t, "DELETE", "/admin/tenants/acme/keys/"+kid, ""); code != 200 || !strings.Contains(string(b), `"revoked_at":"`) {
		t.Fatalf("revoke: %d %s", code, b)
	}
	if code, _ := g.admin(t, "DELETE", "/admin/tenants/globex/keys/"+kid, ""); code != 404 {
		t.Fatalf("revoking acme's key as globex: %d; want 404", code)
	}
	status, e, h := rawCall(t, "POST", chat, revoked, "application/json", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
	if status != 401 || !strings.Contains(e["message"].(string), "revoked") {
		t.Fatalf("revoked key: %d %v", status, e)
	}
	g.expect(t, "acme", &http.Response{Header: h}, traceWant{terminal: ledger.KindError})

	// Other endpoints and methods answer in the same shape.
	if status, e, _ := rawCall(t, "GET", chat, key, "", ""); status != 405 || e["type"] != "invalid_request_error" {
		t.Fatalf("GET chat: %d %v", status, e)
	}
	if status, e, _ := rawCall(t, "POST", g.url()+"/v1/nope", key, "application/json", "{}"); status != 404 || e["code"] != "unknown_url" {
		t.Fatalf("unknown URL: %d %v", status, e)
	}
	status, e, h = rawCall(t, "POST", g.url()+"/v1/embeddings", key, "application/json", `{"model":"text-embedding-3-small","input":[]}`)
	if status != 400 || e["param"] != "input" {
		t.Fatalf("empty embeddings input: %d %v", status, e)
	}
	g.expect(t, "acme", &http.Response{Header: h}, traceWant{terminal: ledger.KindError})
	if status, e, _ := rawCall(t, "GET", g.url()+"/v1/models/gpt-4o-mini", scoped, "", ""); status != 404 || e["code"] != "model_not_found" {
		t.Fatalf("model outside the key's scope: %d %v", status, e)
	}
	// The admin API refuses tenant keys, and one tenant's key cannot touch
	// another tenant's keys through it.
	if status, _, _ := rawCall(t, "GET", g.url()+"/admin/tenants", other, "", ""); status != 401 {
		t.Fatalf("admin API with a tenant key: %d", status)
	}
	g.checkLedger(t, "acme")
	// No secret reaches the logs: tenant keys, the admin key, provider keys.
	for _, secret := range []string{key, scoped, other, revoked, testAdminKey, providertest.OpenAIKey} {
		if strings.Contains(g.stderr.String(), secret) {
			t.Fatalf("serve's log shows a secret (%.8s…)", secret)
		}
	}
	// globex made no call: its log holds nothing (its tenant and key
	// creation are in the system log).
	if resp, err := http.Get(g.url() + "/ledger/globex/checkpoint"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("globex log: %v %v", resp.Status, err)
	}
}

// TestGatewayFailClosed: when the ledger's NATS is gone, calls get 503
// with Retry-After, and no provider is called.
func TestGatewayFailClosed(t *testing.T) {
	srv, _ := ledgertest.JetStream(t)
	a, b := providertest.NewOpenAI(t), providertest.NewOpenAI(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "aigw.yaml")
	os.WriteFile(path, []byte(openAIConfig(a, b)), 0o600)
	s := startServe(t, "-config", path, "-data-dir", filepath.Join(dir, "data"), "-nats-url", srv.ClientURL())
	g := &gwProc{serveProc: s, traces: map[string][]traceWant{}}
	key := g.newKey(t, "acme")
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	if status, e, _ := rawCall(t, "POST", g.url()+"/v1/chat/completions", key, "application/json", body); status != 200 {
		t.Fatalf("before the outage: %d %v", status, e)
	}
	before := len(a.Requests()) + len(b.Requests())
	srv.Shutdown()
	srv.WaitForShutdown()
	// The gateway learns of the outage when its NATS connection drops,
	// which is asynchronous; /healthz says when it has. (A call that
	// races the detection may reach a provider, but its answer is still
	// withheld: the record cannot be published.)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(g.url() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("/healthz never reported the ledger outage")
		}
	}
	for _, stream := range []bool{false, true} {
		bd := body
		if stream {
			bd = strings.Replace(body, `"model"`, `"stream":true,"model"`, 1)
		}
		status, e, h := rawCall(t, "POST", g.url()+"/v1/chat/completions", key, "application/json", bd)
		if status != 503 || e["code"] != "ledger_unavailable" || h.Get("Retry-After") == "" {
			t.Fatalf("stream=%v during the outage: %d %v %v", stream, status, e, h)
		}
	}
	if after := len(a.Requests()) + len(b.Requests()); after != before {
		t.Fatalf("providers were called %d times while the ledger was down", after-before)
	}
	if code, _ := g.admin(t, "POST", "/admin/tenants/acme/keys", `{"name":"x"}`); code != 503 {
		t.Fatalf("admin change during the outage: %d", code)
	}
}
