package gateway

import (
	"context"
	"time"
)

// Cost is what a call cost: an exact amount and the version of the price
// table that priced it.
type Cost struct {
	Amount NanoUSD
	// PriceVersion identifies the price table in force (e.g.
	// "builtin-2026-11-01+config.3f2a9c1e").
	PriceVersion string
}

// Pricer prices calls (gateway/pricing). Safe for concurrent use.
type Pricer interface {
	// Cost prices a usage on a target (a router target name); ok is
	// false when the target has no price.
	Cost(target string, u *Usage) (c Cost, ok bool)
	// Estimate is an upper estimate of a call on a route (the model name
	// the agent sent) before it is routed: the dearest of the route's
	// targets, for prompt and output tokens; ok is false when no target
	// of the route is priced.
	Estimate(route string, promptTokens, outputTokens int) (c Cost, ok bool)
}

// SpendRequest is what a call asks of its budgets before it runs.
type SpendRequest struct {
	// Model is the model (route) the agent asked for.
	Model string
	// PromptTokens is the prompt's estimated tokens; OutputTokens the
	// most the answer may take (max_tokens, or a configured default).
	PromptTokens, OutputTokens int
	// Cost is the estimated cost (zero when unpriced).
	Cost Cost
	// TraceID is the call's trace id (the reservation's id derives from
	// it, so a retried settlement is applied once).
	TraceID string
}

// Spender enforces budgets (gateway/spend): a call reserves its estimated
// spend before it runs, against every budget that applies to its caller,
// all or none, atomically (no check-then-increment window), and settles
// its actual spend after. Safe for concurrent use.
type Spender interface {
	// Reserve admits the call, or refuses it with the error the agent gets
	// (429, naming the budget and when it resets). A nil Reservation and
	// nil error: no budget applies. events are the attrs (JSON objects)
	// of the `budget` events that record the reservation or the refusal.
	Reserve(ctx context.Context, caller Caller, r SpendRequest) (res Reservation, events [][]byte, err *Error)
}

// Reservation is a call's admitted estimate.
type Reservation interface {
	// Settle charges what the call really cost (u nil: nothing was
	// used: the reservation is released) and returns the attrs (JSON
	// objects) of the `budget` events recording it (the settlement, and
	// the alerts of thresholds it crossed). Called once.
	Settle(ctx context.Context, u *Usage, c Cost) [][]byte
}

// Budget refusals name the budget, its limit and when it resets.
const (
	// CodeBudgetExceeded: the budget's spend has reached its limit (or
	// this call's estimate does not fit what remains).
	CodeBudgetExceeded = "budget_exceeded"
	// CodeBudgetReserved: calls in flight hold what remains of the budget;
	// retry after them (Retry-After is short).
	CodeBudgetReserved = "budget_reserved"
)

// Telemetry receives every finished call (OpenTelemetry traces,
// Prometheus metrics, Langfuse). Observe must not block or slow the call:
// exporters queue and drop (and count drops). The record is not changed
// after Observe (exporters may keep it). Safe for concurrent use.
type Telemetry interface {
	Observe(r *CallRecord)
}

// Telemetries fans a call out to several Telemetry.
type Telemetries []Telemetry

// Observe implements Telemetry.
func (ts Telemetries) Observe(r *CallRecord) {
	for _, t := range ts {
		t.Observe(r)
	}
}

// CallRecord summarizes a finished call for telemetry. Its TraceID is the
// ledger's trace id of the call.
type CallRecord struct {
	// TraceID is the call's W3C trace id (the ledger's), ParentSpanID the
	// span id of the agent's traceparent ("" without one), Sampled its
	// sampled flag (true without a traceparent).
	TraceID      string
	ParentSpanID string
	Sampled      bool
	// Caller.
	Tenant, KeyID, Team, AgentID string
	// Endpoint is chat.completions, embeddings or messages; Model the
	// model the agent asked for.
	Endpoint string
	Model    string
	Stream   bool
	// What the router did: the target that answered, its provider and
	// upstream model, and how many attempts it took.
	Target, Provider, UpstreamModel string
	Attempts                        int
	Start                           time.Time
	Duration, TTFB                  time.Duration
	// Status is the HTTP status answered; ErrorType and ErrorCode the
	// OpenAI-style error of a failed call.
	Status               int
	ErrorType, ErrorCode string
	FinishReason         string
	// Usage is the tokens (nil: none known); Cost what they cost (Priced
	// false: unpriced).
	Usage  *Usage
	Cost   Cost
	Priced bool
	// Guardrails are the call's guardrail decisions: the `decisions` of
	// its `guardrail` events (check, type, stage, verdict, action, score,
	// ...); GuardrailPolicy and GuardrailPolicyVersion the policy that
	// decided ("" when none did).
	Guardrails                              []map[string]any
	GuardrailPolicy, GuardrailPolicyVersion string
	// Input and Output are the request body and the answer as recorded.
	// They may hold personal data: exporters send them only when
	// configured to.
	Input, Output []byte
}

type delegationKey struct{}

// WithDelegation returns ctx carrying the delegation token an agent sent
// with a model call (X-Aigw-Delegation): the call is made for an A2A
// task delegated to it, and is charged to that delegation's budget.
func WithDelegation(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, delegationKey{}, token)
}

// Delegation returns the token of WithDelegation, or "".
func Delegation(ctx context.Context) string {
	t, _ := ctx.Value(delegationKey{}).(string)
	return t
}
