package httpapi_test

import (
	"aigw/gateway/guard/engine"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"aigw/gateway"
	"aigw/gateway/httpapi"
	"aigw/gateway/mock"
	"aigw/gateway/router"
	"aigw/gateway/tenant"
	"aigw/ledger"
	"aigw/ledger/ledgertest"
)

// recorder is a gateway.Recorder that keeps what it is given, as the
// ledger would store it (each event through its canonical entry), or fails.
type recorder struct {
	mu       sync.Mutex
	events   []*ledger.Event
	payloads [][]byte
	// down: Publish fails as with a lost NATS connection; lost: Publish
	// succeeds but no acknowledgement comes (nothing is kept).
	down, lost bool
	// refuse is returned by Publish (an event the stream refuses).
	refuse error
}

func (r *recorder) Publish(evs []*ledger.Event, pls [][]byte) (gateway.Pending, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.refuse != nil:
		return nil, r.refuse
	case r.down:
		return nil, fmt.Errorf("connection down: %w", ledger.ErrBackpressure)
	case r.lost:
		return pending{errors.New("no acknowledgement")}, nil
	}
	for i, ev := range evs {
		entry, err := ev.Entry()
		if err != nil {
			return nil, err
		}
		parsed, err := ledger.ParseEntry(entry)
		if err != nil {
			return nil, err
		}
		r.events = append(r.events, parsed)
		var p []byte
		if i < len(pls) {
			p = pls[i]
		}
		r.payloads = append(r.payloads, p)
	}
	return pending{}, nil
}

func (r *recorder) set(down, lost bool) {
	r.mu.Lock()
	r.down, r.lost = down, lost
	r.mu.Unlock()
}

