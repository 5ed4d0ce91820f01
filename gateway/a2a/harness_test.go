package a2a

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aigw/gateway"
	"aigw/ledger"
	"aigw/ledger/ledgertest"
	"aigw/ledger/sequencer"
	"aigw/ledger/signer"
	"aigw/ledger/sqlite"
	"aigw/verify"

	"golang.org/x/mod/sumdb/note"
)

// ledgerRecorder records events in a real ledger: each Publish is one
// sequencer append (canonical entries, payload commitments, Merkle tree,
// signed checkpoint) into a SQLite store, acknowledged when committed.
// down makes Publish fail as with a lost NATS connection.
type ledgerRecorder struct {
	store    *sqlite.Store
	seq      *sequencer.Sequencer
	verifier note.Verifier

	mu   sync.Mutex
	down bool
}

func newLedger(t testing.TB) *ledgerRecorder {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "ledger.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sg, _, err := signer.Generate("aigw-test")
	if err != nil {
		t.Fatal(err)
	}
	seq, err := sequencer.New(sequencer.Config{Store: st, Signer: sg, OriginPrefix: "aigw-test"})
	if err != nil {
		t.Fatal(err)
	}
	return &ledgerRecorder{store: st, seq: seq, verifier: sg.Verifier()}
}

type acked struct{ err error }

func (a acked) Wait(context.Context) error { return a.err }

func (l *ledgerRecorder) setDown(down bool) {
	l.mu.Lock()
	l.down = down
	l.mu.Unlock()
}

func (l *ledgerRecorder) Publish(evs []*ledger.Event, pls [][]byte) (gateway.Pending, error) {
	l.mu.Lock()
	down := l.down
	l.mu.Unlock()
	if down {
		return nil, fmt.Errorf("connection down: %w", ledger.ErrBackpressure)
	}
	recs := make([]sequencer.Record, len(evs))
	for i, ev := range evs {
		cp := *ev
		var p, salt []byte
		if i < len(pls) && pls[i] != nil {
			p = pls[i]
			cp.PayloadSHA256, salt = ledger.Commit(p, nil)
		}
		entry, err := cp.Entry()
		if err != nil {
			return nil, err
		}
		recs[i] = sequencer.Record{Entry: entry, Payload: p, Salt: salt}
	}
	if _, err := l.seq.Append(context.Background(), evs[0].Tenant, recs); err != nil {
		return nil, err
	}
	return acked{}, nil
}

// events reads a tenant's log back from the store, as an auditor would.
func (l *ledgerRecorder) events(t testing.TB, tenant string) []ledger.Event {
	t.Helper()
	var out []ledger.Event
	for start := uint64(0); ; {
		es, err := l.store.ReadEntries(context.Background(), tenant, start, 256)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			ev, err := ledger.ParseEntry(e.Data)
			if err != nil {
				t.Fatalf("entry %d: %v", e.Index, err)
			}
			out = append(out, *ev)
		}
		if len(es) < 256 {
			return out
		}
		start += uint64(len(es))
	}
}

// verifyLog checks a tenant's whole log: entries, chain, tree, tiles,
// checkpoint and payloads.
func (l *ledgerRecorder) verifyLog(t testing.TB, tenant string) {
	t.Helper()
	res, err := verify.Log(context.Background(), verify.StoreSource(l.store), tenant, verify.Options{Verifiers: note.VerifierList(l.verifier), Payloads: true})
	if err != nil {
		t.Fatalf("verify log %s: %v", tenant, err)
	}
	if res.PayloadsChecked == 0 {
		t.Errorf("verify log %s: no payload checked", tenant)
	}
}

