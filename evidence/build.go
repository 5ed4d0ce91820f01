// Package evidence reads a tenant's ledger for a period, evaluates the
// evidence rules of a framework's controls over it, and writes the assessor
// package that `aigw verify` checks offline (format: PACKAGE.md).
//
// One pass per log does everything: verify.Log re-derives the log from
// index 0 to the period's end checkpoint (entries, chain, tiles, every
// signed checkpoint) while its Scan hook sorts the period's entries into
// populations, in parallel; the Fold hook merges them in index order, so
// the population files, the samples (the members with the smallest keyed
// hash) and everything derived from them are the same bytes on every run.
// Memory is bounded by the blocks in flight, not by the log.
package evidence

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"aigw/controls"
	"aigw/ledger"
	"aigw/verify"

	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/note"
)

// Reader is the part of a ledger.Store an export reads.
type Reader interface {
	verify.StoreReader
}

// Config says what to export.
type Config struct {
	Store     Reader
	Framework string
	Tenant    string
	// From and To bound the period: entries with From <= time < To.
	From, To time.Time
	// Signer signs the manifest: the deployment's checkpoint key.
	Signer note.Signer
	// VerifierKey is Signer's note verifier key, written into the package.
	VerifierKey string
	// Verifiers check the logs' checkpoints (the deployment's keys, old and new).
	Verifiers note.Verifiers
	// Generator names the software ("aigw <version>").
	Generator string
	// Skew is how far the times of a log's entries may run out of index
	// order (gateways' clocks, batching). Default 5 minutes.
	Skew time.Duration
	// Samples is how many members of each population are sampled with an
	// inclusion proof. Default 25.
	Samples int
	// Workers is passed to verify (default: verify's).
	Workers int
	// Render renders the OSCAL documents (package oscal's Render); nil
	// writes no OSCAL (tests of the evidence alone).
	Render func(r *Report, cat *controls.Catalog, files map[string]string) (map[string][]byte, error)
}

// ManifestFormat is the first line of a package's signed manifest note and
// the manifest's "format".
const ManifestFormat = "aigw-assessor-package/1"

// namespace is the UUIDv5 namespace of package ids.
var namespace = uuid.MustParse("4f0bd0a4-3c1e-5b8e-9a57-1d9f0e6f2c11")

// Build reads the ledger, evaluates the framework and writes the package
// into the directory out, which must not exist or be empty. It returns the
// report. A log that fails verification does not stop the export: the
// integrity rule is then not satisfied and says why, so that the auditor
// sees the failure; every other error does.
func Build(ctx context.Context, cfg Config, out string) (*Report, error) {
	cat, err := controls.Load(cfg.Framework)
	if err != nil {
		return nil, err
	}
	if !ledger.ValidLogName(cfg.Tenant) || cfg.Tenant == ledger.SystemLog {
		return nil, fmt.Errorf("evidence: %q is not a tenant log", cfg.Tenant)
	}
	if !cfg.From.Before(cfg.To) {
		return nil, errors.New("evidence: the period is empty (from must be before to)")
	}
	if cfg.Skew <= 0 {
		cfg.Skew = 5 * time.Minute
	}
	if cfg.Samples <= 0 {
		cfg.Samples = 25
	}
	if err := emptyDir(out); err != nil {
		return nil, err
	}
	w := &writer{root: out, files: map[string]fileInfo{}}
	b := &builder{cfg: cfg, cat: cat, w: w}
	return b.run(ctx)
}

type fileInfo struct {
	sha  string
	size int64
}

// writer writes package files and remembers their hashes.
type writer struct {
	root  string
	files map[string]fileInfo
}

