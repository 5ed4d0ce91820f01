package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"aigw/ledger"
)

// Recorder durably records ledger events (the ledger's JetStream producer,
// through an adapter). Publish starts recording events of one log as one
// unit (all or none), each with its payload (committed in the entry,
// stored beside it; payloads may be shorter than events); Pending.Wait
// returns nil once they are durable. Errors wrap ledger.ErrBackpressure
// when the ledger cannot take the events now. Safe for concurrent use.
type Recorder interface {
	Publish(events []*ledger.Event, payloads [][]byte) (Pending, error)
}

// HealthChecker is a Recorder that can tell cheaply, before a call starts,
// that the ledger cannot record it (its connection is down), so that no
// provider is called for an answer that could not be given.
type HealthChecker interface {
	Healthy() error
}

// Pending is an event being recorded.
type Pending interface {
	Wait(ctx context.Context) error
}

// Router picks targets and runs calls on them with fallback (gateway/router).
type Router interface {
	Provider
	Embedder
	// Do runs fn on the route's targets with the router's policy (used to
	// forward native requests byte for byte).
	Do(ctx context.Context, model string, fn func(ctx context.Context, t Target) error) error
	// Has reports whether model names a route.
	Has(model string) bool
	// Models lists the routes.
	Models() []Model
}

// Caller is who makes a call: the tenant (whose log records it), the API
// key and the agent.
type Caller struct {
	Tenant  string
	KeyID   string
	AgentID string
	// Team is the key's team ("" for none), for budgets and spend.
	Team string
	// Allows reports whether the key may use a model (nil: every model).
	Allows func(model string) bool
}

// PipelineConfig configures a Pipeline.
type PipelineConfig struct {
	Router   Router
	Recorder Recorder
	// Pricer prices calls: the cost (and price table version) in every
	// call's last event, and the estimate its budgets reserve. Nil: no
	// costs.
	Pricer Pricer
	// Spender, when set, enforces budgets: a call reserves its estimate
	// before it is routed and settles what it used after; both are
	// events of the call.
	Spender Spender
	// DefaultOutputTokens is the output a budget reservation assumes for
	// a request without max_tokens (default 4096).
	DefaultOutputTokens int
	// Telemetry, when set, observes every finished call (traces, metrics).
	Telemetry Telemetry
	// FailOpen answers calls without waiting for the ledger, and even when
	// it cannot record them (failures are logged and counted). The
	// default, fail-closed, waits for JetStream's acknowledgement before
	// any answer, and answers 503 when the ledger cannot take the events.
	FailOpen bool
	// LedgerTimeout bounds the wait for the ledger's acknowledgements
	// (default 5 s).
	LedgerTimeout time.Duration
	// Policy identifies the policy version in force; it is written into
	// every event.
	Policy string
	// Guard, when set, inspects every chat call's input and output
	// (guardrails); its decisions are events of the call.
	Guard  Guard
	Logger *slog.Logger
}

// Pipeline runs agent calls: it records the request, routes it, records
// every decision and attempt, and records the outcome, all in the caller's
// tenant log under one trace id, and in fail-closed mode answers only what
// the ledger has acknowledged.
type Pipeline struct {
	cfg PipelineConfig
	log *slog.Logger
	// LedgerFailures counts events the ledger did not acknowledge.
	LedgerFailures atomic.Int64
}

