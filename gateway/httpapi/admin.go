package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
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
// health. Every change is an `admin` event in the ledger's system log; in
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
}

func (a *Admin) mount(e *gin.Engine, s *server) {
	if a.Logger == nil {
		a.Logger = slog.New(slog.DiscardHandler)
	}
	want := sha256.Sum256([]byte(a.Key))
	g := e.Group("/admin", func(c *gin.Context) {
		got, _ := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if a.Key == "" || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
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
	// Key is the secret, present only in the answer that creates it.
	Key string `json:"key,omitempty"`
}

func keyOut(k tenant.Key) keyJSON {
	m := k.Models
	if m == nil {
		m = []string{}
	}
	return keyJSON{Object: "api_key", ID: k.ID, Tenant: k.Tenant, Name: k.Name, Prefix: k.Prefix, Models: m, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt}
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
	body, err := readAdminBody(c)
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

func readAdminBody(c *gin.Context) ([]byte, error) {
	if mt, _, _ := strings.Cut(c.GetHeader("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		return nil, &gateway.Error{Status: 415, Type: gateway.TypeInvalidRequest, Code: "unsupported_content_type", Message: "Expected Content-Type: application/json."}
	}
	const limit = 64 << 10
	b, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		return nil, tooLarge(limit)
	}
	return b, nil
}

// Record writes an admin event to the system log and waits for it.
func (a *Admin) Record(ctx context.Context, attrs map[string]any) error {
	ev := &ledger.Event{ID: ledger.NewEventID(), Tenant: ledger.SystemLog, Kind: ledger.KindAdmin, Time: time.Now(),
		Actor: ledger.Actor{KeyID: "admin"}, Policy: a.Policy, Attrs: attrs}
	pend, err := a.Recorder.Publish([]*ledger.Event{ev}, nil)
	if err == nil {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = pend.Wait(wctx)
	}
	if err != nil {
		a.Logger.Error("admin change not recorded in the ledger", "action", attrs["action"], "err", err)
		if a.FailOpen {
			return nil
		}
		return &gateway.Error{Status: 503, Type: gateway.TypeUnavailable, Code: "ledger_unavailable", RetryAfter: time.Second,
			Message: "The audit ledger cannot record this change now; retry later.", Err: err}
	}
	return nil
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
	}
	if !decodeAdmin(c, &in) {
		return
	}
	id := c.Param("tenant")
	secret, k, err := a.Tenants.CreateKey(c.Request.Context(), id, tenant.KeySpec{Name: in.Name, Models: in.Models, ExpiresAt: in.ExpiresAt})
	if err != nil {
		storeError(c, err)
		return
	}
	attrs := map[string]any{"action": "key.create", "tenant": id, "key_id": k.ID, "prefix": k.Prefix, "name": k.Name, "models": anySlice(k.Models)}
	if k.ExpiresAt != nil {
		attrs["expires_at"] = k.ExpiresAt.UTC().Format(time.RFC3339Nano)
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
