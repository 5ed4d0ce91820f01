package oscal

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"aigw/controls"
	"aigw/evidence"
)

// fixture is a hand-built report, catalog and set of evidence files: the
// tests do not read the controls' embedded catalogs.
type fixture struct {
	name   string
	report *evidence.Report
	cat    *controls.Catalog
	// files are the evidence files' bytes, by package path.
	files map[string][]byte
}

// sums are the fixture's evidence files as Render takes them.
func (f fixture) sums() map[string]string {
	m := make(map[string]string, len(f.files))
	for p, b := range f.files {
		s := sha256.Sum256(b)
		m[p] = hex.EncodeToString(s[:])
	}
	return m
}

func (f fixture) render() (map[string][]byte, error) {
	return render(f.report, f.cat, f.sums(), describe)
}

// testRuleDescriptions stand in for the controls' rule table.
var testRuleDescriptions = map[string]string{
	controls.RuleIntegrity:     "The tenant's log and the system log verify from index 0 through the period's end checkpoint.",
	controls.RuleActivity:      "The period's calls are recorded: requests, routing, attempts and outcomes.",
	controls.RuleAdminChanges:  "Every admin change concerning the tenant, with who and when.",
	controls.RuleGuardrails:    "Guardrail decisions recorded; not satisfied when none were recorded.",
	controls.RuleTimestamps:    "Times are UTC with microsecond granularity and in index order.",
	controls.RuleKeyLifecycle:  "API key creation, revocation and expiry.",
	controls.RuleConfigInForce: "", // described by its title
}

func describe(id string) string { return testRuleDescriptions[id] }