// NewPipeline returns a pipeline.
func NewPipeline(cfg PipelineConfig) (*Pipeline, error) {
	if cfg.Router == nil || cfg.Recorder == nil {
		return nil, errors.New("gateway: pipeline needs a router and a recorder")
	}
	if cfg.LedgerTimeout <= 0 {
		cfg.LedgerTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DefaultOutputTokens <= 0 {
		cfg.DefaultOutputTokens = 4096
	}
	return &Pipeline{cfg: cfg, log: cfg.Logger}, nil
}

// Router returns the pipeline's router.
func (p *Pipeline) Router() Router { return p.cfg.Router }

// ErrLedgerUnavailable is wrapped by the *Error returned when the ledger
// did not acknowledge a call's events (fail-closed).
var ErrLedgerUnavailable = errors.New("the audit ledger did not acknowledge this call's events")

// Call is one agent call in flight: its trace and the ledger events it has
// emitted. Methods are called from the goroutine serving the call.
type Call struct {
	p        *Pipeline
	caller   Caller
	Endpoint string
	Model    string
	Stream   bool
	TraceID  string
	start    time.Time
	ctx      context.Context

	batch Batch // the call's events on their way to the ledger

	mu sync.Mutex
	// what the router did
	attempts int
	target   string
	provider string
	upModel  string
	// lastTarget is the last attempt's target: what a failed call's
	// usage (a stream cut after its usage) is priced on.
	lastTarget, lastProvider, lastModel string

	guardState    any // the guard's state from input to output
	guardModified bool
	guardOutput   bool
	guardEnded    bool

	body        []byte        // the request as received
	parentSpan  string        // the agent's traceparent span id
	sampled     bool          // the agent's traceparent sampled flag
	reservation Reservation   // the call's budget reservation
	reserveEv   *ledger.Event // its event, until published
	guardEvents []map[string]any
	// guardPolicy and guardPolicyVersion name the policy that decided.
	guardPolicy, guardPolicyVersion string
	// charge is what the call's usage cost (priced: a price applied),
	// computed once when the call ends, for its last event, its budget
	// settlement and telemetry.
	charge Cost
	priced bool
}

type traceParentKey struct{}

// WithTraceParent returns ctx carrying the agent's W3C traceparent header:
// a call begun with its trace id becomes a child of its span in telemetry.
func WithTraceParent(ctx context.Context, traceparent string) context.Context {
	return context.WithValue(ctx, traceParentKey{}, traceparent)
}

// parentOf returns the span id and sampled flag of ctx's traceparent when
// its trace id is traceID.
func parentOf(ctx context.Context, traceID string) (span string, sampled bool) {
	tp, _ := ctx.Value(traceParentKey{}).(string)
	if len(tp) < 55 || tp[3:35] != traceID || tp[52] != '-' {
		return "", true
	}
	span = tp[36:52]
	for i := 0; i < len(span); i++ {
		if c := span[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", true
		}
	}
	if span == "0000000000000000" {
		return "", true
	}
	flags, err := hex.DecodeString(tp[53:55])
	if err != nil {
		return span, true
	}
	return span, flags[0]&1 == 1
}

// Begin starts a call: it records the request event (the request body as
// its payload) and returns the call, whose Context reports routing to it.
// traceID is the agent's W3C trace id, or "" for a new one.
func (p *Pipeline) Begin(ctx context.Context, caller Caller, endpoint, model string, stream bool, body []byte, traceID string) (*Call, error) {
	if !validTraceID(traceID) {
		traceID = NewTraceID()
	}
	c := &Call{p: p, caller: caller, Endpoint: endpoint, Model: model, Stream: stream, TraceID: traceID, start: time.Now(), body: body}
	c.batch = Batch{Recorder: p.cfg.Recorder, FailOpen: p.cfg.FailOpen, Timeout: p.cfg.LedgerTimeout, Failures: &p.LedgerFailures,
		Log: p.log, Tenant: caller.Tenant, TraceID: traceID}
	c.parentSpan, c.sampled = parentOf(ctx, traceID)
	c.ctx = WithObserver(ctx, c)
	if hc, ok := p.cfg.Recorder.(HealthChecker); ok && !p.cfg.FailOpen {
		if err := hc.Healthy(); err != nil {
			p.LedgerFailures.Add(1)
			return nil, ledgerError(err)
		}
	}
	attrs := map[string]any{"endpoint": endpoint, "model": model, "stream": stream, "bytes": len(body)}
	if caller.Team != "" {
		attrs["team"] = caller.Team
	}
	c.emit(ledger.KindRequest, attrs, body)
	return c, nil
}

// Context is the context to run the call's routing with.
func (c *Call) Context() context.Context { return c.ctx }

// Target is the target that answered (after a successful attempt).
func (c *Call) Target() (target, provider, model string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.target, c.provider, c.upModel
}

// emit adds an event to the call's unpublished events; Ready publishes
// them together, as one unit.
func (c *Call) emit(kind string, attrs map[string]any, payload []byte) {
	c.emitEvent(kind, attrs, nil, payload)
}

// emitEvent adds an event with attrs, or raw attrs (a JSON object).
func (c *Call) emitEvent(kind string, attrs map[string]any, raw []byte, payload []byte) *ledger.Event {
	ev := &ledger.Event{
		ID: ledger.NewEventID(), Tenant: c.caller.Tenant, Kind: kind, Time: time.Now(),
		Actor: ledger.Actor{KeyID: c.caller.KeyID, AgentID: c.caller.AgentID}, TraceID: c.TraceID,
		Policy: c.p.cfg.Policy, Attrs: attrs, RawAttrs: raw,
	}
	c.batch.Add(ev, payload)
	return ev
}

// publish starts recording the events emitted so far, as one unit.
func (c *Call) publish() { c.batch.Publish() }

func ledgerError(err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Type: TypeUnavailable, Code: "ledger_unavailable",
		Message: "The audit ledger cannot record this call now; retry later.", RetryAfter: time.Second,
		Err: fmt.Errorf("%w: %w", ErrLedgerUnavailable, err)}
}

