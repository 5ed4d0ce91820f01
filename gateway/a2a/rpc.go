package a2a

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"aigw/gateway"
	"aigw/ledger"
)

// serveRPC serves one JSON-RPC request to agent name.
func (p *Proxy) serveRPC(w http.ResponseWriter, r *http.Request, name string) {
	c := &call{p: p, ctx: r.Context(), start: time.Now(), trace: traceOf(r)}
	caller, aerr := p.authenticate(r)
	c.caller = caller
	if aerr != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="aigw"`)
		c.refuse(w, http.StatusUnauthorized, aerr, safeName(name), nil)
		return
	}
	w.Header().Set(HeaderTraceID, c.trace)
	ag := p.agentFor(caller.Tenant, name)
	if ag == nil {
		c.refuse(w, http.StatusNotFound, agentNotFound(name), safeName(name), nil)
		return
	}
	c.ag = ag
	body, err := readLimited(r.Body, p.cfg.MaxMessageBytes)
	if errors.Is(err, errTooLarge) {
		c.refuse(w, http.StatusRequestEntityTooLarge, rpcErr(CodeTooLarge, ReasonTooLarge,
			"Request too large: the limit is %d bytes.", p.cfg.MaxMessageBytes), ag.Name, map[string]any{"limit_bytes": p.cfg.MaxMessageBytes})
		return
	}
	if err != nil {
		c.refuse(w, http.StatusBadRequest, rpcErr(CodeParseError, ReasonParseError, "The request body could not be read."), ag.Name, nil)
		return
	}
	c.body = body
	req, rerr := parseRequest(body)
	c.id, c.method = req.ID, req.Method
	if rerr != nil {
		c.refuse(w, http.StatusOK, rerr, ag.Name, nil)
		return
	}
	switch req.Method {
	case MethodSend:
		c.send(w, r, req, false)
	case MethodStream:
		c.send(w, r, req, true)
	case MethodGet:
		c.get(w, req)
	case MethodCancel:
		c.cancel(w, req)
	case MethodPushSet:
		c.pushSet(w, req)
	case MethodPushGet, MethodPushList, MethodPushDelete:
		c.pushRead(w, req)
	case MethodResubscribe:
		c.resubscribe(w, req)
	case MethodExtendedCard:
		c.refuse(w, http.StatusOK, rpcErr(CodeUnsupportedOperation, ReasonUnsupported,
			"Method %s is not supported through the aigw gateway.", req.Method), ag.Name, nil)
	default:
		c.refuse(w, http.StatusOK, rpcErr(CodeMethodNotFound, ReasonMethodNotFound,
			"Method %q not found: A2A methods are message/send, message/stream, tasks/get, tasks/cancel, tasks/resubscribe and tasks/pushNotificationConfig/{set,get,list,delete}.",
			truncate(req.Method, 64)), ag.Name, nil)
	}
}

// safeName is a requested agent name as it may be recorded.
func safeName(s string) string {
	return strings.ToValidUTF8(truncate(s, MaxAgentNameLen), "?")
}

func badParams(format string, args ...any) *RPCError {
	return rpcErr(CodeInvalidParams, ReasonInvalidParams, "Invalid params: "+format, args...)
}

func internalError() *RPCError { return rpcErr(CodeInternal, ReasonInternal, "Internal error.") }

// sendParams are the params of message/send or message/stream, decoded
// as far as the proxy reads them and kept raw to forward: each object's
// members sorted by key, as forward writes them.
type sendParams struct {
	top        []member
	msg        []member
	rawMessage []byte // params.message as sent
	message    messageHead
	msgMeta    []member // without MetaDelegation
	meta       []member // without MetaDelegationRequest
	conf       []member // without pushNotificationConfig
	request    *DelegationRequest
	token      string
	push       *PushNotificationConfig
}

// messageHead is what the proxy reads of a message (the rest passes
// through as it is).
type messageHead struct {
	Kind      string `json:"kind"`
	Role      string `json:"role"`
	MessageID string `json:"messageId"`
	TaskID    string `json:"taskId"`
	Parts     []struct {
		Kind string          `json:"kind"`
		File json.RawMessage `json:"file"`
		Data json.RawMessage `json:"data"`
	} `json:"parts"`
}

func isNull(b json.RawMessage) bool { return len(b) == 0 || string(b) == "null" }

// parseSend reads message/send params: with fastSend when it can, else
// with encoding/json (which gives the errors).
func parseSend(params json.RawMessage) (*sendParams, *RPCError) {
	if sp, ok := fastSend(params); ok {
		return sp, nil
	}
	return decodeSend(params)
}

// decodeSend is parseSend with encoding/json.
func decodeSend(params json.RawMessage) (*sendParams, *RPCError) {
	var top, msg, msgMeta, meta, conf map[string]json.RawMessage
	sp := &sendParams{}
	if isNull(params) || json.Unmarshal(params, &top) != nil {
		return nil, badParams("params must be a MessageSendParams object.")
	}
	raw := top["message"]
	if isNull(raw) {
		return nil, badParams("params.message is required.")
	}
	if json.Unmarshal(raw, &msg) != nil {
		return nil, badParams("params.message must be a Message object.")
	}
	if err := json.Unmarshal(raw, &sp.message); err != nil {
		return nil, badParams("params.message: %s.", shortJSONError(err))
	}
	m := &sp.message
	switch {
	case m.Kind != "" && m.Kind != KindMessage:
		return nil, badParams(`params.message.kind must be "message".`)
	case m.Role != "user":
		return nil, badParams(`params.message.role must be "user", not %q.`, truncate(m.Role, 20))
	case m.MessageID == "" || len(m.MessageID) > 256:
		return nil, badParams("params.message.messageId is required (1 to 256 characters).")
	case len(m.Parts) == 0:
		return nil, badParams("params.message.parts must hold at least one part.")
	case len(m.TaskID) > 256:
		return nil, badParams("params.message.taskId is longer than 256 characters.")
	}
	for i, part := range m.Parts {
		switch {
		case part.Kind == "text":
		case part.Kind == "file" && !isNull(part.File), part.Kind == "data" && !isNull(part.Data):
		case part.Kind == "file" || part.Kind == "data":
			return nil, badParams("params.message.parts[%d] of kind %s has no %s.", i, part.Kind, part.Kind)
		default:
			return nil, badParams("params.message.parts[%d].kind must be text, file or data, not %q.", i, truncate(part.Kind, 20))
		}
	}
	if mm := msg["metadata"]; !isNull(mm) {
		if json.Unmarshal(mm, &msgMeta) != nil {
			return nil, badParams("params.message.metadata must be an object.")
		}
		if t, ok := msgMeta[MetaDelegation]; ok {
			if !isNull(t) && json.Unmarshal(t, &sp.token) != nil {
				return nil, badParams("params.message.metadata[%q] must be a delegation token (a string).", MetaDelegation)
			}
			delete(msgMeta, MetaDelegation)
		}
	}
	if pm := top["metadata"]; !isNull(pm) {
		if json.Unmarshal(pm, &meta) != nil {
			return nil, badParams("params.metadata must be an object.")
		}
		if dr, ok := meta[MetaDelegationRequest]; ok {
			if !isNull(dr) {
				var req DelegationRequest
				if err := strictJSON(dr, &req); err != nil {
					return nil, badParams("params.metadata[%q]: %s (members: scopes, budget{nano_usd,tokens}, ttl_seconds, max_depth).", MetaDelegationRequest, err)
				}
				sp.request = &req
			}
			delete(meta, MetaDelegationRequest)
		}
	}
	if cf := top["configuration"]; !isNull(cf) {
		if json.Unmarshal(cf, &conf) != nil {
			return nil, badParams("params.configuration must be an object.")
		}
		if pc, ok := conf["pushNotificationConfig"]; ok {
			if !isNull(pc) {
				sp.push = &PushNotificationConfig{}
				if err := json.Unmarshal(pc, sp.push); err != nil {
					return nil, badParams("params.configuration.pushNotificationConfig: %s.", shortJSONError(err))
				}
			}
			delete(conf, "pushNotificationConfig")
		}
	}
	sp.top, sp.msg, sp.rawMessage = membersOf(top), membersOf(msg), raw
	sp.msgMeta, sp.meta, sp.conf = membersOf(msgMeta), membersOf(meta), membersOf(conf)
	return sp, nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if strings.Contains(err.Error(), "unknown field") {
			return errors.New(strings.TrimPrefix(err.Error(), "json: "))
		}
		return errors.New(shortJSONError(err))
	}
	return nil
}

// Keys forward writes itself, in order.
var (
	forwardTop  = []string{"configuration", "message", "metadata"}
	forwardMsg  = []string{"metadata", "taskId"}
	forwardMeta = []string{MetaDelegation}
	forwardConf = []string{"pushNotificationConfig"}
)

// forward encodes the params for the callee: its token in the message's
// metadata, the agent's task id, the gateway's push config (or none).
// Every object it writes has its members sorted by key.
func (sp *sendParams) forward(token, upstreamTask string, push *PushNotificationConfig) ([]byte, error) {
	var pushRaw []byte
	if push != nil {
		var err error
		if pushRaw, err = json.Marshal(push); err != nil {
			return nil, err
		}
	}
	n := 64 + len(token) + len(upstreamTask) + len(pushRaw)
	for _, ms := range [][]member{sp.top, sp.msg, sp.msgMeta, sp.meta, sp.conf} {
		for _, m := range ms {
			n += len(m.qkey) + len(m.val) + 2
		}
	}
	writeMeta := func(out []byte, _ int, _ []byte) ([]byte, bool) { return appendQuoted(out, token), true }
	writeMsg := func(out []byte, i int, orig []byte) ([]byte, bool) {
		switch {
		case i == 0: // metadata
			return appendMembers(out, sp.msgMeta, forwardMeta, writeMeta), true
		case upstreamTask != "": // taskId
			return appendQuoted(out, upstreamTask), true
		}
		return append(out, orig...), orig != nil
	}
	writeConf := func(out []byte, _ int, _ []byte) ([]byte, bool) { return append(out, pushRaw...), true }
	writeTop := func(out []byte, i int, _ []byte) ([]byte, bool) {
		switch i {
		case 0: // configuration
			if pushRaw != nil {
				return appendMembers(out, sp.conf, forwardConf, writeConf), true
			}
			return appendMembers(out, sp.conf, nil, nil), len(sp.conf) > 0
		case 1: // message
			return appendMembers(out, sp.msg, forwardMsg, writeMsg), true
		}
		return appendMembers(out, sp.meta, nil, nil), len(sp.meta) > 0
	}
	return appendMembers(make([]byte, 0, n), sp.top, forwardTop, writeTop), nil
}

// idemKey is the idempotency key of a message: the same caller (key and
// agent) sending the same messageId to the same callee.
func idemKey(c gateway.Caller, callee, messageID string) string {
	h := sha256.New()
	for _, s := range []string{c.KeyID, c.AgentID, callee, messageID} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (c *call) send(w http.ResponseWriter, r *http.Request, req Request, stream bool) {
	sp, rerr := parseSend(req.Params)
	if rerr != nil {
		c.refuse(w, http.StatusOK, rerr, c.ag.Name, nil)
		return
	}
	if stream {
		if caps, known := c.p.capabilities(c.ctx, c.ag); known && !caps.Streaming {
			c.refuse(w, http.StatusOK, rpcErr(CodeUnsupportedOperation, ReasonUnsupported,
				"Agent %q does not stream (its card's capabilities.streaming is false): use message/send.", c.ag.Name), c.ag.Name, nil)
			return
		}
	}
	if sp.push != nil {
		if rerr := c.p.checkPush(sp.push); rerr != nil {
			c.refuse(w, http.StatusOK, rerr, c.ag.Name, nil)
			return
		}
	}
	presented := r.Header.Get(HeaderDelegation)
	if presented == "" {
		presented = sp.token
	}
	c.idem, c.stream = idemKey(c.caller, c.ag.Name, sp.message.MessageID), stream
	if sp.message.TaskID != "" {
		c.continueTask(w, sp, presented, stream)
		return
	}
	c.newTask(w, sp, presented, stream)
}

// verifyToken checks a delegation token a caller presents and returns the
// hop it was issued for; extra holds what the refusal event should say.
func (c *call) verifyToken(tok string) (*Hop, *RPCError, map[string]any) {
	cl, err := c.p.signer.Verify(tok, c.p.now())
	if err != nil {
		switch {
		case errors.Is(err, ErrTokenSignature):
			return nil, rpcErr(CodeTokenInvalid, ReasonTokenSignature, "Delegation token refused: its signature is invalid."), nil
		case errors.Is(err, ErrTokenExpired):
			extra := map[string]any{}
			if dc, derr := DecodeToken(tok); derr == nil {
				extra["parent_hop_id"], extra["root_task_id"] = dc.HopID, dc.RootTask
			}
			return nil, rpcErr(CodeTokenInvalid, ReasonTokenExpired, "Delegation token refused: %s.", strings.TrimPrefix(err.Error(), "delegation token ")), extra
		case errors.Is(err, ErrTokenIssuer):
			return nil, rpcErr(CodeTokenInvalid, ReasonTokenIssuer, "Delegation token refused: it was issued by another gateway."), nil
		}
		return nil, rpcErr(CodeTokenInvalid, ReasonTokenMalformed, "Delegation token refused: it is malformed (%s).", strings.TrimPrefix(err.Error(), "delegation token is malformed: ")), nil
	}
	extra := map[string]any{"parent_hop_id": cl.HopID, "root_task_id": cl.RootTask, "depth": cl.Depth + 1}
	if cl.Tenant != c.caller.Tenant {
		return nil, rpcErr(CodeTokenInvalid, ReasonTokenTenant, "Delegation token refused: it was issued in another tenant."), nil
	}
	if cl.Callee != c.caller.AgentID {
		return nil, rpcErr(CodeTokenInvalid, ReasonTokenCallee, "Delegation token refused: it was issued to agent %q, and %s says %q.",
			cl.Callee, HeaderAgent, c.caller.AgentID), extra
	}
	hop, err := c.p.store.Get(c.ctx, c.caller.Tenant, cl.HopID)
	if errors.Is(err, ErrNotFound) {
		return nil, rpcErr(CodeTokenInvalid, ReasonParentEnded, "Delegation token refused: its task %s is no longer known.", cl.TaskID), extra
	}
	if err != nil {
		c.p.log.Error("a2a: task store", "err", err)
		return nil, internalError(), extra
	}
	if hop.State.Terminal() {
		return nil, rpcErr(CodeTokenInvalid, ReasonParentEnded, "Delegation token refused: its task %s is %s, and a finished task delegates nothing.",
			cl.TaskID, hop.State), extra
	}
	return hop, nil, extra
}

// newTask delegates a new task to the callee: checks the caller may,
// narrows its token into the callee's, records the hop and forwards.
func (c *call) newTask(w http.ResponseWriter, sp *sendParams, presented string, stream bool) {
	p, ag, caller, now := c.p, c.ag, c.caller, c.p.now()
	if !ag.anyone && !ag.callers[caller.AgentID] {
		c.deny(w, rpcErr(CodeDelegationNotAllowed, ReasonNotAllowed,
			"Delegation refused: agent %q may not delegate to %q.", caller.AgentID, ag.Name), ag.Name, nil)
		return
	}
	var parent *Hop
	var b bounds
	var chain []string
	depth := 1
	if presented != "" {
		var rerr *RPCError
		var extra map[string]any
		parent, rerr, extra = c.verifyToken(presented)
		if rerr != nil {
			c.deny(w, rerr, ag.Name, extra)
			return
		}
		pc := &parent.Claims
		if pc.TraceID != "" {
			c.trace = pc.TraceID
			w.Header().Set(HeaderTraceID, c.trace)
		}
		b = bounds{scopes: pc.Scopes, capScope: ag.Scopes, budget: parent.Remaining, expires: min(pc.Expires, now.Add(p.cfg.TokenTTL).Unix()), maxDepth: pc.MaxDepth}
		depth, chain = pc.Depth+1, pc.Chain
	} else {
		if p.registered[caller.Tenant][caller.AgentID] && !p.agents[caller.AgentID].MayInitiate {
			c.deny(w, rpcErr(CodeDelegationNotAllowed, ReasonTokenRequired,
				"Delegation refused: agent %q delegates only under the delegation token it was given (send it in %s).", caller.AgentID, HeaderDelegation), ag.Name, nil)
			return
		}
		scopes := ag.Scopes
		if scopes == nil {
			scopes = []string{"*"}
		}
		b = bounds{scopes: scopes, budget: UnlimitedBudget, expires: now.Add(p.cfg.TokenTTL).Unix(), maxDepth: p.cfg.MaxDepth}
		chain = []string{caller.AgentID}
	}
	if ag.MaxBudget != nil {
		b.budget = b.budget.Min(*ag.MaxBudget)
	}
	extra := map[string]any{"depth": depth}
	if parent != nil {
		extra["parent_hop_id"], extra["root_task_id"] = parent.ID(), parent.Claims.RootTask
	}
	if slices.Contains(chain, ag.Name) {
		c.deny(w, rpcErr(CodeDelegationLoop, ReasonLoop,
			"Delegation refused: agent %q is already on the delegation chain %s.", ag.Name, strings.Join(append(slices.Clone(chain), ag.Name), " → ")), ag.Name, extra)
		return
	}
	limit := min(b.maxDepth, p.cfg.MaxDepth)
	if ag.MaxDepth > 0 {
		limit = min(limit, ag.MaxDepth)
	}
	if depth > limit || len(chain) >= maxChain {
		c.deny(w, rpcErr(CodeDepthExceeded, ReasonDepth,
			"Delegation refused: this hop would be at depth %d, and the limit is %d.", depth, limit), ag.Name, extra)
		return
	}
	scopes, budget, exp, maxDepth, rerr := narrow(b, sp.request, depth, now)
	if rerr != nil {
		c.deny(w, rerr, ag.Name, extra)
		return
	}
	hopID := ledger.NewEventID()
	cl := Claims{
		Version: 1, Issuer: p.signer.Issuer(), Tenant: caller.Tenant, HopID: hopID, TaskID: hopID, Caller: caller.AgentID, Callee: ag.Name,
		Chain: append(slices.Clone(chain), ag.Name), Depth: depth, MaxDepth: maxDepth, Scopes: scopes, Budget: budget,
		TraceID: c.trace, IssuedAt: now.Unix(), Expires: exp, RootTask: hopID,
	}
	if parent != nil {
		cl.ParentHop, cl.RootTask = parent.ID(), parent.Claims.RootTask
	}
	hop := &Hop{Claims: cl, CallerKey: caller.KeyID, Remaining: budget, CallbackToken: randomHex(24), Push: sp.push}
	// The token is signed while the hop is stored and its grant recorded
	// (fail-closed: the ledger holds the grant before the callee is
	// called); a retry answered from the store drops it.
	// The params for the callee are encoded with it (unless the gateway
	// must first ask the callee's card whether it can push).
	type signature struct {
		token  string
		params []byte
		err    error
	}
	signed := make(chan signature, 1)
	go func(cl Claims) {
		tok, err := p.signer.Sign(&cl)
		var params []byte
		if err == nil && sp.push == nil {
			params, _ = sp.forward(tok, "", nil)
		}
		signed <- signature{tok, params, err}
	}(cl)
	key := c.idem
	if !c.await(w, stream, extra, func() (Claim, error) { return p.store.Begin(c.ctx, hop, key) }) {
		return
	}
	c.emit(grantAttrs(&hop.Claims, c.method), sp.rawMessage)
	lerr := c.ready()
	sg := <-signed
	if lerr != nil || sg.err != nil {
		c.undo(hop, parent, key)
		if lerr != nil {
			writeRPC(w, http.StatusOK, c.id, nil, ledgerUnavailable())
			return
		}
		p.log.Error("a2a: sign token", "err", sg.err)
		writeRPC(w, http.StatusOK, c.id, nil, internalError())
		return
	}
	hop.Token = sg.token
	c.exchange(w, sp, hop, key, true, parent, stream, sg.params)
}

// deny refuses a message (see refuse), unless it retries one that was
// answered: then it gets that answer, as await gives it.
func (c *call) deny(w http.ResponseWriter, e *RPCError, callee string, extra map[string]any) {
	if c.replayed(w) {
		return
	}
	c.refuse(w, http.StatusOK, e, callee, extra)
}

// replayed answers a message whose idempotency key is held (waiting for
// the first request's answer) and reports whether it did.
func (c *call) replayed(w http.ResponseWriter) bool {
	if c.idem == "" {
		return false
	}
	cl, err := c.p.store.Lookup(c.ctx, c.caller.Tenant, c.idem)
	if err != nil || cl.HopID == "" {
		return false
	}
	key := c.idem
	c.idem = "" // once
	hopID := cl.HopID
	return !c.await(w, c.stream, nil, func() (Claim, error) {
		cl, err := c.p.store.Lookup(c.ctx, c.caller.Tenant, key)
		if err == nil && cl.HopID == "" {
			cl = Claim{HopID: hopID, Fresh: true} // freed: the refusal stands
		}
		return cl, err
	})
}

// undo gives back what a new hop that was never delegated took: its
// parent's budget, its idempotency key; it is marked failed.
func (c *call) undo(hop, parent *Hop, key string) {
	ctx := context.WithoutCancel(c.ctx)
	if parent != nil {
		if err := c.p.store.Refund(ctx, c.caller.Tenant, parent.ID(), hop.Claims.Budget); err != nil {
			c.p.log.Error("a2a: refund budget", "err", err)
		}
	}
	if err := c.p.store.Release(ctx, c.caller.Tenant, key, hop.ID()); err != nil {
		c.p.log.Error("a2a: release idempotency key", "err", err)
	}
	c.p.store.Update(ctx, c.caller.Tenant, hop.ID(), Update{State: StateFailed})
}

// await claims an idempotency key with try (Begin of a new hop, Claim
// for a follow-up) and reports whether the request goes on. When an
// earlier request with the same key holds it, await waits for its answer
// and replays it.
func (c *call) await(w http.ResponseWriter, stream bool, extra map[string]any, try func() (Claim, error)) bool {
	deadline := time.Now().Add(c.p.cfg.UpstreamTimeout)
	wait := 5 * time.Millisecond
	for {
		cl, err := try()
		switch {
		case errors.Is(err, ErrBudgetExhausted):
			c.refuse(w, http.StatusOK, rpcErr(CodeDelegationWidened, ReasonBudgetExhausted,
				"Delegation refused: the caller's remaining budget no longer covers what this delegation asks."), c.ag.Name, extra)
			return false
		case errors.Is(err, ErrNotFound):
			c.refuse(w, http.StatusOK, rpcErr(CodeTokenInvalid, ReasonParentEnded, "Delegation token refused: its task is no longer known."), c.ag.Name, extra)
			return false
		case err != nil:
			c.p.log.Error("a2a: task store", "err", err)
			c.refuse(w, http.StatusOK, internalError(), c.ag.Name, extra)
			return false
		case cl.Fresh:
			return true
		case cl.Done:
			c.replay(w, cl.HopID, stream)
			return false
		case time.Now().After(deadline) || c.ctx.Err() != nil:
			c.refuse(w, http.StatusOK, rpcErr(CodeInProgress, ReasonInProgress,
				"A request with this messageId is still in flight; retry later."), c.ag.Name, nil)
			return false
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// replay answers a retried message with the answer the first got (the
// task's latest state): no second call to the callee.
func (c *call) replay(w http.ResponseWriter, hopID string, stream bool) {
	hop, err := c.p.store.Get(c.ctx, c.caller.Tenant, hopID)
	if err != nil || hop.Result == nil {
		c.p.log.Error("a2a: replay", "hop", hopID, "err", err)
		c.refuse(w, http.StatusOK, internalError(), c.ag.Name, nil)
		return
	}
	c.useTrace(w, hop)
	c.callEvent(hop, OutcomeReplayed, nil, c.body, nil)
	if err := c.ready(); err != nil {
		writeRPC(w, http.StatusOK, c.id, nil, ledgerUnavailable())
		return
	}
	if stream {
		sw := &sseWriter{w: w, rc: http.NewResponseController(w), trace: c.trace}
		sw.write(c.id, hop.Result, nil)
		return
	}
	writeRPC(w, http.StatusOK, c.id, hop.Result, nil)
}

func (c *call) useTrace(w http.ResponseWriter, hop *Hop) {
	if hop.Claims.TraceID != "" {
		c.trace = hop.Claims.TraceID
		w.Header().Set(HeaderTraceID, c.trace)
	}
}

// ownedHop returns the caller's hop for task id at this agent, or a
// TaskNotFound error (also for another caller's task).
func (c *call) ownedHop(id string) (*Hop, *RPCError) {
	notFound := rpcErr(CodeTaskNotFound, ReasonTaskNotFound, "Task %q not found.", truncate(id, 64))
	if id == "" || len(id) > 256 {
		return nil, notFound
	}
	hop, err := c.p.store.Get(c.ctx, c.caller.Tenant, id)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		c.p.log.Error("a2a: task store", "err", err)
		return nil, internalError()
	}
	if hop.Claims.Callee != c.ag.Name || hop.Claims.Caller != c.caller.AgentID || hop.CallerKey != c.caller.KeyID {
		return nil, notFound
	}
	return hop, nil
}

// continueTask sends a message on an existing task.
func (c *call) continueTask(w http.ResponseWriter, sp *sendParams, presented string, stream bool) {
	hop, rerr := c.ownedHop(sp.message.TaskID)
	if rerr != nil {
		c.deny(w, rerr, c.ag.Name, nil)
		return
	}
	c.useTrace(w, hop)
	fail := func(e *RPCError) {
		if c.replayed(w) {
			return
		}
		c.callEvent(hop, OutcomeError, e, c.body, nil)
		c.ready()
		writeRPC(w, http.StatusOK, c.id, nil, e)
	}
	switch {
	case sp.request != nil:
		fail(badParams("params.metadata[%q] applies only to a new task.", MetaDelegationRequest))
		return
	case hop.Claims.ParentHop != "":
		// The task was delegated under a token: the caller still acts under it.
		if presented == "" {
			fail(rpcErr(CodeDelegationNotAllowed, ReasonTokenRequired, "Delegation refused: task %s was delegated under your delegation token; send it in %s.", hop.ID(), HeaderDelegation))
			return
		}
		parent, rerr, _ := c.verifyToken(presented)
		if rerr != nil {
			fail(rerr)
			return
		}
		if parent.ID() != hop.Claims.ParentHop {
			fail(rpcErr(CodeTokenInvalid, ReasonTokenCallee, "Delegation token refused: task %s was delegated under another token.", hop.ID()))
			return
		}
	}
	switch {
	case hop.State.Terminal():
		fail(rpcErr(CodeUnsupportedOperation, ReasonUnsupported, "Task %s is %s: it takes no more messages.", hop.ID(), hop.State))
		return
	case c.p.now().Unix() >= hop.Claims.Expires:
		fail(rpcErr(CodeTokenInvalid, ReasonTokenExpired, "The delegation of task %s expired at %s.", hop.ID(), hop.Claims.ExpiresAt().UTC().Format(time.RFC3339)))
		return
	case hop.UpstreamTaskID == "":
		fail(rpcErr(CodeInProgress, ReasonInProgress, "Task %s is not created by agent %q yet; retry later.", hop.ID(), c.ag.Name))
		return
	}
	if sp.push != nil {
		h, _, err := c.p.store.Update(c.ctx, c.caller.Tenant, hop.ID(), Update{Push: sp.push})
		if err != nil {
			c.p.log.Error("a2a: task store", "err", err)
			fail(internalError())
			return
		}
		hop = h
	}
	key := c.idem
	if !c.await(w, stream, nil, func() (Claim, error) { return c.p.store.Claim(c.ctx, c.caller.Tenant, key, hop.ID()) }) {
		return
	}
	c.exchange(w, sp, hop, key, false, nil, stream, nil)
}

// exchange forwards a message to the callee and answers the caller;
// params, when not nil, are the forwarded params already encoded.
func (c *call) exchange(w http.ResponseWriter, sp *sendParams, hop *Hop, key string, isNew bool, parent *Hop, stream bool, params []byte) {
	c.settle = key
	if isNew {
		c.token = hop.Token
	}
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	if !stream {
		var tcancel context.CancelFunc
		ctx, tcancel = context.WithTimeout(ctx, c.p.cfg.UpstreamTimeout)
		defer tcancel()
	}
	if params == nil {
		var push *PushNotificationConfig
		if hop.Push != nil {
			push = c.p.upstreamPush(ctx, c.ag, hop)
		}
		var err error
		if params, err = sp.forward(hop.Token, hop.UpstreamTaskID, push); err != nil {
			c.failed(w, hop, key, isNew, parent, internalError(), OutcomeError)
			return
		}
	}
	method := MethodSend
	if stream {
		method = MethodStream
	}
	resp, rerr := c.p.upstreamRequest(ctx, c.ag, hop, c.trace, method, c.id, params, stream)
	if rerr != nil {
		c.failed(w, hop, key, isNew, parent, rerr, OutcomeUpstream)
		return
	}
	if stream && isEventStream(resp.Header) {
		c.pump(w, resp, hop, key, isNew, parent)
		return
	}
	res, rerr := c.p.decodeResponse(c.ag, resp)
	if rerr == nil && res.Error != nil {
		rerr = res.Error
	}
	if rerr != nil {
		c.failed(w, hop, key, isNew, parent, rerr, OutcomeUpstream)
		return
	}
	h, out, rerr := c.observe(hop, res.Result, c.method, isNew)
	if rerr != nil {
		c.failed(w, hop, key, isNew, parent, rerr, OutcomeUpstream)
		return
	}
	c.callEvent(h, OutcomeOK, nil, c.payload(isNew), nil)
	if err := c.ready(); err != nil {
		c.answer(w, stream, nil, ledgerUnavailable())
		return
	}
	c.notify()
	c.answer(w, stream, out, nil)
}

// upd adds to an update of the call's hop its token (a new hop's first
// update) and the settlement of the call's idempotency key.
func (c *call) upd(u Update) Update {
	u.Token, u.Settle = c.token, c.settle
	return u
}

// payload is what a call event commits: the request, unless the hop
// event of a new hop already committed its message.
func (c *call) payload(isNew bool) []byte {
	if isNew {
		return nil
	}
	return c.body
}

// answer writes a result or error, as JSON or as one server-sent event.
func (c *call) answer(w http.ResponseWriter, stream bool, result json.RawMessage, e *RPCError) {
	if stream && e == nil {
		sw := &sseWriter{w: w, rc: http.NewResponseController(w), trace: c.trace}
		sw.write(c.id, result, nil)
		return
	}
	writeRPC(w, http.StatusOK, c.id, result, e)
}

// failed ends a message the callee did not take: a new hop fails (its
// budget goes back to its parent, its key may be retried).
func (c *call) failed(w http.ResponseWriter, hop *Hop, key string, isNew bool, parent *Hop, e *RPCError, outcome string) {
	ctx := context.WithoutCancel(c.ctx)
	if isNew && hop.State == "" {
		// Only a hop still pending fails (one canceled meanwhile stays so).
		if h, prev, err := c.p.store.Update(ctx, c.caller.Tenant, hop.ID(), Update{State: StateFailed}); err == nil {
			hop = h
			c.stateEvent(h, prev, c.method, nil)
			if parent != nil {
				c.p.store.Refund(ctx, c.caller.Tenant, parent.ID(), hop.Claims.Budget)
			}
		}
	}
	c.p.store.Release(ctx, c.caller.Tenant, key, hop.ID())
	c.callEvent(hop, outcome, e, c.body, nil)
	if err := c.ready(); err != nil {
		e = ledgerUnavailable()
	}
	c.notify()
	writeRPC(w, http.StatusOK, c.id, nil, e)
}

// observe folds an agent's result (a Task, or a Message answering a
// message) into the hop: binds the agent's task id, moves the state
// (recording the change) and keeps the result as the caller gets it.
func (c *call) observe(hop *Hop, result json.RawMessage, via string, isNew bool) (*Hop, json.RawMessage, *RPCError) {
	head, err := decodeHead(result)
	if err != nil {
		return nil, nil, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q answered a result that is not an A2A object.", hop.Claims.Callee)
	}
	switch head.Kind {
	case KindTask:
		return c.observeTask(hop, &head, result, via)
	case KindMessage:
		if via != MethodSend && via != MethodStream {
			break
		}
		out, err := translate(result, hop.UpstreamTaskID, hop.ID(), false)
		if err != nil {
			return nil, nil, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q answered a malformed message.", hop.Claims.Callee)
		}
		u := Update{Result: out}
		if isNew && hop.State == "" {
			u.State = StateCompleted // a message ends the exchange
		}
		h, prev, err := c.p.store.Update(c.ctx, hop.Tenant(), hop.ID(), c.upd(u))
		if err != nil {
			return nil, nil, c.storeError(hop, err)
		}
		if u.State != "" && prev != h.State {
			c.stateEvent(h, prev, via, nil)
		}
		return h, out, nil
	}
	return nil, nil, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse,
		"Agent %q answered %s with a result of kind %q.", hop.Claims.Callee, via, truncate(head.Kind, 32))
}

func (c *call) observeTask(hop *Hop, head *resultHead, result json.RawMessage, via string) (*Hop, json.RawMessage, *RPCError) {
	callee := hop.Claims.Callee
	st := head.state()
	switch {
	case head.ID == "":
		return nil, nil, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q answered a task without an id.", callee)
	case !st.Valid():
		return nil, nil, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q answered a task in state %q.", callee, truncate(string(st), 32))
	case hop.UpstreamTaskID != "" && hop.UpstreamTaskID != head.ID:
		return nil, nil, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q answered for another task than %s.", callee, hop.ID())
	}
	out, err := translate(result, head.ID, hop.ID(), true)
	if err != nil {
		return nil, nil, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q answered a malformed task.", callee)
	}
	h, prev, err := c.p.store.Update(c.ctx, hop.Tenant(), hop.ID(), c.upd(Update{State: st, UpstreamTaskID: head.ID, ContextID: head.ContextID, Result: out}))
	if err != nil {
		return nil, nil, c.storeError(hop, err)
	}
	if prev != st {
		c.stateEvent(h, prev, via, head.statusPayload(head.ID, hop.ID()))
	}
	return h, out, nil
}

// storeError is the error of a failed store update of hop.
func (c *call) storeError(hop *Hop, err error) *RPCError {
	switch {
	case errors.Is(err, ErrInvalidTransition):
		cur, _ := c.p.store.Get(context.WithoutCancel(c.ctx), hop.Tenant(), hop.ID())
		from := hop.State
		if cur != nil {
			from = cur.State
		}
		return rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse,
			"Agent %q reported task %s going from %s to a state A2A does not allow after it.", hop.Claims.Callee, hop.ID(), stateName(from))
	case errors.Is(err, ErrConflict):
		return rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q answered for another task than %s.", hop.Claims.Callee, hop.ID())
	}
	c.p.log.Error("a2a: task store", "err", err)
	return internalError()
}

// pump passes a streamed answer through as its events arrive: each is
// checked, folded into the hop and written at once; the final one only
// once the ledger holds every event of the call.
func (c *call) pump(w http.ResponseWriter, resp *http.Response, hop *Hop, key string, isNew bool, parent *Hop) {
	defer gateway.DrainBody(resp.Body)
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), trace: c.trace}
	rd := gateway.NewSSEReader(resp.Body, int(c.p.cfg.MaxResponseBytes))
	snap := newSnapshot(hop.Result)
	got := false
	release := func() {
		if key != "" { // "": a resubscription holds no key
			c.p.store.Release(context.WithoutCancel(c.ctx), c.caller.Tenant, key, hop.ID())
		}
	}
	end := func(e *RPCError, outcome string) {
		if !got && isNew && hop.State == "" {
			c.failedSilently(hop, parent)
		}
		release()
		c.callEvent(hop, outcome, e, c.body, nil)
		if err := c.ready(); err != nil {
			e = ledgerUnavailable()
		}
		c.notify()
		sw.write(c.id, nil, e)
	}
	for final := false; !final; {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if c.ctx.Err() != nil {
				end(nil, OutcomeGone)
				return
			}
			end(rpcErr(CodeUpstreamUnavailable, ReasonUpstreamUnavailable, "Agent %q's stream was cut.", c.ag.Name), OutcomeUpstream)
			return
		}
		// ev.Data is rd's buffer, reused by the next event, and what is
		// parsed of it aliases it: the store copies what it keeps, and the
		// events that carry parts of it are published (encoded) before the
		// next read.
		res, rerr := parseResponse(c.ag, ev.Data)
		if rerr == nil && res.Error != nil {
			rerr = res.Error
		}
		if rerr != nil {
			end(rerr, OutcomeUpstream)
			return
		}
		h, out, fin, rerr := c.observeEvent(hop, res.Result, snap, isNew)
		if rerr != nil {
			end(rerr, OutcomeUpstream)
			return
		}
		hop, got, final = h, true, fin
		if final {
			if err := c.ready(); err != nil {
				c.callEvent(hop, OutcomeLedger, ledgerUnavailable(), c.body, nil)
				c.publish()
				sw.write(c.id, nil, ledgerUnavailable())
				return
			}
		} else {
			c.publish()
		}
		if werr := sw.write(c.id, out, nil); werr != nil {
			c.callEvent(hop, OutcomeGone, nil, c.body, nil)
			c.ready()
			c.notify()
			return
		}
	}
	ctx := context.WithoutCancel(c.ctx)
	if b := snap.bytes(); b != nil {
		if h, _, err := c.p.store.Update(ctx, hop.Tenant(), hop.ID(), c.upd(Update{Result: b})); err == nil {
			hop = h
		}
	}
	if !got {
		release()
	}
	c.callEvent(hop, OutcomeOK, nil, c.payload(isNew), map[string]any{"stream": true})
	if err := c.ready(); err != nil && !sw.started {
		sw.write(c.id, nil, ledgerUnavailable())
	}
	c.notify()
	if !sw.started {
		sw.write(c.id, nil, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q's stream ended without an event.", c.ag.Name))
	}
}

// failedSilently marks a new hop failed (its callee never answered) and
// refunds its parent; the caller records the call.
func (c *call) failedSilently(hop *Hop, parent *Hop) {
	ctx := context.WithoutCancel(c.ctx)
	if h, prev, err := c.p.store.Update(ctx, c.caller.Tenant, hop.ID(), Update{State: StateFailed}); err == nil {
		*hop = *h
		c.stateEvent(h, prev, c.method, nil)
		if parent != nil {
			c.p.store.Refund(ctx, c.caller.Tenant, parent.ID(), hop.Claims.Budget)
		}
	}
}

// observeEvent folds one streamed result into the hop and returns it as
// the caller gets it, and whether it ends the stream.
func (c *call) observeEvent(hop *Hop, result json.RawMessage, snap *snapshot, isNew bool) (*Hop, json.RawMessage, bool, *RPCError) {
	head, err := decodeHead(result)
	if err != nil {
		return nil, nil, false, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q streamed a result that is not an A2A object.", c.ag.Name)
	}
	switch head.Kind {
	case KindTask:
		h, out, rerr := c.observeTask(hop, &head, result, MethodStream)
		if rerr != nil {
			return nil, nil, false, rerr
		}
		snap.add(KindTask, out, h.ID(), h.ContextID)
		st := h.State
		return h, out, st.Terminal() || st.Interrupted(), nil
	case KindMessage:
		h, out, rerr := c.observe(hop, result, MethodStream, isNew)
		return h, out, true, rerr
	case KindStatusUpdate, KindArtifactUpdate:
	default:
		return nil, nil, false, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q streamed a result of kind %q.", c.ag.Name, truncate(head.Kind, 32))
	}
	up := head.TaskID
	switch {
	case up == "":
		return nil, nil, false, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q streamed a %s without taskId.", c.ag.Name, head.Kind)
	case hop.UpstreamTaskID != "" && hop.UpstreamTaskID != up:
		return nil, nil, false, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q streamed an event of another task than %s.", c.ag.Name, hop.ID())
	}
	out, err := translate(result, up, hop.ID(), false)
	if err != nil {
		return nil, nil, false, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q streamed a malformed %s.", c.ag.Name, head.Kind)
	}
	snap.add(head.Kind, out, hop.ID(), head.ContextID)
	if head.Kind == KindArtifactUpdate {
		if hop.UpstreamTaskID != "" {
			return hop, out, false, nil
		}
		h, _, err := c.p.store.Update(c.ctx, hop.Tenant(), hop.ID(), c.upd(Update{UpstreamTaskID: up, ContextID: head.ContextID}))
		if err != nil {
			return nil, nil, false, c.storeError(hop, err)
		}
		return h, out, false, nil
	}
	st := head.state()
	if !st.Valid() {
		return nil, nil, false, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q streamed state %q.", c.ag.Name, truncate(string(st), 32))
	}
	h, prev, err := c.p.store.Update(c.ctx, hop.Tenant(), hop.ID(), c.upd(Update{State: st, UpstreamTaskID: up, ContextID: head.ContextID, Result: snap.bytes()}))
	if err != nil {
		return nil, nil, false, c.storeError(hop, err)
	}
	if prev != st {
		c.stateEvent(h, prev, MethodStream, head.statusPayload(up, hop.ID()))
	}
	return h, out, head.Final || st.Terminal() || st.Interrupted(), nil
}

// taskParams are the params of tasks/get, tasks/cancel and the push
// config reads.
type taskParams struct {
	ID            string          `json:"id"`
	HistoryLength *int            `json:"historyLength,omitempty"`
	PushConfigID  string          `json:"pushNotificationConfigId,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
}

