// Package controls holds the control catalogs aigw evidences (NIST AI RMF
// 1.0, AIUC-1, NIST SP 800-53 rev5 with the FedRAMP Moderate parameter
// values, and the EU AI Act articles a gateway speaks to) as data embedded in
// the binary, and for each control the evidence rules that speak to it.
//
// A rule (see [Rules]) is evaluated over the ledger by package evidence; a
// control's status is derived from its rules' results by [Evaluate].
package controls

// Frameworks, as named on the command line (aigw export --framework).
const (
	NISTAIRMF       = "nist-ai-rmf"
	AIUC1           = "aiuc-1"
	FedRAMPModerate = "fedramp-moderate"
	EUAIAct         = "eu-ai-act"
)

// Control statuses.
const (
	Satisfied        = "satisfied"
	NotSatisfied     = "not-satisfied"
	NotApplicable    = "not-applicable"
	NeedsAttestation = "needs-attestation"
)

// Evidence kinds a control can be met by.
const (
	// Automated: the ledger evidences the control; its rules decide.
	Automated = "automated"
	// Attestation: an organisational control; only a human attestation
	// (an `attestation` ledger event naming the control) evidences it. Its
	// rules, if any, are supporting evidence shown beside the attestation.
	Attestation = "attestation"
	// Hybrid: the rules must hold and an attestation must exist.
	Hybrid = "hybrid"
	// Inapplicable: the control does not apply (a retired AIUC-1 control, a
	// duty that no gateway deployment has); Reason says why.
	Inapplicable = "not-applicable"
)

// Catalog is one framework's controls, in catalog order.
type Catalog struct {
	// Framework is the framework's command-line name (NISTAIRMF, ...).
	Framework string `json:"framework"`
	Title     string `json:"title"`
	// Version is the catalog's edition (e.g. "1.0", "2026-07-15", "rev5").
	Version string `json:"version"`
	// Source is the URL of the authoritative text.
	Source   string    `json:"source"`
	Controls []Control `json:"controls"`
}

// Control is one control, subcategory, requirement or article.
type Control struct {
	// ID is the framework's own identifier: "GOVERN 1.1", "E015", "AU-2",
	// "AU-6(1)", "Art. 12".
	ID string `json:"id"`
	// OSCALID is the OSCAL control-id token for ID: lowercase, no spaces,
	// unique in the catalog ("govern-1.1", "e015", "au-2", "au-6.1", "art-12").
	OSCALID string `json:"oscal_id"`
	// Group is the function, domain, family or chapter ("GOVERN", "E", "AU").
	Group string `json:"group"`
	Title string `json:"title"`
	// Statement is the control's requirement: verbatim where the source's
	// licence allows (AI RMF, SP 800-53, EU AI Act), else our paraphrase.
	Statement string `json:"statement"`
	// Params are the organisation-defined parameter values in force (the
	// FedRAMP Moderate values for SP 800-53), by parameter id.
	Params []Param `json:"params,omitempty"`
	// Evidence is Automated, Attestation, Hybrid or Inapplicable.
	Evidence string `json:"evidence"`
	// Rules are the ids of the rules (keys of Rules) whose results decide
	// or support the control.
	Rules []string `json:"rules,omitempty"`
	// Reason explains an Inapplicable control, or what an attestation must
	// cover.
	Reason string `json:"reason,omitempty"`
	// Retired marks an AIUC-1 control withdrawn from the standard.
	Retired bool `json:"retired,omitempty"`
}

// Param is an organisation-defined parameter value.
type Param struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

// Rule says what ledger evidence a rule looks at; package evidence
// evaluates it.
type Rule struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Description: what the rule checks and when it holds, in plain words.
	Description string `json:"description"`
	// Kinds are the ledger event kinds the rule reads.
	Kinds []string `json:"kinds"`
}