// since returns the events (and payloads) recorded from index n on.
func (r *recorder) since(n int) ([]*ledger.Event, [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*ledger.Event(nil), r.events[n:]...), append([][]byte(nil), r.payloads[n:]...)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

type pending struct{ err error }

func (p pending) Wait(context.Context) error { return p.err }

const adminKey = "aigw_admin_unit_test"

// testAPI is the API over a SQLite tenant store, the mock provider and a
// recorder, with tenants acme and globex and a key of each.
type testAPI struct {
	url          string
	dbPath       string // the SQLite tenant store
	rec          *recorder
	tenants      *tenant.Store
	acme, globex string // API keys
}

func newTestAPI(t *testing.T, opts ...func(*httpapi.Admin)) *testAPI {
	t.Helper()
	ctx := t.Context()
	dbPath := filepath.Join(t.TempDir(), "tenants.db")
	store, err := tenant.Open(ctx, tenant.Config{Driver: tenant.DriverSQLite, DSN: dbPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	auth, err := tenant.NewAuthenticator(store, tenant.AuthConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p := mock.New("mock")
	rt, err := router.New(router.Config{Routes: []router.Route{
		{Name: "mock", Targets: []router.RouteTarget{{Target: gateway.Target{Name: "mock/m", Provider: "mock", Model: "m", Upstream: p}}}},
		{Name: "mock-2", Targets: []router.RouteTarget{{Target: gateway.Target{Name: "mock/m2", Provider: "mock", Model: "m2", Upstream: p}}}},
		{Name: "mock-embed", Targets: []router.RouteTarget{{Target: gateway.Target{Name: "mock/e", Provider: "mock", Model: "e", Upstream: p}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	guards, err := engine.New(engine.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pipe, err := gateway.NewPipeline(gateway.PipelineConfig{Router: rt, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	admin := &httpapi.Admin{Key: adminKey, Tenants: store, Auth: auth, Recorder: rec, Logger: ledgertest.TestLogger(t),
		Guardrails: &httpapi.GuardPolicies{Check: guards.CheckPolicy, Changed: guards.InvalidateTenant}}
	for _, o := range opts {
		o(admin)
	}
	h, err := httpapi.New(httpapi.Config{
		Pipeline: pipe,
		Admin:    admin,
		Logger:   ledgertest.TestLogger(t),
		Authenticate: func(ctx context.Context, secret string) (gateway.Caller, error) {
			k, tn, err := auth.Authenticate(ctx, secret)
			if err != nil {
				return gateway.Caller{}, err
			}
			return gateway.Caller{Tenant: tn.ID, KeyID: k.ID, Allows: k.Allows}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	api := &testAPI{url: srv.URL, dbPath: dbPath, rec: rec, tenants: store}
	for _, id := range []string{"acme", "globex"} {
		if _, err := store.CreateTenant(ctx, tenant.Tenant{ID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
		secret, _, err := store.CreateKey(ctx, id, tenant.KeySpec{Name: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if id == "acme" {
			api.acme = string(secret)
		} else {
			api.globex = string(secret)
		}
	}
	return api
}

// do sends a request and returns the status and the decoded JSON body.
func (api *testAPI) do(t *testing.T, method, path, key, body string, header ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, api.url+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: %d with a body that is not JSON: %q", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

func (api *testAPI) admin(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	return api.do(t, method, path, adminKey, body)
}

// chat makes a chat call to model as agent ("" for none).
func (api *testAPI) chat(t *testing.T, key, model, agent string) (int, map[string]any) {
	t.Helper()
	var h []string
	if agent != "" {
		h = []string{"X-Aigw-Agent", agent}
	}
	return api.do(t, "POST", "/v1/chat/completions", key, fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}]}`, model), h...)
}

func errOf(m map[string]any) map[string]any {
	e, _ := m["error"].(map[string]any)
	return e
}

// attrsOf decodes an event's attributes as the ledger stores them, into
// plain JSON values.
func attrsOf(t *testing.T, ev *ledger.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.RawAttrs, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestAdminRecords: each record endpoint writes one event, of its kind, in
// the right log, with the attributes evidence reads, and answers it.
func TestAdminRecords(t *testing.T) {
	api := newTestAPI(t)
	doc := "Policy AI-7: every agent deployment is approved by the CISO.\n"
	docB64 := base64.StdEncoding.EncodeToString([]byte(doc))
	const trace = "0af7651916cd43dd8448eb211c80319c"
	for _, test := range []struct {
		name, path, body string
		log, kind        string
		traceID          string
		attrs            map[string]any
		payload          *string
	}{
		{"AttestationDeploymentWide", "/admin/attestations",
			`{"framework":"aiuc-1","controls":["E016","C007","e016","D003"],"title":"AI use policy","statement":"We review AI incidents weekly.\nSigned.","by":"Grace Hopper","role":"CISO","document_name":"policy.txt","document_base64":"` + docB64 + `","valid_until":"2099-01-01T01:00:00+01:00"}`,
			ledger.SystemLog, "attestation", "",
			map[string]any{"framework": "aiuc-1", "controls": []any{"e016", "c007", "d003"}, "title": "AI use policy", "statement": "We review AI incidents weekly.\nSigned.",
				"by": "Grace Hopper", "role": "CISO", "document_name": "policy.txt", "document_sha256": sha(doc), "document_bytes": float64(len(doc)), "valid_until": "2099-01-01T00:00:00Z"},
			&doc},
		{"AttestationOfTenant", "/admin/attestations",
			`{"tenant":"acme","framework":"eu-ai-act","controls":["Art. 14"],"title":"Oversight staffing","statement":"Two trained overseers per shift.","by":"Ada"}`,
			"acme", "attestation", "",
			map[string]any{"framework": "eu-ai-act", "controls": []any{"art-14"}, "title": "Oversight staffing", "statement": "Two trained overseers per shift.", "by": "Ada", "tenant": "acme"},
			nil},
		{"Approval", "/admin/tenants/acme/approvals",
			`{"subject":"refund #991","subject_type":"tool_call","decision":"approved","by":"Ada","role":"support lead","reason":"within policy","trace_id":"0AF7651916CD43DD8448EB211C80319C"}`,
			"acme", "approval", trace,
			map[string]any{"subject": "refund #991", "subject_type": "tool_call", "decision": "approved", "by": "Ada", "role": "support lead", "reason": "within policy", "trace_id": trace},
			nil},
		{"OverrideOfTrace", "/admin/tenants/acme/oversight",
			`{"action":"override","target_type":"trace","target":"` + trace + `","by":"Ada","reason":"answer corrected by hand"}`,
			"acme", "oversight", trace,
			map[string]any{"action": "override", "target_type": "trace", "target": trace, "by": "Ada", "reason": "answer corrected by hand"},
			nil},
		{"DisclosureAdmin", "/admin/tenants/globex/disclosures",
			`{"channel":"voice","method":"voice","session":"call-17","text":"You are speaking with an AI assistant.","by":"IVR team"}`,
			"globex", "disclosure", "",
			map[string]any{"channel": "voice", "method": "voice", "session": "call-17", "text_sha256": sha("You are speaking with an AI assistant."), "by": "IVR team"},
			ptr("You are speaking with an AI assistant.")},
		{"IncidentOpen", "/admin/tenants/acme/incidents",
			`{"incident_id":"INC-42","action":"open","severity":"death","title":"Harmful advice","description":"details","aware_at":"2026-03-01T10:00:00+02:00","occurred_at":"2026-02-28T23:00:00Z","related_traces":["` + trace + `"],"by":"Ada"}`,
			"acme", "incident", "",
			map[string]any{"incident_id": "INC-42", "action": "open", "severity": "death", "title": "Harmful advice", "description": "details",
				"aware_at": "2026-03-01T08:00:00Z", "occurred_at": "2026-02-28T23:00:00Z", "related_traces": []any{trace}, "by": "Ada", "report_due": "2026-03-11T08:00:00Z"},
			nil},
		{"IncidentReport", "/admin/tenants/acme/incidents",
			`{"incident_id":"INC-42","action":"report","severity":"death","title":"Harmful advice","aware_at":"2026-03-01T08:00:00Z","reported_at":"2026-03-05T09:30:00.5Z","authority":"BNetzA","by":"Ada"}`,
			"acme", "incident", "",
			map[string]any{"incident_id": "INC-42", "action": "report", "severity": "death", "title": "Harmful advice",
				"aware_at": "2026-03-01T08:00:00Z", "reported_at": "2026-03-05T09:30:00.5Z", "authority": "BNetzA", "by": "Ada"},
			nil},
	} {
		t.Run(test.name, func(t *testing.T) {
			n := api.rec.len()
			status, out := api.admin(t, "POST", test.path, test.body)
			if status != 201 {
				t.Fatalf("POST %s: %d %v", test.path, status, out)
			}
			evs, pls := api.rec.since(n)
			if len(evs) != 1 {
				t.Fatalf("%d events recorded; want 1", len(evs))
			}
			ev := evs[0]
			if ev.Tenant != test.log || ev.Kind != test.kind || ev.Actor != (ledger.Actor{KeyID: "admin"}) || ev.TraceID != test.traceID {
				t.Errorf("event in %q kind %q actor %+v trace %q; want %q %q admin %q", ev.Tenant, ev.Kind, ev.Actor, ev.TraceID, test.log, test.kind, test.traceID)
			}
			if got := attrsOf(t, ev); !reflect.DeepEqual(got, test.attrs) {
				t.Errorf("attrs\n got %v\nwant %v", got, test.attrs)
			}
			if (test.payload == nil) != (pls[0] == nil) || test.payload != nil && string(pls[0]) != *test.payload {
				t.Errorf("payload %q; want %v", pls[0], test.payload)
			}
			// The answer is the event as recorded.
			if out["id"] != ev.ID || out["log"] != test.log || out["kind"] != test.kind || !reflect.DeepEqual(out["attrs"], test.attrs) {
				t.Errorf("answer %v does not match event %s", out, ev.ID)
			}
			if ts, _ := out["time"].(string); ts == "" || !strings.HasPrefix(ev.Time.Format(time.RFC3339Nano), strings.TrimSuffix(ts, "Z")) {
				t.Errorf("answer time %q; event time %s", ts, ev.Time.Format(time.RFC3339Nano))
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestIncidentReportDue: an incident opened records its report deadline
// (EU AI Act Art. 73), by severity; other actions record none, and an id
// is generated when the opener gives none.
func TestIncidentReportDue(t *testing.T) {
	api := newTestAPI(t)
	for _, test := range []struct {
		severity, action, due string
	}{
		{"serious", "open", "2026-03-16T08:00:00Z"},
		{"death", "open", "2026-03-11T08:00:00Z"},
		{"widespread", "open", "2026-03-03T08:00:00Z"},
		{"critical_infrastructure", "open", "2026-03-03T08:00:00Z"},
		{"other", "open", ""},
		{"serious", "update", ""},
		{"serious", "close", ""},
	} {
		t.Run(test.severity+"/"+test.action, func(t *testing.T) {
			id := ""
			if test.action != "open" {
				id = `"incident_id":"inc-1",`
			}
			status, out := api.admin(t, "POST", "/admin/tenants/acme/incidents",
				`{`+id+`"action":"`+test.action+`","severity":"`+test.severity+`","title":"t","aware_at":"2026-03-01T08:00:00Z","by":"Ada"}`)
			if status != 201 {
				t.Fatalf("%d %v", status, out)
			}
			attrs := out["attrs"].(map[string]any)
			if due, _ := attrs["report_due"].(string); due != test.due {
				t.Errorf("report_due %q; want %q", due, test.due)
			}
			if iid, _ := attrs["incident_id"].(string); test.action == "open" && (!strings.HasPrefix(iid, "inc_") || len(iid) != 20) {
				t.Errorf("generated incident_id %q", iid)
			}
		})
	}
}

// TestAdminRecordsRefused: bad input is a 400 naming the parameter, an
// unknown tenant a 404, and neither records anything.
func TestAdminRecordsRefused(t *testing.T) {
	api := newTestAPI(t)
	long := strings.Repeat("x", 257)
	huge := base64.StdEncoding.EncodeToString(make([]byte, httpapi.MaxDocumentBytes+1))
	att := func(extra string) string {
		return `{"framework":"aiuc-1","controls":["E016"],"title":"t","statement":"s","by":"Ada"` + extra + `}`
	}
	for _, test := range []struct {
		name, path, body string
		status           int
		param            string
	}{
		{"UnknownField", "/admin/attestations", att(`,"signature":"x"`), 400, "signature"},
		{"NoBy", "/admin/attestations", `{"framework":"aiuc-1","controls":["E016"],"title":"t","statement":"s"}`, 400, "by"},
		{"BlankBy", "/admin/attestations", `{"framework":"aiuc-1","controls":["E016"],"title":"t","statement":"s","by":"  "}`, 400, "by"},
		{"UnknownFramework", "/admin/attestations", `{"framework":"iso-42001","controls":["E016"],"title":"t","statement":"s","by":"Ada"}`, 400, "framework"},
		{"NoControls", "/admin/attestations", `{"framework":"aiuc-1","title":"t","statement":"s","by":"Ada"}`, 400, "controls"},
		{"EmptyControls", "/admin/attestations", `{"framework":"aiuc-1","controls":[],"title":"t","statement":"s","by":"Ada"}`, 400, "controls"},
		{"UnknownControl", "/admin/attestations", `{"framework":"aiuc-1","controls":["E016","Z999"],"title":"t","statement":"s","by":"Ada"}`, 400, "controls[1]"},
		{"ControlOfOtherFramework", "/admin/attestations", `{"framework":"eu-ai-act","controls":["E016"],"title":"t","statement":"s","by":"Ada"}`, 400, "controls[0]"},
		{"ControlsNotStrings", "/admin/attestations", `{"framework":"aiuc-1","controls":[16],"title":"t","statement":"s","by":"Ada"}`, 400, "controls"},
		{"LongTitle", "/admin/attestations", `{"framework":"aiuc-1","controls":["E016"],"title":"` + long + `","statement":"s","by":"Ada"}`, 400, "title"},
		{"ControlCharInBy", "/admin/attestations", `{"framework":"aiuc-1","controls":["E016"],"title":"t","statement":"s","by":"Ada\u0007"}`, 400, "by"},
		{"LongStatement", "/admin/attestations", `{"framework":"aiuc-1","controls":["E016"],"title":"t","statement":"` + strings.Repeat("s", 8193) + `","by":"Ada"}`, 400, "statement"},
		{"BadBase64", "/admin/attestations", att(`,"document_base64":"not base64!"`), 400, "document_base64"},
		{"DocumentTooLarge", "/admin/attestations", att(`,"document_base64":"` + huge + `"`), 400, "document_base64"},
		{"BadValidUntil", "/admin/attestations", att(`,"valid_until":"tomorrow"`), 400, "valid_until"},
		{"PastValidUntil", "/admin/attestations", att(`,"valid_until":"2020-01-01T00:00:00Z"`), 400, "valid_until"},
		{"BadAttestationTenant", "/admin/attestations", att(`,"tenant":"Not A Tenant"`), 400, "tenant"},
		{"UnknownAttestationTenant", "/admin/attestations", att(`,"tenant":"nobody"`), 404, ""},
		{"TrailingData", "/admin/tenants/acme/approvals", `{"subject":"s","subject_type":"change","decision":"approved","by":"Ada","reason":"r"} {}`, 400, ""},
		{"BadDecision", "/admin/tenants/acme/approvals", `{"subject":"s","subject_type":"change","decision":"maybe","by":"Ada","reason":"r"}`, 400, "decision"},
		{"BadSubjectType", "/admin/tenants/acme/approvals", `{"subject":"s","subject_type":"Big Change","decision":"approved","by":"Ada","reason":"r"}`, 400, "subject_type"},
		{"NoReason", "/admin/tenants/acme/approvals", `{"subject":"s","subject_type":"change","decision":"approved","by":"Ada"}`, 400, "reason"},
		{"BadTraceID", "/admin/tenants/acme/approvals", `{"subject":"s","subject_type":"trace","decision":"rejected","by":"Ada","reason":"r","trace_id":"xyz"}`, 400, "trace_id"},
		{"ZeroTraceID", "/admin/tenants/acme/approvals", `{"subject":"s","subject_type":"trace","decision":"rejected","by":"Ada","reason":"r","trace_id":"00000000000000000000000000000000"}`, 400, "trace_id"},
		{"ApprovalUnknownTenant", "/admin/tenants/nobody/approvals", `{"subject":"s","subject_type":"change","decision":"approved","by":"Ada","reason":"r"}`, 404, ""},
		{"BadAction", "/admin/tenants/acme/oversight", `{"action":"pause","target_type":"agent","target":"a","by":"Ada","reason":"r"}`, 400, "action"},
		{"BadTargetType", "/admin/tenants/acme/oversight", `{"action":"stop","target_type":"tenant","target":"a","by":"Ada","reason":"r"}`, 400, "target_type"},
		{"StopTrace", "/admin/tenants/acme/oversight", `{"action":"stop","target_type":"trace","target":"0af7651916cd43dd8448eb211c80319c","by":"Ada","reason":"r"}`, 400, "action"},
		{"LongAgent", "/admin/tenants/acme/oversight", `{"action":"stop","target_type":"agent","target":"` + strings.Repeat("a", 129) + `","by":"Ada","reason":"r"}`, 400, "target"},
		{"NoTarget", "/admin/tenants/acme/oversight", `{"action":"stop","target_type":"route","by":"Ada","reason":"r"}`, 400, "target"},
		{"OversightNoBy", "/admin/tenants/acme/oversight", `{"action":"stop","target_type":"route","target":"mock","reason":"r"}`, 400, "by"},
		{"OversightUnknownTenant", "/admin/tenants/nobody/oversight", `{"action":"stop","target_type":"route","target":"mock","by":"Ada","reason":"r"}`, 404, ""},
		{"ResumeNotStopped", "/admin/tenants/acme/oversight", `{"action":"resume","target_type":"route","target":"mock","by":"Ada","reason":"r"}`, 409, ""},
		{"BadChannel", "/admin/tenants/acme/disclosures", `{"channel":"fax","method":"text","text":"AI here"}`, 400, "channel"},
		{"NoText", "/admin/tenants/acme/disclosures", `{"channel":"chat","method":"text"}`, 400, "text"},
		{"DisclosureUnknownTenant", "/admin/tenants/nobody/disclosures", `{"channel":"chat","method":"text","text":"AI"}`, 404, ""},
		{"OpenWithoutAwareAt", "/admin/tenants/acme/incidents", `{"action":"open","severity":"serious","title":"t","by":"Ada"}`, 400, "aware_at"},
		{"ReportWithoutReportedAt", "/admin/tenants/acme/incidents", `{"incident_id":"i","action":"report","severity":"serious","title":"t","by":"Ada"}`, 400, "reported_at"},
		{"UpdateWithoutID", "/admin/tenants/acme/incidents", `{"action":"update","severity":"serious","title":"t","by":"Ada"}`, 400, "incident_id"},
		{"BadSeverity", "/admin/tenants/acme/incidents", `{"action":"open","severity":"bad","title":"t","aware_at":"2026-03-01T08:00:00Z","by":"Ada"}`, 400, "severity"},
		{"FutureAwareAt", "/admin/tenants/acme/incidents", `{"action":"open","severity":"serious","title":"t","aware_at":"2999-03-01T08:00:00Z","by":"Ada"}`, 400, "aware_at"},
		{"OccurredAfterAware", "/admin/tenants/acme/incidents", `{"action":"open","severity":"serious","title":"t","aware_at":"2026-03-01T08:00:00Z","occurred_at":"2026-03-02T08:00:00Z","by":"Ada"}`, 400, "occurred_at"},
		{"BadRelatedTrace", "/admin/tenants/acme/incidents", `{"action":"open","severity":"serious","title":"t","aware_at":"2026-03-01T08:00:00Z","related_traces":["nope"],"by":"Ada"}`, 400, "related_traces[0]"},
		{"IncidentUnknownTenant", "/admin/tenants/nobody/incidents", `{"action":"open","severity":"serious","title":"t","aware_at":"2026-03-01T08:00:00Z","by":"Ada"}`, 404, ""},
		{"StopsUnknownTenant", "/admin/tenants/nobody/stops", "", 404, ""},
	} {
		t.Run(test.name, func(t *testing.T) {
			n := api.rec.len()
			method := "POST"
			if test.body == "" {
				method = "GET"
			}
			status, out := api.admin(t, method, test.path, test.body)
			e := errOf(out)
			if status != test.status || e == nil || (test.param != "" && e["param"] != test.param) {
				t.Fatalf("%d %v; want %d naming %q", status, out, test.status, test.param)
			}
			if msg, _ := e["message"].(string); msg == "" {
				t.Error("no error message")
			}
			if got := api.rec.len(); got != n {
				t.Errorf("%d events recorded for a refused request", got-n)
			}
		})
	}
	// An unknown control is named.
	if _, out := api.admin(t, "POST", "/admin/attestations", `{"framework":"aiuc-1","controls":["Z999"],"title":"t","statement":"s","by":"Ada"}`); !strings.Contains(fmt.Sprint(errOf(out)["message"]), `"Z999"`) {
		t.Errorf("unknown control: %v; want a message naming it", out)
	}
	// The admin key is required.
	if status, _ := api.do(t, "POST", "/admin/tenants/acme/approvals", api.acme, `{}`); status != 401 {
		t.Errorf("a tenant key on the admin API: %d; want 401", status)
	}
}

// TestStops: a stopped agent's or route's calls are refused 403 (and
// recorded) in its tenant only, until it is resumed; every change is
// recorded before it applies.
func TestStops(t *testing.T) {
	api := newTestAPI(t)
	oversight := func(tenantID, action, typ, target string) (int, map[string]any) {
		return api.admin(t, "POST", "/admin/tenants/"+tenantID+"/oversight",
			fmt.Sprintf(`{"action":%q,"target_type":%q,"target":%q,"by":"Ada","reason":"misbehaving"}`, action, typ, target))
	}
	mustOK := func(status int, out map[string]any) {
		t.Helper()
		if status != 200 {
			t.Fatalf("call refused: %d %v", status, out)
		}
	}
	mustRefuse := func(status int, out map[string]any, code, name string) {
		t.Helper()
		e := errOf(out)
		if status != 403 || e["type"] != "permission_error" || e["code"] != code || !strings.Contains(e["message"].(string), "`"+name+"`") {
			t.Fatalf("call of a stopped target: %d %v; want 403 %s naming %s", status, out, code, name)
		}
	}
	mustOK(api.chat(t, api.acme, "mock", "planner"))

	// Stopping an agent: recorded, then refused in acme, not in globex.
	n := api.rec.len()
	status, out := oversight("acme", "stop", "agent", "planner")
	if status != 201 {
		t.Fatalf("stop: %d %v", status, out)
	}
	evs, _ := api.rec.since(n)
	if len(evs) != 1 || evs[0].Kind != "oversight" || evs[0].Tenant != "acme" {
		t.Fatalf("stop recorded as %v", evs)
	}
	stopEvent := evs[0].ID
	n = api.rec.len()
	status, out = api.chat(t, api.acme, "mock", "planner")
	mustRefuse(status, out, "agent_stopped", "planner")
	// The refusal is in acme's log: a request and an error event.
	evs, _ = api.rec.since(n)
	if len(evs) != 2 || evs[1].Kind != ledger.KindError || evs[1].Tenant != "acme" || evs[1].Actor.AgentID != "planner" {
		t.Fatalf("refusals recorded as %d events: %v", len(evs), evs)
	}
	if a := attrsOf(t, evs[1]); a["error_code"] != "agent_stopped" || a["status"] != float64(403) {
		t.Errorf("refusal's error event attrs %v", a)
	}
	mustOK(api.chat(t, api.acme, "mock", "other-agent"))
	mustOK(api.chat(t, api.acme, "mock", ""))
	mustOK(api.chat(t, api.globex, "mock", "planner"))
	// Embeddings and the Anthropic API are refused too.
	status, out = api.do(t, "POST", "/v1/embeddings", api.acme, `{"model":"mock-embed","input":"x"}`, "X-Aigw-Agent", "planner")
	mustRefuse(status, out, "agent_stopped", "planner")
	status, out = api.do(t, "POST", "/v1/messages", api.acme, `{"model":"mock","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`, "X-Aigw-Agent", "planner")
	if e := errOf(out); status != 403 || out["type"] != "error" || e["type"] != "permission_error" {
		t.Fatalf("messages of a stopped agent: %d %v", status, out)
	}
	if status, out := oversight("acme", "stop", "agent", "planner"); status != 409 || errOf(out)["code"] != "already_stopped" {
		t.Errorf("stopping a stopped agent: %d %v; want 409", status, out)
	}

	// Stopping a route, by the model name as requested.
	if status, out := oversight("acme", "stop", "route", "mock-2"); status != 201 {
		t.Fatalf("stop route: %d %v", status, out)
	}
	status, out = api.chat(t, api.acme, "mock-2", "")
	mustRefuse(status, out, "route_stopped", "mock-2")
	mustOK(api.chat(t, api.acme, "mock", ""))
	mustOK(api.chat(t, api.globex, "mock-2", ""))

	// The stops in force.
	status, out = api.admin(t, "GET", "/admin/tenants/acme/stops", "")
	data, _ := out["data"].([]any)
	if status != 200 || len(data) != 2 {
		t.Fatalf("stops: %d %v", status, out)
	}
	first := data[0].(map[string]any)
	if first["target_type"] != "agent" || first["target"] != "planner" || first["by"] != "Ada" || first["reason"] != "misbehaving" || first["event_id"] != stopEvent {
		t.Errorf("stop listed as %v", first)
	}
	if _, out := api.admin(t, "GET", "/admin/tenants/globex/stops", ""); len(out["data"].([]any)) != 0 {
		t.Errorf("globex's stops: %v", out)
	}

	// An override only records.
	if status, out := oversight("acme", "override", "route", "mock"); status != 201 {
		t.Fatalf("override: %d %v", status, out)
	}
	mustOK(api.chat(t, api.acme, "mock", ""))

	// With the ledger down, a resume is refused and changes nothing.
	for _, fault := range []struct{ down, lost bool }{{true, false}, {false, true}} {
		api.rec.set(fault.down, fault.lost)
		n = api.rec.len()
		status, out = oversight("acme", "resume", "agent", "planner")
		if e := errOf(out); status != 503 || e["code"] != "ledger_unavailable" {
			t.Fatalf("resume with the ledger down (%+v): %d %v", fault, status, out)
		}
		status, out = oversight("acme", "stop", "agent", "writer")
		if e := errOf(out); status != 503 || e["code"] != "ledger_unavailable" {
			t.Fatalf("stop with the ledger down (%+v): %d %v", fault, status, out)
		}
		api.rec.set(false, false)
		if _, out := api.admin(t, "GET", "/admin/tenants/acme/stops", ""); len(out["data"].([]any)) != 2 {
			t.Fatalf("stops after refused changes: %v", out)
		}
		mustOK(api.chat(t, api.acme, "mock", "writer"))
		status, out = api.chat(t, api.acme, "mock", "planner")
		mustRefuse(status, out, "agent_stopped", "planner")
	}

	// Resumed: the calls go through again.
	for _, target := range [][2]string{{"agent", "planner"}, {"route", "mock-2"}} {
		n = api.rec.len()
		if status, out := oversight("acme", "resume", target[0], target[1]); status != 201 {
			t.Fatalf("resume %v: %d %v", target, status, out)
		}
		if evs, _ := api.rec.since(n); len(evs) != 1 || attrsOf(t, evs[0])["action"] != "resume" {
			t.Fatalf("resume recorded as %v", evs)
		}
	}
	mustOK(api.chat(t, api.acme, "mock", "planner"))
	mustOK(api.chat(t, api.acme, "mock-2", "planner"))
	if _, out := api.admin(t, "GET", "/admin/tenants/acme/stops", ""); len(out["data"].([]any)) != 0 {
		t.Errorf("stops after resuming: %v", out)
	}
}

// TestAgentDisclosure: an agent records a disclosure with its tenant's
// key; the event names the key and the agent; a bad one is refused and
// recorded like other refused calls.
func TestAgentDisclosure(t *testing.T) {
	api := newTestAPI(t)
	k, err := api.tenants.ListKeys(t.Context(), "acme")
	if err != nil || len(k) != 1 {
		t.Fatal(k, err)
	}
	n := api.rec.len()
	text := "Hi! I'm an AI assistant, not a person."
	status, out := api.do(t, "POST", "/v1/disclosures", api.acme, `{"channel":"chat","method":"banner","session":"s-1","text":"`+text+`"}`,
		"X-Aigw-Agent", "support-bot", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if status != 201 {
		t.Fatalf("disclosure: %d %v", status, out)
	}
	evs, pls := api.rec.since(n)
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	ev := evs[0]
	want := map[string]any{"channel": "chat", "method": "banner", "session": "s-1", "text_sha256": sha(text)}
	if ev.Tenant != "acme" || ev.Kind != "disclosure" || ev.Actor != (ledger.Actor{KeyID: k[0].ID, AgentID: "support-bot"}) ||
		ev.TraceID != "0af7651916cd43dd8448eb211c80319c" || !reflect.DeepEqual(attrsOf(t, ev), want) || string(pls[0]) != text || out["id"] != ev.ID {
		t.Errorf("event %+v attrs %v payload %q; answer %v", ev, attrsOf(t, ev), pls[0], out)
	}
	// An agent cannot name a person (`by`): refused, and recorded.
	n = api.rec.len()
	status, out = api.do(t, "POST", "/v1/disclosures", api.acme, `{"channel":"chat","method":"text","text":"AI","by":"me"}`)
	if e := errOf(out); status != 400 || e["param"] != "by" || e["type"] != "invalid_request_error" {
		t.Fatalf("disclosure with by: %d %v", status, out)
	}
	evs, _ = api.rec.since(n)
	if len(evs) != 2 || evs[1].Kind != ledger.KindError || evs[1].Tenant != "acme" {
		t.Errorf("refusal recorded as %v", evs)
	}
	status, out = api.do(t, "POST", "/v1/disclosures", api.acme, `{"channel":"sms","method":"text","text":"AI"}`)
	if e := errOf(out); status != 400 || e["param"] != "channel" {
		t.Errorf("bad channel: %d %v", status, out)
	}
	if status, _ := api.do(t, "POST", "/v1/disclosures", "", `{"channel":"chat","method":"text","text":"AI"}`); status != 401 {
		t.Errorf("no key: %d", status)
	}
	// The ledger down: 503, fail-closed.
	api.rec.set(true, false)
	status, out = api.do(t, "POST", "/v1/disclosures", api.acme, `{"channel":"chat","method":"text","text":"AI"}`)
	if e := errOf(out); status != 503 || e["code"] != "ledger_unavailable" {
		t.Errorf("ledger down: %d %v", status, out)
	}
}

// TestRecordRefusedByLedger: a record the stream refuses (too large for
// its messages) is a 413, not an outage.
func TestRecordRefusedByLedger(t *testing.T) {
	api := newTestAPI(t)
	api.rec.mu.Lock()
	api.rec.refuse = &ledger.EventError{Field: "payload", Reason: "message of 2000000 bytes is over the server's 1048576-byte limit"}
	api.rec.mu.Unlock()
	status, out := api.admin(t, "POST", "/admin/attestations", `{"framework":"aiuc-1","controls":["E016"],"title":"t","statement":"s","by":"Ada","document_base64":"AAAA"}`)
	if e := errOf(out); status != 413 || e["code"] != "request_too_large" {
		t.Errorf("refused by the stream: %d %v", status, out)
	}
}

// TestUnappliedChange: when the store fails after the ledger took a change
// (a guardrail policy, a stop), the change is answered as failed and a
// "<action>.failed" event naming it follows in the same log, so the log
// never claims in force what is not.
func TestUnappliedChange(t *testing.T) {
	api := newTestAPI(t)
	db, err := sql.Open("sqlite", api.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{ // writes fail; reads still work
		"CREATE TRIGGER no_policies BEFORE INSERT ON guard_policies BEGIN SELECT RAISE(ABORT, 'store broken'); END",
		"CREATE TRIGGER no_stops BEFORE INSERT ON oversight_stops BEGIN SELECT RAISE(ABORT, 'store broken'); END",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ method, path, body, log, kind, action string }{
		{"PUT", "/admin/tenants/acme/guardrails", `{"checks":[{"id":"s","type":"secrets"}]}`, ledger.SystemLog, ledger.KindAdmin, "guardrails.set"},
		{"POST", "/admin/tenants/acme/oversight", `{"action":"stop","target_type":"agent","target":"a1","by":"Ada","reason":"r"}`, "acme", "oversight", "stop"},
	} {
		n := api.rec.len()
		code, _ := api.do(t, tc.method, tc.path, adminKey, tc.body)
		evs, _ := api.rec.since(n)
		if code != 500 || len(evs) != 2 {
			t.Fatalf("%s: %d, %d events", tc.action, code, len(evs))
		}
		var a map[string]any
		json.Unmarshal(evs[1].RawAttrs, &a)
		if evs[1].Tenant != tc.log || evs[1].Kind != tc.kind || a["action"] != tc.action+".failed" || a["event_id"] != evs[0].ID {
			t.Fatalf("%s: follow-up event %s/%s %v, want %s.failed naming %s", tc.action, evs[1].Tenant, evs[1].Kind, a, tc.action, evs[0].ID)
		}
	}
}

// TestApprovalStoreDown: a decision on a held call that the approval store
// cannot take (Redis down) is a 503 after its record, and an
// "approval.failed" event naming it follows, so the log never claims a
// decision reached a call that it did not.
func TestApprovalStoreDown(t *testing.T) {
	eng, err := engine.New(engine.Config{Approvals: engine.ApprovalsConfig{RedisURL: "redis://127.0.0.1:1/0"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	api := newTestAPI(t, func(a *httpapi.Admin) { a.Decide = eng.Decide })
	n := api.rec.len()
	status, out := api.admin(t, "POST", "/admin/tenants/acme/approvals",
		`{"subject":"apr_0123456789abcdef","subject_type":"call","decision":"approved","by":"Ada","reason":"checked"}`)
	if e := errOf(out); status != 503 || e["code"] != "approval_unavailable" {
		t.Fatalf("store down: %d %v", status, out)
	}
	evs, _ := api.rec.since(n)
	if len(evs) != 2 || evs[0].Kind != ledger.KindApproval {
		t.Fatalf("events %v; want the approval and its failure", evs)
	}
	var a map[string]any
	json.Unmarshal(evs[1].RawAttrs, &a)
	if evs[1].Tenant != "acme" || evs[1].Kind != ledger.KindApproval || a["action"] != "approval.failed" || a["event_id"] != evs[0].ID ||
		a["subject"] != "apr_0123456789abcdef" || a["by"] != "Ada" {
		t.Fatalf("follow-up event %s/%s %v", evs[1].Tenant, evs[1].Kind, a)
	}
	// An unknown approval with the store up is not an error: resolved false.
	up := newTestAPI(t, func(a *httpapi.Admin) {
		mem, err := engine.New(engine.Config{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		a.Decide = mem.Decide
	})
	status, out = up.admin(t, "POST", "/admin/tenants/acme/approvals",
		`{"subject":"apr_0123456789abcdef","subject_type":"call","decision":"approved","by":"Ada","reason":"checked"}`)
	if status != 201 || out["resolved"] != false {
		t.Fatalf("unknown approval: %d %v", status, out)
	}
}
