// Package engine applies tenant-scoped guardrail policies to calls: it
// implements gateway.Guard with the detectors of gateway/guard's
// sub-packages (content, pii, secrets, injection, tools, schema).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"aigw/gateway"
	"aigw/gateway/guard"
	"aigw/gateway/guard/grounding"
	"aigw/gateway/guard/limits"
	"aigw/gateway/guard/textnorm"
	"aigw/gateway/guard/tokenize"

	"github.com/redis/go-redis/v9"
)

// Finding and Detector are the detectors' contract (package guard).
type (
	Finding  = guard.Finding
	Detector = guard.Detector
)

// Engine applies the configured policies to calls: it implements
// gateway.Guard.
type Engine struct {
	policies []*policy
	log      *slog.Logger
	// limiter enforces Config.Limits (nil: no rules).
	limiter    limits.Limiter
	limitsOpen bool // fail open when the limiter cannot decide
	closers    []func() error
	judge      JudgeFunc
	// approvals keeps the calls held for approval (nil until Approvals:
	// in memory).
	approvals     ApprovalStore
	approvalsOnce sync.Once
	tenants       *tenantPolicies // nil: no tenant policies
}

var _ gateway.Guard = (*Engine)(nil)

type policy struct {
	cfg     PolicyConfig
	version string
	checks  []*check
	output  bool // some check runs at the output or tool_calls stage
}

// check is a configured check with what runs it.
type check struct {
	cfg CheckConfig
	// det scans text (content, pii, secrets, prompt_injection).
	det Detector
	// tools and schema checks.
	tools toolChecker
	// schema compiles the validator of a request's response_format (nil
	// validator: the request asks for no JSON).
	schema func(rf *gateway.ResponseFormat) (func(text string) error, error)
	// version of the detector, recorded with each decision.
	version string
	// grounder checks answers against the request's documents.
	grounder *grounding.Checker
	// box holds attributes of its events boxed once (see boxed).
	box boxed
}

// boxed holds the attributes that every decision of a check
// carries as interface values, made when it is built: boxing a string
// allocates, and every call records a decision per check.
type boxed struct{ id, typ, action, version any }

// boxWord returns s as an interface value, without allocating for the
// stages and verdicts events carry.
func boxWord(s string) any {
	switch s {
	case StageInput:
		return StageInput
	case StageToolResults:
		return StageToolResults
	case StageToolCalls:
		return StageToolCalls
	case StageOutput:
		return StageOutput
	case "pass":
		return "pass"
	case ActionBlock:
		return ActionBlock
	case ActionApprove:
		return ActionApprove
	case ActionRedact:
		return ActionRedact
	case ActionFlag:
		return ActionFlag
	case ActionLog:
		return ActionLog
	case "not_evaluated":
		return "not_evaluated"
	case "approved":
		return "approved"
	}
	return s
}

// toolChecker is a tool_policy check (gateway/guard/tools).
type toolChecker interface {
	CheckRequest(tools []gateway.Tool) []Violation
	CheckCalls(declared []gateway.Tool, calls []gateway.ToolCall) []Violation
}

// Violation is a tool call or declaration a tool policy refuses.
type Violation struct {
	Tool   string
	Index  int
	Reason string
	Rule   string
}

// vault holds the PII a call's input redaction replaced, to restore it.
type vault interface {
	Redact(text string, fs []Finding) string
	Restore(text string) string
}

// New builds the engine: every policy validated, every detector built.
func New(cfg Config, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{log: log}
	names := map[string]bool{}
	for i := range cfg.Policies {
		pc := cfg.Policies[i]
		// validate fills defaults into the checks: into a copy, never into
		// the caller's config (engines built from one config would race).
		pc.Checks = slices.Clone(pc.Checks)
		if err := pc.validate(); err != nil {
			return nil, err
		}
		if names[pc.Name] {
			return nil, fmt.Errorf("guardrails: two policies named %s", pc.Name)
		}
		names[pc.Name] = true
		p, err := e.buildPolicy(pc)
		if err != nil {
			return nil, err
		}
		e.policies = append(e.policies, p)
	}
	if err := e.buildLimits(cfg.Limits); err != nil {
		return nil, err
	}
	if err := e.buildApprovals(cfg.Approvals); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *Engine) buildApprovals(ac ApprovalsConfig) error {
	if ac.PollMS < 0 {
		return fmt.Errorf("guardrails: approvals: poll_ms %d is negative", ac.PollMS)
	}
	switch {
	case ac.Store != nil:
		e.approvals = ac.Store
		return nil
	case ac.RedisURL == "":
		e.approvals = NewMemoryApprovals(0)
		return nil
	}
	opt, err := redis.ParseURL(ac.RedisURL)
	if err != nil {
		return fmt.Errorf("guardrails: approvals: redis_url: %w", err)
	}
	client := redis.NewClient(opt)
	prefix := ac.Prefix
	if prefix == "" {
		prefix = DefaultApprovalsPrefix
	}
	s := NewRedisApprovals(client, prefix, 0, time.Duration(ac.PollMS)*time.Millisecond)
	e.approvals = s
	e.closers = append(e.closers, s.Close, client.Close)
	return nil
}

