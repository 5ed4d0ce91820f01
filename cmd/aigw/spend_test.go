package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aigw/gateway"
	"aigw/ledger"
	"aigw/ledger/ledgertest"
)

// budgetUpstream is an OpenAI-compatible upstream whose usage is exactly
// what the gateway estimates before the call (prompt: the gateway's
// estimate of the request; completion: max_tokens), so a budget that fits
// N calls' estimates fits exactly N calls' spend. Model "cut" streams its
// usage and then drops the connection; model "fail" answers 500.
func budgetUpstream(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req gateway.ChatRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		prompt, completion := gateway.EstimatePromptTokens(&req), req.MaxOutputTokens()
		usage := fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}`, prompt, completion, prompt+completion)
		if req.Model == "fail" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(500)
			fmt.Fprint(w, `{"error":{"message":"boom","type":"server_error"}}`)
			return
		}
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":%s}`, req.Model, usage)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"o\"},\"finish_reason\":null}]}\n\n", req.Model)
		fl.Flush()
		fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"k\"},\"finish_reason\":\"stop\"}]}\n\n", req.Model)
		fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[],\"usage\":%s}\n\n", req.Model, usage)
		fl.Flush()
		if req.Model == "cut" {
			// The usage was reported; the connection dies before [DONE].
			if hj, ok := w.(http.Hijacker); ok {
				c, _, _ := hj.Hijack()
				c.Close()
			}
			return
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// costOf is a call's cost at $1 input and $2 output per million tokens,
// in nano-USD: 1,000 per prompt token and 2,000 per completion token.
func costOf(prompt, completion int) gateway.NanoUSD {
	return gateway.NanoUSD(prompt*1000 + completion*2000)
}

func budgetConfig(up string, extra string) string {
	return fmt.Sprintf(`
gateway:
  admin_key: %s
providers:
  - {name: up, type: openai, base_url: %s/v1, api_key: test}
routes:
  - name: m
    targets: [{provider: up, model: m1, price: {input: "1", output: "2"}}]
  - name: cut
    targets: [{provider: up, model: cut, price: {input: "1", output: "2"}}]
  - name: fail
    retries: -1
    targets: [{provider: up, model: fail, price: {input: "1", output: "2"}}]
%s`, testAdminKey, up, extra)
}

// newTeamKey creates a tenant (if needed) and a key in a team.
func (g *gwProc) newTeamKey(t *testing.T, tenantID, team string) string {
	t.Helper()
	if code, b := g.admin(t, "POST", "/admin/tenants", fmt.Sprintf(`{"id":%q,"name":"T"}`, tenantID)); code != 201 && code != 409 {
		t.Fatalf("create tenant: %d %s", code, b)
	}
	code, b := g.admin(t, "POST", "/admin/tenants/"+tenantID+"/keys", fmt.Sprintf(`{"name":"k","team":%q}`, team))
	if code != 201 {
		t.Fatalf("create key: %d %s", code, b)
	}
	var k struct{ Key, Team string }
	json.Unmarshal(b, &k)
	if k.Team != team {
		t.Fatalf("key team %q, want %q", k.Team, team)
	}
	return k.Key
}

// call sends one chat call and returns its status and error code.
func (g *gwProc) budgetCall(t *testing.T, key, model string, maxTokens int, stream bool) (int, string, http.Header) {
	body := fmt.Sprintf(`{"model":%q,"max_tokens":%d,"stream":%v,"stream_options":{"include_usage":%v},"messages":[{"role":"user","content":"What is the capital of France?"}]}`, model, maxTokens, stream, stream)
	if !stream {
		body = fmt.Sprintf(`{"model":%q,"max_tokens":%d,"messages":[{"role":"user","content":"What is the capital of France?"}]}`, model, maxTokens)
	}
	req, _ := http.NewRequest("POST", g.url()+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, "", nil
	}
	defer resp.Body.Close()
	var e struct{ Error struct{ Code string } }
	if resp.StatusCode != 200 {
		json.NewDecoder(resp.Body).Decode(&e)
	} else {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
		}
	}
	return resp.StatusCode, e.Error.Code, resp.Header
}

