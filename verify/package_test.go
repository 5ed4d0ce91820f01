package verify_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"aigw/ledger"
	"aigw/ledger/signer"
	"aigw/verify"

	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/note"
)

// testManifest is manifest.json as PACKAGE.md writes it down, kept apart
// from verify's own copy so that a drift between the two shows.
type testManifest struct {
	Format      string           `json:"format"`
	PackageID   string           `json:"package_id"`
	Framework   string           `json:"framework"`
	Tenant      string           `json:"tenant"`
	From        string           `json:"from"`
	To          string           `json:"to"`
	Generator   string           `json:"generator"`
	VerifierKey string           `json:"verifier_key"`
	Logs        []testLog        `json:"logs"`
	Populations []testPopulation `json:"populations"`
	Samples     []testSample     `json:"samples"`
	Files       []testFile       `json:"files"`
}

type testLog struct {
	Log             string `json:"log"`
	Origin          string `json:"origin"`
	StartSize       uint64 `json:"start_size"`
	StartCheckpoint string `json:"start_checkpoint"`
	EndSize         uint64 `json:"end_size"`
	EndCheckpoint   string `json:"end_checkpoint"`
	Consistency     string `json:"consistency"`
}

type testPopulation struct {
	ID    string `json:"id"`
	Count uint64 `json:"count"`
	File  string `json:"file"`
}

type testSample struct {
	Population string `json:"population"`
	Log        string `json:"log"`
	Index      uint64 `json:"index"`
	EventID    string `json:"event_id"`
	LeafHash   string `json:"leaf_hash"`
	Proof      string `json:"proof"`
}

type testFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// testPackage is a small assessor package built from two fixture logs:
// acme (checkpoints at 3, 7 and 10; the period spans 3 to 10) and system
// (checkpoint at 5, from the start). Tamper tests edit files and m, then
// call seal to re-sign it as a dishonest exporter holding the key would.
type testPackage struct {
	t     testing.TB
	key   key
	acme  *fixture
	sys   *fixture
	files map[string][]byte
	m     testManifest
}

const testKeyName = "verify.aigw.invalid/ledger"

func newTestPackage(t testing.TB) *testPackage {
	t.Helper()
	s, _, err := signer.Generate(testKeyName)
	if err != nil {
		t.Fatal(err)
	}
	k := key{signer: s, verifier: s.Verifier()}
	p := &testPackage{t: t, key: k, acme: newFixture(t, "acme", k), sys: newFixture(t, ledger.SystemLog, k), files: map[string][]byte{}}
	addEvents(p.acme, 3)
	addEvents(p.acme, 4)
	addEvents(p.acme, 3)
	addEvents(p.sys, 5)

	p.m = testManifest{
		Format:      verify.PackageFormat,
		PackageID:   uuid.NewSHA1(uuid.NameSpaceURL, []byte("aigw.test/package/acme/2026-11")).String(),
		Framework:   "nist-ai-rmf",
		Tenant:      "acme",
		From:        "2026-11-01T00:00:00Z",
		To:          "2026-12-01T00:00:00Z",
		Generator:   "aigw test",
		VerifierKey: s.VerifierKey(),
		Logs: []testLog{
			{Log: "acme", Origin: p.acme.origin, StartSize: 3, StartCheckpoint: "checkpoints/acme/3",
				EndSize: 10, EndCheckpoint: "checkpoints/acme/10", Consistency: "proofs/acme/consistency-3-10.json"},
			{Log: "system", Origin: p.sys.origin, EndSize: 5, EndCheckpoint: "checkpoints/system/5"},
		},
		Populations: []testPopulation{
			{ID: "admin-changes", Count: 5, File: "populations/admin-changes.jsonl"},
			{ID: "calls", Count: 7},
			{ID: "requests", Count: 7, File: "populations/requests.jsonl"},
		},
	}
	p.files["README.md"] = []byte("# Assessor package\n\nRun `aigw verify` on it.\n")
	p.files["verifier.vkey"] = []byte(s.VerifierKey() + "\n")
	p.files["evidence/report.json"] = []byte(`{"package_id":"` + p.m.PackageID + `","framework":"nist-ai-rmf"}` + "\n")
	p.files["evidence/crosswalk.csv"] = []byte("control,rule\nGOVERN-1.1,admin-changes-logged\n")
	p.files["checkpoints/acme/3"] = p.acme.checkpoints[3]
	p.files["checkpoints/acme/10"] = p.acme.checkpoints[10]
	p.files["checkpoints/system/5"] = p.sys.checkpoints[5]
	p.files["proofs/acme/consistency-3-10.json"] = p.consistencyProof(p.acme, 3, 10)
	p.files["populations/requests.jsonl"] = members(p.acme, 3, 10)
	p.files["populations/admin-changes.jsonl"] = members(p.sys, 0, 5)
	p.sample("requests", p.acme, 4)
	p.sample("requests", p.acme, 8)
	p.sample("admin-changes", p.sys, 2)
	p.sample("calls", p.acme, 5)
	p.files["catalog.json"] = mustJSON(t, map[string]any{"catalog": map[string]any{
		"uuid":     "9b2f5b2a-1a62-4f4b-9b48-6d0e0f2a8c11",
		"metadata": map[string]any{"title": "test catalog"},
		"back-matter": map[string]any{"resources": []any{map[string]any{
			"uuid": "c4b3e0f1-8b6a-4c3e-9d3e-0c5b1f2a3d4e",
			// An absolute URL is not a file of the package: skipped, whatever its hash.
			"rlinks": []any{map[string]any{"href": "https://csrc.nist.gov/pubs/ai/100/1/final",
				"hashes": []any{map[string]any{"algorithm": "SHA-256", "value": strings.Repeat("0", 64)}}}},
		}}},
	}})
	p.writeOSCAL(nil)
	p.seal()
	return p
}