func (c *call) taskParams(w http.ResponseWriter, req Request) (*taskParams, *Hop, bool) {
	var q taskParams
	if isNull(req.Params) || json.Unmarshal(req.Params, &q) != nil || q.ID == "" {
		c.refuse(w, http.StatusOK, badParams(`params must be an object with the task's "id".`), c.ag.Name, nil)
		return nil, nil, false
	}
	hop, rerr := c.ownedHop(q.ID)
	if rerr != nil {
		c.refuse(w, http.StatusOK, rerr, c.ag.Name, nil)
		return nil, nil, false
	}
	c.useTrace(w, hop)
	return &q, hop, true
}

// get answers tasks/get: from the store for a finished task, else from
// the callee.
func (c *call) get(w http.ResponseWriter, req Request) {
	q, hop, ok := c.taskParams(w, req)
	if !ok {
		return
	}
	if (hop.State.Terminal() || hop.UpstreamTaskID == "") && hop.Result != nil {
		c.fromStore(w, hop, false)
		return
	}
	if hop.UpstreamTaskID == "" {
		c.notCreated(w, hop)
		return
	}
	params := map[string]any{"id": hop.UpstreamTaskID}
	if q.HistoryLength != nil {
		params["historyLength"] = *q.HistoryLength
	}
	out, rerr := c.onUpstream(hop, MethodGet, params)
	c.finish(w, hop, out, rerr)
}

