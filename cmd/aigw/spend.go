package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"aigw/gateway/spend"
	"aigw/gateway/tenant"
	"aigw/gateway/webhook"
	"aigw/ledger"

	"github.com/redis/go-redis/v9"
)

// spendParts is the running spend control.
type spendParts struct {
	spender *spend.Spender
	hooks   *spendHooks
	closers []func(context.Context)
}

func (s *spendParts) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, f := range s.closers {
		f(ctx)
	}
}

// spendHooks connects the spender to what is built after it (the ledger
// recorder of the admin API).
type spendHooks struct {
	record func(ctx context.Context, ev *ledger.Event) error
}

// validateBudgets checks the config file's budgets.
func (c *Config) validateBudgets() error {
	seen := map[string]bool{}
	for i := range c.Budgets.Budgets {
		b := &c.Budgets.Budgets[i]
		if err := b.Validate(); err != nil {
			return fmt.Errorf("budgets.list[%d]: %w", i, err)
		}
		k := b.Tenant + "/" + b.ID
		if seen[k] {
			return fmt.Errorf("budgets.list: budget %s of tenant %s declared twice", b.ID, b.Tenant)
		}
		seen[k] = true
	}
	return nil
}

// newSpend builds the spender: counters in Redis (budgets.redis_url) or
// in memory, budgets from the config file and the tenant store, quota
// alerts to the webhook and into the tenant's ledger log.
func newSpend(ctx context.Context, cfg Config, tenants *tenant.Store, ledgerStore spend.EntryReader, lg *slog.Logger) (*spendParts, error) {
	if err := cfg.validateBudgets(); err != nil {
		return nil, err
	}
	bc := cfg.Budgets
	parts := &spendParts{hooks: &spendHooks{}}
	var counter spend.Counter
	if bc.RedisURL != "" {
		opt, err := redis.ParseURL(bc.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("budgets.redis_url: %w", err)
		}
		rc := redis.NewClient(opt)
		if err := rc.Ping(ctx).Err(); err != nil {
			lg.Warn("budget counters: Redis not reachable at start (calls with budgets are refused until it is, unless budgets.fail_open)", "addr", opt.Addr, "err", err)
		}
		prefix := bc.Prefix
		if prefix == "" {
			prefix = "aigw:budget:"
		}
		counter = spend.NewRedis(rc, prefix)
		parts.closers = append(parts.closers, func(context.Context) { rc.Close() })
	}
	fileBudgets := map[string][]spend.Budget{}
	for _, b := range bc.Budgets {
		fileBudgets[b.Tenant] = append(fileBudgets[b.Tenant], b)
	}
	if counter == nil {
		mem := spend.NewMemory()
		counter = mem
		if ledgerStore != nil {
			// Counters in memory start from what the ledger records.
			if err := restoreCounters(ctx, mem, tenants, ledgerStore, fileBudgets, lg); err != nil {
				return nil, fmt.Errorf("restoring budget counters from the ledger: %w", err)
			}
		}
	}
	var sender *webhook.Sender
	hooks := parts.hooks
	var pending sync.Map // webhook id -> alert (tenant, id) being delivered
	type sent struct{ tenant, alert string }
	if bc.Webhook.URL != "" {
		var err error
		sender, err = webhook.New(webhook.Config{
			URL: bc.Webhook.URL, Secret: bc.Webhook.Secret, Timeout: bc.Webhook.Timeout, MaxAttempts: bc.Webhook.MaxAttempts,
			Logger: lg.With("component", "webhook"),
			OnResult: func(r webhook.Result) {
				// The delivery is part of the record: an alert that never
				// reached its receiver is visible in the tenant's log.
				v, ok := pending.LoadAndDelete(r.ID)
				if !ok || hooks.record == nil {
					return
				}
				a := v.(sent)
				attrs := map[string]any{"action": "alert.delivered", "alert": a.alert, "webhook_id": r.ID, "attempts": r.Attempts}
				if r.Status != 0 {
					attrs["status"] = r.Status
				}
				if r.Err != nil {
					attrs["action"], attrs["error"] = "alert.failed", truncateString(r.Err.Error(), 256)
				}
				ev := &ledger.Event{Tenant: a.tenant, Kind: "budget", Attrs: attrs}
				if err := hooks.record(context.Background(), ev); err != nil {
					lg.Warn("could not record a quota alert's delivery", "alert", a.alert, "err", err)
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("budgets.webhook: %w", err)
		}
		parts.closers = append(parts.closers, func(ctx context.Context) { sender.Close(ctx) })
	}
	sp, err := spend.New(spend.Config{
		Counter: counter, CacheTTL: cfg.Gateway.AuthCacheTTL, Hold: bc.Hold, Wait: bc.Wait, FailOpen: bc.FailOpen, Logger: lg,
		Budgets: func(ctx context.Context, t string) ([]spend.Budget, error) {
			return tenantBudgets(ctx, tenants, t, fileBudgets[t])
		},
		Alert: func(a spend.Alert) {
			lg.Info("quota alert", "tenant", a.Tenant, "budget", a.Budget, "threshold", a.Threshold, "unit", a.Unit, "spent", a.Spent, "limit", a.Limit)
			if sender == nil {
				return
			}
			sum := sha256.Sum256([]byte(a.ID))
			id := "alert_" + hex.EncodeToString(sum[:16])
			pending.Store(id, sent{tenant: a.Tenant, alert: a.ID})
			if err := sender.Send(context.Background(), id, "budget.threshold", a); err != nil {
				pending.Delete(id)
				lg.Warn("quota alert not queued for the webhook", "alert", a.ID, "err", err)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	parts.spender = sp
	return parts, nil
}

// restoreCounters sets the in-memory budget counters of every tenant with
// budgets to the spend its ledger log records for their current windows.
func restoreCounters(ctx context.Context, mem *spend.Memory, tenants *tenant.Store, store spend.EntryReader, file map[string][]spend.Budget, lg *slog.Logger) error {
	ts, err := tenants.ListTenants(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, t := range ts {
		bs, err := tenantBudgets(ctx, tenants, t.ID, file[t.ID])
		if err != nil || len(bs) == 0 {
			if err != nil {
				return err
			}
			continue
		}
		since := now
		for _, b := range bs {
			if start, _ := b.Window.Bounds(now); start.Before(since) {
				since = start
			}
		}
		n, err := mem.RestoreFromLedger(ctx, store, t.ID, since)
		if err != nil {
			return err
		}
		if n > 0 {
			lg.Info("budget counters restored from the ledger", "tenant", t.ID, "windows", n, "since", since)
		}
	}
	return nil
}

// tenantBudgets is a tenant's budgets: the config file's, and the admin
// API's (which replace a file budget of the same id).
func tenantBudgets(ctx context.Context, tenants *tenant.Store, t string, file []spend.Budget) ([]spend.Budget, error) {
	stored, err := tenants.ListBudgets(ctx, t)
	if err != nil {
		return nil, err
	}
	out := make([]spend.Budget, 0, len(file)+len(stored))
	byID := map[string]int{}
	for _, b := range file {
		byID[b.ID] = len(out)
		out = append(out, b)
	}
	for _, sb := range stored {
		b, err := spend.ParseBudget([]byte(sb.Spec))
		if err != nil {
			return nil, fmt.Errorf("stored budget %s of %s: %w", sb.ID, t, err)
		}
		if i, ok := byID[b.ID]; ok {
			out[i] = b
			continue
		}
		out = append(out, b)
	}
	return out, nil
}

// checkBudget validates an admin API budget for a tenant and id.
func checkBudget(t, id string, body []byte) ([]byte, map[string]any, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, nil, errors.New("the body is not a JSON object")
	}
	probe["id"], _ = json.Marshal(id)
	probe["tenant"], _ = json.Marshal(t)
	norm, _ := json.Marshal(probe)
	b, err := spend.ParseBudget(norm)
	if err != nil {
		return nil, nil, err
	}
	canonical, err := json.Marshal(b)
	if err != nil {
		return nil, nil, err
	}
	attrs := map[string]any{"scope": b.Scope.String(), "window": b.Window.Kind}
	if b.LimitUSD != nil {
		attrs["limit_usd"] = b.LimitUSD.String()
	}
	if b.LimitTokens > 0 {
		attrs["limit_tokens"] = b.LimitTokens
	}
	alerts := make([]any, len(b.Alerts))
	for i, a := range b.Alerts {
		alerts[i] = a
	}
	attrs["alerts"] = alerts
	return canonical, attrs, nil
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
