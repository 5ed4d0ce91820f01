package oscal

import (
	"fmt"
	"sort"
	"strings"

	oscalTypes "github.com/defenseunicorns/go-oscal/src/types/oscal-1-1-3"

	"aigw/controls"
)

// componentDescription says what aigw is: the defined component of the
// component-definition and a component of the SSP.
const componentDescription = "aigw is an AI gateway with an audit ledger. " +
	"Route: it serves an OpenAI-compatible API to AI agents and routes each call to a model provider " +
	"(OpenAI, Anthropic, Bedrock, Gemini or an OpenAI-compatible service) with aliases, fallbacks, retries and budgets. " +
	"Inspect: guardrails check requests and responses (personal data and secrets, prompt injection, token and rate limits, schemas) " +
	"and can block or redact a call or hold it for human approval. " +
	"Log: every step of every call, every admin change and every human decision is an event in an append-only ledger, one log per tenant " +
	"plus a system log: canonical JSON entries in an RFC 6962 Merkle tree with a hash chain and signed C2SP checkpoints, " +
	"verifiable offline with the deployment's public key."

const componentPurpose = "Route, inspect and log the calls of AI agents to model providers, and keep a verifiable record of them."

// componentUUID is aigw's component in every document and every package.
func componentUUID() string { return uuidFor("aigw/component") }

// toolUUID is the tool that produced the observations: aigw's evidence
// evaluator (aigw export).
func toolUUID() string { return uuidFor("aigw/tool/evidence") }

func (in *input) componentDefinition() (*oscalTypes.OscalModels, error) {
	fw := in.r.Framework
	var reqs []oscalTypes.ImplementedRequirementControlImplementation
	for _, c := range in.controls {
		if !c.assessed() {
			continue
		}
		props := []oscalTypes.Property{prop("evidence", nonEmpty(c.Evidence, controls.Automated))}
		for _, id := range c.ruleIDs() {
			props = append(props, prop("Rule_Id", id))
		}
		if c.needsAttestation() {
			props = append(props, prop("Rule_Id", controls.RuleAttestation))
		}
		reqs = append(reqs, oscalTypes.ImplementedRequirementControlImplementation{
			UUID:          in.id("aigw", fw, c.OSCALID, "implemented-requirement"),
			ControlId:     c.OSCALID,
			Description:   in.howEvidenced(c),
			Props:         &props,
			SetParameters: setParameters(c),
		})
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("no control of %s applies", fw)
	}

	// The rules, as compliance-trestle's rule sets: Rule_Id and
	// Rule_Description props grouped by remarks.
	ids := append([]string(nil), in.ruleIDs...)
	for _, c := range in.controls {
		if c.assessed() && c.needsAttestation() && in.rules[controls.RuleAttestation] == nil {
			ids = append(ids, controls.RuleAttestation)
			sort.Strings(ids)
			break
		}
	}
	var ruleProps []oscalTypes.Property
	for i, id := range ids {
		set := fmt.Sprintf("rule_set_%02d", i)
		ruleProps = append(ruleProps,
			oscalTypes.Property{Name: "Rule_Id", Ns: NS, Value: id, Remarks: set},
			oscalTypes.Property{Name: "Rule_Description", Ns: NS, Value: in.ruleText(id), Remarks: set})
	}

	md := in.metadata(fmt.Sprintf("aigw component definition: %s (%s)", in.cat.Title, in.cat.Version))
	return &oscalTypes.OscalModels{ComponentDefinition: &oscalTypes.ComponentDefinition{
		UUID:     in.pkgID(ComponentDefinitionPath),
		Metadata: md,
		Components: &[]oscalTypes.DefinedComponent{{
			UUID:        componentUUID(),
			Type:        "software",
			Title:       "aigw",
			Description: componentDescription,
			Purpose:     componentPurpose,
			Props:       some(ruleProps),
			ControlImplementations: &[]oscalTypes.ControlImplementationSet{{
				UUID:   in.id("aigw", fw, "control-implementation"),
				Source: relHref(ComponentDefinitionPath, CatalogPath),
				Description: fmt.Sprintf("How aigw evidences the %s controls from its audit ledger. "+
					"Each implemented requirement names the rules (Rule_Id) package evidence evaluates over the ledger; "+
					"an organisational control is met by a human attestation that aigw records in the ledger.", in.cat.Title),
				ImplementedRequirements: reqs,
			}},
		}},
	}}, nil
}