func (e *Engine) buildLimits(lc LimitsConfig) error {
	if len(lc.Rules) == 0 {
		return nil
	}
	switch lc.OnError {
	case "", "fail_closed":
	case "fail_open":
		e.limitsOpen = true
	default:
		return fmt.Errorf("guardrails: limits: on_error %q (fail_closed or fail_open)", lc.OnError)
	}
	rules := make([]limits.Rule, len(lc.Rules))
	for i, r := range lc.Rules {
		rules[i] = limits.Rule{Scope: r.Scope, Tenant: r.Tenant, ID: r.ID, RPM: r.RPM, TPM: r.TPM, TokensPerRequest: r.TokensPerRequest, TokensPerDay: r.TokensPerDay}
	}
	if lc.RedisURL == "" {
		m, err := limits.NewMemory(rules)
		if err != nil {
			return fmt.Errorf("guardrails: limits: %w", err)
		}
		e.limiter = m
		return nil
	}
	opt, err := redis.ParseURL(lc.RedisURL)
	if err != nil {
		return fmt.Errorf("guardrails: limits: redis_url: %w", err)
	}
	client := redis.NewClient(opt)
	prefix := lc.Prefix
	if prefix == "" {
		prefix = "aigw:limits"
	}
	r, err := limits.NewRedis(client, prefix, rules)
	if err != nil {
		client.Close()
		return fmt.Errorf("guardrails: limits: %w", err)
	}
	e.limiter = r
	go tokenize.Warm() // token limits count prompts offline: build the vocabularies before the first call
	e.closers = append(e.closers, client.Close)
	return nil
}

// Close releases the engine's connections (Redis), not an approval store
// given in its Config.
func (e *Engine) Close() error {
	var errs []error
	for _, c := range e.closers {
		errs = append(errs, c())
	}
	e.closers = nil
	return errors.Join(errs...)
}

func isOutputCheck(cc CheckConfig) bool {
	return slices.Contains(cc.Stages, StageOutput) || slices.Contains(cc.Stages, StageToolCalls) || cc.Type == TypePII && cc.Restore
}

// pickFor returns the policy of a call: the tenant's own (admin API), if
// it matches the call, else the first configured one that matches, or nil.
func (e *Engine) pickFor(ctx context.Context, caller gateway.Caller, model string) (*policy, error) {
	tp, err := e.tenantPolicy(ctx, caller.Tenant)
	if err != nil {
		return nil, err
	}
	if tp != nil && matchAny(tp.cfg.Routes, model) && matchAny(tp.cfg.Agents, caller.AgentID) && matchAny(tp.cfg.Keys, caller.KeyID) {
		return tp, nil
	}
	return e.pick(caller, model), nil
}

// pick returns the first configured policy matching the call, or nil.
func (e *Engine) pick(caller gateway.Caller, model string) *policy {
	for _, p := range e.policies {
		if matchAny(p.cfg.Tenants, caller.Tenant) && matchAny(p.cfg.Routes, model) && matchAny(p.cfg.Agents, caller.AgentID) && matchAny(p.cfg.Keys, caller.KeyID) {
			return p
		}
	}
	return nil
}

// callState is what the input side leaves for the output side.
type callState struct {
	p       *policy // nil: no policy matched (limits only)
	vault   vault   // nil until PII is redacted
	restore bool
	res     *limits.Reservation
	// decisions is memory for the decisions of Input (one allocation for
	// all), dropped when it returns; newDecision allocates when it is full
	// or nil.
	decisions []decision
	// norm normalizes the texts of Input's scans once for the detectors
	// that take it (sharedScanner); nil outside Input.
	norm *textnorm.Shared
}

// sharedScanner is a Detector that can normalize text through a
// textnorm.Shared, with what the call's other detectors normalized
// (content and injection): ScanShared finds what Scan finds.
type sharedScanner interface {
	ScanShared(text string, sh *textnorm.Shared, out []Finding) []Finding
}

