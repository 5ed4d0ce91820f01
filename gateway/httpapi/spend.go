package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"aigw/gateway"
	"aigw/gateway/tenant"
	"aigw/ledger"

	"github.com/gin-gonic/gin"
)

// Spend serves a tenant's budgets, its usage and the price table in the
// admin API.
type Spend struct {
	// Check validates a budget's JSON for a tenant and id; it returns the
	// budget as stored and the attrs that describe it in the ledger.
	Check func(tenant, id string, body []byte) (canonical []byte, attrs map[string]any, err error)
	// Status returns a tenant's budgets with their current windows.
	Status func(ctx context.Context, tenant string) (any, error)
	// Changed tells the spender a tenant's budgets changed.
	Changed func(tenant string)
	// Usage returns a tenant's spend in [from, to) grouped by the given
	// dimensions (model, provider, team, key, agent), from the ledger.
	Usage func(ctx context.Context, tenant string, from, to time.Time, by []string) (any, error)
	// Statement returns a tenant's signed usage statement for [from, to)
	// (team "" for the whole tenant) as JSON or CSV.
	Statement func(ctx context.Context, tenant, team string, from, to time.Time, csv bool) ([]byte, error)
	// Pricing returns the price table in force.
	Pricing func() any
}

func (a *Admin) mountSpend(g *gin.RouterGroup) {
	sp := a.Spend
	if sp == nil {
		return
	}
	g.GET("/tenants/:tenant/budgets", a.listBudgets)
	g.PUT("/tenants/:tenant/budgets/:budget", a.putBudget)
	g.DELETE("/tenants/:tenant/budgets/:budget", a.deleteBudget)
	if sp.Usage != nil {
		g.GET("/tenants/:tenant/usage", a.usage)
	}
	if sp.Statement != nil {
		g.GET("/tenants/:tenant/statement", a.statement)
	}
	if sp.Pricing != nil {
		g.GET("/pricing", func(c *gin.Context) { c.JSON(http.StatusOK, sp.Pricing()) })
	}
}

func (a *Admin) listBudgets(c *gin.Context) {
	id := c.Param("tenant")
	if !a.existingTenant(c, id) {
		return
	}
	st, err := a.Spend.Status(c.Request.Context(), id)
	if err != nil {
		a.Logger.Error("budget status", "tenant", id, "err", err)
		writeError(c, &gateway.Error{Status: 503, Type: gateway.TypeUnavailable, Code: "budget_unavailable", Message: "The budget store cannot be read now; retry later.", Err: err})
		return
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": st})
}

// putBudget sets one of a tenant's budgets: validated, recorded in the
// system log (budget.set), then stored.
func (a *Admin) putBudget(c *gin.Context) {
	id, bid := c.Param("tenant"), c.Param("budget")
	if !a.existingTenant(c, id) {
		return
	}
	if !tenant.ValidTeam(bid) {
		writeError(c, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "invalid_budget", Param: "budget", Message: "A budget id is 1 to 63 characters of [a-z0-9_.-], starting with a letter or digit."})
		return
	}
	body, err := readAdminBodyLimit(c, 16<<10)
	if err != nil {
		writeError(c, err)
		return
	}
	canonical, attrs, err := a.Spend.Check(id, bid, body)
	if err != nil {
		writeError(c, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "invalid_budget", Message: err.Error()})
		return
	}
	attrs["action"], attrs["tenant"], attrs["budget"] = "budget.set", id, bid
	ev := &ledger.Event{Tenant: ledger.SystemLog, Kind: ledger.KindAdmin, Attrs: attrs}
	if !a.record(c, ev, nil) {
		return
	}
	if _, err := a.Tenants.SetBudget(c.Request.Context(), tenant.StoredBudget{Tenant: id, ID: bid, Spec: string(canonical), EventID: ev.ID}); err != nil {
		a.unapplied(c, ev, err)
		storeError(c, err)
		return
	}
	a.Spend.Changed(id)
	c.JSON(http.StatusOK, gin.H{"object": "budget", "tenant": id, "id": bid, "event_id": ev.ID, "budget": json.RawMessage(canonical)})
}