// addEvents appends n events to f as one batch (one checkpoint).
func addEvents(f *fixture, n int) {
	f.t.Helper()
	es := make([][]byte, n)
	for i := range es {
		e, err := testEvent(f.log, f.size()+uint64(i)).Entry()
		if err != nil {
			f.t.Fatal(err)
		}
		es[i] = e
	}
	f.add(es...)
}

func eventID(f *fixture, i uint64) string {
	f.t.Helper()
	ev, err := ledger.ParseEntry(f.entries[i])
	if err != nil {
		f.t.Fatal(err)
	}
	return ev.ID
}

// members returns the population file of entries [lo, hi) of f.
func members(f *fixture, lo, hi uint64) []byte {
	var b []byte
	for i := lo; i < hi; i++ {
		b = append(b, memberLine(f, i)...)
	}
	return b
}

func memberLine(f *fixture, i uint64) []byte {
	ev, err := ledger.ParseEntry(f.entries[i])
	if err != nil {
		f.t.Fatal(err)
	}
	line, err := json.Marshal(map[string]any{"log": f.log, "index": i, "event_id": ev.ID, "time": ev.Time.Format(time.RFC3339Nano),
		"kind": ev.Kind, "leaf_hash": ledger.LeafHash(f.entries[i]).String(), "trace_id": ev.TraceID})
	if err != nil {
		f.t.Fatal(err)
	}
	return append(line, '\n')
}

// inclusionProof returns the proof of entry i of f in the tree of size,
// entry included, carrying the checkpoint of that size if withCheckpoint.
func inclusionProof(f *fixture, i, size uint64, withCheckpoint bool) []byte {
	f.t.Helper()
	hashes, err := ledger.InclusionProof(context.Background(), f, f.log, i, size)
	if err != nil {
		f.t.Fatal(err)
	}
	p := ledger.InclusionProofJSON{Log: f.log, Index: i, TreeSize: size, LeafHash: ledger.LeafHash(f.entries[i]).String(),
		Hashes: ledger.EncodeHashes(hashes), Entry: base64.StdEncoding.EncodeToString(f.entries[i])}
	if withCheckpoint {
		p.Checkpoint = string(f.checkpoints[size])
	}
	return mustJSON(f.t, p)
}

func (p *testPackage) consistencyProof(f *fixture, size1, size2 uint64) []byte {
	hashes, err := ledger.ConsistencyProof(context.Background(), f, f.log, size1, size2)
	if err != nil {
		p.t.Fatal(err)
	}
	return mustJSON(p.t, ledger.ConsistencyProofJSON{Log: f.log, Size1: size1, Size2: size2, Hashes: ledger.EncodeHashes(hashes), Checkpoint: string(f.checkpoints[size2])})
}

// sample adds entry i of f as a sample of population pop, with its proof
// against the log's end checkpoint.
func (p *testPackage) sample(pop string, f *fixture, i uint64) {
	proof := fmt.Sprintf("proofs/%s/inclusion-%d.json", f.log, i)
	p.files[proof] = inclusionProof(f, i, f.size(), true)
	p.m.Samples = append(p.m.Samples, testSample{Population: pop, Log: f.log, Index: i, EventID: eventID(f, i),
		LeafHash: ledger.LeafHash(f.entries[i]).String(), Proof: proof})
}

