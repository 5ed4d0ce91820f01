package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"aigw/gateway"
	"aigw/gateway/guard/limits"
	"aigw/gateway/guard/tools"
)

// upstreamProtocol is the protocol version the gateway asks upstreams
// for: the newest of the initialize handshake, which every server speaks
// and whose sessions can be pinged (a dead upstream is noticed).
const upstreamProtocol = "2025-11-25"

// upstreamLogLevel is the level of the log messages the gateway asks
// streamable HTTP upstreams for (and relays to the agent of the call they
// are about).
const upstreamLogLevel = "info"

// UpstreamStatus is the state of an upstream connection.
type UpstreamStatus struct {
	Name      string
	Connected bool
	// Tools is the number of tools exposed (those the policy allows by
	// name, whose schema and description pass).
	Tools int
	// Since is when the connection last went up or down.
	Since time.Time
	// Reconnects counts connections after the first.
	Reconnects int
	// LastError is why the last connection ended or failed ("" for none).
	LastError string
}

// Upstreams returns the state of every upstream connection.
func (s *Server) Upstreams() []UpstreamStatus {
	out := make([]UpstreamStatus, 0, len(s.upstreams))
	for _, u := range s.upstreams {
		u.mu.RLock()
		out = append(out, u.status)
		u.mu.RUnlock()
	}
	return out
}

// upstream is the gateway's connection to one upstream MCP server.
type upstream struct {
	s       *Server
	cfg     Upstream
	tenants map[string]bool
	policy  *tools.Policy
	limiter *limits.Memory // nil: no RateLimit
	block   bool
	timeout time.Duration
	client  *sdk.Client
	http    *http.Client // the SDK's: adds the headers
	direct  *http.Client // the gateway's calls, which set them
	scratch *sdk.Server  // checks that a tool can be served
	refresh chan struct{}
	seq     atomic.Uint64 // ids and progress tokens of the calls forwarded
	// progress relays the progress of stdio calls, by the upstream's
	// progress token.
	progress sync.Map

	mu      sync.RWMutex
	session *sdk.ClientSession // nil while down
	tools   map[string]*upTool // by the upstream's name
	listed  []string           // namespaced names of the exposed tools
	status  UpstreamStatus
}

// upTool is a tool of an upstream.
type upTool struct {
	name string // as the upstream names it
	full string // "<server>__<name>"
	tool *sdk.Tool
	decl []gateway.Tool // for the policy: the name and inputSchema
	// hidden says why the tool is not exposed ("" when it is): the policy
	// denies it by name, or its description looks like an injection.
	hidden string
}

func newUpstream(s *Server, cfg Upstream) (*upstream, error) {
	tc := cfg.Tools
	tc.ValidateDeclared = true
	p, err := tools.New(tc)
	if err != nil {
		return nil, err
	}
	u := &upstream{
		s: s, cfg: cfg, policy: p, tenants: make(map[string]bool, len(cfg.Tenants)),
		block: cfg.Injection != InjectionFlag, timeout: cfg.CallTimeout, refresh: make(chan struct{}, 1),
		status: UpstreamStatus{Name: cfg.Name, Since: time.Now()},
	}
	if u.timeout == 0 {
		u.timeout = s.cfg.CallTimeout
	}
	for _, t := range cfg.Tenants {
		u.tenants[t] = true
	}
	if rl := cfg.RateLimit; rl.RPM > 0 || rl.KeyRPM > 0 {
		var rules []limits.Rule
		if rl.RPM > 0 {
			rules = append(rules, limits.Rule{Scope: limits.ScopeTenant, RPM: rl.RPM})
		}
		if rl.KeyRPM > 0 {
			rules = append(rules, limits.Rule{Scope: limits.ScopeKey, RPM: rl.KeyRPM})
		}
		if u.limiter, err = limits.NewMemory(rules); err != nil {
			return nil, err
		}
	}
	// Over streamable HTTP, the requests an upstream makes on a call's
	// event stream are relayed to the call's agent (see relay): the
	// gateway declares what agents may support. Over stdio nothing ties a
	// request to a call: it declares nothing.
	caps := &sdk.ClientCapabilities{}
	if cfg.URL != "" {
		caps = &sdk.ClientCapabilities{RootsV2: &sdk.RootCapabilities{}, Sampling: &sdk.SamplingCapabilities{},
			Elicitation: &sdk.ElicitationCapabilities{Form: &sdk.FormElicitationCapabilities{}, URL: &sdk.URLElicitationCapabilities{}}}
	}
	u.client = sdk.NewClient(&sdk.Implementation{Name: "aigw", Version: "1"}, &sdk.ClientOptions{
		Logger:       s.sdkLog.With("upstream", cfg.Name),
		KeepAlive:    s.cfg.KeepAlive,
		Capabilities: caps,
		ToolListChangedHandler: func(context.Context, *sdk.ToolListChangedRequest) {
			select {
			case u.refresh <- struct{}{}:
			default:
			}
		},
		ProgressNotificationHandler: u.progressTo,
	})
	u.client.AddReceivingMiddleware(refuseOutsideCall)
	u.scratch = sdk.NewServer(&sdk.Implementation{Name: "aigw-check", Version: "1"}, &sdk.ServerOptions{Logger: slog.New(slog.DiscardHandler)})
	if cfg.URL != "" {
		u.http = &http.Client{Transport: &upstreamTransport{base: s.cfg.HTTPClient.Transport, headers: cfg.Headers},
			Jar: s.cfg.HTTPClient.Jar, CheckRedirect: s.cfg.HTTPClient.CheckRedirect}
		u.direct = s.cfg.HTTPClient
	}
	return u, nil
}