// Ready publishes the events emitted so far and waits until they are
// durable. In fail-closed mode an error means the agent must get nothing of
// this call but the 503 it returns. Call it before the first byte of an
// answer.
func (c *Call) Ready() error {
	if err := c.batch.Ready(c.ctx); err != nil {
		return ledgerError(err)
	}
	return nil
}

// Route records the router's decision (Observer).
func (c *Call) Route(d RouteDecision) {
	attrs := map[string]any{"route": d.Route, "strategy": d.Strategy, "candidates": stringsAny(d.Candidates), "reason": d.Reason}
	if len(d.Skipped) > 0 {
		sk := make(map[string]any, len(d.Skipped))
		for k, v := range d.Skipped {
			sk[k] = v
		}
		attrs["skipped"] = sk
	}
	c.emit(ledger.KindRoute, attrs, nil)
}

// Attempt records one provider attempt (Observer).
func (c *Call) Attempt(a Attempt) {
	attrs := map[string]any{
		"n": a.N, "target": a.Target, "provider": a.Provider, "model": a.Model,
		"outcome": a.Outcome, "duration_us": a.Duration.Microseconds(),
	}
	if a.Status != 0 {
		attrs["status"] = a.Status
	}
	if a.Next != "" {
		attrs["next"] = a.Next
	}
	if a.Err != nil {
		attrs["error"] = truncate(a.Err.Error(), 512)
	}
	c.mu.Lock()
	c.attempts++
	if a.Outcome == OutcomeOK {
		c.target, c.provider, c.upModel = a.Target, a.Provider, a.Model
	}
	c.lastTarget, c.lastProvider, c.lastModel = a.Target, a.Provider, a.Model
	c.mu.Unlock()
	c.emit(ledger.KindAttempt, attrs, nil)
}

// Outcome is how a call ended, for its last ledger event.
type Outcome struct {
	// Status is the HTTP status answered.
	Status int
	// Usage is the tokens the call used (nil: none known).
	Usage        *Usage
	FinishReason string
	// TTFB is the time to the first byte of a streamed answer.
	TTFB time.Duration
	// Body is the answer as the agent receives it (committed as the
	// payload); for a stream, the assembled message.
	Body []byte
}

// Respond records the response event and waits until every event of the
// call is durable. Only after it returns nil may the answer (or, for a
// stream, its end) reach the agent.
func (c *Call) Respond(o Outcome) error {
	c.guardDone(o.Usage, true)
	c.price(o.Usage)
	c.settle(o.Usage)
	attrs := c.outcomeAttrs(o)
	c.emit(ledger.KindResponse, attrs, o.Body)
	err := c.Ready()
	if err != nil {
		c.withheld()
	}
	c.observe(o, err)
	return err
}

// withheld records, as best it can, that an answer was withheld because
// the ledger did not acknowledge the call's events: if those events reach
// the ledger after all (an acknowledgement lost, not the event), the trace
// says the agent got a 503, not the answer.
func (c *Call) withheld() {
	attrs := c.outcomeAttrs(Outcome{Status: http.StatusServiceUnavailable})
	attrs["error_type"], attrs["error_code"] = TypeUnavailable, "ledger_unavailable"
	attrs["error"] = "answer withheld: the ledger did not acknowledge the call's events"
	c.emit(ledger.KindError, attrs, nil)
	c.publish() // best effort, not awaited
}

// Fail records the error event of a call that failed (err is what the
// agent is told) and waits for the ledger. The returned error is err, or
// the ledger's 503 if the ledger failed too.
func (c *Call) Fail(err error, o Outcome) error {
	c.guardDone(o.Usage, o.Usage != nil)
	c.price(o.Usage)
	c.settle(o.Usage)
	ae := AsError(err)
	attrs := c.outcomeAttrs(o)
	attrs["status"] = ae.Status
	attrs["error_type"] = ae.Type
	if ae.Code != "" {
		attrs["error_code"] = ae.Code
	}
	attrs["error"] = truncate(ae.Message, 512)
	c.emit(ledger.KindError, attrs, o.Body)
	lerr := c.Ready()
	o.Status = ae.Status
	c.observe(o, ae)
	if lerr != nil && !errors.Is(err, ErrLedgerUnavailable) {
		return lerr
	}
	return ae
}