// writeOSCAL writes oscal/assessment-results.json, linking to the
// requests population and the report with their hashes; edit, if not nil,
// changes the links first.
func (p *testPackage) writeOSCAL(edit func(links []map[string]any) []map[string]any) {
	sum := func(name string) string { h := sha256.Sum256(p.files[name]); return hex.EncodeToString(h[:]) }
	sum512 := sha512.Sum512(p.files["evidence/report.json"])
	links := []map[string]any{
		{"href": "../populations/requests.jsonl", "media-type": "application/jsonl",
			"hashes": []any{map[string]any{"algorithm": "SHA-256", "value": sum("populations/requests.jsonl")}}},
		{"href": "../evidence/report.json", "media-type": "application/json",
			"hashes": []any{map[string]any{"algorithm": "SHA-256", "value": strings.ToUpper(sum("evidence/report.json"))},
				map[string]any{"algorithm": "SHA-512", "value": hex.EncodeToString(sum512[:])}}},
		{"href": "#observation-1", "hashes": []any{map[string]any{"algorithm": "SHA-256", "value": "ff"}}},
		{"href": "../not-in-the-package.txt"}, // no hashes: not checked
	}
	if edit != nil {
		links = edit(links)
	}
	var rlinks []any
	for _, l := range links {
		rlinks = append(rlinks, l)
	}
	p.files["oscal/assessment-results.json"] = mustJSON(p.t, map[string]any{"assessment-results": map[string]any{
		"uuid":     "0f3c7a52-55a9-4d0b-8d0a-9f1c1f2e3a4b",
		"metadata": map[string]any{"title": "test results", "oscal-version": "1.1.3"},
		"results":  []any{map[string]any{"uuid": "5d8b4f7e-2a1c-4e6b-9f3d-7c2e1a0b9d8f"}},
		"back-matter": map[string]any{"resources": []any{
			map[string]any{"uuid": "a1d2c3b4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "rlinks": rlinks},
			map[string]any{"uuid": "b2d3c4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e", "title": "no links"},
		}},
	}})
}

// seal lists every file in the manifest, writes it and signs it with the
// package's key.
func (p *testPackage) seal() { p.sealWith(p.key, nil) }

// sealWith seals the package with key k, letting edit change the manifest
// after the file list is computed.
func (p *testPackage) sealWith(k key, edit func(m *testManifest)) {
	p.t.Helper()
	p.m.Files = nil
	for _, name := range slices.Sorted(maps.Keys(p.files)) {
		if name == "manifest.json" || name == "manifest.sig" {
			continue
		}
		h := sha256.Sum256(p.files[name])
		p.m.Files = append(p.m.Files, testFile{Path: name, SHA256: hex.EncodeToString(h[:]), Size: int64(len(p.files[name]))})
	}
	if edit != nil {
		edit(&p.m)
	}
	data, err := json.MarshalIndent(p.m, "", "  ")
	if err != nil {
		p.t.Fatal(err)
	}
	p.files["manifest.json"] = append(data, '\n')
	p.files["manifest.sig"] = signManifest(p.t, p.m.PackageID, p.files["manifest.json"], k.signer)
}

func signManifest(t testing.TB, id string, manifest []byte, s note.Signer) []byte {
	sum := sha256.Sum256(manifest)
	sig, err := note.Sign(&note.Note{Text: verify.PackageFormat + "\n" + id + "\n" + base64.StdEncoding.EncodeToString(sum[:]) + "\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func (p *testPackage) mapFS() fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, data := range p.files {
		fsys[name] = &fstest.MapFile{Data: data, Mode: 0o644}
	}
	return fsys
}

func (p *testPackage) writeDir(dir string) string {
	p.t.Helper()
	for name, data := range p.files {
		writeFile(p.t, filepath.Join(dir, filepath.FromSlash(name)), data)
	}
	return dir
}

func (p *testPackage) opts() verify.Options {
	return verify.Options{Verifiers: p.key.verifiers(), Workers: 3}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func checkValid(t *testing.T, p *testPackage, fsys fs.FS) {
	t.Helper()
	res, err := verify.Package(context.Background(), fsys, p.opts())
	if err != nil {
		t.Fatalf("Package: %v", err)
	}
	if res.PackageID != p.m.PackageID || res.Framework != "nist-ai-rmf" || res.Tenant != "acme" ||
		!res.From.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) || !res.To.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("result names %s %s %s %v..%v; want the manifest's", res.PackageID, res.Framework, res.Tenant, res.From, res.To)
	}
	if res.Files != len(p.m.Files) || res.Logs == nil || len(res.Logs) != 2 || res.Samples != 4 || res.Populations != 3 {
		t.Errorf("result counts files %d, logs %d, samples %d, populations %d; want %d, 2, 4, 3", res.Files, len(res.Logs), res.Samples, res.Populations, len(p.m.Files))
	}
	if res.Proofs != 5 || res.Members != 12 || res.OSCALLinks != 2 {
		t.Errorf("result counts proofs %d, members %d, OSCAL links %d; want 5, 12, 2", res.Proofs, res.Members, res.OSCALLinks)
	}
	want := fmt.Sprintf("%s+%08x", testKeyName, p.key.signer.KeyHash())
	if !slices.Equal(res.Signers, []string{want}) {
		t.Errorf("Signers = %v; want [%s]", res.Signers, want)
	}
	if l := res.Logs[0]; l.Log != "acme" || l.StartSize != 3 || l.EndSize != 10 || l.EndRoot != p.acme.root(10) {
		t.Errorf("Logs[0] = %+v; want acme from 3 to 10, root %s", l, p.acme.root(10))
	}
}

func TestPackageValid(t *testing.T) {
	p := newTestPackage(t)
	t.Run("MapFS", func(t *testing.T) { checkValid(t, p, p.mapFS()) })
	t.Run("Dir", func(t *testing.T) {
		fsys, closeFS, err := verify.OpenPackage(p.writeDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		defer closeFS()
		checkValid(t, p, fsys)
	})
	for _, ext := range []string{".tar", ".tar.gz", ".tgz"} {
		t.Run("Archive"+ext, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "package"+ext)
			var buf bytes.Buffer
			if err := verify.WritePackageTar(&buf, p.mapFS(), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), ext != ".tar"); err != nil {
				t.Fatal(err)
			}
			writeFile(t, name, buf.Bytes())
			fsys, closeFS, err := verify.OpenPackage(name)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := closeFS(); err != nil {
					t.Error(err)
				}
			}()
			if err := fstest.TestFS(fsys, slices.Sorted(maps.Keys(p.files))...); err != nil {
				t.Error(err)
			}
			checkValid(t, p, fsys)
		})
	}
}

