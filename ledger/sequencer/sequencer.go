// Package sequencer turns batches of entries into log appends: it assigns
// indexes, computes leaf and chain hashes, extends the Merkle tree and its
// tiles, signs the new checkpoint, and writes all of it to a ledger.Store in
// one transaction.
//
// A Sequencer must be the only writer of the logs it appends to; callers
// take the Store's Lock for the logs (or the partition) they sequence.
package sequencer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"aigw/ledger"

	"golang.org/x/mod/sumdb/note"
)

// Config configures a Sequencer.
type Config struct {
	// Store is where logs are written. Required.
	Store ledger.Store
	// Signer signs checkpoints. Required.
	Signer note.Signer
	// OriginPrefix is prepended to each log name to form its checkpoint origin
	// line (prefix + "/" + log). Required.
	OriginPrefix string
	// Verifiers are the keys whose checkpoints are trusted when a log is
	// restored: the previous keys after a rotation. The Signer's own key is
	// trusted when it is a note.Verifier source ([VerifierSource]).
	Verifiers []note.Verifier
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
}

// VerifierSource is implemented by signers that can produce their verifier
// (ledger/signer.Signer does).
type VerifierSource interface{ Verifier() note.Verifier }

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("sequencer: no store")
	case c.Signer == nil:
		return errors.New("sequencer: no checkpoint signer")
	case c.OriginPrefix == "":
		return errors.New("sequencer: no origin prefix")
	}
	return nil
}

// Record is one event to append: its canonical entry and, optionally, the
// payload it commits to with the salt used.
type Record struct {
	Entry   []byte
	Payload []byte
	Salt    []byte
	// Redelivered marks a record that may already be in the log (a JetStream
	// redelivery); the sequencer then looks its event id up before appending.
	Redelivered bool
	// EventID, when not empty, says the caller already ran [Check] on this
	// record for this log and that it passed with this event id (e.g. while
	// the previous batch was committing, off the sequencer's serial path).
	// Append then does not check the record again. It MUST be left empty
	// otherwise.
	EventID string
}

// Result says where a record ended up.
type Result struct {
	Index uint64
	// Duplicate is true when the event was already in the log (Index is the
	// original one) and nothing was appended for it.
	Duplicate bool
}

// Check validates a record for a log: the entry must be canonical and valid,
// belong to the log, and match its payload commitment. It returns the
// entry's id, tenant and commitment.
func Check(log string, r *Record) (ledger.EntryInfo, error) {
	info, err := ledger.CheckEntry(r.Entry)
	if err != nil {
		return info, err
	}
	if info.Tenant != log {
		return info, &ledger.EventError{Field: "tenant", Reason: fmt.Sprintf("event of %q sent to log %q", info.Tenant, log)}
	}
	if r.Payload != nil || r.Salt != nil {
		if info.PayloadSHA256 == "" {
			return info, &ledger.EventError{Field: "payload_sha256", Reason: "payload sent without a commitment in the entry"}
		}
		if len(r.Salt) != ledger.SaltSize {
			return info, &ledger.EventError{Field: "payload", Reason: fmt.Sprintf("salt is %d bytes, want %d", len(r.Salt), ledger.SaltSize)}
		}
		h := sha256.New()
		h.Write(r.Salt)
		h.Write(r.Payload)
		if hex.EncodeToString(h.Sum(nil)) != info.PayloadSHA256 {
			return info, &ledger.EventError{Field: "payload_sha256", Reason: "payload does not match its commitment"}
		}
	}
	return info, nil
}

// Sequencer appends batches to logs. It is safe for concurrent use; appends
// to one log are serialized, appends to different logs run in parallel.
type Sequencer struct {
	cfg       Config
	log       *slog.Logger
	verifiers note.Verifiers

	mu   sync.Mutex
	logs map[string]*logState
}

type logState struct {
	mu   sync.Mutex
	head ledger.Head
	tree *ledger.TreeBuilder // nil until loaded, and after a failed append
}

// New returns a Sequencer.
func New(cfg Config) (*Sequencer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	vs := append([]note.Verifier(nil), cfg.Verifiers...)
	if src, ok := cfg.Signer.(VerifierSource); ok {
		vs = append(vs, src.Verifier())
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Sequencer{cfg: cfg, log: lg, verifiers: note.VerifierList(vs...), logs: map[string]*logState{}}, nil
}

func (s *Sequencer) state(log string) *logState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.logs[log]
	if st == nil {
		st = &logState{}
		s.logs[log] = st
	}
	return st
}

// Head returns the sequencer's view of a log's head (loading it if needed).
func (s *Sequencer) Head(ctx context.Context, log string) (ledger.Head, error) {
	st := s.state(log)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := s.load(ctx, log, st); err != nil {
		return ledger.Head{}, err
	}
	return st.head, nil
}