// ruleText is a rule's description, else its title, else its id.
func (in *input) ruleText(id string) string {
	if d := in.desc[id]; d != "" {
		return d
	}
	if id == controls.RuleAttestation {
		return "A person's attestation names the control, with who attested, what and when."
	}
	if ru := in.rules[id]; ru != nil && clean(ru.Title) != "" {
		return clean(ru.Title)
	}
	return id
}

// howEvidenced says how aigw evidences a control.
func (in *input) howEvidenced(c control) string {
	var rules []string
	for _, id := range c.ruleIDs() {
		title := id
		if ru := in.rules[id]; ru != nil && clean(ru.Title) != "" {
			title = clean(ru.Title)
		}
		text := fmt.Sprintf("%s (rule %s)", title, id)
		if d := in.desc[id]; d != "" {
			text += ": " + fragment(d)
		}
		rules = append(rules, text)
	}
	attest := nonEmpty(fragment(c.Reason), "that it meets the control")
	var b strings.Builder
	switch {
	case c.Evidence == controls.Attestation:
		fmt.Fprintf(&b, "%s is an organisational control: the ledger cannot evidence it on its own. "+
			"The organisation must attest: %s. aigw records each attestation as an attestation event naming the control in the ledger "+
			"(who attested, when and what), and the assessment looks for one in the period.", c.ID, attest)
		if len(rules) > 0 {
			fmt.Fprintf(&b, " Supporting evidence from the ledger: %s.", strings.Join(rules, "; "))
		}
	default:
		fmt.Fprintf(&b, "aigw evidences %s from its audit ledger", c.ID)
		if len(rules) > 0 {
			fmt.Fprintf(&b, ": %s.", strings.Join(rules, "; "))
		} else {
			b.WriteString(".")
		}
		if c.needsAttestation() {
			fmt.Fprintf(&b, " The organisation must also attest: %s; aigw records the attestation as an attestation event naming the control.",
				attest)
		}
	}
	return b.String()
}

func setParameters(c control) *[]oscalTypes.SetParameter {
	var sp []oscalTypes.SetParameter
	for _, p := range c.Params {
		if v := clean(p.Value); v != "" {
			sp = append(sp, oscalTypes.SetParameter{ParamId: p.ID, Values: []string{v}})
		}
	}
	return some(sp)
}