func TestPackageNoVerifiers(t *testing.T) {
	p := newTestPackage(t)
	if _, err := verify.Package(context.Background(), p.mapFS(), verify.Options{}); err == nil {
		t.Fatal("Package without Verifiers succeeded")
	}
}

func TestPackageTamper(t *testing.T) {
	other := newKey(t, testKeyName)
	for _, test := range []struct {
		name  string
		edit  func(p *testPackage)
		file  string
		check string
	}{
		{"EvidenceByteChanged", func(p *testPackage) {
			p.files["evidence/report.json"] = slices.Clone(p.files["evidence/report.json"])
			p.files["evidence/report.json"][3] ^= 0x01
		}, "evidence/report.json", verify.CheckHash},
		{"FileDropped", func(p *testPackage) { delete(p.files, "README.md") }, "README.md", verify.CheckMissingFile},
		{"FileAdded", func(p *testPackage) { p.files["evidence/extra.txt"] = []byte("x") }, "evidence/extra.txt", verify.CheckUnlistedFile},
		{"PopulationLineRemovedNotResealed", func(p *testPackage) {
			p.files["populations/requests.jsonl"] = withoutLine(p.files["populations/requests.jsonl"], 3)
		}, "populations/requests.jsonl", verify.CheckSize},
		{"ManifestSigMissing", func(p *testPackage) { delete(p.files, "manifest.sig") }, "manifest.sig", verify.CheckMissingFile},
		{"ManifestResignedByAnotherKey", func(p *testPackage) { p.sealWith(other, nil) }, "manifest.sig", verify.CheckSignature},
		{"ManifestEditedAfterSigning", func(p *testPackage) {
			p.files["manifest.json"] = bytes.Replace(p.files["manifest.json"], []byte(`"nist-ai-rmf"`), []byte(`"aiuc-1"`), 1)
		}, "manifest.json", verify.CheckSignature},
		{"ManifestSigOfAnotherPackage", func(p *testPackage) {
			p.files["manifest.sig"] = signManifest(t, uuid.NewSHA1(uuid.NameSpaceURL, []byte("other")).String(), p.files["manifest.json"], p.key.signer)
		}, "manifest.sig", verify.CheckSignature},
		{"ManifestPathDotDot", func(p *testPackage) {
			p.sealWith(p.key, func(m *testManifest) {
				m.Files = append([]testFile{{Path: "../outside.txt", SHA256: strings.Repeat("a", 64), Size: 1}}, m.Files...)
			})
		}, "manifest.json", verify.CheckManifest},
		{"ManifestPathAbsolute", func(p *testPackage) {
			p.sealWith(p.key, func(m *testManifest) {
				m.Files = append([]testFile{{Path: "/etc/passwd", SHA256: strings.Repeat("a", 64), Size: 1}}, m.Files...)
			})
		}, "manifest.json", verify.CheckManifest},
		{"ManifestPathBackslash", func(p *testPackage) {
			p.sealWith(p.key, func(m *testManifest) {
				m.Files = append(m.Files, testFile{Path: `x\..\..\y`, SHA256: strings.Repeat("a", 64), Size: 1})
			})
		}, "manifest.json", verify.CheckManifest},
		{"ManifestFilesUnsorted", func(p *testPackage) {
			p.sealWith(p.key, func(m *testManifest) { m.Files[0], m.Files[1] = m.Files[1], m.Files[0] })
		}, "manifest.json", verify.CheckManifest},
		{"ManifestAbsurdSize", func(p *testPackage) {
			p.sealWith(p.key, func(m *testManifest) { m.Files[0].Size = 1 << 62 })
		}, "manifest.json", verify.CheckManifest},
		{"ManifestUnknownField", func(p *testPackage) {
			p.sealWith(p.key, nil)
			p.files["manifest.json"] = bytes.Replace(p.files["manifest.json"], []byte(`"format"`), []byte(`"extra": 1, "format"`), 1)
			p.files["manifest.sig"] = signManifest(t, p.m.PackageID, p.files["manifest.json"], p.key.signer)
		}, "manifest.json", verify.CheckManifest},
		{"ManifestProofNotListed", func(p *testPackage) {
			delete(p.files, "proofs/acme/inclusion-8.json")
			p.seal()
		}, "manifest.json", verify.CheckManifest},
		{"EndCheckpointOfAnotherLog", func(p *testPackage) {
			p.files["checkpoints/system/5"] = p.acme.checkpoints[3]
			p.seal()
		}, "checkpoints/system/5", verify.CheckCheckpoint},
		{"EndCheckpointOfAnotherSize", func(p *testPackage) {
			p.files["checkpoints/acme/10"] = p.acme.checkpoints[7]
			p.seal()
		}, "checkpoints/acme/10", verify.CheckCheckpoint},
		{"StartCheckpointByAnotherKey", func(p *testPackage) {
			cp, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: p.acme.origin, Size: 3, Root: p.acme.root(3)}, other.signer)
			if err != nil {
				t.Fatal(err)
			}
			p.files["checkpoints/acme/3"] = cp
			p.seal()
		}, "checkpoints/acme/3", verify.CheckCheckpoint},
		{"ConsistencyProofFromAnotherSize", func(p *testPackage) {
			p.files["proofs/acme/consistency-3-10.json"] = p.consistencyProof(p.acme, 7, 10)
			p.seal()
		}, "proofs/acme/consistency-3-10.json", verify.CheckConsistency},
		{"ConsistencyProofHashChanged", func(p *testPackage) {
			var cp ledger.ConsistencyProofJSON
			if err := json.Unmarshal(p.files["proofs/acme/consistency-3-10.json"], &cp); err != nil {
				t.Fatal(err)
			}
			cp.Hashes[0] = p.acme.root(7).String()
			p.files["proofs/acme/consistency-3-10.json"] = mustJSON(t, cp)
			p.seal()
		}, "proofs/acme/consistency-3-10.json", verify.CheckConsistency},
		{"PopulationLineRemoved", func(p *testPackage) {
			p.files["populations/requests.jsonl"] = withoutLine(p.files["populations/requests.jsonl"], 3)
			p.seal()
		}, "populations/requests.jsonl", verify.CheckPopulation},
		{"PopulationLineAdded", func(p *testPackage) {
			p.files["populations/admin-changes.jsonl"] = append(slices.Clone(p.files["populations/admin-changes.jsonl"]), memberLine(p.sys, 4)...)
			p.seal()
		}, "populations/admin-changes.jsonl", verify.CheckPopulation},
		{"PopulationOutOfOrder", func(p *testPackage) {
			p.files["populations/requests.jsonl"] = append(append(members(p.acme, 3, 5), memberLine(p.acme, 6)...), append(memberLine(p.acme, 5), members(p.acme, 7, 10)...)...)
			p.seal()
		}, "populations/requests.jsonl", verify.CheckPopulation},
		{"PopulationMemberBeyondEndCheckpoint", func(p *testPackage) {
			p.files["populations/admin-changes.jsonl"] = bytes.Replace(p.files["populations/admin-changes.jsonl"], []byte(`"index":4`), []byte(`"index":5`), 1)
			p.seal()
		}, "populations/admin-changes.jsonl", verify.CheckPopulation},
		{"PopulationLineNotJSON", func(p *testPackage) {
			p.files["populations/admin-changes.jsonl"] = append(members(p.sys, 0, 4), "not json\n"...)
			p.seal()
		}, "populations/admin-changes.jsonl", verify.CheckPopulation},
		{"SampleNotInPopulation", func(p *testPackage) {
			p.sample("requests", p.acme, 1) // the population holds 3 to 9
			p.seal()
		}, "populations/requests.jsonl", verify.CheckPopulation},
		{"SampleOtherThanMember", func(p *testPackage) {
			p.m.Samples[0].EventID = eventID(p.acme, 5)
			p.seal()
		}, "populations/requests.jsonl", verify.CheckPopulation},
		{"ProofSwapped", func(p *testPackage) {
			p.files["proofs/acme/inclusion-4.json"] = p.files["proofs/acme/inclusion-8.json"]
			p.seal()
		}, "proofs/acme/inclusion-4.json", verify.CheckInclusion},
		{"ProofAgainstAnotherCheckpoint", func(p *testPackage) {
			p.files["proofs/acme/inclusion-4.json"] = inclusionProof(p.acme, 4, 7, true)
			p.seal()
		}, "proofs/acme/inclusion-4.json", verify.CheckInclusion},
		{"ProofAgainstAnotherSizeNoCheckpoint", func(p *testPackage) {
			p.files["proofs/acme/inclusion-4.json"] = inclusionProof(p.acme, 4, 7, false)
			p.seal()
		}, "proofs/acme/inclusion-4.json", verify.CheckInclusion},
		{"ProofHashChanged", func(p *testPackage) {
			var ip ledger.InclusionProofJSON
			if err := json.Unmarshal(p.files["proofs/system/inclusion-2.json"], &ip); err != nil {
				t.Fatal(err)
			}
			ip.Hashes[0] = ip.LeafHash
			p.files["proofs/system/inclusion-2.json"] = mustJSON(t, ip)
			p.seal()
		}, "proofs/system/inclusion-2.json", verify.CheckInclusion},
		{"SampleEventIDOtherThanEntry", func(p *testPackage) {
			p.m.Samples[3].EventID = eventID(p.acme, 6) // calls: a population without a file
			p.seal()
		}, "proofs/acme/inclusion-5.json", verify.CheckInclusion},
		{"OSCALHashWrong", func(p *testPackage) {
			p.writeOSCAL(func(links []map[string]any) []map[string]any {
				links[0]["hashes"] = []any{map[string]any{"algorithm": "SHA-256", "value": strings.Repeat("ab", 32)}}
				return links
			})
			p.seal()
		}, "oscal/assessment-results.json", verify.CheckOSCALLink},
		{"OSCALOtherAlgorithmWrong", func(p *testPackage) {
			p.writeOSCAL(func(links []map[string]any) []map[string]any {
				links[1]["hashes"].([]any)[1].(map[string]any)["value"] = strings.Repeat("0", 128)
				return links
			})
			p.seal()
		}, "oscal/assessment-results.json", verify.CheckOSCALLink},
		{"OSCALLinkOutsidePackage", func(p *testPackage) {
			p.writeOSCAL(func(links []map[string]any) []map[string]any {
				links[0]["href"] = "../../populations/requests.jsonl"
				return links
			})
			p.seal()
		}, "oscal/assessment-results.json", verify.CheckOSCALLink},
		{"OSCALLinkToUnlistedFile", func(p *testPackage) {
			p.writeOSCAL(func(links []map[string]any) []map[string]any {
				links[0]["href"] = "../manifest.json"
				return links
			})
			p.seal()
		}, "oscal/assessment-results.json", verify.CheckOSCALLink},
	} {
		t.Run(test.name, func(t *testing.T) {
			p := newTestPackage(t)
			test.edit(p)
			_, err := verify.Package(context.Background(), p.mapFS(), p.opts())
			checkPackageError(t, err, test.file, test.check)
		})
	}
}

