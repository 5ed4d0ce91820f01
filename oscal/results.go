package oscal

import (
	"fmt"
	"sort"
	"strings"

	oscalTypes "github.com/defenseunicorns/go-oscal/src/types/oscal-1-1-3"

	"aigw/controls"
)

// reportPath is the package path of the evidence report, the evidence of
// every attestation observation.
const reportPath = "evidence/report.json"

// localComponents are the components the observations name: aigw as their
// subject, its evidence evaluator as the tool that made them.
func (in *input) localComponents() *[]oscalTypes.SystemComponent {
	return &[]oscalTypes.SystemComponent{
		{
			UUID:        componentUUID(),
			Type:        "software",
			Title:       "aigw",
			Description: componentDescription,
			Status:      oscalTypes.SystemComponentStatus{State: "operational"},
		},
		{
			UUID:  toolUUID(),
			Type:  "software",
			Title: "aigw evidence evaluator",
			Description: fmt.Sprintf("The evidence evaluator of %s (aigw export): it reads the tenant's log and the system log, "+
				"verifies them against their signed checkpoints and evaluates every rule over the period.", nonEmpty(in.r.Generator, "aigw")),
			Status: oscalTypes.SystemComponentStatus{State: "operational"},
		},
	}
}

func toolOrigin() *[]oscalTypes.Origin {
	return &[]oscalTypes.Origin{{Actors: []oscalTypes.OriginActor{{Type: "tool", ActorUuid: toolUUID()}}}}
}

func (in *input) resourceUUID(p string) string { return in.pkgID("resource", p) }

// resources are the back-matter resources of the evidence files paths, for
// the document at package path doc, sorted by path.
func (in *input) resources(doc string, paths []string) []oscalTypes.Resource {
	paths = append([]string(nil), paths...)
	sort.Strings(paths)
	var out []oscalTypes.Resource
	for i, p := range paths {
		if i > 0 && paths[i-1] == p {
			continue
		}
		out = append(out, oscalTypes.Resource{
			UUID:        in.resourceUUID(p),
			Title:       p,
			Description: in.fileDescription(p),
			Rlinks: &[]oscalTypes.ResourceLink{{
				Href:      relHref(doc, p),
				MediaType: mediaType(p),
				Hashes:    &[]oscalTypes.Hash{{Algorithm: "SHA-256", Value: in.files[p]}},
			}},
		})
	}
	return out
}

func (in *input) fileDescription(p string) string {
	if pop := in.pops[p]; pop != nil {
		return fmt.Sprintf("Population %s (%s): all %d members in the period, one JSON object per line. Query: %s",
			pop.ID, nonEmpty(pop.Title, pop.ID), pop.Count, nonEmpty(pop.Query, "not stated"))
	}
	switch {
	case p == reportPath:
		return "The evidence report: every log read, population, rule result and control result of the package."
	case p == "evidence/crosswalk.json" || p == "evidence/crosswalk.csv":
		return "The crosswalk: each control, its rules, the ledger event kinds they read and their evidence files."
	case p == "README.md":
		return "The assessor's guide to the package."
	case p == "verifier.vkey":
		return "The note verifier key of the checkpoints and of the manifest's signature."
	case strings.HasPrefix(p, "checkpoints/"):
		return "A signed checkpoint (C2SP tlog-checkpoint) of a log."
	case strings.HasPrefix(p, "proofs/") && strings.Contains(p, "/consistency-"):
		return "A consistency proof between two checkpoints of a log."
	case strings.HasPrefix(p, "proofs/") && strings.Contains(p, "/inclusion-"):
		return "An inclusion proof of a sampled entry, the entry included, against the log's end checkpoint."
	}
	return "An evidence file of the package."
}

// observationUUID is the observation of a rule result.
func (in *input) observationUUID(rule string) string { return in.pkgID("observation", "rule", rule) }

// attestationUUID is the observation of a control's attestations.
func (in *input) attestationUUID(oscalID string) string {
	return in.pkgID("observation", "attestation", oscalID)
}

