package engine

import (
	"context"
	"slices"
	"strings"
	"unicode/utf8"

	"aigw/gateway"
)

// Stream implements gateway.Guard: the inspector of a streamed answer.
//
// It holds chunks back until at least the policy's Holdback characters of
// answer text follow them, and runs the output checks over the text held
// plus the last Holdback characters already released, so that a match
// across chunk boundaries is found before any of it reaches the agent (a
// match longer than the window that starts in released text cannot be
// redacted any more: it blocks). Once a chunk carries a tool call, every
// chunk is held to the end, where the assembled calls are checked whole.
// The time to first byte grows by the time the model takes to produce
// Holdback characters, and throughput not at all.
func (e *Engine) Stream(ctx context.Context, caller gateway.Caller, req *gateway.ChatRequest, state any) gateway.StreamInspector {
	st, _ := state.(*callState)
	if st == nil || st.p == nil || !st.p.output {
		return nil
	}
	si := &streamInspector{e: e, st: st, p: st.p, req: req, window: st.p.cfg.Holdback, decided: map[*check]*decision{}, pending: -1}
	for _, c := range st.p.checks {
		if c.cfg.Type == TypeJSONSchema && slices.Contains(c.cfg.Stages, StageOutput) && req.ResponseFormat != nil {
			si.keepAll = true
		}
		if (c.cfg.Type == TypeJudge || c.cfg.Type == TypeGrounding) && slices.Contains(c.cfg.Stages, StageOutput) {
			// A judge reads the whole answer: nothing is released before.
			si.keepAll, si.toolMode = true, true
		}
	}
	si.ctx, si.caller = ctx, caller
	return si
}

// maxPending bounds how much text a possibly incomplete match to redact
// holds back: past it, the match is redacted as it stands.
const maxPending = 64 << 10

type streamInspector struct {
	e      *Engine
	st     *callState
	p      *policy
	req    *gateway.ChatRequest
	window int

	held     []*gateway.ChatChunk
	tail     string // the last `window` bytes of released text
	released int    // bytes of text released so far
	toolMode bool
	keepAll  bool            // keep the whole text (a schema check needs it)
	all      strings.Builder // the whole text, when keepAll
	acc      gateway.Accumulator
	decided  map[*check]*decision
	order    []*check
	ctx      context.Context
	caller   gateway.Caller
	// pending is where, in the held text, a finding to redact starts that
	// may continue in text not yet received: nothing from there on is
	// released (-1: none).
	pending int
}

// chunkText is the text a chunk adds to choice 0.
func chunkText(c *gateway.ChatChunk) (*string, bool) {
	if len(c.Choices) == 0 || c.Choices[0].Index != 0 || c.Choices[0].Delta.Content == nil {
		return nil, false
	}
	return c.Choices[0].Delta.Content, true
}

func (si *streamInspector) heldText() string {
	var b strings.Builder
	for _, c := range si.held {
		if t, ok := chunkText(c); ok {
			b.WriteString(*t)
		}
	}
	return b.String()
}

func (si *streamInspector) Push(c *gateway.ChatChunk) ([]*gateway.ChatChunk, *gateway.Inspection) {
	si.acc.Add(c)
	for _, ch := range c.Choices {
		if len(ch.Delta.ToolCalls) > 0 {
			si.toolMode = true
		}
	}
	if t, ok := chunkText(c); ok && si.keepAll {
		si.all.WriteString(*t)
	}
	si.held = append(si.held, c)
	if si.toolMode {
		return nil, nil
	}
	if ins := si.inspect(false); ins != nil {
		return nil, ins
	}
	return si.release(false), nil
}

// inspect runs the output text checks over the window; it returns an
// inspection only for a block.
func (si *streamInspector) inspect(final bool) *gateway.Inspection {
	held := si.heldText()
	if held == "" && !final {
		return nil
	}
	text := si.tail + held
	seg := []segment{{0, -1, StageOutput, &text}}
	changed := false
	// A match to redact that may continue is redacted once it is complete
	// (or at the end, or when the held text grows past maxPending).
	tail := len(text)
	if final || len(held) > maxPending {
		tail = -1
	}
	si.pending = -1
	for _, c := range si.p.checks {
		if c.det == nil || !slices.Contains(c.cfg.Stages, StageOutput) {
			continue
		}
		shadow := si.p.cfg.Shadow || c.cfg.Shadow
		before := text
		d := si.e.scan(c, StageOutput, seg, si.st, shadow, tail)
		if d.pending >= 0 {
			p := max(d.pending-len(si.tail), 0)
			if si.pending < 0 || p < si.pending {
				si.pending = p
			}
		}
		si.merge(c, d)
		if text != before {
			// Redaction: it must not reach into released text.
			if !strings.HasPrefix(text, si.tail) {
				d.verdict, d.reason = ActionBlock, "a match to redact began in text already sent (longer than the hold-back window)"
				si.decided[c] = d
			} else {
				changed = true
			}
		}
		if (d.verdict == ActionBlock || d.verdict == ActionApprove) && !shadow {
			return si.e.finish(si.ctx, si.caller.Tenant, si.p, si.decisions(), true, false)
		}
	}
	if changed {
		si.coalesce(strings.TrimPrefix(text, si.tail))
	}
	return nil
}

