package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"aigw/ledger"

	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/note"
)

// PackageFormat is the format line of an assessor package's manifest and of
// the text its manifest.sig signs.
//
// SPEC: evidence/PACKAGE.md
const PackageFormat = "aigw-assessor-package/1"

// The two files of a package that manifest.json does not list.
const (
	ManifestFile    = "manifest.json"
	ManifestSigFile = "manifest.sig"
)

// Bounds on what [Package] reads into memory. Listed files are streamed
// (hashed and, for population files, checked line by line), whatever their
// size up to MaxPackageFileSize.
const (
	// MaxManifestSize bounds manifest.json.
	MaxManifestSize = 64 << 20
	// MaxPackageFileSize bounds the size the manifest may give a file.
	MaxPackageFileSize = 1 << 40
	maxSigSize         = 64 << 10 // manifest.sig
	maxCheckpointSize  = 64 << 10 // checkpoints/<log>/<size>
	maxProofSize       = 1 << 20  // proofs/...: an entry is below 64 KiB
	maxOSCALSize       = 64 << 20 // catalog.json and oscal/*.json, decoded whole
	maxMemberLine      = 1 << 20  // one line of a population file
)

// Checks of [PackageError], in the order [Package] runs them (PACKAGE.md
// §"What aigw verify checks").
const (
	// CheckSignature (1): manifest.sig is not a note signed by a trusted
	// key, its text is not the format, the package id and the SHA-256 of
	// manifest.json, or manifest.json is not the file it signs.
	CheckSignature = "signature"
	// CheckManifest (1): manifest.json does not parse, is not format 1, or
	// is inconsistent (a path that is not clean and relative, files not
	// sorted, a reference to a file it does not list, an absurd size...).
	CheckManifest = "manifest"
	// CheckMissingFile (2): a listed file (or manifest.json, manifest.sig)
	// is absent.
	CheckMissingFile = "missing-file"
	// CheckFileType (2): a listed path is not a regular file (a symlink, a
	// device...).
	CheckFileType = "file-type"
	// CheckUnlistedFile (2): the package holds a file the manifest does not list.
	CheckUnlistedFile = "unlisted-file"
	// CheckSize (2): a file's size differs from the manifest's.
	CheckSize = "size"
	// CheckHash (2): a file's SHA-256 differs from the manifest's.
	CheckHash = "hash"
	// CheckCheckpoint (3): a log's start or end checkpoint is not signed by
	// a trusted key, is not of the log's origin, or has another size.
	CheckCheckpoint = "checkpoint"
	// CheckConsistency (3): the consistency proof does not prove that the
	// end checkpoint extends the start checkpoint.
	CheckConsistency = "consistency"
	// CheckPopulation (4): a population file does not have count lines in
	// strictly increasing (log, index) order, a line is not a member, or a
	// sample is not a member of its population's file.
	CheckPopulation = "population"
	// CheckInclusion (4): a sample's inclusion proof does not verify against
	// its log's end checkpoint, or its entry is not the sample's.
	CheckInclusion = "inclusion"
	// CheckDocument (4): an attestation document does not match the
	// commitment of its ledger entry (SHA-256(salt ‖ document)).
	CheckDocument = "document"
	// CheckOSCALLink (5): an OSCAL back-matter link with hashes points
	// outside the package or at no listed file, or a hash differs.
	CheckOSCALLink = "oscal-link"
)

// PackageError reports the first check an assessor package failed.
// Everything checked before it passed.
type PackageError struct {
	// File is the package path of the file that failed (for example
	// "manifest.json", "proofs/acme/inclusion-17.json").
	File string
	// Check is one of the Check constants.
	Check string
	// Want and Got describe the expected and the found value.
	Want, Got string
	// Err is the underlying *MismatchError of a checkpoint or proof, if any.
	Err error
}

func (e *PackageError) Error() string {
	return fmt.Sprintf("package file %q: %s check failed: want %s, got %s", e.File, e.Check, e.Want, e.Got)
}

func (e *PackageError) Unwrap() error { return e.Err }

func pkgErr(file, check, want, got string) *PackageError {
	return &PackageError{File: file, Check: check, Want: want, Got: got}
}

// PackageResult describes an assessor package that verified.
type PackageResult struct {
	PackageID string
	Framework string
	Tenant    string
	From, To  time.Time
	Generator string
	// VerifierKey is the key the manifest says it is signed with; trust
	// comes from Options.Verifiers, never from it.
	VerifierKey string
	// Signers are the trusted keys (name+hash) that signed manifest.sig.
	Signers []string
	// Files counts the listed files, all of which were hashed, and Bytes
	// their total size.
	Files int
	Bytes int64
	// Logs are the logs read, with their verified checkpoints.
	Logs []PackageLog
	// Populations counts the populations, Members the lines of their files.
	Populations int
	Members     uint64
	// Samples counts the sampled entries, and Proofs the inclusion and
	// consistency proofs that verified.
	Samples int
	Proofs  int
	// OSCALLinks counts the OSCAL back-matter links whose hashes matched.
	OSCALLinks int
	// Documents counts the attestation documents checked against their entries.
	Documents int
}

// PackageLog is one log of a package that verified.
type PackageLog struct {
	Log, Origin string
	// StartSize is 0 when the package has no start checkpoint.
	StartSize, EndSize uint64
	EndRoot            ledger.Hash
	// Signers are the trusted keys that signed the end checkpoint.
	Signers []string
}

// packageManifest is manifest.json (PACKAGE.md §manifest.json). verify has
// its own copy of the format, so that it never trusts the exporter's code.
type packageManifest struct {
	Format      string              `json:"format"`
	PackageID   string              `json:"package_id"`
	Framework   string              `json:"framework"`
	Tenant      string              `json:"tenant"`
	From        time.Time           `json:"from"`
	To          time.Time           `json:"to"`
	Generator   string              `json:"generator"`
	VerifierKey string              `json:"verifier_key"`
	Logs        []packageLog        `json:"logs"`
	Populations []packagePopulation `json:"populations"`
	Samples     []packageSample     `json:"samples"`
	Documents   []packageDocument   `json:"documents"`
	Files       []packageFile       `json:"files"`
}