// newDecision returns a zero decision, from st.decisions while it has room.
func (st *callState) newDecision() *decision {
	if st == nil || len(st.decisions) == cap(st.decisions) {
		return new(decision)
	}
	st.decisions = st.decisions[:len(st.decisions)+1]
	return &st.decisions[len(st.decisions)-1]
}

// segment is one piece of text of a request or answer: a message's
// content or one text part of it.
type segment struct {
	msg, part int // part -1: the content string
	stage     string
	text      *string
}

// inputSegments lists a request's texts by stage.
func inputSegments(req *gateway.ChatRequest) []segment {
	var out []segment
	for i := range req.Messages {
		m := &req.Messages[i]
		stage := StageInput
		if m.Role == "tool" {
			stage = StageToolResults
		}
		if m.Content.IsParts {
			for j := range m.Content.Parts {
				if m.Content.Parts[j].Type == "text" || m.Content.Parts[j].Text != "" {
					out = append(out, segment{i, j, stage, &m.Content.Parts[j].Text})
				}
			}
		} else if !m.Content.Null {
			out = append(out, segment{i, -1, stage, &m.Content.Text})
		}
	}
	return out
}

// decision is one check's verdict at one stage, recorded as an event.
type decision struct {
	c        *check
	stage    string
	verdict  string
	score    float64
	findings []eventFinding
	count    int
	reason   string // what the agent is told on a block
	err      string
	took     time.Duration
	pending  int // see scan; -1: none
	// judgeTrace is the trace id of an llm_judge check's own call.
	judgeTrace string
	// approvalID names the approval a require_approval decision waits for
	// (or the approved one the agent sent back).
	approvalID string
}

type eventFinding struct {
	Type    string  `json:"type"`
	Rule    string  `json:"rule,omitempty"`
	Score   float64 `json:"score"`
	Message int     `json:"message"`
	Part    int     `json:"part,omitempty"`
	Start   int     `json:"start"`
	End     int     `json:"end"`
}

const maxEventFindings = 32

func (d *decision) attrs(shadow bool) map[string]any {
	n := 7
	if shadow {
		n++
	}
	if d.count > 0 {
		n += 3
	}
	a := make(map[string]any, n)
	c := &d.c.box
	a["check"], a["type"], a["stage"], a["verdict"] = c.id, c.typ, boxWord(d.stage), boxWord(d.verdict)
	a["action"] = c.action // the policy and its version are the inspection's
	a["detector_version"], a["duration_us"] = c.version, d.took.Microseconds()
	if shadow {
		a["shadow"] = true
	}
	if d.count > 0 {
		a["score"] = roundScore(d.score)
		a["count"] = d.count
		fs := make([]any, 0, len(d.findings))
		for _, f := range d.findings {
			m := map[string]any{"type": f.Type, "score": roundScore(f.Score), "message": f.Message, "start": f.Start, "end": f.End}
			if f.Rule != "" {
				m["rule"] = f.Rule
			}
			if f.Part > 0 {
				m["part"] = f.Part
			}
			fs = append(fs, m)
		}
		a["findings"] = fs
	}
	if d.err != "" {
		a["error"] = d.err
	}
	if d.reason != "" && d.verdict != "pass" && d.c.cfg.Type != TypeJudge {
		a["reason"] = d.reason
	}
	if d.judgeTrace != "" {
		a["judge_trace_id"] = d.judgeTrace
	}
	if d.approvalID != "" {
		a["approval_id"] = d.approvalID
	}
	if d.c.cfg.Type == TypeJudge && d.count == 0 && d.err == "" {
		a["score"] = roundScore(d.score)
	}
	return a
}

// roundScore is f as fmt's "%.2f", boxed: the 101 texts of scores from 0
// to 1 are boxed once (every finding and decision records one).
func roundScore(f float64) any {
	var buf [32]byte
	b := strconv.AppendFloat(buf[:0], f, 'f', 2, 64) // what fmt's %.2f writes
	if len(b) == 4 && b[1] == '.' && (b[0] == '0' || b[0] == '1') {
		if i := int(b[0]-'0')*100 + int(b[2]-'0')*10 + int(b[3]-'0'); i <= 100 {
			return scoreTexts[i]
		}
	}
	return string(b)
}

// scoreTexts are "0.00" to "1.00", boxed.
var scoreTexts = func() (t [101]any) {
	for i := range t {
		t[i] = fmt.Sprintf("%d.%02d", i/100, i%100)
	}
	return t
}()

