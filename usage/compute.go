package usage

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"aigw/ledger"
	"aigw/verify"

	"golang.org/x/mod/sumdb/note"
)

// Params says which statement to compute.
type Params struct {
	// Tenant names the log. Required.
	Tenant string
	// From and To bound the period: calls whose outcome event is dated
	// From <= time < To. Whole microseconds (the ledger's precision).
	From, To time.Time
	// Team, when set, restricts the statement to the calls and budget
	// settlements whose events carry attrs.team == Team.
	Team string
	// By adds dimensions to the lines beyond provider, upstream model and
	// price version: any of ByTeam, ByKey, ByAgent.
	By []string
	// Skew is how far entry times may run out of index order (gateway
	// clocks, batching). Default 5 minutes, as for evidence.
	Skew time.Duration
	// Verifiers, when set, are the trusted checkpoint keys: Compute then
	// verifies the log (verify.Log: every entry, the chain, the tiles,
	// every checkpoint) up to the source's latest checkpoint, checks that
	// it extends the statement's checkpoint, and that the entries the
	// statement was computed from are the verified ones. Sign a statement
	// only after such a Compute.
	Verifiers note.Verifiers
	// Origin is the expected checkpoint origin (see verify.Options.Origin).
	Origin string
	// Workers is how many blocks of entries are read and added up at once
	// (default GOMAXPROCS).
	Workers int
}

// DefaultSkew is the default Params.Skew.
const DefaultSkew = 5 * time.Minute

func (p *Params) check() (dimMask, error) {
	if !ledger.ValidLogName(p.Tenant) || p.Tenant == ledger.SystemLog {
		return 0, fmt.Errorf("usage: %q is not a tenant log", p.Tenant)
	}
	if !p.From.Before(p.To) {
		return 0, errors.New("usage: the period is empty (from must be before to)")
	}
	for _, t := range []time.Time{p.From, p.To} {
		if t.Nanosecond()%1000 != 0 {
			return 0, fmt.Errorf("usage: period bound %s is not a whole number of microseconds", t)
		}
		if y := t.UTC().Year(); y < 2000 || y > 9999 {
			return 0, fmt.Errorf("usage: period bound %s out of range", t)
		}
	}
	if p.Skew < 0 {
		return 0, errors.New("usage: negative skew")
	}
	if p.Skew == 0 {
		p.Skew = DefaultSkew
	}
	if err := ledger.CheckText("team", p.Team); err != nil {
		return 0, fmt.Errorf("usage: %w", err)
	}
	by, err := parseDims(p.By)
	if err != nil {
		return 0, err
	}
	return 1<<dProvider | 1<<dModel | 1<<dPriceVersion | by, nil
}

