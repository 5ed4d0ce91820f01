package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"aigw/gateway"
	"aigw/ledger"
)

// Names of the context tools, resources and prompts.
const (
	ToolModels     = "aigw_models"
	ToolGuardrails = "aigw_guardrails"
	ToolBudgets    = "aigw_budgets"
	ToolUsage      = "aigw_usage"
	ToolProof      = "aigw_proof"

	ResourceModels     = "aigw://models"
	ResourceGuardrails = "aigw://guardrails"
	ResourceBudgets    = "aigw://budgets"
	ResourceUsage      = "aigw://usage"
	// ResourceProof is the URI template of proofs by trace id.
	ResourceProof = "aigw://proof/{trace_id}"

	PromptContext = "aigw_context"
	PromptVerify  = "aigw_verify"
)

// fetcher returns one piece of context for the caller of a request.
type fetcher func(ctx context.Context, c *gateway.Caller, args contextArgs) (any, error)

// contextArgs are the arguments of the context tools.
type contextArgs struct {
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	TraceID string `json:"trace_id,omitempty"`
}

// argError is a bad argument: its message is the agent's.
type argError struct{ msg string }

func (e *argError) Error() string { return e.msg }

var (
	noArgs    = json.RawMessage(`{"type":"object","properties":{},"additionalProperties":false}`)
	usageArgs = json.RawMessage(`{"type":"object","properties":{` +
		`"from":{"type":"string","description":"start of the window, RFC 3339 or YYYY-MM-DD (UTC); default the start of the current UTC month"},` +
		`"to":{"type":"string","description":"end of the window (excluded), RFC 3339 or YYYY-MM-DD (UTC); default now"}},` +
		`"additionalProperties":false}`)
	proofArgs = json.RawMessage(`{"type":"object","properties":{` +
		`"trace_id":{"type":"string","pattern":"^[0-9a-f]{32}$","description":"the W3C trace id of your call (32 lowercase hex digits)"}},` +
		`"required":["trace_id"],"additionalProperties":false}`)
	readOnly = &sdk.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: new(bool)}
)

// addContext adds the context features whose functions are configured.
func (s *Server) addContext(srv *sdk.Server) {
	c := &s.cfg
	add := func(tool, title, desc string, schema json.RawMessage, uri string, f fetcher) {
		srv.AddTool(&sdk.Tool{Name: tool, Title: title, Description: desc, InputSchema: schema, Annotations: readOnly}, s.contextTool(f))
		if uri != "" {
			srv.AddResource(&sdk.Resource{URI: uri, Name: strings.TrimPrefix(uri, "aigw://"), Title: title, Description: desc, MIMEType: "application/json"},
				s.contextResource(f))
		}
	}
	if c.Models != nil {
		add(ToolModels, "Models and routes", "The models and routes this API key may use through the gateway.", noArgs, ResourceModels, s.models)
	}
	if c.Guardrails != nil {
		add(ToolGuardrails, "Guardrail rules", "The guardrail rules the gateway applies to this API key's calls.", noArgs, ResourceGuardrails, s.guardrails)
	}
	if c.Budgets != nil {
		add(ToolBudgets, "Budgets", "This tenant's budgets: limits, what is spent and what remains.", noArgs, ResourceBudgets, s.budgets)
	}
	if c.Usage != nil {
		add(ToolUsage, "Usage", "This tenant's usage (calls, tokens, cost) in a time window.", usageArgs, "", s.usage)
		srv.AddResource(&sdk.Resource{URI: ResourceUsage, Name: "usage", Title: "Usage, month to date",
			Description: "This tenant's usage from the start of the current UTC month to now.", MIMEType: "application/json"},
			s.contextResource(s.usage))
	}
	if c.Proof != nil {
		add(ToolProof, "Ledger proof", "An inclusion proof, in this tenant's audit ledger, of the events of one of your calls, by its trace id.", proofArgs, "", s.proof)
		srv.AddResourceTemplate(&sdk.ResourceTemplate{URITemplate: ResourceProof, Name: "proof", Title: "Ledger proof",
			Description: "An inclusion proof of the events of a trace in this tenant's audit ledger.", MIMEType: "application/json"},
			s.contextResource(s.proof))
		srv.AddPrompt(&sdk.Prompt{Name: PromptVerify, Title: "Verify a call in the ledger",
			Description: "Asks to check the inclusion proof of one of your calls' ledger events.",
			Arguments:   []*sdk.PromptArgument{{Name: "trace_id", Description: "the trace id of the call (32 lowercase hex digits)", Required: true}}},
			s.verifyPrompt)
	}
	if c.Models != nil || c.Guardrails != nil || c.Budgets != nil {
		srv.AddPrompt(&sdk.Prompt{Name: PromptContext, Title: "Gateway context",
			Description: "What this API key may do through the gateway: models, guardrails and budgets."}, s.contextPrompt)
	}
}

