package engine

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"

	"aigw/gateway"
)

// wordDetector finds a literal word (a test double for the real
// detectors, which have their own tests).
type wordDetector struct{ word, typ string }

func (w wordDetector) Scan(text string, out []Finding) []Finding {
	for i := 0; ; {
		j := strings.Index(text[i:], w.word)
		if j < 0 {
			return out
		}
		out = append(out, Finding{Type: w.typ, Start: i + j, End: i + j + len(w.word), Score: 0.9})
		i += j + len(w.word)
	}
}

type plainVault struct{ m map[string]string }

func (v *plainVault) Redact(text string, fs []Finding) string {
	fs = mergeSpans(fs)
	var b strings.Builder
	last := 0
	for _, f := range fs {
		ph := "<" + f.Type + "_1>"
		v.m[ph] = text[f.Start:f.End]
		b.WriteString(text[last:f.Start] + ph)
		last = f.End
	}
	return b.String() + text[last:]
}

func (v *plainVault) Restore(text string) string {
	for ph, val := range v.m {
		text = strings.ReplaceAll(text, ph, val)
	}
	return text
}

// testEngine builds an engine whose checks use word detectors.
func testEngine(t *testing.T, p PolicyConfig, dets map[string]Detector) *Engine {
	t.Helper()
	if err := p.validate(); err != nil {
		t.Fatal(err)
	}
	pol := &policy{cfg: p, version: p.version()}
	for _, cc := range p.Checks {
		c := &check{cfg: cc, det: dets[cc.ID], version: "test"}
		c.box = boxed{id: cc.ID, typ: cc.Type, action: cc.Action, version: c.version}
		pol.checks = append(pol.checks, c)
		if strings.Contains(strings.Join(cc.Stages, ","), "output") || cc.Restore {
			pol.output = true
		}
	}
	return &Engine{policies: []*policy{pol}, log: slog.New(slog.DiscardHandler)}
}

func chatReq(msgs ...string) *gateway.ChatRequest {
	r := &gateway.ChatRequest{Model: "m"}
	for i, m := range msgs {
		role := "user"
		if strings.HasPrefix(m, "tool:") {
			role, m = "tool", strings.TrimPrefix(m, "tool:")
		}
		_ = i
		r.Messages = append(r.Messages, gateway.Message{Role: role, Content: gateway.Content{Text: m}})
	}
	return r
}

func TestInputActions(t *testing.T) {
	newVault = func() vault { return &plainVault{m: map[string]string{}} }
	caller := gateway.Caller{Tenant: "acme"}
	for _, tc := range []struct {
		name, action string
		shadow       bool
		onError      string
		msgs         []string
		block        bool
		wantText     string
		verdict      string
	}{
		{name: "block", action: ActionBlock, msgs: []string{"say badword now"}, block: true, verdict: "block"},
		{name: "clean", action: ActionBlock, msgs: []string{"say hello"}, verdict: "pass"},
		{name: "redact", action: ActionRedact, msgs: []string{"say badword now"}, wantText: "say [REDACTED:BAD] now", verdict: "redact"},
		{name: "flag", action: ActionFlag, msgs: []string{"badword"}, wantText: "badword", verdict: "flag"},
		{name: "shadow block", action: ActionBlock, shadow: true, msgs: []string{"badword"}, wantText: "badword", verdict: "block"},
		{name: "tool results only", action: ActionBlock, msgs: []string{"badword", "tool:fine"}, verdict: "pass"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stages := []string{StageInput}
			if tc.name == "tool results only" {
				stages = []string{StageToolResults}
			}
			e := testEngine(t, PolicyConfig{Name: "p", Shadow: tc.shadow, Checks: []CheckConfig{{ID: "words", Type: TypeContent, Stages: stages, Action: tc.action}}},
				map[string]Detector{"words": wordDetector{"badword", "BAD"}})
			req := chatReq(tc.msgs...)
			ins, _ := e.Input(context.Background(), caller, "chat.completions", req.Model, req)
			if (ins.Block != nil) != tc.block {
				t.Fatalf("block = %v, want %v", ins.Block, tc.block)
			}
			if tc.block && (ins.Block.Code != "guardrail_blocked" || !strings.Contains(ins.Block.Message, `"words"`) || strings.Contains(ins.Block.Message, "badword")) {
				t.Errorf("block error %+v: must name the guardrail, not the matched text", ins.Block)
			}
			if tc.wantText != "" && req.Messages[0].Content.Text != tc.wantText {
				t.Errorf("text %q, want %q", req.Messages[0].Content.Text, tc.wantText)
			}
			if len(ins.Events) != 1 || ins.Events[0]["verdict"] != tc.verdict {
				t.Fatalf("events %v, want one with verdict %s", ins.Events, tc.verdict)
			}
			if tc.shadow && ins.Events[0]["shadow"] != true {
				t.Errorf("shadow decision not marked: %v", ins.Events[0])
			}
			for _, ev := range ins.Events {
				for _, v := range ev {
					if s, ok := v.(string); ok && strings.Contains(s, "badword") {
						t.Errorf("event holds the matched text: %v", ev)
					}
				}
			}
		})
	}
}

