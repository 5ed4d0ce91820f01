package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"aigw/gateway"
)

// TenantPolicyLoader reads a tenant's guardrail policy set through the
// admin API: its JSON (a PolicyConfig) and version, or found false.
type TenantPolicyLoader func(ctx context.Context, tenant string) (doc []byte, version string, found bool, err error)

// tenantPolicies caches tenants' policies from the loader: each is read at
// most once per TTL (replicas see a change within it; the replica that
// made it at once, through Invalidate).
type tenantPolicies struct {
	load TenantPolicyLoader
	ttl  time.Duration
	mu   sync.Mutex
	m    map[string]tenantEntry
}

type tenantEntry struct {
	p       *policy // nil: the tenant has none
	version string
	expires time.Time
}

// SetTenantPolicies makes the engine consult tenants' own policies (set
// through the admin API) before the configured ones.
func (e *Engine) SetTenantPolicies(load TenantPolicyLoader, ttl time.Duration) {
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	e.tenants = &tenantPolicies{load: load, ttl: ttl, m: map[string]tenantEntry{}}
}

// InvalidateTenant drops a tenant's cached policy (after a change).
func (e *Engine) InvalidateTenant(tenant string) {
	if t := e.tenants; t != nil {
		t.mu.Lock()
		delete(t.m, tenant)
		t.mu.Unlock()
	}
}

// errPolicyUnavailable: a tenant's policy could not be read: its calls are
// refused rather than run without their guardrails.
var errPolicyUnavailable = errors.New("guardrails: the tenant's policy cannot be read")

// tenantPolicy returns the tenant's own policy (nil: none).
func (e *Engine) tenantPolicy(ctx context.Context, tenant string) (*policy, error) {
	t := e.tenants
	if t == nil {
		return nil, nil
	}
	now := time.Now()
	t.mu.Lock()
	ent, ok := t.m[tenant]
	t.mu.Unlock()
	if ok && now.Before(ent.expires) {
		return ent.p, nil
	}
	doc, version, found, err := t.load(ctx, tenant)
	if err != nil {
		if ok {
			return ent.p, nil // a stale policy rather than none
		}
		return nil, fmt.Errorf("%w: %v", errPolicyUnavailable, err)
	}
	ent2 := tenantEntry{expires: now.Add(t.ttl), version: version}
	switch {
	case !found:
	case ok && ent.version == version && ent.p != nil:
		ent2.p = ent.p
	default:
		pc, _, err := ParsePolicy(doc)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errPolicyUnavailable, err)
		}
		p, err := e.buildPolicy(pc)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errPolicyUnavailable, err)
		}
		ent2.p = p
	}
	t.mu.Lock()
	t.m[tenant] = ent2
	t.mu.Unlock()
	return ent2.p, nil
}

// ParsePolicy reads a policy's JSON strictly (unknown fields refused) and
// validates it: what the admin API accepts. It returns the policy and its
// version.
func ParsePolicy(doc []byte) (PolicyConfig, string, error) {
	var pc PolicyConfig
	d := json.NewDecoder(bytes.NewReader(doc))
	d.DisallowUnknownFields()
	if err := d.Decode(&pc); err != nil {
		return PolicyConfig{}, "", fmt.Errorf("guardrails: the policy does not parse: %v", err)
	}
	if d.More() {
		return PolicyConfig{}, "", errors.New("guardrails: the policy has trailing data")
	}
	if err := pc.validate(); err != nil {
		return PolicyConfig{}, "", err
	}
	return pc, pc.version(), nil
}

// CheckPolicy parses a policy and builds every check (regexes compiled,
// tool rules checked): what the admin API runs before storing one. It
// returns the policy as stored (canonical JSON) and its version.
func (e *Engine) CheckPolicy(doc []byte) ([]byte, string, error) {
	pc, version, err := ParsePolicy(doc)
	if err != nil {
		return nil, "", err
	}
	if _, err := e.buildPolicy(pc); err != nil {
		return nil, "", err
	}
	out, err := json.Marshal(pc)
	return out, version, err
}

// buildPolicy builds a validated policy's checks.
func (e *Engine) buildPolicy(pc PolicyConfig) (*policy, error) {
	p := &policy{cfg: pc, version: pc.version()}
	for _, cc := range pc.Checks {
		c, err := build(cc)
		if err != nil {
			return nil, fmt.Errorf("guardrails: policy %s: check %s: %w", pc.Name, cc.ID, err)
		}
		p.checks = append(p.checks, c)
		if isOutputCheck(cc) {
			p.output = true
		}
	}
	return p, nil
}

func policyUnavailable(err error) *gateway.Error {
	return &gateway.Error{Status: 503, Type: gateway.TypeUnavailable, Code: "guardrails_unavailable", RetryAfter: time.Second,
		Message: "The tenant's guardrail policy cannot be read now; retry later.", Err: err}
}
