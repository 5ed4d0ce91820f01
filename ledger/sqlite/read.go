package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"aigw/ledger"
)

// The queries of the reads. TestQueryPlans checks that each uses its index.
const (
	qHead        = "SELECT size, compact_range, chain, checkpoint FROM logs WHERE name = ?"
	qReadEntries = `SELECT idx, event_id, entry, chain FROM entries
		WHERE log_id = (SELECT id FROM logs WHERE name = ?) AND idx >= ? ORDER BY idx LIMIT ?`
	// The level-0 tiles (the log's leaf hashes, 256 to a row) holding the
	// leaf hash at some byte offset, in index order; the caller checks that
	// the offset is a whole hash. There is deliberately no per-entry index
	// on the leaf hash (migrations/0002_no_leaf_index.sql).
	qLookupLeaf = `SELECT idx, hashes FROM tiles
		WHERE log_id = (SELECT id FROM logs WHERE name = ?) AND level = 0 AND instr(hashes, ?) > 0 ORDER BY idx`
	qCheckpoints = `SELECT note FROM checkpoints
		WHERE log_id = (SELECT id FROM logs WHERE name = ?) AND size BETWEEN ? AND ? ORDER BY size`
	qReadPayload = `SELECT salt, data, erased_at FROM payloads
		WHERE log_id = (SELECT id FROM logs WHERE name = ?) AND idx = ?`
	qLogs = "SELECT name FROM logs WHERE size > 0 ORDER BY name"
)

// lookupEventsSQL selects the entries of log_id (the first parameter) with
// one of n event ids (the next n).
func lookupEventsSQL(n int) string {
	return "SELECT event_id, idx FROM entries WHERE log_id = ? AND event_id IN (" + strings.Repeat("?, ", n-1) + "?)"
}

// readTilesSQL selects n tiles, given as n (level, idx) parameter pairs, of
// log_id (the last parameter).
func readTilesSQL(n int) string {
	return "WITH want (level, idx) AS (VALUES " + strings.Repeat("(?, ?), ", n-1) + "(?, ?)) " +
		"SELECT t.level, t.idx, t.hashes FROM want JOIN tiles t ON t.log_id = ? AND t.level = want.level AND t.idx = want.idx"
}

// querier is what reads need: the read pool, or the write transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// logID returns the id of the named log, and false if it was never written.
func logID(ctx context.Context, q querier, log string) (int64, bool, error) {
	var id int64
	err := q.QueryRowContext(ctx, "SELECT id FROM logs WHERE name = ?", log).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return id, true, nil
}

// Head implements [ledger.Store].
func (s *Store) Head(ctx context.Context, log string) (ledger.Head, error) {
	var h ledger.Head
	var size int64
	var rng, chain []byte
	err := s.r.QueryRowContext(ctx, qHead, log).
		Scan(&size, &rng, &chain, &h.Checkpoint)
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Head{}, nil
	}
	if err != nil {
		return ledger.Head{}, fmt.Errorf("sqlite: head of log %q: %w", log, err)
	}
	h.Size = uint64(size)
	if h.Range, err = ledger.ParseRangeBytes(rng); err != nil {
		return ledger.Head{}, fmt.Errorf("sqlite: head of log %q: %w", log, err)
	}
	if h.Chain, err = ledger.HashFromBytes(chain); err != nil {
		return ledger.Head{}, fmt.Errorf("sqlite: head of log %q: chain: %w", log, err)
	}
	return h, nil
}

// LookupEvents implements [ledger.Store]. Strings that are not event ids
// (ledger.ValidEventID) are never found.
func (s *Store) LookupEvents(ctx context.Context, log string, ids []string) (map[string]uint64, error) {
	id, ok, err := logID(ctx, s.r, log)
	if err != nil {
		return nil, fmt.Errorf("sqlite: lookup events in log %q: %w", log, err)
	}
	if !ok {
		return map[string]uint64{}, nil
	}
	found, err := lookupEvents(ctx, s.r, id, ids)
	if err != nil {
		return nil, fmt.Errorf("sqlite: lookup events in log %q: %w", log, err)
	}
	return found, nil
}

// eventsPerQuery bounds the ids of one LookupEvents query.
const eventsPerQuery = 500