// budgetEvents waits until the tenant's log holds n terminal (response or
// error) events and returns the log's events.
func budgetEvents(t *testing.T, g *gwProc, tenantID string, n int) []ledger.Event {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(g.url() + "/ledger/" + tenantID + "/checkpoint")
		if err == nil && resp.StatusCode == 200 {
			var b strings.Builder
			bufio.NewReader(resp.Body).WriteTo(&b)
			resp.Body.Close()
			body, _ := ledger.SplitNote([]byte(b.String()))
			c, _ := ledger.ParseCheckpointBody(body)
			evs := g.entries(t, tenantID, c.Size)
			k := 0
			for _, ev := range evs {
				if ev.Kind == ledger.KindResponse || ev.Kind == ledger.KindError {
					k++
				}
			}
			if k >= n {
				return evs
			}
		} else if resp != nil {
			resp.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s never held %d calls", tenantID, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func attrs(ev ledger.Event) map[string]any {
	m := ev.Attrs
	if m == nil && ev.RawAttrs != nil {
		json.Unmarshal(ev.RawAttrs, &m)
	}
	return m
}

// TestBudgetExactAcrossReplicas: 200 concurrent calls through two gateway
// processes (one ledger: PostgreSQL and NATS; one Redis) against a team
// budget that fits exactly n of them: exactly n succeed, the others are
// refused with 429 naming the budget, the counter is exactly n calls'
// spend, and the ledger's settlements sum to the counter.
func TestBudgetExactAcrossReplicas(t *testing.T) {
	const n, calls, maxTokens = 37, 200, 10
	srv, _ := ledgertest.JetStream(t)
	dsn := ledgertest.PostgresDSN(t)
	up := budgetUpstream(t)
	prefix := fmt.Sprintf("aigw-test:budget:%d:", time.Now().UnixNano())
	config := budgetConfig(up.URL, fmt.Sprintf(`
ledger:
  database_url: %s
  nats_url: %s
budgets:
  redis_url: redis://127.0.0.1:6379/0
  prefix: %q
`, dsn, srv.ClientURL(), prefix))
	var gws []*gwProc
	var keyFile string
	for i := range 2 {
		dir := t.TempDir()
		path := filepath.Join(dir, "aigw.yaml")
		os.WriteFile(path, []byte(config), 0o600)
		args := []string{"-config", path, "-data-dir", filepath.Join(dir, "data")}
		if i == 0 {
			keyFile = filepath.Join(dir, "data", "checkpoint.key")
		} else {
			args = append(args, "-key", keyFile) // one ledger, one checkpoint key
		}
		s := startServe(t, args...)
		gws = append(gws, &gwProc{serveProc: s, traces: map[string][]traceWant{}})
	}
	key := gws[0].newTeamKey(t, "acme", "research")
	// The cost of one call, as the upstream will report it.
	var probe gateway.ChatRequest
	json.Unmarshal([]byte(`{"model":"m","messages":[{"role":"user","content":"What is the capital of France?"}]}`), &probe)
	one := costOf(gateway.EstimatePromptTokens(&probe), maxTokens)
	limit := one * n
	code, b := gws[1].admin(t, "PUT", "/admin/tenants/acme/budgets/research-daily",
		fmt.Sprintf(`{"scope":{"team":"research"},"window":{"kind":"day"},"limit_usd":%q}`, limit.String()))
	if code != 200 {
		t.Fatalf("put budget: %d %s", code, b)
	}
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			status, ecode, h := gws[i%2].budgetCall(t, key, "m", maxTokens, i%3 == 0)
			mu.Lock()
			defer mu.Unlock()
			codes[fmt.Sprint(status, " ", ecode)]++
			if status == 429 && h.Get("Retry-After") == "" {
				t.Error("a budget refusal without Retry-After")
			}
		})
	}
	wg.Wait()
	refused := codes["429 budget_exceeded"] + codes["429 budget_reserved"]
	if codes["200 "] != n || refused != calls-n {
		t.Fatalf("answers %v; want exactly %d × 200 and %d budget refusals", codes, n, calls-n)
	}
	// The counter holds exactly n calls' spend, nothing reserved.
	code, b = gws[0].admin(t, "GET", "/admin/tenants/acme/budgets", "")
	var st struct {
		Data []struct {
			ID           string
			SpentUSD     string `json:"spent_usd"`
			ReservedUSD  string `json:"reserved_usd"`
			RemainingUSD string `json:"remaining_usd"`
		}
	}
	if err := json.Unmarshal(b, &st); code != 200 || err != nil || len(st.Data) != 1 {
		t.Fatalf("budget status: %d %s", code, b)
	}
	if st.Data[0].SpentUSD != limit.String() || st.Data[0].ReservedUSD != "0.000000000" || st.Data[0].RemainingUSD != "0.000000000" {
		t.Fatalf("budget status %+v; want spent %s, nothing reserved", st.Data[0], limit)
	}
	// The ledger alone recomputes the counter.
	evs := budgetEvents(t, gws[0], "acme", calls)
	var settled gateway.NanoUSD
	kinds := map[string]int{}
	for _, ev := range evs {
		if ev.Kind != gateway.KindBudget {
			continue
		}
		a := attrs(ev)
		kinds[a["action"].(string)]++
		if a["action"] == "settle" {
			c, err := gateway.ParseNanoUSD(a["cost_usd"].(string))
			if err != nil {
				t.Fatal(err)
			}
			settled += c
		}
	}
	// Streamed calls record their reservation before the first byte;
	// the others record it in their settlement (same ledger message).
	if settled != limit || kinds["reserve"] == 0 || kinds["reserve"] >= n || kinds["settle"] != n || kinds["refuse"] != calls-n {
		t.Fatalf("ledger: settlements sum to %s (counter %s); budget events %v", settled, limit, kinds)
	}
	if kinds["alert"] != 3 { // 50%, 80%, 100%
		t.Errorf("alerts recorded: %d, want 3", kinds["alert"])
	}
}