func TestFailModes(t *testing.T) {
	limit := detectorFunc(func(text string, out []Finding) []Finding {
		return append(out, Finding{Type: "scan_limit", Score: 1})
	})
	for _, mode := range []string{"fail_closed", "fail_open"} {
		e := testEngine(t, PolicyConfig{Name: "p", Checks: []CheckConfig{{ID: "c", Type: TypeContent, OnError: mode}}}, map[string]Detector{"c": limit})
		ins, _ := e.Input(context.Background(), gateway.Caller{Tenant: "a"}, "chat.completions", "m", chatReq("x"))
		want := map[string]string{"fail_closed": "block", "fail_open": "not_evaluated"}[mode]
		if ins.Events[0]["verdict"] != want || (mode == "fail_closed") != (ins.Block != nil) {
			t.Errorf("%s: %v %v", mode, ins.Events, ins.Block)
		}
	}
	panics := detectorFunc(func(string, []Finding) []Finding { panic("boom") })
	e := testEngine(t, PolicyConfig{Name: "p", Checks: []CheckConfig{{ID: "c", Type: TypeContent}}}, map[string]Detector{"c": panics})
	ins, _ := e.Input(context.Background(), gateway.Caller{Tenant: "a"}, "chat.completions", "m", chatReq("x"))
	if ins.Block == nil || ins.Events[0]["error"] == nil {
		t.Errorf("a panicking fail-closed check must block and say why: %v", ins.Events)
	}
}

type detectorFunc func(string, []Finding) []Finding

func (f detectorFunc) Scan(text string, out []Finding) []Finding { return f(text, out) }

func chunk(s string) *gateway.ChatChunk {
	return &gateway.ChatChunk{Choices: []gateway.ChunkChoice{{Delta: gateway.Delta{Content: &s}}}}
}

func joinChunks(cs []*gateway.ChatChunk) string {
	var b strings.Builder
	for _, c := range cs {
		if t, ok := chunkText(c); ok {
			b.WriteString(*t)
		}
	}
	return b.String()
}

// TestStreamHoldback: a word split across chunks is blocked before any of
// it reaches the agent; with redaction it reaches the agent redacted.
func TestStreamHoldback(t *testing.T) {
	newVault = func() vault { return &plainVault{m: map[string]string{}} }
	pieces := []string{"Hello there, this is fine text. ", "The code is bad", "word and more ", "text after it, long enough to pass the window of thirty."}
	for _, action := range []string{ActionBlock, ActionRedact} {
		e := testEngine(t, PolicyConfig{Name: "p", Holdback: 32, Checks: []CheckConfig{{ID: "w", Type: TypeContent, Stages: []string{StageOutput}, Action: action}}},
			map[string]Detector{"w": wordDetector{"badword", "BAD"}})
		req := chatReq("hi")
		_, st := e.Input(context.Background(), gateway.Caller{Tenant: "a"}, "chat.completions", req.Model, req)
		si := e.Stream(context.Background(), gateway.Caller{Tenant: "a"}, req, st)
		var sent []*gateway.ChatChunk
		var blocked *gateway.Inspection
		for _, p := range pieces {
			rel, ins := si.Push(chunk(p))
			sent = append(sent, rel...)
			if ins != nil && ins.Block != nil {
				blocked = ins
				break
			}
		}
		if blocked == nil {
			rel, ins := si.End()
			sent = append(sent, rel...)
			blocked = ins
			if ins.Block != nil {
				blocked = ins
			}
		}
		got := joinChunks(sent)
		if strings.Contains(got, "bad") && strings.Contains(got, "word and") {
			t.Fatalf("%s: the split word reached the agent: %q", action, got)
		}
		switch action {
		case ActionBlock:
			if blocked.Block == nil || strings.Contains(got, "The code") {
				t.Errorf("block: %v, sent %q", blocked.Block, got)
			}
		case ActionRedact:
			if blocked.Block != nil || !strings.Contains(got, "[REDACTED:BAD]") || !strings.HasSuffix(got, "thirty.") {
				t.Errorf("redact: %v, sent %q", blocked.Block, got)
			}
		}
	}
}

