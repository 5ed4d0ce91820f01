package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"aigw/gateway"
	"aigw/gateway/tenant"
	"aigw/ledger"

	"github.com/gin-gonic/gin"
)

// Admin is the admin API under /admin/: tenants, API keys, provider
// health, and the human-oversight and transparency records (attestations,
// approvals, oversight actions and stops, AI disclosures, incidents; see
// oversight.go). Every change is an `admin` event in the ledger's system
// log, and every record an event of its own kind in the tenant's log; in
// fail-closed mode a change the ledger did not acknowledge is answered 503,
// and a key created without its record is revoked before it is ever shown.
type Admin struct {
	// Key is the admin key ("Authorization: Bearer <key>").
	Key      string
	Tenants  *tenant.Store
	Auth     *tenant.Authenticator
	Recorder gateway.Recorder
	// Health returns the router's health (any JSON value).
	Health func() any
	// Policy is written into the events (the policy version in force).
	Policy string
	Logger *slog.Logger
	// FailOpen: see gateway.PipelineConfig.
	FailOpen bool
	// Decide passes a person's decision to a call a guardrail holds for
	// approval (an approval with subject_type "call" names it): true if it
	// decided a pending approval, false if there was none (or it was
	// decided before), an error if the approval store failed. Pending
	// lists a tenant's held calls. Nil without guardrails.
	Decide  func(ctx context.Context, tenant, id string, approved bool, by, reason string) (bool, error)
	Pending func(tenant string) any
	// Guardrails serves a tenant's own guardrail policy (nil: not served).
	Guardrails *GuardPolicies
	// Spend serves budgets, usage and pricing (nil: not served).
	Spend *Spend
}

func (a *Admin) mount(e *gin.Engine, s *server) {
	a.Logger = a.logger()
	allowed := Bearer(a.Key)
	g := e.Group("/admin", func(c *gin.Context) {
		if !allowed(c.Request) {
			writeError(c, &gateway.Error{Status: 401, Type: gateway.TypeAuthentication, Code: "invalid_admin_key", Message: "The admin API needs Authorization: Bearer <admin key>."})
			c.Abort()
			return
		}
		c.Next()
	})
	g.POST("/tenants", a.createTenant)
	g.GET("/tenants", a.listTenants)
	g.GET("/tenants/:tenant", a.getTenant)
	g.PATCH("/tenants/:tenant", a.patchTenant)
	g.POST("/tenants/:tenant/keys", a.createKey)
	g.GET("/tenants/:tenant/keys", a.listKeys)
	g.GET("/tenants/:tenant/keys/:key", a.getKey)
	g.DELETE("/tenants/:tenant/keys/:key", a.revokeKey)
	a.mountOversight(g)
	a.mountSpend(g)
	g.GET("/health", func(c *gin.Context) {
		var h any = []any{}
		if a.Health != nil {
			h = a.Health()
		}
		c.JSON(http.StatusOK, gin.H{"object": "list", "data": h})
	})
}

type tenantJSON struct {
	Object    string    `json:"object"`
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Disabled  bool      `json:"disabled"`
}

func tenantOut(t tenant.Tenant) tenantJSON {
	return tenantJSON{Object: "tenant", ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt, Disabled: t.Disabled}
}

type keyJSON struct {
	Object    string     `json:"object"`
	ID        string     `json:"id"`
	Tenant    string     `json:"tenant"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	Models    []string   `json:"models"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	Team      string     `json:"team,omitempty"`
	// Key is the secret, present only in the answer that creates it.
	Key string `json:"key,omitempty"`
}

func keyOut(k tenant.Key) keyJSON {
	m := k.Models
	if m == nil {
		m = []string{}
	}
	return keyJSON{Object: "api_key", ID: k.ID, Tenant: k.Tenant, Name: k.Name, Prefix: k.Prefix, Models: m, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, Team: k.Team}
}

