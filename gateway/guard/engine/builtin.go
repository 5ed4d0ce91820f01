package engine

import (
	"encoding/json"
	"fmt"

	"aigw/gateway"
	"aigw/gateway/guard/content"
	"aigw/gateway/guard/grounding"
	"aigw/gateway/guard/injection"
	"aigw/gateway/guard/pii"
	"aigw/gateway/guard/schema"
	"aigw/gateway/guard/secrets"
	"aigw/gateway/guard/tools"
)

// newVault returns the vault of a call's reversible PII redaction.
var newVault = func() vault { return pii.NewVault() }

// Detector versions, recorded with every decision: bump one when what a
// detector finds changes.
const (
	contentVersion   = "content/1"
	piiVersion       = "pii/1"
	secretsVersion   = "secrets/1"
	injectionVersion = "injection/1"
	toolsVersion     = "tools/1"
	schemaVersion    = "schema/1"
)

// build makes a configured check.
func build(cc CheckConfig) (*check, error) {
	c := &check{cfg: cc}
	switch cc.Type {
	case TypeContent:
		f, err := content.New(content.Config{Phrases: cc.Phrases, Regexes: cc.Regexes, Topics: cc.Topics})
		if err != nil {
			return nil, err
		}
		c.det, c.version = f, contentVersion
	case TypePII:
		pc := pii.Config{Entities: cc.Entities, MinScore: cc.Threshold}
		if err := pc.Validate(); err != nil {
			return nil, err
		}
		c.det, c.version = pii.New(pc), piiVersion
	case TypeSecrets:
		c.det, c.version = secrets.New(secrets.Config{}), secretsVersion
	case TypeInjection:
		c.det, c.version = injection.New(injection.Config{Threshold: cc.Threshold}), injectionVersion
	case TypeToolPolicy:
		tc := tools.Config{Default: "allow", ValidateDeclared: true}
		if t := cc.Tools; t != nil {
			if t.Default != "" {
				tc.Default = t.Default
			}
			tc.MaxCallsPerRequest = t.MaxCallsPerRequest
			if t.ValidateDeclared != nil {
				tc.ValidateDeclared = *t.ValidateDeclared
			}
			for _, r := range t.Rules {
				tr := tools.Rule{Tool: r.Tool, Decision: r.Decision, Paths: r.Paths, Domains: r.Domains}
				if r.Schema != nil {
					b, err := json.Marshal(r.Schema)
					if err != nil {
						return nil, fmt.Errorf("tool %s: schema: %w", r.Tool, err)
					}
					tr.Schema = b
				}
				if len(r.Args) > 0 {
					tr.Args = map[string]tools.Constraint{}
					for k, a := range r.Args {
						tr.Args[k] = tools.Constraint{Required: a.Required, Forbidden: a.Forbidden, Type: a.Type, Min: a.Min, Max: a.Max,
							Enum: a.Enum, Pattern: a.Pattern, MaxLength: a.MaxLength}
					}
				}
				tc.Rules = append(tc.Rules, tr)
			}
		}
		p, err := tools.New(tc)
		if err != nil {
			return nil, err
		}
		c.tools, c.version = toolPolicy{p}, toolsVersion
	case TypeJSONSchema:
		c.version = schemaVersion
		c.schema = func(rf *gateway.ResponseFormat) (func(string) error, error) {
			if rf == nil || rf.Type != "json_schema" && rf.Type != "json_object" {
				return nil, nil
			}
			v, err := schema.Compile(rf)
			if err != nil || v == nil {
				return nil, err
			}
			return v.Validate, nil
		}
	case TypeJudge:
		c.version = "judge/1:" + cc.Route
	case TypeGrounding:
		gc := grounding.Config{MaxUnsupportedRatio: cc.MaxUnsupported}
		if err := gc.Validate(); err != nil {
			return nil, err
		}
		c.grounder, c.version = grounding.New(gc), "grounding/1"
	default:
		return nil, fmt.Errorf("unknown check type %q", cc.Type)
	}
	c.box = boxed{id: cc.ID, typ: cc.Type, action: cc.Action, version: c.version}
	return c, nil
}

// toolPolicy adapts a tools.Policy to the engine.
type toolPolicy struct{ p *tools.Policy }

func (t toolPolicy) CheckRequest(ts []gateway.Tool) []Violation {
	return violations(t.p.CheckRequest(ts))
}

func (t toolPolicy) CheckCalls(declared []gateway.Tool, calls []gateway.ToolCall) []Violation {
	return violations(t.p.CheckCalls(declared, calls))
}

func violations(vs []tools.Violation) []Violation {
	out := make([]Violation, len(vs))
	for i, v := range vs {
		out[i] = Violation{Tool: v.Tool, Index: v.Index, Reason: v.Reason, Rule: v.Rule}
	}
	return out
}
