package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"aigw/controls"
	"aigw/gateway"
	"aigw/gateway/tenant"
	"aigw/ledger"

	"github.com/gin-gonic/gin"
)

// The human-oversight and transparency records of the admin API (EU AI Act
// Art. 14, 50 and 73; AIUC-1 C007, D003, E016). Each endpoint validates its
// body strictly, writes one ledger event of its own kind (actor key_id
// "admin", `by` naming the person) and answers 201 with the event once the
// ledger has acknowledged it (503 ledger_unavailable if not, fail-closed).
// Package evidence reads these events' attributes by the names used here.

// MaxDocumentBytes bounds an attestation's document (the event's payload).
const MaxDocumentBytes = 1 << 20

// attestationBodyLimit fits a MaxDocumentBytes document in base64 and the
// other fields.
var attestationBodyLimit = int64(base64.StdEncoding.EncodedLen(MaxDocumentBytes) + 64<<10)

func (a *Admin) mountOversight(g *gin.RouterGroup) {
	g.POST("/attestations", a.createAttestation)
	g.POST("/tenants/:tenant/approvals", a.createApproval)
	g.GET("/tenants/:tenant/approvals/pending", a.pendingApprovals)
	a.mountGuardrails(g)
	g.POST("/tenants/:tenant/oversight", a.createOversight)
	g.GET("/tenants/:tenant/stops", a.listStops)
	g.POST("/tenants/:tenant/disclosures", a.createDisclosure)
	g.POST("/tenants/:tenant/incidents", a.createIncident)
}

// existingTenant answers 404 (or 400 for a malformed id) and returns false
// unless the tenant exists.
func (a *Admin) existingTenant(c *gin.Context, id string) bool {
	if _, err := a.Tenants.GetTenant(c.Request.Context(), id); err != nil {
		if errors.Is(err, tenant.ErrInvalid) || errors.Is(err, tenant.ErrNotFound) {
			writeError(c, &gateway.Error{Status: 404, Type: gateway.TypeNotFound, Code: "not_found", Message: fmt.Sprintf("No such tenant: %q.", truncate(id, 64))})
			return false
		}
		storeError(c, err)
		return false
	}
	return true
}

// record writes ev and answers 201 with it, or the error.
func (a *Admin) record(c *gin.Context, ev *ledger.Event, payload []byte) bool {
	if err := a.RecordEvent(c.Request.Context(), ev, payload); err != nil {
		writeError(c, err)
		return false
	}
	return true
}

// controlIDs checks an attestation's framework (one of
// controls.Frameworks) and control ids, and returns the ids as recorded:
// each control's OSCAL id in the framework's catalog, duplicates dropped.
// An id the catalog does not hold is refused by name.
func (f *form) controlIDs(framework string, ids []string) []any {
	f.oneOf("framework", framework, controls.Frameworks()...)
	if ids == nil {
		f.fail("controls", "Missing required parameter: 'controls'.")
	} else if len(ids) == 0 || len(ids) > maxListItems {
		f.fail("controls", "Invalid 'controls': expected 1 to %d control ids, got %d.", maxListItems, len(ids))
	}
	if f.err != nil {
		return nil
	}
	out := make([]any, 0, len(ids))
	seen := map[string]bool{}
	for i, id := range ids {
		param := fmt.Sprintf("controls[%d]", i)
		f.short(param, id, true)
		if f.err != nil {
			return nil
		}
		ctl, ok := controls.Lookup(framework, id)
		if !ok {
			f.fail(param, "Invalid '%s': the %s catalog has no control %q.", param, framework, truncate(id, 64))
			return nil
		}
		if !seen[ctl.OSCALID] {
			seen[ctl.OSCALID] = true
			out = append(out, ctl.OSCALID)
		}
	}
	return out
}

