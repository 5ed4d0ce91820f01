// Package sqlite is the single-node [ledger.Store]: every log in one SQLite
// file, through modernc.org/sqlite (pure Go, no cgo). It is the store of the
// embedded default (`aigw serve` with no configuration); ledger/postgres is
// the one to scale out with.
//
// The file is in WAL mode with synchronous=FULL, so a batch is on disk when
// AppendBatch returns and readers never wait for the writer. Writes go through
// one connection (SQLite has one writer per file); BEGIN IMMEDIATE takes the
// file's write lock at the start of each write transaction, which makes the
// check of a batch's start against the log's size atomic across processes
// too. Reads use a pool of query-only connections.
//
// The schema is embedded (migrations/*.sql) and applied in order when the
// file is opened, one transaction per migration, recorded in
// schema_migrations. Triggers refuse any UPDATE or DELETE of entries and
// checkpoints, any change of a tile that does not extend it, and any change
// of a payload but its erasure. Erasure overwrites the freed bytes in the file
// (PRAGMA secure_delete) and checkpoints the WAL.
//
// Lock uses an OS file lock (flock) on a file beside the database, one per
// name, so it excludes other processes and other Stores on the same file;
// the kernel releases it if the process dies.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"aigw/ledger"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Defaults for the zero values of [Config].
const (
	DefaultBusyTimeout = 10 * time.Second
	DefaultReadConns   = 4
)

// Config configures [Open]. Only Path is required.
type Config struct {
	// Path is the database file. It and its schema are created if missing.
	// SQLite keeps Path+"-wal" and Path+"-shm" beside it, and Lock keeps one
	// Path+".lock-<name>" file per lock name, so the directory must be writable.
	Path string
	// Logger receives migrations, erasures and lock events; nil discards them.
	Logger *slog.Logger
	// BusyTimeout is how long a write waits for another process's write
	// transaction on the same file before it fails (0: DefaultBusyTimeout).
	BusyTimeout time.Duration
	// ReadConns is how many reads run at once (0: DefaultReadConns).
	ReadConns int
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("sqlite: Path is required")
	case c.Path == ":memory:" || strings.HasPrefix(c.Path, "file:"):
		return fmt.Errorf("sqlite: Path %q must be a file path, not :memory: or a URI", c.Path)
	case c.BusyTimeout < 0:
		return fmt.Errorf("sqlite: BusyTimeout %v is negative", c.BusyTimeout)
	case c.ReadConns < 0:
		return fmt.Errorf("sqlite: ReadConns %d is negative", c.ReadConns)
	}
	return nil
}

// Store is a [ledger.Store] in one SQLite file. Its methods are safe for
// concurrent use; Close it when done.
type Store struct {
	path        string
	log         *slog.Logger
	busyTimeout time.Duration
	w           *sql.DB // the one writing connection; transactions BEGIN IMMEDIATE
	r           *sql.DB // query-only connections

	// The statements of an append, prepared once on w (modernc prepares a
	// statement executed unprepared anew on every call: a quarter of an
	// append's CPU): the multi-row inserts of 1 to rowsPerExec rows, indexed
	// by rows-1, and the fixed ones.
	insertEntries, insertPayloads                                            [rowsPerExec]*sql.Stmt
	headStmt, checkpointStmt, updateHeadStmt, insertTileStmt, updateTileStmt *sql.Stmt

	mu     sync.Mutex
	locks  map[string]*os.File // held locks by name
	closed bool
}