func (w *writer) write(path string, data []byte) error {
	full := filepath.Join(w.root, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(full, data, 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	w.files[path] = fileInfo{hex.EncodeToString(sum[:]), int64(len(data))}
	return nil
}

func (w *writer) writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return w.write(path, append(b, '\n'))
}

// stream is a package file written line by line.
type stream struct {
	f    *os.File
	bw   *bufio.Writer
	h    hash.Hash
	n    int64
	path string
}

func (w *writer) create(path string) (*stream, error) {
	full := filepath.Join(w.root, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(full)
	if err != nil {
		return nil, err
	}
	return &stream{f: f, bw: bufio.NewWriterSize(f, 1<<16), h: sha256.New(), path: path}, nil
}

func (s *stream) Write(p []byte) (int, error) {
	s.h.Write(p)
	s.n += int64(len(p))
	return s.bw.Write(p)
}

func (w *writer) close(s *stream) error {
	err := s.bw.Flush()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	w.files[s.path] = fileInfo{hex.EncodeToString(s.h.Sum(nil)), s.n}
	return err
}

func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return os.MkdirAll(dir, 0o755)
	case err != nil:
		return err
	case len(ents) > 0:
		return fmt.Errorf("evidence: %s is not empty", dir)
	}
	return nil
}

type builder struct {
	cfg Config
	cat *controls.Catalog
	w   *writer

	report  *Report
	seed    [32]byte
	streams map[int]*stream
	// merged results
	counts       [16]uint64
	candsByLog   map[string]*[16][]cand
	sampleLeaf   map[sampleKey]ledger.Hash
	policies     map[string]*PolicyInForce
	attestations []attestation
	incidents    []incident
	guardChecks  uint64            // the checks' decisions in guardrail events
	open         map[string]uint64 // trace id → index of a request with no outcome yet
	logStats     map[string]*logStats
}

// logStats are a log's scan results beyond populations.
type logStats struct {
	rng           *LogRange
	regressions   uint64
	maxRegression time.Duration
	regressionAt  uint64
	lastTime      string
	after         uint64
	incomplete    uint64
	incompleteAt  uint64
	invalid       uint64
	invalidAt     uint64
	openAtEnd     uint64
	firstOpen     uint64
	firstTime     string
	scanned       uint64
	lastUS        int64 // time of the last entry of the period seen
	maxGap        int64
	maxGapAt      uint64
	verifyErr     error
	periodClosed  bool
}

func (b *builder) run(ctx context.Context) (*Report, error) {
	cfg := b.cfg
	logs := []string{cfg.Tenant, ledger.SystemLog}
	sort.Strings(logs)
	b.report = &Report{
		Framework: cfg.Framework, CatalogTitle: b.cat.Title, CatalogVersion: b.cat.Version,
		Tenant: cfg.Tenant, From: cfg.From.UTC(), To: cfg.To.UTC(), Generated: cfg.To.UTC(),
		Generator: cfg.Generator, VerifierKey: cfg.VerifierKey,
	}
	b.streams = map[int]*stream{}
	b.candsByLog = map[string]*[16][]cand{}
	b.sampleLeaf = map[sampleKey]ledger.Hash{}
	b.policies = map[string]*PolicyInForce{}
	b.open = map[string]uint64{}
	b.logStats = map[string]*logStats{}

	// Bounds and checkpoints first: the package id (and so the sampling
	// seed) derives from the end checkpoints.
	ranges := make([]*LogRange, len(logs))
	ends := make([][]byte, len(logs))
	starts := make([][]byte, len(logs))
	for i, log := range logs {
		r, start, end, closed, err := b.bounds(ctx, log)
		if err != nil {
			return nil, err
		}
		ranges[i], starts[i], ends[i] = r, start, end
		r.Closed = closed
		b.logStats[log] = &logStats{rng: r, periodClosed: closed}
	}
	idSrc := fmt.Sprintf("%s\n%s\n%s\n%s\n", cfg.Framework, cfg.Tenant, b.report.From.Format(time.RFC3339Nano), b.report.To.Format(time.RFC3339Nano))
	for _, r := range ranges {
		idSrc += fmt.Sprintf("%s %d %s\n", r.Log, r.EndSize, r.EndRoot)
	}
	b.report.PackageID = uuid.NewSHA1(namespace, []byte(idSrc)).String()
	b.seed = sha256.Sum256([]byte("aigw-sample\n" + b.report.PackageID))

	for i, log := range logs {
		if err := b.scanLog(ctx, log, ends[i]); err != nil {
			return nil, err
		}
		if err := b.writeCheckpoints(ctx, ranges[i], starts[i], ends[i]); err != nil {
			return nil, err
		}
		if st := b.logStats[log]; st.maxGap > 0 {
			ranges[i].MaxGap = (time.Duration(st.maxGap) * time.Microsecond).String()
			ranges[i].MaxGapAt = st.maxGapAt
		}
		b.report.Logs = append(b.report.Logs, *ranges[i])
	}
	for _, s := range b.streams {
		if err := b.w.close(s); err != nil {
			return nil, err
		}
	}
	if err := b.populations(ctx); err != nil {
		return nil, err
	}
	if err := b.documents(ctx); err != nil {
		return nil, err
	}
	b.evaluate()
	return b.report, b.finish()
}