// fromStore answers a call on hop with its result as the store holds it
// (as one event when stream).
func (c *call) fromStore(w http.ResponseWriter, hop *Hop, stream bool) {
	extra := map[string]any{"from_store": true}
	if stream {
		extra["stream"] = true
	}
	c.callEvent(hop, OutcomeOK, nil, nil, extra)
	if err := c.ready(); err != nil {
		writeRPC(w, http.StatusOK, c.id, nil, ledgerUnavailable())
		return
	}
	c.answer(w, stream, hop.Result, nil)
}

// notCreated refuses a call on hop's task, which its agent has not
// created yet (the event records why).
func (c *call) notCreated(w http.ResponseWriter, hop *Hop) {
	e := rpcErr(CodeInProgress, ReasonInProgress, "Task %s is not created by agent %q yet; retry later.", hop.ID(), c.ag.Name)
	c.callEvent(hop, OutcomeError, e, nil, nil)
	c.ready()
	writeRPC(w, http.StatusOK, c.id, nil, e)
}

// resubscribe answers tasks/resubscribe: the callee's stream of the task's
// updates, passed through as message/stream's are (task ids mapped, states
// folded into the hop, the call recorded). A task that has ended gets its
// last state from the store, as one event.
func (c *call) resubscribe(w http.ResponseWriter, req Request) {
	_, hop, ok := c.taskParams(w, req)
	if !ok {
		return
	}
	if hop.State.Terminal() && hop.Result != nil {
		c.fromStore(w, hop, true)
		return
	}
	if hop.UpstreamTaskID == "" {
		c.notCreated(w, hop)
		return
	}
	params, err := json.Marshal(map[string]any{"id": hop.UpstreamTaskID})
	if err != nil {
		writeRPC(w, http.StatusOK, c.id, nil, internalError())
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	resp, rerr := c.p.upstreamRequest(ctx, c.ag, hop, c.trace, MethodResubscribe, c.id, params, true)
	if rerr == nil && !isEventStream(resp.Header) {
		// An error (or an agent that does not stream): answered as JSON.
		var res *Response
		if res, rerr = c.p.decodeResponse(c.ag, resp); rerr == nil {
			rerr = res.Error
			if rerr == nil {
				rerr = rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q answered tasks/resubscribe without a stream.", c.ag.Name)
			}
		}
	}
	if rerr != nil {
		c.callEvent(hop, OutcomeUpstream, rerr, nil, nil)
		c.ready()
		writeRPC(w, http.StatusOK, c.id, nil, rerr)
		return
	}
	c.pump(w, resp, hop, "", false, nil)
}

// onUpstream calls method on hop's task at its callee and folds the Task
// it answers into the hop.
func (c *call) onUpstream(hop *Hop, method string, params map[string]any) (json.RawMessage, *RPCError) {
	ag := c.p.agents[hop.Claims.Callee]
	if ag == nil {
		return nil, internalError()
	}
	pb, err := json.Marshal(params)
	if err != nil {
		return nil, internalError()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), c.p.cfg.UpstreamTimeout)
	defer cancel()
	id := c.id
	if len(id) == 0 {
		id = json.RawMessage(`"aigw-` + randomHex(6) + `"`)
	}
	resp, rerr := c.p.upstreamRequest(ctx, ag, hop, c.trace, method, id, pb, false)
	if rerr != nil {
		return nil, rerr
	}
	res, rerr := c.p.decodeResponse(ag, resp)
	if rerr != nil {
		return nil, rerr
	}
	if res.Error != nil {
		return nil, res.Error
	}
	head, herr := decodeHead(res.Result)
	if herr != nil || head.Kind != KindTask {
		return nil, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q answered %s without a task.", ag.Name, method)
	}
	_, out, rerr := c.observeTask(hop, &head, res.Result, method)
	return out, rerr
}