// attrsOf returns an event's attributes.
func attrsOf(t testing.TB, ev ledger.Event) map[string]any {
	t.Helper()
	a, err := ev.DecodeAttrs()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// fakeTask is a task of a fake agent.
type fakeTask struct {
	ID, ContextID string
	State         TaskState
	Artifacts     []any
	Meta          map[string]any
	push          *PushNotificationConfig
}

func (ft *fakeTask) json() json.RawMessage {
	t := map[string]any{"kind": KindTask, "id": ft.ID, "contextId": ft.ContextID,
		"status": map[string]any{"state": ft.State, "timestamp": time.Now().UTC().Format(time.RFC3339)}}
	if len(ft.Artifacts) > 0 {
		t["artifacts"] = ft.Artifacts
	}
	if ft.Meta != nil {
		t["metadata"] = ft.Meta
	}
	b, _ := json.Marshal(t)
	return b
}

// fakeAgent is an A2A agent speaking the JSON-RPC binding: its behavior
// follows the first text part of a message ("echo ..." and "answer":
// completed at once; "ask": input-required; "reply": answers a Message;
// "stream": streams submitted, working, an artifact, completed; anything
// else: working until canceled or completed).
// onMessage, when set, runs first (B's delegation to C).
type fakeAgent struct {
	t    testing.TB
	name string
	srv  *httptest.Server

	mu      sync.Mutex
	tasks   map[string]*fakeTask
	seq     int
	calls   map[string]int
	tokens  []string                  // X-Aigw-Delegation of each message
	meta    []string                  // metadata["aigw.delegation"] of each message
	taskIDs []string                  // taskId of each message
	pushes  []*PushNotificationConfig // configuration.pushNotificationConfig of each message
	// gate, when set, holds a stream after its first event until closed.
	gate chan struct{}
	// onMessage runs on each message before the default behavior; it may
	// set the task's metadata.
	onMessage func(token string, m Message, task *fakeTask) error
}

func newFakeAgent(t testing.TB, name string) *fakeAgent {
	fa := &fakeAgent{t: t, name: name, tasks: map[string]*fakeTask{}, calls: map[string]int{}}
	fa.srv = httptest.NewServer(fa)
	t.Cleanup(fa.srv.Close)
	return fa
}

func (fa *fakeAgent) card() *AgentCard {
	return &AgentCard{Name: fa.name, Description: "fake agent " + fa.name, URL: fa.srv.URL, Version: "1.0.0",
		Capabilities:       AgentCapabilities{Streaming: true, PushNotifications: true},
		DefaultInputModes:  []string{"text/plain"},
		DefaultOutputModes: []string{"text/plain"},
		Skills:             []AgentSkill{{ID: "work", Name: "work", Description: "does work", Tags: []string{"test"}}},
		SecuritySchemes:    map[string]map[string]any{"own": {"type": "apiKey", "in": "header", "name": "X-Own"}},
	}
}

func (fa *fakeAgent) count(method string) int {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	return fa.calls[method]
}

func (fa *fakeAgent) task(id string) fakeTask {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	if ft := fa.tasks[id]; ft != nil {
		return *ft
	}
	return fakeTask{}
}

func (fa *fakeAgent) lastToken() string {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	if len(fa.tokens) == 0 {
		return ""
	}
	return fa.tokens[len(fa.tokens)-1]
}

func (fa *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/.well-known/agent-card.json" {
		json.NewEncoder(w).Encode(fa.card())
		return
	}
	var req Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad json", 400)
		return
	}
	fa.mu.Lock()
	fa.calls[req.Method]++
	fa.mu.Unlock()
	reply := func(result json.RawMessage, e *RPCError) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(appendResponse(nil, req.ID, result, e))
	}
	switch req.Method {
	case MethodSend, MethodStream:
		var p struct {
			Message       Message `json:"message"`
			Configuration struct {
				Push *PushNotificationConfig `json:"pushNotificationConfig"`
			} `json:"configuration"`
		}
		if err := json.Unmarshal(req.Params, &p); err != nil {
			reply(nil, &RPCError{Code: CodeInvalidParams, Message: err.Error()})
			return
		}
		tok := r.Header.Get(HeaderDelegation)
		mt, _ := p.Message.Metadata[MetaDelegation].(string)
		fa.mu.Lock()
		fa.tokens = append(fa.tokens, tok)
		fa.meta = append(fa.meta, mt)
		fa.taskIDs = append(fa.taskIDs, p.Message.TaskID)
		fa.pushes = append(fa.pushes, p.Configuration.Push)
		fa.mu.Unlock()
		text := ""
		if len(p.Message.Parts) > 0 {
			text = p.Message.Parts[0].Text
		}
		if text == "reply" {
			m, _ := json.Marshal(map[string]any{"kind": KindMessage, "role": "agent", "messageId": "m-" + fa.name,
				"parts": []any{map[string]any{"kind": "text", "text": "hello"}}})
			reply(m, nil)
			return
		}
		ft := fa.taskFor(p.Message)
		ft.push = p.Configuration.Push
		if fa.onMessage != nil {
			if err := fa.onMessage(tok, p.Message, ft); err != nil {
				reply(nil, &RPCError{Code: CodeInternal, Message: err.Error()})
				return
			}
		}
		switch {
		case req.Method == MethodStream:
			fa.stream(w, req.ID, ft)
			return
		case text == "ask":
			fa.set(ft, StateInputRequired)
		case strings.HasPrefix(text, "echo") || text == "answer":
			fa.set(ft, StateCompleted)
			ft.Artifacts = []any{map[string]any{"artifactId": "a1", "parts": []any{map[string]any{"kind": "text", "text": text}}}}
		default:
			fa.set(ft, StateWorking)
		}
		reply(fa.snapshot(ft), nil)
	case MethodGet, MethodCancel, MethodResubscribe:
		var p taskParams
		json.Unmarshal(req.Params, &p)
		fa.mu.Lock()
		ft := fa.tasks[p.ID]
		fa.mu.Unlock()
		if ft == nil {
			reply(nil, &RPCError{Code: CodeTaskNotFound, Message: "Task not found"})
			return
		}
		if req.Method == MethodResubscribe {
			fa.stream(w, req.ID, ft)
			return
		}
		if req.Method == MethodCancel {
			if fa.task(ft.ID).State.Terminal() {
				reply(nil, &RPCError{Code: CodeTaskNotCancelable, Message: "Task cannot be canceled"})
				return
			}
			fa.set(ft, StateCanceled)
			fa.notify(ft)
		}
		reply(fa.snapshot(ft), nil)
	case MethodPushSet:
		var p TaskPushNotificationConfig
		json.Unmarshal(req.Params, &p)
		fa.mu.Lock()
		if ft := fa.tasks[p.TaskID]; ft != nil {
			cfg := p.PushNotificationConfig
			ft.push = &cfg
		}
		fa.mu.Unlock()
		b, _ := json.Marshal(p)
		reply(b, nil)
	default:
		reply(nil, &RPCError{Code: CodeMethodNotFound, Message: "Method not found"})
	}
}

