package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"aigw/ledger"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// errMalformed is wrapped by the errors of batches refused before any write.
var errMalformed = ledger.ErrMalformedBatch

// The multi-row inserts: table and columns, and how many rows one statement takes.
const (
	entriesTable  = "entries (log_id, idx, event_id, entry, chain)"
	payloadsTable = "payloads (log_id, idx, salt, data)"

	entryCols   = 5
	payloadCols = 4
	rowsPerExec = 64
)

// The other statements of an append.
const (
	headSQL       = "SELECT id, size FROM logs WHERE name = ?"
	checkpointSQL = "INSERT INTO checkpoints (log_id, size, note) VALUES (?, ?, ?)"
	updateHeadSQL = `UPDATE logs SET size = ?, compact_range = ?, chain = ?, checkpoint = ?
		WHERE id = ? AND size = ?`
	insertTileSQL = "INSERT INTO tiles (log_id, level, idx, hashes) VALUES (?, ?, ?, ?)"
	updateTileSQL = "UPDATE tiles SET hashes = ? WHERE log_id = ? AND level = ? AND idx = ?"
)

// AppendBatch implements [ledger.Store]. The batch is written in one
// BEGIN IMMEDIATE transaction on a file with synchronous=FULL: when it
// returns nil the batch is on disk. A batch that is not well formed (see
// ledger.Batch.Validate) is refused before the transaction.
func (s *Store) AppendBatch(ctx context.Context, b *ledger.Batch) error {
	if b == nil {
		return fmt.Errorf("sqlite: append: %w: nil batch", errMalformed)
	}
	if err := s.appendBatch(ctx, b); err != nil {
		return fmt.Errorf("sqlite: append %d entries to log %q at %d: %w", len(b.Entries), b.Log, b.Start, err)
	}
	return nil
}

