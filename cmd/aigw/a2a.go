package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"aigw/gateway"
	"aigw/gateway/a2a"
	"aigw/ledger"

	"github.com/redis/go-redis/v9"
)

// A2AConfig configures the A2A proxy (/a2a/): the agents others may
// delegate to through the gateway.
type A2AConfig struct {
	// RedisURL keeps task state in Redis, shared by replicas and kept
	// across restarts. Empty: in this process's memory.
	RedisURL string `yaml:"redis_url"`
	Prefix   string `yaml:"prefix"`
	// BaseURL is the gateway's public URL (agent cards, push callbacks).
	BaseURL string `yaml:"base_url"`
	// KeyFile holds the Ed25519 key that signs delegation tokens
	// (default DATA_DIR/delegation.key, created on first start).
	KeyFile  string           `yaml:"key_file"`
	MaxDepth int              `yaml:"max_depth"`
	Agents   []A2AAgentConfig `yaml:"agents"`
}

// A2AAgentConfig is one agent reachable through the gateway.
type A2AAgentConfig struct {
	Name    string            `yaml:"name"`
	Tenant  string            `yaml:"tenant"`
	URL     string            `yaml:"url"`      // its JSON-RPC endpoint
	CardURL string            `yaml:"card_url"` // default: URL's /.well-known/agent-card.json
	Headers map[string]string `yaml:"headers"`
	// Callers are the agents (X-Aigw-Agent) that may delegate to it ("*": any).
	Callers  []string `yaml:"callers"`
	MaxDepth int      `yaml:"max_depth"`
	// Scopes caps what a first delegation to it may carry.
	Scopes []string `yaml:"scopes"`
	// MaxBudget caps a first delegation's budget: usd (decimal) and tokens.
	MaxBudget *struct {
		USD    *gateway.NanoUSD `yaml:"usd"`
		Tokens int64            `yaml:"tokens"`
	} `yaml:"max_budget"`
	// MayInitiate lets the agent start a delegation without a token of its own.
	MayInitiate bool `yaml:"may_initiate"`
}

// a2aParts is the running A2A proxy.
type a2aParts struct {
	proxy *a2a.Proxy
	close func()
}

// newA2A builds the A2A proxy of the config (nil without agents).
func newA2A(ctx context.Context, cfg Config, auth func(ctx context.Context, secret string) (gateway.Caller, error), rec gateway.Recorder, lg *slog.Logger) (*a2aParts, error) {
	ac := cfg.A2A
	if len(ac.Agents) == 0 {
		return nil, nil
	}
	keyPath := ac.KeyFile
	if keyPath == "" {
		keyPath = filepath.Join(cfg.DataDir, "delegation.key")
	}
	seed, created, err := secretFile(keyPath, func() (string, error) {
		s := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(s); err != nil {
			return "", err
		}
		return base64.StdEncoding.EncodeToString(s), nil
	})
	if err != nil {
		return nil, fmt.Errorf("a2a: delegation key: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(seed)
	if err != nil || len(raw) != ed25519.SeedSize {
		return nil, fmt.Errorf("a2a: %s does not hold a base64 Ed25519 seed", keyPath)
	}
	if created {
		lg.Info("generated the delegation token key", "file", keyPath)
	}
	pc := a2a.Config{Authenticate: auth, Recorder: rec, SigningKey: ed25519.NewKeyFromSeed(raw), BaseURL: ac.BaseURL,
		MaxDepth: ac.MaxDepth, FailOpen: cfg.Gateway.FailOpen, Logger: lg}
	parts := &a2aParts{close: func() {}}
	if ac.RedisURL != "" {
		opt, err := redis.ParseURL(ac.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("a2a.redis_url: %w", err)
		}
		rc := redis.NewClient(opt)
		prefix := ac.Prefix
		if prefix == "" {
			prefix = "aigw:a2a:"
		}
		pc.Store = a2a.NewRedisStore(rc, prefix, 0)
		parts.close = func() { rc.Close() }
	}
	for _, a := range ac.Agents {
		ag := a2a.Agent{Name: a.Name, Tenant: a.Tenant, URL: a.URL, CardURL: a.CardURL, Headers: a.Headers, Callers: a.Callers,
			MaxDepth: a.MaxDepth, Scopes: a.Scopes, MayInitiate: a.MayInitiate}
		if b := a.MaxBudget; b != nil {
			mb := a2a.Budget{NanoUSD: a2a.Unlimited, Tokens: a2a.Unlimited}
			if b.USD != nil {
				mb.NanoUSD = int64(*b.USD)
			}
			if b.Tokens > 0 {
				mb.Tokens = b.Tokens
			}
			ag.MaxBudget = &mb
		}
		pc.Agents = append(pc.Agents, ag)
	}
	p, err := a2a.New(pc)
	if err != nil {
		parts.close()
		return nil, fmt.Errorf("a2a: %w", err)
	}
	parts.proxy = p
	closeStore := parts.close
	parts.close = func() { p.Close(context.Background()); closeStore() }
	return parts, nil
}

// DelegationCommand prints and proves a task's delegation tree.
type DelegationCommand struct{ *Main }

func (c *DelegationCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "tree" {
		fmt.Fprintln(c.Stderr, "Usage: aigw delegation tree -tenant T -task TASK_ID [ledger flags]")
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("aigw delegation tree", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var lf ledgerFlags
	lf.register(fs)
	tenantID := fs.String("tenant", "", "the tenant whose log holds the task")
	task := fs.String("task", "", "the task id (the gateway's, as the first caller got it)")
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage: aigw delegation tree -tenant T -task TASK_ID [ledger flags]

Reads the tenant's log and prints the delegation tree of a task (every hop, its
caller and callee, scopes, budget and state changes) as JSON, after checking it
from the events alone: one root, no orphan or loop, each hop within its parent's
scopes, budget and expiry, every state change one A2A allows. Exit code 1 when
the tree does not hold. Run 'aigw verify' to prove the log itself.
`)
		fs.PrintDefaults()
	}
	if _, err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	if *tenantID == "" || *task == "" {
		fs.Usage()
		return flag.ErrHelp
	}
	_, store, err := lf.openStore(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	head, err := store.Head(ctx, *tenantID)
	if err != nil {
		return err
	}
	var evs []ledger.Event
	for start := uint64(0); start < head.Size; start += 1024 {
		es, err := store.ReadEntries(ctx, *tenantID, start, int(min(1024, head.Size-start)))
		if err != nil {
			return err
		}
		for _, e := range es {
			if !strings.Contains(string(e.Data), `"kind":"delegation"`) {
				continue
			}
			ev, err := ledger.ParseEntry(e.Data)
			if err != nil {
				return fmt.Errorf("entry %d: %w", e.Index, err)
			}
			evs = append(evs, *ev)
		}
	}
	tree, err := a2a.BuildTree(evs, *task)
	if err != nil {
		return mismatchExit{fmt.Errorf("delegation tree of %s: %w", *task, err)}
	}
	out, err := json.MarshalIndent(tree, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "%s\n", out)
	fmt.Fprintf(c.Stderr, "delegation tree of %s holds (%d events of log %s up to index %d)\n", *task, len(evs), *tenantID, head.Size)
	return nil
}