// upstreamTransport adds an upstream's headers to the SDK's requests.
type upstreamTransport struct {
	base    http.RoundTripper
	headers map[string]string
}

// traceKey carries the traceparent of a forwarded call.
type traceKey struct{}

func (t *upstreamTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(t.headers) > 0 {
		r = r.Clone(r.Context())
		for k, v := range t.headers {
			r.Header.Set(k, v)
		}
	}
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// run keeps the upstream connected until ctx ends: connect, list the
// tools and expose them, wait for the session to end, withdraw the tools,
// and try again after a bounded backoff.
func (u *upstream) run(ctx context.Context) {
	log := u.s.log.With("upstream", u.cfg.Name)
	delay := u.s.cfg.ReconnectMin
	connected := false
	for {
		cs, err := u.connect(ctx)
		var ts map[string]*upTool
		if err == nil {
			if ts, err = u.loadTools(ctx, cs); err != nil {
				cs.Close()
			}
		}
		if err == nil {
			up := time.Now()
			u.setState(cs, ts, nil, connected)
			connected = true
			log.Info("mcp upstream connected", "tools", len(u.exposed()))
			err = u.serve(ctx, cs)
			u.setState(nil, nil, err, false)
			if ctx.Err() != nil {
				return
			}
			log.Warn("mcp upstream disconnected; its tools are withdrawn from tools/list", "tools", len(ts), "err", u.errString(err))
			if time.Since(up) > u.s.cfg.ReconnectMax {
				delay = u.s.cfg.ReconnectMin
			}
		} else {
			if ctx.Err() != nil {
				return
			}
			u.mu.Lock()
			u.status.LastError = u.errString(err)
			u.mu.Unlock()
			log.Warn("mcp upstream unreachable", "err", u.errString(err), "retry_in", delay)
		}
		wait := delay/2 + rand.N(delay/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		delay = min(delay*2, u.s.cfg.ReconnectMax)
	}
}

// serve waits for the session to end (or ctx), refreshing the tools when
// the upstream says they changed.
func (u *upstream) serve(ctx context.Context, cs *sdk.ClientSession) error {
	done := make(chan error, 1)
	go func() { done <- cs.Wait() }()
	for {
		select {
		case <-ctx.Done():
			cs.Close()
			<-done
			return ctx.Err()
		case err := <-done:
			if err == nil {
				err = errors.New("session ended")
			}
			return err
		case <-u.refresh:
			ts, err := u.loadTools(ctx, cs)
			if err != nil {
				u.s.log.Warn("mcp upstream: reloading tools failed; reconnecting", "upstream", u.cfg.Name, "err", u.errString(err))
				cs.Close()
				continue
			}
			u.setState(cs, ts, nil, false)
		}
	}
}

func (u *upstream) connect(ctx context.Context) (*sdk.ClientSession, error) {
	var t sdk.Transport
	if u.cfg.URL != "" {
		t = &sdk.StreamableClientTransport{Endpoint: u.cfg.URL, HTTPClient: u.http}
	} else {
		cmd := exec.Command(u.cfg.Command[0], u.cfg.Command[1:]...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, u.cfg.Env...)
		cmd.Dir = u.cfg.Dir
		cmd.Stderr = &stderrLog{log: u.s.log, name: u.cfg.Name}
		t = &sdk.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}
	}
	cctx, cancel := context.WithTimeout(ctx, u.s.cfg.ConnectTimeout)
	defer cancel()
	cs, err := u.client.Connect(cctx, t, &sdk.ClientSessionOptions{ProtocolVersion: upstreamProtocol})
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if ir := cs.InitializeResult(); u.cfg.URL != "" && ir != nil && ir.Capabilities != nil && ir.Capabilities.Logging != nil {
		// Servers send no log message until asked for a level: those sent
		// during a call are relayed to its agent (the others are dropped).
		if err := cs.SetLoggingLevel(cctx, &sdk.SetLoggingLevelParams{Level: upstreamLogLevel}); err != nil {
			u.s.log.Debug("mcp upstream refused the logging level", "upstream", u.cfg.Name, "err", u.errString(err))
		}
	}
	return cs, nil
}

// loadTools lists the upstream's tools and prepares them.
func (u *upstream) loadTools(ctx context.Context, cs *sdk.ClientSession) (map[string]*upTool, error) {
	lctx, cancel := context.WithTimeout(ctx, u.s.cfg.ConnectTimeout)
	defer cancel()
	out := make(map[string]*upTool)
	n := 0
	for t, err := range cs.Tools(lctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("list tools: %w", err)
		}
		if n++; n > u.s.cfg.MaxTools {
			u.s.log.Warn("mcp upstream has more tools than max_tools; the rest are ignored", "upstream", u.cfg.Name, "max_tools", u.s.cfg.MaxTools)
			break
		}
		if ut := u.prepare(t); ut != nil {
			out[ut.name] = ut
		}
	}
	return out, nil
}

