package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"aigw/gateway"
	"aigw/ledger"
)

// JSON-RPC error codes of the gateway (implementation-defined server
// errors, -32000 to -32099).
const (
	// CodeLedgerUnavailable: the audit ledger did not acknowledge the
	// request's event (fail-closed), so its answer is withheld; retry
	// later.
	CodeLedgerUnavailable = -32010
	// CodeUpstreamUnavailable: the upstream MCP server of the tool is not
	// connected now; retry later.
	CodeUpstreamUnavailable = -32011
	// CodeUpstreamFailed: the upstream MCP server did not answer the call.
	CodeUpstreamFailed = -32012
)

// KindMCP is the ledger kind of the events of MCP requests (other than
// calls to upstream tools, which are ledger.KindToolCall events).
const KindMCP = "mcp"

// Outcomes in events' outcome attribute.
const (
	OutcomeOK          = "ok"
	OutcomeError       = "error"        // a JSON-RPC error was answered
	OutcomeToolError   = "tool_error"   // the tool answered isError
	OutcomeDenied      = "denied"       // the tool policy refused the call
	OutcomeRateLimited = "rate_limited" // a rate limit refused the call
	OutcomeBlocked     = "blocked"      // the result was withheld (prompt injection)
	OutcomeUnavailable = "unavailable"  // the upstream is not connected
	OutcomeUnknownTool = "unknown_tool" // the upstream has no such tool
	OutcomeUpstream    = "upstream_error"
	OutcomeRefused     = "refused"  // authentication refused a known tenant's key
	OutcomeWithheld    = "withheld" // the ledger did not acknowledge; the answer was withheld
)

// Server serves MCP at one endpoint: the gateway's context features and
// the tools of the upstream MCP servers of the caller's tenant. It is an
// http.Handler (mount it at /mcp, every method), safe for concurrent use.
// Close ends its sessions and upstream connections.
type Server struct {
	cfg     Config
	log     *slog.Logger
	sdkLog  *slog.Logger // the SDK's: warnings and errors only
	impl    *sdk.Implementation
	handler http.Handler

	mu      sync.RWMutex
	tenants map[string]*tenant // live per-tenant servers (freeIdle frees them)
	relayID atomic.Uint64      // ids of the requests relayed to agents

	sessMu   sync.RWMutex
	sessions map[string]*session // initialized sessions, by id

	upstreams []*upstream
	byName    map[string]*upstream

	cancel context.CancelFunc
	wg     sync.WaitGroup

	ledgerFailures atomic.Int64
}

// New validates cfg and returns a Server. Its upstream connections run on
// goroutines that live until ctx ends or Close is called; upstreams that
// cannot be reached yet are retried in the background (their tools appear
// once connected).
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		sdkLog:   slog.New(minLevel{cfg.Logger.Handler(), slog.LevelWarn}),
		impl:     &sdk.Implementation{Name: "aigw", Title: "aigw AI gateway", Version: "1"},
		tenants:  make(map[string]*tenant),
		sessions: make(map[string]*session),
		byName:   make(map[string]*upstream),
	}
	for i := range cfg.Upstreams {
		u, err := newUpstream(s, cfg.Upstreams[i])
		if err != nil {
			return nil, fmt.Errorf("mcp: upstream %q: %w", cfg.Upstreams[i].Name, err)
		}
		s.upstreams = append(s.upstreams, u)
		s.byName[u.cfg.Name] = u
	}
	sh := sdk.NewStreamableHTTPHandler(s.serverFor, &sdk.StreamableHTTPOptions{
		// Responses as one JSON body: nothing of a call is streamed.
		JSONResponse: true,
		// No SessionTimeout: the gateway closes idle sessions itself (reap),
		// as it serves calls of upstream tools without the SDK (fastCall).
		// Every request carries the caller's gateway key: a page that
		// rebinds a name to localhost cannot know it.
		DisableLocalhostProtection: true,
		MaxRequestBodyBytes:        cfg.MaxBodyBytes,
		Logger:                     s.sdkLog,
	})
	s.handler = auth.RequireBearerToken(verifyToken, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(sh)
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.reap(ctx)
	}()
	for _, u := range s.upstreams {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			u.run(ctx)
		}()
	}
	return s, nil
}

// Close ends the agents' sessions and the upstream connections (stdio
// servers are asked to exit, then terminated), and waits for them.
func (s *Server) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// LedgerFailures counts events the ledger did not take or acknowledge.
func (s *Server) LedgerFailures() int64 { return s.ledgerFailures.Load() }

type callerKey struct{}

const callerExtra = "aigw.caller"