// storeError maps tenant store errors to API errors.
func storeError(c *gin.Context, err error) {
	switch {
	case errors.Is(err, tenant.ErrNotFound):
		writeError(c, &gateway.Error{Status: 404, Type: gateway.TypeNotFound, Code: "not_found", Message: "No such tenant or key."})
	case errors.Is(err, tenant.ErrExists):
		writeError(c, &gateway.Error{Status: 409, Type: gateway.TypeInvalidRequest, Code: "already_exists", Message: "A tenant with this id already exists."})
	case errors.Is(err, tenant.ErrInvalid):
		writeError(c, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "invalid_value", Message: err.Error()})
	default:
		writeError(c, &gateway.Error{Status: 500, Type: gateway.TypeServer, Message: "Internal error.", Err: err})
	}
}

func decodeAdmin(c *gin.Context, v any) bool {
	return decodeAdminLimit(c, v, 64<<10)
}

// decodeAdminLimit decodes a JSON body of at most limit bytes into v,
// strictly (unknown fields and trailing data refused).
func decodeAdminLimit(c *gin.Context, v any, limit int64) bool {
	body, err := readAdminBodyLimit(c, limit)
	if err == nil {
		if gerr := decodeStrict(body, v); gerr != nil {
			writeError(c, gerr)
			return false
		}
		return true
	}
	writeError(c, err)
	return false
}