// Compute computes the statement of a tenant's usage for a period from
// the log in src (a store through verify.StoreSource, an export directory
// through verify.DirSource, or a read API through verify.HTTPSource).
//
// It cites the first checkpoint of the log that includes an entry dated at
// or after To+Skew (the period is then closed), or else the latest one
// (Ledger.PeriodClosed false), and reads the log up to that checkpoint
// only, so the statement of a closed period never changes as the log
// grows. With Params.Verifiers it also verifies the log (see Params).
func Compute(ctx context.Context, src verify.Source, p Params) (*Statement, error) {
	mask, err := p.check()
	if err != nil {
		return nil, err
	}
	st, b, err := compute(ctx, src, &p, mask, nil, p.Verifiers != nil)
	if err != nil {
		return nil, err
	}
	if p.Verifiers != nil {
		if err := b.check(ctx, src, p.Verifiers, p.Origin, p.Workers); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// binding is what ties a computed statement to the verified log: the
// entries [start, size) it read and the digest of their chunk digests.
type binding struct {
	log        string
	checkpoint []byte
	start      uint64
	size       uint64
	digest     ledger.Hash
}

// check verifies the log in src up to its latest checkpoint, that it
// extends the binding's checkpoint, and that the entries the statement was
// computed from are the ones verified. A tampered log returns the
// *verify.MismatchError naming the entry.
func (b *binding) check(ctx context.Context, src verify.Source, vs note.Verifiers, origin string, workers int) error {
	h := sha256.New()
	_, err := verify.Log(ctx, src, b.log, verify.Options{
		Verifiers: vs, Origin: origin, Old: b.checkpoint, Workers: workers,
		Scan: func(start uint64, entries [][]byte) any {
			var out []ledger.Hash
			for c := start; c < start+uint64(len(entries)); c += ledger.TileWidth {
				if c < b.start || c >= b.size {
					continue
				}
				end := min(c+ledger.TileWidth, b.size, start+uint64(len(entries)))
				out = append(out, chunkDigest(entries[c-start:end-start]))
			}
			return out
		},
		Fold: func(v any) error {
			for _, d := range v.([]ledger.Hash) {
				h.Write(d[:])
			}
			return nil
		},
	})
	if err != nil {
		var mis *verify.MismatchError
		if errors.As(err, &mis) {
			return fmt.Errorf("usage: the ledger does not verify: %w", err)
		}
		return fmt.Errorf("usage: verifying log %s: %w", b.log, err)
	}
	if got := ledger.Hash(h.Sum(nil)); got != b.digest {
		return fmt.Errorf("usage: the source served entries [%d, %d) of log %s that differ from the verified log", b.start, b.size, b.log)
	}
	return nil
}

// checkpointWindow bounds the stored checkpoints read to find the one
// after an index: every sequencer batch writes one, and batches are far smaller.
const checkpointWindow = 1 << 16

// compute computes the statement. pin, when set, is the checkpoint to
// compute it at (Verify's recomputation); else it is chosen as Compute says.
func compute(ctx context.Context, src verify.Source, p *Params, mask dimMask, pin []byte, bind bool) (*Statement, *binding, error) {
	log := p.Tenant
	headNote, err := src.ReadCheckpoint(ctx, log)
	if err != nil && (pin == nil || !errors.Is(err, ledger.ErrNotFound)) {
		return nil, nil, fmt.Errorf("usage: checkpoint of log %s: %w", log, err)
	}
	var head ledger.Checkpoint
	if headNote != nil {
		if head, err = checkpointBody(headNote); err != nil {
			return nil, nil, fmt.Errorf("usage: checkpoint of log %s: %w", log, err)
		}
	}
	f := func(t time.Time) string { return t.UTC().Format(ledger.TimeFormat) }
	end := pin
	if end == nil {
		end = headNote
		r := newReader(src, log, head.Size, head.Size)
		n, err := r.firstAtOrAfter(ctx, f(p.To.Add(p.Skew)))
		if err != nil {
			return nil, nil, err
		}
		if lister, ok := src.(verify.CheckpointLister); ok && n < head.Size {
			cps, err := lister.ReadCheckpoints(ctx, log, n+1, min(n+checkpointWindow, head.Size))
			if err != nil {
				return nil, nil, fmt.Errorf("usage: checkpoints of log %s: %w", log, err)
			}
			if len(cps) > 0 {
				end = cps[0]
			}
		}
	}
	cp, err := checkpointBody(end)
	if err != nil {
		return nil, nil, fmt.Errorf("usage: checkpoint of log %s: %w", log, err)
	}
	if pin != nil && head.Size < cp.Size {
		return nil, nil, fmt.Errorf("usage: the source holds %d entries of log %s, the statement's checkpoint %d", head.Size, log, cp.Size)
	}
	size := cp.Size
	r := newReader(src, log, size, max(head.Size, size))

	st := &Statement{
		Format: Format, Tenant: log, Team: p.Team, From: formatTime(p.From), To: formatTime(p.To),
		GroupBy: mask.names(), Skew: p.Skew.String(),
		Ledger: Ledger{Log: log, Origin: cp.Origin, Checkpoint: Checkpoint{Size: size, Root: cp.Root.String(), Note: string(end)}},
	}
	nEnd, err := r.firstAtOrAfter(ctx, f(p.To.Add(p.Skew)))
	if err != nil {
		return nil, nil, err
	}
	st.Ledger.PeriodClosed = nEnd < size
	nStart, err := r.firstAtOrAfter(ctx, f(p.From.Add(-p.Skew)))
	if err != nil {
		return nil, nil, err
	}
	c := newScanCfg(log, p.From, p.To, nStart, p.Team, mask, true)
	c.bind = bind
	a1 := nStart / ledger.TileWidth * ledger.TileWidth
	s := &scan{r: r, cfg: c, workers: p.Workers, acc: newPartial()}
	if err := s.run(ctx, a1, size); err != nil {
		return nil, nil, err
	}
	digests := s.digests
	// The budget windows that began before the period: read back to their
	// start (less the skew), for their settlements only.
	start := a1
	var first time.Time
	for _, w := range s.acc.windows {
		if !w.touched {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, w.WindowStart)
		if err != nil {
			continue // not a time: no start to read back to; the sums cover what was read
		}
		if t.Before(p.From) && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	if !first.IsZero() {
		back, err := r.firstAtOrAfter(ctx, f(first.Add(-p.Skew)))
		if err != nil {
			return nil, nil, err
		}
		if a2 := back / ledger.TileWidth * ledger.TileWidth; a2 < a1 {
			s2 := &scan{r: r, cfg: c, workers: p.Workers, acc: s.acc}
			if err := s2.run(ctx, a2, a1); err != nil {
				return nil, nil, err
			}
			digests = append(s2.digests, digests...)
			start = a2
		}
	}
	st.Ledger.ScanFrom = start
	if err := s.acc.result(st, mask); err != nil {
		return nil, nil, err
	}
	b := &binding{log: log, checkpoint: end, start: start, size: size}
	if bind {
		h := sha256.New()
		for _, d := range digests {
			h.Write(d[:])
		}
		b.digest = ledger.Hash(h.Sum(nil))
	}
	return st, b, nil
}

func checkpointBody(signed []byte) (ledger.Checkpoint, error) {
	body, err := ledger.SplitNote(signed)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	return ledger.ParseCheckpointBody(body)
}

// reader reads the entries of a log of a given size from a source: in
// bulk from an EntryReader (a store), else from entry bundles.
type reader struct {
	src  verify.Source
	er   verify.EntryReader
	log  string
	size uint64 // the size read at
	// headSize is the source's size; a partial bundle at size may be
	// served only at headSize's width (an export made later).
	headSize uint64
}

func newReader(src verify.Source, log string, size, headSize uint64) *reader {
	r := &reader{src: src, log: log, size: size, headSize: headSize}
	r.er, _ = src.(verify.EntryReader)
	return r
}

// read appends the entries [start, end) to dst.
func (r *reader) read(ctx context.Context, start, end uint64, dst [][]byte) ([][]byte, error) {
	if end > r.size || start > end {
		return nil, fmt.Errorf("usage: read [%d, %d) beyond log %s of size %d", start, end, r.log, r.size)
	}
	if r.er != nil {
		for next := start; next < end; {
			es, err := r.er.ReadEntries(ctx, r.log, next, int(end-next))
			if err != nil {
				return nil, fmt.Errorf("usage: read entries [%d, %d) of log %s: %w", next, end, r.log, err)
			}
			if len(es) == 0 {
				return nil, fmt.Errorf("usage: entry %d of log %s: %w", next, r.log, ledger.ErrNotFound)
			}
			for i := range es {
				if es[i].Index != next || next == end {
					return nil, fmt.Errorf("usage: entry %d of log %s: %w", next, r.log, ledger.ErrNotFound)
				}
				dst = append(dst, es[i].Data)
				next++
			}
		}
		return dst, nil
	}
	for n := start / ledger.TileWidth; n*ledger.TileWidth < end; n++ {
		w := ledger.TileWidthAt(0, n, r.size)
		data, err := r.src.ReadTile(ctx, r.log, ledger.Tile{N: n, W: w, Entries: true})
		if errors.Is(err, ledger.ErrNotFound) {
			if hw := ledger.TileWidthAt(0, n, r.headSize); hw > w {
				data, err = r.src.ReadTile(ctx, r.log, ledger.Tile{N: n, W: hw, Entries: true})
			}
		}
		if err != nil {
			return nil, fmt.Errorf("usage: entry bundle %d of log %s: %w", n, r.log, err)
		}
		es, err := ledger.ParseEntryBundle(data)
		if err != nil {
			return nil, fmt.Errorf("usage: entry bundle %d of log %s: %w", n, r.log, err)
		}
		if len(es) < w {
			return nil, fmt.Errorf("usage: entry bundle %d of log %s holds %d entries, want %d", n, r.log, len(es), w)
		}
		lo := max(start, n*ledger.TileWidth) - n*ledger.TileWidth
		hi := min(end, n*ledger.TileWidth+uint64(w)) - n*ledger.TileWidth
		dst = append(dst, es[lo:hi]...)
	}
	return dst, nil
}

// timeAt returns the time of entry i ("" if it has none).
func (r *reader) timeAt(ctx context.Context, i uint64) (string, error) {
	es, err := r.read(ctx, i, i+1, nil)
	if err != nil {
		return "", err
	}
	_, tm, _, _ := tail(es[0], nil)
	return string(tm), nil
}

// firstAtOrAfter finds, by binary search over [0, size), the first index
// whose time is at or after t, assuming times in index order (they are,
// within the skew callers add to t). An entry without a readable time
// counts as before t.
func (r *reader) firstAtOrAfter(ctx context.Context, t string) (uint64, error) {
	lo, hi := uint64(0), r.size
	for lo < hi {
		mid := lo + (hi-lo)/2
		tm, err := r.timeAt(ctx, mid)
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

// blockSize is how many entries one worker reads and adds up at a time
// (a multiple of the tile width, so chunk digests never straddle blocks).
const blockSize = 16 * ledger.TileWidth

// scan adds up the entries [start, end) of a log with several workers.
// start is a multiple of the tile width.
type scan struct {
	r       *reader
	cfg     *scanCfg
	workers int
	acc     *partial // what the blocks add up to (may already hold a scan)
	digests []ledger.Hash
}

func (s *scan) run(ctx context.Context, start, end uint64) error {
	if start >= end {
		return nil
	}
	nBlocks := int((end - start + blockSize - 1) / blockSize)
	workers := s.workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, nBlocks)
	var perBlock [][]ledger.Hash
	if s.cfg.bind {
		perBlock = make([][]ledger.Hash, nBlocks)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan int)
	parts := make([]*partial, workers)
	var wg sync.WaitGroup
	for w := range workers {
		parts[w] = newPartial()
		wg.Go(func() {
			var buf [][]byte
			for k := range jobs {
				lo := start + uint64(k)*blockSize
				hi := min(lo+blockSize, end)
				es, err := s.r.read(ctx, lo, hi, buf[:0])
				if err != nil {
					cancel(err)
					continue
				}
				buf = es
				for i, e := range es {
					parts[w].entry(s.cfg, lo+uint64(i), e)
				}
				if perBlock != nil {
					for c := 0; c < len(es); c += ledger.TileWidth {
						perBlock[k] = append(perBlock[k], chunkDigest(es[c:min(c+ledger.TileWidth, len(es))]))
					}
				}
				clear(buf)
			}
		})
	}
send:
	for k := range nBlocks {
		select {
		case jobs <- k:
		case <-ctx.Done():
			break send
		}
	}
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	for _, q := range parts {
		s.acc.merge(q)
	}
	for _, d := range perBlock {
		s.digests = append(s.digests, d...)
	}
	return nil
}