// ServeHTTP authenticates the request with its gateway key and serves it.
// A missing or refused key is answered 401 with an OpenAI-style error
// body, before anything else is read.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	secret, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		writeError(w, &gateway.Error{Status: http.StatusUnauthorized, Type: gateway.TypeInvalidRequest, Code: "invalid_api_key",
			Message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."})
		return
	}
	caller, err := s.cfg.Authenticate(r.Context(), secret)
	if err != nil {
		var ge *gateway.Error
		if errors.As(err, &ge) && caller.Tenant != "" && ledger.ValidLogName(caller.Tenant) {
			// A refused key of a known tenant: recorded in its log.
			s.recordRefusal(r, caller, ge)
		}
		if errors.As(err, &ge) && ge.Status != http.StatusUnauthorized && ge.Status != 0 {
			writeError(w, ge)
			return
		}
		writeError(w, &gateway.Error{Status: http.StatusUnauthorized, Type: gateway.TypeInvalidRequest, Code: "invalid_api_key",
			Message: "Incorrect API key provided."})
		return
	}
	if caller.Tenant == "" {
		s.log.Error("mcp: Authenticate returned a caller without a tenant")
		writeError(w, &gateway.Error{Status: http.StatusInternalServerError, Type: gateway.TypeServer, Message: "Internal error."})
		return
	}
	if agent := r.Header.Get("X-Aigw-Agent"); agent != "" {
		// The agent id goes into every event: refuse one the ledger could
		// not record.
		if len(agent) > 128 || ledger.CheckText("actor.agent_id", agent) != nil {
			writeError(w, &gateway.Error{Status: http.StatusBadRequest, Type: gateway.TypeInvalidRequest, Code: "invalid_agent",
				Message: "Invalid X-Aigw-Agent header: at most 128 bytes of printable UTF-8."})
			return
		}
		caller.AgentID = agent
	}
	if r.Method == http.MethodPost {
		if sess := s.sessionFor(r.Header.Get("Mcp-Session-Id")); sess != nil && sess.user == userOf(&caller) {
			// In use from now until the request ends, fast path or SDK.
			sess.busy.Add(1)
			sess.last.Store(time.Now().UnixNano())
			defer func() {
				sess.last.Store(time.Now().UnixNano())
				sess.busy.Add(-1)
			}()
			if s.fastCall(w, r, &caller, sess) {
				return
			}
		}
	}
	s.handler.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, &caller)))
}

// bearer returns the key of "Authorization: Bearer <key>", as the SDK's
// bearer-token middleware reads it.
func bearer(h string) (string, bool) {
	f := strings.Fields(h)
	if len(f) != 2 || !strings.EqualFold(f[0], "bearer") {
		return "", false
	}
	return f[1], true
}

// verifyToken hands the caller ServeHTTP authenticated to the SDK: its
// UserID binds each session to one tenant and key (the SDK refuses a
// session id presented by another), and the request handlers read the
// caller from TokenInfo.Extra.
func verifyToken(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
	c, ok := ctx.Value(callerKey{}).(*gateway.Caller)
	if !ok {
		return nil, auth.ErrInvalidToken
	}
	return &auth.TokenInfo{UserID: userOf(c), Extra: map[string]any{callerExtra: c}}, nil
}

