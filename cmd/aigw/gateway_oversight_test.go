package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/ledgertest"
	"aigw/ledger/sqlite"
)

// oversightConfig is a gateway on the mock provider with two routes.
var oversightConfig = fmt.Sprintf(`
gateway:
  admin_key: %s
providers:
  - {name: mock, type: mock}
routes:
  - name: mock
    targets: [{provider: mock, model: mock-1}]
  - name: mock-2
    targets: [{provider: mock, model: mock-2}]
`, testAdminKey)

// startOversightGW runs serve on config with its data under dir (so that a
// second run on the same dir is a restart), and extra flags.
func startOversightGW(t *testing.T, dir string, extra ...string) *gwProc {
	t.Helper()
	path := filepath.Join(dir, "aigw.yaml")
	if err := os.WriteFile(path, []byte(oversightConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, append([]string{"-config", path, "-data-dir", filepath.Join(dir, "data")}, extra...)...)
	var h struct {
		VKey string `json:"vkey"`
	}
	json.Unmarshal(getOK(t, s.url()+"/healthz"), &h)
	return &gwProc{serveProc: s, vkey: h.VKey, traces: map[string][]traceWant{}}
}

// record posts an admin record and returns its event id.
func (g *gwProc) record(t *testing.T, path, body string) string {
	t.Helper()
	code, b := g.admin(t, "POST", path, body)
	var out struct{ ID string }
	if code != 201 || json.Unmarshal(b, &out) != nil || !ledger.ValidEventID(out.ID) {
		t.Fatalf("POST %s: %d %s", path, code, b)
	}
	return out.ID
}

// logSize is the size of the log's latest checkpoint (0 if it has none).
func (g *gwProc) logSize(t *testing.T, log string) uint64 {
	t.Helper()
	resp, err := http.Get(g.url() + "/ledger/" + log + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return 0
	}
	body, err := ledger.SplitNote(b)
	if err != nil {
		t.Fatalf("checkpoint of %s: %d %q", log, resp.StatusCode, b)
	}
	cp, err := ledger.ParseCheckpointBody(body)
	if err != nil {
		t.Fatal(err)
	}
	return cp.Size
}

// waitEvents polls the log until match has found n events, and returns
// them with their indexes.
func (g *gwProc) waitEvents(t *testing.T, log string, n int, match func(ledger.Event) bool) ([]ledger.Event, []uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var evs []ledger.Event
		var idx []uint64
		for i, ev := range g.entries(t, log, g.logSize(t, log)) {
			if match(ev) {
				evs, idx = append(evs, ev), append(idx, uint64(i))
			}
		}
		if len(evs) >= n {
			return evs, idx
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s holds %d of the %d events sought", log, len(evs), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// event waits for the event id in the log and returns it, its decoded
// attributes and its index.
func (g *gwProc) event(t *testing.T, log, id string) (ledger.Event, map[string]any, uint64) {
	t.Helper()
	evs, idx := g.waitEvents(t, log, 1, func(ev ledger.Event) bool { return ev.ID == id })
	var attrs map[string]any
	if err := json.Unmarshal(evs[0].RawAttrs, &attrs); err != nil {
		t.Fatal(err)
	}
	return evs[0], attrs, idx[0]
}

// agentCall makes a chat call as agent ("" for none) and returns the status,
// the error and the call's trace id.
func (g *gwProc) agentCall(t *testing.T, key, model, agent string) (int, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", g.url()+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}]}`, model)))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	if agent != "" {
		req.Header.Set("X-Aigw-Agent", agent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct{ Error map[string]any }
	if resp.StatusCode != 200 && (json.Unmarshal(b, &e) != nil || e.Error == nil) {
		t.Fatalf("%d with a body that is not an OpenAI error: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, e.Error, resp.Header.Get("X-Aigw-Trace-Id")
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestGatewayOversight: the human-oversight and transparency records, end to
// end through serve and its ledger: each is one event, in the right log,
// with its attributes (a document is the committed payload); bad input and
// unknown tenants record nothing; stops of an agent and of a route refuse
// their calls (recorded), in their tenant only, survive a restart, and end
// with a resume.
func TestGatewayOversight(t *testing.T) {
	dir := t.TempDir()
	g := startOversightGW(t, dir)
	acme := g.newKey(t, "acme")
	globex := g.newKey(t, "globex")

	// An attestation with a document: in the system log, the document
	// committed by the entry and stored as its payload.
	doc := []byte("%PDF-1.7 signed AI governance policy\n")
	attID := g.record(t, "/admin/attestations", `{"framework":"eu-ai-act","controls":["Art. 14","art-73"],"title":"Oversight measures","statement":"Two trained overseers per shift.","by":"Grace Hopper","role":"CISO","document_name":"policy.pdf","document_base64":"`+base64.StdEncoding.EncodeToString(doc)+`","valid_until":"2099-12-31T23:00:00-01:00"}`)
	ev, attrs, idx := g.event(t, ledger.SystemLog, attID)
	want := map[string]any{"framework": "eu-ai-act", "controls": []any{"art-14", "art-73"}, "title": "Oversight measures", "statement": "Two trained overseers per shift.",
		"by": "Grace Hopper", "role": "CISO", "document_name": "policy.pdf", "document_sha256": sum(doc), "document_bytes": float64(len(doc)), "valid_until": "2100-01-01T00:00:00Z"}
	if ev.Kind != "attestation" || ev.Actor.KeyID != "admin" || !reflect.DeepEqual(attrs, want) {
		t.Errorf("attestation: kind %q actor %+v attrs\n got %v\nwant %v", ev.Kind, ev.Actor, attrs, want)
	}
	store, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(dir, "data", "ledger.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p, err := store.ReadPayload(t.Context(), ledger.SystemLog, idx)
	if err != nil || string(p.Data) != string(doc) {
		t.Fatalf("attestation payload: %q, %v", p.Data, err)
	}
	if c, _ := ledger.Commit(p.Data, p.Salt); c != ev.PayloadSHA256 {
		t.Errorf("the entry commits to %s, not to the stored document (%s)", ev.PayloadSHA256, c)
	}

	// The tenant records: each in acme's log.
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, rec := range []struct {
		name, path, body, kind string
		want                   map[string]any
	}{
		{"Approval", "approvals", `{"subject":"deploy v2","subject_type":"deployment","decision":"rejected","by":"Ada","reason":"eval gaps","trace_id":"` + trace + `"}`, "approval",
			map[string]any{"subject": "deploy v2", "subject_type": "deployment", "decision": "rejected", "by": "Ada", "reason": "eval gaps", "trace_id": trace}},
		{"Override", "oversight", `{"action":"override","target_type":"trace","target":"` + trace + `","by":"Ada","reason":"answer corrected"}`, "oversight",
			map[string]any{"action": "override", "target_type": "trace", "target": trace, "by": "Ada", "reason": "answer corrected"}},
		{"Disclosure", "disclosures", `{"channel":"chat","method":"banner","text":"You are chatting with an AI.","by":"web team"}`, "disclosure",
			map[string]any{"channel": "chat", "method": "banner", "text_sha256": sum([]byte("You are chatting with an AI.")), "by": "web team"}},
		{"Incident", "incidents", `{"incident_id":"INC-7","action":"open","severity":"widespread","title":"Biased denials","aware_at":"2026-02-01T12:00:00Z","related_traces":["` + trace + `"],"by":"Ada"}`, "incident",
			map[string]any{"incident_id": "INC-7", "action": "open", "severity": "widespread", "title": "Biased denials", "aware_at": "2026-02-01T12:00:00Z", "related_traces": []any{trace}, "by": "Ada", "report_due": "2026-02-03T12:00:00Z"}},
	} {
		id := g.record(t, "/admin/tenants/acme/"+rec.path, rec.body)
		ev, attrs, _ := g.event(t, "acme", id)
		if ev.Kind != rec.kind || ev.Actor.KeyID != "admin" || !reflect.DeepEqual(attrs, rec.want) {
			t.Errorf("%s: kind %q actor %+v attrs\n got %v\nwant %v", rec.name, ev.Kind, ev.Actor, attrs, rec.want)
		}
		if rec.kind == "approval" && ev.TraceID != trace {
			t.Errorf("approval's trace id %q", ev.TraceID)
		}
	}

	// An agent's own disclosure, with its key.
	req, _ := http.NewRequest("POST", g.url()+"/v1/disclosures", strings.NewReader(`{"channel":"voice","method":"voice","session":"call-9","text":"This is an automated assistant."}`))
	req.Header.Set("Authorization", "Bearer "+acme)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Aigw-Agent", "ivr-bot")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("/v1/disclosures: %d", resp.StatusCode)
	}
	ev, attrs, _ = g.event(t, "acme", out.ID)
	if ev.Kind != "disclosure" || !strings.HasPrefix(ev.Actor.KeyID, "key_") || ev.Actor.AgentID != "ivr-bot" ||
		!reflect.DeepEqual(attrs, map[string]any{"channel": "voice", "method": "voice", "session": "call-9", "text_sha256": sum([]byte("This is an automated assistant."))}) {
		t.Errorf("agent disclosure: %+v %v", ev, attrs)
	}

	// Bad input and unknown tenants record nothing: after them, one good
	// record grows each log by exactly one.
	sizes := map[string]uint64{"acme": g.logSize(t, "acme"), ledger.SystemLog: g.logSize(t, ledger.SystemLog)}
	for _, bad := range []struct {
		path, body string
		status     int
		param      string
	}{
		{"/admin/attestations", `{"framework":"aiuc-1","controls":["E016"],"title":"t","statement":"s"}`, 400, "by"},
		{"/admin/attestations", `{"framework":"aiuc-1","controls":["Z999"],"title":"t","statement":"s","by":"Ada"}`, 400, "controls[0]"},
		{"/admin/attestations", `{"framework":"aiuc-1","controls":["E016"],"title":"t","statement":"s","by":"Ada","extra":1}`, 400, "extra"},
		{"/admin/attestations", `{"tenant":"nobody","framework":"aiuc-1","controls":["E016"],"title":"t","statement":"s","by":"Ada"}`, 404, ""},
		{"/admin/tenants/acme/approvals", `{"subject":"s","subject_type":"change","decision":"ok","by":"Ada","reason":"r"}`, 400, "decision"},
		{"/admin/tenants/acme/oversight", `{"action":"stop","target_type":"trace","target":"` + trace + `","by":"Ada","reason":"r"}`, 400, "action"},
		{"/admin/tenants/acme/disclosures", `{"channel":"chat","method":"text","text":""}`, 400, "text"},
		{"/admin/tenants/acme/incidents", `{"action":"open","severity":"serious","title":"t","by":"Ada"}`, 400, "aware_at"},
		{"/admin/tenants/nobody/incidents", `{"action":"open","severity":"serious","title":"t","aware_at":"2026-02-01T12:00:00Z","by":"Ada"}`, 404, ""},
		{"/admin/tenants/nobody/oversight", `{"action":"stop","target_type":"agent","target":"a","by":"Ada","reason":"r"}`, 404, ""},
	} {
		status, e, _ := rawCall(t, "POST", g.url()+bad.path, testAdminKey, "application/json", bad.body)
		if msg, _ := e["message"].(string); status != bad.status || bad.param != "" && e["param"] != bad.param || msg == "" {
			t.Errorf("POST %s %s: %d %v; want %d naming %q", bad.path, bad.body, status, e, bad.status, bad.param)
		}
	}
	for log, size := range sizes {
		path := "/admin/tenants/acme/approvals"
		body := `{"subject":"s","subject_type":"change","decision":"approved","by":"Ada","reason":"r"}`
		if log == ledger.SystemLog {
			path, body = "/admin/attestations", `{"framework":"aiuc-1","controls":["E016"],"title":"t","statement":"s","by":"Ada"}`
		}
		_, _, i := g.event(t, log, g.record(t, path, body))
		if i != size {
			t.Errorf("log %s: the good record after the refused ones is at index %d; want %d (something refused was recorded)", log, i, size)
		}
	}

	// Stops: an agent and a route of acme.
	oversight := func(action, typ, target string) int {
		t.Helper()
		code, b := g.admin(t, "POST", "/admin/tenants/acme/oversight", fmt.Sprintf(`{"action":%q,"target_type":%q,"target":%q,"by":"Ada","reason":"looping"}`, action, typ, target))
		if code == 201 {
			var out struct{ ID string }
			json.Unmarshal(b, &out)
			ev, attrs, _ := g.event(t, "acme", out.ID)
			if ev.Kind != "oversight" || attrs["action"] != action || attrs["target"] != target || attrs["by"] != "Ada" {
				t.Errorf("%s %s recorded as %+v %v", action, target, ev, attrs)
			}
		}
		return code
	}
	if code, _, _ := g.agentCall(t, acme, "mock", "planner"); code != 200 {
		t.Fatalf("before the stop: %d", code)
	}
	if code := oversight("stop", "agent", "planner"); code != 201 {
		t.Fatalf("stop agent: %d", code)
	}
	if code := oversight("stop", "route", "mock-2"); code != 201 {
		t.Fatalf("stop route: %d", code)
	}
	refused := func(g *gwProc, step string) {
		t.Helper()
		for _, c := range []struct{ model, agent, code, name string }{{"mock", "planner", "agent_stopped", "planner"}, {"mock-2", "", "route_stopped", "mock-2"}} {
			code, e, tid := g.agentCall(t, acme, c.model, c.agent)
			if code != 403 || e["code"] != c.code || e["type"] != "permission_error" || !strings.Contains(e["message"].(string), "`"+c.name+"`") {
				t.Fatalf("%s: call of stopped %s: %d %v", step, c.name, code, e)
			}
			evs, _ := g.waitEvents(t, "acme", 2, func(ev ledger.Event) bool { return ev.TraceID == tid })
			var a map[string]any
			json.Unmarshal(evs[1].RawAttrs, &a)
			if evs[0].Kind != ledger.KindRequest || evs[1].Kind != ledger.KindError || a["error_code"] != c.code || evs[1].Actor.AgentID != c.agent {
				t.Errorf("%s: refusal recorded as %s, %s %v", step, evs[0].Kind, evs[1].Kind, a)
			}
		}
		// Others go through: another agent, another route, another tenant.
		for _, c := range []struct{ key, model, agent string }{{acme, "mock", "writer"}, {acme, "mock", ""}, {globex, "mock", "planner"}, {globex, "mock-2", ""}} {
			if code, e, _ := g.agentCall(t, c.key, c.model, c.agent); code != 200 {
				t.Errorf("%s: %s as %q: %d %v", step, c.model, c.agent, code, e)
			}
		}
	}
	refused(g, "stopped")

	// A restart on the same data dir keeps the stops.
	g.stop()
	g = startOversightGW(t, dir)
	refused(g, "after a restart")
	code, b := g.admin(t, "GET", "/admin/tenants/acme/stops", "")
	var stops struct {
		Data []struct{ TargetType, Target, By string } `json:"data"`
	}
	json.Unmarshal(b, &stops)
	if code != 200 || len(stops.Data) != 2 {
		t.Fatalf("stops after a restart: %d %s", code, b)
	}
	if code, b := g.admin(t, "GET", "/admin/tenants/globex/stops", ""); code != 200 || !strings.Contains(string(b), `"data":[]`) {
		t.Errorf("globex's stops: %d %s", code, b)
	}

	// Resumed, the calls go through again.
	if code := oversight("resume", "agent", "planner"); code != 201 {
		t.Fatalf("resume agent: %d", code)
	}
	if code := oversight("resume", "route", "mock-2"); code != 201 {
		t.Fatalf("resume route: %d", code)
	}
	for _, model := range []string{"mock", "mock-2"} {
		if code, e, _ := g.agentCall(t, acme, model, "planner"); code != 200 {
			t.Errorf("after the resume: %s: %d %v", model, code, e)
		}
	}
	for _, log := range []string{"acme", ledger.SystemLog} {
		if code, out, errs := run(t, "", "verify", "-server", g.url(), "-log", log, "-vkey", g.vkey); code != 0 {
			t.Fatalf("verify %s: exit %d %s %s", log, code, out, errs)
		}
	}
}

// TestGatewayOversightLedgerDown: with the ledger's NATS gone, a stop, a
// resume and a record are refused 503 and no stop changes.
func TestGatewayOversightLedgerDown(t *testing.T) {
	srv, _ := ledgertest.JetStream(t)
	g := startOversightGW(t, t.TempDir(), "-nats-url", srv.ClientURL())
	acme := g.newKey(t, "acme")
	body := func(action, target string) string {
		return fmt.Sprintf(`{"action":%q,"target_type":"agent","target":%q,"by":"Ada","reason":"r"}`, action, target)
	}
	if code, b := g.admin(t, "POST", "/admin/tenants/acme/oversight", body("stop", "old")); code != 201 {
		t.Fatalf("stop before the outage: %d %s", code, b)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
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
	for _, req := range []struct{ path, body string }{
		{"/admin/tenants/acme/oversight", body("stop", "new")},
		{"/admin/tenants/acme/oversight", body("resume", "old")},
		{"/admin/attestations", `{"framework":"aiuc-1","controls":["E016"],"title":"t","statement":"s","by":"Ada"}`},
		{"/admin/tenants/acme/incidents", `{"action":"open","severity":"serious","title":"t","aware_at":"2026-02-01T12:00:00Z","by":"Ada"}`},
	} {
		status, e, h := rawCall(t, "POST", g.url()+req.path, testAdminKey, "application/json", req.body)
		if status != 503 || e["code"] != "ledger_unavailable" || h.Get("Retry-After") == "" {
			t.Errorf("POST %s during the outage: %d %v", req.path, status, e)
		}
	}
	status, e, _ := rawCall(t, "POST", g.url()+"/v1/disclosures", acme, "application/json", `{"channel":"chat","method":"text","text":"AI"}`)
	if status != 503 || e["code"] != "ledger_unavailable" {
		t.Errorf("/v1/disclosures during the outage: %d %v", status, e)
	}
	code, b := g.admin(t, "GET", "/admin/tenants/acme/stops", "")
	var stops struct {
		Data []struct{ Target string } `json:"data"`
	}
	json.Unmarshal(b, &stops)
	if code != 200 || len(stops.Data) != 1 || stops.Data[0].Target != "old" {
		t.Errorf("stops after refused changes: %d %s; want only the stop of \"old\"", code, b)
	}
}