var (
	testFrom = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	testTo   = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

// fedrampFixture has a control of every status: satisfied and not
// satisfied automated controls, an organisational control awaiting its
// attestation, an attested one, a hybrid one awaiting its attestation, and
// an inapplicable one; with parameters and two groups.
func fedrampFixture() fixture {
	files := map[string][]byte{
		"evidence/report.json":                   []byte("{\"report\": true}\n"),
		"evidence/crosswalk.json":                []byte("[]\n"),
		"README.md":                              []byte("# package\n"),
		"populations/admin-changes.jsonl":        []byte("{\"log\":\"system\",\"index\":17}\n{\"log\":\"system\",\"index\":18}\n"),
		"populations/guardrail-decisions.jsonl":  []byte(""),
		"checkpoints/acme/1234":                  []byte("aigw.local/ledger/acme\n1234\nroot=\n"),
		"checkpoints/system/40":                  []byte("aigw.local/ledger/system\n40\nroot=\n"),
		"proofs/acme/consistency-1000-1234.json": []byte("{\"proof\": []}\n"),
		"proofs/system/inclusion-17.json":        []byte("{\"entry\": 17}\n"),
	}
	cat := &controls.Catalog{
		Framework: controls.FedRAMPModerate,
		Title:     "NIST SP 800-53 rev5, FedRAMP Moderate (subset)",
		Version:   "rev5",
		Source:    "https://csrc.nist.gov/pubs/sp/800/53/r5/upd1/final",
		Controls: []controls.Control{
			{ID: "AU-2", OSCALID: "au-2", Group: "AU", Title: "Event Logging",
				Statement: "Identify the types of events that the system is capable of logging in support of the audit function.",
				Evidence:  controls.Automated, Rules: []string{controls.RuleActivity, controls.RuleAdminChanges}},
			{ID: "AU-9", OSCALID: "au-9", Group: "AU", Title: "Protection of Audit Information",
				Statement: "Protect audit information and audit logging tools from unauthorized access, modification, and deletion.",
				Evidence:  controls.Automated, Rules: []string{controls.RuleIntegrity}},
			{ID: "AU-11", OSCALID: "au-11", Group: "AU", Title: "Audit Record Retention",
				Statement: "Retain audit records for {{ insert: param, au-11_odp }} to provide support for after-the-fact investigations.",
				Params:    []controls.Param{{ID: "au-11_odp", Value: "a time period in compliance with M-21-31"}},
				Evidence:  controls.Hybrid, Rules: []string{controls.RuleTimestamps},
				Reason: "The retention period in force and the offline archive procedure."},
			{ID: "AU-6", OSCALID: "au-6", Group: "AU", Title: "Audit Record Review, Analysis, and Reporting",
				Statement: "Review and analyze system audit records {{ insert: param, au-06_odp.01 }}.",
				Params:    []controls.Param{{ID: "au-06_odp.01", Value: "at least weekly"}},
				Evidence:  controls.Attestation, Rules: []string{controls.RuleGuardrails},
				Reason: "Audit records are reviewed at least weekly and findings reported."},
			{ID: "AC-2", OSCALID: "ac-2", Group: "AC", Title: "Account Management",
				Statement: "Define and document the types of accounts allowed and specifically prohibited for use within the system.",
				Evidence:  controls.Attestation,
				Reason:    "Account types are defined and reviewed."},
			{ID: "AC-17", OSCALID: "ac-17", Group: "AC", Title: "Remote Access",
				Statement: "Establish and document usage restrictions for each type of remote access allowed.",
				Evidence:  controls.Inapplicable,
				Reason:    "Remote access to the system's hosts is outside the gateway."},
			{ID: "AC-7", OSCALID: "ac-7", Group: "AC", Title: "Unsuccessful Logon Attempts",
				Statement: "Enforce a limit of consecutive invalid logon attempts by a user.",
				Evidence:  controls.Automated, Rules: []string{controls.RuleKeyLifecycle, controls.RuleGuardrails}},
		},
	}
	r := &evidence.Report{
		PackageID:      "1b4e28ba-2fa1-5d2b-883f-0016d3cca427",
		Framework:      controls.FedRAMPModerate,
		CatalogTitle:   cat.Title,
		CatalogVersion: cat.Version,
		Tenant:         "acme",
		From:           testFrom,
		To:             testTo,
		Generated:      testTo,
		Generator:      "aigw v0.0.0-test",
		VerifierKey:    "aigw.local+1234abcd+AQ==",
		Logs: []evidence.LogRange{
			{Log: "acme", Origin: "aigw.local/ledger/acme", StartSize: 1000, StartCheckpoint: "checkpoints/acme/1000",
				EndSize: 1234, EndCheckpoint: "checkpoints/acme/1234", Consistency: "proofs/acme/consistency-1000-1234.json",
				Checkpoints: 3, FirstIndex: 1000, LastIndex: 1233, InPeriod: 234, Verified: true},
			{Log: "system", Origin: "aigw.local/ledger/system", EndSize: 40, EndCheckpoint: "checkpoints/system/40",
				Checkpoints: 1, FirstIndex: 10, LastIndex: 39, InPeriod: 30, Verified: true},
		},
		Populations: []evidence.Population{
			{ID: "admin-changes", Title: "Admin changes", Query: "system log entries of kind admin naming tenant acme",
				Logs: []string{"system"}, Count: 2, File: "populations/admin-changes.jsonl",
				Samples: []evidence.Sample{{Log: "system", Index: 17, EventID: "0192f0a0-0000-7000-8000-000000000017", Proof: "proofs/system/inclusion-17.json"}}},
			{ID: "calls", Title: "Calls", Query: "acme log entries of kind request", Logs: []string{"acme"}, Count: 120},
			{ID: "guardrail-decisions", Title: "Guardrail decisions", Query: "acme log entries of kind guard",
				Logs: []string{"acme"}, Count: 0, File: "populations/guardrail-decisions.jsonl"},
		},
		// Deliberately not sorted by id: Render sorts.
		Rules: []evidence.RuleResult{
			{ID: controls.RuleIntegrity, Title: "Ledger integrity", Status: controls.Satisfied,
				Reason: "Both logs verify from index 0; the end checkpoint extends the start checkpoint.",
				Files:  []string{"checkpoints/system/40", "checkpoints/acme/1234", "proofs/acme/consistency-1000-1234.json"}},
			{ID: controls.RuleActivity, Title: "Activity recorded", Status: controls.Satisfied,
				Reason: "120 calls, each with its outcome.", Populations: []string{"calls"}, Files: []string{"evidence/report.json"}},
			{ID: controls.RuleAdminChanges, Title: "Admin changes", Status: controls.Satisfied,
				Reason: "2 admin changes, each with who and when.", Populations: []string{"admin-changes"},
				Files: []string{"populations/admin-changes.jsonl", "proofs/system/inclusion-17.json"}},
			{ID: controls.RuleGuardrails, Title: "Guardrail decisions", Status: controls.NotSatisfied,
				Reason: "No guardrail decision was recorded in the period.", Populations: []string{"guardrail-decisions"},
				Files: []string{"populations/guardrail-decisions.jsonl"}},
			{ID: controls.RuleTimestamps, Title: "Timestamps", Status: controls.Satisfied,
				Reason: "Times are UTC, microsecond granularity, in index order.", Files: []string{}},
			{ID: controls.RuleKeyLifecycle, Title: "Key lifecycle", Status: controls.Satisfied,
				Reason: "1 key created.", Files: []string{"evidence/report.json"}},
		},
		Controls: []evidence.ControlResult{
			{ID: "AU-2", OSCALID: "au-2", Title: "Event Logging", Evidence: controls.Automated, Status: controls.Satisfied,
				Reason: "Every rule holds.", Rules: []string{controls.RuleActivity, controls.RuleAdminChanges}},
			{ID: "AU-9", OSCALID: "au-9", Title: "Protection of Audit Information", Evidence: controls.Automated, Status: controls.Satisfied,
				Reason: "Every rule holds.", Rules: []string{controls.RuleIntegrity}},
			{ID: "AU-11", OSCALID: "au-11", Title: "Audit Record Retention", Evidence: controls.Hybrid, Status: controls.NeedsAttestation,
				Reason: "The rules hold; no attestation names the control.", Rules: []string{controls.RuleTimestamps}},
			{ID: "AU-6", OSCALID: "au-6", Title: "Audit Record Review, Analysis, and Reporting", Evidence: controls.Attestation,
				Status: controls.Satisfied, Reason: "Attested.", Rules: []string{controls.RuleGuardrails},
				Attestations: []string{"0192f0a0-0000-7000-8000-0000000000a1", "0192f0a0-0000-7000-8000-0000000000a2"}},
			{ID: "AC-2", OSCALID: "ac-2", Title: "Account Management", Evidence: controls.Attestation, Status: controls.NeedsAttestation,
				Reason: "No attestation names the control."},
			{ID: "AC-17", OSCALID: "ac-17", Title: "Remote Access", Evidence: controls.Inapplicable, Status: controls.NotApplicable,
				Reason: "Remote access to the system's hosts is outside the gateway."},
			{ID: "AC-7", OSCALID: "ac-7", Title: "Unsuccessful Logon Attempts", Evidence: controls.Automated, Status: controls.NotSatisfied,
				Reason: "Rule guardrail-decisions is not satisfied.", Rules: []string{controls.RuleKeyLifecycle, controls.RuleGuardrails}},
		},
	}
	return fixture{name: "fedramp", report: r, cat: cat, files: files}
}

// aiucFixture has every assessed control satisfied (so no POA&M), a
// retired control, controls outside any group and a framework other than
// FedRAMP.
func aiucFixture() fixture {
	files := map[string][]byte{
		"evidence/report.json":  []byte("{}\n"),
		"checkpoints/acme/9":    []byte("aigw.local/ledger/acme\n9\nroot=\n"),
		"checkpoints/system/12": []byte("aigw.local/ledger/system\n12\nroot=\n"),
	}
	cat := &controls.Catalog{
		Framework: controls.AIUC1,
		Title:     "AIUC-1",
		Version:   "2026-07-15",
		Source:    "https://www.aiuc-1.com/",
		Controls: []controls.Control{
			{ID: "E015", OSCALID: "e015", Group: "E", Title: "Log AI system activity",
				Statement: "Maintain logs of AI system activity.", Evidence: controls.Automated,
				Rules: []string{controls.RuleIntegrity, controls.RuleConfigInForce}},
			{ID: "E007", OSCALID: "e007", Group: "E", Title: "Retired control",
				Statement: "Withdrawn.", Evidence: controls.Inapplicable, Retired: true,
				Reason: "Withdrawn from the standard in the 2026-01-15 release."},
			{ID: "F001", OSCALID: "f001", Title: "Prevent AI cyber misuse",
				Statement: "Implement guardrails against cyber misuse.", Evidence: controls.Attestation,
				Reason: "The organisation's misuse policy is in force."},
		},
	}
	r := &evidence.Report{
		PackageID: "6ba7b811-9dad-51d1-80b4-00c04fd430c8", Framework: controls.AIUC1,
		CatalogTitle: cat.Title, CatalogVersion: cat.Version, Tenant: "acme",
		From: testFrom, To: testTo, Generated: testTo, Generator: "aigw v0.0.0-test",
		Logs: []evidence.LogRange{
			{Log: "acme", EndSize: 9, EndCheckpoint: "checkpoints/acme/9", InPeriod: 9, LastIndex: 8, Verified: true},
			{Log: "system", EndSize: 12, EndCheckpoint: "checkpoints/system/12", InPeriod: 0, Verified: true},
		},
		Rules: []evidence.RuleResult{
			{ID: controls.RuleConfigInForce, Title: "Configuration in force", Status: controls.Satisfied,
				Reason: "1 policy version in force.", Files: []string{"evidence/report.json"}},
			{ID: controls.RuleIntegrity, Title: "Ledger integrity", Status: controls.Satisfied,
				Reason: "Both logs verify.", Files: []string{"checkpoints/acme/9", "checkpoints/system/12"}},
		},
		Controls: []evidence.ControlResult{
			{ID: "E015", OSCALID: "e015", Title: "Log AI system activity", Evidence: controls.Automated, Status: controls.Satisfied,
				Reason: "Every rule holds.", Rules: []string{controls.RuleIntegrity, controls.RuleConfigInForce}},
			{ID: "E007", OSCALID: "e007", Title: "Retired control", Evidence: controls.Inapplicable, Status: controls.NotApplicable,
				Reason: "Withdrawn from the standard in the 2026-01-15 release."},
			{ID: "F001", OSCALID: "f001", Title: "Prevent AI cyber misuse", Evidence: controls.Attestation, Status: controls.Satisfied,
				Reason: "Attested.", Attestations: []string{"0192f0a0-0000-7000-8000-0000000000f1"}},
		},
	}
	return fixture{name: "aiuc", report: r, cat: cat, files: files}
}

func fixtures() []fixture { return []fixture{fedrampFixture(), aiucFixture()} }
