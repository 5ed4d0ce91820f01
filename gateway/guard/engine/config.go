package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
)

// Stages where checks run.
const (
	// StageInput: the request's system, developer and user messages.
	StageInput = "input"
	// StageToolResults: tool results coming back (role "tool" messages):
	// where indirect prompt injection arrives.
	StageToolResults = "tool_results"
	// StageToolCalls: tool calls going out, in the model's answer (and the
	// tools the request declares).
	StageToolCalls = "tool_calls"
	// StageOutput: the answer's text, streamed or not.
	StageOutput = "output"
)

// Actions, strongest first: decisions combine as block > redact > flag > log_only.
const (
	ActionBlock  = "block"
	ActionRedact = "redact"
	ActionFlag   = "flag"
	ActionLog    = "log_only"
)

// Check types.
const (
	TypeContent    = "content"
	TypePII        = "pii"
	TypeSecrets    = "secrets"
	TypeInjection  = "prompt_injection"
	TypeToolPolicy = "tool_policy"
	TypeJSONSchema = "json_schema"
	// TypeJudge: a policy written in words, judged by a model on a route
	// the tenant chooses, through the gateway's own router (the judge's
	// call is itself a recorded call).
	TypeJudge = "llm_judge"
	// TypeGrounding: deterministic grounding of an answer in the documents
	// the request carried (tool results, numbered passages): citations
	// that point nowhere, quotations and numbers absent from them.
	TypeGrounding = "grounding"
)

// Config is the guardrail configuration: policies, each for some tenants
// and routes (the YAML `guardrails:` section).
type Config struct {
	Policies []PolicyConfig `yaml:"policies" json:"policies"`
	// Limits are the rate limits and token budgets of every chat call.
	Limits LimitsConfig `yaml:"limits" json:"limits"`
	// Approvals configures where calls held for a person's approval
	// (require_approval) are kept.
	Approvals ApprovalsConfig `yaml:"approvals" json:"approvals"`
}

// DefaultApprovalsPrefix is the default prefix of the approvals' Redis keys.
const DefaultApprovalsPrefix = "aigw:approvals:"

// ApprovalsConfig configures the approval store (ApprovalStore).
type ApprovalsConfig struct {
	// RedisURL shares approvals between gateway replicas: a decision made
	// through any replica reaches the call waiting on another, and an
	// agent polls or retries on any of them. Empty keeps them in this
	// process (one gateway: a decision reaches only the replica it is
	// made on).
	RedisURL string `yaml:"redis_url" json:"-"`
	// Prefix of the Redis keys (default DefaultApprovalsPrefix).
	Prefix string `yaml:"prefix" json:"prefix,omitempty"`
	// PollMS is how often a held call re-reads its approval in Redis, in
	// case the notification of a decision was lost (default 1000).
	PollMS int `yaml:"poll_ms" json:"poll_ms,omitempty"`
	// Store, when set, keeps the approvals instead of RedisURL or memory
	// (the caller owns it: Engine.Close does not close it).
	Store ApprovalStore `yaml:"-" json:"-"`
}

// LimitsConfig configures rate limits and token budgets (per tenant, key
// and route: requests and tokens per minute, tokens per request and per
// day), counted before the call (prompt tokens, offline, plus max_tokens)
// and settled with the provider's usage after it.
type LimitsConfig struct {
	// RedisURL shares the counters between gateway replicas (atomic Lua
	// scripts); empty keeps them in this process.
	RedisURL string `yaml:"redis_url" json:"-"`
	// Prefix of the Redis keys (default "aigw:limits").
	Prefix string      `yaml:"prefix" json:"prefix,omitempty"`
	Rules  []LimitRule `yaml:"rules" json:"rules,omitempty"`
	// OnError is what happens when the limiter cannot decide (Redis down):
	// fail_closed (default: 503) or fail_open.
	OnError string `yaml:"on_error" json:"on_error,omitempty"`
}

// LimitRule is one limits rule; a zero limit is no limit.
type LimitRule struct {
	Scope            string `yaml:"scope" json:"scope"` // tenant, key or route
	Tenant           string `yaml:"tenant" json:"tenant,omitempty"`
	ID               string `yaml:"id" json:"id,omitempty"` // a key id or route name
	RPM              int64  `yaml:"rpm" json:"rpm,omitempty"`
	TPM              int64  `yaml:"tpm" json:"tpm,omitempty"`
	TokensPerRequest int64  `yaml:"tokens_per_request" json:"tokens_per_request,omitempty"`
	TokensPerDay     int64  `yaml:"tokens_per_day" json:"tokens_per_day,omitempty"`
}