func lookupEvents(ctx context.Context, q querier, logID int64, ids []string) (map[string]uint64, error) {
	found := map[string]uint64{}
	seen := make(map[string]bool, len(ids))
	args := make([]any, 1, eventsPerQuery+1)
	args[0] = logID
	flush := func() error {
		if len(args) == 1 {
			return nil
		}
		rows, err := q.QueryContext(ctx, lookupEventsSQL(len(args)-1), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var eid []byte
			var idx int64
			if err := rows.Scan(&eid, &idx); err != nil {
				return err
			}
			found[formatEventID(eid)] = uint64(idx)
		}
		args = args[:1]
		return rows.Err()
	}
	for _, id := range ids {
		if seen[id] || !ledger.ValidEventID(id) {
			continue
		}
		seen[id] = true
		args = append(args, eventIDBytes(id))
		if len(args) == cap(args) {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return found, nil
}

// LookupLeaf implements [ledger.Store] by searching the level-0 tiles: it
// costs nothing per appended entry, and a scan of the log's tiles (32 bytes
// per entry) per lookup. Proofs by index or by event id stay O(log n).
func (s *Store) LookupLeaf(ctx context.Context, log string, leaf ledger.Hash) (uint64, error) {
	rows, err := s.r.QueryContext(ctx, qLookupLeaf, log, leaf[:])
	if err != nil {
		return 0, fmt.Errorf("sqlite: lookup leaf %v in log %q: %w", leaf, log, err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int64
		var hashes sql.RawBytes
		if err := rows.Scan(&n, &hashes); err != nil {
			return 0, fmt.Errorf("sqlite: lookup leaf %v in log %q: %w", leaf, log, err)
		}
		if i, ok := ledger.LeafInTile(hashes, uint64(n), leaf); ok {
			return i, nil
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("sqlite: lookup leaf %v in log %q: %w", leaf, log, err)
	}
	return 0, fmt.Errorf("sqlite: leaf %v in log %q: %w", leaf, log, ledger.ErrNotFound)
}

// ReadEntries implements [ledger.Store].
func (s *Store) ReadEntries(ctx context.Context, log string, start uint64, n int) ([]ledger.StoredEntry, error) {
	if n <= 0 || start > math.MaxInt64 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, qReadEntries, log, int64(start), n)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read entries of log %q from %d: %w", log, start, err)
	}
	defer rows.Close()
	var out []ledger.StoredEntry
	for rows.Next() {
		var idx int64
		var eid, chain sql.RawBytes
		var e ledger.StoredEntry
		if err := rows.Scan(&idx, &eid, &e.Data, &chain); err != nil {
			return nil, fmt.Errorf("sqlite: read entries of log %q from %d: %w", log, start, err)
		}
		if uint64(idx) != start+uint64(len(out)) {
			break // a missing entry: stop there
		}
		e.Index = uint64(idx)
		e.EventID = formatEventID(eid)
		if e.Chain, err = ledger.HashFromBytes(chain); err != nil {
			return nil, fmt.Errorf("sqlite: entry %d of log %q: chain: %w", idx, log, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read entries of log %q from %d: %w", log, start, err)
	}
	return out, nil
}

// tilesPerQuery bounds the tiles of one ReadTiles query.
const tilesPerQuery = 250

// ReadTiles implements [ledger.TileReader] and [ledger.Store]: each result is
// exactly W hashes, the first W of the stored tile. Entry bundles are not
// tiles of this store: build them from ReadEntries with ledger.EntryBundle.
func (s *Store) ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	if len(tiles) == 0 {
		return out, nil
	}
	type key struct{ l, n uint64 }
	stored := map[key][]byte{}
	var keys []key
	for _, t := range tiles {
		if t.Entries || t.W < 1 || t.W > ledger.TileWidth {
			return nil, fmt.Errorf("sqlite: read tile %s of log %q: not a hash tile of width 1 to %d", t.Path(), log, ledger.TileWidth)
		}
		k := key{t.L, t.N}
		if _, ok := stored[k]; !ok && t.L <= 63 && t.N <= math.MaxInt64 {
			stored[k] = nil
			keys = append(keys, k)
		}
	}
	id, ok, err := logID(ctx, s.r, log)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read tiles of log %q: %w", log, err)
	}
	for ok && len(keys) > 0 {
		chunk := keys[:min(len(keys), tilesPerQuery)]
		keys = keys[len(chunk):]
		args := make([]any, 0, 2*len(chunk)+1)
		for _, k := range chunk {
			args = append(args, int64(k.l), int64(k.n))
		}
		args = append(args, id)
		rows, err := s.r.QueryContext(ctx, readTilesSQL(len(chunk)), args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: read tiles of log %q: %w", log, err)
		}
		for rows.Next() {
			var l, n int64
			var h []byte
			if err := rows.Scan(&l, &n, &h); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: read tiles of log %q: %w", log, err)
			}
			stored[key{uint64(l), uint64(n)}] = h
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sqlite: read tiles of log %q: %w", log, err)
		}
	}
	used := map[key]bool{}
	for i, t := range tiles {
		k := key{t.L, t.N}
		h := stored[k]
		if len(h) < t.W*ledger.HashSize {
			return nil, fmt.Errorf("sqlite: tile %s of log %q has %d hashes: %w", t.Path(), log, len(h)/ledger.HashSize, ledger.ErrNotFound)
		}
		w := t.W * ledger.HashSize
		out[i] = h[:w:w]
		if used[k] {
			out[i] = bytes.Clone(out[i]) // results never share memory
		}
		used[k] = true
	}
	return out, nil
}

// Checkpoints implements [ledger.Store].
func (s *Store) Checkpoints(ctx context.Context, log string, from, to uint64) ([][]byte, error) {
	if from > to || from > math.MaxInt64 {
		return nil, nil
	}
	to = min(to, math.MaxInt64)
	rows, err := s.r.QueryContext(ctx, qCheckpoints, log, int64(from), int64(to))
	if err != nil {
		return nil, fmt.Errorf("sqlite: checkpoints of log %q in [%d, %d]: %w", log, from, to, err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var cp []byte
		if err := rows.Scan(&cp); err != nil {
			return nil, fmt.Errorf("sqlite: checkpoints of log %q: %w", log, err)
		}
		out = append(out, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: checkpoints of log %q: %w", log, err)
	}
	return out, nil
}

// ReadPayload implements [ledger.Store].
func (s *Store) ReadPayload(ctx context.Context, log string, index uint64) (ledger.Payload, error) {
	if index > math.MaxInt64 {
		return ledger.Payload{}, fmt.Errorf("sqlite: payload %d of log %q: %w", index, log, ledger.ErrNotFound)
	}
	p := ledger.Payload{Index: index}
	var erased sql.NullInt64
	err := s.r.QueryRowContext(ctx, qReadPayload, log, int64(index)).Scan(&p.Salt, &p.Data, &erased)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ledger.Payload{}, fmt.Errorf("sqlite: payload %d of log %q: %w", index, log, ledger.ErrNotFound)
	case err != nil:
		return ledger.Payload{}, fmt.Errorf("sqlite: payload %d of log %q: %w", index, log, err)
	case erased.Valid:
		return ledger.Payload{}, fmt.Errorf("sqlite: payload %d of log %q, erased at %s: %w",
			index, log, time.UnixMilli(erased.Int64).UTC().Format(time.RFC3339), ledger.ErrPayloadErased)
	}
	return p, nil
}

// ErasePayload implements [ledger.Store]. Erasing an erased payload does
// nothing and returns nil. The payload's bytes are overwritten in the
// database file (secure_delete), and the WAL is then checkpointed and
// truncated so that they leave it too; if readers keep the WAL busy that
// last step is logged and left to a later checkpoint. Copies outside the
// file (backups) are not the Store's to erase.
func (s *Store) ErasePayload(ctx context.Context, log string, index uint64) error {
	erased, err := s.erasePayload(ctx, log, index)
	if err != nil {
		return fmt.Errorf("sqlite: erase payload %d of log %q: %w", index, log, err)
	}
	if !erased {
		return nil
	}
	s.log.Info("payload erased", "log", log, "index", index)
	if err := s.truncateWAL(ctx); err != nil {
		s.log.Warn("WAL not truncated after erasure; the erased bytes leave it at a later checkpoint",
			"log", log, "index", index, "err", err)
	}
	return nil
}

// truncateWAL checkpoints the WAL into the database file and truncates it,
// without waiting: if a reader still uses the WAL it fails at once rather
// than hold the writing connection (and so every append) for BusyTimeout.
func (s *Store) truncateWAL(ctx context.Context) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA busy_timeout = %d", s.busyTimeout.Milliseconds()))
	var busy, walPages, moved int
	if err := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &walPages, &moved); err != nil {
		return err
	}
	if busy != 0 {
		return errors.New("readers are using the WAL")
	}
	return nil
}

func (s *Store) erasePayload(ctx context.Context, log string, index uint64) (bool, error) {
	if index > math.MaxInt64 {
		return false, ledger.ErrNotFound
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	id, ok, err := logID(ctx, tx, log)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, ledger.ErrNotFound
	}
	var erasedAt sql.NullInt64
	err = tx.QueryRowContext(ctx, "SELECT erased_at FROM payloads WHERE log_id = ? AND idx = ?", id, int64(index)).Scan(&erasedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, ledger.ErrNotFound
	case err != nil:
		return false, err
	case erasedAt.Valid:
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, "UPDATE payloads SET salt = NULL, data = NULL, erased_at = ? WHERE log_id = ? AND idx = ?",
		time.Now().UnixMilli(), id, int64(index)); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// Logs implements [ledger.Store].
func (s *Store) Logs(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, qLogs)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list logs: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("sqlite: list logs: %w", err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list logs: %w", err)
	}
	return out, nil
}
