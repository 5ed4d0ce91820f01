package a2a

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"aigw/gateway"
	"aigw/gateway/webhook"
)

// PushEventType is the type of the webhooks the gateway sends a caller
// when one of its tasks changes state; their data is the Task.
const PushEventType = "a2a.task.status"

// checkPush vets a caller's webhook: an http(s) URL the proxy may call,
// and a token that can sign (the Standard Webhooks secret). It assigns an
// id when there is none.
func (p *Proxy) checkPush(cfg *PushNotificationConfig) *RPCError {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return badParams("pushNotificationConfig.url must be an http(s) URL.")
	}
	if p.cfg.PushURLAllowed != nil && !p.cfg.PushURLAllowed(u) {
		return rpcErr(CodeInvalidParams, ReasonNotAllowed, "Push notifications to host %q are not allowed by the gateway.", truncate(u.Hostname(), 100))
	}
	if cfg.Token == "" {
		return badParams("pushNotificationConfig.token is required: it is the Standard Webhooks secret the gateway signs notifications with (whsec_<base64>, or a string of at least %d bytes).", webhook.MinSecretBytes)
	}
	if err := (webhook.Config{URL: cfg.URL, Secret: cfg.Token}).Validate(); err != nil {
		return badParams("pushNotificationConfig.token cannot sign notifications: use whsec_<base64> or a string of at least %d bytes.", webhook.MinSecretBytes)
	}
	if len(cfg.ID) > 128 {
		return badParams("pushNotificationConfig.id is longer than 128 characters.")
	}
	if cfg.ID == "" {
		cfg.ID = randomHex(8)
	}
	if cfg.Authentication != nil {
		// The gateway signs its notifications: it keeps no credentials.
		cfg.Authentication = &PushAuthentication{Schemes: cfg.Authentication.Schemes}
	}
	return nil
}

// redacted is a push config as the caller is shown it: without its
// secrets.
func redacted(cfg *PushNotificationConfig) PushNotificationConfig {
	out := PushNotificationConfig{ID: cfg.ID, URL: cfg.URL}
	if a := cfg.Authentication; a != nil {
		out.Authentication = &PushAuthentication{Schemes: a.Schemes}
	}
	return out
}

// pushSet answers tasks/pushNotificationConfig/set: the gateway keeps
// the caller's webhook and asks the callee (when it can push) to notify
// the gateway instead.
func (c *call) pushSet(w http.ResponseWriter, req Request) {
	var q TaskPushNotificationConfig
	if isNull(req.Params) || json.Unmarshal(req.Params, &q) != nil || q.TaskID == "" {
		c.refuse(w, http.StatusOK, badParams(`params must be a TaskPushNotificationConfig: {"taskId", "pushNotificationConfig": {"url", "token"}}.`), c.ag.Name, nil)
		return
	}
	hop, rerr := c.ownedHop(q.TaskID)
	if rerr != nil {
		c.refuse(w, http.StatusOK, rerr, c.ag.Name, nil)
		return
	}
	c.useTrace(w, hop)
	cfg := q.PushNotificationConfig
	if rerr := c.p.checkPush(&cfg); rerr != nil {
		c.callEvent(hop, OutcomeError, rerr, nil, nil)
		c.ready()
		writeRPC(w, http.StatusOK, c.id, nil, rerr)
		return
	}
	h, _, err := c.p.store.Update(c.ctx, hop.Tenant(), hop.ID(), Update{Push: &cfg})
	if err != nil {
		writeRPC(w, http.StatusOK, c.id, nil, c.storeError(hop, err))
		return
	}
	upstream := "none"
	if h.UpstreamTaskID != "" && !h.State.Terminal() {
		if up := c.p.upstreamPush(c.ctx, c.ag, h); up != nil {
			params, _ := json.Marshal(TaskPushNotificationConfig{TaskID: h.UpstreamTaskID, PushNotificationConfig: *up})
			upstream = "ok"
			ctx, cancel := context.WithTimeout(c.ctx, c.p.cfg.UpstreamTimeout)
			resp, rerr := c.p.upstreamRequest(ctx, c.ag, h, c.trace, MethodPushSet, c.id, params, false)
			if rerr == nil {
				var res *Response
				res, rerr = c.p.decodeResponse(c.ag, resp)
				if rerr == nil && res.Error != nil {
					rerr = res.Error
				}
			}
			cancel()
			if rerr != nil {
				upstream = "error"
				c.p.log.Warn("a2a: agent refused the gateway's push config", "agent", c.ag.Name, "err", rerr)
			}
		}
	}
	c.callEvent(h, OutcomeOK, nil, nil, map[string]any{"push_host": remoteHost(cfg.URL), "push_config_id": cfg.ID, "upstream_push": upstream})
	if err := c.ready(); err != nil {
		writeRPC(w, http.StatusOK, c.id, nil, ledgerUnavailable())
		return
	}
	out, _ := json.Marshal(TaskPushNotificationConfig{TaskID: h.ID(), PushNotificationConfig: redacted(&cfg)})
	writeRPC(w, http.StatusOK, c.id, out, nil)
}