// TestBudgetStreamsAndFailures: a streamed call, a stream cut after its
// usage, and a failed call are charged exactly what the provider reported
// (nothing for the failure: its reservation is released); refusals name
// the budget and its reset; a key outside the team is not capped.
func TestBudgetStreamsAndFailures(t *testing.T) {
	up := budgetUpstream(t)
	g := startGW(t, budgetConfig(up.URL, ""))
	key := g.newTeamKey(t, "acme", "research")
	other := g.newTeamKey(t, "acme", "ops")
	code, b := g.admin(t, "PUT", "/admin/tenants/acme/budgets/research", `{"scope":{"team":"research"},"window":{"kind":"month"},"limit_tokens":100}`)
	if code != 200 {
		t.Fatalf("put budget: %d %s", code, b)
	}
	var probe gateway.ChatRequest
	json.Unmarshal([]byte(`{"model":"m","messages":[{"role":"user","content":"What is the capital of France?"}]}`), &probe)
	prompt := gateway.EstimatePromptTokens(&probe)
	if s, c, _ := g.budgetCall(t, key, "m", 10, true); s != 200 {
		t.Fatalf("stream: %d %s", s, c)
	}
	if s, _, _ := g.budgetCall(t, key, "cut", 10, true); s != 200 {
		t.Fatalf("cut stream: status %d (the stream starts before it is cut)", s)
	}
	if s, c, _ := g.budgetCall(t, key, "fail", 10, false); s != 502 {
		t.Fatalf("failed call: %d %s", s, c)
	}
	// 2 × (prompt + 10) tokens spent of 100; a call that may use more
	// than remains is refused as exceeded, with the reset in the message.
	spent := 2 * (prompt + 10)
	s, c, h := g.budgetCall(t, key, "m", 100-spent-prompt+1, false)
	if s != 429 || c != gateway.CodeBudgetExceeded {
		t.Fatalf("over budget: %d %s", s, c)
	}
	if ra := h.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}
	if s, c, _ := g.budgetCall(t, other, "m", 1000, false); s != 200 {
		t.Fatalf("a key of another team was capped: %d %s", s, c)
	}
	evs := budgetEvents(t, g, "acme", 5)
	var costs []string
	for _, ev := range evs {
		a := attrs(ev)
		if ev.Kind == gateway.KindBudget && a["action"] == "settle" {
			costs = append(costs, fmt.Sprint(a["tokens"], " ", a["cost_usd"]))
		}
	}
	want := fmt.Sprint(prompt+10, " ", costOf(prompt, 10))
	if len(costs) != 3 || costs[0] != want || costs[1] != want || costs[2] != "0 0.000000000" {
		t.Fatalf("settlements %q; want %q twice (stream, cut stream) and nothing for the failure", costs, want)
	}
	for _, ev := range evs {
		a := attrs(ev)
		if ev.Kind == ledger.KindResponse && a["price_version"] == nil {
			t.Fatalf("response without price_version: %v", a)
		}
	}
	checkUsage(t, g, prompt)
}