func readAdminBodyLimit(c *gin.Context, limit int64) ([]byte, error) {
	if mt, _, _ := strings.Cut(c.GetHeader("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		return nil, &gateway.Error{Status: 415, Type: gateway.TypeInvalidRequest, Code: "unsupported_content_type", Message: "Expected Content-Type: application/json."}
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		return nil, tooLarge(limit)
	}
	return b, nil
}

// Record writes an admin event to the system log and waits for it.
func (a *Admin) Record(ctx context.Context, attrs map[string]any) error {
	return a.RecordEvent(ctx, &ledger.Event{Tenant: ledger.SystemLog, Kind: ledger.KindAdmin, Attrs: attrs}, nil)
}

// RecordEvent writes ev, an event of any kind in any log (a tenant's, or
// ledger.SystemLog), with its payload (nil: none), and waits for the
// ledger's acknowledgement. It sets ev's ID and Time when unset, and its
// Actor (key_id "admin") and Policy when empty. In fail-closed mode an
// event the ledger did not acknowledge is a 503 ledger_unavailable
// *gateway.Error; an event the ledger would refuse (too large) is a 400 or
// 413, fail-open too.
func (a *Admin) RecordEvent(ctx context.Context, ev *ledger.Event, payload []byte) error {
	if ev.Actor == (ledger.Actor{}) {
		ev.Actor = ledger.Actor{KeyID: "admin"}
	}
	if ev.Policy == "" {
		ev.Policy = a.Policy
	}
	return recordEvent(ctx, a.Recorder, a.FailOpen, a.logger(), ev, payload)
}

func (a *Admin) logger() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

func (a *Admin) createTenant(c *gin.Context) {
	var in struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if !decodeAdmin(c, &in) {
		return
	}
	t, err := a.Tenants.CreateTenant(c.Request.Context(), tenant.Tenant{ID: in.ID, Name: in.Name})
	if err != nil {
		storeError(c, err)
		return
	}
	if err := a.Record(c.Request.Context(), map[string]any{"action": "tenant.create", "tenant": t.ID, "name": t.Name}); err != nil {
		// Unrecorded: leave the tenant disabled rather than usable.
		a.Auth.SetTenantDisabled(context.WithoutCancel(c.Request.Context()), t.ID, true)
		writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, tenantOut(t))
}

func (a *Admin) listTenants(c *gin.Context) {
	ts, err := a.Tenants.ListTenants(c.Request.Context())
	if err != nil {
		storeError(c, err)
		return
	}
	out := make([]tenantJSON, len(ts))
	for i, t := range ts {
		out[i] = tenantOut(t)
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": out})
}

func (a *Admin) getTenant(c *gin.Context) {
	t, err := a.Tenants.GetTenant(c.Request.Context(), c.Param("tenant"))
	if err != nil {
		storeError(c, err)
		return
	}
	c.JSON(http.StatusOK, tenantOut(t))
}

func (a *Admin) patchTenant(c *gin.Context) {
	var in struct {
		Disabled *bool `json:"disabled"`
	}
	if !decodeAdmin(c, &in) {
		return
	}
	id := c.Param("tenant")
	if in.Disabled == nil {
		writeError(c, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Param: "disabled", Message: "Missing required parameter: 'disabled'."})
		return
	}
	if err := a.Auth.SetTenantDisabled(c.Request.Context(), id, *in.Disabled); err != nil {
		storeError(c, err)
		return
	}
	action := "tenant.enable"
	if *in.Disabled {
		action = "tenant.disable"
	}
	if err := a.Record(c.Request.Context(), map[string]any{"action": action, "tenant": id}); err != nil {
		if !*in.Disabled { // an unrecorded enable is undone; a disable stands
			a.Auth.SetTenantDisabled(context.WithoutCancel(c.Request.Context()), id, true)
		}
		writeError(c, err)
		return
	}
	a.getTenant(c)
}

func (a *Admin) createKey(c *gin.Context) {
	var in struct {
		Name      string     `json:"name"`
		Models    []string   `json:"models"`
		ExpiresAt *time.Time `json:"expires_at"`
		Team      string     `json:"team"`
	}
	if !decodeAdmin(c, &in) {
		return
	}
	id := c.Param("tenant")
	secret, k, err := a.Tenants.CreateKey(c.Request.Context(), id, tenant.KeySpec{Name: in.Name, Models: in.Models, ExpiresAt: in.ExpiresAt, Team: in.Team})
	if err != nil {
		storeError(c, err)
		return
	}
	attrs := map[string]any{"action": "key.create", "tenant": id, "key_id": k.ID, "prefix": k.Prefix, "name": k.Name, "models": anySlice(k.Models)}
	if k.ExpiresAt != nil {
		attrs["expires_at"] = k.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	if k.Team != "" {
		attrs["team"] = k.Team
	}
	if err := a.Record(c.Request.Context(), attrs); err != nil {
		// A key the ledger does not know of must never work.
		a.Auth.Revoke(context.WithoutCancel(c.Request.Context()), id, k.ID)
		writeError(c, err)
		return
	}
	out := keyOut(k)
	out.Key = string(secret)
	c.JSON(http.StatusCreated, out)
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func (a *Admin) listKeys(c *gin.Context) {
	id := c.Param("tenant")
	if _, err := a.Tenants.GetTenant(c.Request.Context(), id); err != nil {
		storeError(c, err)
		return
	}
	ks, err := a.Tenants.ListKeys(c.Request.Context(), id)
	if err != nil {
		storeError(c, err)
		return
	}
	out := make([]keyJSON, len(ks))
	for i, k := range ks {
		out[i] = keyOut(k)
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": out})
}

func (a *Admin) getKey(c *gin.Context) {
	k, err := a.Tenants.GetKey(c.Request.Context(), c.Param("tenant"), c.Param("key"))
	if err != nil {
		storeError(c, err)
		return
	}
	c.JSON(http.StatusOK, keyOut(k))
}

func (a *Admin) revokeKey(c *gin.Context) {
	id, kid := c.Param("tenant"), c.Param("key")
	k, err := a.Auth.Revoke(c.Request.Context(), id, kid)
	if err != nil {
		storeError(c, err)
		return
	}
	// The revocation stands even if the ledger cannot record it now.
	if err := a.Record(c.Request.Context(), map[string]any{"action": "key.revoke", "tenant": id, "key_id": k.ID, "prefix": k.Prefix}); err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, keyOut(k))
}