// scan runs a text check over segments of one stage and returns its
// decision; redaction is applied in place when the check redacts.
//
// tail, when not negative, is where the text may still continue (a
// stream's held text): a finding to redact that reaches it may be
// incomplete (a PEM block without its end yet), so it is not redacted now;
// d.pending is where the first such finding starts.
func (e *Engine) scan(c *check, stage string, segs []segment, st *callState, shadow bool, tail int) (d *decision) {
	d = st.newDecision()
	*d = decision{c: c, stage: stage, verdict: "pass", pending: -1}
	start := time.Now()
	defer func() {
		d.took = time.Since(start)
		if r := recover(); r != nil {
			e.log.Error("guardrail check panicked", "check", c.cfg.ID, "panic", fmt.Sprint(r))
			d.findings, d.count = nil, 0
			e.notEvaluated(d, "the check failed internally")
		}
	}()
	var fs []Finding
	for _, sg := range segs {
		if sg.stage != stage {
			continue
		}
		if ss, ok := c.det.(sharedScanner); ok && st != nil && st.norm != nil {
			fs = ss.ScanShared(*sg.text, st.norm, fs[:0])
		} else {
			fs = c.det.Scan(*sg.text, fs[:0])
		}
		var kept []Finding
		for _, f := range fs {
			if f.Type == "scan_limit" {
				e.notEvaluated(d, "the text exceeds the check's scan limit")
				if d.verdict == ActionBlock {
					return d
				}
				continue
			}
			if f.Score < c.cfg.Threshold {
				continue
			}
			kept = append(kept, f)
			d.count++
			d.score = max(d.score, f.Score)
			if len(d.findings) < maxEventFindings {
				d.findings = append(d.findings, eventFinding{Type: f.Type, Rule: f.Rule, Score: f.Score, Message: sg.msg, Part: max(sg.part, 0), Start: f.Start, End: f.End})
			}
		}
		if len(kept) > 0 && c.cfg.Action == ActionRedact && !shadow && !c.cfg.Shadow {
			if tail >= 0 {
				now := kept[:0:0]
				for _, f := range kept {
					// Only blank text after it: the match may go on.
					if f.End >= tail || strings.TrimSpace((*sg.text)[min(f.End, len(*sg.text)):]) == "" {
						if d.pending < 0 || f.Start < d.pending {
							d.pending = f.Start
						}
						continue
					}
					now = append(now, f)
				}
				kept = now
			}
			if len(kept) > 0 {
				*sg.text = e.redact(c, *sg.text, kept, st)
			}
		}
	}
	if d.count > 0 && d.verdict == "pass" {
		d.verdict = c.cfg.Action
		d.reason = "found " + typesOf(d.findings)
	}
	return d
}

// scanJoined scans the input turns together, for a payload split across
// them ("remember X = 'ign'", "Y = 'ore previous…'", "now do X+Y"); its
// findings have message -1 and are never redacted.
func (e *Engine) scanJoined(c *check, segs []segment, st *callState, shadow bool, d *decision) *decision {
	var parts []string
	for _, sg := range segs {
		if sg.stage == StageInput {
			parts = append(parts, *sg.text)
		}
	}
	if len(parts) < 2 {
		return d
	}
	joined := strings.Join(parts, "\n")
	jd := e.scan(c, StageInput, []segment{{-1, -1, StageInput, &joined}}, st, true, -1)
	jd.took += d.took
	if jd.verdict == "pass" {
		return d
	}
	if jd.verdict == ActionRedact { // a split payload cannot be redacted where it lies
		jd.verdict = ActionFlag
	}
	jd.reason += " (across the conversation's turns)"
	return jd
}

// notEvaluated marks a decision as a check that could not run: a block if
// the check fails closed.
func (e *Engine) notEvaluated(d *decision, why string) {
	d.err = why
	if d.c.cfg.OnError == "fail_open" {
		d.verdict = "not_evaluated"
		return
	}
	d.verdict, d.reason = ActionBlock, why+" (the check fails closed)"
}

func typesOf(fs []eventFinding) string {
	var ts []string
	for _, f := range fs {
		if !slices.Contains(ts, f.Type) {
			ts = append(ts, f.Type)
		}
	}
	sort.Strings(ts)
	return strings.Join(ts, ", ")
}