// load restores a log's tree from the store and checks it against its
// signed checkpoint: the compact range must give the checkpoint's root, the
// checkpoint must be signed by a trusted key for this log's origin, and the
// rightmost partial tiles must be there. A log that fails is not appended to.
func (s *Sequencer) load(ctx context.Context, log string, st *logState) error {
	if st.tree != nil {
		return nil
	}
	head, err := s.cfg.Store.Head(ctx, log)
	if err != nil {
		return fmt.Errorf("load head of log %q: %w", log, err)
	}
	partial := map[uint64][]byte{}
	var edge []ledger.Tile
	for l := uint64(0); head.Size>>(l*ledger.TileHeight) > 0; l++ {
		count := head.Size >> (l * ledger.TileHeight)
		if w := int(count % ledger.TileWidth); w > 0 {
			edge = append(edge, ledger.Tile{L: l, N: count / ledger.TileWidth, W: w})
		}
	}
	if len(edge) > 0 {
		data, err := s.cfg.Store.ReadTiles(ctx, log, edge)
		if err != nil {
			return fmt.Errorf("load partial tiles of log %q at size %d: %w", log, head.Size, err)
		}
		for i, t := range edge {
			partial[t.L] = data[i][:t.W*ledger.HashSize]
		}
	}
	tree, err := ledger.NewTreeBuilder(head.Size, head.Range, partial)
	if err != nil {
		return fmt.Errorf("log %q: %w", log, err)
	}
	if head.Size > 0 || head.Checkpoint != nil {
		cp, _, err := ledger.OpenCheckpoint(head.Checkpoint, ledger.Origin(s.cfg.OriginPrefix, log), s.verifiers)
		if err != nil {
			return fmt.Errorf("log %q: stored checkpoint does not verify with the configured keys (wrong key or origin?): %w", log, err)
		}
		if cp.Size != head.Size || cp.Root != tree.Root() {
			return fmt.Errorf("log %q: stored head (size %d, root %s) disagrees with its checkpoint (size %d, root %s)", log, head.Size, tree.Root(), cp.Size, cp.Root)
		}
	}
	st.head, st.tree = head, tree
	return nil
}

// Append appends records to a log in one store transaction and returns each
// record's index. Records whose event id the log already holds are skipped
// and reported as duplicates (so a redelivered batch is never appended
// twice); so is a repeat of an event id within the batch. It fails, appending
// nothing, if any record is invalid ([Check]).
func (s *Sequencer) Append(ctx context.Context, log string, recs []Record) ([]Result, error) {
	if !ledger.ValidLogName(log) {
		return nil, &ledger.EventError{Field: "tenant", Reason: fmt.Sprintf("%q is not a valid log name", log)}
	}
	ids := make([]string, len(recs))
	for i := range recs {
		if recs[i].EventID != "" {
			ids[i] = recs[i].EventID
			continue
		}
		info, err := Check(log, &recs[i])
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		ids[i] = info.ID
	}
	st := s.state(log)
	st.mu.Lock()
	defer st.mu.Unlock()

	lookup := false
	for i := range recs {
		lookup = lookup || recs[i].Redelivered
	}
	for attempt := 0; ; attempt++ {
		if err := s.load(ctx, log, st); err != nil {
			return nil, err
		}
		var known map[string]uint64
		if lookup {
			var err error
			if known, err = s.cfg.Store.LookupEvents(ctx, log, ids); err != nil {
				return nil, fmt.Errorf("look up events in log %q: %w", log, err)
			}
		}
		res, err := s.appendLocked(ctx, log, st, recs, ids, known)
		if err == nil {
			return res, nil
		}
		st.tree = nil // the builder advanced past the store; reload it
		switch {
		case errors.Is(err, ledger.ErrDuplicate) && !lookup:
			// An event appended before the JetStream duplicate window: look
			// the batch's ids up and append only what is new.
			lookup = true
		case errors.Is(err, ledger.ErrConflict) && attempt == 0:
			s.log.WarnContext(ctx, "log head moved under the sequencer; reloading", "log", log)
		default:
			return nil, err
		}
	}
}

func (s *Sequencer) appendLocked(ctx context.Context, log string, st *logState, recs []Record, ids []string, known map[string]uint64) ([]Result, error) {
	res := make([]Result, len(recs))
	start := st.head.Size
	b := &ledger.Batch{Log: log, Start: start}
	inBatch := map[string]uint64{}
	chain := st.head.Chain
	next := start
	for i := range recs {
		if idx, ok := known[ids[i]]; ok {
			res[i] = Result{Index: idx, Duplicate: true}
			continue
		}
		if idx, ok := inBatch[ids[i]]; ok {
			res[i] = Result{Index: idx, Duplicate: true}
			continue
		}
		leaf := ledger.LeafHash(recs[i].Entry)
		chain = ledger.ChainHash(chain, leaf)
		st.tree.Append(leaf)
		b.Entries = append(b.Entries, ledger.StoredEntry{Index: next, EventID: ids[i], Data: recs[i].Entry, Chain: chain})
		if recs[i].Payload != nil || recs[i].Salt != nil {
			b.Payloads = append(b.Payloads, ledger.Payload{Index: next, Salt: recs[i].Salt, Data: recs[i].Payload})
		}
		inBatch[ids[i]] = next
		res[i] = Result{Index: next}
		next++
	}
	if len(b.Entries) == 0 {
		return res, nil
	}
	b.Tiles = st.tree.Flush()
	cp := ledger.Checkpoint{Origin: ledger.Origin(s.cfg.OriginPrefix, log), Size: next, Root: st.tree.Root()}
	signed, err := ledger.SignCheckpoint(cp, s.cfg.Signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint of log %q at %d: %w", log, next, err)
	}
	b.Head = ledger.Head{Size: next, Range: st.tree.Range(), Chain: chain, Checkpoint: signed}
	if err := s.cfg.Store.AppendBatch(ctx, b); err != nil {
		return nil, fmt.Errorf("append %d entries to log %q at %d: %w", len(b.Entries), log, start, err)
	}
	st.head = b.Head
	return res, nil
}

// Forget drops the cached state of a log, so the next append reloads it
// from the store (after the caller lost and re-took the log's lock).
func (s *Sequencer) Forget(log string) {
	s.mu.Lock()
	delete(s.logs, log)
	s.mu.Unlock()
}