func (in *input) evidenceRefs(paths []string) *[]oscalTypes.RelevantEvidence {
	var out []oscalTypes.RelevantEvidence
	for _, p := range paths {
		out = append(out, oscalTypes.RelevantEvidence{Href: "#" + in.resourceUUID(p), Description: p})
	}
	return some(out)
}

func subjectAigw() *[]oscalTypes.SubjectReference {
	return &[]oscalTypes.SubjectReference{{SubjectUuid: componentUUID(), Type: "component", Title: "aigw"}}
}

// ruleObservation is the observation of one rule result.
func (in *input) ruleObservation(id string) (oscalTypes.Observation, []string) {
	ru := in.rules[id]
	method := "TEST"
	if id == controls.RuleAttestation {
		method = "EXAMINE"
	}
	result := "satisfied"
	if ru.Status != controls.Satisfied {
		result = "not satisfied"
	}
	title := nonEmpty(ru.Title, id)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s.", title, result)
	if r := sentence(ru.Reason); r != "" {
		fmt.Fprintf(&b, " %s", r)
	}
	if d := in.desc[id]; d != "" {
		fmt.Fprintf(&b, " What the rule checks: %s", sentence(d))
	}
	var pops []string
	for _, pid := range ru.Populations {
		for _, p := range in.r.Populations {
			if p.ID == pid {
				pops = append(pops, fmt.Sprintf("%s (%d)", p.ID, p.Count))
			}
		}
	}
	if len(pops) > 0 {
		fmt.Fprintf(&b, " Populations read (members in the period): %s.", strings.Join(pops, ", "))
	}
	files := append([]string(nil), ru.Files...)
	sort.Strings(files)
	files = dedup(files)
	return oscalTypes.Observation{
		UUID:             in.observationUUID(id),
		Title:            fmt.Sprintf("Rule %s: %s", id, title),
		Description:      b.String(),
		Methods:          []string{method},
		Types:            &[]string{"control-objective"},
		Origins:          toolOrigin(),
		Subjects:         subjectAigw(),
		Collected:        in.gen,
		RelevantEvidence: in.evidenceRefs(files),
		Props:            &[]oscalTypes.Property{prop("rule", id), prop("result", ru.Status)},
	}, files
}

// attestationObservation is the observation of the attestations naming a
// control in the period.
func (in *input) attestationObservation(c control) (oscalTypes.Observation, []string) {
	var ids []string
	if c.res != nil {
		ids = c.res.Attestations
	}
	var b strings.Builder
	if len(ids) == 0 {
		fmt.Fprintf(&b, "Examined the ledger for attestation events naming %s: none was recorded in the period.", c.ID)
		if r := fragment(c.Reason); r != "" {
			fmt.Fprintf(&b, " The attestation must cover: %s.", r)
		}
	} else {
		fmt.Fprintf(&b, "Examined the ledger for attestation events naming %s: %d recorded in the period (event ids %s).",
			c.ID, len(ids), strings.Join(ids, ", "))
	}
	var files []string
	if _, ok := in.files[reportPath]; ok {
		files = append(files, reportPath)
	}
	if ru := in.rules[controls.RuleAttestation]; ru != nil {
		files = append(files, ru.Files...)
	}
	sort.Strings(files)
	files = dedup(files)
	props := []oscalTypes.Property{prop("control", c.ID)}
	for _, id := range ids {
		props = append(props, prop("attestation-event-id", id))
	}
	return oscalTypes.Observation{
		UUID:             in.attestationUUID(c.OSCALID),
		Title:            fmt.Sprintf("Attestations naming %s", c.ID),
		Description:      b.String(),
		Methods:          []string{"EXAMINE"},
		Types:            &[]string{"control-objective"},
		Origins:          toolOrigin(),
		Subjects:         subjectAigw(),
		Collected:        in.gen,
		RelevantEvidence: in.evidenceRefs(files),
		Props:            &props,
	}, files
}