// Reserve reserves a call's estimated spend on its budgets (nothing
// without a Spender): promptTokens estimated, outputTokens the most the
// answer may use (0: the configured default; negative: none). A refusal is returned as
// the *Error the agent gets, not yet recorded (Fail it).
func (c *Call) Reserve(promptTokens, outputTokens int) *Error {
	sp := c.p.cfg.Spender
	if sp == nil || c.reservation != nil {
		return nil
	}
	switch {
	case outputTokens < 0: // no output (embeddings)
		outputTokens = 0
	case outputTokens == 0:
		outputTokens = c.p.cfg.DefaultOutputTokens
	}
	r := SpendRequest{Model: c.Model, PromptTokens: promptTokens, OutputTokens: outputTokens, TraceID: c.TraceID}
	if pr := c.p.cfg.Pricer; pr != nil {
		r.Cost, _ = pr.Estimate(c.Model, promptTokens, outputTokens)
	}
	res, evs, err := sp.Reserve(c.ctx, c.caller, r)
	for _, ev := range evs {
		e := c.emitEvent(KindBudget, nil, ev, nil)
		if res != nil {
			c.reserveEv = e
		}
	}
	c.reservation = res
	return err
}

// ReserveChat reserves a chat request's estimated spend (see Reserve).
func (c *Call) ReserveChat(req *ChatRequest) *Error {
	if c.p.cfg.Spender == nil {
		return nil
	}
	return c.Reserve(EstimatePromptTokens(req), req.MaxOutputTokens())
}

// KindBudget is the ledger kind of budget events (reserve, settle,
// refuse, alert).
const KindBudget = "budget"

// price prices the call's usage on the target it is charged to (see
// costTarget), once, when the call ends.
func (c *Call) price(u *Usage) {
	c.charge, c.priced = Cost{}, false
	if c.p.cfg.Pricer == nil || u == nil {
		return
	}
	if t := c.costTarget(); t != "" {
		c.charge, c.priced = c.p.cfg.Pricer.Cost(t, u)
	}
}

// costTarget is the target a call's usage is priced on: the one that
// answered, or the last one tried (a stream that failed after it started).
func (c *Call) costTarget() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.target != "" {
		return c.target
	}
	return c.lastTarget
}

// settle settles the call's reservation with what it used (nil: released).
func (c *Call) settle(u *Usage) {
	res := c.reservation
	if res == nil {
		return
	}
	c.reservation = nil
	// A reservation whose event has not been published yet (a call that
	// is not streamed) is recorded by its settlement alone, which holds
	// the estimate: one event instead of two in the same ledger message.
	if c.reserveEv != nil {
		c.batch.Remove(c.reserveEv)
		c.reserveEv = nil
	}
	for _, ev := range res.Settle(c.ctx, u, c.charge) {
		c.emitEvent(KindBudget, nil, ev, nil)
	}
}

// observe hands the finished call to telemetry.
func (c *Call) observe(o Outcome, err error) {
	t := c.p.cfg.Telemetry
	if t == nil {
		return
	}
	r := &CallRecord{Cost: c.charge, Priced: c.priced}
	r.TraceID, r.ParentSpanID, r.Sampled = c.TraceID, c.parentSpan, c.sampled
	r.Tenant, r.KeyID, r.Team, r.AgentID = c.caller.Tenant, c.caller.KeyID, c.caller.Team, c.caller.AgentID
	r.Endpoint, r.Model, r.Stream = c.Endpoint, c.Model, c.Stream
	r.Start, r.Duration, r.TTFB = c.start, time.Since(c.start), o.TTFB
	r.Status, r.FinishReason, r.Usage = o.Status, o.FinishReason, o.Usage
	if err != nil {
		ae := AsError(err)
		r.Status, r.ErrorType, r.ErrorCode = ae.Status, ae.Type, ae.Code
	}
	c.mu.Lock()
	r.Target, r.Provider, r.UpstreamModel, r.Attempts = c.target, c.provider, c.upModel, c.attempts
	r.Guardrails = c.guardEvents
	r.GuardrailPolicy, r.GuardrailPolicyVersion = c.guardPolicy, c.guardPolicyVersion
	c.mu.Unlock()
	r.Input, r.Output = c.body, o.Body
	t.Observe(r)
}

