package tenant

import (
	"context"
	"fmt"
	"time"
)

// StoredBudget is a tenant's budget set through the admin API: its JSON
// (gateway/spend.Budget), opaque to this package.
type StoredBudget struct {
	Tenant    string
	ID        string
	Spec      string
	UpdatedAt time.Time
	EventID   string
}

// maxBudgetSpec bounds a stored budget's JSON.
const maxBudgetSpec = 16 << 10

// ValidTeam reports whether s can name a team: 1 to 63 characters of
// [a-z0-9_.-], starting with a letter or digit.
func ValidTeam(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '-' || c == '.') {
			continue
		}
		return false
	}
	return true
}

// SetBudget stores (or replaces) a tenant's budget.
func (s *Store) SetBudget(ctx context.Context, b StoredBudget) (StoredBudget, error) {
	if !ValidID(b.Tenant) || !ValidTeam(b.ID) || b.Spec == "" || len(b.Spec) > maxBudgetSpec || len(b.EventID) != 36 {
		return StoredBudget{}, fmt.Errorf("tenant: set budget %q of %q: %w", b.ID, b.Tenant, ErrInvalid)
	}
	if _, err := s.GetTenant(ctx, b.Tenant); err != nil {
		return StoredBudget{}, err
	}
	b.UpdatedAt = s.stamp()
	q := rebind(s.driver, "INSERT INTO budgets (tenant, id, spec, updated_at, event_id) VALUES (?, ?, ?, ?, ?) "+
		"ON CONFLICT (tenant, id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at, event_id = excluded.event_id")
	if _, err := s.w.ExecContext(ctx, q, b.Tenant, b.ID, b.Spec, s.timeArg(&b.UpdatedAt), b.EventID); err != nil {
		return StoredBudget{}, fmt.Errorf("tenant: set budget %q of %q: %w", b.ID, b.Tenant, err)
	}
	return b, nil
}

// ListBudgets returns a tenant's budgets by id.
func (s *Store) ListBudgets(ctx context.Context, tenant string) ([]StoredBudget, error) {
	rows, err := s.r.QueryContext(ctx, rebind(s.driver, "SELECT tenant, id, spec, updated_at, event_id FROM budgets WHERE tenant = ? ORDER BY id"), tenant)
	if err != nil {
		return nil, fmt.Errorf("tenant: budgets of %q: %w", tenant, err)
	}
	defer rows.Close()
	var out []StoredBudget
	for rows.Next() {
		var (
			b  StoredBudget
			at nullTime
		)
		if err := rows.Scan(&b.Tenant, &b.ID, &b.Spec, &at, &b.EventID); err != nil {
			return nil, fmt.Errorf("tenant: budgets of %q: %w", tenant, err)
		}
		b.UpdatedAt = at.t
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tenant: budgets of %q: %w", tenant, err)
	}
	return out, nil
}

// DeleteBudget removes a tenant's budget (ErrNotFound if there is none).
func (s *Store) DeleteBudget(ctx context.Context, tenant, id string) error {
	res, err := s.w.ExecContext(ctx, rebind(s.driver, "DELETE FROM budgets WHERE tenant = ? AND id = ?"), tenant, id)
	if err != nil {
		return fmt.Errorf("tenant: delete budget %q of %q: %w", id, tenant, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("tenant: budget %q of %q: %w", id, tenant, ErrNotFound)
	}
	return nil
}
