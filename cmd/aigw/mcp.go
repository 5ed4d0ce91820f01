package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"aigw/gateway"
	"aigw/gateway/guard/engine"
	"aigw/gateway/guard/tools"
	"aigw/gateway/mcp"
	"aigw/gateway/router"
	"aigw/gateway/spend"
	"aigw/ledger"
	"aigw/usage"
	"aigw/verify"
)

// MCPConfig configures the gateway's MCP server (/mcp) and the upstream
// MCP servers agents reach through it.
type MCPConfig struct {
	// Upstreams are MCP servers whose tools agents of the listed tenants
	// call through the gateway, named "<name>__<tool>".
	Upstreams []MCPUpstreamConfig `yaml:"upstreams"`
	// SessionTimeout closes MCP sessions idle that long (default 30m).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// TenantIdleTimeout frees a tenant's MCP server (its tools, resources
	// and prompts) once the tenant has had no session that long (default
	// 5m); its next session builds it anew.
	TenantIdleTimeout time.Duration `yaml:"tenant_idle_timeout"`
}

// MCPUpstreamConfig is one upstream MCP server.
type MCPUpstreamConfig struct {
	Name    string   `yaml:"name"`
	Tenants []string `yaml:"tenants"`
	// URL of a streamable HTTP server, or Command (and Env, Dir) of a
	// stdio server the gateway runs.
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	Command []string          `yaml:"command"`
	Env     []string          `yaml:"env"`
	Dir     string            `yaml:"dir"`
	// Tools: default allow|deny (deny when unset), and globs of the
	// server's tool names allowed or denied; Paths and Domains constrain
	// the allowed tools' path and URL arguments.
	Tools struct {
		Default string   `yaml:"default"`
		Allow   []string `yaml:"allow"`
		Deny    []string `yaml:"deny"`
		Paths   []string `yaml:"paths"`
		Domains []string `yaml:"domains"`
	} `yaml:"tools"`
	// RPM bounds a tenant's calls to the server per minute (0: none).
	RPM int `yaml:"rpm"`
	// Injection: block (default) or flag tool results that look like a
	// prompt injection.
	Injection   string        `yaml:"injection"`
	CallTimeout time.Duration `yaml:"call_timeout"`
}

func (u MCPUpstreamConfig) upstream() mcp.Upstream {
	tc := tools.Config{Default: u.Tools.Default}
	for _, g := range u.Tools.Deny {
		tc.Rules = append(tc.Rules, tools.Rule{Tool: g, Decision: "deny"})
	}
	for _, g := range u.Tools.Allow {
		tc.Rules = append(tc.Rules, tools.Rule{Tool: g, Decision: "allow", Paths: u.Tools.Paths, Domains: u.Tools.Domains})
	}
	return mcp.Upstream{Name: u.Name, Tenants: u.Tenants, URL: u.URL, Headers: u.Headers, Command: u.Command, Env: u.Env, Dir: u.Dir,
		Tools: tc, RateLimit: mcp.RateLimit{RPM: int64(u.RPM)}, Injection: u.Injection, CallTimeout: u.CallTimeout}
}

// newMCP builds the /mcp server: the caller's models, guardrail rules,
// budgets, usage and ledger proofs as context, and the upstream servers.
func newMCP(ctx context.Context, cfg Config, rt *router.Router, eng *engine.Engine, sp *spend.Spender, la ledgerAccess,
	auth func(ctx context.Context, secret string) (gateway.Caller, error), rec gateway.Recorder, lg *slog.Logger) (*mcp.Server, error) {
	mc := mcp.Config{
		Authenticate: auth, Recorder: rec, FailOpen: cfg.Gateway.FailOpen, Logger: lg,
		SessionTimeout: cfg.MCP.SessionTimeout, TenantIdleTimeout: cfg.MCP.TenantIdleTimeout,
		Models: func(c gateway.Caller) []gateway.Model {
			var out []gateway.Model
			for _, m := range rt.Models() {
				if c.Allows == nil || c.Allows(m.ID) {
					out = append(out, m)
				}
			}
			return out
		},
		Guardrails: func(ctx context.Context, c gateway.Caller) (any, error) { return eng.Rules(ctx, c) },
		Budgets:    func(ctx context.Context, t string) (any, error) { return sp.Status(ctx, t) },
	}
	if la.store != nil {
		mc.Usage = func(ctx context.Context, t string, from, to time.Time) (any, error) {
			return usage.Summarize(ctx, verify.StoreSource(la.store), t, from, to, nil)
		}
		mc.Proof = func(ctx context.Context, t, traceID string) (any, error) {
			return traceProof(ctx, la.store, t, traceID)
		}
	}
	for _, u := range cfg.MCP.Upstreams {
		mc.Upstreams = append(mc.Upstreams, u.upstream())
	}
	return mcp.New(ctx, mc)
}

// maxProofScan bounds how far back a trace's events are looked for.
const maxProofScan = 100_000

// traceProof finds the events of a trace among the last entries of a
// tenant's log and proves each included in the log's latest checkpoint.
func traceProof(ctx context.Context, store ledger.Store, tenant, traceID string) (any, error) {
	if len(traceID) != 32 {
		return nil, fmt.Errorf("trace id: want 32 hex digits: %w", ledger.ErrNotFound)
	}
	head, err := store.Head(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if head.Size == 0 || head.Checkpoint == nil {
		return nil, fmt.Errorf("log %s is empty: %w", tenant, ledger.ErrNotFound)
	}
	needle := []byte(`"trace_id":"` + traceID + `"`)
	type entryProof struct {
		Index    uint64   `json:"index"`
		Kind     string   `json:"kind"`
		EventID  string   `json:"event_id"`
		LeafHash string   `json:"leaf_hash"`
		Proof    []string `json:"inclusion_proof"`
	}
	var found []entryProof
	floor := uint64(0)
	if head.Size > maxProofScan {
		floor = head.Size - maxProofScan
	}
	for end := head.Size; end > floor; {
		start := max(floor, end-min(end, 256))
		es, err := store.ReadEntries(ctx, tenant, start, int(end-start))
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if !bytes.Contains(e.Data, needle) {
				continue
			}
			ev, err := ledger.ParseEntry(e.Data)
			if err != nil || ev.TraceID != traceID {
				continue
			}
			hs, err := ledger.InclusionProof(ctx, store, tenant, e.Index, head.Size)
			if err != nil {
				return nil, err
			}
			p := make([]string, len(hs))
			for i, h := range hs {
				p[i] = hex.EncodeToString(h[:])
			}
			leaf := ledger.LeafHash(e.Data)
			found = append(found, entryProof{Index: e.Index, Kind: ev.Kind, EventID: ev.ID, LeafHash: hex.EncodeToString(leaf[:]), Proof: p})
		}
		end = start
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("no event of trace %s among the last %d entries of %s: %w", traceID, maxProofScan, tenant, ledger.ErrNotFound)
	}
	return map[string]any{"log": tenant, "tree_size": head.Size, "checkpoint": string(head.Checkpoint), "entries": found,
		"verify": "leaf_hash = SHA-256(0x00 || entry); fold the proof to the checkpoint's root hash (RFC 6962); entries at GET /ledger/<log>/tile/entries/…"}, nil
}