// TestStreamReleases: chunks flow once the window is full (TTFB bounded by
// the window), and everything arrives by the end.
func TestStreamReleases(t *testing.T) {
	e := testEngine(t, PolicyConfig{Name: "p", Holdback: 16, Checks: []CheckConfig{{ID: "w", Type: TypeContent, Stages: []string{StageOutput}}}},
		map[string]Detector{"w": wordDetector{"zzz", "Z"}})
	req := chatReq("hi")
	_, st := e.Input(context.Background(), gateway.Caller{Tenant: "a"}, "chat.completions", req.Model, req)
	si := e.Stream(context.Background(), gateway.Caller{Tenant: "a"}, req, st)
	var sent []*gateway.ChatChunk
	firstAt := -1
	for i := range 20 {
		rel, ins := si.Push(chunk("0123456789"))
		if ins != nil {
			t.Fatal(ins.Block)
		}
		if len(rel) > 0 && firstAt < 0 {
			firstAt = i
		}
		sent = append(sent, rel...)
	}
	rel, ins := si.End()
	sent = append(sent, rel...)
	if firstAt < 0 || firstAt > 2 {
		t.Errorf("first release after chunk %d; the window is 16 bytes", firstAt)
	}
	if got := joinChunks(sent); len(got) != 200 {
		t.Errorf("sent %d bytes, want 200", len(got))
	}
	if len(ins.Events) != 1 || ins.Events[0]["verdict"] != "pass" {
		t.Errorf("end events %v", ins.Events)
	}
}

func TestRestore(t *testing.T) {
	newVault = func() vault { return &plainVault{m: map[string]string{}} }
	e := testEngine(t, PolicyConfig{Name: "p", Checks: []CheckConfig{{ID: "pii", Type: TypePII, Stages: []string{StageInput}, Action: ActionRedact, Restore: true}}},
		map[string]Detector{"pii": wordDetector{"4111111111111111", "CREDIT_CARD"}})
	req := chatReq("charge 4111111111111111 please")
	ins, st := e.Input(context.Background(), gateway.Caller{Tenant: "a"}, "chat.completions", req.Model, req)
	if !ins.Modified || strings.Contains(req.Messages[0].Content.Text, "4111") {
		t.Fatalf("input not redacted: %q", req.Messages[0].Content.Text)
	}
	resp := &gateway.ChatResponse{Raw: []byte("{}"), Choices: []gateway.Choice{{Message: gateway.Message{Role: "assistant", Content: gateway.Content{Text: "Charged <CREDIT_CARD_1>."}}}}}
	e.Output(context.Background(), gateway.Caller{Tenant: "a"}, req, st, resp)
	if got := resp.Choices[0].Message.Content.Text; got != "Charged 4111111111111111." || resp.Raw != nil {
		t.Errorf("restored answer %q (raw cleared: %v)", got, resp.Raw == nil)
	}
}

func TestPolicyMatching(t *testing.T) {
	cfg := Config{Policies: []PolicyConfig{
		{Name: "key-specific", Tenants: []string{"acme"}, Keys: []string{"key_strict"}, Checks: []CheckConfig{{ID: "c", Type: TypeSecrets}}},
		{Name: "billing-agents", Tenants: []string{"acme"}, Agents: []string{"billing-*"}, Routes: []string{"gpt-4o*"}, Checks: []CheckConfig{{ID: "c", Type: TypeSecrets}}},
		{Name: "rest", Checks: []CheckConfig{{ID: "c", Type: TypeSecrets}}},
	}}
	e, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		caller gateway.Caller
		model  string
		want   string
	}{
		{gateway.Caller{Tenant: "acme", KeyID: "key_strict", AgentID: "billing-bot"}, "gpt-4o", "key-specific"},
		{gateway.Caller{Tenant: "acme", KeyID: "key_other", AgentID: "billing-bot"}, "gpt-4o-mini", "billing-agents"},
		{gateway.Caller{Tenant: "acme", KeyID: "key_other", AgentID: "billing-bot"}, "claude", "rest"},
		{gateway.Caller{Tenant: "globex", KeyID: "key_strict"}, "gpt-4o", "rest"},
	} {
		if p := e.pick(tc.caller, tc.model); p == nil || p.cfg.Name != tc.want {
			t.Errorf("%+v %s: policy %v, want %s", tc.caller, tc.model, p, tc.want)
		}
	}
}

