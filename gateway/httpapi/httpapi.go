// Package httpapi is the gateway's HTTP API on gin: the OpenAI-compatible
// endpoints (/v1/chat/completions, /v1/embeddings, /v1/models), the
// Anthropic-compatible /v1/messages, /v1/disclosures (an agent records an
// AI disclosure), the admin API and /metrics. Handlers
// authenticate, decode and validate, then hand the call to the
// gateway.Pipeline; every error is answered in the API's own JSON shape.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"aigw/gateway"
	"aigw/gateway/anthropic"
	"aigw/gateway/tenant"
	"aigw/ledger"

	"github.com/gin-gonic/gin"
)

// DefaultMaxBodyBytes bounds a request body.
const DefaultMaxBodyBytes = 8 << 20

// Config configures the API.
type Config struct {
	Pipeline *gateway.Pipeline
	// Authenticate resolves an API key to its caller; a bad key returns an
	// error (answered as 401 invalid_api_key; the reason is not shown).
	Authenticate func(ctx context.Context, secret string) (gateway.Caller, error)
	// Admin serves /admin/ when not nil.
	Admin *Admin
	// Stops returns a tenant's stopped agents and routes (human oversight):
	// admission refuses their calls with 403 agent_stopped or
	// route_stopped. Default: Admin.Auth.Stops, when Admin is set.
	Stops func(ctx context.Context, tenant string) (*tenant.Stops, error)
	// Recorder records the events agents send outside calls (POST
	// /v1/disclosures), served only when there is one. Default:
	// Admin.Recorder (and Admin.FailOpen), when Admin is set.
	Recorder gateway.Recorder
	// FailOpen: see gateway.PipelineConfig; for Recorder's events.
	FailOpen bool
	// ApprovalStatus returns an approval a guardrail held one of the
	// tenant's calls for (GET /v1/approvals/{id}); nil: not served.
	ApprovalStatus func(tenant, id string) (any, bool)
	// MaxBodyBytes bounds request bodies (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// Metrics, if set, writes more Prometheus metrics on /metrics.
	Metrics []func(w io.Writer)
	// MetricsToken, if set, is required as "Authorization: Bearer
	// <token>" by /metrics (Prometheus: authorization.credentials); empty:
	// /metrics is open.
	MetricsToken string
	// Mount, if set, adds routes (the ledger read API, health).
	Mount  func(e *gin.Engine)
	Logger *slog.Logger
}

type server struct {
	cfg   Config
	p     *gateway.Pipeline
	log   *slog.Logger
	stats stats
}

func init() { gin.SetMode(gin.ReleaseMode) }

// New returns the API handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Pipeline == nil || cfg.Authenticate == nil {
		return nil, errors.New("httpapi: a pipeline and an authenticator are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if a := cfg.Admin; a != nil {
		// Stops the admin API makes must hold in admission.
		if cfg.Stops == nil && a.Auth != nil {
			cfg.Stops = a.Auth.Stops
		}
		if cfg.Recorder == nil {
			cfg.Recorder, cfg.FailOpen = a.Recorder, a.FailOpen
		}
	}
	s := &server{cfg: cfg, p: cfg.Pipeline, log: cfg.Logger}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(s.recover)
	v1 := e.Group("/v1")
	v1.POST("/chat/completions", s.chat)
	v1.POST("/embeddings", s.embeddings)
	v1.GET("/models", s.models)
	v1.GET("/models/*model", s.model)
	v1.POST("/messages", s.messages)
	if cfg.Recorder != nil {
		v1.POST("/disclosures", s.disclosure)
	}
	if cfg.ApprovalStatus != nil {
		v1.GET("/approvals/:id", s.approval)
	}
	if cfg.Admin != nil {
		cfg.Admin.mount(e, s)
	}
	if cfg.MetricsToken != "" {
		allowed := Bearer(cfg.MetricsToken)
		e.GET("/metrics", func(c *gin.Context) {
			if !allowed(c.Request) {
				c.Header("WWW-Authenticate", `Bearer realm="aigw metrics"`)
				writeError(c, &gateway.Error{Status: 401, Type: gateway.TypeAuthentication, Code: "invalid_metrics_token", Message: "/metrics needs Authorization: Bearer <metrics token>."})
				return
			}
			s.metrics(c)
		})
	} else {
		e.GET("/metrics", s.metrics)
	}
	if cfg.Mount != nil {
		cfg.Mount(e)
	}
	e.NoRoute(func(c *gin.Context) {
		writeError(c, &gateway.Error{Status: 404, Type: gateway.TypeInvalidRequest, Code: "unknown_url", Message: fmt.Sprintf("Invalid URL (%s %s)", c.Request.Method, c.Request.URL.Path)})
	})
	e.NoMethod(func(c *gin.Context) {
		writeError(c, &gateway.Error{Status: 405, Type: gateway.TypeInvalidRequest, Code: "method_not_allowed", Message: fmt.Sprintf("Method %s is not allowed on %s", c.Request.Method, c.Request.URL.Path)})
	})
	return e, nil
}

