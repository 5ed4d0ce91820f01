package evidence

import "time"

// Report is the evidence for one framework, tenant and period: what package
// oscal renders and what the assessor package carries as
// evidence/report.json. Everything in it is derived from the ledger (and
// the embedded catalogs), so the same ledger and period give the same
// Report, byte for byte once encoded.
type Report struct {
	// PackageID is a UUIDv5 derived from the framework, tenant, period and
	// the end checkpoints: stable across re-exports of the same ledger.
	PackageID string `json:"package_id"`
	Framework string `json:"framework"`
	// Catalog is the framework's title and version.
	CatalogTitle   string `json:"catalog_title"`
	CatalogVersion string `json:"catalog_version"`
	Tenant         string `json:"tenant"`
	// From and To bound the period: entries with From <= time < To.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Generated is the time written into documents: To, so that output is
	// deterministic (never the wall clock).
	Generated time.Time `json:"generated"`
	// Generator names the software ("aigw <version>").
	Generator string `json:"generator"`
	// VerifierKey is the note verifier key the checkpoints and the manifest
	// are signed with.
	VerifierKey string `json:"verifier_key"`
	// Logs are the tenant's log and the system log, as read.
	Logs []LogRange `json:"logs"`
	// Populations, in a fixed order (by ID).
	Populations []Population `json:"populations"`
	// Rules are the results of every rule the framework's controls use,
	// by ID.
	Rules []RuleResult `json:"rules"`
	// Controls, in catalog order.
	Controls []ControlResult `json:"controls"`
	// Policies are the policy versions seen on events of the period.
	Policies []PolicyInForce `json:"policies"`
	// Documents are the documents attached to the period's attestations.
	Documents []Document `json:"documents"`
}

// Document is an attestation's document: the payload its entry commits to.
type Document struct {
	Log     string `json:"log"`
	Index   uint64 `json:"index"`
	EventID string `json:"event_id"`
	// File is the document's package path ("" when Erased), Salt the
	// base64 salt of the commitment, Proof the entry's inclusion proof.
	File  string `json:"file,omitempty"`
	Salt  string `json:"salt,omitempty"`
	Proof string `json:"proof"`
	// Erased: the payload was erased (retention, erasure request); the
	// entry still proves that a document with its commitment was attested.
	Erased bool `json:"erased,omitempty"`
}

// LogRange is what was read of one log.
type LogRange struct {
	Log    string `json:"log"`
	Origin string `json:"origin"`
	// Start is the signed checkpoint in force when the period began (the
	// largest stored checkpoint no larger than the first index of the
	// period), End the first stored checkpoint covering the period's last
	// entry. Paths are relative to the package root.
	StartSize       uint64 `json:"start_size"`
	StartCheckpoint string `json:"start_checkpoint"`
	EndSize         uint64 `json:"end_size"`
	EndCheckpoint   string `json:"end_checkpoint"`
	// EndRoot is the base64 root hash of the end checkpoint.
	EndRoot string `json:"end_root"`
	// Consistency is the path of the consistency proof from StartSize to
	// EndSize ("" when StartSize is 0 or equals EndSize).
	Consistency string `json:"consistency,omitempty"`
	// Checkpoints is how many signed checkpoints in [StartSize, EndSize]
	// were checked against the rebuilt tree.
	Checkpoints int `json:"checkpoints"`
	// InPeriod counts the period's entries that concern the tenant (in the
	// system log: its events and deployment-wide ones; other tenants'
	// events are neither counted nor shown). FirstIndex and LastIndex are
	// the first and last index of one of them (InPeriod == 0: both 0).
	InPeriod uint64 `json:"in_period"`
	// MaxGap is the longest time between two consecutive entries of the
	// period (index order), MaxGapAt the index of the entry after it: a
	// long silence in a busy log is worth a question.
	MaxGap     string `json:"max_gap,omitempty"`
	MaxGapAt   uint64 `json:"max_gap_at,omitempty"`
	FirstIndex uint64 `json:"first_index"`
	LastIndex  uint64 `json:"last_index"`
	// Closed says the log holds an entry dated at or after To plus the skew
	// tolerance, at or before EndSize: no entry of the period can still be
	// appended. An export of a period not closed is not final.
	Closed bool `json:"closed"`
	// Verified says the log verified from index 0 to EndSize; Error says
	// what failed otherwise.
	Verified bool   `json:"verified"`
	Error    string `json:"error,omitempty"`
}

// Population is every event of one class in the period.
type Population struct {
	// ID is a stable token ("admin-changes", "blocked-requests", ...).
	ID    string `json:"id"`
	Title string `json:"title"`
	// Query says exactly which entries are members, in words precise
	// enough to re-run it over the exported log.
	Query string `json:"query"`
	// Logs are the logs the query reads.
	Logs  []string `json:"logs"`
	Count uint64   `json:"count"`
	// File lists the members, one JSON object per line (Member), in
	// (log, index) order; "" for a population counted but not listed (the
	// whole activity of a period can be millions of calls).
	File   string `json:"file,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Samples are members picked deterministically (smallest keyed hash of
	// the event id), each with an inclusion proof against the end checkpoint.
	Samples []Sample `json:"samples,omitempty"`
}

// Member is one line of a population file.
type Member struct {
	Log      string         `json:"log"`
	Index    uint64         `json:"index"`
	EventID  string         `json:"event_id"`
	Time     string         `json:"time"`
	Kind     string         `json:"kind"`
	LeafHash string         `json:"leaf_hash"`
	TraceID  string         `json:"trace_id,omitempty"`
	Actor    map[string]any `json:"actor,omitempty"`
	Attrs    map[string]any `json:"attrs,omitempty"`
}

// Sample is a population member with its proof.
type Sample struct {
	Log     string `json:"log"`
	Index   uint64 `json:"index"`
	EventID string `json:"event_id"`
	// Proof is the path of a ledger.InclusionProofJSON (entry included)
	// against the log's end checkpoint.
	Proof string `json:"proof"`
}

// RuleResult is one rule evaluated: one OSCAL observation.
type RuleResult struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Status is controls.Satisfied or controls.NotSatisfied (a rule that
	// could not be evaluated is not satisfied, and Reason says why).
	Status string `json:"status"`
	Reason string `json:"reason"`
	// Populations are the IDs of the populations the rule read.
	Populations []string `json:"populations,omitempty"`
	// Files are the evidence files (package paths) the rule relies on.
	Files []string `json:"files"`
}

// ControlResult is one control: one OSCAL finding.
type ControlResult struct {
	ID       string `json:"id"`
	OSCALID  string `json:"oscal_id"`
	Title    string `json:"title"`
	Evidence string `json:"evidence"`
	// Status is controls.Satisfied, NotSatisfied, NotApplicable or
	// NeedsAttestation.
	Status string `json:"status"`
	Reason string `json:"reason"`
	// Rules are the rule IDs the status derives from.
	Rules []string `json:"rules,omitempty"`
	// Attestations are the event ids of attestations naming the control.
	Attestations []string `json:"attestations,omitempty"`
}

// PolicyInForce is one policy version seen on the period's events.
type PolicyInForce struct {
	Policy     string `json:"policy"`
	Log        string `json:"log"`
	Events     uint64 `json:"events"`
	FirstIndex uint64 `json:"first_index"`
	LastIndex  uint64 `json:"last_index"`
}