func (s *Store) appendBatch(ctx context.Context, b *ledger.Batch) error {
	if err := b.Validate(); err != nil {
		return err
	}
	size := b.Start + uint64(len(b.Entries))
	// Everything but the writes is done before taking the write lock.
	entryArgs := make([]any, 0, len(b.Entries)*entryCols)
	for _, e := range b.Entries {
		entryArgs = append(entryArgs, nil, int64(e.Index), eventIDBytes(e.EventID), e.Data, e.Chain[:])
	}
	payloadArgs := make([]any, 0, len(b.Payloads)*payloadCols)
	for _, p := range b.Payloads {
		payloadArgs = append(payloadArgs, nil, int64(p.Index), nonNil(p.Salt), nonNil(p.Data))
	}
	rng := ledger.RangeBytes(b.Head.Range)

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	// Once BEGIN IMMEDIATE holds the write lock, nothing in the transaction
	// waits: its statements run without ctx's cancellation (the driver
	// starts a watching goroutine per statement otherwise); canceling ctx
	// still rolls the transaction back.
	ctx = context.WithoutCancel(ctx)
	st := func(p *sql.Stmt) *sql.Stmt { return tx.StmtContext(ctx, p) }

	// The compare of the head: the log must be at b.Start. BEGIN IMMEDIATE
	// holds the file's write lock, so the log cannot move before the commit.
	var logID, cur int64
	err = st(s.headStmt).QueryRowContext(ctx, b.Log).Scan(&logID, &cur)
	switch {
	case errors.Is(err, sql.ErrNoRows) && b.Start == 0:
		// A new log; its head is written last, as for any other batch.
		err = tx.QueryRowContext(ctx, `INSERT INTO logs (name, size, compact_range, chain, checkpoint)
			VALUES (?, 0, x'', x'', x'') RETURNING id`, b.Log).Scan(&logID)
		if err != nil {
			return fmt.Errorf("create log: %w", err)
		}
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("log is at 0: %w", ledger.ErrConflict)
	case err != nil:
		return fmt.Errorf("read head: %w", err)
	case uint64(cur) != b.Start:
		return fmt.Errorf("log is at %d: %w", cur, ledger.ErrConflict)
	}

	for i := 0; i < len(entryArgs); i += entryCols {
		entryArgs[i] = logID
	}
	if err := insertRows(ctx, tx, &s.insertEntries, entryCols, entryArgs); err != nil {
		// The unique index, or the trigger before it, refused an event id
		// the log holds; say which. Anything else is returned as it is.
		if code := sqliteCode(err); code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_TRIGGER {
			if dup := duplicateError(ctx, tx, logID, b); dup != nil {
				return dup
			}
		}
		return fmt.Errorf("insert entries: %w", err)
	}
	for i := 0; i < len(payloadArgs); i += payloadCols {
		payloadArgs[i] = logID
	}
	if err := insertRows(ctx, tx, &s.insertPayloads, payloadCols, payloadArgs); err != nil {
		return fmt.Errorf("insert payloads: %w", err)
	}
	for _, t := range b.Tiles {
		if err := s.writeTile(ctx, tx, logID, b.Start, t); err != nil {
			return err
		}
	}
	if _, err := st(s.checkpointStmt).ExecContext(ctx, logID, int64(size), b.Head.Checkpoint); err != nil {
		return fmt.Errorf("insert checkpoint: %w", err)
	}
	res, err := st(s.updateHeadStmt).ExecContext(ctx, int64(size), rng, b.Head.Chain[:], b.Head.Checkpoint, logID, int64(b.Start))
	if err != nil {
		return fmt.Errorf("update head: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("update head: %d rows changed (%v)", n, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// writeTile inserts a tile the tree at start did not have, or updates one it
// had; the tiles_only_grow trigger refuses an update that does not extend it.
func (s *Store) writeTile(ctx context.Context, tx *sql.Tx, logID int64, start uint64, t ledger.TileData) error {
	if ledger.TileWidthAt(t.L, t.N, start) == 0 {
		if _, err := tx.StmtContext(ctx, s.insertTileStmt).ExecContext(ctx, logID, int64(t.L), int64(t.N), t.Hashes); err != nil {
			return fmt.Errorf("insert tile %s: %w", t.Path(), err)
		}
		return nil
	}
	res, err := tx.StmtContext(ctx, s.updateTileStmt).ExecContext(ctx, t.Hashes, logID, int64(t.L), int64(t.N))
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_TRIGGER {
		return fmt.Errorf("%w: tile %s does not extend the stored tile (tiles only grow)", errMalformed, t.Path())
	}
	if err != nil {
		return fmt.Errorf("update tile %s: %w", t.Path(), err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("update tile %s: the tree at %d has it but the store does not (%v)", t.Path(), start, err)
	}
	return nil
}

// duplicateError names the first event of b that the log already holds, or
// returns nil if it holds none.
func duplicateError(ctx context.Context, tx *sql.Tx, logID int64, b *ledger.Batch) error {
	ids := make([]string, len(b.Entries))
	for i, e := range b.Entries {
		ids[i] = e.EventID
	}
	found, err := lookupEvents(ctx, tx, logID, ids)
	if err != nil {
		return nil
	}
	for _, e := range b.Entries {
		// Entries of b that earlier statements of this transaction inserted
		// are found too; only those below b.Start were there before.
		if idx, ok := found[e.EventID]; ok && idx < b.Start {
			return fmt.Errorf("event %s (entry %d of the batch) is entry %d: %w", e.EventID, e.Index, idx, ledger.ErrDuplicate)
		}
	}
	return nil
}

// insertRows inserts rows of cols values each (args holds them one row after
// the other), up to rowsPerExec rows per statement: stmts[n-1] is the
// statement of n rows, prepared once on the writing connection.
func insertRows(ctx context.Context, tx *sql.Tx, stmts *[rowsPerExec]*sql.Stmt, cols int, args []any) error {
	rows := len(args) / cols
	for done := 0; done < rows; done += rowsPerExec {
		n := min(rowsPerExec, rows-done)
		if _, err := tx.StmtContext(ctx, stmts[n-1]).ExecContext(ctx, args[done*cols:(done+n)*cols]...); err != nil {
			return err
		}
	}
	return nil
}

func insertSQL(table string, cols, rows int) string {
	var b strings.Builder
	row := "(" + strings.Repeat("?, ", cols-1) + "?)"
	b.Grow(len("INSERT INTO  VALUES ") + len(table) + rows*(len(row)+2))
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// sqliteCode returns the extended SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// nonNil keeps an empty payload or salt from being stored as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// eventIDBytes returns the 16 bytes of a valid event id (ledger.ValidEventID).
func eventIDBytes(id string) []byte {
	out := make([]byte, 16)
	for i, j := 0, 0; i < len(id); {
		if id[i] == '-' {
			i++
			continue
		}
		out[j] = unhex(id[i])<<4 | unhex(id[i+1])
		i, j = i+2, j+1
	}
	return out
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// formatEventID returns the canonical text of a 16-byte event id.
func formatEventID(b []byte) string {
	const digits = "0123456789abcdef"
	if len(b) != 16 {
		return fmt.Sprintf("invalid-event-id-%x", b)
	}
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
