package evidence_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aigw/controls"
	"aigw/evidence"
	"aigw/ledger"
	"aigw/oscal"
	"aigw/verify"

	"golang.org/x/mod/sumdb/note"
)

var update = flag.Bool("update", false, "rewrite the golden packages under testdata/golden")

func config(t testing.TB, f *fixture, framework string) evidence.Config {
	return evidence.Config{
		Store: f.store, Framework: framework, Tenant: "acme", From: periodFrom, To: periodTo,
		Signer: f.signer, VerifierKey: f.signer.VerifierKey(), Verifiers: note.VerifierList(f.signer.Verifier()),
		Generator: "aigw test", Samples: 3, Render: oscal.Render,
	}
}

func build(t testing.TB, f *fixture, framework string) (*evidence.Report, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "pkg")
	r, err := evidence.Build(context.Background(), config(t, f, framework), out)
	if err != nil {
		t.Fatal(err)
	}
	return r, out
}

func TestPopulations(t *testing.T) {
	f := newFixture(t)
	f.build(t)
	r, out := build(t, f, controls.NISTAIRMF)
	for _, p := range r.Populations {
		want, ok := f.want[p.ID]
		if !ok {
			t.Errorf("population %s not expected by the fixture", p.ID)
			continue
		}
		if p.Count != want {
			t.Errorf("population %s: count %d, want %d", p.ID, p.Count, want)
		}
		if p.File != "" {
			lines := countLines(t, filepath.Join(out, p.File))
			if lines != p.Count {
				t.Errorf("population %s: file has %d lines, count %d", p.ID, lines, p.Count)
			}
		}
		if n := min(p.Count, 3); uint64(len(p.Samples)) != n {
			t.Errorf("population %s: %d samples, want %d", p.ID, len(p.Samples), n)
		}
	}
	// globex never appears in acme's package.
	err := filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte("globex")) {
			t.Errorf("%s mentions tenant globex", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]evidence.RuleResult{}
	for _, rr := range r.Rules {
		rules[rr.ID] = rr
	}
	for id, want := range map[string]string{
		controls.RuleIntegrity: controls.Satisfied, controls.RuleActivity: controls.Satisfied,
		controls.RuleRecordContent: controls.Satisfied, controls.RuleTimestamps: controls.Satisfied,
		controls.RuleGuardrails: controls.NotSatisfied, controls.RuleOversight: controls.Satisfied,
	} {
		if rr, ok := rules[id]; ok && rr.Status != want {
			t.Errorf("rule %s: %s (%s), want %s", id, rr.Status, rr.Reason, want)
		}
	}
	for _, c := range r.Controls {
		if c.ID == "GOVERN 1.1" && len(c.Attestations) != 1 {
			t.Errorf("GOVERN 1.1: attestations %v, want the one recorded", c.Attestations)
		}
	}
	if len(r.Documents) != 1 || r.Documents[0].File == "" {
		t.Errorf("documents: %+v, want the attested register", r.Documents)
	} else if b, _ := os.ReadFile(filepath.Join(out, r.Documents[0].File)); string(b) != "AI legal register, reviewed 2026-11-01.\n" {
		t.Errorf("document: %q", b)
	}
	res, err := verify.Package(context.Background(), os.DirFS(out), verify.Options{Verifiers: note.VerifierList(f.signer.Verifier())})
	if err != nil {
		t.Fatalf("verify.Package: %v", err)
	}
	if res.Documents != 1 {
		t.Errorf("verify checked %d documents, want 1", res.Documents)
	}
	if res.PackageID != r.PackageID {
		t.Errorf("verified package id %s, want %s", res.PackageID, r.PackageID)
	}
}

func countLines(t testing.TB, path string) uint64 {
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	var n uint64
	for sc.Scan() {
		var m evidence.Member
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		n++
	}
	return n
}