func (s *server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.log.Error("panic serving request", "path", c.Request.URL.Path, "panic", fmt.Sprint(r))
			if !c.Writer.Written() {
				writeError(c, &gateway.Error{Status: 500, Type: gateway.TypeServer, Message: "Internal error."})
			}
			c.Abort()
		}
	}()
	c.Next()
}

// writeError answers an error in OpenAI's shape. Internal causes are
// logged by the caller, never shown.
func writeError(c *gin.Context, err error) {
	e := gateway.AsError(err)
	if e.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	if e.Status == 401 {
		c.Header("WWW-Authenticate", `Bearer realm="aigw"`)
	}
	status := e.Status
	if status == 499 { // nginx's client-closed-request: nobody reads it
		status = 400
	}
	if c.GetBool(anthropicKey) {
		anthropic.WriteError(c.Writer, status, anthropicType(e), e.Message)
		return
	}
	c.Data(status, "application/json", errorBody(e))
}

func errorBody(e *gateway.Error) []byte {
	b := make([]byte, 0, 128+len(e.Message))
	b = append(b, `{"error":{"message":`...)
	b = strconv.AppendQuote(b, e.Message)
	b = append(b, `,"type":`...)
	b = strconv.AppendQuote(b, e.Type)
	b = append(b, `,"param":`...)
	b = quoteOrNull(b, e.Param)
	b = append(b, `,"code":`...)
	b = quoteOrNull(b, e.Code)
	return append(b, "}}\n"...)
}

func quoteOrNull(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return jsonQuote(b, s)
}

// jsonQuote appends s as a JSON string (strconv.AppendQuote's escapes are
// Go's, not JSON's, for some control characters).
func jsonQuote(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '"' || ch == '\\':
			b = append(b, '\\', ch)
		case ch == '\n':
			b = append(b, '\\', 'n')
		case ch == '\r':
			b = append(b, '\\', 'r')
		case ch == '\t':
			b = append(b, '\\', 't')
		case ch < 0x20 || ch == '<' || ch == '>' || ch == '&':
			b = append(b, '\\', 'u', '0', '0', hex[ch>>4], hex[ch&15])
		default:
			b = append(b, ch)
		}
	}
	return append(b, '"')
}

// authenticate resolves the caller from "Authorization: Bearer <key>"
// (OpenAI) or "x-api-key: <key>" (Anthropic).
func (s *server) authenticate(c *gin.Context) (gateway.Caller, bool) {
	secret := ""
	if h := c.GetHeader("Authorization"); h != "" {
		if v, ok := strings.CutPrefix(h, "Bearer "); ok {
			secret = strings.TrimSpace(v)
		}
	} else {
		secret = c.GetHeader("x-api-key")
	}
	if secret == "" {
		writeError(c, &gateway.Error{Status: 401, Type: gateway.TypeInvalidRequest, Code: "invalid_api_key",
			Message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."})
		return gateway.Caller{}, false
	}
	caller, err := s.cfg.Authenticate(c.Request.Context(), secret)
	if err != nil {
		var ge *gateway.Error
		if errors.As(err, &ge) && caller.Tenant != "" {
			// A refused key of a known tenant: recorded in its log.
			s.reject(c, caller, endpointOf(c), "", nil, ge)
			return gateway.Caller{}, false
		}
		if errors.As(err, &ge) && ge.Status != 401 {
			writeError(c, ge)
			return gateway.Caller{}, false
		}
		writeError(c, &gateway.Error{Status: 401, Type: gateway.TypeInvalidRequest, Code: "invalid_api_key",
			Message: "Incorrect API key provided: " + maskKey(secret) + "."})
		return gateway.Caller{}, false
	}
	if agent := c.GetHeader("X-Aigw-Agent"); agent != "" {
		// The agent id goes into every event of the call: refuse one the
		// ledger could not record rather than fail the call later.
		if len(agent) > 128 || ledger.CheckText("actor.agent_id", agent) != nil {
			s.reject(c, caller, endpointOf(c), "", nil, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "invalid_agent",
				Message: "Invalid X-Aigw-Agent header: at most 128 bytes of printable UTF-8."})
			return gateway.Caller{}, false
		}
		caller.AgentID = agent
	}
	if tok := c.GetHeader("X-Aigw-Delegation"); tok != "" {
		// A call made for a delegated A2A task: charged to the delegation
		// (the spender verifies the token; it is never recorded).
		if len(tok) > 8<<10 {
			s.reject(c, caller, endpointOf(c), "", nil, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "invalid_delegation",
				Message: "Invalid X-Aigw-Delegation header: a delegation token is at most 8 KiB."})
			return gateway.Caller{}, false
		}
		c.Request = c.Request.WithContext(gateway.WithDelegation(c.Request.Context(), tok))
	}
	if ref := c.GetHeader("X-Aigw-Approval"); ref != "" && len(ref) <= 64 {
		// A call retried with the approval it was held for.
		c.Request = c.Request.WithContext(gateway.WithApprovalRef(c.Request.Context(), ref))
	}
	return caller, true
}

