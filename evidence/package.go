package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"aigw/controls"

	"golang.org/x/mod/sumdb/note"
)

// Manifest is manifest.json (PACKAGE.md).
type Manifest struct {
	Format      string             `json:"format"`
	PackageID   string             `json:"package_id"`
	Framework   string             `json:"framework"`
	Tenant      string             `json:"tenant"`
	From        time.Time          `json:"from"`
	To          time.Time          `json:"to"`
	Generator   string             `json:"generator"`
	VerifierKey string             `json:"verifier_key"`
	Logs        []ManifestLog      `json:"logs"`
	Populations []ManifestPop      `json:"populations"`
	Samples     []ManifestSample   `json:"samples"`
	Documents   []ManifestDocument `json:"documents"`
	Files       []ManifestFile     `json:"files"`
}

// ManifestDocument is an attestation document (PACKAGE.md).
type ManifestDocument struct {
	Log      string `json:"log"`
	Index    uint64 `json:"index"`
	EventID  string `json:"event_id"`
	LeafHash string `json:"leaf_hash"`
	Proof    string `json:"proof"`
	File     string `json:"file"`
	Salt     string `json:"salt"`
}

type ManifestLog struct {
	Log             string `json:"log"`
	Origin          string `json:"origin"`
	StartSize       uint64 `json:"start_size"`
	StartCheckpoint string `json:"start_checkpoint"`
	EndSize         uint64 `json:"end_size"`
	EndCheckpoint   string `json:"end_checkpoint"`
	Consistency     string `json:"consistency"`
}

type ManifestPop struct {
	ID    string `json:"id"`
	Count uint64 `json:"count"`
	File  string `json:"file"`
}

type ManifestSample struct {
	Population string `json:"population"`
	Log        string `json:"log"`
	Index      uint64 `json:"index"`
	EventID    string `json:"event_id"`
	LeafHash   string `json:"leaf_hash"`
	Proof      string `json:"proof"`
}

type ManifestFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// crosswalkRow is one (control, rule) pair of the crosswalk.
type crosswalkRow struct {
	Control  string   `json:"control"`
	OSCALID  string   `json:"oscal_id"`
	Status   string   `json:"status"`
	Rule     string   `json:"rule"`
	Kinds    []string `json:"kinds"`
	Evidence []string `json:"evidence"`
}

// finish writes the report, crosswalk, README, OSCAL documents, manifest
// and signature.
func (b *builder) finish() error {
	r := b.report
	if err := b.w.write("verifier.vkey", []byte(b.cfg.VerifierKey+"\n")); err != nil {
		return err
	}
	if err := b.w.writeJSON("evidence/report.json", r); err != nil {
		return err
	}
	if err := b.crosswalk(); err != nil {
		return err
	}
	if err := b.w.write("README.md", b.readme()); err != nil {
		return err
	}
	if b.cfg.Render != nil {
		hashes := map[string]string{}
		for p, f := range b.w.files {
			hashes[p] = f.sha
		}
		docs, err := b.cfg.Render(r, b.cat, hashes)
		if err != nil {
			return fmt.Errorf("evidence: rendering OSCAL: %w", err)
		}
		paths := make([]string, 0, len(docs))
		for p := range docs {
			paths = append(paths, p)
		}
		slices.Sort(paths)
		for _, p := range paths {
			if err := b.w.write(p, docs[p]); err != nil {
				return err
			}
		}
	}
	m := Manifest{Format: ManifestFormat, PackageID: r.PackageID, Framework: r.Framework, Tenant: r.Tenant,
		From: r.From, To: r.To, Generator: r.Generator, VerifierKey: r.VerifierKey}
	for _, l := range r.Logs {
		m.Logs = append(m.Logs, ManifestLog{Log: l.Log, Origin: l.Origin, StartSize: l.StartSize, StartCheckpoint: l.StartCheckpoint,
			EndSize: l.EndSize, EndCheckpoint: l.EndCheckpoint, Consistency: l.Consistency})
	}
	m.Samples = []ManifestSample{}
	for _, p := range r.Populations {
		m.Populations = append(m.Populations, ManifestPop{ID: p.ID, Count: p.Count, File: p.File})
		for _, s := range p.Samples {
			m.Samples = append(m.Samples, ManifestSample{Population: p.ID, Log: s.Log, Index: s.Index, EventID: s.EventID,
				LeafHash: b.sampleLeaf[sampleKey{s.Log, s.Index}].String(), Proof: s.Proof})
		}
	}
	m.Documents = []ManifestDocument{}
	for _, d := range r.Documents {
		if d.File != "" {
			m.Documents = append(m.Documents, ManifestDocument{Log: d.Log, Index: d.Index, EventID: d.EventID,
				LeafHash: b.sampleLeaf[sampleKey{d.Log, d.Index}].String(), Proof: d.Proof, File: d.File, Salt: d.Salt})
		}
	}
	for p, f := range b.w.files {
		m.Files = append(m.Files, ManifestFile{Path: p, SHA256: f.sha, Size: f.size})
	}
	slices.SortFunc(m.Files, func(x, y ManifestFile) int { return strings.Compare(x.Path, y.Path) })
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	mb = append(mb, '\n')
	sig, err := SignManifest(mb, r.PackageID, b.cfg.Signer)
	if err != nil {
		return err
	}
	if err := b.w.write("manifest.json", mb); err != nil {
		return err
	}
	return b.w.write("manifest.sig", sig)
}