// PolicyConfig is one policy: the checks that apply to the calls it matches.
type PolicyConfig struct {
	Name string `yaml:"name" json:"name"`
	// Tenants the policy applies to ("*" or empty: every tenant); Routes
	// (model names as requested, path.Match globs), Agents and Keys
	// likewise.
	// The first policy that matches a call applies.
	Tenants []string `yaml:"tenants" json:"tenants,omitempty"`
	Routes  []string `yaml:"routes" json:"routes,omitempty"`
	Agents  []string `yaml:"agents" json:"agents,omitempty"`
	// Keys are API key ids (as the admin API shows them).
	Keys []string `yaml:"keys" json:"keys,omitempty"`
	// Shadow runs every check but enforces none: decisions are recorded
	// with "shadow": true (to try a policy on live traffic).
	Shadow bool          `yaml:"shadow" json:"shadow,omitempty"`
	Checks []CheckConfig `yaml:"checks" json:"checks"`
	// Holdback is how many characters of a streamed answer are held back
	// for the output checks to see before they reach the agent (default
	// 256). It bounds the time to first byte the checks add.
	Holdback int `yaml:"holdback" json:"holdback,omitempty"`
}

// CheckConfig is one check of a policy.
type CheckConfig struct {
	ID     string   `yaml:"id" json:"id"`
	Type   string   `yaml:"type" json:"type"`
	Stages []string `yaml:"stages" json:"stages"`
	Action string   `yaml:"action" json:"action"`
	Shadow bool     `yaml:"shadow" json:"shadow,omitempty"`
	// OnError is fail_closed (block when the check cannot run) or
	// fail_open (record "not_evaluated" and go on). Default fail_closed.
	OnError string `yaml:"on_error" json:"on_error,omitempty"`
	// Threshold is the score from which a finding counts (default 0.5).
	Threshold float64 `yaml:"threshold" json:"threshold,omitempty"`

	// content
	Phrases []string            `yaml:"phrases" json:"phrases,omitempty"`
	Regexes []string            `yaml:"regexes" json:"regexes,omitempty"`
	Topics  map[string][]string `yaml:"topics" json:"topics,omitempty"`
	// pii
	Entities []string `yaml:"entities" json:"entities,omitempty"`
	// Restore puts redacted PII back into the answer (placeholders the
	// model repeats become the original values for the agent).
	Restore bool `yaml:"restore" json:"restore,omitempty"`
	// llm_judge: the policy in words, the route (model name) that judges,
	// and how long the judge may take (default 2 s).
	Policy    string `yaml:"policy" json:"policy,omitempty"`
	Route     string `yaml:"route" json:"route,omitempty"`
	TimeoutMS int    `yaml:"timeout_ms" json:"timeout_ms,omitempty"`
	// ApprovalWaitMS is how long a call held for approval
	// (require_approval) waits for a person's decision (default 30 s, at
	// most 5 minutes) before the agent gets a pending reference.
	ApprovalWaitMS int `yaml:"approval_wait_ms" json:"approval_wait_ms,omitempty"`
	// tool_policy
	Tools *ToolsConfig `yaml:"tools" json:"tools,omitempty"`
	// grounding: the share of unsupported claims from which the check
	// fires (default 0.3); a citation out of range or a quotation not in
	// the documents fires it alone.
	MaxUnsupported float64 `yaml:"max_unsupported" json:"max_unsupported,omitempty"`
}

// ToolsConfig is a tool_policy check's configuration.
type ToolsConfig struct {
	Default            string     `yaml:"default" json:"default,omitempty"`
	Rules              []ToolRule `yaml:"rules" json:"rules,omitempty"`
	MaxCallsPerRequest int        `yaml:"max_calls_per_request" json:"max_calls_per_request,omitempty"`
	ValidateDeclared   *bool      `yaml:"validate_declared" json:"validate_declared,omitempty"`
}

// ToolRule allows or denies tools by name glob, with argument constraints.
type ToolRule struct {
	Tool     string         `yaml:"tool" json:"tool"`
	Decision string         `yaml:"decision" json:"decision"`
	Schema   map[string]any `yaml:"schema" json:"schema,omitempty"`
	// Args constrains arguments by property name or JSON pointer.
	Args    map[string]ArgConstraint `yaml:"args" json:"args,omitempty"`
	Paths   []string                 `yaml:"paths" json:"paths,omitempty"`
	Domains []string                 `yaml:"domains" json:"domains,omitempty"`
}

// ArgConstraint constrains one tool argument.
type ArgConstraint struct {
	Required  bool     `yaml:"required" json:"required,omitempty"`
	Forbidden bool     `yaml:"forbidden" json:"forbidden,omitempty"`
	Type      string   `yaml:"type" json:"type,omitempty"`
	Min       *float64 `yaml:"min" json:"min,omitempty"`
	Max       *float64 `yaml:"max" json:"max,omitempty"`
	Enum      []any    `yaml:"enum" json:"enum,omitempty"`
	Pattern   string   `yaml:"pattern" json:"pattern,omitempty"`
	MaxLength int      `yaml:"max_length" json:"max_length,omitempty"`
}