// prepare checks an upstream tool and makes the tool the gateway exposes,
// or returns nil (logged) for one it cannot serve.
func (u *upstream) prepare(t *sdk.Tool) *upTool {
	log := u.s.log.With("upstream", u.cfg.Name, "tool", truncate(strings.ToValidUTF8(t.Name, "?"), 128))
	full := u.cfg.Name + "__" + t.Name
	if !validToolName(t.Name) || len(full) > 128 {
		log.Warn("mcp upstream tool skipped: its name is not 1 to 64 of [A-Za-z0-9_.-] or too long once namespaced")
		return nil
	}
	schema, err := json.Marshal(t.InputSchema)
	var probe struct {
		Type any `json:"type"`
	}
	if err == nil {
		err = json.Unmarshal(schema, &probe)
	}
	if err != nil || probe.Type != "object" {
		log.Warn("mcp upstream tool skipped: its inputSchema is not a JSON Schema of type object")
		return nil
	}
	ut := &upTool{name: t.Name, full: full,
		decl: []gateway.Tool{{Type: "function", Function: gateway.FunctionDecl{Name: t.Name, Parameters: schema}}}}
	ut.tool = &sdk.Tool{Name: full, Title: t.Title, Description: t.Description, InputSchema: json.RawMessage(schema),
		OutputSchema: t.OutputSchema, Annotations: t.Annotations}
	if err := addTool(u.scratch, ut.tool, nil); err != nil {
		log.Warn("mcp upstream tool skipped: the SDK refuses it", "err", truncate(err.Error(), 256))
		return nil
	}
	u.scratch.RemoveTools(full)
	if vs := u.policy.CheckRequest(ut.decl); len(vs) > 0 {
		ut.hidden = vs[0].Reason
		return ut
	}
	if desc := t.Title + "\n" + t.Description; len(desc) > 1 {
		if fs := u.s.cfg.Detector.Scan(desc, nil); len(fs) > 0 {
			if u.block {
				ut.hidden = "its description looks like a prompt injection"
				log.Warn("mcp upstream tool withheld: its description looks like a prompt injection", "types", findingTypes(fs))
			} else {
				log.Warn("mcp upstream tool's description looks like a prompt injection (flag: exposed anyway)", "types", findingTypes(fs))
			}
		}
	}
	return ut
}