// packageDocument is a document attached to an attestation event: the
// payload its entry commits to, with the salt, and the entry's proof.
type packageDocument struct {
	Log      string `json:"log"`
	Index    uint64 `json:"index"`
	EventID  string `json:"event_id"`
	LeafHash string `json:"leaf_hash"`
	Proof    string `json:"proof"`
	File     string `json:"file"`
	Salt     string `json:"salt"`
}

type packageLog struct {
	Log             string `json:"log"`
	Origin          string `json:"origin"`
	StartSize       uint64 `json:"start_size"`
	StartCheckpoint string `json:"start_checkpoint"`
	EndSize         uint64 `json:"end_size"`
	EndCheckpoint   string `json:"end_checkpoint"`
	Consistency     string `json:"consistency"`
}

type packagePopulation struct {
	ID    string `json:"id"`
	Count uint64 `json:"count"`
	File  string `json:"file"`
}

type packageSample struct {
	Population string `json:"population"`
	Log        string `json:"log"`
	Index      uint64 `json:"index"`
	EventID    string `json:"event_id"`
	LeafHash   string `json:"leaf_hash"`
	Proof      string `json:"proof"`
}

type packageFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Package verifies an assessor package (evidence/PACKAGE.md) held in fsys,
// typically from [OpenPackage], offline and with only opts.Verifiers (the
// deployment's checkpoint verifier key) trusted. It runs the checks of
// PACKAGE.md §"What aigw verify checks" in order:
//
//  1. manifest.sig is a note signed by a trusted key naming the format, the
//     package id and the SHA-256 of manifest.json; manifest.json is format
//     1 and consistent (clean relative paths, sorted files, every referenced
//     file listed, sizes at most MaxPackageFileSize).
//  2. Every listed file exists, is a regular file, and has its size and
//     SHA-256; no other file is present.
//  3. Each log's end (and start) checkpoint is signed by a trusted key, of
//     the manifest's origin (ending in "/<log>"), of the listed size, and
//     the consistency proof proves the end extends the start.
//  4. Every population file has count lines, each a member (log, index,
//     event_id, leaf_hash) below its log's end size, in strictly increasing
//     (log, index) order; every sample is a member of its population's file
//     (when listed) and its inclusion proof, entry included, verifies
//     against its log's end checkpoint with the sample's event id and leaf hash.
//  5. Every hashed back-matter link of catalog.json and oscal/**.json that
//     is not a fragment or an absolute URL resolves, relative to its
//     document, to a listed file whose SHA-256 (and any other OSCAL
//     algorithm it names) matches.
//
// It returns a *PackageError for the first failure, another error if the
// package could not be read, or the result. Files are streamed, so a
// population file of gigabytes costs one read; files checked again in steps
// 3 to 5 are re-hashed as they are read. opts.Workers files are hashed at
// once; opts.Origin, Old and Payloads are not used (each log's origin is the
// manifest's).
func Package(ctx context.Context, fsys fs.FS, opts Options) (*PackageResult, error) {
	if opts.Verifiers == nil {
		return nil, errNoVerifiers
	}
	r := &pkgRun{fsys: fsys, opts: opts}
	if err := r.checkSignature(); err != nil {
		return nil, err
	}
	if err := r.checkFiles(ctx); err != nil {
		return nil, err
	}
	if err := r.checkLogs(ctx); err != nil {
		return nil, err
	}
	if err := r.checkPopulations(ctx); err != nil {
		return nil, err
	}
	if err := r.checkOSCAL(ctx); err != nil {
		return nil, err
	}
	return r.res, nil
}

// pkgRun is one verification of one package.
type pkgRun struct {
	fsys fs.FS
	opts Options
	m    *packageManifest
	res  *PackageResult

	files    map[string]*packageFile
	logs     map[string]*logState
	pops     map[string]*popChecker // by population id, for listed populations
	popFiles map[string]*popChecker // by file
	digests  map[[2]string]string   // (path, algorithm) → hex digest, for OSCAL links
}

// logState is a log of the manifest and, once step 3 ran, its end checkpoint.
type logState struct {
	*packageLog
	end     []byte // signed end checkpoint; nil when the log has none
	endBody []byte
	root    ledger.Hash
}

// step 1

func (r *pkgRun) checkSignature() error {
	sig, err := r.readRaw(ManifestSigFile, maxSigSize)
	if err != nil {
		return err
	}
	n, err := note.Open(sig, r.opts.Verifiers)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return pkgErr(ManifestSigFile, CheckSignature, "a signature by a trusted key", "signatures by unknown keys only")
		case errors.As(err, &invalid):
			return pkgErr(ManifestSigFile, CheckSignature, "a valid signature by "+invalid.Name, "an invalid signature")
		}
		return pkgErr(ManifestSigFile, CheckSignature, "a signed note", err.Error())
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) != 3 || lines[0] != PackageFormat {
		return pkgErr(ManifestSigFile, CheckSignature, fmt.Sprintf("three lines: %q, the package id, the SHA-256 of manifest.json", PackageFormat), fmt.Sprintf("%q", n.Text))
	}
	data, err := r.readRaw(ManifestFile, MaxManifestSize)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if got := base64.StdEncoding.EncodeToString(sum[:]); got != lines[2] {
		return pkgErr(ManifestFile, CheckSignature, "SHA-256 "+lines[2]+" (signed in manifest.sig)", "SHA-256 "+got)
	}
	m, perr := parseManifest(data)
	if perr != nil {
		return perr
	}
	if m.PackageID != lines[1] {
		return pkgErr(ManifestSigFile, CheckSignature, fmt.Sprintf("package id %q (manifest.json)", m.PackageID), fmt.Sprintf("%q", lines[1]))
	}
	r.m = m
	r.res = &PackageResult{
		PackageID: m.PackageID, Framework: m.Framework, Tenant: m.Tenant, From: m.From, To: m.To,
		Generator: m.Generator, VerifierKey: m.VerifierKey, Files: len(m.Files),
		Populations: len(m.Populations), Samples: len(m.Samples),
	}
	for _, s := range n.Sigs {
		r.res.Signers = append(r.res.Signers, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
	}
	r.files = make(map[string]*packageFile, len(m.Files))
	for i := range m.Files {
		r.files[m.Files[i].Path] = &m.Files[i]
		r.res.Bytes += m.Files[i].Size
	}
	r.logs = make(map[string]*logState, len(m.Logs))
	for i := range m.Logs {
		r.logs[m.Logs[i].Log] = &logState{packageLog: &m.Logs[i]}
	}
	r.pops = map[string]*popChecker{}
	r.popFiles = map[string]*popChecker{}
	for i := range m.Populations {
		p := &m.Populations[i]
		if p.File != "" {
			c := &popChecker{pop: p, logs: r.logs}
			r.pops[p.ID] = c
			r.popFiles[p.File] = c
		}
	}
	for i := range m.Samples {
		s := &m.Samples[i]
		if c := r.pops[s.Population]; c != nil {
			c.samples = append(c.samples, s)
		}
	}
	for _, c := range r.pops {
		slices.SortFunc(c.samples, func(a, b *packageSample) int { return compareMember(a.Log, a.Index, b.Log, b.Index) })
	}
	return nil
}

