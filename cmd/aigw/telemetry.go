package main

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"time"

	"aigw/gateway"
	"aigw/gateway/router"
	"aigw/gateway/spend"
	"aigw/gateway/telemetry"
	"aigw/gateway/telemetry/langfuse"
	"aigw/ledger/jetstream"
)

// telemetryParts is the running telemetry: the OpenTelemetry and
// Prometheus side, and Langfuse when configured.
type telemetryParts struct {
	tel      *telemetry.Telemetry
	langfuse *langfuse.Exporter
}

// observer is what the pipeline reports calls to.
func (t *telemetryParts) observer() gateway.Telemetry {
	if t.langfuse == nil {
		return t.tel
	}
	return gateway.Telemetries{t.tel, t.langfuse}
}

// writeMetrics writes the Prometheus registry (appended to the API's
// hand-written metrics on /metrics).
func (t *telemetryParts) writeMetrics(w io.Writer) { t.tel.WriteMetrics(w) }

func (t *telemetryParts) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if t.langfuse != nil {
		t.langfuse.Close(ctx)
	}
	t.tel.Shutdown(ctx)
}

// newTelemetry builds the telemetry of the config, with gauges of the
// ledger (backlog, lag) and of the budgets (remaining).
func newTelemetry(cfg Config, rt *router.Router, ledgerMetrics *jetstream.Metrics, sp *spend.Spender, lg *slog.Logger) (*telemetryParts, error) {
	tc := cfg.Telemetry
	kinds := map[string]string{}
	for _, p := range cfg.Providers {
		kinds[p.Name] = p.Type
	}
	ratio := 1.0
	if tc.SampleRatio != nil {
		ratio = *tc.SampleRatio
	}
	tel, err := telemetry.New(telemetry.Config{
		ServiceName: tc.ServiceName, OTLPEndpoint: tc.OTLPEndpoint, OTLPHeaders: tc.OTLPHeaders, SampleRatio: ratio,
		TenantLabel: tc.TenantLabel, KnownModel: rt.Has, ProviderKinds: kinds, Logger: lg,
	})
	if err != nil {
		return nil, err
	}
	if tc.TenantLabel && tc.MetricsToken == "" {
		lg.Warn("telemetry.tenant_label without telemetry.metrics_token: /metrics names every tenant, with its usage and budgets, to anyone who can reach the gateway")
	}
	parts := &telemetryParts{tel: tel}
	if ledgerMetrics != nil {
		part := func(f func(jetstream.PartitionStats) float64) func() []telemetry.Sample {
			return func() []telemetry.Sample {
				snap := ledgerMetrics.Snapshot()
				out := make([]telemetry.Sample, 0, len(snap.Partitions))
				for p, ps := range snap.Partitions {
					out = append(out, telemetry.Sample{Labels: []string{strconv.Itoa(p)}, Value: f(ps)})
				}
				return out
			}
		}
		gauge, counter := tel.GaugeFunc, tel.CounterFunc
		for _, m := range []struct {
			register   func(name, help string, labels []string, collect func() []telemetry.Sample) error
			name, help string
			f          func(jetstream.PartitionStats) float64
		}{
			{gauge, "aigw_ledger_backlog_events", "Events of the partition in JetStream not yet sequenced into the ledger (as of the last batch).", func(ps jetstream.PartitionStats) float64 { return float64(ps.Pending) }},
			{gauge, "aigw_ledger_lag_seconds", "How long the last batch's first event waited between JetStream and its ledger commit.", func(ps jetstream.PartitionStats) float64 { return ps.Lag.Seconds() }},
			{gauge, "aigw_ledger_last_commit_seconds", "How long the last batch's ledger commit took.", func(ps jetstream.PartitionStats) float64 { return ps.LastCommit.Seconds() }},
			{counter, "aigw_ledger_appended_events_total", "Events appended to the ledger by this process's sequencer.", func(ps jetstream.PartitionStats) float64 { return float64(ps.Appended) }},
			{counter, "aigw_ledger_failed_batches_total", "Sequencer batches that failed (store errors, lost deliveries, JetStream errors), each followed by a rewind to the last acknowledged event.", func(ps jetstream.PartitionStats) float64 { return float64(ps.Errors) }},
			{counter, "aigw_ledger_lost_deliveries_total", "Sequencer batches that failed because a message JetStream delivered did not arrive (a connection fault between NATS and the sequencer); each is rewound and delivered again.", func(ps jetstream.PartitionStats) float64 { return float64(ps.LostDeliveries) }},
			{counter, "aigw_ledger_duplicate_events_total", "Events delivered again that the ledger already held (after a rewind or a redelivery), skipped.", func(ps jetstream.PartitionStats) float64 { return float64(ps.Duplicates) }},
		} {
			if err := m.register(m.name, m.help, []string{"partition"}, part(m.f)); err != nil {
				return nil, err
			}
		}
	}
	// Budgets remaining are per tenant: they name tenants and their
	// budgets on /metrics, open unless telemetry.metrics_token is set, so
	// they are exported only where tenants may be labels
	// (telemetry.tenant_label).
	if sp != nil && tc.TenantLabel {
		remaining := func(unit string) func() []telemetry.Sample {
			return func() []telemetry.Sample {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				var out []telemetry.Sample
				for _, t := range sp.Tenants() {
					st, err := sp.Status(ctx, t)
					if err != nil {
						continue
					}
					for _, b := range st {
						switch {
						case unit == "usd" && b.RemainingUSD != nil:
							out = append(out, telemetry.Sample{Labels: []string{t, b.ID}, Value: float64(*b.RemainingUSD) / 1e9})
						case unit == "tokens" && b.RemainingTokens != nil:
							out = append(out, telemetry.Sample{Labels: []string{t, b.ID}, Value: float64(*b.RemainingTokens)})
						}
					}
				}
				return out
			}
		}
		if err := tel.GaugeFunc("aigw_budget_remaining_usd", "What remains of a budget's money limit in its current window (limit less spent and reserved).", []string{"tenant", "budget"}, remaining("usd")); err != nil {
			return nil, err
		}
		if err := tel.GaugeFunc("aigw_budget_remaining_tokens", "What remains of a budget's token limit in its current window.", []string{"tenant", "budget"}, remaining("tokens")); err != nil {
			return nil, err
		}
	}
	if sp != nil {
		if err := tel.CounterFunc("aigw_budget_store_errors_total", "Budget counter store failures.", nil, func() []telemetry.Sample {
			return []telemetry.Sample{{Value: float64(sp.Errors.Load())}}
		}); err != nil {
			return nil, err
		}
	}
	if lf := tc.Langfuse; lf.Host != "" {
		exp, err := langfuse.New(langfuse.Config{
			Host: lf.Host, PublicKey: lf.PublicKey, SecretKey: lf.SecretKey, CaptureContent: lf.CaptureContent,
			QueueSize: lf.QueueSize, BatchSize: lf.BatchSize, FlushInterval: lf.FlushInterval, Logger: lg.With("exporter", "langfuse"),
		})
		if err != nil {
			tel.Shutdown(context.Background())
			return nil, err
		}
		parts.langfuse = exp
		if err := tel.CounterFunc("aigw_langfuse_dropped_total", "Calls not exported to Langfuse because its queue was full.", nil, func() []telemetry.Sample {
			return []telemetry.Sample{{Value: float64(exp.Dropped())}}
		}); err != nil {
			return nil, err
		}
	}
	return parts, nil
}
