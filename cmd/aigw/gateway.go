package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"aigw/gateway"
	"aigw/gateway/a2a"
	"aigw/gateway/anthropic"
	"aigw/gateway/bedrock"
	"aigw/gateway/gemini"
	"aigw/gateway/guard/engine"
	"aigw/gateway/httpapi"
	"aigw/gateway/ledgerrec"
	"aigw/gateway/mock"
	"aigw/gateway/openai"
	"aigw/gateway/pricing"
	"aigw/gateway/router"
	"aigw/gateway/spend"
	"aigw/gateway/tenant"
	"aigw/ledger"
	"aigw/ledger/jetstream"
	"aigw/usage"
	"aigw/verify"

	"github.com/gin-gonic/gin"
	"golang.org/x/mod/sumdb/note"
)

// embeddedRoutes is the gateway of the embedded default: the model "mock"
// (and "mock-embed") served by the built-in mock provider.
func embeddedRoutes(cfg *Config) {
	if len(cfg.Providers) > 0 || len(cfg.Routes) > 0 {
		return
	}
	cfg.Providers = []ProviderConfig{{Name: "mock", Type: "mock"}}
	cfg.Routes = []RouteConfig{
		{Name: "mock", Targets: []TargetConfig{{Provider: "mock", Model: "mock-1"}}},
		{Name: "mock-embed", Targets: []TargetConfig{{Provider: "mock", Model: "mock-embed-1"}}},
	}
}

// newProvider builds one configured upstream.
func newProvider(ctx context.Context, p ProviderConfig) (gateway.Provider, error) {
	switch p.Type {
	case "openai", "openai-compatible":
		return openai.New(openai.Config{Name: p.Name, BaseURL: p.BaseURL, APIKey: p.APIKey, Header: p.Headers, NoStreamUsage: p.NoStreamUsage})
	case "anthropic":
		return anthropic.New(anthropic.Config{Name: p.Name, BaseURL: p.BaseURL, APIKey: p.APIKey, Version: p.Version})
	case "bedrock":
		return bedrock.New(ctx, bedrock.Config{Name: p.Name, Region: p.Region, BaseURL: p.BaseURL, AccessKeyID: p.AccessKeyID, SecretAccessKey: p.SecretAccessKey, SessionToken: p.SessionToken})
	case "gemini":
		return gemini.New(gemini.Config{Name: p.Name, BaseURL: p.BaseURL, APIKey: p.APIKey})
	case "mock":
		return mock.New(p.Name), nil
	}
	return nil, fmt.Errorf("provider %q: unknown type %q", p.Name, p.Type)
}

// newRouter builds the providers, the price table and the router of the
// config.
func newRouter(ctx context.Context, cfg Config, lg *slog.Logger) (*router.Router, *pricing.Pricer, error) {
	provs := map[string]gateway.Provider{}
	kinds := map[string]string{}
	bulk := map[string]int{}
	for _, pc := range cfg.Providers {
		p, err := newProvider(ctx, pc)
		if err != nil {
			return nil, nil, fmt.Errorf("provider %q: %w", pc.Name, err)
		}
		provs[pc.Name], kinds[pc.Name] = p, pc.Type
		if pc.MaxConcurrent > 0 {
			bulk[pc.Name] = pc.MaxConcurrent
		}
	}
	var routes []router.Route
	var priced []pricing.TargetPrice
	routeTargets := map[string][]string{}
	for _, rc := range cfg.Routes {
		rt := router.Route{Name: rc.Name, Strategy: rc.Strategy, Retries: rc.Retries, Backoff: rc.Backoff, MaxBackoff: rc.MaxBackoff, AttemptTimeout: rc.AttemptTimeout, Deadline: rc.Deadline}
		for _, tc := range rc.Targets {
			model := tc.Model
			if model == "" {
				model = rc.Name
			}
			t := gateway.Target{Name: tc.Provider + "/" + model, Provider: tc.Provider, Kind: kinds[tc.Provider], Model: model, Upstream: provs[tc.Provider]}
			priced = append(priced, pricing.TargetPrice{Name: t.Name, Kind: t.Kind, Model: model, Price: tc.Price})
			routeTargets[rc.Name] = append(routeTargets[rc.Name], t.Name)
			rt.Targets = append(rt.Targets, router.RouteTarget{Target: t, Weight: tc.Weight})
		}
		routes = append(routes, rt)
	}
	table, err := pricing.Builtin().With(cfg.Pricing.Overrides)
	if err != nil {
		return nil, nil, fmt.Errorf("pricing: %w", err)
	}
	pricer, err := pricing.NewPricer(table, priced, routeTargets)
	if err != nil {
		return nil, nil, fmt.Errorf("pricing: %w", err)
	}
	// The router's cost strategy orders targets by the same prices.
	for i := range routes {
		for j := range routes[i].Targets {
			t := &routes[i].Targets[j].Target
			if m, ok := pricer.Price(t.Name); ok {
				t.Price = floatPrice(m.Price)
			}
		}
	}
	b := cfg.Breaker
	r, err := router.New(router.Config{
		Routes: routes, Bulkhead: bulk, Logger: lg,
		Breaker: router.BreakerConfig{Window: b.Window, MinRequests: b.MinRequests, FailureRate: b.FailureRate, SlowCall: b.SlowCall, OpenFor: b.OpenFor, HalfOpenProbes: b.HalfOpenProbes},
	})
	return r, pricer, err
}