func writeError(w http.ResponseWriter, e *gateway.Error) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="aigw"`)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	type body struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	b := body{Message: e.Message, Type: e.Type}
	if e.Param != "" {
		b.Param = &e.Param
	}
	if e.Code != "" {
		b.Code = &e.Code
	}
	out, _ := json.Marshal(map[string]body{"error": b})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	w.Write(append(out, '\n'))
}

// tenant is the MCP server of one tenant, made when a session of the
// tenant begins and freed once the tenant has had no session for
// TenantIdleTimeout.
type tenant struct {
	srv *sdk.Server
	// pins counts the requests that may be connecting a new session to
	// srv now (from serverFor to the end of the request): a pinned tenant
	// is never freed, so no session is connected to a freed server.
	pins atomic.Int32
	// last is when it was last seen in use (unix nanoseconds): when its
	// last pin went, or when freeIdle last saw it busy.
	last atomic.Int64
}

// serverFor returns the MCP server of the request's tenant (the SDK asks
// for it when a session begins), pinned until the request ends.
func (s *Server) serverFor(r *http.Request) *sdk.Server {
	c, ok := r.Context().Value(callerKey{}).(*gateway.Caller)
	if !ok {
		return nil
	}
	t := s.tenantServer(c.Tenant)
	context.AfterFunc(r.Context(), func() {
		t.last.Store(time.Now().UnixNano())
		t.pins.Add(-1)
	})
	return t.srv
}

// tenantServer returns the tenant's MCP server, pinned (the caller
// unpins it), made on first use with the context features and the tools
// of the tenant's upstreams.
func (s *Server) tenantServer(name string) *tenant {
	s.mu.RLock()
	t := s.tenants[name]
	if t != nil {
		t.pins.Add(1) // under s.mu: freeIdle, which holds it, sees the pin
	}
	s.mu.RUnlock()
	if t != nil {
		return t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t = s.tenants[name]; t == nil {
		srv := sdk.NewServer(s.impl, &sdk.ServerOptions{
			Logger:       s.sdkLog,
			Instructions: instructions,
			Capabilities: &sdk.ServerCapabilities{Tools: &sdk.ToolCapabilities{ListChanged: true}},
		})
		srv.AddReceivingMiddleware(s.middleware)
		s.addContext(srv)
		for _, u := range s.upstreams {
			if u.tenants[name] {
				u.publishTo(srv, nil)
			}
		}
		t = &tenant{srv: srv}
		s.tenants[name] = t
	}
	t.pins.Add(1)
	return t
}

// freeIdle frees the servers of the tenants that have had no session
// (and no request that may begin one) for TenantIdleTimeout, or, with
// force, now. A tenant's next session makes a new server.
func (s *Server) freeIdle(now time.Time, force bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, t := range s.tenants {
		busy := t.pins.Load() > 0
		if !busy {
			for range t.srv.Sessions() {
				busy = true
				break
			}
		}
		switch {
		case busy:
			t.last.Store(now.UnixNano())
		case force || now.Sub(time.Unix(0, t.last.Load())) >= s.cfg.TenantIdleTimeout:
			delete(s.tenants, name)
			s.log.Debug("mcp: idle tenant server freed", "tenant", name)
		}
	}
}

const instructions = "This is the aigw AI gateway. Its aigw_* tools and aigw:// resources describe what you may do through it " +
	"(models, guardrails, budgets, usage) and prove your ledger events; tools named <server>__<tool> are those of " +
	"upstream MCP servers, reached through the gateway under its policy. Every request is recorded in your tenant's audit ledger."

// request is an MCP request in flight.
type request struct {
	caller  *gateway.Caller
	traceID string
	start   time.Time
}

type requestKey struct{}

func requestOf(ctx context.Context) *request {
	rq, _ := ctx.Value(requestKey{}).(*request)
	return rq
}

func callerOf(req sdk.Request) *gateway.Caller {
	ex := req.GetExtra()
	if ex == nil || ex.TokenInfo == nil {
		return nil
	}
	c, _ := ex.TokenInfo.Extra[callerExtra].(*gateway.Caller)
	return c
}

// middleware records every request the server handles as a ledger event
// of the caller's tenant, answering only once the ledger has it
// (fail-closed), and routes calls of upstream tools to the gateway.
func (s *Server) middleware(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		if strings.HasPrefix(method, "notifications/") {
			return next(ctx, method, req)
		}
		c := callerOf(req)
		if c == nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "unauthenticated request"}
		}
		rq := &request{caller: c, start: time.Now()}
		if ex := req.GetExtra(); ex != nil && ex.Header != nil {
			rq.traceID = gateway.TraceIDFrom(ex.Header.Get("traceparent"))
		}
		if rq.traceID == "" {
			rq.traceID = gateway.NewTraceID()
		}
		ctx = context.WithValue(ctx, requestKey{}, rq)
		if ct, ok := req.(*sdk.CallToolRequest); ok && ct.Params != nil {
			if server, tool, ok := strings.Cut(ct.Params.Name, "__"); ok {
				if u := s.byName[server]; u != nil && u.tenants[c.Tenant] {
					return s.callUpstream(ctx, rq, u, tool, ct)
				}
			}
		}
		res, err := next(ctx, method, req)
		if ss, ok := req.GetSession().(*sdk.ServerSession); ok && method == "initialize" && err == nil {
			s.addSession(c, ss)
		}
		attrs := map[string]any{"method": method, "outcome": OutcomeOK, "duration_us": time.Since(rq.start).Microseconds()}
		if name := nameOf(req); name != "" {
			attrs["name"] = truncate(name, 256)
		}
		if ir, ok := req.(*sdk.InitializeRequest); ok && ir.Params != nil && ir.Params.ClientInfo != nil {
			attrs["client"] = truncate(ir.Params.ClientInfo.Name+"/"+ir.Params.ClientInfo.Version, 128)
		}
		switch {
		case err != nil:
			attrs["outcome"] = OutcomeError
			attrs["error"] = truncate(errorMessage(err), 256)
		case isToolError(res):
			attrs["outcome"] = OutcomeToolError
		}
		if lerr := s.record(ctx, rq, KindMCP, attrs, nil); lerr != nil {
			return nil, lerr
		}
		return res, err
	}
}

func isToolError(res sdk.Result) bool {
	r, ok := res.(*sdk.CallToolResult)
	return ok && r != nil && r.IsError
}

// nameOf returns the tool, resource or prompt a request names.
func nameOf(req sdk.Request) string {
	switch r := req.(type) {
	case *sdk.CallToolRequest:
		if r.Params != nil {
			return r.Params.Name
		}
	case *sdk.ReadResourceRequest:
		if r.Params != nil {
			return r.Params.URI
		}
	case *sdk.GetPromptRequest:
		if r.Params != nil {
			return r.Params.Name
		}
	case *sdk.SubscribeRequest:
		if r.Params != nil {
			return r.Params.URI
		}
	}
	return ""
}

func errorMessage(err error) string {
	var je *jsonrpc.Error
	if errors.As(err, &je) {
		return je.Message
	}
	return err.Error()
}

// ledgerUnavailable is the answer withheld for want of the ledger.
var ledgerUnavailable = &jsonrpc.Error{Code: CodeLedgerUnavailable,
	Message: "the audit ledger cannot record this request now; its answer is withheld; retry later"}

// record publishes one event of the request and, fail-closed, waits for
// the ledger's acknowledgement; the error is what the agent gets instead
// of the answer.
func (s *Server) record(ctx context.Context, rq *request, kind string, attrs map[string]any, payload []byte) *jsonrpc.Error {
	b := gateway.Batch{Recorder: s.cfg.Recorder, FailOpen: s.cfg.FailOpen, Timeout: s.cfg.LedgerTimeout, Failures: &s.ledgerFailures,
		Log: s.log, Tenant: rq.caller.Tenant, TraceID: rq.traceID}
	b.Add(s.event(rq, kind, attrs), payload)
	if err := b.Ready(ctx); err != nil {
		s.log.Warn("mcp: ledger did not acknowledge; answer withheld", "tenant", rq.caller.Tenant, "trace_id", rq.traceID, "kind", kind, "err", err)
		s.withheld(rq, attrs)
		return ledgerUnavailable
	}
	return nil
}

func (s *Server) event(rq *request, kind string, attrs map[string]any) *ledger.Event {
	return &ledger.Event{
		ID: ledger.NewEventID(), Tenant: rq.caller.Tenant, Kind: kind, Time: time.Now(),
		Actor:   ledger.Actor{KeyID: rq.caller.KeyID, AgentID: rq.caller.AgentID},
		TraceID: rq.traceID, Policy: s.cfg.Policy, Attrs: attrs,
	}
}

// withheld records, best effort, that an answer was withheld: if the
// unacknowledged event reaches the ledger after all, the trace says the
// agent did not get the answer.
func (s *Server) withheld(rq *request, attrs map[string]any) {
	w := map[string]any{"outcome": OutcomeWithheld, "error": "answer withheld: the ledger did not acknowledge the request's event"}
	for _, k := range []string{"method", "name", "server", "tool"} {
		if v, ok := attrs[k]; ok {
			w[k] = v
		}
	}
	if _, ok := w["method"]; !ok {
		w["method"] = "tools/call"
	}
	if _, err := s.cfg.Recorder.Publish([]*ledger.Event{s.event(rq, KindMCP, w)}, nil); err != nil {
		s.ledgerFailures.Add(1)
	}
}

// recordRefusal records, best effort, a refused key of a known tenant.
func (s *Server) recordRefusal(r *http.Request, caller gateway.Caller, ge *gateway.Error) {
	rq := &request{caller: &caller, traceID: gateway.TraceIDFrom(r.Header.Get("traceparent"))}
	if rq.traceID == "" {
		rq.traceID = gateway.NewTraceID()
	}
	attrs := map[string]any{"method": "authenticate", "outcome": OutcomeRefused, "duration_us": int64(0), "error": truncate(ge.Message, 256)}
	if _, err := s.cfg.Recorder.Publish([]*ledger.Event{s.event(rq, KindMCP, attrs)}, nil); err != nil {
		s.ledgerFailures.Add(1)
		s.log.Warn("mcp: ledger publish failed", "tenant", caller.Tenant, "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// minLevel drops records below a level (the SDK logs every session at
// info).
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