// TestDeterministic: the same ledger and period give the same package,
// byte for byte, for every framework; the golden package of each is
// committed under testdata/golden (-update rewrites them).
func TestDeterministic(t *testing.T) {
	f := newFixture(t)
	f.build(t)
	for _, fw := range controls.Frameworks() {
		t.Run(fw, func(t *testing.T) {
			_, a := build(t, f, fw)
			_, b := build(t, f, fw)
			fa, fb := readTree(t, a), readTree(t, b)
			if len(fa) != len(fb) {
				t.Fatalf("%d files vs %d", len(fa), len(fb))
			}
			for p, d := range fa {
				if !bytes.Equal(d, fb[p]) {
					t.Errorf("%s differs between two exports", p)
				}
			}
			golden := filepath.Join("testdata", "golden", fw)
			if *update {
				os.RemoveAll(golden)
				for p, d := range fa {
					path := filepath.Join(golden, filepath.FromSlash(p))
					os.MkdirAll(filepath.Dir(path), 0o755)
					if err := os.WriteFile(path, d, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				return
			}
			fg := readTree(t, golden)
			for p, d := range fa {
				g, ok := fg[p]
				switch {
				case !ok:
					t.Errorf("%s is not in the golden package (run go test ./evidence -run TestDeterministic -update)", p)
				case !bytes.Equal(d, g):
					t.Errorf("%s differs from the golden file", p)
				}
			}
			for p := range fg {
				if _, ok := fa[p]; !ok {
					t.Errorf("golden %s is no longer written", p)
				}
			}
		})
	}
}

func readTree(t testing.TB, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		b, err := os.ReadFile(path)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNotEmptyOut: an export never writes into a directory that holds files.
func TestNotEmptyOut(t *testing.T) {
	f := newFixture(t)
	f.build(t)
	out := t.TempDir()
	os.WriteFile(filepath.Join(out, "x"), nil, 0o644)
	_, err := evidence.Build(context.Background(), config(t, f, controls.NISTAIRMF), out)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("export into a non-empty directory: %v", err)
	}
}

// TestDocumentCommitment: a document replaced in the package, with its
// hash updated in a manifest signed again with the right key, still fails:
// its entry does not commit to it.
func TestDocumentCommitment(t *testing.T) {
	f := newFixture(t)
	f.build(t)
	r, out := build(t, f, controls.NISTAIRMF)
	doc := r.Documents[0].File
	fake := []byte("a different register\n")
	os.WriteFile(filepath.Join(out, doc), fake, 0o644)
	mb, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
	var m evidence.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(fake)
	for i := range m.Files {
		if m.Files[i].Path == doc {
			m.Files[i].SHA256, m.Files[i].Size = hex.EncodeToString(sum[:]), int64(len(fake))
		}
	}
	mb, _ = json.MarshalIndent(m, "", "  ")
	mb = append(mb, '\n')
	sig, err := evidence.SignManifest(mb, m.PackageID, f.signer)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(out, "manifest.json"), mb, 0o644)
	os.WriteFile(filepath.Join(out, "manifest.sig"), sig, 0o644)
	_, err = verify.Package(context.Background(), os.DirFS(out), verify.Options{Verifiers: note.VerifierList(f.signer.Verifier())})
	var pe *verify.PackageError
	if !errors.As(err, &pe) || pe.Check != verify.CheckDocument || pe.File != doc {
		t.Fatalf("verify of a replaced document: %v", err)
	}
}

// TestTimestampRegression: an entry dated more than the skew before the
// entry ahead of it makes the timestamps rule not satisfied, naming it.
func TestTimestampRegression(t *testing.T) {
	f := newFixture(t)
	f.build(t)
	late := periodFrom.Add(23 * time.Hour)
	f.call(t, "acme", 7000, late, 0, 200, "")
	f.flush(t)
	f.call(t, "acme", 7001, late.Add(-2*time.Hour), 0, 200, "") // 2 h earlier, in the next batch
	f.call(t, "acme", 7002, periodTo.Add(10*time.Minute), 0, 200, "")
	f.flush(t)
	expectRule(t, f, controls.RuleTimestamps, controls.NotSatisfied, "log acme: 1 entry is earlier")
}

// expectRule builds the fixture's FedRAMP package and checks that rule id
// has status and a reason holding reason.
func expectRule(t *testing.T, f *fixture, id, status, reason string) {
	t.Helper()
	r, _ := build(t, f, controls.FedRAMPModerate)
	for _, rr := range r.Rules {
		if rr.ID == id {
			if rr.Status != status || !strings.Contains(rr.Reason, reason) {
				t.Fatalf("rule %s: %s (%s); want %s (%s)", id, rr.Status, rr.Reason, status, reason)
			}
			return
		}
	}
	t.Fatalf("rule %s was not evaluated", id)
}

// TestGuardrailDecisions: the guardrails rule counts the inspections (one
// event each) and the checks' decisions they hold; an event of one
// decision, as written before inspections were recorded whole, counts one.
func TestGuardrailDecisions(t *testing.T) {
	f := newFixture(t)
	key := ledger.Actor{KeyID: "key_acme", AgentID: "agent-1"}
	pass := func(check string) map[string]any {
		return map[string]any{"check": check, "stage": "input", "verdict": "pass", "action": "block"}
	}
	f.mid = func(t testing.TB, at time.Time) {
		f.event(t, "acme", ledger.KindGuardrail, at, trace(8000), key, map[string]any{"stage": "input", "verdict": "pass", "checks": 3,
			"policy": "baseline", "policy_version": "sha256:1", "decisions": []any{pass("pii"), pass("secrets"), pass("injection")}})
		f.event(t, "acme", ledger.KindGuardrail, at, trace(8000), key, map[string]any{"stage": "output", "verdict": "pass", "checks": 2,
			"policy": "baseline", "policy_version": "sha256:1", "decisions": []any{pass("pii"), pass("secrets")}})
		f.event(t, "acme", ledger.KindGuardrail, at, trace(8001), key, pass("pii")) // the former shape
	}
	f.build(t)
	expectRule(t, f, controls.RuleGuardrails, controls.Satisfied, "3 guardrail inspections recorded (6 check decisions), 0 blocks")
}