func (c *Call) outcomeAttrs(o Outcome) map[string]any {
	c.mu.Lock()
	target, provider, model, attempts := c.target, c.provider, c.upModel, c.attempts
	if target == "" && o.Usage != nil {
		// A stream that failed after it started: its usage came from the
		// last attempt's target.
		target, provider, model = c.lastTarget, c.lastProvider, c.lastModel
	}
	c.mu.Unlock()
	attrs := map[string]any{
		"status": o.Status, "latency_us": time.Since(c.start).Microseconds(), "attempts": attempts,
	}
	if target != "" {
		attrs["target"], attrs["provider"], attrs["model"] = target, provider, model
	}
	if o.FinishReason != "" {
		attrs["finish_reason"] = o.FinishReason
	}
	if o.TTFB > 0 {
		attrs["ttfb_us"] = o.TTFB.Microseconds()
	}
	if u := o.Usage; u != nil {
		tok := map[string]any{"prompt": u.PromptTokens, "completion": u.CompletionTokens, "total": u.TotalTokens}
		if u.PromptTokensDetails != nil && u.PromptTokensDetails.CachedTokens > 0 {
			tok["cached"] = u.PromptTokensDetails.CachedTokens
		}
		if u.CompletionTokensDetails != nil && u.CompletionTokensDetails.ReasoningTokens > 0 {
			tok["reasoning"] = u.CompletionTokensDetails.ReasoningTokens
		}
		if u.Estimated {
			tok["estimated"] = true
		}
		if u.PromptTokensDetails != nil && u.PromptTokensDetails.CacheCreationTokens > 0 {
			tok["cache_write"] = u.PromptTokensDetails.CacheCreationTokens
		}
		attrs["tokens"] = tok
		if c.priced {
			attrs["cost_usd"] = c.charge.Amount.String()
			attrs["price_version"] = c.charge.PriceVersion
		}
	}
	if c.caller.Team != "" {
		attrs["team"] = c.caller.Team
	}
	return attrs
}

// AsError returns err as the *Error the agent is told: itself if it is one,
// an upstream error mapped to an OpenAI-style error, or a 500 that names
// nothing internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var pe *ProviderError
	if errors.As(err, &pe) {
		switch {
		case pe.Status == http.StatusTooManyRequests:
			return &Error{Status: 429, Type: TypeRateLimit, Code: "upstream_rate_limited", Message: "The upstream provider is rate limiting requests; retry later.", RetryAfter: pe.RetryAfter, Err: err}
		case pe.Status == http.StatusBadRequest || pe.Status == http.StatusUnprocessableEntity || pe.Status == http.StatusRequestEntityTooLarge || pe.Status == http.StatusNotFound:
			// The request itself was refused: pass the upstream's reason on.
			return &Error{Status: pe.Status, Type: TypeInvalidRequest, Code: pe.Code, Message: "upstream " + pe.Provider + ": " + truncate(pe.Message, 1000), Err: err}
		case pe.Status == 529 || pe.Status == http.StatusServiceUnavailable:
			return &Error{Status: 503, Type: TypeUnavailable, Code: "upstream_overloaded", Message: "The upstream provider is overloaded; retry later.", RetryAfter: pe.RetryAfter, Err: err}
		case pe.Status == http.StatusGatewayTimeout || pe.Status == http.StatusRequestTimeout:
			return &Error{Status: 504, Type: TypeUpstream, Code: "upstream_timeout", Message: "The upstream provider timed out.", Err: err}
		default:
			return &Error{Status: 502, Type: TypeUpstream, Code: "upstream_error", Message: fmt.Sprintf("The upstream provider failed (status %d).", pe.Status), Err: err}
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: 504, Type: TypeUpstream, Code: "upstream_timeout", Message: "The upstream provider did not answer in time.", Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Status: 499, Type: TypeInvalidRequest, Code: "client_closed_request", Message: "The client closed the request.", Err: err}
	case errors.Is(err, ErrStreamCut), errors.Is(err, ErrStreamMalformed):
		return &Error{Status: 502, Type: TypeUpstream, Code: "upstream_stream_error", Message: "The upstream stream failed mid-answer.", Err: err}
	case errors.Is(err, ledger.ErrBackpressure):
		return ledgerError(err)
	}
	return &Error{Status: 500, Type: TypeServer, Message: "Internal error.", Err: err}
}