// TestStripToolCalls: a tool policy that redacts strips the refused calls
// from an answer and keeps the others; with none left the choice ends
// with content_filter.
func TestStripToolCalls(t *testing.T) {
	e, err := New(Config{Policies: []PolicyConfig{{Name: "p", Checks: []CheckConfig{{ID: "tools", Type: TypeToolPolicy, Stages: []string{StageToolCalls}, Action: ActionRedact,
		Tools: &ToolsConfig{Default: "allow", Rules: []ToolRule{{Tool: "send_email", Decision: "deny"}}}}}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := chatReq("do things")
	req.Tools = []gateway.Tool{{Type: "function", Function: gateway.FunctionDecl{Name: "send_email", Parameters: []byte(`{"type":"object"}`)}},
		{Type: "function", Function: gateway.FunctionDecl{Name: "lookup", Parameters: []byte(`{"type":"object"}`)}}}
	caller := gateway.Caller{Tenant: "a"}
	for _, tc := range []struct {
		calls  []string
		kept   []string
		finish string
	}{
		{[]string{"lookup", "send_email"}, []string{"lookup"}, "tool_calls"},
		{[]string{"send_email"}, nil, "content_filter"},
	} {
		_, st := e.Input(context.Background(), caller, "chat.completions", req.Model, req)
		resp := &gateway.ChatResponse{Raw: []byte("{}"), Choices: []gateway.Choice{{FinishReason: "tool_calls", Message: gateway.Message{Role: "assistant", Content: gateway.Content{Null: true}}}}}
		for i, name := range tc.calls {
			resp.Choices[0].Message.ToolCalls = append(resp.Choices[0].Message.ToolCalls, gateway.ToolCall{ID: fmt.Sprint(i), Type: "function", Function: gateway.FunctionCall{Name: name, Arguments: "{}"}})
		}
		ins := e.Output(context.Background(), caller, req, st, resp)
		var kept []string
		for _, c := range resp.Choices[0].Message.ToolCalls {
			kept = append(kept, c.Function.Name)
		}
		if ins.Block != nil || !slices.Equal(kept, tc.kept) || resp.Choices[0].FinishReason != tc.finish || resp.Raw != nil {
			t.Errorf("%v: block %v, kept %v, finish %s", tc.calls, ins.Block, kept, resp.Choices[0].FinishReason)
		}
	}
}

// roundScore writes what fmt's "%.2f" writes (the boxed texts of 0 to 1
// included).
func TestRoundScore(t *testing.T) {
	fs := []float64{0, 1, 0.5, 0.005, 0.015, 0.125, 0.995, 0.9949999, 0.99999, 1.004, 1.005, 1.5, 2, -0.0, -0.001, -1,
		math.NaN(), math.Inf(1), math.Inf(-1), math.SmallestNonzeroFloat64, math.MaxFloat64}
	for i := range 1000 {
		f := float64(i) / 997
		fs = append(fs, f, math.Nextafter(float64(i%101)/100, 2), math.Nextafter(float64(i%101)/100, -1), float64(i%201)/200)
	}
	for _, f := range fs {
		got, ok := roundScore(f).(string)
		if want := fmt.Sprintf("%.2f", f); !ok || got != want {
			t.Errorf("roundScore(%v) = %v; want %q", f, roundScore(f), want)
		}
	}
}

// blockError's message is the one fmt.Sprintf wrote before.
func TestBlockErrorMessage(t *testing.T) {
	for _, id := range []string{"injection", `we"ird\id`, "ünï\x00", ""} {
		for _, output := range []bool{false, true} {
			d := &decision{c: &check{cfg: CheckConfig{ID: id, Type: TypeInjection}}, stage: StageInput, reason: "found override"}
			what := "request"
			if output {
				what = "answer"
			}
			want := fmt.Sprintf("The %s was blocked by guardrail %q (%s, %s stage): %s.", what, d.c.cfg.ID, d.c.cfg.Type, d.stage, d.reason)
			if got := blockError(d, output).Message; got != want {
				t.Errorf("blockError(%q, %v) = %q; want %q", id, output, got, want)
			}
		}
	}
}