func (in *input) ssp() (*oscalTypes.OscalModels, error) {
	t, fw := in.r.Tenant, in.r.Framework
	md := in.metadata(fmt.Sprintf("aigw tenant %s: system security plan for %s (%s)", t, in.cat.Title, in.cat.Version))
	md.Roles = &[]oscalTypes.Role{{
		ID:          "agent",
		Title:       "AI agent",
		Description: "Software that calls model providers through aigw with a tenant API key.",
	}}

	sc := oscalTypes.SystemCharacteristics{
		SystemIds:       []oscalTypes.SystemId{{IdentifierType: NS + "/tenant", ID: t}},
		SystemName:      "aigw tenant " + t,
		SystemNameShort: t,
		Description: fmt.Sprintf("The AI agents of tenant %s call model providers through aigw, which routes, inspects and logs every call. "+
			"This plan is a fragment: it states how aigw implements the %s controls for the tenant, and the implementation status the "+
			"assessment of %s to %s found.", t, in.cat.Title, stamp(in.from), stamp(in.to)),
		Props: &[]oscalTypes.Property{prop("tenant", t)},
		SystemInformation: oscalTypes.SystemInformation{InformationTypes: []oscalTypes.InformationType{{
			UUID:  uuidFor("aigw/information-type/agent-calls"),
			Title: "AI agent calls and their audit records",
			Description: "Prompts and completions of AI agent calls, which can hold personal data, and the audit events about them: " +
				"routing, guardrail decisions, approvals, admin changes and attestations. The ledger commits to a salted digest of each " +
				"payload; payloads are stored beside it and can be erased without breaking verification of the log.",
		}}},
		Status: oscalTypes.Status{State: "operational"},
		AuthorizationBoundary: oscalTypes.AuthorizationBoundary{
			Description: fmt.Sprintf("The aigw deployment serving tenant %s: the gateway (API, authentication, guardrails, router), "+
				"the ledger (write-ahead stream, sequencer, store) and its checkpoint signing key. Model providers are external "+
				"services outside the boundary; every call to one is recorded at the boundary.", t),
		},
	}
	if fw == controls.FedRAMPModerate {
		const moderate = "fips-199-moderate"
		sc.SecuritySensitivityLevel = moderate
		sc.SecurityImpactLevel = &oscalTypes.SecurityImpactLevel{
			SecurityObjectiveConfidentiality: moderate,
			SecurityObjectiveIntegrity:       moderate,
			SecurityObjectiveAvailability:    moderate,
		}
		it := &sc.SystemInformation.InformationTypes[0]
		it.ConfidentialityImpact = &oscalTypes.Impact{Base: moderate}
		it.IntegrityImpact = &oscalTypes.Impact{Base: moderate}
		it.AvailabilityImpact = &oscalTypes.Impact{Base: moderate}
	}

	var reqs []oscalTypes.ImplementedRequirement
	for _, c := range in.controls {
		if c.Retired {
			continue
		}
		state, remarks := implementationStatus(c)
		desc := in.howEvidenced(c)
		if !c.assessed() {
			desc = fmt.Sprintf("%s does not apply. %s", c.ID, sentence(c.reason()))
		}
		base := []string{"aigw/tenant", t, fw, c.OSCALID}
		reqs = append(reqs, oscalTypes.ImplementedRequirement{
			UUID:          in.id(append(base, "implemented-requirement")...),
			ControlId:     c.OSCALID,
			Props:         &[]oscalTypes.Property{prop("status", c.status())},
			SetParameters: setParameters(c),
			ByComponents: &[]oscalTypes.ByComponent{{
				UUID:                 in.id(append(base, "by-component", "aigw")...),
				ComponentUuid:        componentUUID(),
				Description:          desc,
				ImplementationStatus: &oscalTypes.ImplementationStatus{State: state, Remarks: remarks},
			}},
		})
	}

	return &oscalTypes.OscalModels{SystemSecurityPlan: &oscalTypes.SystemSecurityPlan{
		UUID:                  in.pkgID(SSPPath),
		Metadata:              md,
		ImportProfile:         oscalTypes.ImportProfile{Href: relHref(SSPPath, ProfilePath)},
		SystemCharacteristics: sc,
		SystemImplementation: oscalTypes.SystemImplementation{
			Users: []oscalTypes.SystemUser{{
				UUID:        uuidFor("aigw/tenant/" + t + "/user/agent"),
				Title:       "AI agent",
				ShortName:   "agent",
				Description: fmt.Sprintf("An AI agent of tenant %s, authenticated by a tenant API key.", t),
				RoleIds:     &[]string{"agent"},
			}},
			Components: []oscalTypes.SystemComponent{
				{
					UUID:        uuidFor("aigw/tenant/" + t + "/this-system"),
					Type:        "this-system",
					Title:       "aigw tenant " + t,
					Description: fmt.Sprintf("The system as a whole: tenant %s's use of aigw.", t),
					Status:      oscalTypes.SystemComponentStatus{State: "operational"},
				},
				{
					UUID:        componentUUID(),
					Type:        "software",
					Title:       "aigw",
					Description: componentDescription,
					Purpose:     componentPurpose,
					Status:      oscalTypes.SystemComponentStatus{State: "operational"},
				},
			},
		},
		ControlImplementation: oscalTypes.ControlImplementation{
			Description: fmt.Sprintf("How tenant %s's system implements the %s controls: aigw evidences them from its audit ledger, "+
				"and the organisation attests to the organisational ones. The implementation status of each control is the "+
				"assessment of %s to %s (assessment-results.json).", t, in.cat.Title, stamp(in.from), stamp(in.to)),
			ImplementedRequirements: reqs,
		},
	}}, nil
}

// implementationStatus maps a control's status to an SSP implementation
// status: satisfied is implemented; an organisational control awaiting its
// attestation is planned; a control whose ledger evidence failed, or whose
// rules hold but whose attestation is missing, is partial.
func implementationStatus(c control) (state, remarks string) {
	reason := fragment(c.reason()) + "."
	switch c.status() {
	case controls.Satisfied:
		return "implemented", "Satisfied in the period: " + reason
	case controls.NeedsAttestation:
		if c.Evidence == controls.Attestation {
			return "planned", "Needs an attestation: " + reason
		}
		return "partial", "Needs an attestation: " + reason
	case controls.NotApplicable:
		return "not-applicable", sentence(reason)
	}
	return "partial", "Not satisfied in the period: " + reason
}