// GuardInput runs the guard's input inspection of a begun call (nothing
// without a guard): its decisions become events of the call; a block is
// returned as the *Error the agent gets, not yet recorded (Fail it). req is
// nil for a request that cannot be read in the OpenAI shape (see
// Guard.Input).
func (c *Call) GuardInput(req *ChatRequest) *Error {
	g := c.p.cfg.Guard
	if g == nil {
		return nil
	}
	ins, state := g.Input(c.ctx, c.caller, c.Endpoint, c.Model, req)
	c.guardState = state
	if ins != nil {
		c.guardModified, c.guardOutput = ins.Modified, ins.Output
	}
	c.recordInspection("input", ins)
	return c.hold(ins)
}

// hold returns an inspection's block, or waits for the approval it holds
// the call for (the events so far recorded first, so that the approver
// and the ledger see the pending call).
func (c *Call) hold(ins *Inspection) *Error {
	if ins == nil {
		return nil
	}
	if ins.Block != nil {
		return ins.Block
	}
	if ins.Hold == nil {
		return nil
	}
	if err := c.Ready(); err != nil {
		return AsError(err)
	}
	return ins.Hold.Wait(c.ctx)
}

// GuardOutput runs the guard's inspection of a complete answer, which it
// may change in place (then resp.Raw is cleared); a block is returned as
// the *Error the agent gets, not yet recorded.
func (c *Call) GuardOutput(req *ChatRequest, resp *ChatResponse) *Error {
	g := c.p.cfg.Guard
	if g == nil {
		return nil
	}
	ins := g.Output(c.ctx, c.caller, req, c.guardState, resp)
	c.recordInspection("output", ins)
	return c.hold(ins)
}

// Chat runs a non-streaming completion; body is the request as received.
// It returns the response and its encoding, which is what was committed.
func (p *Pipeline) Chat(ctx context.Context, caller Caller, req *ChatRequest, body []byte, traceID string) (*ChatResponse, []byte, error) {
	call, err := p.Begin(ctx, caller, "chat.completions", req.Model, false, body, traceID)
	if err != nil {
		return nil, nil, err
	}
	if block := call.GuardInput(req); block != nil {
		return nil, nil, call.Fail(block, Outcome{Status: block.Status})
	}
	if refused := call.ReserveChat(req); refused != nil {
		return nil, nil, call.Fail(refused, Outcome{Status: refused.Status})
	}
	resp, err := p.cfg.Router.Chat(call.Context(), req)
	if err != nil {
		return nil, nil, call.Fail(err, Outcome{Status: AsError(err).Status})
	}
	if block := call.GuardOutput(req, resp); block != nil {
		return nil, nil, call.Fail(block, Outcome{Status: block.Status, Usage: resp.Usage})
	}
	out := resp.Raw
	if out == nil {
		if out, err = json.Marshal(resp); err != nil {
			return nil, nil, call.Fail(err, Outcome{Status: 500})
		}
	}
	finish := ""
	if len(resp.Choices) > 0 {
		finish = resp.Choices[0].FinishReason
	}
	if err := call.Respond(Outcome{Status: 200, Usage: resp.Usage, FinishReason: finish, Body: out}); err != nil {
		return nil, nil, err
	}
	return resp, out, nil
}

// Embed runs an embeddings call.
func (p *Pipeline) Embed(ctx context.Context, caller Caller, req *EmbeddingRequest, body []byte, traceID string) ([]byte, error) {
	call, err := p.Begin(ctx, caller, "embeddings", req.Model, false, body, traceID)
	if err != nil {
		return nil, err
	}
	if p.cfg.Guard != nil {
		// The texts to embed leave for the provider like a prompt does:
		// the guard inspects them (one user message each) and counts them
		// against rate and token limits. Token-id input cannot be read (nil).
		var creq *ChatRequest
		if len(req.Input.Texts) > 0 {
			creq = &ChatRequest{Model: req.Model, Messages: make([]Message, len(req.Input.Texts))}
			for i, t := range req.Input.Texts {
				creq.Messages[i] = Message{Role: "user", Content: TextContent(t)}
			}
		}
		if block := call.GuardInput(creq); block != nil {
			return nil, call.Fail(block, Outcome{Status: block.Status})
		}
		if call.guardModified && creq != nil {
			// Redacted: embed the texts as the guard left them.
			r := *req
			r.Input.Texts = make([]string, len(creq.Messages))
			for i := range creq.Messages {
				r.Input.Texts[i] = creq.Messages[i].Content.String()
			}
			req = &r
		}
	}
	if p.cfg.Spender != nil {
		n := 0
		for _, t := range req.Input.Texts {
			n += EstimateTokens(t)
		}
		if n == 0 {
			n = len(req.Input.Raw) / 2 // token ids: at most one token per two bytes of JSON
		}
		if refused := call.Reserve(n, -1); refused != nil {
			return nil, call.Fail(refused, Outcome{Status: refused.Status})
		}
	}
	resp, err := p.cfg.Router.Embed(call.Context(), req)
	if err != nil {
		return nil, call.Fail(err, Outcome{Status: AsError(err).Status})
	}
	out, err := json.Marshal(resp)
	if err != nil {
		return nil, call.Fail(err, Outcome{Status: 500})
	}
	u := resp.Usage
	if err := call.Respond(Outcome{Status: 200, Usage: &u, Body: out}); err != nil {
		return nil, err
	}
	return out, nil
}