func checkPackageError(t *testing.T, err error, file, check string) {
	t.Helper()
	var pe *verify.PackageError
	if !errors.As(err, &pe) {
		t.Fatalf("Package = %v; want a *PackageError (%s check of %s)", err, check, file)
	}
	if pe.File != file || pe.Check != check {
		t.Fatalf("Package = %v; want the %s check of %s to fail", err, check, file)
	}
	if msg := err.Error(); !strings.Contains(msg, file) || !strings.Contains(msg, check) {
		t.Errorf("error %q does not name %s and %s", msg, file, check)
	}
}

// withoutLine returns a population file without its line i (from 0).
func withoutLine(b []byte, i int) []byte {
	lines := strings.SplitAfter(string(b), "\n")
	return []byte(strings.Join(slices.Delete(lines, i, i+1), ""))
}

func TestPackageDirSymlink(t *testing.T) {
	p := newTestPackage(t)
	dir := p.writeDir(t.TempDir())
	target := filepath.Join(t.TempDir(), "README.md")
	writeFile(t, target, p.files["README.md"])
	if err := os.Remove(filepath.Join(dir, "README.md")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "README.md")); err != nil {
		t.Skipf("no symlinks here: %v", err)
	}
	fsys, closeFS, err := verify.OpenPackage(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFS()
	_, err = verify.Package(context.Background(), fsys, p.opts())
	checkPackageError(t, err, "README.md", verify.CheckFileType)
}