func (a *Admin) createAttestation(c *gin.Context) {
	var in struct {
		Tenant         string   `json:"tenant"`
		Framework      string   `json:"framework"`
		Controls       []string `json:"controls"`
		Title          string   `json:"title"`
		Statement      string   `json:"statement"`
		By             string   `json:"by"`
		Role           string   `json:"role"`
		DocumentName   string   `json:"document_name"`
		DocumentBase64 string   `json:"document_base64"`
		ValidUntil     string   `json:"valid_until"`
	}
	if !decodeAdminLimit(c, &in, attestationBodyLimit) {
		return
	}
	f := &form{}
	if in.Tenant != "" && !tenant.ValidID(in.Tenant) {
		f.fail("tenant", "Invalid 'tenant': %q is not a tenant id (omit it for a deployment-wide attestation).", truncate(in.Tenant, 64))
	}
	ids := f.controlIDs(in.Framework, in.Controls)
	f.short("title", in.Title, true)
	f.long("statement", in.Statement, true)
	f.short("by", in.By, true)
	f.short("role", in.Role, false)
	f.short("document_name", in.DocumentName, false)
	var doc []byte
	if in.DocumentBase64 != "" {
		var err error
		if doc, err = base64.StdEncoding.Strict().DecodeString(in.DocumentBase64); err != nil {
			f.fail("document_base64", "Invalid 'document_base64': not standard base64 (RFC 4648 §4, padded).")
		} else if len(doc) > MaxDocumentBytes {
			f.fail("document_base64", "Invalid 'document_base64': the document is %d bytes; the limit is %d.", len(doc), MaxDocumentBytes)
		}
	}
	validUntil := f.time("valid_until", in.ValidUntil, false)
	if !validUntil.IsZero() && !validUntil.After(time.Now()) {
		f.fail("valid_until", "Invalid 'valid_until': %s is not in the future.", stamp(validUntil))
	}
	if f.err != nil {
		writeError(c, f.err)
		return
	}
	log := ledger.SystemLog
	if in.Tenant != "" {
		if !a.existingTenant(c, in.Tenant) {
			return
		}
		log = in.Tenant
	}
	attrs := map[string]any{"framework": in.Framework, "controls": ids, "title": in.Title, "statement": in.Statement, "by": in.By}
	putText(attrs, "role", in.Role)
	putText(attrs, "document_name", in.DocumentName)
	if doc != nil {
		sum := sha256.Sum256(doc)
		attrs["document_sha256"] = hex.EncodeToString(sum[:])
		attrs["document_bytes"] = len(doc)
	}
	putTime(attrs, "valid_until", validUntil)
	putText(attrs, "tenant", in.Tenant)
	ev := &ledger.Event{Tenant: log, Kind: controls.KindAttestation, Attrs: attrs}
	if a.record(c, ev, doc) {
		c.JSON(http.StatusCreated, eventOut(ev, doc))
	}
}

func (a *Admin) createApproval(c *gin.Context) {
	id := c.Param("tenant")
	if !a.existingTenant(c, id) {
		return
	}
	var in struct {
		Subject     string `json:"subject"`
		SubjectType string `json:"subject_type"`
		Decision    string `json:"decision"`
		By          string `json:"by"`
		Role        string `json:"role"`
		Reason      string `json:"reason"`
		TraceID     string `json:"trace_id"`
	}
	if !decodeAdmin(c, &in) {
		return
	}
	f := &form{}
	f.short("subject", in.Subject, true)
	if f.present("subject_type", in.SubjectType, true) && !tokenPattern.MatchString(in.SubjectType) {
		f.fail("subject_type", "Invalid 'subject_type': %q; expected a lowercase identifier such as 'trace', 'change', 'deployment' or 'tool_call'.", truncate(in.SubjectType, 64))
	}
	f.oneOf("decision", in.Decision, "approved", "rejected")
	f.short("by", in.By, true)
	f.short("role", in.Role, false)
	f.long("reason", in.Reason, true)
	trace := f.traceID("trace_id", in.TraceID, false)
	if f.err != nil {
		writeError(c, f.err)
		return
	}
	attrs := map[string]any{"subject": in.Subject, "subject_type": in.SubjectType, "decision": in.Decision, "by": in.By, "reason": in.Reason}
	putText(attrs, "role", in.Role)
	putText(attrs, "trace_id", trace)
	ev := &ledger.Event{Tenant: id, Kind: ledger.KindApproval, TraceID: trace, Attrs: attrs}
	if !a.record(c, ev, nil) {
		return
	}
	// A decision on a call held for approval is passed on, once recorded.
	resolved := false
	if in.SubjectType == "call" && a.Decide != nil {
		var err error
		resolved, err = a.Decide(context.WithoutCancel(c.Request.Context()), id, in.Subject, in.Decision == "approved", in.By, in.Reason)
		if err != nil {
			a.unapplied(c, ev, err)
			writeError(c, &gateway.Error{Status: http.StatusServiceUnavailable, Type: gateway.TypeServer, Code: "approval_unavailable",
				Message: "The decision was recorded but could not be passed to the held call: the approval store is unavailable. The call stays held until it expires; retry the decision.", Err: err})
			return
		}
	}
	c.JSON(http.StatusCreated, struct {
		eventJSON
		Resolved bool `json:"resolved"`
	}{eventOut(ev, nil), resolved})
}