// validToolName: 1 to 64 of [A-Za-z0-9_.-] (MCP's recommended set, all
// accepted by the tool policy).
func validToolName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// addTool adds a tool to an SDK server, turning the SDK's panic on a tool
// it refuses (a schema it cannot read) into an error.
func addTool(srv *sdk.Server, t *sdk.Tool, h sdk.ToolHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	srv.AddTool(t, h)
	return nil
}

// exposed returns the namespaced names of the exposed tools.
func (u *upstream) exposed() []string {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.listed
}

// setState installs a session and its tools (nil, nil: down, for err)
// and publishes the tools to the servers of the upstream's tenants.
func (u *upstream) setState(cs *sdk.ClientSession, ts map[string]*upTool, err error, reconnect bool) {
	s := u.s
	s.mu.Lock()
	defer s.mu.Unlock()
	u.mu.Lock()
	old := u.listed
	wasUp := u.session != nil
	u.session, u.tools = cs, ts
	u.listed = nil
	for _, t := range ts {
		if t.hidden == "" {
			u.listed = append(u.listed, t.full)
		}
	}
	slices.Sort(u.listed)
	u.status.Connected = cs != nil
	u.status.Tools = len(u.listed)
	if wasUp != (cs != nil) {
		u.status.Since = time.Now()
	}
	if reconnect {
		u.status.Reconnects++
	}
	if err != nil {
		u.status.LastError = u.errString(err)
	} else if cs != nil {
		u.status.LastError = ""
	}
	u.mu.Unlock()
	for name, t := range s.tenants {
		if u.tenants[name] {
			u.publishTo(t.srv, old)
		}
	}
}

// publishTo makes srv's tools of this upstream the exposed ones: it
// removes those of old that are gone and adds (or replaces) the others.
// The caller holds s.mu.
func (u *upstream) publishTo(srv *sdk.Server, old []string) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	var gone []string
	for _, n := range old {
		if _, ok := slices.BinarySearch(u.listed, n); !ok {
			gone = append(gone, n)
		}
	}
	if len(gone) > 0 {
		srv.RemoveTools(gone...)
	}
	for _, t := range u.tools {
		if t.hidden == "" {
			if err := addTool(srv, t.tool, u.handler(t.name)); err != nil {
				u.s.log.Warn("mcp upstream tool not served", "upstream", u.cfg.Name, "tool", t.name, "err", truncate(err.Error(), 256))
			}
		}
	}
}

// handler serves a call of an upstream tool that reaches the SDK's
// dispatch (the middleware normally takes them first).
func (u *upstream) handler(tool string) sdk.ToolHandler {
	return func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		rq := requestOf(ctx)
		if rq == nil {
			return toolError("unauthenticated request"), nil
		}
		res, err := u.s.callUpstream(ctx, rq, u, tool, req)
		if err != nil {
			return nil, err
		}
		return res.(*sdk.CallToolResult), nil
	}
}

// errString is err's message without the upstream URL's credentials.
func (u *upstream) errString(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if u.cfg.URL != "" {
		msg = strings.ReplaceAll(msg, u.cfg.URL, gateway.RedactURL(u.cfg.URL))
	}
	return truncate(msg, 512)
}

// stderrLog logs a stdio upstream's standard error, a line at a time.
type stderrLog struct {
	log  *slog.Logger
	name string
	buf  []byte
}

func (w *stderrLog) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.log.Debug("mcp upstream stderr", "upstream", w.name, "line", truncate(strings.ToValidUTF8(string(w.buf[:i]), "?"), 1024))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 {
		w.buf = w.buf[:0]
	}
	return len(p), nil
}
