package a2a

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"aigw/gateway/webhook"
)

// simple is a gateway in front of one agent b that any agent of acme may
// call.
type simple struct {
	g   *testGateway
	led *ledgerRecorder
	b   *fakeAgent
}

func newSimple(t *testing.T, cfg Config) *simple {
	t.Helper()
	s := &simple{led: newLedger(t), b: newFakeAgent(t, "b")}
	if cfg.Recorder == nil {
		cfg.Recorder = s.led
	}
	cfg.Agents = append(cfg.Agents, Agent{Name: "b", Tenant: "acme", URL: s.b.srv.URL, Callers: []string{"*"}})
	s.g = newGateway(t, cfg)
	return s
}

func (s *simple) send(t *testing.T, as, text, messageID string) *Response {
	t.Helper()
	_, res := s.g.do(t, rpcCall{agent: "b", key: "key-a", as: as, method: MethodSend, params: textParams(text, messageID, nil)})
	return res
}

// lastEvent returns the attributes of a tenant log's last event.
func lastEvent(t *testing.T, led *ledgerRecorder, tenant string) map[string]any {
	t.Helper()
	evs := led.events(t, tenant)
	if len(evs) == 0 {
		return nil
	}
	return attrsOf(t, evs[len(evs)-1])
}

func TestIdempotentRetries(t *testing.T) {
	s := newSimple(t, Config{})
	mid := newMessageID()
	first := mustTask(t, s.send(t, "a", "wait", mid))
	again := mustTask(t, s.send(t, "a", "wait", mid))
	if again.ID != first.ID || s.b.count(MethodSend) != 1 {
		t.Fatalf("retry got task %s (first %s), agent called %d times; want the same task, one call", again.ID, first.ID, s.b.count(MethodSend))
	}
	if last := lastEvent(t, s.led, "acme"); last["event"] != EventCall || last["outcome"] != OutcomeReplayed || last["hop_id"] != first.ID {
		t.Errorf("retry recorded as %v", last)
	}
	// Retries racing the first request: one call, one task.
	mid = newMessageID()
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			res, err := s.g.call(rpcCall{agent: "b", key: "key-a", as: "a", method: MethodSend, params: textParams("wait", mid, nil)})
			if err != nil || res.Error != nil {
				t.Errorf("concurrent send: %v %+v", err, res)
				return
			}
			var task Task
			json.Unmarshal(res.Result, &task)
			ids[i] = task.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Errorf("concurrent retries got tasks %v; want one", ids)
			break
		}
	}
	if s.b.count(MethodSend) != 2 {
		t.Errorf("agent called %d times for two messages", s.b.count(MethodSend))
	}
	// The same messageId from another caller is another message.
	other := mustTask(t, s.send(t, "a2", "wait", mid))
	if other.ID == ids[0] || s.b.count(MethodSend) != 3 {
		t.Errorf("another caller's message got task %s (%d calls)", other.ID, s.b.count(MethodSend))
	}
	// A stream retried after a send gets the task as one event.
	resp, err := http.DefaultClient.Do(s.g.request(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodStream, params: textParams("wait", mid, nil)}))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !isEventStream(resp.Header) || !strings.Contains(string(body), ids[0]) || s.b.count(MethodStream) != 0 {
		t.Errorf("stream retry: %s %s", resp.Header.Get("Content-Type"), body)
	}
}

func TestFollowUpMessages(t *testing.T) {
	s := newSimple(t, Config{})
	task := mustTask(t, s.send(t, "a", "ask", newMessageID()))
	if task.Status.State != StateInputRequired {
		t.Fatalf("state %s; want input-required", task.Status.State)
	}
	params := textParams("answer", newMessageID(), nil)
	params["message"].(map[string]any)["taskId"] = task.ID
	_, res := s.g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodSend, params: params})
	done := mustTask(t, res)
	if done.ID != task.ID || done.Status.State != StateCompleted {
		t.Errorf("follow-up answered %s %s", done.ID, done.Status.State)
	}
	s.b.mu.Lock()
	got := s.b.taskIDs[len(s.b.taskIDs)-1]
	s.b.mu.Unlock()
	if got != "b-task-1" {
		t.Errorf("agent got taskId %q; want its own id b-task-1", got)
	}
	// Another caller cannot continue it; a finished task takes no more.
	_, res = s.g.do(t, rpcCall{agent: "b", key: "key-a", as: "a2", method: MethodSend, params: params})
	wantError(t, res, CodeTaskNotFound, ReasonTaskNotFound)
	params = textParams("more", newMessageID(), nil)
	params["message"].(map[string]any)["taskId"] = task.ID
	_, res = s.g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodSend, params: params})
	wantError(t, res, CodeUnsupportedOperation, ReasonUnsupported)
	var states []string
	for _, ev := range s.led.events(t, "acme") {
		if a := attrsOf(t, ev); a["event"] == EventState {
			states = append(states, a["state"].(string))
		}
	}
	if strings.Join(states, ",") != "input-required,completed" {
		t.Errorf("recorded states %v", states)
	}
}