// redact replaces the findings in text: PII by reversible placeholders
// (the call's vault), anything else by [REDACTED:<type>].
func (e *Engine) redact(c *check, text string, fs []Finding, st *callState) string {
	if c.cfg.Type == TypePII {
		if st.vault == nil {
			st.vault = newVault()
		}
		if c.cfg.Restore {
			st.restore = true
		}
		return st.vault.Redact(text, fs)
	}
	fs = mergeSpans(fs)
	var b strings.Builder
	b.Grow(len(text) + 32*len(fs))
	last := 0
	for _, f := range fs {
		if f.Start < last || f.End > len(text) || f.Start >= f.End {
			continue
		}
		b.WriteString(text[last:f.Start])
		b.WriteString("[REDACTED:")
		b.WriteString(f.Type)
		b.WriteByte(']')
		last = f.End
	}
	b.WriteString(text[last:])
	return b.String()
}

// mergeSpans sorts findings by start and merges overlapping ones.
func mergeSpans(fs []Finding) []Finding {
	fs = slices.Clone(fs)
	slices.SortFunc(fs, func(a, b Finding) int { return a.Start - b.Start })
	out := fs[:0]
	for _, f := range fs {
		if n := len(out); n > 0 && f.Start < out[n-1].End {
			out[n-1].End = max(out[n-1].End, f.End)
			continue
		}
		out = append(out, f)
	}
	return out
}

// blockError is what an agent is told when a check blocks.
func blockError(d *decision, output bool) *gateway.Error {
	status, what := 400, "request"
	if output {
		status, what = 422, "answer"
	}
	// fmt.Sprintf("The %s was blocked by guardrail %q (%s, %s stage): %s.", …), in one allocation
	msg := "The " + what + " was blocked by guardrail " + strconv.Quote(d.c.cfg.ID) + " (" + d.c.cfg.Type + ", " + d.stage + " stage): " + d.reason + "."
	return &gateway.Error{Status: status, Type: gateway.TypeInvalidRequest, Code: "guardrail_blocked", Message: msg}
}

// finish turns decisions into an inspection: events, and the first block
// (unless the policy or the check is in shadow mode), or else a hold for a
// person's approval (canHold: the call can wait; a stream cannot).
func (e *Engine) finish(ctx context.Context, tenant string, p *policy, ds []*decision, output, canHold bool) *gateway.Inspection {
	ins := &gateway.Inspection{Policy: p.version, PolicyName: p.cfg.Name}
	var held *decision
	for _, d := range ds {
		shadow := p.cfg.Shadow || d.c.cfg.Shadow
		if d.verdict == ActionApprove && !shadow {
			switch id, ok := e.consumeApproved(ctx, tenant, d.c.cfg.ID); {
			case ok:
				d.verdict, d.approvalID = "approved", id
			case !canHold:
				d.verdict = ActionBlock
				d.reason += " (it needs a person's approval, and a streamed answer cannot wait for one)"
			case held == nil:
				held = d
			}
		}
		if d.verdict == ActionBlock && !shadow && ins.Block == nil {
			ins.Block = blockError(d, output)
		}
		if d.verdict == ActionRedact && !shadow {
			ins.Modified = true
		}
	}
	if held != nil && ins.Block == nil {
		h, err := e.hold(ctx, tenant, held)
		if err != nil {
			e.log.Error("guardrail approval: cannot hold the call", "tenant", tenant, "check", held.c.cfg.ID, "err", err)
			held.verdict, held.err = ActionBlock, "the approval cannot be kept: "+truncate(err.Error(), 200)
			ins.Block = approvalUnavailable()
		} else {
			ins.Hold = h
		}
	}
	ins.Events = make([]map[string]any, 0, len(ds)+1) // room for Input's limits event
	for _, d := range ds {
		ins.Events = append(ins.Events, d.attrs(p.cfg.Shadow || d.c.cfg.Shadow))
	}
	return ins
}

