package a2a

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"aigw/gateway"
	"aigw/ledger"
)

// Event types: the "event" attribute of the proxy's ledger events, all of
// kind ledger.KindDelegation.
const (
	// EventHop: a delegation was granted and its token issued (recorded
	// before the callee is called). It carries the token's claims.
	EventHop = "hop"
	// EventCall: a JSON-RPC call on a hop ended (its outcome).
	EventCall = "call"
	// EventState: a task changed state.
	EventState = "state"
	// EventRefused: a call was refused (reason, error code).
	EventRefused = "refused"
	// EventPush: a push notification to the caller's webhook ended.
	EventPush = "push"
)

// Outcomes of a call event.
const (
	OutcomeOK       = "ok"
	OutcomeReplayed = "replayed"
	OutcomeError    = "error"
	OutcomeUpstream = "upstream_error"
	OutcomeLedger   = "ledger_error"
	OutcomeGone     = "client_gone"
)

// call is one request to the proxy: who made it, and the ledger events it
// emitted (published together, awaited before the answer).
type call struct {
	p      *Proxy
	ctx    context.Context
	ag     *agentState
	caller gateway.Caller
	id     json.RawMessage
	method string
	start  time.Time
	trace  string
	body   []byte
	// token and settle go with the updates of the call's hop (see upd).
	token, settle string
	// idem is a message's idempotency key, stream whether it streams:
	// a refused message that retries an answered one is answered instead
	// (see deny).
	idem   string
	stream bool

	batchOnce sync.Once
	batch     gateway.Batch // the call's events on their way to the ledger

	mu      sync.Mutex
	changes []change // state changes, for push notifications
}

// change is a state change a call observed.
type change struct {
	hop     *Hop
	eventID string
}

// emit adds an event to the call's unpublished events.
func (c *call) emit(a *attrBuf, payload []byte) *ledger.Event {
	ev := &ledger.Event{
		ID: ledger.NewEventID(), Tenant: c.caller.Tenant, Kind: ledger.KindDelegation, Time: time.Now(),
		Actor: ledger.Actor{KeyID: c.caller.KeyID, AgentID: c.caller.AgentID}, TraceID: c.trace,
		Policy: c.p.cfg.Policy, RawAttrs: a.json(),
	}
	a.release()
	c.events().Add(ev, payload)
	return ev
}

// events is the call's batch, set up on first use (the caller is known by
// then: events are emitted after authentication).
func (c *call) events() *gateway.Batch {
	c.batchOnce.Do(func() {
		c.batch = gateway.Batch{Recorder: c.p.cfg.Recorder, FailOpen: c.p.cfg.FailOpen, Timeout: c.p.cfg.LedgerTimeout,
			Failures: &c.p.LedgerFailures, Log: c.p.log, Tenant: c.caller.Tenant, TraceID: c.trace, Background: &c.p.bg}
	})
	return &c.batch
}

// publish starts recording the unpublished events, as one unit.
func (c *call) publish() { c.events().Publish() }

// ready publishes what is emitted and waits until every event of the call
// is durable. Fail-closed, an error means the answer must be withheld;
// fail-open it only counts and logs.
func (c *call) ready() error {
	if err := c.events().Ready(c.ctx); err != nil {
		return fmt.Errorf("%w: %w", gateway.ErrLedgerUnavailable, err)
	}
	return nil
}

func ledgerUnavailable() *RPCError {
	return rpcErr(CodeLedgerUnavailable, ReasonLedgerUnavailable, "The audit ledger cannot record this call now; nothing was delegated or the answer is withheld. Retry later.")
}

// hopAttrs are the attributes every event of a hop carries.
func hopAttrs(cl *Claims, event, method string) *attrBuf {
	a := newAttrs()
	a.set("event", event)
	a.set("method", method)
	a.set("hop_id", cl.HopID)
	a.set("task_id", cl.TaskID)
	a.set("root_task_id", cl.RootTask)
	a.set("caller", cl.Caller)
	a.set("callee", cl.Callee)
	a.set("depth", cl.Depth)
	if cl.ParentHop != "" {
		a.set("parent_hop_id", cl.ParentHop)
	}
	return a
}

// grantAttrs are the attributes of a hop event: the token's claims.
func grantAttrs(cl *Claims, method string) *attrBuf {
	a := hopAttrs(cl, EventHop, method)
	a.set("scopes", cl.Scopes)
	a.set("budget", cl.Budget)
	a.set("max_depth", cl.MaxDepth)
	a.set("chain", cl.Chain)
	a.set("expires", time.Unix(cl.Expires, 0).UTC().Format(time.RFC3339))
	return a
}

// errAttrs adds an error's code, reason and message to a.
func errAttrs(a *attrBuf, e *RPCError) {
	a.set("error_code", e.Code)
	a.set("error", truncate(e.Message, 512))
	if r := e.Reason(); r != "" {
		a.set("reason", r)
	}
}

