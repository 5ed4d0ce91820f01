package engine

import (
	"context"

	"aigw/gateway"
)

// RuleSummary is a guardrail policy as an agent may read it (the MCP
// server's guardrails context): which checks run at which stages with
// which action, never their word lists, patterns or prompts (an agent
// that could read them could write around them).
type RuleSummary struct {
	Policy  string         `json:"policy"`
	Version string         `json:"version"`
	Routes  []string       `json:"routes,omitempty"`
	Shadow  bool           `json:"shadow,omitempty"`
	Checks  []CheckSummary `json:"checks"`
	// Source is "tenant" (set through the admin API) or "config".
	Source string `json:"source"`
}

// CheckSummary is one check of a RuleSummary.
type CheckSummary struct {
	ID      string   `json:"id"`
	Type    string   `json:"type"`
	Stages  []string `json:"stages"`
	Action  string   `json:"action"`
	OnError string   `json:"on_error,omitempty"`
	Shadow  bool     `json:"shadow,omitempty"`
}

// Rules returns the policies that may apply to the caller's calls (on
// some route), in the order they are tried: the tenant's own policy, then
// the configured ones matching its tenant, agent and key.
func (e *Engine) Rules(ctx context.Context, caller gateway.Caller) ([]RuleSummary, error) {
	var out []RuleSummary
	tp, err := e.tenantPolicy(ctx, caller.Tenant)
	if err != nil {
		return nil, err
	}
	if tp != nil && matchAny(tp.cfg.Agents, caller.AgentID) && matchAny(tp.cfg.Keys, caller.KeyID) {
		out = append(out, summarize(tp, "tenant"))
	}
	for _, p := range e.policies {
		if matchAny(p.cfg.Tenants, caller.Tenant) && matchAny(p.cfg.Agents, caller.AgentID) && matchAny(p.cfg.Keys, caller.KeyID) {
			out = append(out, summarize(p, "config"))
		}
	}
	if out == nil {
		out = []RuleSummary{}
	}
	return out, nil
}

func summarize(p *policy, source string) RuleSummary {
	s := RuleSummary{Policy: p.cfg.Name, Version: p.version, Routes: p.cfg.Routes, Shadow: p.cfg.Shadow, Source: source, Checks: []CheckSummary{}}
	for _, c := range p.checks {
		s.Checks = append(s.Checks, CheckSummary{ID: c.cfg.ID, Type: c.cfg.Type, Stages: c.cfg.Stages, Action: c.cfg.Action, OnError: c.cfg.OnError, Shadow: c.cfg.Shadow})
	}
	return s
}