// checkUsage reads the tenant's spend through the admin API, fetches its
// signed statement (JSON and CSV) and verifies it against the ledger with
// `aigw usage verify`.
func checkUsage(t *testing.T, g *gwProc, prompt int) {
	t.Helper()
	from := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	to := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	code, b := g.admin(t, "GET", "/admin/tenants/acme/usage?by=team&from="+from+"&to="+to, "")
	if code != 200 {
		t.Fatalf("usage: %d %s", code, b)
	}
	// research: stream and cut stream priced; ops: one call of 1000 max tokens.
	want := costOf(prompt, 10) * 2
	if !strings.Contains(string(b), want.String()) || !strings.Contains(string(b), `"ops"`) {
		t.Fatalf("usage by team lacks research's %s or the ops team: %s", want, b)
	}
	code, b = g.admin(t, "GET", "/admin/tenants/acme/statement?team=research&from="+from+"&to="+to, "")
	if code != 200 {
		t.Fatalf("statement: %d %s", code, b)
	}
	if !strings.Contains(string(b), `"signature"`) || !strings.Contains(string(b), want.String()) {
		t.Fatalf("statement not signed or lacks the research spend %s: %s", want, b)
	}
	path := filepath.Join(t.TempDir(), "statement.json")
	os.WriteFile(path, b, 0o600)
	if code, out, errs := run(t, "", "usage", "verify", path, "-vkey", g.vkey, "-server", g.url()); code != 0 {
		t.Fatalf("usage verify: exit %d\n%s\n%s", code, out, errs)
	}
	// A changed number fails.
	os.WriteFile(path, []byte(strings.Replace(string(b), want.String(), (want+1).String(), 1)), 0o600)
	if code, _, _ := run(t, "", "usage", "verify", path, "-vkey", g.vkey, "-server", g.url()); code != 1 {
		t.Fatalf("a tampered statement verified (exit %d)", code)
	}
	code, b = g.admin(t, "GET", "/admin/tenants/acme/statement?format=csv&from="+from+"&to="+to, "")
	if code != 200 || !strings.Contains(string(b), "up,cut,") || !strings.Contains(string(b), costOf(prompt, 10).String()) {
		t.Fatalf("CSV statement: %d %s", code, b)
	}
	// Bad parameters get the API's error shape.
	if code, b := g.admin(t, "GET", "/admin/tenants/acme/usage?by=color", ""); code != 400 || !strings.Contains(string(b), "invalid_group") {
		t.Fatalf("bad group: %d %s", code, b)
	}
}

// TestBudgetCountersSurviveRestart: with counters in memory (the embedded
// default), a restarted gateway takes the spend of the budgets' current
// windows from its ledger, so a restart never resets a cap.
func TestBudgetCountersSurviveRestart(t *testing.T) {
	up := budgetUpstream(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "aigw.yaml")
	os.WriteFile(path, []byte(budgetConfig(up.URL, "")), 0o600)
	args := []string{"-config", path, "-data-dir", filepath.Join(dir, "data")}
	g := &gwProc{serveProc: startServe(t, args...), traces: map[string][]traceWant{}}
	key := g.newTeamKey(t, "acme", "research")
	if code, b := g.admin(t, "PUT", "/admin/tenants/acme/budgets/month", `{"window":{"kind":"month"},"limit_tokens":100000}`); code != 200 {
		t.Fatalf("put budget: %d %s", code, b)
	}
	for range 3 {
		if s, c, _ := g.budgetCall(t, key, "m", 10, false); s != 200 {
			t.Fatalf("call: %d %s", s, c)
		}
	}
	spent := func(g *gwProc) string {
		_, b := g.admin(t, "GET", "/admin/tenants/acme/budgets", "")
		var st struct {
			Data []struct {
				SpentTokens int64 `json:"spent_tokens"`
			}
		}
		json.Unmarshal(b, &st)
		if len(st.Data) != 1 {
			t.Fatalf("budgets: %s", b)
		}
		return fmt.Sprint(st.Data[0].SpentTokens)
	}
	before := spent(g)
	budgetEvents(t, g, "acme", 3) // sequenced into the ledger
	g.stop()
	g2 := &gwProc{serveProc: startServe(t, args...), traces: map[string][]traceWant{}}
	if after := spent(g2); after != before || before == "0" {
		t.Fatalf("spent tokens %s before the restart, %s after", before, after)
	}
}