// floatPrice is a price as the router's cost ordering takes it (floats
// are fine for ordering; costs are computed exactly by the Pricer).
func floatPrice(p pricing.PriceSpec) *gateway.Price {
	f := func(s, def string) float64 {
		if s == "" {
			s = def
		}
		v, _ := strconv.ParseFloat(s, 64)
		return v
	}
	return &gateway.Price{Input: f(p.Input, "0"), Output: f(p.Output, "0"), CachedInput: f(p.CachedInput, p.Input)}
}

// openTenants opens the tenant store: the configured PostgreSQL, the
// ledger's PostgreSQL, or SQLite in the data directory.
func openTenants(ctx context.Context, cfg Config) (*tenant.Store, error) {
	dsn := cfg.Gateway.TenantsDatabaseURL
	if dsn == "" {
		dsn = cfg.Ledger.DatabaseURL
	}
	if dsn != "" {
		return tenant.Open(ctx, tenant.Config{Driver: tenant.DriverPostgres, DSN: dsn})
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	return tenant.Open(ctx, tenant.Config{Driver: tenant.DriverSQLite, DSN: filepath.Join(cfg.DataDir, "gateway.db")})
}

// secretFile returns the secret in path, creating it (0600) with a random
// value made by gen on first use.
func secretFile(path string, gen func() (string, error)) (string, bool, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	s, err := gen()
	if err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	if _, err := io.WriteString(f, s+"\n"); err != nil {
		return "", false, err
	}
	return s, true, f.Sync()
}

func randomAdminKey() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "aigw_admin_" + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// gatewayParts is the running gateway.
type gatewayParts struct {
	handler http.Handler
	router  *router.Router
	tenants *tenant.Store
	guard   *engine.Engine // nil without guardrails
	spend   *spendParts
}

// Close releases the gateway's stores and connections.
func (g *gatewayParts) Close() {
	g.spend.Close()
	g.tenants.Close()
	if g.guard != nil {
		g.guard.Close()
	}
}

// startGateway wires the gateway: providers, router, tenants and keys,
// the pipeline recording into the ledger, and the HTTP API (with mount
// adding the ledger's routes).
// ledgerAccess is what the gateway reads of its own ledger: usage and
// statements (signed with the checkpoint key) come from it.
type ledgerAccess struct {
	store     ledger.Store
	signer    note.Signer
	verifiers []note.Verifier
	metrics   *jetstream.Metrics
}

func startGateway(ctx context.Context, cfg Config, producer *jetstream.Producer, la ledgerAccess, lg *slog.Logger, mount func(*gin.Engine)) (*gatewayParts, error) {
	embeddedRoutes(&cfg)
	rt, pricer, err := newRouter(ctx, cfg, lg.With("component", "router"))
	if err != nil {
		return nil, err
	}
	tenants, err := openTenants(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("tenant store: %w", err)
	}
	auth, err := tenant.NewAuthenticator(tenants, tenant.AuthConfig{TTL: cfg.Gateway.AuthCacheTTL})
	if err != nil {
		tenants.Close()
		return nil, err
	}
	var entries spend.EntryReader
	if la.store != nil {
		entries = la.store
	}
	sp, err := newSpend(ctx, cfg, tenants, entries, lg.With("component", "spend"))
	if err != nil {
		tenants.Close()
		return nil, err
	}
	tel, err := newTelemetry(cfg, rt, la.metrics, sp.spender, lg.With("component", "telemetry"))
	if err != nil {
		sp.Close()
		tenants.Close()
		return nil, err
	}
	sp.closers = append(sp.closers, func(context.Context) { tel.Close() })
	rec := ledgerrec.JetStream{Producer: producer}
	// A call's events go to the ledger as one message holding the request
	// and the response: keep bodies within what the NATS server takes.
	maxBody := cfg.Gateway.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = httpapi.DefaultMaxBodyBytes
	}
	if limit := (producer.MaxPayload() - 256<<10) / 2; limit > 0 && maxBody > limit {
		lg.Warn("gateway.max_body_bytes lowered to fit the NATS server's max_payload (raise max_payload to accept larger requests)",
			"max_body_bytes", limit, "nats_max_payload", producer.MaxPayload())
		maxBody = limit
	}
	cfg.Gateway.MaxBodyBytes = maxBody
	// The guard engine runs even when the config file has no guardrails,
	// so that a tenant's own policy set through the admin API applies.
	eng, err := engine.New(cfg.Guardrails, lg.With("component", "guard"))
	if err != nil {
		sp.Close()
		tenants.Close()
		return nil, err
	}
	var g gateway.Guard = eng
	// Model calls made for delegated A2A tasks are charged to their
	// delegation's budget too (bound to the proxy once it is built).
	var spender gateway.Spender = sp.spender
	var delegated *a2a.DelegatedSpender
	if len(cfg.A2A.Agents) > 0 {
		delegated = &a2a.DelegatedSpender{Next: sp.spender}
		spender = delegated
	}
	pipe, err := gateway.NewPipeline(gateway.PipelineConfig{
		Router: rt, Recorder: rec, FailOpen: cfg.Gateway.FailOpen, Logger: lg.With("component", "pipeline"),
		Pricer: pricer, Spender: spender, DefaultOutputTokens: cfg.Budgets.DefaultOutputTokens, Guard: g,
		Telemetry: tel.observer(),
	})
	if err != nil {
		sp.Close()
		tenants.Close()
		return nil, err
	}
	{
		// Judges (llm_judge checks) call models through the pipeline: the
		// judge's call is routed, governed and recorded like any call.
		eng.SetJudge(func(ctx context.Context, caller gateway.Caller, req *gateway.ChatRequest, traceID string) (*gateway.ChatResponse, error) {
			body, err := json.Marshal(req)
			if err != nil {
				return nil, err
			}
			resp, _, err := pipe.Chat(ctx, caller, req, body, traceID)
			return resp, err
		})
	}
	adminKey := cfg.Gateway.AdminKey
	if adminKey == "" {
		var created bool
		adminKey, created, err = secretFile(filepath.Join(cfg.DataDir, "admin.key"), randomAdminKey)
		if err != nil {
			sp.Close()
			tenants.Close()
			return nil, fmt.Errorf("admin key: %w", err)
		}
		if created {
			lg.Info("generated the admin key", "file", filepath.Join(cfg.DataDir, "admin.key"))
		}
	}
	admin := &httpapi.Admin{Key: adminKey, Tenants: tenants, Auth: auth, Recorder: rec, FailOpen: cfg.Gateway.FailOpen,
		Health: func() any { return rt.Health() }, Logger: lg.With("component", "admin")}
	var approvalStatus func(tenant, id string) (any, bool)
	{
		admin.Decide = eng.Decide
		admin.Pending = func(tenant string) any {
			if ps := eng.PendingApprovals(tenant); ps != nil {
				return ps
			}
			return []any{}
		}
		approvalStatus = func(tenant, id string) (any, bool) { return eng.ApprovalStatus(tenant, id) }
	}
	// Tenants' own guardrail policies (admin API), stored with the tenants.
	eng.SetTenantPolicies(func(ctx context.Context, t string) ([]byte, string, bool, error) {
		p, err := tenants.GetGuardPolicy(ctx, t)
		if errors.Is(err, tenant.ErrNotFound) {
			return nil, "", false, nil
		}
		if err != nil {
			return nil, "", false, err
		}
		return []byte(p.Policy), p.Version, true, nil
	}, cfg.Gateway.AuthCacheTTL)
	admin.Guardrails = &httpapi.GuardPolicies{Check: eng.CheckPolicy, Changed: eng.InvalidateTenant}
	admin.Spend = &httpapi.Spend{
		Check:   checkBudget,
		Changed: sp.spender.Invalidate,
		Status:  func(ctx context.Context, t string) (any, error) { return sp.spender.Status(ctx, t) },
		Pricing: func() any { return pricer.Describe() },
	}
	if la.store != nil {
		admin.Spend.Usage = func(ctx context.Context, t string, from, to time.Time, by []string) (any, error) {
			return usage.Summarize(ctx, verify.StoreSource(la.store), t, from, to, by)
		}
		admin.Spend.Statement = func(ctx context.Context, t, team string, from, to time.Time, csv bool) ([]byte, error) {
			return signedStatement(ctx, cfg, la, t, team, from, to, csv)
		}
	}
	sp.hooks.record = func(ctx context.Context, ev *ledger.Event) error { return admin.RecordEvent(ctx, ev, nil) }
	authenticate := func(ctx context.Context, secret string) (gateway.Caller, error) {
		k, t, err := auth.Authenticate(ctx, secret)
		if err != nil {
			// A refused key of a known tenant (revoked, expired, tenant
			// disabled) names its tenant, so the refusal is recorded there.
			var msg string
			switch {
			case errors.Is(err, tenant.ErrKeyRevoked):
				msg = "This API key has been revoked."
			case errors.Is(err, tenant.ErrKeyExpired):
				msg = "This API key has expired."
			case errors.Is(err, tenant.ErrTenantDisabled):
				msg = "This API key's tenant is disabled."
			default:
				return gateway.Caller{}, err
			}
			return gateway.Caller{Tenant: t.ID, KeyID: k.ID}, &gateway.Error{Status: 401, Type: gateway.TypeInvalidRequest, Code: "invalid_api_key", Message: msg, Err: err}
		}
		return gateway.Caller{Tenant: t.ID, KeyID: k.ID, Team: k.Team, Allows: k.Allows}, nil
	}
	// The MCP server (/mcp): context for agents, and upstream MCP servers'
	// tools under policy; every request is a ledger event.
	mcpSrv, err := newMCP(ctx, cfg, rt, eng, sp.spender, la, authenticate, rec, lg.With("component", "mcp"))
	if err != nil {
		sp.Close()
		tenants.Close()
		return nil, fmt.Errorf("mcp: %w", err)
	}
	sp.closers = append(sp.closers, func(context.Context) { mcpSrv.Close() })
	// The A2A proxy (/a2a/): delegations between agents, under tokens.
	a2aParts, err := newA2A(ctx, cfg, authenticate, rec, lg.With("component", "a2a"))
	if err != nil {
		sp.Close()
		tenants.Close()
		return nil, err
	}
	if a2aParts != nil {
		sp.closers = append(sp.closers, func(context.Context) { a2aParts.close() })
		if delegated != nil {
			delegated.Bind(a2aParts.proxy)
		}
	}
	h, err := httpapi.New(httpapi.Config{
		Pipeline: pipe, Admin: admin, MaxBodyBytes: cfg.Gateway.MaxBodyBytes, Logger: lg.With("component", "api"),
		Mount: func(e *gin.Engine) {
			if mount != nil {
				mount(e)
			}
			e.Any("/mcp", gin.WrapH(mcpSrv))
			if a2aParts != nil {
				e.Any("/a2a/*path", gin.WrapH(a2aParts.proxy))
			}
		},
		Metrics:        []func(io.Writer){tel.writeMetrics},
		MetricsToken:   cfg.Telemetry.MetricsToken,
		ApprovalStatus: approvalStatus,
		Stops:          auth.Stops, Recorder: rec, FailOpen: cfg.Gateway.FailOpen,
		Authenticate: authenticate,
	})
	if err != nil {
		sp.Close()
		tenants.Close()
		return nil, err
	}
	if err := bootstrapTenant(ctx, cfg, tenants, admin, lg); err != nil {
		sp.Close()
		tenants.Close()
		return nil, err
	}
	return &gatewayParts{handler: h, router: rt, tenants: tenants, guard: eng, spend: sp}, nil
}

