package evidence

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"aigw/controls"
	"aigw/ledger"
)

// evaluate computes every rule the catalog's controls use, then the controls.
func (b *builder) evaluate() {
	used := map[string]bool{}
	for _, c := range b.cat.Controls {
		for _, r := range c.Rules {
			used[r] = true
		}
	}
	status := map[string]string{}
	for _, rule := range controls.Rules() {
		if !used[rule.ID] || rule.ID == controls.RuleAttestation {
			continue
		}
		res := b.rule(rule)
		status[res.ID] = res.Status
		b.report.Rules = append(b.report.Rules, res)
	}
	slices.SortFunc(b.report.Rules, func(x, y RuleResult) int { return strings.Compare(x.ID, y.ID) })

	for _, c := range b.cat.Controls {
		atts := b.attestationsFor(c)
		st, reason := controls.Evaluate(c, status, len(atts) > 0)
		cr := ControlResult{ID: c.ID, OSCALID: c.OSCALID, Title: c.Title, Evidence: c.Evidence, Status: st, Reason: reason,
			Attestations: atts}
		for _, r := range c.Rules {
			if r != controls.RuleAttestation {
				cr.Rules = append(cr.Rules, r)
			}
		}
		b.report.Controls = append(b.report.Controls, cr)
	}
}

// attestationsFor returns the event ids of the attestations in force for a
// control in the period: for the framework, naming the control, made
// before the period's end, and not expired before its start.
func (b *builder) attestationsFor(c controls.Control) []string {
	var out []string
	to := b.report.To.Format(ledger.TimeFormat)
	for _, a := range b.attestations {
		if a.Framework != b.cfg.Framework || a.Time >= to {
			continue
		}
		if a.ValidUntil != "" {
			if vu, err := time.Parse(time.RFC3339, a.ValidUntil); err != nil || vu.Before(b.report.From) {
				continue
			}
		}
		for _, id := range a.Controls {
			if strings.EqualFold(id, c.OSCALID) || id == c.ID {
				out = append(out, a.EventID)
				break
			}
		}
	}
	return out
}

func (b *builder) pop(id string) *Population {
	for i := range b.report.Populations {
		if b.report.Populations[i].ID == id {
			return &b.report.Populations[i]
		}
	}
	return nil
}

// files returns the package files a rule relies on: the populations' files
// and samples' proofs, and the logs' checkpoints and consistency proofs.
func (b *builder) files(popIDs []string, logs bool) []string {
	var out []string
	for _, id := range popIDs {
		p := b.pop(id)
		if p.File != "" {
			out = append(out, p.File)
		}
		for _, s := range p.Samples {
			out = append(out, s.Proof)
		}
	}
	if logs {
		for _, r := range b.report.Logs {
			for _, f := range []string{r.StartCheckpoint, r.EndCheckpoint, r.Consistency} {
				if f != "" {
					out = append(out, f)
				}
			}
		}
	}
	out = append(out, "evidence/report.json")
	slices.Sort(out)
	return slices.Compact(out)
}

func (b *builder) count(id string) uint64 { return b.pop(id).Count }

