package a2a

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"aigw/gateway"
	"aigw/gateway/webhook"
	"aigw/ledger"
)

// Headers the proxy reads and sends.
const (
	// HeaderAgent names the calling agent (as for the rest of the gateway).
	HeaderAgent = "X-Aigw-Agent"
	// HeaderDelegation carries a delegation token: the callee gets its
	// own in it, and presents it back when it delegates in turn.
	HeaderDelegation = "X-Aigw-Delegation"
	// HeaderTraceID is the trace id of the call's events, in answers.
	HeaderTraceID = "X-Aigw-Trace-Id"
	// HeaderNotificationToken authenticates an agent's push notification
	// to the gateway (A2A's header).
	HeaderNotificationToken = "X-A2A-Notification-Token"
)

// Metadata keys the proxy reads and writes.
const (
	// MetaDelegation, in params.message.metadata, carries the callee's
	// delegation token (the same as HeaderDelegation). A caller may put
	// its own token there instead of in the header; it is never forwarded.
	MetaDelegation = "aigw.delegation"
	// MetaDelegationRequest, in params.metadata, is a DelegationRequest;
	// it is not forwarded.
	MetaDelegationRequest = "aigw.delegation_request"
)

// Defaults of a Config.
const (
	DefaultPathPrefix       = "/a2a"
	DefaultIssuer           = "aigw"
	DefaultMaxMessageBytes  = 1 << 20
	DefaultMaxResponseBytes = 16 << 20
	DefaultMaxDepth         = 8
	DefaultTokenTTL         = time.Hour
	DefaultUpstreamTimeout  = 5 * time.Minute
	DefaultLedgerTimeout    = 5 * time.Second
	DefaultMaxPushSenders   = 256
	// MaxAgentNameLen bounds an agent's name (the X-Aigw-Agent limit).
	MaxAgentNameLen = 128
)

// Agent is an agent the gateway fronts: callers reach it at
// POST {PathPrefix}/{Name} and read its card at
// {PathPrefix}/{Name}/.well-known/agent-card.json.
type Agent struct {
	// Name names the agent in the path, and is its agent id
	// (X-Aigw-Agent) when it calls the gateway: 1 to 128 of
	// [A-Za-z0-9._-], unique across tenants.
	Name string
	// Tenant is the tenant whose callers may reach it and whose log
	// records its hops.
	Tenant string
	// URL is the agent's JSON-RPC endpoint (http or https).
	URL string
	// Card is the agent's card; nil: fetched from CardURL (default: URL's
	// origin + /.well-known/agent-card.json) at first use.
	Card    *AgentCard
	CardURL string
	// Headers are sent with every request to the agent (its own
	// credentials, say). They are never logged or recorded.
	Headers map[string]string
	// Callers are the agent ids that may delegate to it; "*" is any
	// agent of the tenant.
	Callers []string
	// MaxDepth refuses hops into the agent deeper than it (0:
	// Config.MaxDepth).
	MaxDepth int
	// Scopes are the most a delegation to the agent may carry (nil: any,
	// "*"); MaxBudget the most budget (nil: unlimited).
	Scopes    []string
	MaxBudget *Budget
	// MayInitiate lets the agent, when it calls, start a delegation tree
	// of its own without presenting a delegation token. By default a
	// registered agent delegates only under the token it was given, so
	// that it can never do more than its caller allowed.
	MayInitiate bool
}

