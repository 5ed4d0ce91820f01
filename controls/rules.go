package controls

import (
	"slices"

	"aigw/ledger"
)

// Rule ids. Package evidence evaluates each one over a tenant's log and the
// system log for a period; a control lists the rules that speak to it.
const (
	// RuleIntegrity: the tenant's log and the system log verify from index 0
	// through the period's end checkpoint (entries canonical, hash chain,
	// every tile, every signed checkpoint consistent), and the end
	// checkpoint extends the start checkpoint (consistency proof).
	RuleIntegrity = "ledger-integrity"
	// RuleActivity: the period's calls are recorded: requests, routing,
	// attempts and outcomes, every request with its outcome event.
	RuleActivity = "activity-recorded"
	// RuleRecordContent: every call's events carry what, when, who (key,
	// agent), where (target, provider, model), trace id and outcome.
	RuleRecordContent = "record-content"
	// RuleTimestamps: times are UTC with microsecond granularity and in
	// index order within the skew tolerance; no entry of the period lies
	// after the end checkpoint.
	RuleTimestamps = "timestamps"
	// RuleRetention: nothing was deleted from the log since its first entry
	// (it verifies from index 0); payload erasures are listed.
	RuleRetention = "retention"
	// RuleAdminChanges: every admin change concerning the tenant (tenants,
	// keys, policies, routes) in the system log, with who and when.
	RuleAdminChanges = "admin-changes"
	// RuleKeyLifecycle: API key creation, revocation and expiry, and
	// checkpoint signing key events.
	RuleKeyLifecycle = "key-lifecycle"
	// RuleAccessDenials: requests refused for authentication,
	// authorisation, scope or input validation (4xx error events).
	RuleAccessDenials = "access-denials"
	// RuleGuardrails: guardrail decisions recorded (checks run, verdicts,
	// blocks, redactions); not satisfied when none were recorded.
	RuleGuardrails = "guardrail-decisions"
	// RuleProviderResilience: provider failures and fallbacks (attempts
	// that failed, the next target tried), breaker and retry outcomes.
	RuleProviderResilience = "provider-resilience"
	// RuleApprovals: human approvals and rejections (who, what, when, why).
	RuleApprovals = "human-approvals"
	// RuleOversight: human interventions: overrides, and stops and resumes
	// of an agent or route.
	RuleOversight = "human-oversight"
	// RuleDisclosure: AI-disclosure events (users told they deal with AI).
	RuleDisclosure = "ai-disclosure"
	// RuleIncidents: incident records with awareness time; each serious
	// incident reported within its deadline (EU AI Act Art. 73: 15 days,
	// 10 for a death, 2 for widespread infringement or critical
	// infrastructure).
	RuleIncidents = "incidents"
	// RuleConfigInForce: the policy versions in force during the period
	// (from the events) and the admin events that set them.
	RuleConfigInForce = "config-in-force"
	// RuleAttestation: a human attestation names the control: evaluated
	// per control, not as a population.
	RuleAttestation = "attestation"
)

// Event kinds that the human-oversight and transparency records use
// (besides the ledger's core kinds).
const (
	KindAttestation = "attestation"
	KindOversight   = "oversight"
	KindDisclosure  = "disclosure"
	KindIncident    = "incident"
)

// allKinds is every kind a rule that walks whole logs reads: the ledger's
// core kinds and the kinds above.
var allKinds = []string{
	ledger.KindRequest, ledger.KindRoute, ledger.KindAttempt, ledger.KindGuardrail, ledger.KindResponse, ledger.KindError,
	ledger.KindToolCall, ledger.KindDelegation, ledger.KindApproval, ledger.KindAdmin, ledger.KindKey, ledger.KindErasure,
	KindAttestation, KindOversight, KindDisclosure, KindIncident,
}