// bootstrapTenant creates the default tenant and its first key when the
// store has no tenant yet, writing the key to DATA_DIR/default.key (0600)
// for the README's first curl. The creation is recorded like any admin change.
func bootstrapTenant(ctx context.Context, cfg Config, tenants *tenant.Store, admin *httpapi.Admin, lg *slog.Logger) error {
	if cfg.Gateway.DefaultTenant == "" {
		return nil
	}
	ts, err := tenants.ListTenants(ctx)
	if err != nil || len(ts) > 0 {
		return err
	}
	path := filepath.Join(cfg.DataDir, "default.key")
	if _, err := tenants.CreateTenant(ctx, tenant.Tenant{ID: cfg.Gateway.DefaultTenant, Name: "Default tenant"}); err != nil {
		return fmt.Errorf("bootstrap tenant: %w", err)
	}
	secret, k, err := tenants.CreateKey(ctx, cfg.Gateway.DefaultTenant, tenant.KeySpec{Name: "default"})
	if err != nil {
		return fmt.Errorf("bootstrap key: %w", err)
	}
	if err := admin.Record(ctx, map[string]any{"action": "tenant.create", "tenant": cfg.Gateway.DefaultTenant, "name": "Default tenant", "bootstrap": true}); err != nil {
		return err
	}
	if err := admin.Record(ctx, map[string]any{"action": "key.create", "tenant": cfg.Gateway.DefaultTenant, "key_id": k.ID, "prefix": k.Prefix, "name": k.Name, "models": []any{}, "bootstrap": true}); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(string(secret)+"\n"), 0o600); err != nil {
		return err
	}
	lg.Info("created the default tenant and its API key", "tenant", cfg.Gateway.DefaultTenant, "key", k, "file", path)
	return nil
}