// refused records a refusal (best effort: a refusal does nothing, so it
// is answered even when the ledger fails) and writes it.
func (c *call) refuse(w http.ResponseWriter, status int, e *RPCError, callee string, extra map[string]any) {
	if c.caller.Tenant != "" && ledger.ValidLogName(c.caller.Tenant) {
		attrs := newAttrs()
		attrs.set("event", EventRefused)
		attrs.set("caller", c.caller.AgentID)
		attrs.set("callee", callee)
		if c.method != "" {
			attrs.set("method", truncate(c.method, 64))
		}
		for k, v := range extra {
			attrs.set(k, v)
		}
		errAttrs(attrs, e)
		attrs.set("duration_us", time.Since(c.start).Microseconds())
		c.emit(attrs, c.body)
		c.ready()
	}
	if w != nil {
		writeRPC(w, status, c.id, nil, e)
	}
}

// callEvent records the end of a call on hop.
func (c *call) callEvent(hop *Hop, outcome string, e *RPCError, payload []byte, extra map[string]any) *ledger.Event {
	attrs := hopAttrs(&hop.Claims, EventCall, c.method)
	attrs.set("outcome", outcome)
	if hop.State != "" {
		attrs.set("state", string(hop.State))
	}
	attrs.set("duration_us", time.Since(c.start).Microseconds())
	for k, v := range extra {
		attrs.set(k, v)
	}
	if e != nil {
		errAttrs(attrs, e)
	}
	return c.emit(attrs, payload)
}

// stateEvent records a hop's change of state (h as updated).
func (c *call) stateEvent(h *Hop, from TaskState, via string, status json.RawMessage) {
	attrs := hopAttrs(&h.Claims, EventState, via)
	attrs.set("state", string(h.State))
	if from != "" {
		attrs.set("from", string(from))
	}
	if h.UpstreamTaskID != "" {
		attrs.set("upstream_task_id", truncate(h.UpstreamTaskID, 128))
	}
	ev := c.emit(attrs, status)
	c.mu.Lock()
	c.changes = append(c.changes, change{hop: h, eventID: ev.ID})
	c.mu.Unlock()
}

// JSON-RPC wire helpers.

func appendResponse(b []byte, id json.RawMessage, result json.RawMessage, e *RPCError) []byte {
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	if len(id) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, id...)
	}
	if e != nil {
		eb, err := json.Marshal(e)
		if err != nil {
			eb = []byte(`{"code":-32603,"message":"Internal error."}`)
		}
		b = append(b, `,"error":`...)
		b = append(b, eb...)
	} else {
		b = append(b, `,"result":`...)
		if len(result) == 0 {
			b = append(b, "null"...)
		} else {
			b = append(b, result...)
		}
	}
	return append(b, '}')
}

func writeRPC(w http.ResponseWriter, status int, id json.RawMessage, result json.RawMessage, e *RPCError) {
	w.Header().Set("Content-Type", "application/json")
	b := appendResponse(make([]byte, 0, 64+len(result)), id, result, e)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// errTooLarge is returned by readLimited for a body over the limit.
var errTooLarge = errors.New("body over the size limit")

// readLimited reads r up to limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}

// parseRequest checks a JSON-RPC request.
func parseRequest(body []byte) (Request, *RPCError) {
	var req Request
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return req, rpcErr(CodeInvalidRequest, ReasonInvalidRequest, "Batch requests are not supported: send one JSON-RPC request per HTTP request.")
	}
	if r, ok := fastRequest(body); ok {
		req = r
	} else if err := json.Unmarshal(body, &req); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) || len(trimmed) == 0 || trimmed[0] != '{' {
			return req, rpcErr(CodeParseError, ReasonParseError, "Invalid JSON: the body is not one JSON-RPC request object.")
		}
		return Request{}, rpcErr(CodeInvalidRequest, ReasonInvalidRequest, "Invalid JSON-RPC request: %v.", shortJSONError(err))
	}
	switch {
	case req.JSONRPC != "2.0":
		return req, rpcErr(CodeInvalidRequest, ReasonInvalidRequest, `Invalid JSON-RPC request: "jsonrpc" must be "2.0".`)
	case len(req.ID) == 0 || string(req.ID) == "null":
		return req, rpcErr(CodeInvalidRequest, ReasonInvalidRequest, `Invalid JSON-RPC request: "id" (a string or a number) is required; notifications are not supported.`)
	case req.ID[0] != '"' && !(req.ID[0] == '-' || req.ID[0] >= '0' && req.ID[0] <= '9'):
		id := req.ID
		req.ID = nil
		return req, rpcErr(CodeInvalidRequest, ReasonInvalidRequest, `Invalid JSON-RPC request: "id" must be a string or a number, not %s.`, truncate(string(id), 20))
	case len(req.ID) > 256:
		req.ID = nil
		return req, rpcErr(CodeInvalidRequest, ReasonInvalidRequest, `Invalid JSON-RPC request: "id" is longer than 256 bytes.`)
	case req.Method == "":
		return req, rpcErr(CodeInvalidRequest, ReasonInvalidRequest, `Invalid JSON-RPC request: "method" is required.`)
	}
	return req, nil
}

// shortJSONError describes a decoding error without quoting input.
func shortJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("%q must be %s, not %s", te.Field, te.Type.String(), te.Value)
		}
		return fmt.Sprintf("expected %s, not %s", te.Type.String(), te.Value)
	}
	return "malformed JSON"
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// traceOf returns the trace id of a W3C traceparent header, or a new one.
func traceOf(r *http.Request) string {
	if id := gateway.TraceIDFrom(r.Header.Get("traceparent")); id != "" {
		return id
	}
	return gateway.NewTraceID()
}