// pushRead answers tasks/pushNotificationConfig/get, list and delete.
func (c *call) pushRead(w http.ResponseWriter, req Request) {
	q, hop, ok := c.taskParams(w, req)
	if !ok {
		return
	}
	var out json.RawMessage
	var rerr *RPCError
	match := hop.Push != nil && (q.PushConfigID == "" || q.PushConfigID == hop.Push.ID)
	switch req.Method {
	case MethodPushGet:
		if !match {
			rerr = badParams("task %s has no push notification config%s.", hop.ID(), idSuffix(q.PushConfigID))
			break
		}
		out, _ = json.Marshal(TaskPushNotificationConfig{TaskID: hop.ID(), PushNotificationConfig: redacted(hop.Push)})
	case MethodPushList:
		list := []TaskPushNotificationConfig{}
		if hop.Push != nil {
			list = append(list, TaskPushNotificationConfig{TaskID: hop.ID(), PushNotificationConfig: redacted(hop.Push)})
		}
		out, _ = json.Marshal(list)
	case MethodPushDelete:
		if q.PushConfigID == "" || !match {
			rerr = badParams("task %s has no push notification config%s.", hop.ID(), idSuffix(q.PushConfigID))
			break
		}
		h, _, err := c.p.store.Update(c.ctx, hop.Tenant(), hop.ID(), Update{ClearPush: true})
		if err != nil {
			rerr = c.storeError(hop, err)
			break
		}
		hop, out = h, json.RawMessage("null")
	}
	outcome := OutcomeOK
	if rerr != nil {
		outcome = OutcomeError
	}
	c.callEvent(hop, outcome, rerr, nil, nil)
	if err := c.ready(); err != nil {
		writeRPC(w, http.StatusOK, c.id, nil, ledgerUnavailable())
		return
	}
	writeRPC(w, http.StatusOK, c.id, out, rerr)
}

func idSuffix(id string) string {
	if id == "" {
		return ""
	}
	return " " + truncate(id, 64)
}

// notify sends the caller's webhook every state change the call saw.
func (c *call) notify() {
	c.mu.Lock()
	changes := c.changes
	c.changes = nil
	c.mu.Unlock()
	for _, ch := range changes {
		if ch.hop.Push != nil {
			c.p.push(ch.hop, ch.eventID)
		}
	}
}

// push queues a webhook of hop's state for its caller.
func (p *Proxy) push(h *Hop, eventID string) {
	s, err := p.sender(h.Tenant(), h.Push)
	if err != nil {
		p.log.Warn("a2a: push notification not sent", "hop", h.ID(), "err", err)
		return
	}
	data := h.Result
	if data == nil || !isTask(data) {
		data, _ = json.Marshal(map[string]any{"kind": KindTask, "id": h.ID(), "contextId": h.ContextID, "status": map[string]any{"state": h.State}})
	}
	if err := s.Send(context.Background(), h.ID()+"_"+eventID, PushEventType, data); err != nil {
		p.log.Warn("a2a: push notification not queued", "hop", h.ID(), "err", err)
	}
}

func isTask(b json.RawMessage) bool {
	var h resultHead
	return json.Unmarshal(b, &h) == nil && h.Kind == KindTask
}

// sender returns the webhook sender of a tenant's endpoint and secret,
// making it (and evicting the oldest one over the limit) if needed.
func (p *Proxy) sender(tenant string, cfg *PushNotificationConfig) (*webhook.Sender, error) {
	sum := sha256.Sum256([]byte(cfg.Token))
	key := tenant + "\x00" + cfg.URL + "\x00" + hex.EncodeToString(sum[:])
	p.pushMu.Lock()
	defer p.pushMu.Unlock()
	if p.closed {
		return nil, webhook.ErrClosed
	}
	if s := p.senders[key]; s != nil {
		return s, nil
	}
	s, err := webhook.New(webhook.Config{
		URL: cfg.URL, Secret: cfg.Token, Client: p.cfg.WebhookClient, Concurrency: 1, Logger: p.log,
		OnResult: func(r webhook.Result) { p.pushed(tenant, r) },
	})
	if err != nil {
		return nil, err
	}
	for len(p.order) >= p.cfg.MaxPushSenders {
		old := p.order[0]
		p.order = p.order[1:]
		if os := p.senders[old]; os != nil {
			delete(p.senders, old)
			p.bg.Add(1)
			go func() {
				defer p.bg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				os.Close(ctx)
			}()
		}
	}
	p.senders[key] = s
	p.order = append(p.order, key)
	return s, nil
}