// readRaw reads manifest.json or manifest.sig, which the manifest does not list.
func (r *pkgRun) readRaw(name string, limit int64) ([]byte, error) {
	f, err := r.fsys.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, pkgErr(name, CheckMissingFile, "the file", "no such file")
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("stat %s: %w", name, err)
	} else if !st.Mode().IsRegular() {
		return nil, pkgErr(name, CheckFileType, "a regular file", st.Mode().Type().String())
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		check := CheckManifest
		if name == ManifestSigFile {
			check = CheckSignature
		}
		return nil, pkgErr(name, check, fmt.Sprintf("at most %d bytes", limit), "a larger file")
	}
	return data, nil
}

// parseManifest decodes manifest.json and checks that it is consistent.
func parseManifest(data []byte) (*packageManifest, *PackageError) {
	bad := func(want, got string) *PackageError { return pkgErr(ManifestFile, CheckManifest, want, got) }
	var m packageManifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, bad("a manifest of format "+PackageFormat, err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("one JSON object", "more data after it")
	}
	if m.Format != PackageFormat {
		return nil, bad("format "+strconv.Quote(PackageFormat), strconv.Quote(m.Format))
	}
	if id, err := uuid.Parse(m.PackageID); err != nil || id.Version() != 5 || id.String() != m.PackageID {
		return nil, bad("package_id: a UUIDv5 in canonical form", strconv.Quote(m.PackageID))
	}
	if m.Framework == "" {
		return nil, bad("framework: a framework id", `""`)
	}
	if !ledger.ValidLogName(m.Tenant) {
		return nil, bad("tenant: a log name", strconv.Quote(m.Tenant))
	}
	if m.From.IsZero() || !m.To.After(m.From) {
		return nil, bad("from before to", fmt.Sprintf("from %s, to %s", m.From.Format(time.RFC3339), m.To.Format(time.RFC3339)))
	}

	listed := make(map[string]bool, len(m.Files))
	for i, f := range m.Files {
		where := fmt.Sprintf("files[%d]", i)
		if !validPackagePath(f.Path) {
			return nil, bad(where+".path: a clean relative path", strconv.Quote(f.Path))
		}
		if f.Path == ManifestFile || f.Path == ManifestSigFile {
			return nil, bad(where+".path: a file other than manifest.json and manifest.sig", strconv.Quote(f.Path))
		}
		if i > 0 && f.Path <= m.Files[i-1].Path {
			return nil, bad(where+".path: paths sorted, each once", fmt.Sprintf("%q after %q", f.Path, m.Files[i-1].Path))
		}
		if len(f.SHA256) != 2*sha256.Size || !isLowerHex(f.SHA256) {
			return nil, bad(where+".sha256: 64 lowercase hex digits", strconv.Quote(f.SHA256))
		}
		if f.Size < 0 || f.Size > MaxPackageFileSize {
			return nil, bad(fmt.Sprintf("%s.size: 0 to %d bytes", where, int64(MaxPackageFileSize)), strconv.FormatInt(f.Size, 10))
		}
		listed[f.Path] = true
	}
	// Files referenced by the manifest must be listed (and so hashed), at
	// the path PACKAGE.md's layout gives them.
	ref := func(where, got, want string) *PackageError {
		if got != want {
			return bad(fmt.Sprintf("%s: %q", where, want), strconv.Quote(got))
		}
		if want != "" && !listed[want] {
			return bad(fmt.Sprintf("%s: %q, a listed file", where, want), "not in files")
		}
		return nil
	}

	if len(m.Logs) == 0 {
		return nil, bad("logs: at least one log", "none")
	}
	logs := map[string]*packageLog{}
	for i := range m.Logs {
		l := &m.Logs[i]
		where := fmt.Sprintf("logs[%d]", i)
		if !ledger.ValidLogName(l.Log) || logs[l.Log] != nil {
			return nil, bad(where+".log: a log name, once", strconv.Quote(l.Log))
		}
		logs[l.Log] = l
		if !strings.HasSuffix(l.Origin, "/"+l.Log) || len(l.Origin) == len(l.Log)+1 {
			return nil, bad(fmt.Sprintf("%s.origin: an origin ending in %q", where, "/"+l.Log), strconv.Quote(l.Origin))
		}
		if l.StartSize > l.EndSize {
			return nil, bad(where+".start_size: at most end_size", fmt.Sprintf("%d > %d", l.StartSize, l.EndSize))
		}
		endCP, startCP, cons := "", "", ""
		if l.EndSize > 0 || l.EndCheckpoint != "" {
			endCP = fmt.Sprintf("checkpoints/%s/%d", l.Log, l.EndSize)
		}
		if l.StartSize > 0 {
			startCP = fmt.Sprintf("checkpoints/%s/%d", l.Log, l.StartSize)
			if l.StartSize != l.EndSize {
				cons = fmt.Sprintf("proofs/%s/consistency-%d-%d.json", l.Log, l.StartSize, l.EndSize)
			}
		}
		if err := ref(where+".end_checkpoint", l.EndCheckpoint, endCP); err != nil {
			return nil, err
		}
		if err := ref(where+".start_checkpoint", l.StartCheckpoint, startCP); err != nil {
			return nil, err
		}
		if err := ref(where+".consistency", l.Consistency, cons); err != nil {
			return nil, err
		}
	}

	pops := map[string]*packagePopulation{}
	for i := range m.Populations {
		p := &m.Populations[i]
		where := fmt.Sprintf("populations[%d]", i)
		if !validPopulationID(p.ID) || pops[p.ID] != nil {
			return nil, bad(where+".id: a population id ([a-z0-9_-]), once", strconv.Quote(p.ID))
		}
		pops[p.ID] = p
		if p.File != "" {
			if err := ref(where+".file", p.File, "populations/"+p.ID+".jsonl"); err != nil {
				return nil, err
			}
		}
	}

	type sampleKey struct {
		pop, log string
		index    uint64
	}
	samples := map[sampleKey]bool{}
	for i := range m.Samples {
		s := &m.Samples[i]
		where := fmt.Sprintf("samples[%d]", i)
		if pops[s.Population] == nil {
			return nil, bad(where+".population: a population of the manifest", strconv.Quote(s.Population))
		}
		l := logs[s.Log]
		if l == nil {
			return nil, bad(where+".log: a log of the manifest", strconv.Quote(s.Log))
		}
		if s.Index >= l.EndSize {
			return nil, bad(fmt.Sprintf("%s.index: below the end size %d of log %q", where, l.EndSize, s.Log), strconv.FormatUint(s.Index, 10))
		}
		k := sampleKey{s.Population, s.Log, s.Index}
		if samples[k] {
			return nil, bad(where+": each entry sampled once per population", fmt.Sprintf("%s/%d again", s.Log, s.Index))
		}
		samples[k] = true
		if !ledger.ValidEventID(s.EventID) {
			return nil, bad(where+".event_id: a UUIDv7", strconv.Quote(s.EventID))
		}
		if _, err := ledger.DecodeHashes([]string{s.LeafHash}); err != nil {
			return nil, bad(where+".leaf_hash: a base64 SHA-256 hash", strconv.Quote(s.LeafHash))
		}
		if err := ref(where+".proof", s.Proof, fmt.Sprintf("proofs/%s/inclusion-%d.json", s.Log, s.Index)); err != nil {
			return nil, err
		}
	}
	for i := range m.Documents {
		d := &m.Documents[i]
		where := fmt.Sprintf("documents[%d]", i)
		l := logs[d.Log]
		if l == nil {
			return nil, bad(where+".log: a log of the manifest", strconv.Quote(d.Log))
		}
		if d.Index >= l.EndSize {
			return nil, bad(fmt.Sprintf("%s.index: below the end size %d of log %q", where, l.EndSize, d.Log), strconv.FormatUint(d.Index, 10))
		}
		if !ledger.ValidEventID(d.EventID) {
			return nil, bad(where+".event_id: a UUIDv7", strconv.Quote(d.EventID))
		}
		if _, err := ledger.DecodeHashes([]string{d.LeafHash}); err != nil {
			return nil, bad(where+".leaf_hash: a base64 SHA-256 hash", strconv.Quote(d.LeafHash))
		}
		if salt, err := base64.StdEncoding.Strict().DecodeString(d.Salt); err != nil || len(salt) != ledger.SaltSize {
			return nil, bad(where+".salt: 32 bytes of base64", strconv.Quote(d.Salt))
		}
		if err := ref(where+".proof", d.Proof, fmt.Sprintf("proofs/%s/inclusion-%d.json", d.Log, d.Index)); err != nil {
			return nil, err
		}
		if err := ref(where+".file", d.File, fmt.Sprintf("documents/%s/%d", d.Log, d.Index)); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// validPackagePath reports whether p is a clean relative path of a package:
// slash-separated, no "." or ".." element, no leading or trailing slash, no
// backslash or control character.
func validPackagePath(p string) bool {
	if p == "." || !fs.ValidPath(p) {
		return false
	}
	for _, c := range []byte(p) {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

func validPopulationID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return s[0] != '.'
}

func isLowerHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// step 2

func (r *pkgRun) checkFiles(ctx context.Context) error {
	seen := make(map[string]fs.FileMode, len(r.files)) // listed files present, by type
	unlisted := ""
	err := fs.WalkDir(r.fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || p == ManifestFile || p == ManifestSigFile {
			return nil
		}
		if r.files[p] == nil {
			if unlisted == "" || p < unlisted {
				unlisted = p
			}
			return nil
		}
		seen[p] = d.Type()
		return nil
	})
	if err != nil {
		return fmt.Errorf("list package files: %w", err)
	}
	for _, f := range r.m.Files {
		typ, ok := seen[f.Path]
		switch {
		case !ok:
			return pkgErr(f.Path, CheckMissingFile, "the file listed in manifest.json", "no such file")
		case !typ.IsRegular():
			return pkgErr(f.Path, CheckFileType, "a regular file", "file mode "+typ.String())
		}
	}
	if unlisted != "" {
		return pkgErr(unlisted, CheckUnlistedFile, "only the files listed in manifest.json", "a file it does not list")
	}
	return r.hashFiles(ctx)
}

// hashFiles hashes every listed file with opts.Workers workers, feeding
// population files to their checker as they stream by, and returns the
// failure of the first file (in manifest order) that failed. A worker stops
// early only on a file after one that failed, so the result does not
// depend on scheduling.
func (r *pkgRun) hashFiles(ctx context.Context) error {
	files := r.m.Files
	workers := r.opts.Workers
	if workers <= 0 {
		workers = max(runtime.GOMAXPROCS(0), 4)
	}
	workers = min(workers, len(files))
	errs := make([]error, len(files))
	var first atomic.Int64 // the lowest failed index, len(files) while none
	first.Store(int64(len(files)))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 1<<20)
			for {
				i := next.Add(1) - 1
				if i >= int64(len(files)) || i > first.Load() {
					return
				}
				stop := func() bool { return first.Load() < i }
				err := r.hashFile(ctx, &files[i], r.popFiles[files[i].Path], buf, stop)
				if err == nil || stop() {
					continue
				}
				errs[i] = err
				for {
					f := first.Load()
					if f <= i || first.CompareAndSwap(f, i) {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	if i := first.Load(); i < int64(len(files)) {
		return errs[i]
	}
	return nil
}

// errStopped ends the hashing of a file after one that failed.
var errStopped = errors.New("stopped")

// hashFile checks one listed file's size and SHA-256, streaming it through
// pop (its population checker) if not nil.
func (r *pkgRun) hashFile(ctx context.Context, f *packageFile, pop *popChecker, buf []byte, stop func() bool) error {
	file, err := r.fsys.Open(f.Path)
	if err != nil {
		return fmt.Errorf("open %s: %w", f.Path, err)
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.Path, err)
	}
	if !st.Mode().IsRegular() {
		return pkgErr(f.Path, CheckFileType, "a regular file", "file mode "+st.Mode().Type().String())
	}
	if st.Size() != f.Size {
		return pkgErr(f.Path, CheckSize, fmt.Sprintf("%d bytes", f.Size), fmt.Sprintf("%d bytes", st.Size()))
	}
	h := sha256.New()
	var n int64
	for {
		if stop() {
			return errStopped
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		k, err := file.Read(buf)
		if k > 0 {
			n += int64(k)
			if n > f.Size {
				return pkgErr(f.Path, CheckSize, fmt.Sprintf("%d bytes", f.Size), "more bytes (the file grew)")
			}
			h.Write(buf[:k])
			if pop != nil {
				pop.write(buf[:k])
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", f.Path, err)
		}
	}
	if n != f.Size {
		return pkgErr(f.Path, CheckSize, fmt.Sprintf("%d bytes", f.Size), fmt.Sprintf("%d bytes read", n))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return pkgErr(f.Path, CheckHash, "SHA-256 "+f.SHA256, "SHA-256 "+got)
	}
	if pop != nil {
		pop.finish()
	}
	return nil
}

// readListed reads a listed file of at most limit bytes (else a failure of
// check), hashing it again: it must still be the file step 2 hashed.
func (r *pkgRun) readListed(name string, limit int64, check string) ([]byte, error) {
	f := r.files[name]
	if f == nil {
		return nil, pkgErr(name, CheckMissingFile, "a file listed in manifest.json", "not listed")
	}
	if f.Size > limit {
		return nil, pkgErr(name, check, fmt.Sprintf("a file of at most %d bytes", limit), fmt.Sprintf("%d bytes", f.Size))
	}
	file, err := r.fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, f.Size+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); int64(len(data)) != f.Size || got != f.SHA256 {
		return nil, pkgErr(name, CheckHash, "SHA-256 "+f.SHA256+" (the file hashed before)", "SHA-256 "+got+" (the file changed)")
	}
	return data, nil
}

// step 3

func (r *pkgRun) checkLogs(ctx context.Context) error {
	opts := func(l *logState) Options { return Options{Verifiers: r.opts.Verifiers, Origin: l.Origin} }
	for i := range r.m.Logs {
		if err := ctx.Err(); err != nil {
			return err
		}
		l := r.logs[r.m.Logs[i].Log]
		pl := PackageLog{Log: l.Log, Origin: l.Origin, StartSize: l.StartSize, EndSize: l.EndSize, EndRoot: ledger.EmptyRoot}
		if l.EndCheckpoint != "" {
			signed, err := r.readListed(l.EndCheckpoint, maxCheckpointSize, CheckCheckpoint)
			if err != nil {
				return err
			}
			c, signers, mis := openCheckpoint(l.Log, signed, l.Origin, r.opts.Verifiers)
			if mis != nil {
				return &PackageError{File: l.EndCheckpoint, Check: CheckCheckpoint, Want: mis.Want, Got: mis.Got, Err: mis}
			}
			if c.Size != l.EndSize {
				return pkgErr(l.EndCheckpoint, CheckCheckpoint, fmt.Sprintf("tree size %d (end_size of log %q)", l.EndSize, l.Log), fmt.Sprintf("tree size %d", c.Size))
			}
			if c.Size == 0 && c.Root != ledger.EmptyRoot {
				return pkgErr(l.EndCheckpoint, CheckCheckpoint, "the empty root "+ledger.EmptyRoot.String(), "root "+c.Root.String())
			}
			l.end, l.root = signed, c.Root
			l.endBody, _ = ledger.SplitNote(signed)
			pl.EndRoot, pl.Signers = c.Root, signers
		}
		if l.StartCheckpoint != "" {
			signed, err := r.readListed(l.StartCheckpoint, maxCheckpointSize, CheckCheckpoint)
			if err != nil {
				return err
			}
			c, _, mis := openCheckpoint(l.Log, signed, l.Origin, r.opts.Verifiers)
			if mis != nil {
				return &PackageError{File: l.StartCheckpoint, Check: CheckCheckpoint, Want: mis.Want, Got: mis.Got, Err: mis}
			}
			if c.Size != l.StartSize {
				return pkgErr(l.StartCheckpoint, CheckCheckpoint, fmt.Sprintf("tree size %d (start_size of log %q)", l.StartSize, l.Log), fmt.Sprintf("tree size %d", c.Size))
			}
			if l.Consistency == "" { // same size: same tree
				if c.Root != l.root {
					return pkgErr(l.StartCheckpoint, CheckConsistency, "root "+l.root.String()+" (the end checkpoint, same size)", "root "+c.Root.String())
				}
			} else {
				data, err := r.readListed(l.Consistency, maxProofSize, CheckConsistency)
				if err != nil {
					return err
				}
				bad := func(want, got string) error { return pkgErr(l.Consistency, CheckConsistency, want, got) }
				ip, p, err := ledger.ParseProof(data)
				switch {
				case err != nil:
					return bad("a consistency proof", err.Error())
				case ip != nil:
					return bad("a consistency proof", "an inclusion proof")
				case p.Log != l.Log || p.Size1 != l.StartSize || p.Size2 != l.EndSize:
					return bad(fmt.Sprintf("a proof of log %q from %d to %d", l.Log, l.StartSize, l.EndSize), fmt.Sprintf("log %q from %d to %d", p.Log, p.Size1, p.Size2))
				}
				if p.Checkpoint != "" {
					if body, _ := ledger.SplitNote([]byte(p.Checkpoint)); !bytes.Equal(body, l.endBody) {
						return bad("the end checkpoint "+l.EndCheckpoint+" in the proof", "another checkpoint")
					}
				}
				hashes, err := ledger.DecodeHashes(p.Hashes)
				if err != nil {
					return bad("base64 proof hashes", err.Error())
				}
				if _, err := Consistency(l.Log, signed, l.end, hashes, opts(l)); err != nil {
					var mis *MismatchError
					if errors.As(err, &mis) {
						return &PackageError{File: l.Consistency, Check: CheckConsistency, Want: mis.Want, Got: mis.Got, Err: mis}
					}
					return fmt.Errorf("consistency proof %s: %w", l.Consistency, err)
				}
				r.res.Proofs++
			}
		}
		r.res.Logs = append(r.res.Logs, pl)
	}
	return nil
}

// step 4

func (r *pkgRun) checkPopulations(ctx context.Context) error {
	for _, p := range r.m.Populations {
		if c := r.pops[p.ID]; c != nil {
			if c.fail != nil {
				return c.fail
			}
			r.res.Members += c.lines
		}
	}
	for i := range r.m.Samples {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := r.checkSample(&r.m.Samples[i]); err != nil {
			return err
		}
		r.res.Proofs++
	}
	for i := range r.m.Documents {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.checkDocument(&r.m.Documents[i]); err != nil {
			return err
		}
		r.res.Documents++
	}
	return nil
}

// maxDocumentSize bounds an attestation document read into memory.
const maxDocumentSize = 64 << 20

// checkDocument checks an attestation document: its entry's inclusion
// proof, and that the entry commits to it (SHA-256(salt ‖ document)).
func (r *pkgRun) checkDocument(d *packageDocument) error {
	res, err := r.checkSample(&packageSample{Log: d.Log, Index: d.Index, EventID: d.EventID, LeafHash: d.LeafHash, Proof: d.Proof})
	if err != nil {
		return err
	}
	data, err := r.readListed(d.File, maxDocumentSize, CheckDocument)
	if err != nil {
		return err
	}
	salt, _ := base64.StdEncoding.DecodeString(d.Salt)
	if got, _ := ledger.Commit(data, salt); got != res.Entry.PayloadSHA256 {
		return pkgErr(d.File, CheckDocument, "the payload commitment "+res.Entry.PayloadSHA256+" of event "+d.EventID, "SHA-256(salt ‖ document) = "+got)
	}
	return nil
}

func (r *pkgRun) checkSample(s *packageSample) (*ProofResult, error) {
	l := r.logs[s.Log]
	data, err := r.readListed(s.Proof, maxProofSize, CheckInclusion)
	if err != nil {
		return nil, err
	}
	bad := func(want, got string) (*ProofResult, error) { return nil, pkgErr(s.Proof, CheckInclusion, want, got) }
	ip, _, err := ledger.ParseProof(data)
	switch {
	case err != nil:
		return bad("an inclusion proof", err.Error())
	case ip == nil:
		return bad("an inclusion proof", "a consistency proof")
	case l.end == nil: // unreachable: samples are below end_size, and a log with entries has an end checkpoint
		return bad("a log with an end checkpoint", "none")
	}
	if ip.TreeSize != l.EndSize {
		return bad(fmt.Sprintf("a proof against tree size %d (the end checkpoint %s)", l.EndSize, l.EndCheckpoint), fmt.Sprintf("tree size %d", ip.TreeSize))
	}
	if ip.Checkpoint == "" {
		ip.Checkpoint = string(l.end)
	} else if body, _ := ledger.SplitNote([]byte(ip.Checkpoint)); !bytes.Equal(body, l.endBody) {
		return bad("a proof against the end checkpoint "+l.EndCheckpoint, "a proof against another checkpoint")
	}
	res, err := inclusion(ip, Options{Verifiers: r.opts.Verifiers, Origin: l.Origin})
	if err != nil {
		var mis *MismatchError
		if errors.As(err, &mis) {
			return nil, &PackageError{File: s.Proof, Check: CheckInclusion, Want: mis.Want, Got: mis.Got, Err: mis}
		}
		return nil, fmt.Errorf("inclusion proof %s: %w", s.Proof, err)
	}
	switch {
	case res.Log != s.Log || res.Index != s.Index:
		return bad(fmt.Sprintf("a proof of entry %d of log %q", s.Index, s.Log), fmt.Sprintf("entry %d of log %q", res.Index, res.Log))
	case res.Size != l.EndSize || res.Root != l.root:
		return bad(fmt.Sprintf("a proof against tree size %d, root %s", l.EndSize, l.root), fmt.Sprintf("tree size %d, root %s", res.Size, res.Root))
	case res.LeafHash.String() != s.LeafHash:
		return bad("leaf hash "+s.LeafHash+" (the sample's)", "leaf hash "+res.LeafHash.String())
	case res.Entry == nil:
		return bad("the entry included in the proof", "no entry")
	case res.Entry.ID != s.EventID:
		return bad("event id "+s.EventID+" (the sample's)", "event id "+res.Entry.ID)
	}
	return res, nil
}

// compareMember orders population members by (log, index).
func compareMember(log1 string, index1 uint64, log2 string, index2 uint64) int {
	if c := strings.Compare(log1, log2); c != 0 {
		return c
	}
	switch {
	case index1 < index2:
		return -1
	case index1 > index2:
		return 1
	}
	return 0
}

// popChecker checks a population file as it streams by: count lines, each
// a member below its log's end size, in strictly increasing (log, index)
// order, and every sample of the population among them. Its first failure
// is kept in fail, for step 4 to report. One goroutine uses it.
type popChecker struct {
	pop     *packagePopulation
	logs    map[string]*logState
	samples []*packageSample // sorted by (log, index)

	next    int // the next sample to find
	lines   uint64
	pending []byte // a line not yet ended
	have    bool   // last is set
	lastLog string
	lastIdx uint64
	fail    *PackageError
}

func (c *popChecker) failf(want, got string) {
	if c.fail == nil {
		c.fail = pkgErr(c.pop.File, CheckPopulation, want, got)
	}
}

func (c *popChecker) write(p []byte) {
	for len(p) > 0 && c.fail == nil {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(c.pending)+len(p) > maxMemberLine {
				c.failf(fmt.Sprintf("line %d: at most %d bytes", c.lines+1, maxMemberLine), "a longer line")
				return
			}
			c.pending = append(c.pending, p...)
			return
		}
		line := p[:i]
		if len(c.pending) > 0 {
			if len(c.pending)+len(line) > maxMemberLine {
				c.failf(fmt.Sprintf("line %d: at most %d bytes", c.lines+1, maxMemberLine), "a longer line")
				return
			}
			c.pending = append(c.pending, line...)
			line = c.pending
		}
		c.member(line)
		c.pending = c.pending[:0]
		p = p[i+1:]
	}
}

func (c *popChecker) finish() {
	if c.fail == nil && len(c.pending) > 0 {
		c.member(c.pending) // a last line without its newline
	}
	if c.fail == nil && c.lines != c.pop.Count {
		c.failf(fmt.Sprintf("%d lines (the count of population %q)", c.pop.Count, c.pop.ID), fmt.Sprintf("%d lines", c.lines))
	}
	if c.fail == nil && c.next < len(c.samples) {
		s := c.samples[c.next]
		c.failf(fmt.Sprintf("a member %s/%d (a sample of population %q)", s.Log, s.Index, c.pop.ID), "no such member")
	}
	c.pending = nil
}

func (c *popChecker) member(line []byte) {
	c.lines++
	n := c.lines
	if n > c.pop.Count {
		c.failf(fmt.Sprintf("%d lines (the count of population %q)", c.pop.Count, c.pop.ID), fmt.Sprintf("more than %d lines", c.pop.Count))
		return
	}
	var m struct {
		Log      *string `json:"log"`
		Index    *uint64 `json:"index"`
		EventID  *string `json:"event_id"`
		LeafHash *string `json:"leaf_hash"`
	}
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		c.failf(fmt.Sprintf("line %d: a JSON object", n), "not an object")
		return
	}
	if err := json.Unmarshal(trimmed, &m); err != nil {
		c.failf(fmt.Sprintf("line %d: a JSON object with log, index, event_id, leaf_hash", n), err.Error())
		return
	}
	if m.Log == nil || m.Index == nil || m.EventID == nil || m.LeafHash == nil {
		c.failf(fmt.Sprintf("line %d: a JSON object with log, index, event_id, leaf_hash", n), "a field missing")
		return
	}
	l := c.logs[*m.Log]
	switch {
	case l == nil:
		c.failf(fmt.Sprintf("line %d: a member of a log of the manifest", n), fmt.Sprintf("log %q", *m.Log))
		return
	case *m.Index >= l.EndSize:
		c.failf(fmt.Sprintf("line %d: an index below the end size %d of log %q", n, l.EndSize, *m.Log), strconv.FormatUint(*m.Index, 10))
		return
	case !ledger.ValidEventID(*m.EventID):
		c.failf(fmt.Sprintf("line %d: event_id a UUIDv7", n), strconv.Quote(*m.EventID))
		return
	}
	if _, err := ledger.DecodeHashes([]string{*m.LeafHash}); err != nil {
		c.failf(fmt.Sprintf("line %d: leaf_hash a base64 SHA-256 hash", n), strconv.Quote(*m.LeafHash))
		return
	}
	if c.have && compareMember(c.lastLog, c.lastIdx, *m.Log, *m.Index) >= 0 {
		c.failf(fmt.Sprintf("line %d: a member after %s/%d ((log, index) strictly increasing)", n, c.lastLog, c.lastIdx), fmt.Sprintf("%s/%d", *m.Log, *m.Index))
		return
	}
	c.have, c.lastLog, c.lastIdx = true, *m.Log, *m.Index
	for c.next < len(c.samples) {
		s := c.samples[c.next]
		switch compareMember(s.Log, s.Index, *m.Log, *m.Index) {
		case 1:
			return
		case -1:
			c.failf(fmt.Sprintf("a member %s/%d (a sample of population %q)", s.Log, s.Index, c.pop.ID), "no such member")
			return
		}
		if s.EventID != *m.EventID || s.LeafHash != *m.LeafHash {
			c.failf(fmt.Sprintf("line %d: event id %s, leaf hash %s (sample %s/%d)", n, s.EventID, s.LeafHash, s.Log, s.Index),
				fmt.Sprintf("event id %s, leaf hash %s", *m.EventID, *m.LeafHash))
			return
		}
		c.next++
	}
}

// step 5

// isOSCALDocument says whether a listed file is one of the package's OSCAL
// documents: catalog.json and the JSON files under oscal/.
func isOSCALDocument(p string) bool {
	return p == "catalog.json" || strings.HasPrefix(p, "oscal/") && strings.HasSuffix(p, ".json")
}

func (r *pkgRun) checkOSCAL(ctx context.Context) error {
	for _, f := range r.m.Files {
		if !isOSCALDocument(f.Path) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := r.readListed(f.Path, maxOSCALSize, CheckOSCALLink)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			return pkgErr(f.Path, CheckOSCALLink, "an OSCAL JSON document", err.Error())
		}
		if err := r.walkOSCAL(ctx, f.Path, doc); err != nil {
			return err
		}
	}
	return nil
}

// walkOSCAL finds every "back-matter" in an OSCAL document, in key order.
func (r *pkgRun) walkOSCAL(ctx context.Context, doc string, v any) error {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			var err error
			if k == "back-matter" {
				err = r.checkBackMatter(ctx, doc, v[k])
			} else {
				err = r.walkOSCAL(ctx, doc, v[k])
			}
			if err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := r.walkOSCAL(ctx, doc, e); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *pkgRun) checkBackMatter(ctx context.Context, doc string, bm any) error {
	bad := func(want, got string) error { return pkgErr(doc, CheckOSCALLink, want, got) }
	obj, ok := bm.(map[string]any)
	if !ok {
		return bad("back-matter: an object", fmt.Sprintf("%T", bm))
	}
	resources, ok := obj["resources"].([]any)
	if !ok && obj["resources"] != nil {
		return bad("back-matter.resources: an array", fmt.Sprintf("%T", obj["resources"]))
	}
	for i, res := range resources {
		res, ok := res.(map[string]any)
		if !ok {
			return bad(fmt.Sprintf("back-matter.resources[%d]: an object", i), fmt.Sprintf("%T", res))
		}
		rlinks, ok := res["rlinks"].([]any)
		if !ok && res["rlinks"] != nil {
			return bad(fmt.Sprintf("back-matter.resources[%d].rlinks: an array", i), fmt.Sprintf("%T", res["rlinks"]))
		}
		for j, link := range rlinks {
			where := fmt.Sprintf("back-matter.resources[%d].rlinks[%d]", i, j)
			link, ok := link.(map[string]any)
			if !ok {
				return bad(where+": an object", fmt.Sprintf("%T", link))
			}
			hashes, ok := link["hashes"].([]any)
			if !ok && link["hashes"] != nil {
				return bad(where+".hashes: an array", fmt.Sprintf("%T", link["hashes"]))
			}
			if len(hashes) == 0 {
				continue
			}
			href, ok := link["href"].(string)
			if !ok {
				return bad(where+".href: a string", fmt.Sprintf("%T", link["href"]))
			}
			if err := r.checkLink(ctx, doc, where, href, hashes); err != nil {
				return err
			}
		}
	}
	return nil
}

// oscalHashes are the hash algorithms OSCAL names.
var oscalHashes = map[string]func() hash.Hash{
	"SHA-224":  sha256.New224,
	"SHA-256":  sha256.New,
	"SHA-384":  sha512.New384,
	"SHA-512":  sha512.New,
	"SHA3-224": func() hash.Hash { return sha3.New224() },
	"SHA3-256": func() hash.Hash { return sha3.New256() },
	"SHA3-384": func() hash.Hash { return sha3.New384() },
	"SHA3-512": func() hash.Hash { return sha3.New512() },
}

// checkLink checks one hashed link: a fragment or an absolute URL is not a
// file of the package; anything else must resolve, relative to doc, to a
// listed file, and every hash (one at least SHA-256) must match it.
func (r *pkgRun) checkLink(ctx context.Context, doc, where, href string, hashes []any) error {
	bad := func(want, got string) error {
		return pkgErr(doc, CheckOSCALLink, fmt.Sprintf("%s %q: %s", where, href, want), got)
	}
	if strings.HasPrefix(href, "#") {
		return nil
	}
	u, err := url.Parse(href)
	if err != nil {
		return bad("a URI reference", err.Error())
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil {
		return nil // absolute: not a file of the package
	}
	if u.Path == "" || strings.HasPrefix(u.Path, "/") || strings.Contains(u.Path, `\`) {
		return bad("a path relative to the document", strconv.Quote(u.Path))
	}
	target := path.Join(path.Dir(doc), u.Path)
	if target == ".." || strings.HasPrefix(target, "../") {
		return bad("a file inside the package", "a path outside it: "+strconv.Quote(target))
	}
	f := r.files[target]
	if f == nil {
		return bad("a file listed in manifest.json", strconv.Quote(target)+", not listed")
	}
	sha256Seen := false
	for k, h := range hashes {
		h, ok := h.(map[string]any)
		alg, _ := h["algorithm"].(string)
		value, _ := h["value"].(string)
		if !ok || alg == "" || value == "" {
			return bad(fmt.Sprintf("hashes[%d]: an algorithm and a value", k), "neither")
		}
		alg = strings.ToUpper(alg)
		var want string
		if alg == "SHA-256" {
			sha256Seen = true
			want = f.SHA256
		} else {
			if oscalHashes[alg] == nil {
				return bad(fmt.Sprintf("hashes[%d]: an OSCAL hash algorithm", k), strconv.Quote(alg))
			}
			if want, err = r.digest(ctx, target, alg); err != nil {
				return err
			}
		}
		if !strings.EqualFold(value, want) {
			return bad(fmt.Sprintf("%s %s (the file %s)", alg, want, target), alg+" "+value)
		}
	}
	if !sha256Seen {
		return bad("a SHA-256 hash", "none")
	}
	r.res.OSCALLinks++
	return nil
}

// digest computes a listed file's digest with an OSCAL algorithm other than
// SHA-256, checking its SHA-256 on the way.
func (r *pkgRun) digest(ctx context.Context, name, alg string) (string, error) {
	if d, ok := r.digests[[2]string{name, alg}]; ok {
		return d, nil
	}
	f := r.files[name]
	file, err := r.fsys.Open(name)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", name, err)
	}
	defer file.Close()
	h, s := oscalHashes[alg](), sha256.New()
	n, err := io.Copy(io.MultiWriter(h, s), &ctxReader{ctx, io.LimitReader(file, f.Size+1)})
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	if got := hex.EncodeToString(s.Sum(nil)); n != f.Size || got != f.SHA256 {
		return "", pkgErr(name, CheckHash, "SHA-256 "+f.SHA256+" (the file hashed before)", "SHA-256 "+got+" (the file changed)")
	}
	d := hex.EncodeToString(h.Sum(nil))
	if r.digests == nil {
		r.digests = map[[2]string]string{}
	}
	r.digests[[2]string{name, alg}] = d
	return d, nil
}

// ctxReader stops a read when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