// Config configures a Proxy. Authenticate, Recorder and SigningKey are
// required; every other zero field takes its default.
type Config struct {
	// Agents is the registry.
	Agents []Agent
	// Authenticate resolves a gateway key (Authorization: Bearer, or
	// x-api-key) to its caller; an error refuses the call (recorded when
	// the returned caller names its tenant). The caller's agent id is
	// X-Aigw-Agent, which is required.
	Authenticate func(ctx context.Context, secret string) (gateway.Caller, error)
	// Recorder records every hop, call, state change and refusal in the
	// caller's tenant log.
	Recorder gateway.Recorder
	// Store keeps hops (default: a MemoryStore).
	Store TaskStore
	// SigningKey signs delegation tokens; PreviousKeys still verify
	// (rotation). Issuer names the gateway in tokens (default "aigw").
	SigningKey   ed25519.PrivateKey
	PreviousKeys []ed25519.PublicKey
	Issuer       string
	// BaseURL is the gateway's public URL, e.g. https://gw.example.com:
	// cards point there, and agents that support push notifications are
	// asked to notify {BaseURL}{PathPrefix}/{agent}/push/{task}. Empty:
	// cards use the request's host, and no agent is asked for pushes.
	BaseURL string
	// PathPrefix is where the handler is mounted (default "/a2a").
	PathPrefix string
	// PublicCards serves agent cards without a gateway key (by default a
	// caller of the agent's tenant must authenticate).
	PublicCards bool
	// MaxMessageBytes bounds a request body (default 1 MiB);
	// MaxResponseBytes an agent's answer or one streamed event (default
	// 16 MiB).
	MaxMessageBytes  int64
	MaxResponseBytes int64
	// MaxDepth bounds the depth of every delegation tree (default 8).
	MaxDepth int
	// TokenTTL bounds a delegation token's life (default 1 h); a token
	// never outlives its parent.
	TokenTTL time.Duration
	// UpstreamTimeout bounds a call to an agent that is not streamed
	// (default 5 min), and the wait of a retried message for the first.
	UpstreamTimeout time.Duration
	// FailOpen answers without waiting for the ledger. The default,
	// fail-closed, records a hop before the callee is called, and
	// withholds every answer until its events are acknowledged.
	FailOpen bool
	// LedgerTimeout bounds a wait for the ledger (default 5 s).
	LedgerTimeout time.Duration
	// Policy is written into every event.
	Policy string
	// Client calls agents (default: a client of its own with keep-alive
	// pools; plain-HTTP agents through [gateway.NewUpstreamTransport]'s
	// synchronous transport, https through net/http's).
	Client *http.Client
	// PushURLAllowed, when set, vets the webhooks callers register (nil:
	// any http or https URL). Set it to refuse internal addresses.
	PushURLAllowed func(*url.URL) bool
	// WebhookClient delivers push notifications (default: a new client).
	WebhookClient *http.Client
	// MaxPushSenders bounds the webhook senders kept (default 256).
	MaxPushSenders int
	// Logger receives the proxy's logs (default: discarded).
	Logger *slog.Logger
	// Now is the clock of tokens (default time.Now).
	Now func() time.Time
}

// Proxy is the A2A proxy: an http.Handler for everything under
// Config.PathPrefix. Make it with New; stop it with Close.
type Proxy struct {
	cfg    Config
	signer *Signer
	store  TaskStore
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	agents map[string]*agentState
	// registered holds every agent name, for the token-required rule.
	registered map[string]map[string]bool // tenant → names

	pushMu    sync.Mutex
	senders   map[string]*webhook.Sender
	order     []string // senders' keys, oldest first
	closed    bool
	bg        sync.WaitGroup
	closeOnce sync.Once

	// LedgerFailures counts events the ledger did not take or acknowledge.
	LedgerFailures atomic.Int64
}

type agentState struct {
	Agent
	endpoint *url.URL
	anyone   bool
	callers  map[string]bool

	cardMu   sync.Mutex
	card     *upstreamCard
	cardFail time.Time
}

// upstreamCard is an agent's card as fetched (or given).
type upstreamCard struct {
	raw  map[string]any
	caps AgentCapabilities
}