func TestPackageTarDeterministic(t *testing.T) {
	p := newTestPackage(t)
	mtime := time.Date(2026, 12, 1, 0, 0, 0, 5, time.FixedZone("x", 3600))
	for _, gz := range []bool{false, true} {
		var a, b bytes.Buffer
		if err := verify.WritePackageTar(&a, p.mapFS(), mtime, gz); err != nil {
			t.Fatal(err)
		}
		if err := verify.WritePackageTar(&b, p.writeDirFS(t), mtime, gz); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("WritePackageTar(gzip %v) differs between a MapFS and a directory of the same files", gz)
		}
		r := bytes.NewReader(a.Bytes())
		var tr *tar.Reader
		if gz {
			zr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			if zr.Name != "" || !zr.ModTime.IsZero() {
				t.Errorf("gzip header has name %q, time %v; want none", zr.Name, zr.ModTime)
			}
			tr = tar.NewReader(zr)
		} else {
			tr = tar.NewReader(r)
		}
		var names []string
		for {
			hdr, err := tr.Next()
			if err != nil {
				break
			}
			names = append(names, hdr.Name)
			if hdr.Mode != 0o644 || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" || !hdr.ModTime.Equal(mtime.Truncate(time.Second)) || hdr.Typeflag != tar.TypeReg {
				t.Errorf("header %+v; want mode 0644, owner 0:0 unnamed, time %v", hdr, mtime.Truncate(time.Second))
			}
		}
		if want := slices.Sorted(maps.Keys(p.files)); !slices.Equal(names, want) {
			t.Errorf("archive holds %v; want %v", names, want)
		}
	}
}

