package gateway

import "context"

// Guard inspects calls on behalf of the tenant's guardrail policy
// (gateway/guard implements it). The pipeline records every decision it
// returns in a `guardrail` event of the call (one per inspection, its
// checks' decisions in order), and refuses or withholds what it blocks.
// A Guard is safe for concurrent use.
type Guard interface {
	// Input inspects a request for model before it is routed: its
	// messages (the input stage), tool results (role "tool") and the tools
	// it declares. It may change req in place (redaction); state is carried
	// to the output side of the same call (e.g. the placeholders to
	// restore). req is nil when the request cannot be read in the OpenAI
	// shape (an Anthropic request that does not translate): a guard that
	// has checks or limits for the call must refuse it then, not pass it
	// uninspected.
	Input(ctx context.Context, caller Caller, endpoint, model string, req *ChatRequest) (ins *Inspection, state any)
	// Output inspects a complete answer (its text and tool calls) and may
	// change resp in place (redaction, restoring placeholders, stripping
	// tool calls).
	Output(ctx context.Context, caller Caller, req *ChatRequest, state any, resp *ChatResponse) *Inspection
	// Stream returns the inspector of a streamed answer, or nil when no
	// check inspects the output.
	Stream(ctx context.Context, caller Caller, req *ChatRequest, state any) StreamInspector
	// Done ends a call that Input saw, once: ok says the model was called
	// and used usage (nil: unknown), which reservations are settled with;
	// otherwise nothing was used (refused, or failed before an answer) and
	// reservations are returned.
	Done(ctx context.Context, state any, usage *Usage, ok bool)
}

// Inspection is what a guard decided about one stage of a call.
type Inspection struct {
	// Events are the decisions to record, one per check that ran (or could
	// not run), in order: the `decisions` of the inspection's `guardrail`
	// event, and what telemetry exports one by one.
	Events []map[string]any
	// Block, when set, is the error the agent gets: the call is refused
	// (input) or its answer withheld (output).
	Block *Error
	// Policy is the version (hash) of the policy that decided, PolicyName
	// its name.
	Policy, PolicyName string
	// Modified says the inspected request or answer was changed
	// (redaction): it must not be forwarded or answered as received.
	Modified bool
	// Output (from Input) says the policy also inspects this call's
	// output, so the answer must pass through the guard.
	Output bool
	// Hold, when set (and Block is not), holds the call for a person's
	// approval: the call's events so far are recorded, then Wait decides.
	Hold *Hold
}

// Hold is a call waiting for a person's approval (a guardrail's
// require_approval action).
type Hold struct {
	// ID is the approval's reference (what the approver names, what the
	// agent can poll).
	ID string
	// Wait waits for the decision: nil when approved, else the error the
	// agent gets (rejected, or still pending when the wait ends).
	Wait func(ctx context.Context) *Error
}

type approvalKey struct{}

// WithApprovalRef returns ctx carrying the approval reference an agent sent
// back (X-Aigw-Approval) when it retries a call that was held.
func WithApprovalRef(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, approvalKey{}, id)
}

// ApprovalRef returns the approval reference of WithApprovalRef, or "".
func ApprovalRef(ctx context.Context) string {
	id, _ := ctx.Value(approvalKey{}).(string)
	return id
}

// StreamInspector inspects a streamed answer with a hold-back window: it
// keeps chunks until the checks have seen enough text after them, so that
// nothing a check would block reaches the agent.
type StreamInspector interface {
	// Push takes the next chunk and returns the chunks that may be written
	// now (possibly changed, e.g. redacted), and an inspection when a check
	// decided (Block set: stop the stream).
	Push(c *ChatChunk) (release []*ChatChunk, ins *Inspection)
	// End is called at the end of the stream: it inspects what is held and
	// returns the rest to write.
	End() (release []*ChatChunk, ins *Inspection)
}

// GuardModified says the guard changed the request (redaction): it must be
// sent as the changed ChatRequest, never as the bytes received.
func (c *Call) GuardModified() bool { return c.guardModified }

// GuardsOutput says the guard inspects this call's answer.
func (c *Call) GuardsOutput() bool { return c.guardOutput }

// guardDone tells the guard the call ended (once).
func (c *Call) guardDone(usage *Usage, ok bool) {
	g := c.p.cfg.Guard
	if g == nil || c.guardState == nil || c.guardEnded {
		return
	}
	c.guardEnded = true
	g.Done(context.WithoutCancel(c.ctx), c.guardState, usage, ok)
}

// recordInspection records an inspection's decisions as one `guardrail`
// event of the call: side is the stage group ("input": the request, its
// tool results and declared tools; "output": the answer), decisions the
// checks' own attributes in order. One event per inspection, not one per
// check: the decisions made together are proven together (an entry cannot
// lose one of them unnoticed), and a call under a policy of many checks
// costs the ledger two entries, not a dozen.
func (c *Call) recordInspection(side string, ins *Inspection) {
	if ins == nil {
		return
	}
	if len(ins.Events) > 0 {
		c.emit("guardrail", inspectionAttrs(side, ins), nil)
	}
	if c.p.cfg.Telemetry != nil {
		c.mu.Lock()
		c.guardEvents = append(c.guardEvents, ins.Events...)
		if ins.Policy != "" {
			c.guardPolicy, c.guardPolicyVersion = ins.PolicyName, ins.Policy
		}
		c.mu.Unlock()
	}
	ins.Events = nil
}

// verdictRank orders an inspection's verdict: the most severe enforced
// decision wins. Unknown verdicts rank with flag.
func verdictRank(v string) int {
	switch v {
	case "pass":
		return 0
	case "log_only":
		return 1
	case "approved":
		return 2
	case "not_evaluated":
		return 3
	case "redact":
		return 5
	case "require_approval":
		return 6
	case "block":
		return 7
	}
	return 4 // flag, and what a Guard names otherwise
}

// inspectionAttrs are the attrs of an inspection's `guardrail` event: the
// side, the policy, its verdict (the most severe decision not in shadow
// mode, "pass" when every check passed), the number of checks and their
// decisions.
func inspectionAttrs(side string, ins *Inspection) map[string]any {
	ds := make([]any, len(ins.Events))
	verdict, rank := "pass", 0
	for i, d := range ins.Events {
		ds[i] = d
		if shadow, _ := d["shadow"].(bool); shadow {
			continue
		}
		if v, _ := d["verdict"].(string); v != "" {
			if r := verdictRank(v); r > rank {
				verdict, rank = v, r
			}
		}
	}
	a := make(map[string]any, 6)
	a["stage"], a["verdict"], a["checks"], a["decisions"] = side, verdict, len(ds), ds
	if ins.PolicyName != "" {
		a["policy"] = ins.PolicyName
	}
	if ins.Policy != "" {
		a["policy_version"] = ins.Policy
	}
	return a
}