func validName(s string) bool {
	if s == "" || len(s) > MaxAgentNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// New checks cfg, fills in its defaults and returns the proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Authenticate == nil || cfg.Recorder == nil {
		return nil, errors.New("a2a: config needs Authenticate and Recorder")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	signer, err := NewSigner(cfg.Issuer, cfg.SigningKey, cfg.PreviousKeys...)
	if err != nil {
		return nil, err
	}
	if cfg.PathPrefix == "" {
		cfg.PathPrefix = DefaultPathPrefix
	}
	cfg.PathPrefix = "/" + strings.Trim(cfg.PathPrefix, "/")
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.BaseURL != "" {
		if u, err := url.Parse(cfg.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errors.New("a2a: config: BaseURL is not an http(s) URL")
		}
	}
	setDefault(&cfg.MaxMessageBytes, DefaultMaxMessageBytes)
	setDefault(&cfg.MaxResponseBytes, DefaultMaxResponseBytes)
	setDefault(&cfg.MaxDepth, DefaultMaxDepth)
	setDefault(&cfg.TokenTTL, DefaultTokenTTL)
	setDefault(&cfg.UpstreamTimeout, DefaultUpstreamTimeout)
	setDefault(&cfg.LedgerTimeout, DefaultLedgerTimeout)
	setDefault(&cfg.MaxPushSenders, DefaultMaxPushSenders)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore(0)
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: gateway.NewUpstreamTransport()}
	}
	p := &Proxy{
		cfg: cfg, signer: signer, store: cfg.Store, client: client, log: cfg.Logger, now: cfg.Now,
		agents: map[string]*agentState{}, registered: map[string]map[string]bool{}, senders: map[string]*webhook.Sender{},
	}
	for i, a := range cfg.Agents {
		if err := p.addAgent(a); err != nil {
			return nil, fmt.Errorf("a2a: agent %d (%q): %w", i, a.Name, err)
		}
	}
	return p, nil
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

func (p *Proxy) addAgent(a Agent) error {
	if !validName(a.Name) {
		return fmt.Errorf("name must be 1 to %d of [A-Za-z0-9._-]", MaxAgentNameLen)
	}
	if _, dup := p.agents[a.Name]; dup {
		return errors.New("name already registered")
	}
	if !ledger.ValidLogName(a.Tenant) {
		return fmt.Errorf("tenant %q is not a valid log name", a.Tenant)
	}
	u, err := url.Parse(a.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("URL is not an http(s) URL")
	}
	if a.CardURL != "" {
		if cu, err := url.Parse(a.CardURL); err != nil || (cu.Scheme != "http" && cu.Scheme != "https") {
			return errors.New("CardURL is not an http(s) URL")
		}
	}
	if a.Scopes != nil {
		if err := checkScopes(a.Scopes); err != nil {
			return err
		}
	}
	if a.MaxBudget != nil {
		if err := a.MaxBudget.check(); err != nil {
			return err
		}
		b := a.MaxBudget.normalize()
		a.MaxBudget = &b
	}
	if a.MaxDepth < 0 {
		return errors.New("MaxDepth is negative")
	}
	st := &agentState{Agent: a, endpoint: u, callers: map[string]bool{}}
	for _, c := range a.Callers {
		if c == "*" {
			st.anyone = true
		}
		st.callers[c] = true
	}
	if a.Card != nil {
		st.card, err = cardFromTyped(a.Card)
		if err != nil {
			return err
		}
	}
	p.agents[a.Name] = st
	if p.registered[a.Tenant] == nil {
		p.registered[a.Tenant] = map[string]bool{}
	}
	p.registered[a.Tenant][a.Name] = true
	return nil
}

func cardFromTyped(c *AgentCard) (*upstreamCard, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode card: %w", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("decode card: %w", err)
	}
	return &upstreamCard{raw: raw, caps: c.Capabilities}, nil
}

// Signer returns the proxy's token signer (to verify delegation tokens
// elsewhere in the gateway, e.g. before an agent's model call).
func (p *Proxy) Signer() *Signer { return p.signer }

// Store returns the proxy's task store.
func (p *Proxy) Store() TaskStore { return p.store }