// merge folds a scan's decision into the check's decision of the stream:
// findings are counted once (by their offset in the whole answer).
func (si *streamInspector) merge(c *check, d *decision) {
	base := si.released - len(si.tail)
	prev := si.decided[c]
	if prev == nil {
		prev = &decision{c: c, stage: StageOutput, verdict: "pass"}
		si.decided[c] = prev
		si.order = append(si.order, c)
	}
	prev.took += d.took
	if d.err != "" {
		prev.err, prev.verdict, prev.reason = d.err, d.verdict, d.reason
	}
	for _, f := range d.findings {
		f.Start += base
		f.End += base
		if slices.ContainsFunc(prev.findings, func(g eventFinding) bool { return g.Start == f.Start && g.Type == f.Type }) {
			continue
		}
		prev.count++
		prev.score = max(prev.score, f.Score)
		if len(prev.findings) < maxEventFindings {
			prev.findings = append(prev.findings, f)
		}
	}
	if d.verdict != "pass" && d.verdict != "not_evaluated" && prev.err == "" {
		prev.verdict, prev.reason = d.verdict, d.reason
	}
}

func (si *streamInspector) decisions() []*decision {
	out := make([]*decision, 0, len(si.order))
	for _, c := range si.order {
		out = append(out, si.decided[c])
	}
	return out
}

// coalesce puts the (redacted) held text into the first held chunk that
// carries text and empties the others.
func (si *streamInspector) coalesce(text string) {
	first := true
	for _, c := range si.held {
		t, ok := chunkText(c)
		if !ok {
			continue
		}
		c.Raw = nil
		if first {
			*t, first = text, false
			continue
		}
		*t = ""
	}
}

// release returns the chunks that may go now: from the front, while the
// text held after them is at least the window (all of them when final).
func (si *streamInspector) release(final bool) []*gateway.ChatChunk {
	held := 0
	for _, c := range si.held {
		if t, ok := chunkText(c); ok {
			held += len(*t)
		}
	}
	n, at := 0, 0 // at: offset in the held text of chunk n
	for n < len(si.held) {
		t, ok := chunkText(si.held[n])
		size := 0
		if ok {
			size = len(*t)
		}
		if !final && ok && (held-size < si.window || si.pending >= 0 && at+size > si.pending) {
			break
		}
		held -= size
		at += size
		n++
	}
	// Never release a partial PII placeholder: restoring needs all of it.
	if si.st.restore && !final {
		for n > 0 {
			if t, ok := chunkText(si.held[n-1]); ok && strings.LastIndexByte(*t, '<') > strings.LastIndexByte(*t, '>') {
				n--
				continue
			}
			break
		}
	}
	out := si.held[:n:n]
	si.held = slices.Clone(si.held[n:])
	for _, c := range out {
		t, ok := chunkText(c)
		if !ok {
			continue
		}
		si.released += len(*t)
		si.tail += *t
		if len(si.tail) > si.window {
			cut := len(si.tail) - si.window
			for cut < len(si.tail) && !utf8.RuneStart(si.tail[cut]) {
				cut++
			}
			si.tail = si.tail[cut:]
		}
		if si.st.restore && si.st.vault != nil {
			if r := si.st.vault.Restore(*t); r != *t {
				*t, c.Raw = r, nil
			}
		}
	}
	return out
}

func (si *streamInspector) End() ([]*gateway.ChatChunk, *gateway.Inspection) {
	if ins := si.inspect(true); ins != nil {
		return nil, ins
	}
	var extra []*decision
	resp := si.acc.Response(nil)
	for _, c := range si.p.checks {
		shadow := si.p.cfg.Shadow || c.cfg.Shadow
		var d *decision
		switch {
		case c.tools != nil && slices.Contains(c.cfg.Stages, StageToolCalls):
			var calls []gateway.ToolCall
			for _, ch := range resp.Choices {
				calls = append(calls, ch.Message.ToolCalls...)
			}
			if len(calls) == 0 {
				continue
			}
			d, _ = si.e.toolDecision(c, StageToolCalls, func() []Violation { return c.tools.CheckCalls(si.req.Tools, calls) }, "answer calls")
			if d.verdict == ActionRedact {
				// Stripping calls out of chunks is not supported: a stream blocks.
				d.verdict = ActionBlock
				d.reason += " (a streamed answer's calls cannot be stripped)"
			}
		case c.grounder != nil && slices.Contains(c.cfg.Stages, StageOutput):
			d = si.e.groundDecision(c, si.req, si.all.String())
			if d == nil {
				continue
			}
		case c.cfg.Type == TypeJudge && slices.Contains(c.cfg.Stages, StageOutput):
			d = si.e.judgeDecision(si.ctx, c, StageOutput, si.caller, si.all.String(), "the assistant's answer")
		case c.cfg.Type == TypeJSONSchema && si.keepAll:
			text := si.all.String()
			d = si.e.schemaDecision(c, si.req, []segment{{0, -1, StageOutput, &text}})
			if d == nil {
				continue
			}
		default:
			continue
		}
		extra = append(extra, d)
		if (d.verdict == ActionBlock || d.verdict == ActionApprove) && !shadow {
			return nil, si.e.finish(si.ctx, si.caller.Tenant, si.p, append(si.decisions(), extra...), true, false)
		}
	}
	out := si.release(true)
	ins := si.e.finish(si.ctx, si.caller.Tenant, si.p, append(si.decisions(), extra...), true, false)
	return out, ins
}