func (s *Server) models(_ context.Context, c *gateway.Caller, _ contextArgs) (any, error) {
	all := s.cfg.Models(*c)
	out := make([]gateway.Model, 0, len(all))
	for _, m := range all {
		if c.Allows == nil || c.Allows(m.ID) {
			out = append(out, m)
		}
	}
	return map[string]any{"models": out}, nil
}

func (s *Server) guardrails(ctx context.Context, c *gateway.Caller, _ contextArgs) (any, error) {
	return s.cfg.Guardrails(ctx, *c)
}

func (s *Server) budgets(ctx context.Context, c *gateway.Caller, _ contextArgs) (any, error) {
	return s.cfg.Budgets(ctx, c.Tenant)
}

func (s *Server) usage(ctx context.Context, c *gateway.Caller, a contextArgs) (any, error) {
	now := time.Now().UTC()
	from := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	to := now
	var err error
	if a.From != "" {
		if from, err = parseTime(a.From); err != nil {
			return nil, &argError{"from: " + err.Error()}
		}
	}
	if a.To != "" {
		if to, err = parseTime(a.To); err != nil {
			return nil, &argError{"to: " + err.Error()}
		}
	}
	switch {
	case !from.Before(to):
		return nil, &argError{"from must be before to"}
	case to.Sub(from) > MaxUsageSpan:
		return nil, &argError{fmt.Sprintf("the window is longer than %d days", int(MaxUsageSpan/(24*time.Hour)))}
	}
	v, err := s.cfg.Usage(ctx, c.Tenant, from, to)
	if err != nil {
		return nil, err
	}
	return map[string]any{"from": from.Format(time.RFC3339), "to": to.Format(time.RFC3339), "usage": v}, nil
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("want RFC 3339 (2026-01-02T15:04:05Z) or YYYY-MM-DD")
}

func (s *Server) proof(ctx context.Context, c *gateway.Caller, a contextArgs) (any, error) {
	if !validTraceID(a.TraceID) {
		return nil, &argError{"trace_id must be 32 lowercase hex digits"}
	}
	v, err := s.cfg.Proof(ctx, c.Tenant, a.TraceID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"tenant": c.Tenant, "trace_id": a.TraceID, "proof": v}, nil
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

// contextTool serves a fetcher as a tool: the JSON as text and as
// structured content; a failure is a tool error the agent can read.
func (s *Server) contextTool(f fetcher) sdk.ToolHandler {
	return func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		rq := requestOf(ctx)
		if rq == nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "unauthenticated request"}
		}
		var a contextArgs
		if raw := req.Params.Arguments; len(raw) > 0 && string(raw) != "null" {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&a); err != nil {
				return toolError("invalid arguments: " + truncate(err.Error(), 200)), nil
			}
		}
		v, err := f(ctx, rq.caller, a)
		if err != nil {
			return toolError(s.publicMessage(rq, req.Params.Name, err)), nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return toolError(s.publicMessage(rq, req.Params.Name, err)), nil
		}
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: string(b)}}, StructuredContent: json.RawMessage(b)}, nil
	}
}