// Input implements gateway.Guard.
func (e *Engine) Input(ctx context.Context, caller gateway.Caller, endpoint, model string, req *gateway.ChatRequest) (*gateway.Inspection, any) {
	if isJudgeCall(ctx) {
		return nil, nil // a judge's own call
	}
	p, err := e.pickFor(ctx, caller, model)
	if err != nil {
		e.log.Error("guardrail policy unavailable", "tenant", caller.Tenant, "err", err)
		return &gateway.Inspection{Block: policyUnavailable(err)}, nil
	}
	if p == nil && e.limiter == nil {
		return nil, nil
	}
	if req == nil {
		return &gateway.Inspection{Block: &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Code: "guardrail_uninspectable",
			Message: "This request cannot be inspected by the guardrails that apply to it (they read requests in the OpenAI chat shape, and it does not translate to it)."}}, nil
	}
	st := &callState{p: p} // its vault is made when PII is redacted
	var limitEvent map[string]any
	if e.limiter != nil {
		var block *gateway.Error
		limitEvent, block = e.reserve(ctx, caller, req, st)
		if block != nil || p == nil {
			ins := &gateway.Inspection{Events: []map[string]any{limitEvent}, Block: block}
			if p != nil {
				ins.Policy, ins.PolicyName, ins.Output = p.version, p.cfg.Name, p.output
			}
			return ins, st
		}
	}
	st.norm = textnorm.GetShared()
	defer func() {
		textnorm.PutShared(st.norm)
		st.norm = nil
	}()
	segs := inputSegments(req)
	inputs := 0
	for _, sg := range segs {
		if sg.stage == StageInput {
			inputs++
		}
	}
	n, scans := 0, 0 // the input side's decisions, at most, and its scans
	for _, c := range p.checks {
		for _, stage := range c.cfg.Stages {
			if stage == StageOutput {
				continue
			}
			n++
			if c.det != nil && (stage == StageInput || stage == StageToolResults) {
				scans++
				if c.cfg.Type == TypeInjection && stage == StageInput && inputs > 1 {
					scans++ // scanJoined's
				}
			}
		}
	}
	ds := make([]*decision, 0, n)
	st.decisions = make([]decision, 0, scans)
	for _, c := range p.checks {
		shadow := p.cfg.Shadow || c.cfg.Shadow
		for _, stage := range c.cfg.Stages {
			var d *decision
			switch {
			case c.cfg.Type == TypeJudge && stage == StageInput:
				d = e.judgeDecision(ctx, c, stage, caller, joinStage(segs, StageInput), "the user's request")
			case stage == StageInput || stage == StageToolResults:
				if c.det == nil {
					continue
				}
				d = e.scan(c, stage, segs, st, shadow, -1)
				if c.cfg.Type == TypeInjection && stage == StageInput && d.verdict == "pass" {
					d = e.scanJoined(c, segs, st, shadow, d)
				}
			case stage == StageToolCalls && c.tools != nil && len(req.Tools) > 0:
				d, _ = e.toolDecision(c, stage, func() []Violation { return c.tools.CheckRequest(req.Tools) }, "declares")
				if d.verdict == ActionRedact {
					d.verdict = ActionFlag // the declared tools are left to the answer's check
				}
			default:
				continue
			}
			ds = append(ds, d)
			if d.verdict == ActionBlock && !shadow {
				ins := e.finish(ctx, caller.Tenant, p, ds, false, true)
				ins.Output = p.output
				prependEvent(ins, limitEvent)
				st.decisions = nil // the call's state does not keep them
				return ins, st
			}
		}
	}
	ins := e.finish(ctx, caller.Tenant, p, ds, false, true)
	ins.Output = p.output
	prependEvent(ins, limitEvent)
	st.decisions = nil
	return ins, st
}

func prependEvent(ins *gateway.Inspection, ev map[string]any) {
	if ev != nil {
		ins.Events = append(ins.Events, nil)
		copy(ins.Events[1:], ins.Events)
		ins.Events[0] = ev
	}
}

// reserve takes the call's rate-limit and token reservation: its event,
// and the error that refuses the call (429 naming the limit, or 503 when
// the limiter cannot decide and limits fail closed).
func (e *Engine) reserve(ctx context.Context, caller gateway.Caller, req *gateway.ChatRequest, st *callState) (map[string]any, *gateway.Error) {
	start := time.Now()
	tokens := limits.Estimate(req.Model, req, limits.DefaultOutputTokens)
	ev := map[string]any{"check": "limits", "type": "rate_limit", "stage": StageInput, "action": ActionBlock,
		"detector_version": "limits/1", "reserved_tokens": tokens}
	r, err := e.limiter.Reserve(ctx, limits.Subject{Tenant: caller.Tenant, Key: caller.KeyID, Route: req.Model}, tokens)
	ev["duration_us"] = time.Since(start).Microseconds()
	var le *limits.LimitError
	switch {
	case errors.As(err, &le):
		ev["verdict"], ev["scope"], ev["limit"], ev["max"], ev["used"] = ActionBlock, le.Scope, le.Limit, le.Max, le.Used
		ev["retry_after_ms"] = le.RetryAfter.Milliseconds()
		return ev, le.GatewayError()
	case err != nil:
		ev["error"] = "the rate limiter cannot decide: " + truncate(err.Error(), 200)
		e.log.Warn("rate limiter unavailable", "err", err)
		if e.limitsOpen {
			ev["verdict"] = "not_evaluated"
			return ev, nil
		}
		ev["verdict"] = ActionBlock
		return ev, &gateway.Error{Status: 503, Type: gateway.TypeUnavailable, Code: "rate_limiter_unavailable", RetryAfter: time.Second,
			Message: "The gateway cannot check this call's rate limits now; retry later."}
	}
	st.res = r
	ev["verdict"] = "pass"
	return ev, nil
}