// finish records a call on hop and answers it.
func (c *call) finish(w http.ResponseWriter, hop *Hop, out json.RawMessage, rerr *RPCError) {
	if cur, err := c.p.store.Get(context.WithoutCancel(c.ctx), hop.Tenant(), hop.ID()); err == nil {
		hop = cur
	}
	outcome := OutcomeOK
	if rerr != nil {
		outcome = OutcomeUpstream
	}
	c.callEvent(hop, outcome, rerr, nil, nil)
	if err := c.ready(); err != nil {
		writeRPC(w, http.StatusOK, c.id, nil, ledgerUnavailable())
		return
	}
	c.notify()
	writeRPC(w, http.StatusOK, c.id, out, rerr)
}

// cancel answers tasks/cancel: the callee cancels the task, then every
// task delegated under it is canceled too, before the answer.
func (c *call) cancel(w http.ResponseWriter, req Request) {
	_, hop, ok := c.taskParams(w, req)
	if !ok {
		return
	}
	if hop.State.Terminal() {
		e := rpcErr(CodeTaskNotCancelable, ReasonTaskNotCancelable, "Task %s is already %s.", hop.ID(), hop.State)
		c.callEvent(hop, OutcomeError, e, nil, nil)
		c.ready()
		writeRPC(w, http.StatusOK, c.id, nil, e)
		return
	}
	var out json.RawMessage
	var rerr *RPCError
	if hop.UpstreamTaskID == "" {
		out, rerr = c.cancelPending(hop, MethodCancel)
	} else {
		out, rerr = c.onUpstream(hop, MethodCancel, map[string]any{"id": hop.UpstreamTaskID})
	}
	if cur, err := c.p.store.Get(context.WithoutCancel(c.ctx), hop.Tenant(), hop.ID()); err == nil && cur.State == StateCanceled {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), c.p.cfg.UpstreamTimeout)
		c.propagate(ctx, cur, cur.ID(), 0)
		cancel()
	}
	c.finish(w, hop, out, rerr)
}