func (p *testPackage) writeDirFS(t *testing.T) fs.FS { return os.DirFS(p.writeDir(t.TempDir())) }

// TestOpenPackageArchive checks archives WritePackageTar does not write:
// one wrapped in a top-level directory (tar czf pkg.tgz pkg/) opens; unsafe
// or ambiguous entries are refused.
func TestOpenPackageArchive(t *testing.T) {
	p := newTestPackage(t)
	type entry struct {
		name     string
		typeflag byte
		data     []byte
	}
	write := func(t *testing.T, entries []entry) string {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			hdr := &tar.Header{Name: e.name, Typeflag: e.typeflag, Mode: 0o644, Size: int64(len(e.data))}
			if e.typeflag == tar.TypeSymlink {
				hdr.Linkname, hdr.Size = "/etc/passwd", 0
			}
			if err := tw.WriteHeader(hdr); err != nil {
				t.Fatal(err)
			}
			if e.typeflag == tar.TypeReg {
				if _, err := tw.Write(e.data); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(t.TempDir(), "p.tar")
		writeFile(t, name, buf.Bytes())
		return name
	}
	var wrapped []entry
	wrapped = append(wrapped, entry{"./pkg/", tar.TypeDir, nil})
	for _, name := range slices.Sorted(maps.Keys(p.files)) {
		wrapped = append(wrapped, entry{"./pkg/" + name, tar.TypeReg, p.files[name]})
	}
	t.Run("TopLevelDirectory", func(t *testing.T) {
		fsys, closeFS, err := verify.OpenPackage(write(t, wrapped))
		if err != nil {
			t.Fatal(err)
		}
		defer closeFS()
		checkValid(t, p, fsys)
	})
	for _, test := range []struct {
		name    string
		entries []entry
		want    string
	}{
		{"DotDot", []entry{{"manifest.json", tar.TypeReg, nil}, {"../evil", tar.TypeReg, []byte("x")}}, "not a clean relative path"},
		{"DotDotInside", []entry{{"a/../../evil", tar.TypeReg, []byte("x")}}, "not a clean relative path"},
		{"Absolute", []entry{{"/etc/evil", tar.TypeReg, []byte("x")}}, "not a clean relative path"},
		{"Backslash", []entry{{`a\b`, tar.TypeReg, []byte("x")}}, "not a clean relative path"},
		{"Symlink", []entry{{"manifest.json", tar.TypeReg, nil}, {"README.md", tar.TypeSymlink, nil}}, "not a regular file"},
		{"Duplicate", []entry{{"README.md", tar.TypeReg, []byte("a")}, {"./README.md", tar.TypeReg, []byte("b")}}, "duplicate"},
		{"FileAndDirectory", []entry{{"a", tar.TypeReg, []byte("a")}, {"a/b", tar.TypeReg, []byte("b")}}, "both a file and a directory"},
	} {
		t.Run(test.name, func(t *testing.T) {
			_, _, err := verify.OpenPackage(write(t, test.entries))
			if err == nil || !strings.Contains(err.Error(), test.want) {
				t.Fatalf("OpenPackage = %v; want an error saying %q", err, test.want)
			}
		})
	}
	t.Run("NotAnArchive", func(t *testing.T) {
		name := filepath.Join(t.TempDir(), "p.zip")
		writeFile(t, name, []byte("PK"))
		if _, _, err := verify.OpenPackage(name); err == nil {
			t.Fatal("OpenPackage of a .zip succeeded")
		}
	})
	t.Run("BadGzip", func(t *testing.T) {
		name := filepath.Join(t.TempDir(), "p.tgz")
		writeFile(t, name, []byte("not gzip"))
		if _, _, err := verify.OpenPackage(name); err == nil {
			t.Fatal("OpenPackage of a bad .tgz succeeded")
		}
	})
}

// FuzzPackageManifest runs Package on the test package with manifest.json
// replaced by the fuzzer's bytes (and manifest.sig re-signed over them), so
// that every check after the signature sees them: it must never panic, and
// succeed only on a manifest naming the package's id.
func FuzzPackageManifest(f *testing.F) {
	p := newTestPackage(f)
	valid := p.files["manifest.json"]
	f.Add(valid)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":"aigw-assessor-package/1","files":[{"path":"../x","sha256":"","size":-1}]}`))
	f.Add(bytes.Replace(valid, []byte(`"count": 7`), []byte(`"count": 18446744073709551615`), 1))
	f.Add(bytes.Replace(valid, []byte(`"index": 4`), []byte(`"index": 18446744073709551615`), 1))
	f.Add(bytes.Replace(valid, []byte(`"end_size": 10`), []byte(`"end_size": 0`), 1))
	base := p.mapFS()
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, manifest []byte) {
		var head struct {
			PackageID string `json:"package_id"`
		}
		json.Unmarshal(manifest, &head)
		sum := sha256.Sum256(manifest)
		sig, err := note.Sign(&note.Note{Text: verify.PackageFormat + "\n" + head.PackageID + "\n" + base64.StdEncoding.EncodeToString(sum[:]) + "\n"}, p.key.signer)
		if err != nil {
			sig = signManifest(t, p.m.PackageID, manifest, p.key.signer)
		}
		fsys := maps.Clone(base)
		fsys["manifest.json"] = &fstest.MapFile{Data: manifest}
		fsys["manifest.sig"] = &fstest.MapFile{Data: sig}
		res, err := verify.Package(ctx, fsys, verify.Options{Verifiers: p.key.verifiers(), Workers: 2})
		var pe *verify.PackageError
		switch {
		case err == nil:
			if res.PackageID != p.m.PackageID {
				t.Fatalf("package %q verified; only %q can", res.PackageID, p.m.PackageID)
			}
		case errors.As(err, &pe):
			if pe.File == "" || pe.Check == "" {
				t.Fatalf("PackageError %+v names no file or check", pe)
			}
		default:
			t.Fatalf("Package = %v; want nil or a *PackageError", err)
		}
	})
}