func (fa *fakeAgent) taskFor(m Message) *fakeTask {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	if ft := fa.tasks[m.TaskID]; m.TaskID != "" && ft != nil {
		return ft
	}
	fa.seq++
	ft := &fakeTask{ID: fmt.Sprintf("%s-task-%d", fa.name, fa.seq), ContextID: fa.name + "-ctx", State: StateSubmitted}
	fa.tasks[ft.ID] = ft
	return ft
}

func (fa *fakeAgent) set(ft *fakeTask, st TaskState) {
	fa.mu.Lock()
	ft.State = st
	fa.mu.Unlock()
}

func (fa *fakeAgent) snapshot(ft *fakeTask) json.RawMessage {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	return ft.json()
}

// notify pushes a task to the push config it was given (the gateway's).
func (fa *fakeAgent) notify(ft *fakeTask) {
	fa.mu.Lock()
	push, body := ft.push, ft.json()
	fa.mu.Unlock()
	if push == nil {
		return
	}
	req, _ := http.NewRequest(http.MethodPost, push.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderNotificationToken, push.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fa.t.Errorf("fake %s: push: %v", fa.name, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		fa.t.Errorf("fake %s: push answered %d", fa.name, resp.StatusCode)
	}
}

// complete finishes a waiting task and pushes it.
func (fa *fakeAgent) complete(id string) {
	fa.mu.Lock()
	ft := fa.tasks[id]
	fa.mu.Unlock()
	fa.set(ft, StateCompleted)
	fa.notify(ft)
}

func (fa *fakeAgent) stream(w http.ResponseWriter, id json.RawMessage, ft *fakeTask) {
	w.Header().Set("Content-Type", "text/event-stream")
	rc := http.NewResponseController(w)
	send := func(result any) {
		b, _ := json.Marshal(result)
		fmt.Fprintf(w, "data: %s\n\n", appendResponse(nil, id, b, nil))
		rc.Flush()
	}
	send(json.RawMessage(fa.snapshot(ft)))
	if fa.gate != nil {
		<-fa.gate
	}
	fa.set(ft, StateWorking)
	send(map[string]any{"kind": KindStatusUpdate, "taskId": ft.ID, "contextId": ft.ContextID, "status": map[string]any{"state": StateWorking}, "final": false})
	send(map[string]any{"kind": KindArtifactUpdate, "taskId": ft.ID, "contextId": ft.ContextID,
		"artifact": map[string]any{"artifactId": "out", "parts": []any{map[string]any{"kind": "text", "text": "streamed"}}}})
	fa.set(ft, StateCompleted)
	send(map[string]any{"kind": KindStatusUpdate, "taskId": ft.ID, "contextId": ft.ContextID, "status": map[string]any{"state": StateCompleted}, "final": true})
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// keys are the gateway keys of the tests: key → caller.
var keys = map[string]gateway.Caller{
	"key-a": {Tenant: "acme", KeyID: "key_a"},
	"key-b": {Tenant: "acme", KeyID: "key_b"},
	"key-c": {Tenant: "acme", KeyID: "key_c"},
	"key-d": {Tenant: "acme", KeyID: "key_d"},
	"key-z": {Tenant: "zeta", KeyID: "key_z"},
}

func authenticate(_ context.Context, secret string) (gateway.Caller, error) {
	if c, ok := keys[secret]; ok {
		return c, nil
	}
	return gateway.Caller{}, errors.New("unknown key")
}

// testGateway is the proxy on an HTTP server.
type testGateway struct {
	p     *Proxy
	srv   *httptest.Server
	clock *testClock
}

var testKey = func() ed25519.PrivateKey {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	return k
}()

// newGateway starts a proxy over agents with cfg's other fields as given
// (Authenticate, SigningKey, BaseURL and Now are filled in).
func newGateway(t testing.TB, cfg Config) *testGateway {
	t.Helper()
	g := &testGateway{clock: &testClock{t: time.Now()}}
	mux := http.NewServeMux()
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	cfg.Authenticate = authenticate
	if cfg.SigningKey == nil {
		cfg.SigningKey = testKey
	}
	cfg.BaseURL = g.srv.URL
	cfg.Now = g.clock.Now
	if tl, ok := t.(*testing.T); ok && cfg.Logger == nil {
		cfg.Logger = ledgertest.TestLogger(tl)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	g.p = p
	mux.Handle("/a2a/", p)
	return g
}

// rpcCall is one JSON-RPC call to the gateway.
type rpcCall struct {
	agent, key, as, token string
	method                string
	params                any
	id                    any
}

// do posts the call and returns the HTTP status and response.
func (g *testGateway) do(t testing.TB, c rpcCall) (int, *Response) {
	t.Helper()
	status, body := g.post(t, c)
	var res Response
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("%s %s: response %q: %v", c.method, c.agent, body, err)
	}
	return status, &res
}

func (g *testGateway) request(t testing.TB, c rpcCall) *http.Request {
	t.Helper()
	if c.id == nil {
		c.id = 1
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": c.id, "method": c.method, "params": c.params})
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/a2a/"+c.agent, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if c.as != "" {
		req.Header.Set(HeaderAgent, c.as)
	}
	if c.token != "" {
		req.Header.Set(HeaderDelegation, c.token)
	}
	return req
}

func (g *testGateway) post(t testing.TB, c rpcCall) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(g.request(t, c))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// call is do without testing.TB, for fake agents' handlers.
func (g *testGateway) call(c rpcCall) (*Response, error) {
	if c.id == nil {
		c.id = 1
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": c.id, "method": c.method, "params": c.params})
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/a2a/"+c.agent, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set(HeaderAgent, c.as)
	if c.token != "" {
		req.Header.Set(HeaderDelegation, c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var res Response
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, err
	}
	return &res, nil
}

// textParams returns message/send params: a text message, and a
// delegation request when req is not nil.
func textParams(text, messageID string, req *DelegationRequest) map[string]any {
	p := map[string]any{"message": map[string]any{"kind": KindMessage, "role": "user", "messageId": messageID,
		"parts": []any{map[string]any{"kind": "text", "text": text}}}}
	if req != nil {
		p["metadata"] = map[string]any{MetaDelegationRequest: req}
	}
	return p
}

func newMessageID() string { return ledger.NewEventID() }

// mustTask decodes a successful result as a task.
func mustTask(t testing.TB, res *Response) Task {
	t.Helper()
	if res.Error != nil {
		t.Fatalf("error %d %s", res.Error.Code, res.Error.Message)
	}
	var task Task
	if err := json.Unmarshal(res.Result, &task); err != nil || task.Kind != KindTask {
		t.Fatalf("result %s is not a task (%v)", res.Result, err)
	}
	return task
}

// wantError checks a response is the error code with reason.
func wantError(t testing.TB, res *Response, code int, reason string) {
	t.Helper()
	if res.Error == nil {
		t.Fatalf("result %s; want error %d (%s)", res.Result, code, reason)
	}
	if res.Error.Code != code || (reason != "" && res.Error.Reason() != reason) {
		t.Fatalf("error %d %q (%s); want %d (%s)", res.Error.Code, res.Error.Message, res.Error.Reason(), code, reason)
	}
}

func int64p(v int64) *int64 { return &v }

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