// cancelPending cancels a hop whose callee has not answered yet: only the
// gateway's record of it (its late answer will not move it).
func (c *call) cancelPending(hop *Hop, via string) (json.RawMessage, *RPCError) {
	task, _ := json.Marshal(map[string]any{"kind": KindTask, "id": hop.ID(), "contextId": hop.ContextID,
		"status": map[string]any{"state": StateCanceled, "timestamp": time.Now().UTC().Format(time.RFC3339Nano)}})
	h, prev, err := c.p.store.Update(context.WithoutCancel(c.ctx), hop.Tenant(), hop.ID(), Update{State: StateCanceled, Result: task})
	if err != nil {
		return nil, c.storeError(hop, err)
	}
	if prev != h.State {
		c.stateEvent(h, prev, via, nil)
	}
	return task, nil
}

// propagate cancels every unfinished task delegated under parent, depth
// first (cause is the hop whose cancellation started it).
func (c *call) propagate(ctx context.Context, parent *Hop, cause string, depth int) {
	if depth > maxChain {
		return
	}
	kids, err := c.p.store.Children(ctx, parent.Tenant(), parent.ID())
	if err != nil {
		c.p.log.Error("a2a: cancel propagation", "hop", parent.ID(), "err", err)
		return
	}
	for _, id := range kids {
		ch, err := c.p.store.Get(ctx, parent.Tenant(), id)
		if err != nil {
			c.p.log.Error("a2a: cancel propagation", "hop", id, "err", err)
			continue
		}
		if !ch.State.Terminal() {
			start := time.Now()
			var rerr *RPCError
			if ch.UpstreamTaskID == "" {
				_, rerr = c.cancelPending(ch, "cancel_propagation")
			} else {
				_, rerr = c.onUpstream(ch, MethodCancel, map[string]any{"id": ch.UpstreamTaskID})
			}
			if cur, err := c.p.store.Get(ctx, ch.Tenant(), ch.ID()); err == nil {
				ch = cur
			}
			outcome := OutcomeOK
			if rerr != nil {
				outcome = OutcomeUpstream
			}
			c.callEvent(ch, outcome, rerr, nil, map[string]any{"cause_hop_id": cause, "duration_us": time.Since(start).Microseconds()})
		}
		c.propagate(ctx, ch, cause, depth+1)
	}
}