// rules is every rule, in the order of the Rule* constants.
var rules = []Rule{
	{ID: RuleIntegrity, Title: "Ledger integrity", Kinds: allKinds,
		Description: "The tenant's log and the system log verify from index 0 through the period's end checkpoint: " +
			"every entry is canonical, the hash chain and every tile are intact, every signed checkpoint agrees with " +
			"the rebuilt tree, and the end checkpoint extends the start checkpoint (consistency proof). Holds when all " +
			"of this verifies; any mismatch, gap or unreadable entry fails it."},
	{ID: RuleActivity, Title: "Activity recorded",
		Kinds: []string{ledger.KindRequest, ledger.KindRoute, ledger.KindAttempt, ledger.KindResponse, ledger.KindError, ledger.KindToolCall, ledger.KindDelegation},
		Description: "The period's calls are recorded: each request with its routing decision, its provider attempts " +
			"and its outcome (a response or an error), and the tool calls and delegations made. Holds when every " +
			"request of the period has its outcome event in the log."},
	{ID: RuleRecordContent, Title: "Record content",
		Kinds: []string{ledger.KindRequest, ledger.KindRoute, ledger.KindAttempt, ledger.KindGuardrail, ledger.KindResponse, ledger.KindError, ledger.KindToolCall, ledger.KindDelegation},
		Description: "Every call's events say what happened and with what outcome, when (UTC time), who (the API key " +
			"and, when known, the agent), where (target, provider and model), and carry the trace id that ties them " +
			"together. Holds when no event of the period lacks one of these."},
	{ID: RuleTimestamps, Title: "Timestamps", Kinds: allKinds,
		Description: "Every entry's time is UTC with microsecond granularity, times follow index order within the " +
			"allowed clock skew, and no entry of the period lies after the end checkpoint. Holds when every entry of " +
			"the period meets all three."},
	{ID: RuleRetention, Title: "Retention", Kinds: allKinds,
		Description: "Nothing was deleted from the logs since their first entry: they verify from index 0. Payload " +
			"erasures (retention expiry, data-subject requests) are listed; an erasure removes a payload, never an " +
			"entry. Holds when the logs verify from index 0 through the period's end."},
	{ID: RuleAdminChanges, Title: "Admin changes", Kinds: []string{ledger.KindAdmin},
		Description: "Every admin change concerning the tenant (tenants, API keys, policies, routes) is listed from " +
			"the system log with who made it and when. Holds when every such change is recorded with its actor and time."},
	{ID: RuleKeyLifecycle, Title: "Key lifecycle", Kinds: []string{ledger.KindKey},
		Description: "API key creation, revocation and expiry, and checkpoint signing key events, are listed with who " +
			"and when. Holds when every key event is recorded with its actor and time."},
	{ID: RuleAccessDenials, Title: "Access denials", Kinds: []string{ledger.KindRequest, ledger.KindError},
		Description: "Requests refused for authentication, authorisation, scope or input validation (error events " +
			"with a 4xx status) are listed with the caller and the reason. Holds when every refusal is recorded with " +
			"its reason."},
	{ID: RuleGuardrails, Title: "Guardrail decisions", Kinds: []string{ledger.KindGuardrail},
		Description: "Guardrail decisions are recorded: which checks ran on which call, their verdicts, and the " +
			"blocks and redactions they made. Holds when guardrail decisions were recorded in the period; not " +
			"satisfied when none were."},
	{ID: RuleProviderResilience, Title: "Provider resilience", Kinds: []string{ledger.KindRoute, ledger.KindAttempt, ledger.KindResponse, ledger.KindError},
		Description: "Provider failures and what followed them: failed attempts, the next target tried (fallback), " +
			"retries and circuit-breaker outcomes, and the call's final outcome. Holds when every failed attempt is " +
			"followed by a recorded fallback, retry or final outcome."},
	{ID: RuleApprovals, Title: "Human approvals", Kinds: []string{ledger.KindApproval, ledger.KindToolCall},
		Description: "Human approvals and rejections of gated actions, each with who decided, what, when and why. " +
			"Holds when every approval event names the approver, the action, the decision and its time."},
	{ID: RuleOversight, Title: "Human oversight", Kinds: []string{KindOversight},
		Description: "Human interventions: overrides of outputs, and stops and resumes of an agent or route, each " +
			"with who and when. Holds when every intervention is recorded with its actor and time."},
	{ID: RuleDisclosure, Title: "AI disclosure", Kinds: []string{KindDisclosure},
		Description: "Disclosure events showing that users were told they are dealing with an AI system. Holds when " +
			"disclosures were recorded in the period."},
	{ID: RuleIncidents, Title: "Incidents", Kinds: []string{KindIncident},
		Description: "Incident records with the time of awareness, and for each serious incident the time it was " +
			"reported. Holds when every serious incident was reported within its deadline (EU AI Act Art. 73: 15 days " +
			"after awareness; 10 days for a death; 2 days for a widespread infringement or critical infrastructure)."},
	{ID: RuleConfigInForce, Title: "Configuration in force",
		Kinds: []string{ledger.KindRequest, ledger.KindRoute, ledger.KindGuardrail, ledger.KindResponse, ledger.KindAdmin},
		Description: "The policy versions in force during the period, read from the events that carry them, and the " +
			"admin events that set them. Holds when every policy version seen on an event was set by a recorded admin change."},
	{ID: RuleAttestation, Title: "Human attestation", Kinds: []string{KindAttestation},
		Description: "A person's attestation names the control, with who attested, what and when. Evaluated per " +
			"control, not over a population: holds for a control when an attestation naming it is in the log."},
}

// ruleIndex maps a rule id to its index in rules.
var ruleIndex = func() map[string]int {
	m := make(map[string]int, len(rules))
	for i, r := range rules {
		m[r.ID] = i
	}
	return m
}()

// Rules returns every rule, in a fixed order (that of the Rule* constants).
// The slice and the rules are copies.
func Rules() []Rule {
	out := make([]Rule, len(rules))
	for i, r := range rules {
		out[i] = r.clone()
	}
	return out
}

// RuleByID returns the rule with that id (a copy).
func RuleByID(id string) (Rule, bool) {
	i, ok := ruleIndex[id]
	if !ok {
		return Rule{}, false
	}
	return rules[i].clone(), true
}

func (r Rule) clone() Rule {
	r.Kinds = slices.Clone(r.Kinds)
	return r
}
