package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"aigw/gateway"
	"aigw/gateway/tenant"
	"aigw/ledger"

	"github.com/gin-gonic/gin"
)

// GuardPolicies lets the admin API set a tenant's own guardrail policy.
type GuardPolicies struct {
	// Check validates a policy's JSON and builds its checks; it returns
	// the policy as stored and its version.
	Check func(doc []byte) (canonical []byte, version string, err error)
	// Changed tells the guard a tenant's policy changed.
	Changed func(tenant string)
}

func (a *Admin) mountGuardrails(g *gin.RouterGroup) {
	if a.Guardrails == nil {
		return
	}
	g.PUT("/tenants/:tenant/guardrails", a.putGuardrails)
	g.GET("/tenants/:tenant/guardrails", a.getGuardrails)
	g.DELETE("/tenants/:tenant/guardrails", a.deleteGuardrails)
}

type guardPolicyJSON struct {
	Object    string          `json:"object"`
	Tenant    string          `json:"tenant"`
	Version   string          `json:"version"`
	UpdatedAt any             `json:"updated_at"`
	EventID   string          `json:"event_id"`
	Policy    json.RawMessage `json:"policy"`
}

func guardPolicyOut(p tenant.GuardPolicy) guardPolicyJSON {
	return guardPolicyJSON{Object: "guardrail_policy", Tenant: p.Tenant, Version: p.Version, UpdatedAt: p.UpdatedAt, EventID: p.EventID, Policy: json.RawMessage(p.Policy)}
}

// putGuardrails sets a tenant's own guardrail policy (a PolicyConfig in
// JSON; its tenants are the tenant): validated and built first, recorded
// in the system log (guardrails.set, with the version), then stored.
func (a *Admin) putGuardrails(c *gin.Context) {
	id := c.Param("tenant")
	if !a.existingTenant(c, id) {
		return
	}
	body, err := readAdminBodyLimit(c, 1<<20)
	if err != nil {
		writeError(c, err)
		return
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(body, &probe) != nil {
		writeError(c, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "invalid_policy", Message: "The body is not a JSON object."})
		return
	}
	// The policy is the tenant's: its name defaults, and its tenants are it.
	if _, ok := probe["name"]; !ok {
		probe["name"], _ = json.Marshal("tenant:" + id)
	}
	probe["tenants"], _ = json.Marshal([]string{id})
	body, _ = json.Marshal(probe)
	canonical, version, err := a.Guardrails.Check(body)
	if err != nil {
		writeError(c, &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "invalid_policy", Message: err.Error()})
		return
	}
	var checks []string
	var pc struct {
		Name   string
		Checks []struct{ ID, Type string }
	}
	json.Unmarshal(canonical, &pc)
	for _, ck := range pc.Checks {
		checks = append(checks, ck.ID+":"+ck.Type)
	}
	ev := &ledger.Event{Tenant: ledger.SystemLog, Kind: ledger.KindAdmin, Policy: version,
		Attrs: map[string]any{"action": "guardrails.set", "tenant": id, "policy": pc.Name, "policy_version": version, "checks": checks}}
	if !a.record(c, ev, nil) {
		return
	}
	p, err := a.Tenants.SetGuardPolicy(c.Request.Context(), tenant.GuardPolicy{Tenant: id, Policy: string(canonical), Version: version, EventID: ev.ID})
	if err != nil {
		a.unapplied(c, ev, err)
		storeError(c, err)
		return
	}
	a.Guardrails.Changed(id)
	c.JSON(http.StatusOK, guardPolicyOut(p))
}

func (a *Admin) getGuardrails(c *gin.Context) {
	id := c.Param("tenant")
	if !a.existingTenant(c, id) {
		return
	}
	p, err := a.Tenants.GetGuardPolicy(c.Request.Context(), id)
	if errors.Is(err, tenant.ErrNotFound) {
		writeError(c, &gateway.Error{Status: 404, Type: gateway.TypeNotFound, Code: "not_found", Message: "This tenant has no guardrail policy of its own (the configured policies apply)."})
		return
	}
	if err != nil {
		storeError(c, err)
		return
	}
	c.JSON(http.StatusOK, guardPolicyOut(p))
}

func (a *Admin) deleteGuardrails(c *gin.Context) {
	id := c.Param("tenant")
	if !a.existingTenant(c, id) {
		return
	}
	old, err := a.Tenants.GetGuardPolicy(c.Request.Context(), id)
	if err != nil {
		storeError(c, err)
		return
	}
	ev := &ledger.Event{Tenant: ledger.SystemLog, Kind: ledger.KindAdmin,
		Attrs: map[string]any{"action": "guardrails.delete", "tenant": id, "policy_version": old.Version}}
	if !a.record(c, ev, nil) {
		return
	}
	if err := a.Tenants.DeleteGuardPolicy(c.Request.Context(), id); err != nil {
		a.unapplied(c, ev, err)
		storeError(c, err)
		return
	}
	a.Guardrails.Changed(id)
	c.JSON(http.StatusOK, gin.H{"object": "guardrail_policy.deleted", "tenant": id, "version": old.Version, "event_id": ev.ID})
}