// pushed records a push notification's outcome in its hop's tenant log.
func (p *Proxy) pushed(tenant string, r webhook.Result) {
	hopID, eventID, _ := strings.Cut(r.ID, "_")
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.LedgerTimeout)
	defer cancel()
	hop, err := p.store.Get(ctx, tenant, hopID)
	if err != nil {
		p.log.Warn("a2a: push notification of an unknown hop", "hop", hopID, "err", err)
		return
	}
	c := &call{p: p, ctx: ctx, caller: gateway.Caller{Tenant: tenant}, method: "push", start: time.Now(), trace: hop.Claims.TraceID}
	attrs := hopAttrs(&hop.Claims, EventPush, "push")
	attrs.set("state_event_id", eventID)
	attrs.set("attempts", r.Attempts)
	attrs.set("status", r.Status)
	attrs.set("push_host", remoteHost(hop.pushURL()))
	if r.Err != nil {
		attrs.set("outcome", "failed")
		attrs.set("error", truncate(r.Err.Error(), 256))
	} else {
		attrs.set("outcome", "delivered")
	}
	c.emit(attrs, nil)
	c.ready()
}

func (h *Hop) pushURL() string {
	if h.Push == nil {
		return ""
	}
	return h.Push.URL
}

// servePushCallback takes an agent's push notification for a hop (a Task
// or a TaskStatusUpdateEvent, bare or as a JSON-RPC response), checks its
// token, records the change and passes it on to the caller's webhook.
func (p *Proxy) servePushCallback(w http.ResponseWriter, r *http.Request, name, hopID string) {
	ag := p.agents[name]
	if ag == nil {
		http.NotFound(w, r)
		return
	}
	hop, err := p.store.Get(r.Context(), ag.Tenant, hopID)
	if err != nil || hop.Claims.Callee != name || hop.CallbackToken == "" {
		http.NotFound(w, r)
		return
	}
	tok := r.Header.Get(HeaderNotificationToken)
	if tok == "" {
		tok, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(hop.CallbackToken)) != 1 {
		http.Error(w, "bad notification token", http.StatusUnauthorized)
		return
	}
	body, err := readLimited(r.Body, p.cfg.MaxResponseBytes)
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	var wrapped struct {
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal(body, &wrapped) == nil && !isNull(wrapped.Result) {
		body = wrapped.Result
	}
	c := &call{p: p, ctx: r.Context(), ag: ag, caller: gateway.Caller{Tenant: ag.Tenant, AgentID: ag.Name},
		method: "push_callback", start: time.Now(), trace: hop.Claims.TraceID}
	var head resultHead
	var rerr *RPCError
	switch {
	case json.Unmarshal(body, &head) != nil:
		rerr = rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Not an A2A task or status update.")
	case head.Kind == KindTask:
		_, _, rerr = c.observeTask(hop, &head, body, "push_callback")
	case head.Kind == KindStatusUpdate:
		rerr = c.observeStatus(hop, &head, body)
	default:
		rerr = rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "A push notification carries a task or a status update, not %q.", truncate(head.Kind, 32))
	}
	cur, err := p.store.Get(context.WithoutCancel(r.Context()), hop.Tenant(), hop.ID())
	if err == nil {
		if cur.State == StateCanceled && hop.State != StateCanceled {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), p.cfg.UpstreamTimeout)
			c.propagate(ctx, cur, cur.ID(), 0)
			cancel()
		}
		hop = cur
	}
	outcome := OutcomeOK
	if rerr != nil {
		outcome = OutcomeError
	}
	c.callEvent(hop, outcome, rerr, body, nil)
	if err := c.ready(); err != nil {
		http.Error(w, "the audit ledger cannot record this notification now", http.StatusServiceUnavailable)
		return
	}
	c.notify()
	if rerr != nil {
		http.Error(w, rerr.Message, http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// observeStatus folds a pushed status update into the hop.
func (c *call) observeStatus(hop *Hop, head *resultHead, body json.RawMessage) *RPCError {
	st := head.state()
	switch {
	case !st.Valid():
		return rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Status update in state %q.", truncate(string(st), 32))
	case hop.UpstreamTaskID != "" && head.TaskID != hop.UpstreamTaskID:
		return rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Status update of another task.")
	}
	out, err := translate(body, head.TaskID, hop.ID(), false)
	if err != nil {
		return rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Malformed status update.")
	}
	snap := newSnapshot(hop.Result)
	snap.add(KindStatusUpdate, out, hop.ID(), head.ContextID)
	h, prev, err := c.p.store.Update(c.ctx, hop.Tenant(), hop.ID(), Update{State: st, UpstreamTaskID: head.TaskID, Result: snap.bytes()})
	if err != nil {
		if errors.Is(err, ErrInvalidTransition) || errors.Is(err, ErrConflict) {
			return c.storeError(hop, err)
		}
		return internalError()
	}
	if prev != st {
		c.stateEvent(h, prev, "push_callback", head.statusPayload(head.TaskID, hop.ID()))
	}
	return nil
}