func (a *Admin) deleteBudget(c *gin.Context) {
	id, bid := c.Param("tenant"), c.Param("budget")
	if !a.existingTenant(c, id) {
		return
	}
	bs, err := a.Tenants.ListBudgets(c.Request.Context(), id)
	if err != nil {
		storeError(c, err)
		return
	}
	found := false
	for _, b := range bs {
		found = found || b.ID == bid
	}
	if !found {
		writeError(c, &gateway.Error{Status: 404, Type: gateway.TypeNotFound, Code: "not_found", Message: "No such budget (budgets from the config file are changed there)."})
		return
	}
	ev := &ledger.Event{Tenant: ledger.SystemLog, Kind: ledger.KindAdmin, Attrs: map[string]any{"action": "budget.delete", "tenant": id, "budget": bid}}
	if !a.record(c, ev, nil) {
		return
	}
	if err := a.Tenants.DeleteBudget(c.Request.Context(), id, bid); err != nil {
		a.unapplied(c, ev, err)
		storeError(c, err)
		return
	}
	a.Spend.Changed(id)
	c.JSON(http.StatusOK, gin.H{"object": "budget.deleted", "tenant": id, "id": bid, "event_id": ev.ID})
}

// period reads ?from=&to= (RFC 3339 or YYYY-MM-DD; default: this month so far).
func period(c *gin.Context) (from, to time.Time, ok bool) {
	now := time.Now().UTC()
	from = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	to = now
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		v := c.Query(p.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t, err = time.Parse(time.DateOnly, v)
		}
		if err != nil {
			writeError(c, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "invalid_period", Param: p.name, Message: "Invalid '" + p.name + "': expected RFC 3339 or YYYY-MM-DD."})
			return from, to, false
		}
		*p.t = t.UTC()
	}
	if !from.Before(to) {
		writeError(c, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "invalid_period", Message: "'from' must be before 'to'."})
		return from, to, false
	}
	return from, to, true
}

func (a *Admin) usage(c *gin.Context) {
	id := c.Param("tenant")
	if !a.existingTenant(c, id) {
		return
	}
	from, to, ok := period(c)
	if !ok {
		return
	}
	var by []string
	if v := c.Query("by"); v != "" {
		for _, d := range strings.Split(v, ",") {
			switch d {
			case "model", "provider", "team", "key", "agent":
				by = append(by, d)
			default:
				writeError(c, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "invalid_group", Param: "by", Message: "Invalid 'by': a comma-separated list of model, provider, team, key, agent."})
				return
			}
		}
	}
	out, err := a.Spend.Usage(c.Request.Context(), id, from, to, by)
	if err != nil {
		a.usageError(c, id, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (a *Admin) statement(c *gin.Context) {
	id := c.Param("tenant")
	if !a.existingTenant(c, id) {
		return
	}
	from, to, ok := period(c)
	if !ok {
		return
	}
	team := c.Query("team")
	if team != "" && !tenant.ValidTeam(team) {
		writeError(c, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "invalid_team", Param: "team", Message: "Invalid 'team'."})
		return
	}
	csv := c.Query("format") == "csv"
	if f := c.Query("format"); f != "" && f != "csv" && f != "json" {
		writeError(c, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "invalid_format", Param: "format", Message: "Invalid 'format': json or csv."})
		return
	}
	b, err := a.Spend.Statement(c.Request.Context(), id, team, from, to, csv)
	if err != nil {
		a.usageError(c, id, err)
		return
	}
	ct := "application/json"
	if csv {
		ct = "text/csv; charset=utf-8"
	}
	c.Data(http.StatusOK, ct, b)
}

func (a *Admin) usageError(c *gin.Context, tenantID string, err error) {
	var ge *gateway.Error
	if errors.As(err, &ge) {
		writeError(c, ge)
		return
	}
	a.Logger.Error("usage", "tenant", tenantID, "err", err)
	writeError(c, &gateway.Error{Status: 500, Type: gateway.TypeServer, Message: "The usage could not be computed from the ledger.", Err: err})
}