// SignManifest signs a manifest's bytes: the signed note of PACKAGE.md.
func SignManifest(manifest []byte, packageID string, s note.Signer) ([]byte, error) {
	sum := sha256.Sum256(manifest)
	text := ManifestFormat + "\n" + packageID + "\n" + base64.StdEncoding.EncodeToString(sum[:]) + "\n"
	return note.Sign(&note.Note{Text: text}, s)
}

func (b *builder) crosswalk() error {
	rules := map[string]RuleResult{}
	for _, r := range b.report.Rules {
		rules[r.ID] = r
	}
	var rows []crosswalkRow
	for _, c := range b.report.Controls {
		ids := c.Rules
		if len(ids) == 0 {
			ids = []string{""}
		}
		for _, id := range ids {
			row := crosswalkRow{Control: c.ID, OSCALID: c.OSCALID, Status: c.Status, Rule: id, Kinds: []string{}, Evidence: []string{}}
			if rule, ok := controls.RuleByID(id); ok {
				row.Kinds = rule.Kinds
			}
			if rr, ok := rules[id]; ok {
				row.Evidence = rr.Files
			}
			rows = append(rows, row)
		}
	}
	if err := b.w.writeJSON("evidence/crosswalk.json", rows); err != nil {
		return err
	}
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	cw.Write([]string{"control", "oscal_id", "status", "rule", "event_kinds", "evidence_files"})
	for _, r := range rows {
		cw.Write([]string{r.Control, r.OSCALID, r.Status, r.Rule, strings.Join(r.Kinds, " "), strings.Join(r.Evidence, " ")})
	}
	cw.Flush()
	return b.w.write("evidence/crosswalk.csv", buf.Bytes())
}

func (b *builder) readme() []byte {
	r := b.report
	counts := map[string]int{}
	for _, c := range r.Controls {
		counts[c.Status]++
	}
	var s strings.Builder
	fmt.Fprintf(&s, "# Assessor package: %s, tenant %s\n\n", r.CatalogTitle, r.Tenant)
	fmt.Fprintf(&s, "Period: %s to %s (entries with from <= time < to, UTC). Package id %s, generated by %s.\n\n",
		r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), r.PackageID, r.Generator)
	fmt.Fprintf(&s, "Controls: %d satisfied, %d not satisfied, %d need a human attestation, %d not applicable.\n\n",
		counts[controls.Satisfied], counts[controls.NotSatisfied], counts[controls.NeedsAttestation], counts[controls.NotApplicable])
	s.WriteString(`## How to check this package

1. Compare verifier.vkey with the verifier key the organisation published (its checkpoint signing key).
2. Run, offline: ` + "`aigw verify <this directory or archive> -vkey \"<published key>\"`" + `. It checks the signature on
   manifest.json, the SHA-256 of every file, that no file was added or removed, every signed checkpoint, the
   consistency of the period's start and end checkpoints, every sample's inclusion proof, that every sample is a
   member of its population, and that every hash in the OSCAL back-matter matches its file.
3. Or check by hand with any implementation of the public formats (C2SP signed notes, tlog-checkpoint,
   RFC 6962 proofs): the ledger's formats are documented in aigw's ledger/FORMATS.md, this package's in
   evidence/PACKAGE.md.

## What is where

- oscal/assessment-results.json: one observation per evidence rule, one finding per control; evidence/report.json
  holds the same results with the exact counts and reasons.
- oscal/plan-of-action-and-milestones.json: an item per control that is not satisfied.
- oscal/component-definition.json and oscal/system-security-plan.json: how aigw implements each control.
- catalog.json: the framework's controls as an OSCAL catalog (the control ids the documents use).
- populations/: the complete populations (every admin change, refusal, approval, key event, provider failure...)
  of the period, one event per line with its log, index and leaf hash: select samples from them. Each population's
  query, and its exact count, is in evidence/report.json; very large populations (every call) are counted and
  sampled, not listed.
- proofs/: the inclusion proof of every sample (the entry itself included) against the signed checkpoint at the
  end of the period, and the consistency proof from the checkpoint at its start.
- checkpoints/: those signed checkpoints.
- evidence/crosswalk.csv: control -> rule -> ledger event kinds -> evidence files.

A control whose evidence could not be evaluated is reported as not satisfied, with the reason. Controls that are
organisational need a person's attestation (recorded in the ledger through aigw's admin API); until one exists
they are listed as needing attestation.
`)
	return []byte(s.String())
}