// approval answers an agent polling an approval its call was held for.
func (s *server) approval(c *gin.Context) {
	caller, ok := s.authenticate(c)
	if !ok {
		return
	}
	a, ok := s.cfg.ApprovalStatus(caller.Tenant, c.Param("id"))
	if !ok {
		writeError(c, &gateway.Error{Status: 404, Type: gateway.TypeNotFound, Code: "approval_not_found", Message: "No such approval for this tenant (approvals are kept an hour)."})
		return
	}
	c.JSON(http.StatusOK, a)
}

// endpointOf names the API endpoint of a request for ledger events.
func endpointOf(c *gin.Context) string {
	switch p := c.FullPath(); p {
	case "/v1/chat/completions":
		return "chat.completions"
	case "/v1/embeddings":
		return "embeddings"
	case "/v1/messages":
		return "messages"
	case "":
		return "unknown"
	default:
		return strings.TrimPrefix(p, "/v1/")
	}
}

// maskKey shows a key as OpenAI does: its start and its last four
// characters, never the whole.
func maskKey(k string) string {
	if len(k) < 12 {
		return "****"
	}
	return k[:6] + "*****" + k[len(k)-4:]
}

// readBody reads a JSON body within the size limit.
func (s *server) readBody(c *gin.Context) ([]byte, *gateway.Error) {
	ct := c.GetHeader("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		return nil, &gateway.Error{Status: http.StatusUnsupportedMediaType, Type: gateway.TypeInvalidRequest, Code: "unsupported_content_type",
			Message: fmt.Sprintf("Invalid Content-Type header (%q), expected application/json.", truncate(ct, 64))}
	}
	if c.Request.ContentLength > s.cfg.MaxBodyBytes {
		return nil, tooLarge(s.cfg.MaxBodyBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(s.cfg.MaxBodyBytes)
		}
		return nil, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Message: "Could not read the request body.", Err: err}
	}
	return body, nil
}

func tooLarge(n int64) *gateway.Error {
	return &gateway.Error{Status: http.StatusRequestEntityTooLarge, Type: gateway.TypeInvalidRequest, Code: "request_too_large",
		Message: fmt.Sprintf("Request body too large: the limit is %d bytes.", n)}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// reject records a refused call in the caller's log (when the tenant is
// known) and answers the error, or the ledger's 503 if the ledger could not
// record the refusal.
func (s *server) reject(c *gin.Context, caller gateway.Caller, endpoint, model string, body []byte, e *gateway.Error) {
	tid := traceID(c)
	call, err := s.p.Begin(c.Request.Context(), caller, endpoint, model, false, body, tid)
	if err != nil {
		writeError(c, err)
		return
	}
	writeError(c, call.Fail(e, gateway.Outcome{Status: e.Status}))
}

func traceID(c *gin.Context) string {
	tp := c.GetHeader("traceparent")
	id := gateway.TraceIDFrom(tp)
	if id == "" {
		id = gateway.NewTraceID()
	} else {
		// The call's telemetry span becomes a child of the agent's span.
		c.Request = c.Request.WithContext(gateway.WithTraceParent(c.Request.Context(), tp))
	}
	c.Header("X-Aigw-Trace-Id", id)
	return id
}

// stats counts answered requests for /metrics.
type stats struct {
	mu sync.Mutex
	n  map[[2]string]uint64
}

func (st *stats) add(endpoint string, status int) {
	st.mu.Lock()
	if st.n == nil {
		st.n = map[[2]string]uint64{}
	}
	st.n[[2]string{endpoint, strconv.Itoa(status)}]++
	st.mu.Unlock()
}

// Bearer returns whether a request carries "Authorization: Bearer
// <token>", comparing digests in constant time; an empty token matches no
// request. The admin key, the metrics token and serve's ledger read token
// are checked with it.
func Bearer(token string) func(*http.Request) bool {
	want := sha256.Sum256([]byte(token))
	return func(r *http.Request) bool {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		return ok && token != "" && subtle.ConstantTimeCompare(sum[:], want[:]) == 1
	}
}

func (s *server) metrics(c *gin.Context) {
	c.Header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	c.Status(200)
	w := c.Writer
	fmt.Fprintln(w, "# HELP aigw_http_requests_total Gateway API requests answered, by endpoint and status.")
	fmt.Fprintln(w, "# TYPE aigw_http_requests_total counter")
	s.stats.mu.Lock()
	for k, v := range s.stats.n {
		fmt.Fprintf(w, "aigw_http_requests_total{endpoint=%q,status=%q} %d\n", k[0], k[1], v)
	}
	s.stats.mu.Unlock()
	fmt.Fprintln(w, "# HELP aigw_ledger_failures_total Ledger events not acknowledged.")
	fmt.Fprintln(w, "# TYPE aigw_ledger_failures_total counter")
	fmt.Fprintf(w, "aigw_ledger_failures_total %d\n", s.p.LedgerFailures.Load())
	if m, ok := s.p.Router().(interface{ WriteMetrics(io.Writer) }); ok {
		m.WriteMetrics(w)
	}
	for _, f := range s.cfg.Metrics {
		f(w)
	}
}