// Close stops the webhook senders, delivering what they hold within ctx.
func (p *Proxy) Close(ctx context.Context) error {
	var errs []error
	p.closeOnce.Do(func() {
		p.pushMu.Lock()
		p.closed = true
		senders := p.senders
		p.senders = map[string]*webhook.Sender{}
		p.pushMu.Unlock()
		for _, s := range senders {
			if err := s.Close(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		p.bg.Wait()
	})
	return errors.Join(errs...)
}

// ServeHTTP serves, under the path prefix:
//
//	GET  /{agent}/.well-known/agent-card.json   the agent's card, pointing at the gateway
//	POST /{agent}                               the A2A JSON-RPC binding
//	POST /{agent}/push/{task}                   the agent's push notifications
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, p.cfg.PathPrefix+"/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	name, sub, _ := strings.Cut(rest, "/")
	switch {
	case sub == "" && r.Method == http.MethodPost:
		p.serveRPC(w, r, name)
	case (sub == ".well-known/agent-card.json" || sub == ".well-known/agent.json") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		p.serveCard(w, r, name)
	case strings.HasPrefix(sub, "push/") && r.Method == http.MethodPost:
		p.servePushCallback(w, r, name, strings.TrimPrefix(sub, "push/"))
	case sub == "" || sub == ".well-known/agent-card.json" || sub == ".well-known/agent.json":
		w.Header().Set("Allow", "GET, HEAD, POST")
		writeRPC(w, http.StatusMethodNotAllowed, nil, nil, rpcErr(CodeInvalidRequest, ReasonInvalidRequest,
			"Method %s not allowed: POST JSON-RPC requests to %s/%s, GET its card at .well-known/agent-card.json.", r.Method, p.cfg.PathPrefix, name))
	default:
		http.NotFound(w, r)
	}
}

// authenticate resolves the caller from the gateway key and X-Aigw-Agent.
// On failure the returned caller may still name a tenant (to record the
// refusal in).
func (p *Proxy) authenticate(r *http.Request) (gateway.Caller, *RPCError) {
	secret := ""
	if h := r.Header.Get("Authorization"); h != "" {
		if v, ok := strings.CutPrefix(h, "Bearer "); ok {
			secret = strings.TrimSpace(v)
		}
	} else {
		secret = r.Header.Get("x-api-key")
	}
	if secret == "" {
		return gateway.Caller{}, rpcErr(CodeUnauthenticated, ReasonUnauthenticated,
			"No gateway key: send it as Authorization: Bearer <key>, with %s: <your agent id>.", HeaderAgent)
	}
	caller, err := p.cfg.Authenticate(r.Context(), secret)
	if err != nil {
		msg := "Invalid gateway key."
		var ge *gateway.Error
		if errors.As(err, &ge) && ge.Message != "" {
			msg = ge.Message
		}
		return caller, rpcErr(CodeUnauthenticated, ReasonUnauthenticated, "%s", msg)
	}
	agent := r.Header.Get(HeaderAgent)
	switch {
	case agent == "" && caller.AgentID == "":
		return caller, rpcErr(CodeUnauthenticated, ReasonUnauthenticated, "Missing %s: A2A calls must name the calling agent.", HeaderAgent)
	case agent != "" && (len(agent) > MaxAgentNameLen || ledger.CheckText("actor.agent_id", agent) != nil):
		return caller, rpcErr(CodeUnauthenticated, ReasonUnauthenticated, "Invalid %s header: at most %d bytes of printable UTF-8.", HeaderAgent, MaxAgentNameLen)
	case agent != "" && caller.AgentID != "" && agent != caller.AgentID:
		return caller, rpcErr(CodeUnauthenticated, ReasonUnauthenticated, "This gateway key belongs to another agent than %s %q.", HeaderAgent, agent)
	case agent != "":
		caller.AgentID = agent
	}
	return caller, nil
}

// agentFor returns the agent named name if the caller's tenant has it.
func (p *Proxy) agentFor(tenant, name string) *agentState {
	ag := p.agents[name]
	if ag == nil || ag.Tenant != tenant {
		return nil
	}
	return ag
}

func (p *Proxy) serveCard(w http.ResponseWriter, r *http.Request, name string) {
	ag := p.agents[name]
	if !p.cfg.PublicCards {
		caller, rerr := p.authenticate(r)
		if rerr != nil {
			writeRPC(w, http.StatusUnauthorized, nil, nil, rerr)
			return
		}
		ag = p.agentFor(caller.Tenant, name)
	}
	if ag == nil {
		writeRPC(w, http.StatusNotFound, nil, nil, agentNotFound(name))
		return
	}
	card, err := p.card(r.Context(), ag)
	if err != nil {
		p.log.Warn("a2a: agent card unavailable", "agent", name, "err", err)
		writeRPC(w, http.StatusBadGateway, nil, nil, rpcErr(CodeUpstreamUnavailable, ReasonUpstreamUnavailable, "The card of agent %q could not be fetched.", name))
		return
	}
	out := make(map[string]any, len(card.raw)+4)
	for k, v := range card.raw {
		out[k] = v
	}
	base := p.cfg.BaseURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	out["url"] = base + p.cfg.PathPrefix + "/" + name
	out["preferredTransport"] = "JSONRPC"
	delete(out, "additionalInterfaces")
	delete(out, "signatures") // they sign the agent's own card, not this one
	out["supportsAuthenticatedExtendedCard"] = false
	if _, ok := out["protocolVersion"]; !ok {
		out["protocolVersion"] = ProtocolVersion
	}
	caps := map[string]any{}
	if c, ok := card.raw["capabilities"].(map[string]any); ok {
		for k, v := range c {
			caps[k] = v
		}
	}
	caps["pushNotifications"] = true // the gateway delivers them
	caps["stateTransitionHistory"] = false
	out["capabilities"] = caps
	out["securitySchemes"] = map[string]any{"aigw": map[string]any{
		"type": "http", "scheme": "bearer",
		"description": "An aigw gateway key; send the calling agent's id in " + HeaderAgent + ".",
	}}
	out["security"] = []any{map[string]any{"aigw": []any{}}}
	b, err := json.Marshal(out)
	if err != nil {
		writeRPC(w, http.StatusInternalServerError, nil, nil, rpcErr(CodeInternal, ReasonInternal, "Internal error."))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

// card returns the agent's card, fetching it if it was not given (a
// failed fetch is retried after 30 s).
func (p *Proxy) card(ctx context.Context, ag *agentState) (*upstreamCard, error) {
	ag.cardMu.Lock()
	defer ag.cardMu.Unlock()
	if ag.card != nil {
		return ag.card, nil
	}
	if !ag.cardFail.IsZero() && time.Since(ag.cardFail) < 30*time.Second {
		return nil, errors.New("card fetch failed recently")
	}
	c, err := p.fetchCard(ctx, ag)
	if err != nil {
		ag.cardFail = time.Now()
		return nil, err
	}
	ag.card = c
	return c, nil
}

// capabilities returns the agent's capabilities, and whether they are
// known (its card could be had).
func (p *Proxy) capabilities(ctx context.Context, ag *agentState) (AgentCapabilities, bool) {
	c, err := p.card(ctx, ag)
	if err != nil {
		return AgentCapabilities{}, false
	}
	return c.caps, true
}

func (p *Proxy) fetchCard(ctx context.Context, ag *agentState) (*upstreamCard, error) {
	u := ag.CardURL
	if u == "" {
		u = (&url.URL{Scheme: ag.endpoint.Scheme, Host: ag.endpoint.Host, Path: "/.well-known/agent-card.json"}).String()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("card request: %w", err)
	}
	for k, v := range ag.Headers {
		req.Header.Set(k, v)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("fetch card: %w", err)
	}
	defer gateway.DrainBody(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch card: HTTP %d", resp.StatusCode)
	}
	body, err := readLimited(resp.Body, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("fetch card: %w", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("card is not a JSON object: %w", err)
	}
	var typed struct {
		Capabilities AgentCapabilities `json:"capabilities"`
	}
	json.Unmarshal(body, &typed)
	return &upstreamCard{raw: raw, caps: typed.Capabilities}, nil
}

func agentNotFound(name string) *RPCError {
	return rpcErr(CodeAgentNotFound, ReasonAgentNotFound, "Unknown agent %q: no agent of your tenant has that name.", truncate(name, MaxAgentNameLen))
}

// remoteHost is the host of a URL, for events and logs (never its path,
// query or credentials).
func remoteHost(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	if h, _, err := net.SplitHostPort(u.Host); err == nil {
		return h
	}
	return u.Host
}