// Done implements gateway.Guard: the reservation is settled with the
// usage, or released.
func (e *Engine) Done(ctx context.Context, state any, usage *gateway.Usage, ok bool) {
	st, _ := state.(*callState)
	if st == nil || st.res == nil || e.limiter == nil {
		return
	}
	var err error
	if ok {
		used := st.res.Tokens
		if usage != nil && usage.TotalTokens > 0 {
			used = int64(usage.TotalTokens)
		}
		err = e.limiter.Settle(ctx, st.res, used)
	} else {
		err = e.limiter.Release(ctx, st.res)
	}
	if err != nil && !errors.Is(err, limits.ErrDone) {
		e.log.Warn("rate limiter: settling a reservation failed", "tenant", st.res.Subject.Tenant, "err", err)
	}
}

func (e *Engine) toolDecision(c *check, stage string, run func() []Violation, verb string) (*decision, []Violation) {
	d := &decision{c: c, stage: stage, verdict: "pass"}
	start := time.Now()
	vs := run()
	d.took = time.Since(start)
	if len(vs) == 0 {
		return d, nil
	}
	d.verdict, d.count, d.score = c.cfg.Action, len(vs), 1
	var reasons []string
	for i, v := range vs {
		if i < maxEventFindings {
			d.findings = append(d.findings, eventFinding{Type: "tool:" + v.Tool, Rule: v.Rule, Score: 1, Message: v.Index})
		}
		if i < 3 {
			reasons = append(reasons, fmt.Sprintf("tool %q: %s", v.Tool, v.Reason))
		}
	}
	d.reason = "the " + verb + " " + strings.Join(reasons, "; ")
	return d, vs
}

// Output implements gateway.Guard.
func (e *Engine) Output(ctx context.Context, caller gateway.Caller, req *gateway.ChatRequest, state any, resp *gateway.ChatResponse) *gateway.Inspection {
	st, _ := state.(*callState)
	if st == nil || st.p == nil || !st.p.output {
		return nil
	}
	p := st.p
	var segs []segment
	for i := range resp.Choices {
		m := &resp.Choices[i].Message
		if !m.Content.Null && !m.Content.IsParts {
			segs = append(segs, segment{i, -1, StageOutput, &m.Content.Text})
		}
	}
	var ds []*decision
	modified := false
	for _, c := range p.checks {
		shadow := p.cfg.Shadow || c.cfg.Shadow
		for _, stage := range c.cfg.Stages {
			var d *decision
			switch {
			case stage == StageOutput && c.grounder != nil:
				d = e.groundDecision(c, req, joinStage(segs, StageOutput))
				if d == nil {
					continue
				}
			case stage == StageOutput && c.cfg.Type == TypeJudge:
				d = e.judgeDecision(ctx, c, stage, caller, joinStage(segs, StageOutput), "the assistant's answer")
			case stage == StageOutput && c.det != nil:
				before := texts(segs)
				d = e.scan(c, stage, segs, st, shadow, -1)
				modified = modified || !slices.Equal(before, texts(segs))
			case stage == StageOutput && c.cfg.Type == TypeJSONSchema:
				d = e.schemaDecision(c, req, segs)
				if d == nil {
					continue
				}
			case stage == StageToolCalls && c.tools != nil:
				var calls []gateway.ToolCall
				for _, ch := range resp.Choices {
					calls = append(calls, ch.Message.ToolCalls...)
				}
				if len(calls) == 0 {
					continue
				}
				var vs []Violation
				d, vs = e.toolDecision(c, stage, func() []Violation { return c.tools.CheckCalls(req.Tools, calls) }, "answer calls")
				if d.verdict == ActionRedact && !shadow && len(vs) > 0 {
					stripCalls(resp, vs)
					modified = true
				}
			default:
				continue
			}
			ds = append(ds, d)
			if d.verdict == ActionBlock && !shadow {
				return e.finish(ctx, caller.Tenant, p, ds, true, true)
			}
		}
	}
	if st.restore && st.vault != nil {
		for _, sg := range segs {
			if r := st.vault.Restore(*sg.text); r != *sg.text {
				*sg.text, modified = r, true
			}
		}
	}
	if modified {
		resp.Raw = nil
	}
	ins := e.finish(ctx, caller.Tenant, p, ds, true, true)
	ins.Modified = ins.Modified || modified
	return ins
}