var (
	validTypes   = []string{TypeContent, TypePII, TypeSecrets, TypeInjection, TypeToolPolicy, TypeJSONSchema, TypeJudge, TypeGrounding}
	validStages  = []string{StageInput, StageToolResults, StageToolCalls, StageOutput}
	validActions = []string{ActionBlock, ActionApprove, ActionRedact, ActionFlag, ActionLog}
)

// stagesFor lists the stages a check type can run at.
func stagesFor(typ string) []string {
	switch typ {
	case TypeToolPolicy:
		return []string{StageToolCalls}
	case TypeJSONSchema:
		return []string{StageOutput}
	case TypeJudge:
		return []string{StageInput, StageOutput}
	case TypeGrounding:
		return []string{StageOutput}
	}
	return []string{StageInput, StageToolResults, StageOutput}
}

// validate checks a policy and fills in defaults.
func (p *PolicyConfig) validate() error {
	if p.Name == "" {
		return fmt.Errorf("guardrails: a policy has no name")
	}
	for _, g := range append(append(append(slices.Clone(p.Routes), p.Agents...), p.Tenants...), p.Keys...) {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("guardrails: policy %s: bad pattern %q", p.Name, g)
		}
	}
	if p.Holdback == 0 {
		p.Holdback = 256
	}
	if p.Holdback < 16 || p.Holdback > 64<<10 {
		return fmt.Errorf("guardrails: policy %s: holdback %d out of range [16, 65536]", p.Name, p.Holdback)
	}
	ids := map[string]bool{}
	for i := range p.Checks {
		c := &p.Checks[i]
		where := fmt.Sprintf("guardrails: policy %s: check %q", p.Name, c.ID)
		if c.ID == "" || ids[c.ID] {
			return fmt.Errorf("guardrails: policy %s: check %d has no id or a duplicate one", p.Name, i)
		}
		ids[c.ID] = true
		if !slices.Contains(validTypes, c.Type) {
			return fmt.Errorf("%s: unknown type %q (one of %v)", where, c.Type, validTypes)
		}
		if len(c.Stages) == 0 {
			c.Stages = stagesFor(c.Type)[:1]
		}
		for _, st := range c.Stages {
			if !slices.Contains(validStages, st) {
				return fmt.Errorf("%s: unknown stage %q (one of %v)", where, st, validStages)
			}
			if !slices.Contains(stagesFor(c.Type), st) {
				return fmt.Errorf("%s: a %s check cannot run at stage %s", where, c.Type, st)
			}
		}
		if c.Action == "" {
			c.Action = ActionBlock
		}
		if !slices.Contains(validActions, c.Action) {
			return fmt.Errorf("%s: unknown action %q (one of %v)", where, c.Action, validActions)
		}
		if c.Action == ActionRedact && c.Type == TypeJSONSchema {
			return fmt.Errorf("%s: a %s check cannot redact (block, flag or log_only)", where, c.Type)
		}
		// (A tool_policy check that redacts strips the refused calls from a
		// non-streamed answer; a streamed one is blocked.)
		if c.Type == TypeGrounding {
			if c.Action == ActionRedact {
				return fmt.Errorf("%s: a grounding check cannot redact (block, flag or log_only)", where)
			}
			if c.OnError == "" {
				c.OnError = "fail_open"
			}
		}
		if c.Type == TypeJudge {
			if c.Policy == "" || c.Route == "" {
				return fmt.Errorf("%s: an llm_judge check needs a policy and a route", where)
			}
			if c.Action == ActionRedact {
				return fmt.Errorf("%s: an llm_judge check cannot redact (block, flag or log_only)", where)
			}
			if c.TimeoutMS == 0 {
				c.TimeoutMS = 2000
			}
			if c.OnError == "" {
				c.OnError = "fail_open" // a quality check: its failure is recorded, not enforced
			}
		}
		if c.ApprovalWaitMS == 0 {
			c.ApprovalWaitMS = 30_000
		}
		if c.ApprovalWaitMS < 0 || c.ApprovalWaitMS > 300_000 {
			return fmt.Errorf("%s: approval_wait_ms %d out of [0, 300000]", where, c.ApprovalWaitMS)
		}
		switch c.OnError {
		case "":
			c.OnError = "fail_closed"
		case "fail_closed", "fail_open":
		default:
			return fmt.Errorf("%s: on_error %q (fail_closed or fail_open)", where, c.OnError)
		}
		if c.Threshold == 0 {
			c.Threshold = 0.5
		}
		if c.Threshold < 0 || c.Threshold > 1 {
			return fmt.Errorf("%s: threshold %v out of [0, 1]", where, c.Threshold)
		}
	}
	return nil
}

// version is the policy's version: the SHA-256 of its canonical JSON.
func (p *PolicyConfig) version() string {
	b, _ := json.Marshal(p) // struct fields in order; maps sorted
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:8])
}

func matchAny(globs []string, s string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		if g == "*" || g == s {
			return true
		}
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}