var _ ledger.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at cfg.Path and brings
// its schema up to date. It fails if the file is not an aigw ledger database
// or has a schema newer than this package knows.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if cfg.BusyTimeout == 0 {
		cfg.BusyTimeout = DefaultBusyTimeout
	}
	if cfg.ReadConns == 0 {
		cfg.ReadConns = DefaultReadConns
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Store{path: path, log: logger.With("db", path), busyTimeout: cfg.BusyTimeout, locks: map[string]*os.File{}}

	s.w, err = sql.Open("sqlite", dsn(path, cfg.BusyTimeout, true))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	fail := func(err error) (*Store, error) {
		s.w.Close()
		if s.r != nil {
			s.r.Close()
		}
		return nil, err
	}
	mode, err := firstConn(ctx, s.w, cfg.BusyTimeout)
	if err != nil {
		return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	if mode != "wal" {
		return fail(fmt.Errorf("sqlite: open %s: journal mode is %q, not wal (is the file on a network file system?)", path, mode))
	}
	if err := migrate(ctx, s.w, s.log); err != nil {
		return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	if err := s.prepare(ctx); err != nil {
		s.closeStmts()
		return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	s.r, err = sql.Open("sqlite", dsn(path, cfg.BusyTimeout, false))
	if err != nil {
		return fail(fmt.Errorf("sqlite: open %s for reading: %w", path, err))
	}
	s.r.SetMaxOpenConns(cfg.ReadConns)
	s.r.SetMaxIdleConns(cfg.ReadConns)
	if err := s.r.PingContext(ctx); err != nil {
		return fail(fmt.Errorf("sqlite: open %s for reading: %w", path, err))
	}
	return s, nil
}

// firstConn opens the write connection and returns its journal mode. Opening
// it switches the file to WAL, which needs the file's exclusive lock; SQLite
// answers SQLITE_BUSY at once, without waiting in its busy handler, when
// another connection (another Open of the same file, in this process or
// another) holds a lock at that moment. The failed connection is discarded,
// so firstConn tries again until busy has passed.
func firstConn(ctx context.Context, db *sql.DB, busy time.Duration) (string, error) {
	deadline := time.Now().Add(busy)
	wait := time.Millisecond
	for {
		var mode string
		err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
		if err == nil || sqliteCode(err)&0xff != sqlite3.SQLITE_BUSY || time.Now().Add(wait).After(deadline) {
			return mode, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// dsn is the modernc.org/sqlite data source name of a connection to path.
func dsn(path string, busy time.Duration, write bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(busy.Milliseconds(), 10))
	q.Set("_fk", "1")
	q.Set("_sync", "FULL")
	q.Set("_defensive", "1") // no writable_schema, no journal_mode=OFF
	q.Set("_dqs", "0")       // a double-quoted string is an identifier or an error
	if write {
		// 8 MiB: an append touches the right edge of each index (entry
		// indexes, UUIDv7 event ids, the newest tiles), which stays in
		// memory; 32 MiB measured no faster since the leaf-hash index (a
		// random page per entry) went (migrations/0002_no_leaf_index.sql).
		q.Add("_pragma", "cache_size(-8192)")
		q.Set("_journal_mode", "WAL")
		q.Set("_txlock", "immediate")
		q.Add("_pragma", "secure_delete(1)") // erased payloads are overwritten in the file
		// Statement journals (one per multi-row INSERT in a transaction) in
		// memory, not in temporary files: a third less time per append.
		q.Add("_pragma", "temp_store(2)")
	} else {
		q.Add("_pragma", "cache_size(-8192)")
		q.Set("_query_only", "1")
	}
	return (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
}

// Close releases every lock the Store holds and closes its connections.
// Calling it again does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	held := s.locks
	s.locks = nil
	s.mu.Unlock()
	for name, f := range held {
		f.Close()
		s.log.Debug("lock released on close", "lock", name)
	}
	s.closeStmts()
	if err := errors.Join(s.r.Close(), s.w.Close()); err != nil {
		return fmt.Errorf("sqlite: close %s: %w", s.path, err)
	}
	return nil
}

// prepare prepares the statements of an append on the writing connection.
func (s *Store) prepare(ctx context.Context) error {
	var err error
	prep := func(dst **sql.Stmt, query string) {
		if err == nil {
			*dst, err = s.w.PrepareContext(ctx, query)
		}
	}
	for n := 1; n <= rowsPerExec; n++ {
		prep(&s.insertEntries[n-1], insertSQL(entriesTable, entryCols, n))
		prep(&s.insertPayloads[n-1], insertSQL(payloadsTable, payloadCols, n))
	}
	prep(&s.headStmt, headSQL)
	prep(&s.checkpointStmt, checkpointSQL)
	prep(&s.updateHeadStmt, updateHeadSQL)
	prep(&s.insertTileStmt, insertTileSQL)
	prep(&s.updateTileStmt, updateTileSQL)
	return err
}

func (s *Store) closeStmts() {
	for _, st := range append(append([]*sql.Stmt{s.headStmt, s.checkpointStmt, s.updateHeadStmt, s.insertTileStmt, s.updateTileStmt},
		s.insertEntries[:]...), s.insertPayloads[:]...) {
		if st != nil {
			st.Close()
		}
	}
}