// ChunkWriter writes a streamed answer to the agent in some wire format
// (OpenAI SSE, Anthropic SSE).
type ChunkWriter interface {
	// WriteChunk writes one chunk and flushes it, unless more says the
	// next chunk has already arrived (it will be written at once, and
	// flushed with this one, or by Flush). The first call sends the
	// response headers.
	WriteChunk(c *ChatChunk, more bool) error
	// Flush sends what WriteChunk left unflushed (nothing, if nothing
	// is): the pipeline calls it before it waits, for the upstream or
	// the ledger.
	Flush() error
	// Finish ends a successful stream (OpenAI: data: [DONE]).
	Finish(u *Usage) error
	// Fail ends a stream with an explicit error event. started says
	// whether any chunk was written (if not, the writer may still answer
	// with an error status instead).
	Fail(e *Error, started bool) error
}

// Stream runs a streamed completion into w. Fallback happens only before
// the first chunk reaches w; the ledger's acknowledgement of the call so
// far is awaited before the first byte (fail-closed), and of the response
// event before the stream's clean end, which is replaced by an error event
// if the ledger fails. The usage chunk is passed on only if the agent asked
// for it (stream_options.include_usage); usage is always recorded.
func (p *Pipeline) Stream(ctx context.Context, caller Caller, req *ChatRequest, body []byte, traceID string, w ChunkWriter) error {
	call, err := p.Begin(ctx, caller, "chat.completions", req.Model, true, body, traceID)
	if err != nil {
		return w.Fail(AsError(err), false)
	}
	if block := call.GuardInput(req); block != nil {
		return w.Fail(AsError(call.Fail(block, Outcome{Status: block.Status})), false)
	}
	if refused := call.ReserveChat(req); refused != nil {
		return w.Fail(AsError(call.Fail(refused, Outcome{Status: refused.Status})), false)
	}
	return p.RunStream(call, req, w)
}

// RunStream streams a begun call into w (see Stream).
func (p *Pipeline) RunStream(call *Call, req *ChatRequest, w ChunkWriter) error {
	s, err := p.cfg.Router.ChatStream(call.Context(), req)
	if err != nil {
		ferr := call.Fail(err, Outcome{Status: AsError(err).Status})
		return w.Fail(AsError(ferr), false)
	}
	return p.Pump(call, req, s, w)
}