// chunkFS serves files n bytes per Read, so that population lines straddle
// reads.
type chunkFS struct {
	fstest.MapFS
	n int
}

func (c chunkFS) Open(name string) (fs.File, error) {
	f, err := c.MapFS.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || st.IsDir() {
		return f, err
	}
	return &chunkFile{f, c.n}, nil
}

type chunkFile struct {
	fs.File
	n int
}

func (f *chunkFile) Read(p []byte) (int, error) { return f.File.Read(p[:min(len(p), f.n)]) }

// TestPackageAccepts checks packages that differ from the exporter's usual
// output and still verify.
func TestPackageAccepts(t *testing.T) {
	for _, test := range []struct {
		name string
		edit func(p *testPackage)
		fsys func(p *testPackage) fs.FS
	}{
		{"ShortReads", nil, func(p *testPackage) fs.FS { return chunkFS{p.mapFS(), 7} }},
		{"OneByteReads", nil, func(p *testPackage) fs.FS { return chunkFS{p.mapFS(), 1} }},
		{"LastLineWithoutNewline", func(p *testPackage) {
			p.files["populations/requests.jsonl"] = bytes.TrimSuffix(p.files["populations/requests.jsonl"], []byte("\n"))
			p.writeOSCAL(nil)
			p.seal()
		}, nil},
		{"CRLF", func(p *testPackage) {
			p.files["populations/requests.jsonl"] = bytes.ReplaceAll(p.files["populations/requests.jsonl"], []byte("\n"), []byte("\r\n"))
			p.writeOSCAL(nil)
			p.seal()
		}, func(p *testPackage) fs.FS { return chunkFS{p.mapFS(), 5} }},
	} {
		t.Run(test.name, func(t *testing.T) {
			p := newTestPackage(t)
			if test.edit != nil {
				test.edit(p)
			}
			var fsys fs.FS = p.mapFS()
			if test.fsys != nil {
				fsys = test.fsys(p)
			}
			checkValid(t, p, fsys)
		})
	}
}

func TestPackageTamperShortReads(t *testing.T) {
	p := newTestPackage(t)
	p.files["populations/requests.jsonl"] = withoutLine(p.files["populations/requests.jsonl"], 1) // sample acme/4
	p.seal()
	_, err := verify.Package(context.Background(), chunkFS{p.mapFS(), 3}, p.opts())
	checkPackageError(t, err, "populations/requests.jsonl", verify.CheckPopulation)
}

func TestPackageCanceled(t *testing.T) {
	p := newTestPackage(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := verify.Package(ctx, p.mapFS(), p.opts()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Package(canceled) = %v; want context.Canceled", err)
	}
}