// contextResource serves a fetcher as a resource (its URI, or the proof
// template's).
func (s *Server) contextResource(f fetcher) sdk.ResourceHandler {
	return func(ctx context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
		rq := requestOf(ctx)
		if rq == nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "unauthenticated request"}
		}
		uri := req.Params.URI
		var a contextArgs
		if id, ok := strings.CutPrefix(uri, "aigw://proof/"); ok {
			a.TraceID = id
		}
		v, err := f(ctx, rq.caller, a)
		if err != nil {
			if errors.Is(err, ledger.ErrNotFound) {
				return nil, sdk.ResourceNotFoundError(uri)
			}
			var ae *argError
			if errors.As(err, &ae) {
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: ae.msg}
			}
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: s.publicMessage(rq, uri, err)}
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: s.publicMessage(rq, uri, err)}
		}
		return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(b)}}}, nil
	}
}

// publicMessage is what the agent is told of a context function's error:
// a bad argument, "not found", a *gateway.Error's message (which is meant
// for clients), or "internal error" (the cause logged, never shown).
func (s *Server) publicMessage(rq *request, what string, err error) string {
	var ae *argError
	var ge *gateway.Error
	switch {
	case errors.As(err, &ae):
		return ae.msg
	case errors.Is(err, ledger.ErrNotFound):
		return "not found"
	case errors.As(err, &ge):
		return ge.Message
	case errors.Is(err, context.DeadlineExceeded):
		return "the gateway timed out; retry later"
	}
	s.log.Error("mcp: context function failed", "tenant", rq.caller.Tenant, "trace_id", rq.traceID, "name", what, "err", err)
	return "internal error"
}

func toolError(msg string) *sdk.CallToolResult {
	return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: msg}}}
}

// contextPrompt gives the agent its context in one message.
func (s *Server) contextPrompt(ctx context.Context, req *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
	rq := requestOf(ctx)
	if rq == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "unauthenticated request"}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "You reach models and tools through the aigw gateway, as API key %q of tenant %q. "+
		"Every call you make is checked against the rules below and recorded in the tenant's audit ledger.\n", rq.caller.KeyID, rq.caller.Tenant)
	section := func(title string, f fetcher) {
		v, err := f(ctx, rq.caller, contextArgs{})
		var out []byte
		if err == nil {
			out, err = json.MarshalIndent(v, "", "  ")
		}
		if err != nil {
			fmt.Fprintf(&b, "\n## %s\n(unavailable: %s)\n", title, s.publicMessage(rq, req.Params.Name, err))
			return
		}
		fmt.Fprintf(&b, "\n## %s\n```json\n%s\n```\n", title, out)
	}
	if s.cfg.Models != nil {
		section("Models and routes you may use", s.models)
	}
	if s.cfg.Guardrails != nil {
		section("Guardrails that apply to you", s.guardrails)
	}
	if s.cfg.Budgets != nil {
		section("Budgets", s.budgets)
	}
	return &sdk.GetPromptResult{Description: "What this API key may do through the gateway",
		Messages: []*sdk.PromptMessage{{Role: "user", Content: &sdk.TextContent{Text: b.String()}}}}, nil
}

// verifyPrompt asks to check the proof of a trace's events.
func (s *Server) verifyPrompt(ctx context.Context, req *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
	rq := requestOf(ctx)
	if rq == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "unauthenticated request"}
	}
	id := req.Params.Arguments["trace_id"]
	v, err := s.proof(ctx, rq.caller, contextArgs{TraceID: id})
	if err != nil {
		var ae *argError
		switch {
		case errors.As(err, &ae):
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: ae.msg}
		case errors.Is(err, ledger.ErrNotFound):
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "no ledger events of this trace in your tenant's log"}
		}
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: s.publicMessage(rq, PromptVerify, err)}
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: s.publicMessage(rq, PromptVerify, err)}
	}
	text := fmt.Sprintf("Below is the inclusion proof, in tenant %q's audit ledger, of the events of trace %s. "+
		"Check that each entry's leaf hash (SHA-256 of 0x00 and the entry) leads, through the proof's hashes, to the root of the "+
		"signed checkpoint (RFC 6962), and that the checkpoint's signature verifies with the ledger's public key "+
		"(`aigw verify` does both).\n\n```json\n%s\n```\n", rq.caller.Tenant, id, out)
	return &sdk.GetPromptResult{Description: "Verify the ledger events of trace " + id,
		Messages: []*sdk.PromptMessage{{Role: "user", Content: &sdk.TextContent{Text: text}}}}, nil
}