// Pump streams an opened stream of a begun call into w: it waits for the
// ledger before the first byte, passes chunks on as they come, records the
// outcome and ends the stream (see Stream). It closes s.
func (p *Pipeline) Pump(call *Call, req *ChatRequest, s Stream, w ChunkWriter) error {
	// The stream is closed before a failure is recorded: closing reports
	// the router's last attempt, which must be in the call's final batch.
	defer s.Close()
	if err := call.Ready(); err != nil {
		s.Close()
		call.Fail(err, Outcome{Status: 503})
		return w.Fail(AsError(err), false)
	}
	var acc Accumulator
	wantUsage := req.WantsUsage()
	started := false
	var ttfb time.Duration
	var si StreamInspector
	if g := p.cfg.Guard; g != nil {
		si = g.Stream(call.ctx, call.caller, req, call.guardState)
	}
	// outcome is how the stream ended, with the assembled answer.
	outcome := func() Outcome {
		u := s.Usage()
		if u == nil {
			u = acc.Estimate(req)
		}
		out, _ := json.Marshal(acc.Response(u))
		return Outcome{Status: 200, Usage: u, FinishReason: acc.Finish(), TTFB: ttfb, Body: out}
	}
	clientGone := func(werr error) error {
		s.Close()
		call.Fail(&Error{Status: 499, Type: TypeInvalidRequest, Code: "client_closed_request", Message: "The client stopped reading the stream.", Err: werr}, outcome())
		return werr
	}
	// unflushed: chunks were written and left for the next write's flush
	// (the next chunk had arrived); flush sends them before a wait.
	unflushed := false
	flush := func() error {
		if !unflushed {
			return nil
		}
		unflushed = false
		if werr := w.Flush(); werr != nil {
			return clientGone(werr)
		}
		return nil
	}
	// write passes chunks on to the agent (the ones the inspector
	// released); a guard's block ends the stream with finish_reason
	// content_filter and an explicit error event.
	write := func(cs []*ChatChunk, more bool) error {
		for i, c := range cs {
			acc.Add(c)
			if c.Usage != nil && !wantUsage {
				if len(c.Choices) == 0 {
					continue // the agent did not ask for the usage chunk
				}
				c.Usage, c.Raw = nil, nil
			}
			if !started {
				ttfb = time.Since(call.start)
				started = true
			}
			m := more || i < len(cs)-1
			if werr := w.WriteChunk(c, m); werr != nil {
				return clientGone(werr)
			}
			unflushed = m
		}
		return nil
	}
	buffered := func() bool { return false }
	if b, ok := s.(Buffered); ok {
		buffered = b.Buffered
	}
	// inspected records an inspection's decisions; a block ends the stream
	// (stopped is true, err what to return).
	inspected := func(ins *Inspection) (stopped bool, err error) {
		call.recordInspection("output", ins)
		if ins == nil || ins.Block == nil {
			return false, nil
		}
		s.Close()
		stop := FinishContentFilter
		end := &ChatChunk{Object: "chat.completion.chunk", Choices: []ChunkChoice{{FinishReason: &stop}}}
		if werr := w.WriteChunk(end, false); werr != nil {
			return true, clientGone(werr)
		}
		started = true
		acc.Add(end)
		o := outcome()
		o.FinishReason = FinishContentFilter
		return true, w.Fail(AsError(call.Fail(ins.Block, o)), true)
	}
	for {
		// Before Next waits for the upstream, what was written goes out
		// (buffered scans the reader's buffer: only when there is some).
		if unflushed && !buffered() {
			if werr := flush(); werr != nil {
				return werr
			}
		}
		c, err := s.Next()
		if errors.Is(err, io.EOF) {
			if si != nil {
				rel, ins := si.End()
				if stopped, err := inspected(ins); stopped {
					return err
				}
				if werr := write(rel, false); werr != nil {
					return werr
				}
			}
			o := outcome()
			if wantUsage && !acc.sawUsage {
				if werr := w.WriteChunk(acc.UsageChunk(o.Usage), false); werr != nil {
					return clientGone(werr)
				}
				unflushed = false
			}
			// The answer goes out as it came; only its end waits for
			// the ledger.
			if werr := flush(); werr != nil {
				return werr
			}
			if lerr := call.Respond(o); lerr != nil {
				return w.Fail(AsError(lerr), true)
			}
			return w.Finish(o.Usage)
		}
		if err != nil {
			o := outcome()
			s.Close()
			if werr := flush(); werr != nil {
				return werr
			}
			return w.Fail(AsError(call.Fail(err, o)), started)
		}
		// more: the next chunk has already arrived, so the writer may
		// leave this one for the next write's flush (or for the flush
		// before the next wait, if the inspector holds the next back).
		more := buffered()
		rel := []*ChatChunk{c}
		if si != nil {
			var ins *Inspection
			rel, ins = si.Push(c)
			if stopped, err := inspected(ins); stopped {
				return err
			}
		}
		if werr := write(rel, more); werr != nil {
			return werr
		}
	}
}

func stringsAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func validTraceID(s string) bool {
	if len(s) != 32 || s == "00000000000000000000000000000000" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// NewTraceID returns a random W3C trace id.
func NewTraceID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// TraceIDFrom returns the trace id of a W3C traceparent header value
// ("00-<trace id>-<span id>-<flags>"), or "".
func TraceIDFrom(traceparent string) string {
	if len(traceparent) >= 55 && traceparent[2] == '-' && traceparent[35] == '-' {
		if id := traceparent[3:35]; validTraceID(id) {
			return id
		}
	}
	return ""
}