// pendingApprovals lists the tenant's calls held for approval.
func (a *Admin) pendingApprovals(c *gin.Context) {
	id := c.Param("tenant")
	if !a.existingTenant(c, id) {
		return
	}
	var list any = []any{}
	if a.Pending != nil {
		list = a.Pending(id)
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": list})
}

// unapplied records, as best it can, that a change the ledger took could
// not be applied (the store failed after the record): an event of the same
// log and kind, action "<action>.failed", naming the event it undoes, so
// that the log never claims in force what is not.
func (a *Admin) unapplied(c *gin.Context, ev *ledger.Event, err error) {
	action, ok := ev.Attrs["action"]
	if !ok { // an approval: its kind names it
		action = ev.Kind
	}
	a.Logger.Error("a change was recorded but not applied", "log", ev.Tenant, "kind", ev.Kind, "action", action, "event_id", ev.ID, "err", err)
	attrs := map[string]any{"action": fmt.Sprint(action) + ".failed", "event_id": ev.ID}
	if t, ok := ev.Attrs["tenant"]; ok {
		attrs["tenant"] = t
	}
	for _, k := range []string{"target_type", "target", "subject_type", "subject", "by"} {
		if v, ok := ev.Attrs[k]; ok {
			attrs[k] = v
		}
	}
	fail := &ledger.Event{Tenant: ev.Tenant, Kind: ev.Kind, TraceID: ev.TraceID, Attrs: attrs}
	if rerr := a.RecordEvent(context.WithoutCancel(c.Request.Context()), fail, nil); rerr != nil {
		a.Logger.Error("recording that a change was not applied failed too", "event_id", ev.ID, "err", rerr)
	}
}

// createOversight records a human intervention. A stop of an agent or a
// route is recorded first and applied only once the ledger has it; a
// resume is recorded, then applied. An override, or any action on a
// trace, is only recorded.
func (a *Admin) createOversight(c *gin.Context) {
	id := c.Param("tenant")
	if !a.existingTenant(c, id) {
		return
	}
	var in struct {
		Action     string `json:"action"`
		TargetType string `json:"target_type"`
		Target     string `json:"target"`
		By         string `json:"by"`
		Reason     string `json:"reason"`
	}
	if !decodeAdmin(c, &in) {
		return
	}
	f := &form{}
	f.oneOf("action", in.Action, "override", "stop", "resume")
	f.oneOf("target_type", in.TargetType, tenant.StopAgent, tenant.StopRoute, "trace")
	trace := ""
	if f.err == nil {
		switch in.TargetType {
		case "trace":
			trace = f.traceID("target", in.Target, true)
			if in.Action != "override" {
				f.fail("action", "Invalid 'action': '%s' applies to an agent or a route, not a trace.", in.Action)
			}
		default:
			if f.present("target", in.Target, true) && tenant.ValidStopTarget(in.TargetType, in.Target) != nil {
				f.fail("target", "Invalid 'target': an agent id (X-Aigw-Agent) is at most 128 bytes, a route (model name) at most %d, without control characters.", tenant.MaxStopTargetLen)
			}
		}
	}
	f.short("by", in.By, true)
	f.long("reason", in.Reason, true)
	if f.err != nil {
		writeError(c, f.err)
		return
	}
	ctx := c.Request.Context()
	// Refuse a stop or a resume that would change nothing, before recording it.
	switch in.Action {
	case "stop":
		if st, err := a.Tenants.GetStop(ctx, id, in.TargetType, in.Target); err == nil {
			writeError(c, &gateway.Error{Status: 409, Type: gateway.TypeInvalidRequest, Code: "already_stopped",
				Message: fmt.Sprintf("The %s %q of tenant %q is stopped already (since %s).", in.TargetType, in.Target, id, stamp(st.StoppedAt))})
			return
		} else if !errors.Is(err, tenant.ErrNotFound) {
			storeError(c, err)
			return
		}
	case "resume":
		if _, err := a.Tenants.GetStop(ctx, id, in.TargetType, in.Target); errors.Is(err, tenant.ErrNotFound) {
			writeError(c, &gateway.Error{Status: 409, Type: gateway.TypeInvalidRequest, Code: "not_stopped",
				Message: fmt.Sprintf("The %s %q of tenant %q is not stopped.", in.TargetType, in.Target, id)})
			return
		} else if err != nil {
			storeError(c, err)
			return
		}
	}
	attrs := map[string]any{"action": in.Action, "target_type": in.TargetType, "target": in.Target, "by": in.By, "reason": in.Reason}
	ev := &ledger.Event{Tenant: id, Kind: controls.KindOversight, TraceID: trace, Attrs: attrs}
	if !a.record(c, ev, nil) {
		return // unrecorded: nothing applied
	}
	actx := context.WithoutCancel(ctx) // recorded: apply it even if the admin has gone
	var err error
	switch in.Action {
	case "stop":
		_, err = a.Auth.Stop(actx, tenant.Stop{Tenant: id, TargetType: in.TargetType, Target: in.Target, By: in.By, Reason: in.Reason, EventID: ev.ID})
		if errors.Is(err, tenant.ErrExists) {
			err = nil // a concurrent stop got there first: stopped all the same
		}
	case "resume":
		_, err = a.Auth.Resume(actx, id, in.TargetType, in.Target)
		if errors.Is(err, tenant.ErrNotFound) {
			err = nil // a concurrent resume got there first
		}
	}
	if err != nil {
		a.unapplied(c, ev, err)
		writeError(c, &gateway.Error{Status: 500, Type: gateway.TypeServer, Code: "not_applied",
			Message: fmt.Sprintf("The %s was recorded (event %s) but could not be applied; retry.", in.Action, ev.ID), Err: err})
		return
	}
	c.JSON(http.StatusCreated, eventOut(ev, nil))
}

type stopJSON struct {
	Object     string    `json:"object"`
	Tenant     string    `json:"tenant"`
	TargetType string    `json:"target_type"`
	Target     string    `json:"target"`
	StoppedAt  time.Time `json:"stopped_at"`
	By         string    `json:"by"`
	Reason     string    `json:"reason"`
	EventID    string    `json:"event_id"`
}

func (a *Admin) listStops(c *gin.Context) {
	id := c.Param("tenant")
	if !a.existingTenant(c, id) {
		return
	}
	list, err := a.Tenants.ListStops(c.Request.Context(), id)
	if err != nil {
		storeError(c, err)
		return
	}
	out := make([]stopJSON, len(list))
	for i, s := range list {
		out[i] = stopJSON{Object: "stop", Tenant: s.Tenant, TargetType: s.TargetType, Target: s.Target, StoppedAt: s.StoppedAt, By: s.By, Reason: s.Reason, EventID: s.EventID}
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": out})
}

// disclosure is the body of a disclosure record: a user was told they deal
// with an AI system (EU AI Act Art. 50(1)). The text is the event's payload;
// the entry holds its SHA-256.
type disclosure struct {
	Channel string `json:"channel"`
	Method  string `json:"method"`
	Session string `json:"session"`
	Text    string `json:"text"`
}

func (d *disclosure) check(f *form) {
	f.oneOf("channel", d.Channel, "chat", "voice", "email", "api", "other")
	f.oneOf("method", d.Method, "text", "banner", "voice", "label", "header", "other")
	f.short("session", d.Session, false)
	f.long("text", d.Text, true)
}

func (d *disclosure) attrs() map[string]any {
	sum := sha256.Sum256([]byte(d.Text))
	attrs := map[string]any{"channel": d.Channel, "method": d.Method, "text_sha256": hex.EncodeToString(sum[:])}
	putText(attrs, "session", d.Session)
	return attrs
}

func (a *Admin) createDisclosure(c *gin.Context) {
	id := c.Param("tenant")
	if !a.existingTenant(c, id) {
		return
	}
	var in struct {
		disclosure
		By string `json:"by"`
	}
	if !decodeAdmin(c, &in) {
		return
	}
	f := &form{}
	in.check(f)
	f.short("by", in.By, false)
	if f.err != nil {
		writeError(c, f.err)
		return
	}
	attrs := in.attrs()
	putText(attrs, "by", in.By)
	payload := []byte(in.Text)
	ev := &ledger.Event{Tenant: id, Kind: controls.KindDisclosure, Attrs: attrs}
	if a.record(c, ev, payload) {
		c.JSON(http.StatusCreated, eventOut(ev, payload))
	}
}

// reportDeadline is how long after awareness a serious incident must be
// reported (EU AI Act Art. 73(2)-(4)); 0 when no deadline applies.
func reportDeadline(severity string) time.Duration {
	switch severity {
	case "widespread", "critical_infrastructure":
		return 2 * 24 * time.Hour
	case "death":
		return 10 * 24 * time.Hour
	case "serious":
		return 15 * 24 * time.Hour
	}
	return 0
}

func newIncidentID() string {
	var b [8]byte
	rand.Read(b[:])
	return "inc_" + hex.EncodeToString(b[:])
}

func (a *Admin) createIncident(c *gin.Context) {
	id := c.Param("tenant")
	if !a.existingTenant(c, id) {
		return
	}
	var in struct {
		IncidentID    string   `json:"incident_id"`
		Action        string   `json:"action"`
		Severity      string   `json:"severity"`
		Title         string   `json:"title"`
		Description   string   `json:"description"`
		AwareAt       string   `json:"aware_at"`
		OccurredAt    string   `json:"occurred_at"`
		ReportedAt    string   `json:"reported_at"`
		Authority     string   `json:"authority"`
		RelatedTraces []string `json:"related_traces"`
		By            string   `json:"by"`
	}
	if !decodeAdmin(c, &in) {
		return
	}
	f := &form{}
	f.oneOf("action", in.Action, "open", "update", "report", "close")
	if f.present("incident_id", in.IncidentID, in.Action != "open") && !idPattern.MatchString(in.IncidentID) {
		f.fail("incident_id", "Invalid 'incident_id': 1 to 64 of [A-Za-z0-9._:-], starting with a letter or digit.")
	}
	f.oneOf("severity", in.Severity, "serious", "death", "widespread", "critical_infrastructure", "other")
	f.short("title", in.Title, true)
	f.long("description", in.Description, false)
	aware := f.past("aware_at", in.AwareAt, in.Action == "open")
	occurred := f.past("occurred_at", in.OccurredAt, false)
	reported := f.past("reported_at", in.ReportedAt, in.Action == "report")
	if !occurred.IsZero() && !aware.IsZero() && occurred.After(aware) {
		f.fail("occurred_at", "Invalid 'occurred_at': the incident cannot occur after you became aware of it (aware_at).")
	}
	if !reported.IsZero() && !aware.IsZero() && reported.Before(aware) {
		f.fail("reported_at", "Invalid 'reported_at': before aware_at.")
	}
	f.short("authority", in.Authority, false)
	if len(in.RelatedTraces) > maxListItems {
		f.fail("related_traces", "Invalid 'related_traces': at most %d trace ids, got %d.", maxListItems, len(in.RelatedTraces))
	}
	var traces []any
	for i, t := range in.RelatedTraces {
		if f.err != nil {
			break
		}
		traces = append(traces, f.traceID(fmt.Sprintf("related_traces[%d]", i), t, true))
	}
	f.short("by", in.By, true)
	if f.err != nil {
		writeError(c, f.err)
		return
	}
	if in.IncidentID == "" {
		in.IncidentID = newIncidentID()
	}
	attrs := map[string]any{"incident_id": in.IncidentID, "action": in.Action, "severity": in.Severity, "title": in.Title, "by": in.By}
	putText(attrs, "description", in.Description)
	putTime(attrs, "aware_at", aware)
	putTime(attrs, "occurred_at", occurred)
	putTime(attrs, "reported_at", reported)
	putText(attrs, "authority", in.Authority)
	if traces != nil {
		attrs["related_traces"] = traces
	}
	if d := reportDeadline(in.Severity); d > 0 && in.Action == "open" {
		attrs["report_due"] = stamp(aware.Add(d))
	}
	ev := &ledger.Event{Tenant: id, Kind: controls.KindIncident, Attrs: attrs}
	if a.record(c, ev, nil) {
		c.JSON(http.StatusCreated, eventOut(ev, nil))
	}
}

// disclosure serves POST /v1/disclosures: an agent records, with its
// tenant's API key, that it told a user they deal with an AI system. The
// event is in the tenant's log with the key and the agent as its actor; a
// refused request is recorded there as other refused calls are.
func (s *server) disclosure(c *gin.Context) {
	const endpoint = "disclosures"
	caller, ok := s.authenticate(c)
	if !ok {
		s.stats.add(endpoint, 401)
		return
	}
	body, gerr := s.readBody(c)
	var d disclosure
	if gerr == nil {
		gerr = decodeStrict(body, &d)
	}
	if gerr == nil {
		f := &form{}
		d.check(f)
		gerr = f.err
	}
	if gerr != nil {
		s.stats.add(endpoint, gerr.Status)
		s.reject(c, caller, endpoint, "", body, gerr)
		return
	}
	payload := []byte(d.Text)
	ev := &ledger.Event{Tenant: caller.Tenant, Kind: controls.KindDisclosure, TraceID: traceID(c),
		Actor: ledger.Actor{KeyID: caller.KeyID, AgentID: caller.AgentID}, Attrs: d.attrs()}
	if err := recordEvent(c.Request.Context(), s.cfg.Recorder, s.cfg.FailOpen, s.log, ev, payload); err != nil {
		s.stats.add(endpoint, gateway.AsError(err).Status)
		writeError(c, err)
		return
	}
	s.stats.add(endpoint, http.StatusCreated)
	c.JSON(http.StatusCreated, eventOut(ev, payload))
}

// checkStops refuses a call of a stopped agent or to a stopped route of
// the caller's tenant.
func (s *server) checkStops(ctx context.Context, caller gateway.Caller, model string) *gateway.Error {
	if s.cfg.Stops == nil {
		return nil
	}
	st, err := s.cfg.Stops(ctx, caller.Tenant)
	if err != nil {
		s.log.Error("cannot read the tenant's oversight stops", "tenant", caller.Tenant, "err", err)
		return &gateway.Error{Status: 503, Type: gateway.TypeUnavailable, Code: "stops_unavailable", RetryAfter: time.Second,
			Message: "The gateway cannot check this call against human-oversight stops now; retry later.", Err: err}
	}
	if caller.AgentID != "" {
		if stop, ok := st.Agent(caller.AgentID); ok {
			return &gateway.Error{Status: 403, Type: gateway.TypePermission, Code: "agent_stopped",
				Message: fmt.Sprintf("The agent `%s` was stopped by a human overseer at %s; its calls are refused until it is resumed.", caller.AgentID, stamp(stop.StoppedAt))}
		}
	}
	if stop, ok := st.Route(model); ok {
		return &gateway.Error{Status: 403, Type: gateway.TypePermission, Code: "route_stopped", Param: "model",
			Message: fmt.Sprintf("The model `%s` was stopped by a human overseer at %s; its calls are refused until it is resumed.", truncate(model, 256), stamp(stop.StoppedAt))}
	}
	return nil
}