func plural(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// rule evaluates one rule. A rule that cannot be evaluated is not
// satisfied and says why.
func (b *builder) rule(rule controls.Rule) RuleResult {
	res := RuleResult{ID: rule.ID, Title: rule.Title, Status: controls.NotSatisfied}
	tenant := b.logStats[b.cfg.Tenant]
	system := b.logStats[ledger.SystemLog]
	ok := func(reason string) { res.Status, res.Reason = controls.Satisfied, reason }
	fail := func(reason string) { res.Status, res.Reason = controls.NotSatisfied, reason }
	integrity := func() string {
		var bad []string
		for _, st := range []*logStats{tenant, system} {
			switch {
			case st.rng.EndSize == 0:
				bad = append(bad, fmt.Sprintf("log %s has no signed checkpoint", st.rng.Log))
			case st.verifyErr != nil:
				bad = append(bad, fmt.Sprintf("log %s does not verify: %v", st.rng.Log, st.verifyErr))
			case st.invalid > 0:
				bad = append(bad, fmt.Sprintf("log %s: %d entries unreadable, the first at index %d", st.rng.Log, st.invalid, st.invalidAt))
			}
		}
		return strings.Join(bad, "; ")
	}
	switch rule.ID {
	case controls.RuleIntegrity:
		res.Files = b.files(nil, true)
		if bad := integrity(); bad != "" {
			fail(bad)
			break
		}
		var parts []string
		for _, r := range b.report.Logs {
			p := fmt.Sprintf("log %s verified from index 0 to its signed checkpoint of size %d (entries canonical, hash chain, every tile, %d signed checkpoints consistent)", r.Log, r.EndSize, r.Checkpoints)
			if r.Consistency != "" {
				p += fmt.Sprintf("; the checkpoint of size %d at the period's start is consistent with it", r.StartSize)
			}
			parts = append(parts, p)
		}
		ok(strings.Join(parts, "; ") + ".")
	case controls.RuleActivity:
		res.Populations = []string{PopCalls, PopOutcomes}
		res.Files = b.files(res.Populations, true)
		calls, outs := b.count(PopCalls), b.count(PopOutcomes)
		switch {
		case tenant.verifyErr != nil || tenant.rng.EndSize == 0:
			fail("the tenant's log could not be read through a verified checkpoint")
		case calls == 0:
			fail("no call was recorded in the period")
		case tenant.openAtEnd > 0:
			fail(fmt.Sprintf("%s of the period have no recorded outcome (the first at index %d of log %s)", plural(tenant.openAtEnd, "request", "requests"), tenant.firstOpen, b.cfg.Tenant))
		default:
			ok(fmt.Sprintf("%s and %s recorded in the period; every request has its outcome.", plural(calls, "request", "requests"), plural(outs, "outcome", "outcomes")))
		}
	case controls.RuleRecordContent:
		res.Populations = []string{PopCalls, PopOutcomes}
		res.Files = b.files(res.Populations, false)
		switch {
		case b.count(PopCalls) == 0:
			fail("no call was recorded in the period")
		case tenant.incomplete > 0:
			fail(fmt.Sprintf("%s lack a key id, trace id or status (the first at index %d)", plural(tenant.incomplete, "event", "events"), tenant.incompleteAt))
		default:
			ok("every request carries its trace id and the key (and agent, when given) that made it; every outcome its trace id and HTTP status, with the target, provider, model, tokens and latency when the call reached a provider; every entry its UTC time, event id and kind.")
		}
	case controls.RuleTimestamps:
		res.Files = b.files(nil, true)
		var bad []string
		for _, st := range []*logStats{tenant, system} {
			if st.regressions > 0 {
				bad = append(bad, fmt.Sprintf("log %s: %s earlier than the entry before by more than %s (at most %s, at index %d)", st.rng.Log, plural(st.regressions, "entry is", "entries are"), b.cfg.Skew, st.maxRegression, st.regressionAt))
			}
			if !st.periodClosed && st.rng.EndSize > 0 {
				bad = append(bad, fmt.Sprintf("log %s: no entry dated after %s yet, so the period may still receive entries", st.rng.Log, b.report.To.Add(b.cfg.Skew).Format(time.RFC3339)))
			}
		}
		if len(bad) > 0 {
			fail(strings.Join(bad, "; "))
			break
		}
		gaps := ""
		for _, r := range b.report.Logs {
			if r.MaxGap != "" {
				gaps += fmt.Sprintf(" The longest time between consecutive entries of log %s in the period is %s (before index %d).", r.Log, r.MaxGap, r.MaxGapAt)
			}
		}
		ok(fmt.Sprintf("every entry's time is UTC with microsecond granularity (finer than one second), and no entry is earlier than the one before by more than %s; indexes have no gap (the logs verify); both logs hold entries dated after the period, so it is closed.%s", b.cfg.Skew, gaps))
	case controls.RuleRetention:
		res.Populations = []string{PopErasures}
		res.Files = b.files(res.Populations, true)
		if bad := integrity(); bad != "" {
			fail(bad)
			break
		}
		ok(fmt.Sprintf("both logs verify from index 0: no entry was deleted or altered since each log began; %s erased (the entries remain and verify).", plural(b.count(PopErasures), "payload was", "payloads were")))
	case controls.RuleAdminChanges, controls.RuleKeyLifecycle:
		id := PopAdmin
		if rule.ID == controls.RuleKeyLifecycle {
			id = PopKeys
		}
		res.Populations = []string{id}
		res.Files = b.files(res.Populations, false)
		if system.verifyErr != nil || system.rng.EndSize == 0 {
			fail("the system log could not be read through a verified checkpoint")
			break
		}
		ok(fmt.Sprintf("the complete population: %s in the period.", plural(b.count(id), "event", "events")))
	case controls.RuleAccessDenials:
		res.Populations = []string{PopRefusals}
		res.Files = b.files(res.Populations, false)
		if tenant.verifyErr != nil || tenant.rng.EndSize == 0 {
			fail("the tenant's log could not be read through a verified checkpoint")
			break
		}
		ok(fmt.Sprintf("every refused request is recorded with its status and reason: %s in the period.", plural(b.count(PopRefusals), "refusal", "refusals")))
	case controls.RuleGuardrails:
		res.Populations = []string{PopGuardrail, PopBlocked}
		res.Files = b.files(res.Populations, false)
		if n := b.count(PopGuardrail); n == 0 {
			fail("no guardrail decision was recorded in the period: no guardrail policy evaluated this tenant's calls")
		} else {
			ok(fmt.Sprintf("%s recorded (%s), %s.", plural(n, "guardrail inspection", "guardrail inspections"),
				plural(b.guardChecks, "check decision", "check decisions"), plural(b.count(PopBlocked), "block", "blocks")))
		}
	case controls.RuleProviderResilience:
		res.Populations = []string{PopProviderFailures, PopFallbacks}
		res.Files = b.files(res.Populations, false)
		if tenant.verifyErr != nil || tenant.rng.EndSize == 0 {
			fail("the tenant's log could not be read through a verified checkpoint")
			break
		}
		ok(fmt.Sprintf("every provider attempt is recorded: %s, %s to another target.", plural(b.count(PopProviderFailures), "failed attempt", "failed attempts"), plural(b.count(PopFallbacks), "fallback", "fallbacks")))
	case controls.RuleApprovals, controls.RuleOversight, controls.RuleDisclosure:
		id := map[string]string{controls.RuleApprovals: PopApprovals, controls.RuleOversight: PopOversight, controls.RuleDisclosure: PopDisclosures}[rule.ID]
		res.Populations = []string{id}
		res.Files = b.files(res.Populations, false)
		if n := b.count(id); n == 0 {
			fail(fmt.Sprintf("no %s was recorded in the period", strings.ToLower(b.pop(id).Title)))
		} else {
			ok(fmt.Sprintf("%s recorded in the period.", plural(n, "record", "records")))
		}
	case controls.RuleIncidents:
		res.Populations = []string{PopIncidents}
		res.Files = b.files(res.Populations, false)
		late := b.lateIncidents()
		if len(late) > 0 {
			fail("serious incidents not reported by their deadline: " + strings.Join(late, "; "))
		} else {
			ok(fmt.Sprintf("%s in the period; every serious incident whose deadline passed was reported in time.", plural(b.count(PopIncidents), "incident record", "incident records")))
		}
	case controls.RuleConfigInForce:
		res.Populations = []string{PopAdmin}
		res.Files = b.files(res.Populations, false)
		var ps []string
		for _, p := range b.report.Policies {
			ps = append(ps, fmt.Sprintf("%q on %d events of log %s (indexes %d-%d)", p.Policy, p.Events, p.Log, p.FirstIndex, p.LastIndex))
		}
		if len(ps) == 0 {
			ps = []string{"no event of the period names a policy version"}
		}
		ok("policy versions in force: " + strings.Join(ps, ", ") + fmt.Sprintf("; %s set the configuration.", plural(b.count(PopAdmin), "admin change", "admin changes")))
	default:
		fail("rule " + rule.ID + " is not evaluated by this version")
	}
	return res
}

// lateIncidents lists the incidents whose report deadline passed before
// the period's end without a report.
func (b *builder) lateIncidents() []string {
	type state struct{ due, reported string }
	byID := map[string]*state{}
	var order []string
	for _, in := range b.incidents {
		s := byID[in.ID]
		if s == nil {
			s = &state{}
			byID[in.ID] = s
			order = append(order, in.ID)
		}
		if in.ReportDue != "" {
			s.due = in.ReportDue
		}
		if in.ReportedAt != "" && (s.reported == "" || in.ReportedAt < s.reported) {
			s.reported = in.ReportedAt
		}
	}
	var late []string
	for _, id := range order {
		s := byID[id]
		if s.due == "" {
			continue
		}
		due, err := time.Parse(time.RFC3339, s.due)
		if err != nil {
			late = append(late, fmt.Sprintf("%s (unreadable deadline %q)", id, s.due))
			continue
		}
		if s.reported != "" {
			if rep, err := time.Parse(time.RFC3339, s.reported); err == nil && !rep.After(due) {
				continue
			}
			late = append(late, fmt.Sprintf("%s (due %s, reported %s)", id, s.due, s.reported))
			continue
		}
		if due.Before(b.report.To) {
			late = append(late, fmt.Sprintf("%s (due %s, not reported)", id, s.due))
		}
	}
	return late
}