// timeAt reads the time of entry i of a log.
func (b *builder) timeAt(ctx context.Context, log string, i uint64) (string, error) {
	es, err := b.cfg.Store.ReadEntries(ctx, log, i, 1)
	if err != nil {
		return "", err
	}
	if len(es) != 1 {
		return "", fmt.Errorf("evidence: entry %d of log %s is missing", i, log)
	}
	return string(parseFields(es[0].Data).time), nil
}

// firstAtOrAfter finds, by binary search over [0, size), the first index
// whose time is at or after t, assuming times in index order (they are,
// within the skew tolerance that callers add to t).
func (b *builder) firstAtOrAfter(ctx context.Context, log string, size uint64, t string) (uint64, error) {
	lo, hi := uint64(0), size
	for lo < hi {
		mid := lo + (hi-lo)/2
		tm, err := b.timeAt(ctx, log, mid)
		if err != nil {
			return 0, err
		}
		if tm >= t {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

// checkpointWindow bounds the stored checkpoints read to find one near an
// index: every sequencer batch writes one, and batches are far smaller.
const checkpointWindow = 1 << 16

// bounds picks a log's start and end checkpoints for the period: the end
// checkpoint is the first stored one at or after the first entry dated
// To+Skew (all the period's entries are before it), the start checkpoint
// the last one at or before the first entry dated From-Skew.
func (b *builder) bounds(ctx context.Context, log string) (r *LogRange, start, end []byte, closed bool, err error) {
	head, err := b.cfg.Store.Head(ctx, log)
	if err != nil {
		return nil, nil, nil, false, err
	}
	r = &LogRange{Log: log}
	if head.Size == 0 {
		return r, nil, nil, true, nil
	}
	f := func(t time.Time) string { return t.UTC().Format(ledger.TimeFormat) }
	nEnd, err := b.firstAtOrAfter(ctx, log, head.Size, f(b.cfg.To.Add(b.cfg.Skew)))
	if err != nil {
		return nil, nil, nil, false, err
	}
	end = head.Checkpoint
	if nEnd < head.Size {
		cps, err := b.cfg.Store.Checkpoints(ctx, log, max(nEnd, 1), min(nEnd+checkpointWindow, head.Size))
		if err != nil {
			return nil, nil, nil, false, err
		}
		if len(cps) > 0 {
			end, closed = cps[0], true
		}
	}
	endCP, err := checkpointBody(end)
	if err != nil {
		return nil, nil, nil, false, fmt.Errorf("evidence: checkpoint of log %s: %w", log, err)
	}
	r.Origin, r.EndSize, r.EndRoot = endCP.Origin, endCP.Size, endCP.Root.String()
	nStart, err := b.firstAtOrAfter(ctx, log, endCP.Size, f(b.cfg.From.Add(-b.cfg.Skew)))
	if err != nil {
		return nil, nil, nil, false, err
	}
	if nStart > 0 {
		lo := uint64(1)
		if nStart > checkpointWindow {
			lo = nStart - checkpointWindow
		}
		cps, err := b.cfg.Store.Checkpoints(ctx, log, lo, nStart)
		if err != nil {
			return nil, nil, nil, false, err
		}
		if len(cps) > 0 {
			start = cps[len(cps)-1]
			sc, err := checkpointBody(start)
			if err != nil {
				return nil, nil, nil, false, fmt.Errorf("evidence: checkpoint of log %s: %w", log, err)
			}
			r.StartSize = sc.Size
		}
	}
	return r, start, end, closed, nil
}

func checkpointBody(signed []byte) (ledger.Checkpoint, error) {
	body, err := ledger.SplitNote(signed)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	return ledger.ParseCheckpointBody(body)
}

// scanLog verifies a log up to its end checkpoint and scans it.
func (b *builder) scanLog(ctx context.Context, log string, end []byte) error {
	st := b.logStats[log]
	if end == nil {
		return nil
	}
	sc := &scanner{log: log, tenant: b.cfg.Tenant, system: log == ledger.SystemLog,
		from: b.report.From.Format(ledger.TimeFormat), to: b.report.To.Format(ledger.TimeFormat),
		skew: b.cfg.Skew, seed: b.seed, k: b.cfg.Samples}
	res, err := verify.Log(ctx, verify.StoreSource(b.cfg.Store), log, verify.Options{
		Verifiers: b.cfg.Verifiers, Checkpoint: end, Workers: b.cfg.Workers,
		Scan: sc.scan,
		Fold: func(v any) error { return b.fold(log, st, v.(*blockScan)) },
	})
	var mis *verify.MismatchError
	switch {
	case errors.As(err, &mis):
		st.verifyErr = mis
		st.rng.Error = mis.Error()
	case err != nil:
		return fmt.Errorf("evidence: reading log %s: %w", log, err)
	default:
		st.rng.Verified = true
		st.rng.Checkpoints = res.CheckpointsChecked
	}
	st.openAtEnd = uint64(len(b.open))
	for _, idx := range b.open {
		if st.openAtEnd > 0 && (st.firstOpen == 0 || idx < st.firstOpen) {
			st.firstOpen = idx
		}
	}
	clear(b.open)
	return nil
}

// fold merges a block's scan, in index order.
func (b *builder) fold(log string, st *logStats, s *blockScan) error {
	st.scanned += s.n
	if s.firstTime != "" && st.lastTime != "" && s.firstTime < st.lastTime {
		s.regress(s.start, st.lastTime, s.firstTime, b.cfg.Skew) // across the blocks' boundary
	}
	if s.lastTime != "" {
		st.lastTime = s.lastTime
	}
	st.regressions += s.regressions
	if s.maxRegression > st.maxRegression {
		st.maxRegression, st.regressionAt = s.maxRegression, s.regressionAt
	}
	st.after += s.after
	if s.incomplete > 0 && st.incomplete == 0 {
		st.incompleteAt = s.incompleteAt
	}
	st.incomplete += s.incomplete
	if s.invalid > 0 && st.invalid == 0 {
		st.invalidAt = s.invalidAt
	}
	st.invalid += s.invalid
	if s.inPeriod > 0 {
		if st.rng.InPeriod == 0 {
			st.rng.FirstIndex = s.firstIdx
		} else if g := s.firstUS - st.lastUS; g > st.maxGap {
			st.maxGap, st.maxGapAt = g, s.firstIdx
		}
		if s.maxGap > st.maxGap {
			st.maxGap, st.maxGapAt = s.maxGap, s.maxGapAt
		}
		st.lastUS = s.lastUS
		st.rng.LastIndex = s.lastIdx
		st.rng.InPeriod += s.inPeriod
	}
	for k, p := range s.policies {
		key := log + "\x00" + k
		if q := b.policies[key]; q != nil {
			q.Events += p.Events
			q.LastIndex = p.LastIndex
		} else {
			b.policies[key] = p
		}
	}
	for _, c := range s.closes {
		delete(b.open, c)
	}
	for _, o := range s.opens {
		b.open[o.trace] = o.index
	}
	for i := range pops {
		b.counts[i] += s.counts[i]
		cs := b.candsByLog[log]
		if cs == nil {
			cs = new([16][]cand)
			b.candsByLog[log] = cs
		}
		for _, c := range s.cands[i] {
			cs[i] = addCand(cs[i], c, b.cfg.Samples)
		}
	}
	for _, m := range s.members {
		st, err := b.stream(m.pop)
		if err != nil {
			return err
		}
		if _, err := st.Write(m.line); err != nil {
			return err
		}
	}
	b.attestations = append(b.attestations, s.attestationMembers...)
	b.incidents = append(b.incidents, s.incidentMembers...)
	b.guardChecks += s.guardChecks
	return nil
}

func (b *builder) stream(pop int) (*stream, error) {
	if s := b.streams[pop]; s != nil {
		return s, nil
	}
	s, err := b.w.create(popFile(pops[pop].id))
	if err != nil {
		return nil, err
	}
	b.streams[pop] = s
	return s, nil
}

func popFile(id string) string { return "populations/" + id + ".jsonl" }

func checkpointPath(log string, size uint64) string {
	return fmt.Sprintf("checkpoints/%s/%d", log, size)
}

// writeCheckpoints writes a log's start and end checkpoints and the
// consistency proof between them.
func (b *builder) writeCheckpoints(ctx context.Context, r *LogRange, start, end []byte) error {
	if end == nil {
		return nil
	}
	r.EndCheckpoint = checkpointPath(r.Log, r.EndSize)
	if err := b.w.write(r.EndCheckpoint, end); err != nil {
		return err
	}
	if start == nil {
		return nil
	}
	r.StartCheckpoint = checkpointPath(r.Log, r.StartSize)
	if err := b.w.write(r.StartCheckpoint, start); err != nil {
		return err
	}
	if r.StartSize == r.EndSize {
		return nil
	}
	hashes, err := ledger.ConsistencyProof(ctx, verify.StoreSource(b.cfg.Store), r.Log, r.StartSize, r.EndSize)
	if err != nil {
		return fmt.Errorf("evidence: consistency proof of log %s from %d to %d: %w", r.Log, r.StartSize, r.EndSize, err)
	}
	r.Consistency = fmt.Sprintf("proofs/%s/consistency-%d-%d.json", r.Log, r.StartSize, r.EndSize)
	return b.w.writeJSON(r.Consistency, ledger.ConsistencyProofJSON{Log: r.Log, Size1: r.StartSize, Size2: r.EndSize,
		Hashes: ledger.EncodeHashes(hashes), Checkpoint: string(end)})
}

// populations fills the report's populations and writes the samples'
// inclusion proofs.
func (b *builder) populations(ctx context.Context) error {
	logs := make([]string, 0, len(b.report.Logs))
	ends := map[string]*LogRange{}
	for i := range b.report.Logs {
		r := &b.report.Logs[i]
		logs = append(logs, r.Log)
		ends[r.Log] = r
	}
	for i, p := range pops {
		pop := Population{ID: p.id, Title: p.title, Count: b.counts[i], Query: b.query(p)}
		if p.system {
			pop.Logs = []string{ledger.SystemLog}
		} else if p.id == PopAttestations {
			pop.Logs = logs
		} else {
			pop.Logs = []string{b.cfg.Tenant}
		}
		if p.listed && pop.Count > 0 {
			pop.File = popFile(p.id)
			pop.SHA256 = b.w.files[pop.File].sha
		}
		// The samples: the members with the smallest keys over all logs.
		var all []struct {
			log string
			c   cand
		}
		for _, log := range logs {
			if cs := b.candsByLog[log]; cs != nil {
				for _, c := range cs[i] {
					all = append(all, struct {
						log string
						c   cand
					}{log, c})
				}
			}
		}
		slices.SortFunc(all, func(x, y struct {
			log string
			c   cand
		}) int {
			switch {
			case x.c.key < y.c.key:
				return -1
			case x.c.key > y.c.key:
				return 1
			}
			return strings.Compare(x.log, y.log)
		})
		if len(all) > b.cfg.Samples {
			all = all[:b.cfg.Samples]
		}
		slices.SortFunc(all, func(x, y struct {
			log string
			c   cand
		}) int {
			if c := strings.Compare(x.log, y.log); c != 0 {
				return c
			}
			return int(x.c.index) - int(y.c.index)
		})
		for _, s := range all {
			r := ends[s.log]
			path, err := b.inclusion(ctx, r, s.c.index)
			if err != nil {
				return err
			}
			pop.Samples = append(pop.Samples, Sample{Log: s.log, Index: s.c.index, EventID: s.c.id, Proof: path})
			b.sampleLeaf[sampleKey{s.log, s.c.index}] = s.c.leaf
		}
		b.report.Populations = append(b.report.Populations, pop)
	}
	for _, p := range b.policies {
		b.report.Policies = append(b.report.Policies, *p)
	}
	slices.SortFunc(b.report.Policies, func(x, y PolicyInForce) int {
		if c := strings.Compare(x.Log, y.Log); c != 0 {
			return c
		}
		return int(x.FirstIndex) - int(y.FirstIndex)
	})
	return nil
}

func (b *builder) query(p popDef) string {
	logs := fmt.Sprintf("log = %q", b.cfg.Tenant)
	if p.system {
		logs = `log = "system"`
	}
	if p.id == PopAttestations {
		logs = fmt.Sprintf("log IN (%q, \"system\")", b.cfg.Tenant)
	}
	where := strings.ReplaceAll(p.where, "TENANT", fmt.Sprintf("%q", b.cfg.Tenant))
	return fmt.Sprintf("SELECT entries FROM %s WHERE %s AND %q <= time < %q AND index < end_size(log) ORDER BY log, index",
		logs, where, b.report.From.Format(ledger.TimeFormat), b.report.To.Format(ledger.TimeFormat))
}

// payloadReader is a Reader that holds payloads (a ledger.Store does).
type payloadReader interface {
	ReadPayload(ctx context.Context, log string, index uint64) (ledger.Payload, error)
}

// documents writes the documents attached to the period's attestations,
// each with its entry's inclusion proof.
func (b *builder) documents(ctx context.Context) error {
	b.report.Documents = []Document{}
	pr, ok := b.cfg.Store.(payloadReader)
	if !ok {
		return nil
	}
	ends := map[string]*LogRange{}
	for i := range b.report.Logs {
		ends[b.report.Logs[i].Log] = &b.report.Logs[i]
	}
	atts := slices.Clone(b.attestations)
	slices.SortFunc(atts, func(x, y attestation) int {
		if c := strings.Compare(x.Log, y.Log); c != 0 {
			return c
		}
		return int(x.Index) - int(y.Index)
	})
	for _, a := range atts {
		if a.Payload == "" {
			continue
		}
		proof, err := b.inclusion(ctx, ends[a.Log], a.Index)
		if err != nil {
			return err
		}
		d := Document{Log: a.Log, Index: a.Index, EventID: a.EventID, Proof: proof}
		p, err := pr.ReadPayload(ctx, a.Log, a.Index)
		switch {
		case errors.Is(err, ledger.ErrPayloadErased):
			d.Erased = true
		case err != nil:
			return fmt.Errorf("evidence: the document of attestation %s: %w", a.EventID, err)
		default:
			d.File = fmt.Sprintf("documents/%s/%d", a.Log, a.Index)
			d.Salt = base64.StdEncoding.EncodeToString(p.Salt)
			if err := b.w.write(d.File, p.Data); err != nil {
				return err
			}
		}
		b.report.Documents = append(b.report.Documents, d)
	}
	return nil
}

type sampleKey struct {
	log   string
	index uint64
}

// inclusion writes the inclusion proof of an entry against its log's end
// checkpoint, once.
func (b *builder) inclusion(ctx context.Context, r *LogRange, index uint64) (string, error) {
	path := fmt.Sprintf("proofs/%s/inclusion-%d.json", r.Log, index)
	if _, ok := b.w.files[path]; ok {
		return path, nil
	}
	es, err := b.cfg.Store.ReadEntries(ctx, r.Log, index, 1)
	if err != nil || len(es) != 1 {
		return "", fmt.Errorf("evidence: reading entry %d of log %s: %v", index, r.Log, err)
	}
	hashes, err := ledger.InclusionProof(ctx, verify.StoreSource(b.cfg.Store), r.Log, index, r.EndSize)
	if err != nil {
		return "", fmt.Errorf("evidence: inclusion proof of entry %d of log %s: %w", index, r.Log, err)
	}
	end, err := os.ReadFile(filepath.Join(b.w.root, filepath.FromSlash(r.EndCheckpoint)))
	if err != nil {
		return "", err
	}
	leaf := ledger.LeafHash(es[0].Data)
	b.sampleLeaf[sampleKey{r.Log, index}] = leaf
	return path, b.w.writeJSON(path, ledger.InclusionProofJSON{Log: r.Log, Index: index, TreeSize: r.EndSize,
		LeafHash: leaf.String(), Hashes: ledger.EncodeHashes(hashes), Checkpoint: string(end),
		Entry: encodeEntry(es[0].Data)})
}

var _ io.Writer = (*stream)(nil)

func encodeEntry(e []byte) string { return base64.StdEncoding.EncodeToString(e) }
