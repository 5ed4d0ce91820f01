package tenant

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// GuardPolicy is a tenant's guardrail policy set through the admin API.
type GuardPolicy struct {
	Tenant string
	// Policy is the policy's JSON (the guard engine's PolicyConfig).
	Policy    string
	Version   string
	UpdatedAt time.Time
	EventID   string
}

const guardCols = "tenant, policy, version, updated_at, event_id"

// maxGuardPolicy bounds a stored policy's JSON.
const maxGuardPolicy = 1 << 20

// SetGuardPolicy stores (or replaces) a tenant's guardrail policy.
func (s *Store) SetGuardPolicy(ctx context.Context, p GuardPolicy) (GuardPolicy, error) {
	if !ValidID(p.Tenant) || p.Policy == "" || len(p.Policy) > maxGuardPolicy || p.Version == "" || len(p.EventID) != 36 {
		return GuardPolicy{}, fmt.Errorf("tenant: set guardrail policy of %q: %w", p.Tenant, ErrInvalid)
	}
	if _, err := s.GetTenant(ctx, p.Tenant); err != nil {
		return GuardPolicy{}, err
	}
	p.UpdatedAt = s.stamp()
	q := rebind(s.driver, "INSERT INTO guard_policies ("+guardCols+") VALUES (?, ?, ?, ?, ?) "+
		"ON CONFLICT (tenant) DO UPDATE SET policy = excluded.policy, version = excluded.version, updated_at = excluded.updated_at, event_id = excluded.event_id")
	if _, err := s.w.ExecContext(ctx, q, p.Tenant, p.Policy, p.Version, s.timeArg(&p.UpdatedAt), p.EventID); err != nil {
		return GuardPolicy{}, fmt.Errorf("tenant: set guardrail policy of %q: %w", p.Tenant, err)
	}
	return p, nil
}

// GetGuardPolicy returns a tenant's guardrail policy, or ErrNotFound.
func (s *Store) GetGuardPolicy(ctx context.Context, tenant string) (GuardPolicy, error) {
	var (
		p  GuardPolicy
		at nullTime
	)
	err := s.r.QueryRowContext(ctx, rebind(s.driver, "SELECT "+guardCols+" FROM guard_policies WHERE tenant = ?"), tenant).
		Scan(&p.Tenant, &p.Policy, &p.Version, &at, &p.EventID)
	if errors.Is(err, sql.ErrNoRows) {
		return GuardPolicy{}, fmt.Errorf("tenant: guardrail policy of %q: %w", tenant, ErrNotFound)
	}
	if err != nil {
		return GuardPolicy{}, fmt.Errorf("tenant: guardrail policy of %q: %w", tenant, err)
	}
	p.UpdatedAt = at.t
	return p, nil
}

// DeleteGuardPolicy removes a tenant's guardrail policy (ErrNotFound if it
// has none).
func (s *Store) DeleteGuardPolicy(ctx context.Context, tenant string) error {
	res, err := s.w.ExecContext(ctx, rebind(s.driver, "DELETE FROM guard_policies WHERE tenant = ?"), tenant)
	if err != nil {
		return fmt.Errorf("tenant: delete guardrail policy of %q: %w", tenant, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("tenant: guardrail policy of %q: %w", tenant, ErrNotFound)
	}
	return nil
}