// observationsOf are the observations a control's finding relates to.
func (in *input) observationsOf(c control) []oscalTypes.RelatedObservation {
	var out []oscalTypes.RelatedObservation
	for _, id := range c.ruleIDs() {
		out = append(out, oscalTypes.RelatedObservation{ObservationUuid: in.observationUUID(id)})
	}
	if c.needsAttestation() {
		out = append(out, oscalTypes.RelatedObservation{ObservationUuid: in.attestationUUID(c.OSCALID)})
	}
	return out
}

func (in *input) riskUUID(c control) string {
	return in.id("aigw/tenant", in.r.Tenant, in.r.Framework, c.OSCALID, "risk")
}

func (in *input) finding(c control) oscalTypes.Finding {
	st := oscalTypes.ObjectiveStatus{State: controls.Satisfied, Reason: "pass"}
	what := "satisfied"
	switch c.status() {
	case controls.NotSatisfied:
		st = oscalTypes.ObjectiveStatus{State: controls.NotSatisfied, Reason: "fail", Remarks: "Not satisfied: " + fragment(c.reason()) + "."}
		what = "not satisfied"
	case controls.NeedsAttestation:
		st = oscalTypes.ObjectiveStatus{State: controls.NotSatisfied, Reason: controls.NeedsAttestation, Remarks: "Needs an attestation: " + fragment(c.reason()) + "."}
		what = "not satisfied: it needs an attestation"
	}
	f := oscalTypes.Finding{
		UUID:                in.pkgID("finding", c.OSCALID),
		Title:               fmt.Sprintf("%s: %s", c.ID, clean(c.Title)),
		Description:         fmt.Sprintf("Over the period %s to %s, %s is %s. %s", stamp(in.from), stamp(in.to), c.ID, what, sentence(c.reason())),
		Origins:             toolOrigin(),
		Props:               &[]oscalTypes.Property{prop("status", c.status())},
		RelatedObservations: some(in.observationsOf(c)),
		Target: oscalTypes.FindingTarget{
			Type:     "objective-id",
			TargetId: objectiveID(c.OSCALID),
			Status:   st,
		},
	}
	if c.status() != controls.Satisfied {
		f.RelatedRisks = &[]oscalTypes.AssociatedRisk{{RiskUuid: in.riskUUID(c)}}
	}
	return f
}

func (in *input) risk(c control) oscalTypes.Risk {
	title := fmt.Sprintf("%s is not satisfied", c.ID)
	desc := fmt.Sprintf("The ledger evidence for %s (%s) did not hold over the period %s to %s: the control may not be met.",
		c.ID, clean(c.Title), stamp(in.from), stamp(in.to))
	if c.status() == controls.NeedsAttestation {
		title = fmt.Sprintf("%s awaits an attestation", c.ID)
		desc = fmt.Sprintf("No attestation naming %s (%s) was recorded over the period %s to %s: nothing shows the organisation meets it.",
			c.ID, clean(c.Title), stamp(in.from), stamp(in.to))
	}
	return oscalTypes.Risk{
		UUID:                in.riskUUID(c),
		Title:               title,
		Description:         desc,
		Statement:           sentence(c.reason()),
		Status:              "open",
		Origins:             toolOrigin(),
		RelatedObservations: some(in.observationsOf(c)),
	}
}

// assessment is everything the assessment results say about the period.
type assessment struct {
	observations []oscalTypes.Observation
	findings     []oscalTypes.Finding
	risks        []oscalTypes.Risk
	// files are the evidence files each observation relies on.
	files map[string][]string
}

func (in *input) assess() assessment {
	a := assessment{files: make(map[string][]string)}
	for _, id := range in.ruleIDs {
		o, files := in.ruleObservation(id)
		a.observations = append(a.observations, o)
		a.files[o.UUID] = files
	}
	for _, c := range in.controls {
		if !c.assessed() {
			continue
		}
		if c.needsAttestation() {
			o, files := in.attestationObservation(c)
			a.observations = append(a.observations, o)
			a.files[o.UUID] = files
		}
		a.findings = append(a.findings, in.finding(c))
		if c.status() != controls.Satisfied {
			a.risks = append(a.risks, in.risk(c))
		}
	}
	return a
}