func joinStage(segs []segment, stage string) string {
	var parts []string
	for _, sg := range segs {
		if sg.stage == stage {
			parts = append(parts, *sg.text)
		}
	}
	return strings.Join(parts, "\n\n")
}

func texts(segs []segment) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = *s.text
	}
	return out
}

// schemaDecision validates an answer against the request's response_format
// (nil when the request asks for no JSON).
func (e *Engine) schemaDecision(c *check, req *gateway.ChatRequest, segs []segment) *decision {
	if c.schema == nil || req.ResponseFormat == nil {
		return nil
	}
	start := time.Now()
	validate, err := c.schema(req.ResponseFormat)
	if validate == nil && err == nil {
		return nil
	}
	d := &decision{c: c, stage: StageOutput, verdict: "pass"}
	defer func() { d.took = time.Since(start) }()
	if err != nil {
		e.notEvaluated(d, "the response_format schema does not compile: "+err.Error())
		return d
	}
	for _, sg := range segs {
		if verr := validate(*sg.text); verr != nil {
			d.verdict, d.count, d.score = c.cfg.Action, 1, 1
			d.findings = append(d.findings, eventFinding{Type: "schema_violation", Score: 1, Message: sg.msg})
			d.reason = "the answer does not match the requested JSON schema: " + truncate(verr.Error(), 300)
			break
		}
	}
	return d
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// groundDecision checks an answer against the documents the request
// carried: tool results, and numbered passages ("[1] …") in its other
// messages (their remaining text supports but cannot be cited). Nil when
// the request carries no documents.
func (e *Engine) groundDecision(c *check, req *gateway.ChatRequest, answer string) *decision {
	var tools, texts []string
	for _, m := range req.Messages {
		switch m.Role {
		case "tool":
			tools = append(tools, m.Content.String())
		case "assistant":
		default:
			texts = append(texts, m.Content.String())
		}
	}
	docs, rest := grounding.SplitDocuments(texts)
	if len(rest) == 0 && slices.Equal(docs, texts) { // no numbered passages
		docs, rest = nil, texts
	}
	docs = append(docs, tools...)
	if len(docs) == 0 {
		return nil
	}
	start := time.Now()
	d := &decision{c: c, stage: StageOutput, verdict: "pass", pending: -1}
	score, fs := c.grounder.CheckInput(grounding.Input{Documents: docs, Extra: rest, Answer: answer})
	d.took = time.Since(start)
	d.score = score
	strong := false
	for _, f := range fs {
		if f.Type == "scan_limit" {
			e.notEvaluated(d, "the documents or the answer exceed the grounding check's limits")
			continue
		}
		d.count++
		strong = strong || f.Score >= 0.9
		if len(d.findings) < maxEventFindings {
			d.findings = append(d.findings, eventFinding{Type: f.Type, Rule: f.Rule, Score: f.Score, Start: f.Start, End: f.End})
		}
	}
	if d.err != "" && d.verdict != "pass" {
		return d
	}
	if d.count > 0 && (strong || c.grounder.Exceeds(score)) {
		d.verdict = c.cfg.Action
		d.reason = fmt.Sprintf("the answer is not grounded in the request's documents (%s; %.0f%% of its claims unsupported)", typesOf(d.findings), score*100)
	}
	return d
}

// stripCalls removes the tool calls a tool policy refused from an answer
// (the calls of all choices numbered in order, as CheckCalls saw them); a
// choice left with no call ends with finish_reason content_filter.
func stripCalls(resp *gateway.ChatResponse, vs []Violation) {
	bad := map[int]bool{}
	for _, v := range vs {
		bad[v.Index] = true
	}
	n := 0
	for i := range resp.Choices {
		m := &resp.Choices[i].Message
		if len(m.ToolCalls) == 0 {
			continue
		}
		kept := m.ToolCalls[:0:0]
		for _, tc := range m.ToolCalls {
			if !bad[n] {
				kept = append(kept, tc)
			}
			n++
		}
		m.ToolCalls = kept
		if len(kept) == 0 {
			m.ToolCalls = nil
			resp.Choices[i].FinishReason = gateway.FinishContentFilter
		}
	}
	resp.Raw = nil
}