func TestMessageAnswer(t *testing.T) {
	s := newSimple(t, Config{})
	mid := newMessageID()
	res := s.send(t, "a", "reply", mid)
	var m Message
	if res.Error != nil || json.Unmarshal(res.Result, &m) != nil || m.Kind != KindMessage || m.Role != "agent" {
		t.Fatalf("answer %s %+v", res.Result, res.Error)
	}
	again := s.send(t, "a", "reply", mid)
	if string(again.Result) != string(res.Result) || s.b.count(MethodSend) != 1 {
		t.Errorf("retry answered %s; want the same message, without a second call", again.Result)
	}
}

func TestPushNotifications(t *testing.T) {
	s := newSimple(t, Config{})
	secret, _ := webhook.NewSecret()
	type hook struct {
		header http.Header
		body   []byte
	}
	hooks := make(chan hook, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hooks <- hook{r.Header.Clone(), b}
	}))
	t.Cleanup(receiver.Close)
	task := mustTask(t, s.send(t, "a", "wait", newMessageID()))

	t.Run("BadConfigRefused", func(t *testing.T) {
		for _, cfg := range []PushNotificationConfig{{URL: receiver.URL, Token: "short"}, {URL: "ftp://x", Token: secret}, {URL: receiver.URL}} {
			_, res := s.g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodPushSet,
				params: TaskPushNotificationConfig{TaskID: task.ID, PushNotificationConfig: cfg}})
			wantError(t, res, CodeInvalidParams, "")
		}
	})

	_, res := s.g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodPushSet,
		params: TaskPushNotificationConfig{TaskID: task.ID, PushNotificationConfig: PushNotificationConfig{URL: receiver.URL + "/hook", Token: secret}}})
	if res.Error != nil {
		t.Fatal(res.Error)
	}
	var set TaskPushNotificationConfig
	json.Unmarshal(res.Result, &set)
	if set.TaskID != task.ID || set.PushNotificationConfig.ID == "" || set.PushNotificationConfig.Token != "" {
		t.Errorf("set answered %s; want the config with an id, without its token", res.Result)
	}
	// The agent was told to notify the gateway, not the caller.
	ft := s.b.task("b-task-1")
	if ft.push == nil || !strings.HasPrefix(ft.push.URL, s.g.srv.URL+"/a2a/b/push/") || ft.push.Token == secret {
		t.Fatalf("agent's push config %+v; want the gateway's callback", ft.push)
	}

	t.Run("ReadConfig", func(t *testing.T) {
		_, res := s.g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodPushGet, params: map[string]any{"id": task.ID}})
		var got TaskPushNotificationConfig
		if res.Error != nil || json.Unmarshal(res.Result, &got) != nil || got.PushNotificationConfig.URL != receiver.URL+"/hook" || got.PushNotificationConfig.Token != "" {
			t.Errorf("get = %s %v", res.Result, res.Error)
		}
		_, res = s.g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodPushList, params: map[string]any{"id": task.ID}})
		if res.Error != nil || !strings.Contains(string(res.Result), "/hook") {
			t.Errorf("list = %s %v", res.Result, res.Error)
		}
	})

	t.Run("ForgedCallbackRefused", func(t *testing.T) {
		resp, err := http.Post(ft.push.URL, "application/json", strings.NewReader(`{"kind":"task"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("callback without its token: %d", resp.StatusCode)
		}
	})

	// The agent finishes on its own and notifies the gateway, which
	// records it and notifies the caller, signed.
	s.b.complete("b-task-1")
	var h hook
	select {
	case h = <-hooks:
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook")
	}
	if err := webhook.Verify(secret, h.header, h.body, 0); err != nil {
		t.Fatalf("webhook signature: %v", err)
	}
	var env struct {
		Type string `json:"type"`
		Data Task   `json:"data"`
	}
	if err := json.Unmarshal(h.body, &env); err != nil || env.Type != PushEventType || env.Data.ID != task.ID || env.Data.Status.State != StateCompleted {
		t.Errorf("webhook %s", h.body)
	}
	if hop, _ := s.g.p.store.Get(bg, "acme", task.ID); hop.State != StateCompleted {
		t.Errorf("hop state %s after the agent's notification", hop.State)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if last := lastEvent(t, s.led, "acme"); last["event"] == EventPush {
			if last["outcome"] != "delivered" || last["hop_id"] != task.ID {
				t.Errorf("push recorded as %v", last)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("webhook delivery not recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}

	t.Run("InlineConfigGoesToTheGateway", func(t *testing.T) {
		params := textParams("wait", newMessageID(), nil)
		params["configuration"] = map[string]any{"blocking": true, "pushNotificationConfig": map[string]any{"url": receiver.URL + "/inline", "token": secret}}
		_, res := s.g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodSend, params: params})
		task := mustTask(t, res)
		s.b.mu.Lock()
		push := s.b.pushes[len(s.b.pushes)-1]
		s.b.mu.Unlock()
		if push == nil || !strings.HasPrefix(push.URL, s.g.srv.URL) {
			t.Errorf("agent got push config %+v; want the gateway's", push)
		}
		// A cancel is a state change the gateway sees: the caller hears of it.
		_, res = s.g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodCancel, params: map[string]any{"id": task.ID}})
		mustTask(t, res)
		for {
			select {
			case h := <-hooks:
				var env struct{ Data Task }
				json.Unmarshal(h.body, &env)
				if env.Data.ID == task.ID && env.Data.Status.State == StateCanceled {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no webhook of the cancellation")
			}
		}
	})
}

func TestCards(t *testing.T) {
	s := newSimple(t, Config{})
	get := func(key, agent string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, s.g.srv.URL+"/a2a/"+agent+"/.well-known/agent-card.json", nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set(HeaderAgent, "a")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	status, card := get("key-a", "b")
	if status != 200 || card["name"] != "b" || card["url"] != s.g.srv.URL+"/a2a/b" || card["preferredTransport"] != "JSONRPC" {
		t.Fatalf("card %d %v", status, card)
	}
	caps, _ := card["capabilities"].(map[string]any)
	schemes, _ := card["securitySchemes"].(map[string]any)
	if caps["streaming"] != true || caps["pushNotifications"] != true || schemes["aigw"] == nil || schemes["own"] != nil {
		t.Errorf("card capabilities %v, schemes %v", caps, schemes)
	}
	if skills, _ := card["skills"].([]any); len(skills) != 1 {
		t.Errorf("card skills %v; want the agent's", card["skills"])
	}
	if status, _ := get("", "b"); status != http.StatusUnauthorized {
		t.Errorf("card without a key: %d", status)
	}
	if status, _ := get("key-z", "b"); status != http.StatusNotFound {
		t.Errorf("card of another tenant's agent: %d", status)
	}
}

func TestBadInput(t *testing.T) {
	nostream := newFakeAgent(t, "n")
	card := nostream.card()
	card.Capabilities.Streaming = false
	s := newSimple(t, Config{MaxMessageBytes: 4096, Agents: []Agent{
		{Name: "n", Tenant: "acme", URL: nostream.srv.URL, Card: card, Callers: []string{"*"}},
		{Name: "z", Tenant: "zeta", URL: nostream.srv.URL, Card: card, Callers: []string{"*"}},
	}})
	valid := func(method string) string {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": method, "params": textParams("wait", newMessageID(), nil)})
		return string(b)
	}
	withMessage := func(edit func(m map[string]any)) string {
		p := textParams("wait", newMessageID(), nil)
		edit(p["message"].(map[string]any))
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": MethodSend, "params": p})
		return string(b)
	}
	for _, test := range []struct {
		name     string
		agent    string
		key, as  string
		method   string // HTTP method (default POST)
		body     string
		status   int
		code     int
		reason   string
		recorded bool
	}{
		{"NoKey", "b", "", "a", "", valid(MethodSend), 401, CodeUnauthenticated, ReasonUnauthenticated, false},
		{"BadKey", "b", "nope", "a", "", valid(MethodSend), 401, CodeUnauthenticated, ReasonUnauthenticated, false},
		{"NoAgentHeader", "b", "key-a", "", "", valid(MethodSend), 401, CodeUnauthenticated, ReasonUnauthenticated, true},
		{"UnknownAgent", "nobody", "key-a", "a", "", valid(MethodSend), 404, CodeAgentNotFound, ReasonAgentNotFound, true},
		{"AgentOfAnotherTenant", "z", "key-a", "a", "", valid(MethodSend), 404, CodeAgentNotFound, ReasonAgentNotFound, true},
		{"MalformedJSON", "b", "key-a", "a", "", `{"jsonrpc":"2.0","id":1,`, 200, CodeParseError, ReasonParseError, true},
		{"NotAnObject", "b", "key-a", "a", "", `"hello"`, 200, CodeParseError, ReasonParseError, true},
		{"Batch", "b", "key-a", "a", "", "[" + valid(MethodSend) + "]", 200, CodeInvalidRequest, ReasonInvalidRequest, true},
		{"WrongVersion", "b", "key-a", "a", "", `{"jsonrpc":"1.0","id":1,"method":"tasks/get"}`, 200, CodeInvalidRequest, ReasonInvalidRequest, true},
		{"Notification", "b", "key-a", "a", "", `{"jsonrpc":"2.0","method":"tasks/get","params":{"id":"x"}}`, 200, CodeInvalidRequest, ReasonInvalidRequest, true},
		{"ObjectID", "b", "key-a", "a", "", `{"jsonrpc":"2.0","id":{},"method":"tasks/get"}`, 200, CodeInvalidRequest, ReasonInvalidRequest, true},
		{"MethodNotString", "b", "key-a", "a", "", `{"jsonrpc":"2.0","id":1,"method":5}`, 200, CodeInvalidRequest, ReasonInvalidRequest, true},
		{"UnknownMethod", "b", "key-a", "a", "", valid("tasks/explode"), 200, CodeMethodNotFound, ReasonMethodNotFound, true},
		{"Unsupported", "b", "key-a", "a", "", valid(MethodExtendedCard), 200, CodeUnsupportedOperation, ReasonUnsupported, true},
		{"Oversized", "b", "key-a", "a", "", valid(MethodSend)[:20] + strings.Repeat(" ", 5000) + valid(MethodSend)[20:], 413, CodeTooLarge, ReasonTooLarge, true},
		{"NoParams", "b", "key-a", "a", "", `{"jsonrpc":"2.0","id":1,"method":"message/send"}`, 200, CodeInvalidParams, ReasonInvalidParams, true},
		{"AgentRole", "b", "key-a", "a", "", withMessage(func(m map[string]any) { m["role"] = "agent" }), 200, CodeInvalidParams, ReasonInvalidParams, true},
		{"NoMessageID", "b", "key-a", "a", "", withMessage(func(m map[string]any) { delete(m, "messageId") }), 200, CodeInvalidParams, ReasonInvalidParams, true},
		{"NoParts", "b", "key-a", "a", "", withMessage(func(m map[string]any) { m["parts"] = []any{} }), 200, CodeInvalidParams, ReasonInvalidParams, true},
		{"BadPartKind", "b", "key-a", "a", "", withMessage(func(m map[string]any) { m["parts"] = []any{map[string]any{"kind": "video"}} }), 200, CodeInvalidParams, ReasonInvalidParams, true},
		{"BadDelegationRequest", "b", "key-a", "a", "", strings.Replace(valid(MethodSend), `"params":{`, `"params":{"metadata":{"aigw.delegation_request":{"scope":["x"]}},`, 1), 200, CodeInvalidParams, ReasonInvalidParams, true},
		{"TaskNotFound", "b", "key-a", "a", "", `{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"nope"}}`, 200, CodeTaskNotFound, ReasonTaskNotFound, true},
		{"StreamToNonStreamingAgent", "n", "key-a", "a", "", valid(MethodStream), 200, CodeUnsupportedOperation, ReasonUnsupported, true},
		{"GET", "b", "key-a", "a", http.MethodGet, "", 405, CodeInvalidRequest, ReasonInvalidRequest, false},
	} {
		t.Run(test.name, func(t *testing.T) {
			before := len(s.led.events(t, "acme"))
			method := test.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, s.g.srv.URL+"/a2a/"+test.agent, strings.NewReader(test.body))
			if test.key != "" {
				req.Header.Set("Authorization", "Bearer "+test.key)
			}
			if test.as != "" {
				req.Header.Set(HeaderAgent, test.as)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var res Response
			if err := json.Unmarshal(body, &res); err != nil || res.JSONRPC != "2.0" {
				t.Fatalf("answer %q is not a JSON-RPC response", body)
			}
			if resp.StatusCode != test.status {
				t.Errorf("HTTP %d; want %d", resp.StatusCode, test.status)
			}
			wantError(t, &res, test.code, test.reason)
			t.Logf("HTTP %d: %d %s", resp.StatusCode, res.Error.Code, res.Error.Message)
			if res.Error.Message == "" || !strings.HasSuffix(res.Error.Message, ".") {
				t.Errorf("error message %q is not a sentence", res.Error.Message)
			}
			evs := s.led.events(t, "acme")
			if !test.recorded {
				if len(evs) != before {
					t.Errorf("recorded %d events; want none", len(evs)-before)
				}
				return
			}
			if len(evs) != before+1 {
				t.Fatalf("recorded %d events; want one", len(evs)-before)
			}
			a := attrsOf(t, evs[len(evs)-1])
			if a["event"] != EventRefused || a["reason"] != test.reason {
				t.Errorf("recorded %v", a)
			}
		})
	}
	if s.b.count(MethodSend) != 0 || nostream.count(MethodStream) != 0 {
		t.Errorf("bad input reached an agent")
	}
}

func TestFailClosed(t *testing.T) {
	s := newSimple(t, Config{})
	s.led.setDown(true)
	res := s.send(t, "a", "wait", newMessageID())
	wantError(t, res, CodeLedgerUnavailable, ReasonLedgerUnavailable)
	if s.b.count(MethodSend) != 0 {
		t.Errorf("the agent was called without the hop recorded")
	}
	if s.g.p.LedgerFailures.Load() == 0 {
		t.Errorf("ledger failure not counted")
	}
	s.led.setDown(false)
	mustTask(t, s.send(t, "a", "wait", newMessageID()))

	open := newSimple(t, Config{FailOpen: true})
	open.led.setDown(true)
	mustTask(t, open.send(t, "a", "wait", newMessageID()))
}

// badAgent answers message/send with what answer returns.
func badAgent(t *testing.T, answer func(id json.RawMessage) string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req Request
		json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer(req.ID))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestUpstreamFailures(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	var mu sync.Mutex
	state := "completed"
	flip := badAgent(t, func(id json.RawMessage) string {
		mu.Lock()
		defer mu.Unlock()
		return `{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"kind":"task","id":"t1","contextId":"c","status":{"state":"` + state + `"}}}`
	})
	rpcError := badAgent(t, func(id json.RawMessage) string {
		return `{"jsonrpc":"2.0","id":` + string(id) + `,"error":{"code":-32005,"message":"Incompatible content types"}}`
	})
	garbage := badAgent(t, func(json.RawMessage) string { return `<html>` })
	s := newSimple(t, Config{Agents: []Agent{
		{Name: "down", Tenant: "acme", URL: down.URL, Card: &AgentCard{Name: "down"}, Callers: []string{"*"}},
		{Name: "flip", Tenant: "acme", URL: flip.URL, Card: &AgentCard{Name: "flip"}, Callers: []string{"*"}},
		{Name: "err", Tenant: "acme", URL: rpcError.URL, Card: &AgentCard{Name: "err"}, Callers: []string{"*"}},
		{Name: "garbage", Tenant: "acme", URL: garbage.URL, Card: &AgentCard{Name: "garbage"}, Callers: []string{"*"}},
	}})
	send := func(agent, mid string) *Response {
		_, res := s.g.do(t, rpcCall{agent: agent, key: "key-a", as: "a", method: MethodSend, params: textParams("x", mid, nil)})
		return res
	}
	mid := newMessageID()
	wantError(t, send("down", mid), CodeUpstreamUnavailable, ReasonUpstreamUnavailable)
	if last := lastEvent(t, s.led, "acme"); last["event"] != EventCall || last["outcome"] != OutcomeUpstream || last["state"] != "failed" {
		t.Errorf("recorded %v", last)
	}
	wantError(t, send("down", mid), CodeUpstreamUnavailable, ReasonUpstreamUnavailable) // a failed message may be retried
	wantError(t, send("err", newMessageID()), -32005, "")
	wantError(t, send("garbage", newMessageID()), CodeInvalidAgentResponse, ReasonInvalidAgentResponse)
	// A completed task going back to working is refused.
	task := mustTask(t, send("flip", newMessageID()))
	mu.Lock()
	state = "working"
	mu.Unlock()
	_, res := s.g.do(t, rpcCall{agent: "flip", key: "key-a", as: "a", method: MethodGet, params: map[string]any{"id": task.ID}})
	if res.Error != nil {
		t.Fatalf("tasks/get of a finished task: %v (answered from the store)", res.Error)
	}
	params := textParams("x", newMessageID(), nil)
	params["message"].(map[string]any)["taskId"] = task.ID
	_, res = s.g.do(t, rpcCall{agent: "flip", key: "key-a", as: "a", method: MethodSend, params: params})
	wantError(t, res, CodeUnsupportedOperation, ReasonUnsupported)
	hop, _ := s.g.p.store.Get(bg, "acme", task.ID)
	hop.State = StateWorking // pretend the gateway missed the end
	s.g.p.store.(*MemoryStore).hops["acme\x00"+task.ID].h.State = StateSubmitted
	_, res = s.g.do(t, rpcCall{agent: "flip", key: "key-a", as: "a", method: MethodGet, params: map[string]any{"id": task.ID}})
	if res.Error != nil {
		t.Errorf("submitted → working refused: %v", res.Error)
	}
	mu.Lock()
	state = "submitted"
	mu.Unlock()
	_, res = s.g.do(t, rpcCall{agent: "flip", key: "key-a", as: "a", method: MethodGet, params: map[string]any{"id": task.ID}})
	wantError(t, res, CodeInvalidAgentResponse, ReasonInvalidAgentResponse)
	if !bytes.Contains([]byte(res.Error.Message), []byte("working")) {
		t.Errorf("error %q does not name the state", res.Error.Message)
	}
}

// A retried delegation is answered as the first was, even when the first
// took the budget the retry asks for again, or its task has ended since.
func TestRetryIsAnsweredNotRefused(t *testing.T) {
	ch := newChain(t, nil)
	_, res := ch.g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodSend,
		params: textParams("wait", newMessageID(), &DelegationRequest{Budget: &RequestBudget{NanoUSD: int64p(100), Tokens: int64p(10)}})})
	mustTask(t, res)
	tokB := ch.b.lastToken()
	mid := newMessageID()
	asB := rpcCall{agent: "c", key: "key-b", as: "b", token: tokB, method: MethodSend,
		params: textParams("echo", mid, &DelegationRequest{Budget: &RequestBudget{NanoUSD: int64p(100), Tokens: int64p(10)}})}
	_, res = ch.g.do(t, asB)
	first := mustTask(t, res)
	_, res = ch.g.do(t, asB)
	if again := mustTask(t, res); again.ID != first.ID || ch.c.count(MethodSend) != 1 {
		t.Errorf("retry got %s (%d calls to c); want %s, one call", again.ID, ch.c.count(MethodSend), first.ID)
	}
	// A new message asking the same is refused: b has nothing left.
	asB.params = textParams("echo", newMessageID(), &DelegationRequest{Budget: &RequestBudget{NanoUSD: int64p(100)}})
	_, res = ch.g.do(t, asB)
	wantError(t, res, CodeDelegationWidened, ReasonWidened)
	// A follow-up retried after the task completed gets its answer.
	task := mustTask(t, ch.send(t, "a", "ask"))
	params := textParams("answer", newMessageID(), nil)
	params["message"].(map[string]any)["taskId"] = task.ID
	follow := rpcCall{agent: "b", key: "key-a", as: "a", method: MethodSend, params: params}
	_, res = ch.g.do(t, follow)
	done := mustTask(t, res)
	_, res = ch.g.do(t, follow)
	if again := mustTask(t, res); again.ID != done.ID || again.Status.State != StateCompleted {
		t.Errorf("retried follow-up: %s %s", again.ID, again.Status.State)
	}
}

func (ch *chain) send(t *testing.T, as, text string) *Response {
	t.Helper()
	_, res := ch.g.do(t, rpcCall{agent: "b", key: "key-" + as, as: as, method: MethodSend, params: textParams(text, newMessageID(), nil)})
	return res
}