func (in *input) assessmentResults() (*oscalTypes.OscalModels, error) {
	a := in.assess()
	var include []oscalTypes.AssessedControlsSelectControlById
	var naProps []oscalTypes.Property
	var naText []string
	for _, c := range in.controls {
		if c.assessed() {
			include = append(include, oscalTypes.AssessedControlsSelectControlById{ControlId: c.OSCALID})
			continue
		}
		p := prop("not-applicable", c.OSCALID)
		p.Remarks = sentence(c.reason())
		naProps = append(naProps, p)
		naText = append(naText, fmt.Sprintf("%s (%s)", c.ID, fragment(c.reason())))
	}
	if len(include) == 0 {
		return nil, fmt.Errorf("no control of %s is assessed", in.r.Framework)
	}
	remarks := ""
	if len(naText) > 0 {
		remarks = "Not assessed, as not applicable: " + strings.Join(naText, "; ") + "."
	}

	var logs []string
	for _, l := range in.r.Logs {
		s := fmt.Sprintf("log %s (%d entries in the period", l.Log, l.InPeriod)
		if l.Verified {
			s += fmt.Sprintf(", verified from index 0 through its checkpoint of size %d)", l.EndSize)
		} else {
			s += fmt.Sprintf(", verification FAILED: %s)", nonEmpty(l.Error, "no reason given"))
		}
		logs = append(logs, s)
	}
	desc := fmt.Sprintf("Continuous automated assessment by aigw of tenant %s against %s (%s) over the period %s to %s (end excluded). "+
		"The evidence evaluator read %s, and evaluated %d rules: each observation is one rule result. "+
		"Each finding is one control, satisfied only when every observation it relates to holds and, for a control that needs one, "+
		"an attestation naming it was recorded in the period.",
		in.r.Tenant, in.cat.Title, in.cat.Version, stamp(in.from), stamp(in.to),
		nonEmpty(strings.Join(logs, "; "), "no log"), len(in.ruleIDs))

	var all []string
	for p := range in.files {
		all = append(all, p)
	}
	apUUID := in.pkgID("resource", "assessment-plan")
	resources := append([]oscalTypes.Resource{{
		UUID:  apUUID,
		Title: "No separate assessment plan",
		Description: "aigw assesses continuously and automatically; no separate OSCAL assessment plan exists. " +
			"The method is the rules of the component definition (component-definition.json in this directory), evaluated by " +
			"aigw's evidence evaluator over the ledger for the period; the controls are those of the system security plan " +
			"(system-security-plan.json) and the profile it imports.",
		Props: &[]oscalTypes.Property{prop("assessment-plan", "none")},
	}}, in.resources(AssessmentResultsPath, all)...)

	md := in.metadata(fmt.Sprintf("aigw tenant %s: assessment results for %s (%s), %s to %s",
		in.r.Tenant, in.cat.Title, in.cat.Version, stamp(in.from), stamp(in.to)))
	return &oscalTypes.OscalModels{AssessmentResults: &oscalTypes.AssessmentResults{
		UUID:     in.pkgID(AssessmentResultsPath),
		Metadata: md,
		ImportAp: oscalTypes.ImportAp{
			Href:    "#" + apUUID,
			Remarks: "No assessment plan: the back-matter resource this points at says how the assessment was made.",
		},
		Results: []oscalTypes.Result{{
			UUID:             in.pkgID("result"),
			LocalDefinitions: &oscalTypes.LocalDefinitions{Components: in.localComponents()},
			Title:            fmt.Sprintf("aigw assessment of tenant %s, %s to %s", in.r.Tenant, stamp(in.from), stamp(in.to)),
			Description:      desc,
			Start:            in.from,
			End:              ptr(in.to),
			Props:            some(naProps),
			Remarks:          remarks,
			ReviewedControls: oscalTypes.ReviewedControls{
				Description:       "Every control of the catalog that applies to the system.",
				ControlSelections: []oscalTypes.AssessedControls{{IncludeControls: &include}},
			},
			Observations: some(a.observations),
			Findings:     some(a.findings),
			Risks:        some(a.risks),
		}},
		BackMatter: &oscalTypes.BackMatter{Resources: &resources},
	}}, nil
}

// poam renders one item per assessed control that is not satisfied, with
// the findings, observations and risks the items relate to; nil when every
// assessed control is satisfied (a POA&M needs at least one item).
func (in *input) poam() (*oscalTypes.OscalModels, error) {
	a := in.assess()
	findings := make(map[string]oscalTypes.Finding)
	for _, f := range a.findings {
		findings[f.UUID] = f
	}
	risks := make(map[string]oscalTypes.Risk)
	for _, r := range a.risks {
		risks[r.UUID] = r
	}
	var items []oscalTypes.PoamItem
	var fs []oscalTypes.Finding
	var rs []oscalTypes.Risk
	used := make(map[string]bool)
	for _, c := range in.controls {
		if !c.assessed() || c.status() == controls.Satisfied {
			continue
		}
		f := findings[in.pkgID("finding", c.OSCALID)]
		r := risks[in.riskUUID(c)]
		fs = append(fs, f)
		rs = append(rs, r)
		obs := in.observationsOf(c)
		for _, o := range obs {
			used[o.ObservationUuid] = true
		}
		desc := fmt.Sprintf("%s (%s) is not satisfied for tenant %s over the period %s to %s: %s. Correct the cause; the next export re-evaluates the control.",
			c.ID, clean(c.Title), in.r.Tenant, stamp(in.from), stamp(in.to), fragment(c.reason()))
		if c.status() == controls.NeedsAttestation {
			desc = fmt.Sprintf("%s (%s) needs an attestation for tenant %s over the period %s to %s. Record an attestation event naming the control",
				c.ID, clean(c.Title), in.r.Tenant, stamp(in.from), stamp(in.to))
			if r := fragment(c.Reason); r != "" {
				desc += ", covering: " + r + "."
			} else {
				desc += "."
			}
		}
		items = append(items, oscalTypes.PoamItem{
			UUID:                in.id("aigw/tenant", in.r.Tenant, in.r.Framework, c.OSCALID, "poam-item"),
			Title:               fmt.Sprintf("%s: %s", c.ID, clean(c.Title)),
			Description:         desc,
			Props:               &[]oscalTypes.Property{prop("status", c.status())},
			RelatedFindings:     &[]oscalTypes.RelatedFinding{{FindingUuid: f.UUID}},
			RelatedObservations: some(obs),
			RelatedRisks:        &[]oscalTypes.AssociatedRisk{{RiskUuid: r.UUID}},
		})
	}
	if len(items) == 0 {
		return nil, nil
	}
	var obs []oscalTypes.Observation
	var files []string
	for _, o := range a.observations {
		if used[o.UUID] {
			obs = append(obs, o)
			files = append(files, a.files[o.UUID]...)
		}
	}
	md := in.metadata(fmt.Sprintf("aigw tenant %s: plan of action and milestones for %s (%s), %s to %s",
		in.r.Tenant, in.cat.Title, in.cat.Version, stamp(in.from), stamp(in.to)))
	p := &oscalTypes.PlanOfActionAndMilestones{
		UUID:      in.pkgID(POAMPath),
		Metadata:  md,
		ImportSsp: &oscalTypes.ImportSsp{Href: relHref(POAMPath, SSPPath)},
		SystemId:  &oscalTypes.SystemId{IdentifierType: NS + "/tenant", ID: in.r.Tenant},
		LocalDefinitions: &oscalTypes.PlanOfActionAndMilestonesLocalDefinitions{
			Components: in.localComponents(),
		},
		Observations: some(obs),
		Risks:        some(rs),
		Findings:     some(fs),
		PoamItems:    items,
	}
	if res := in.resources(POAMPath, files); len(res) > 0 {
		p.BackMatter = &oscalTypes.BackMatter{Resources: &res}
	}
	return &oscalTypes.OscalModels{PlanOfActionAndMilestones: p}, nil
}

func dedup(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || s[i-1] != v {
			out = append(out, v)
		}
	}
	return out
}
