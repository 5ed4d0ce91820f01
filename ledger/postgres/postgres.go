// Package postgres is the production [ledger.Store], on PostgreSQL through pgx.
//
// # Schema
//
// Migrations are embedded (migrations/*.sql) and applied by [Open] in order,
// one transaction each, recorded in schema_migrations, under an advisory lock
// so that processes starting at once migrate a database once.
//
//   - logs(id, size, name, chain, compact_range, checkpoint): one row per log,
//     its head.
//   - entries(idx, log_id, event_id, chain, entry): primary key (log_id, idx)
//     and unique (log_id, event_id); the leaf hash is neither stored nor
//     indexed ([Store.LookupLeaf] searches the level-0 tiles).
//   - tiles(idx, log_id, level, hashes): C2SP tlog-tiles hash tiles at their
//     latest width.
//   - checkpoints(size, log_id, note): every signed checkpoint.
//   - payloads(idx, log_id, erased_at, salt, data): the payloads beside the
//     entries; an erased payload keeps its row, with salt and data NULL.
//
// # Append-only, and who may read what
//
// The Store's sessions run as an application role (Config.AppRole, default
// aigw_app; SET ROLE on every pooled connection) that may only INSERT and
// SELECT entries and checkpoints. Triggers refuse UPDATE, DELETE and TRUNCATE
// of entries and checkpoints for every role, owner and superuser included,
// and refuse a tile update that does not extend the stored tile (partial
// tiles grow in place: the one deliberate exception to append-only), a head
// that moves backwards, and any payload change other than its erasure.
//
// Row-level security isolates tenants: a session of the reader role
// (Config.ReaderRole, default aigw_reader) sees only the rows of the log that
// the setting aigw.log names (SET aigw.log = 'acme'), and no row at all
// without it. The app role, which sequences every log, sees all; it is
// created with BYPASSRLS when the session user is a superuser, since
// PostgreSQL refuses COPY FROM into a table under row-level security.
// Without BYPASSRLS the Store appends through a temporary staging table
// (COPY into it, then INSERT ... SELECT), which costs throughput.
//
// A superuser can still drop a trigger and rewrite history: [verify] checks
// the log against its signed checkpoints, and does not trust this package.
package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"regexp"
	"slices"
	"sync"
	"time"

	"aigw/ledger"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults for the zero values of [Config].
const (
	DefaultMaxConns   = 10
	DefaultAppRole    = "aigw_app"
	DefaultReaderRole = "aigw_reader"
)

// Config configures [Open]. The zero value of every field but DSN works.
type Config struct {
	// DSN is the PostgreSQL connection string, as a URL or key=value pairs.
	// Its user runs the migrations (so it owns the tables, or must be able to
	// create them) and must be able to SET ROLE to AppRole: a superuser, the
	// user that created the roles, or a member of them.
	DSN string
	// MaxConns is the size of the connection pool (default DefaultMaxConns).
	// Each lock held by [Store.Lock] uses one more connection, outside the pool.
	MaxConns int32
	// AppRole is the role the Store's sessions run as (default DefaultAppRole).
	// It is created, NOLOGIN, if it does not exist. Role names are cluster-wide.
	AppRole string
	// ReaderRole is the role whose sessions see only the log named by the
	// setting aigw.log (default DefaultReaderRole). It is created, NOLOGIN, if
	// it does not exist.
	ReaderRole string
	// Logger receives the Store's logs (nil: discarded).
	Logger *slog.Logger
}

var roleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if c.DSN == "" {
		return errors.New("postgres: empty DSN")
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("postgres: MaxConns is %d", c.MaxConns)
	}
	for _, r := range []string{c.AppRole, c.ReaderRole} {
		if r != "" && !roleName.MatchString(r) {
			return fmt.Errorf("postgres: role name %q is not [a-z_][a-z0-9_]{0,62}", r)
		}
	}
	if c.AppRole != "" && c.AppRole == c.ReaderRole {
		return fmt.Errorf("postgres: AppRole and ReaderRole are both %q", c.AppRole)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.AppRole == "" {
		c.AppRole = DefaultAppRole
	}
	if c.ReaderRole == "" {
		c.ReaderRole = DefaultReaderRole
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Store is a [ledger.Store] on PostgreSQL. It is safe for concurrent use.
type Store struct {
	cfg      Config // with defaults
	pool     *pgxpool.Pool
	lockConf *pgx.ConnConfig
	log      *slog.Logger
	// stage: append through temporary staging tables, because the app role
	// lacks BYPASSRLS and PostgreSQL refuses COPY into tables under RLS.
	stage bool

	ids sync.Map // log name → int32 id; a log's id never changes

	mu     sync.Mutex
	locks  map[*heldLock]struct{}
	closed bool
}

var _ ledger.Store = (*Store)(nil)

// Open connects to the database of cfg.DSN, migrates it to the latest schema,
// sets up the roles and their privileges, and returns a Store whose sessions
// run as cfg.AppRole. Two processes may open the same database at once.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pcfg.MaxConns = cfg.MaxConns

	conn, err := pgx.ConnectConfig(ctx, pcfg.ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	var bypass bool
	err = migrate(ctx, conn, &cfg, cfg.Logger)
	if err == nil {
		err = conn.QueryRow(ctx, "SELECT rolbypassrls FROM pg_roles WHERE rolname = $1", cfg.AppRole).Scan(&bypass)
	}
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}

	s := &Store{
		cfg:      cfg,
		lockConf: pcfg.ConnConfig.Copy(),
		log:      cfg.Logger,
		stage:    !bypass,
		locks:    map[*heldLock]struct{}{},
	}
	if s.stage {
		s.log.Warn("app role has no BYPASSRLS: appending through a staging table, which is slower",
			"app_role", cfg.AppRole, "hint", "ALTER ROLE "+cfg.AppRole+" BYPASSRLS (as a superuser)")
	}
	// Generic plans: the Store's statements are index lookups whose generic
	// plans are the best ones (storage_test.go checks them), and without this
	// PostgreSQL re-plans some of them on every call (ReadTiles: its generic
	// plan guesses 100 tiles asked for, so it looks dearer than a custom plan).
	setRole := "SET ROLE " + pgx.Identifier{cfg.AppRole}.Sanitize() + "; SET plan_cache_mode = force_generic_plan"
	pcfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if _, err := c.Exec(ctx, setRole); err != nil {
			return fmt.Errorf("set role %s: %w (hint: grant the role to the DSN's user)", cfg.AppRole, err)
		}
		if s.stage {
			if _, err := c.Exec(ctx, createStaging); err != nil {
				return fmt.Errorf("create staging tables: %w", err)
			}
		}
		return nil
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := s.pool.Ping(ctx); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("postgres: connect as %s: %w", cfg.AppRole, err)
	}
	return s, nil
}

const createStaging = `
CREATE TEMP TABLE aigw_stage_entries (idx bigint, log_id integer, event_id uuid, chain bytea, entry bytea) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE aigw_stage_payloads (idx bigint, log_id integer, salt bytea, data bytea) ON COMMIT DELETE ROWS;`

// Close releases every lock the Store holds and closes its connections.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	locks := make([]*heldLock, 0, len(s.locks))
	for l := range s.locks {
		locks = append(locks, l)
	}
	s.mu.Unlock()
	for _, l := range locks {
		l.release()
	}
	s.pool.Close()
	return nil
}

// logID returns the id of the named log, and false if it does not exist.
func (s *Store) logID(ctx context.Context, log string) (int32, bool, error) {
	if id, ok := s.ids.Load(log); ok {
		return id.(int32), true, nil
	}
	var id int32
	err := s.pool.QueryRow(ctx, "SELECT id FROM logs WHERE name = $1", log).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	s.ids.Store(log, id)
	return id, true, nil
}

// Head implements [ledger.Store].
func (s *Store) Head(ctx context.Context, log string) (ledger.Head, error) {
	var (
		h          ledger.Head
		size       int64
		chain, rng []byte
	)
	err := s.pool.QueryRow(ctx, "SELECT size, chain, compact_range, checkpoint FROM logs WHERE name = $1", log).
		Scan(&size, &chain, &rng, &h.Checkpoint)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Head{}, nil
	}
	if err != nil {
		return ledger.Head{}, fmt.Errorf("read head of log %q: %w", log, err)
	}
	h.Size = uint64(size)
	if len(chain) > 0 {
		if h.Chain, err = ledger.HashFromBytes(chain); err != nil {
			return ledger.Head{}, fmt.Errorf("read head of log %q: chain: %w", log, err)
		}
	}
	if h.Range, err = ledger.ParseRangeBytes(rng); err != nil {
		return ledger.Head{}, fmt.Errorf("read head of log %q: %w", log, err)
	}
	if len(h.Range) == 0 {
		h.Range = nil
	}
	return h, nil
}

var entryColumns = []string{"idx", "log_id", "event_id", "chain", "entry"}
var payloadColumns = []string{"idx", "log_id", "salt", "data"}

// AppendBatch implements [ledger.Store]. In one transaction it locks the
// log's head row (creating it for a new log), checks that the log's size is
// b.Start, copies the entries and payloads in (pgx CopyFrom, the binary COPY
// protocol), upserts the tiles, inserts the checkpoint and moves the head.
// A unique violation on (log_id, event_id) is [ledger.ErrDuplicate].
func (s *Store) AppendBatch(ctx context.Context, b *ledger.Batch) error {
	ids, err := checkBatch(b)
	var id int32
	if err == nil {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) (err error) {
			id, err = s.appendTx(ctx, tx, b, ids)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("append batch to log %q at %d: %w", b.Log, b.Start, err)
	}
	// Cache the id only once the transaction that may have made it committed.
	s.ids.Store(b.Log, id)
	s.log.LogAttrs(ctx, slog.LevelDebug, "appended batch",
		slog.String("log", b.Log), slog.Uint64("start", b.Start), slog.Int("entries", len(b.Entries)))
	return nil
}

// checkBatch checks that the batch is well formed (what the database would
// not check, or not say clearly), and parses the event ids.
func checkBatch(b *ledger.Batch) ([]pgtype.UUID, error) {
	if !ledger.ValidLogName(b.Log) {
		return nil, errors.New("invalid log name")
	}
	n := uint64(len(b.Entries))
	if n == 0 {
		return nil, errors.New("batch has no entries")
	}
	end := b.Start + n
	if end > 1<<63-1 || end < b.Start {
		return nil, errors.New("index out of range")
	}
	ids := make([]pgtype.UUID, n)
	for i := range b.Entries {
		e := &b.Entries[i]
		if e.Index != b.Start+uint64(i) {
			return nil, fmt.Errorf("entry %d has index %d, want %d", i, e.Index, b.Start+uint64(i))
		}
		if !ledger.ValidEventID(e.EventID) {
			return nil, fmt.Errorf("entry %d: event id %q is not a lowercase UUIDv7", e.Index, e.EventID)
		}
		u, _ := parseUUID(e.EventID)
		ids[i] = pgtype.UUID{Bytes: u, Valid: true}
		if len(e.Data) == 0 || len(e.Data) > ledger.MaxEntrySize {
			return nil, fmt.Errorf("entry %d is %d bytes, want 1 to %d", e.Index, len(e.Data), ledger.MaxEntrySize)
		}
	}

	h := &b.Head
	if h.Size != end {
		return nil, fmt.Errorf("head size is %d, want %d", h.Size, end)
	}
	if h.Chain != b.Entries[n-1].Chain {
		return nil, errors.New("head chain is not the chain hash of the last entry")
	}
	if len(h.Range) != bits.OnesCount64(end) {
		return nil, fmt.Errorf("head has %d compact range hashes, want %d for size %d", len(h.Range), bits.OnesCount64(end), end)
	}
	if len(h.Checkpoint) == 0 {
		return nil, errors.New("head has no checkpoint")
	}
	body, err := ledger.SplitNote(h.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("head checkpoint: %w", err)
	}
	if c, err := ledger.ParseCheckpointBody(body); err != nil {
		return nil, fmt.Errorf("head checkpoint: %w", err)
	} else if c.Size != end {
		return nil, fmt.Errorf("head checkpoint is of size %d, want %d", c.Size, end)
	}

	seen := make(map[uint64]bool, len(b.Payloads))
	for _, p := range b.Payloads {
		if p.Index < b.Start || p.Index >= end {
			return nil, fmt.Errorf("payload of entry %d is not of the batch", p.Index)
		}
		if seen[p.Index] {
			return nil, fmt.Errorf("payload of entry %d given twice", p.Index)
		}
		seen[p.Index] = true
		if p.Salt == nil {
			return nil, fmt.Errorf("payload of entry %d has no salt", p.Index)
		}
	}

	want := ledger.TilesFor(b.Start, end)
	if len(b.Tiles) != len(want) {
		return nil, fmt.Errorf("batch has %d tiles, want %d", len(b.Tiles), len(want))
	}
	for i, t := range b.Tiles {
		if t.Tile != want[i] {
			return nil, fmt.Errorf("tile %d is %s, want %s", i, t.Path(), want[i].Path())
		}
		if len(t.Hashes) != t.W*ledger.HashSize {
			return nil, fmt.Errorf("tile %s has %d bytes, want %d", t.Path(), len(t.Hashes), t.W*ledger.HashSize)
		}
	}
	return ids, nil
}

// appendTx writes the batch in tx and returns the log's id.
func (s *Store) appendTx(ctx context.Context, tx pgx.Tx, b *ledger.Batch, ids []pgtype.UUID) (int32, error) {
	id, size, err := lockHead(ctx, tx, b.Log)
	if err != nil {
		return 0, err
	}
	if size != b.Start {
		return 0, fmt.Errorf("log size is %d: %w", size, ledger.ErrConflict)
	}

	rows := &entryRows{logID: id, entries: b.Entries, ids: ids}
	if err := s.copyIn(ctx, tx, "entries", entryColumns, rows); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "entries_event_id_key" {
			return 0, fmt.Errorf("%w: %s", ledger.ErrDuplicate, pgErr.Detail)
		}
		return 0, fmt.Errorf("copy entries: %w", err)
	}
	if len(b.Payloads) > 0 {
		if err := s.copyIn(ctx, tx, "payloads", payloadColumns, &payloadRows{logID: id, payloads: b.Payloads}); err != nil {
			return 0, fmt.Errorf("copy payloads: %w", err)
		}
	}

	var batch pgx.Batch
	if len(b.Tiles) > 0 {
		levels := make([]int16, len(b.Tiles))
		idxs := make([]int64, len(b.Tiles))
		hashes := make([][]byte, len(b.Tiles))
		for i, t := range b.Tiles {
			levels[i], idxs[i], hashes[i] = int16(t.L), int64(t.N), t.Hashes
		}
		batch.Queue(`INSERT INTO tiles (log_id, level, idx, hashes)
			SELECT $1, t.level, t.idx, t.hashes FROM unnest($2::smallint[], $3::bigint[], $4::bytea[]) AS t(level, idx, hashes)
			ON CONFLICT (log_id, level, idx) DO UPDATE SET hashes = excluded.hashes`, id, levels, idxs, hashes)
	}
	end := int64(b.Head.Size)
	batch.Queue("INSERT INTO checkpoints (log_id, size, note) VALUES ($1, $2, $3)", id, end, b.Head.Checkpoint)
	batch.Queue("UPDATE logs SET size = $2, chain = $3, compact_range = $4, checkpoint = $5 WHERE id = $1",
		id, end, b.Head.Chain[:], ledger.RangeBytes(b.Head.Range), b.Head.Checkpoint)
	if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
		return 0, fmt.Errorf("write tiles, checkpoint and head: %w", err)
	}
	return id, nil
}

// copyIn copies rows into table with the binary COPY protocol, through the
// connection's staging table when the app role is subject to RLS.
func (s *Store) copyIn(ctx context.Context, tx pgx.Tx, table string, cols []string, rows pgx.CopyFromSource) error {
	if !s.stage {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, rows)
		return err
	}
	stage := pgx.Identifier{"pg_temp", "aigw_stage_" + table}
	if _, err := tx.CopyFrom(ctx, stage, cols, rows); err != nil {
		return err
	}
	list := ""
	for i, c := range cols {
		if i > 0 {
			list += ", "
		}
		list += pgx.Identifier{c}.Sanitize()
	}
	// The staging table is emptied at commit (ON COMMIT DELETE ROWS) or rollback.
	_, err := tx.Exec(ctx, "INSERT INTO "+pgx.Identifier{table}.Sanitize()+" ("+list+") SELECT "+list+" FROM "+stage.Sanitize())
	return err
}

// lockHead locks the head row of the log for the transaction, creating the
// row if the log is new, and returns the log's id and size.
func lockHead(ctx context.Context, tx pgx.Tx, log string) (id int32, size uint64, err error) {
	const q = "SELECT id, size FROM logs WHERE name = $1 FOR UPDATE"
	var sz int64
	err = tx.QueryRow(ctx, q, log).Scan(&id, &sz)
	if errors.Is(err, pgx.ErrNoRows) {
		// A concurrent creator makes this wait for its commit, then do nothing.
		if _, err = tx.Exec(ctx, "INSERT INTO logs (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", log); err == nil {
			err = tx.QueryRow(ctx, q, log).Scan(&id, &sz)
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("lock head: %w", err)
	}
	return id, uint64(sz), nil
}

// entryRows is the COPY source of a batch's entries.
type entryRows struct {
	logID   int32
	entries []ledger.StoredEntry
	ids     []pgtype.UUID
	i       int
	row     [5]any
}

func (r *entryRows) Next() bool { r.i++; return r.i <= len(r.entries) }
func (r *entryRows) Err() error { return nil }
func (r *entryRows) Values() ([]any, error) {
	e := &r.entries[r.i-1]
	r.row = [5]any{int64(e.Index), r.logID, r.ids[r.i-1], e.Chain[:], e.Data}
	return r.row[:], nil
}

// payloadRows is the COPY source of a batch's payloads.
type payloadRows struct {
	logID    int32
	payloads []ledger.Payload
	i        int
	row      [4]any
}

func (r *payloadRows) Next() bool { r.i++; return r.i <= len(r.payloads) }
func (r *payloadRows) Err() error { return nil }
func (r *payloadRows) Values() ([]any, error) {
	p := &r.payloads[r.i-1]
	data := p.Data
	if data == nil {
		data = []byte{} // an empty payload, not NULL
	}
	r.row = [4]any{int64(p.Index), r.logID, p.Salt, data}
	return r.row[:], nil
}

// LookupEvents implements [ledger.Store]. Ids that are not UUIDs are not in
// any log; the map's keys are the ids as given.
func (s *Store) LookupEvents(ctx context.Context, log string, ids []string) (map[string]uint64, error) {
	out := map[string]uint64{}
	id, ok, err := s.logID(ctx, log)
	if err != nil || !ok || len(ids) == 0 {
		return out, wrapErr(err, "look up events in log %q", log)
	}
	given := make(map[[16]byte][]string, len(ids))
	uuids := make([]pgtype.UUID, 0, len(ids))
	for _, s := range ids {
		if u, ok := parseUUID(s); ok {
			if given[u] == nil {
				uuids = append(uuids, pgtype.UUID{Bytes: u, Valid: true})
			}
			given[u] = append(given[u], s)
		}
	}
	rows, err := s.pool.Query(ctx, "SELECT event_id, idx FROM entries WHERE log_id = $1 AND event_id = ANY($2::uuid[])", id, uuids)
	if err != nil {
		return nil, fmt.Errorf("look up events in log %q: %w", log, err)
	}
	var (
		u   pgtype.UUID
		idx int64
	)
	_, err = pgx.ForEachRow(rows, []any{&u, &idx}, func() error {
		for _, s := range given[u.Bytes] {
			out[s] = uint64(idx)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up events in log %q: %w", log, err)
	}
	return out, nil
}

// lookupLeafSQL finds the level-0 tiles (the log's leaf hashes, 256 to a
// row, in index order) that contain the leaf hash at some byte offset; the
// caller checks the offset is a whole hash. There is deliberately no
// per-entry index on the leaf hash (migrations/0002_no_leaf_index.sql).
const lookupLeafSQL = `SELECT idx, hashes FROM tiles WHERE log_id = $1 AND level = 0 AND position($2::bytea IN hashes) > 0 ORDER BY idx`

// LookupLeaf implements [ledger.Store] by searching the level-0 tiles: it
// costs nothing per appended entry, and a scan of the log's tiles (32 bytes
// per entry) per lookup. Proofs by index or by event id stay O(log n).
func (s *Store) LookupLeaf(ctx context.Context, log string, leaf ledger.Hash) (uint64, error) {
	id, ok, err := s.logID(ctx, log)
	if err != nil {
		return 0, fmt.Errorf("look up leaf in log %q: %w", log, err)
	}
	if !ok {
		return 0, fmt.Errorf("look up leaf %v in log %q: %w", leaf, log, ledger.ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, lookupLeafSQL, id, leaf[:])
	if err != nil {
		return 0, fmt.Errorf("look up leaf in log %q: %w", log, err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int64
		var hashes []byte
		if err := rows.Scan(&n, &hashes); err != nil {
			return 0, fmt.Errorf("look up leaf in log %q: %w", log, err)
		}
		if i, ok := ledger.LeafInTile(hashes, uint64(n), leaf); ok {
			return i, nil
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("look up leaf in log %q: %w", log, err)
	}
	return 0, fmt.Errorf("look up leaf %v in log %q: %w", leaf, log, ledger.ErrNotFound)
}

// ReadEntries implements [ledger.Store]. The entries' Data share a few large
// allocations; a caller must not append to them.
func (s *Store) ReadEntries(ctx context.Context, log string, start uint64, n int) ([]ledger.StoredEntry, error) {
	if n <= 0 || start > 1<<63-1 {
		return nil, nil
	}
	id, ok, err := s.logID(ctx, log)
	if err != nil || !ok {
		return nil, wrapErr(err, "read entries of log %q", log)
	}
	end := start + uint64(n)
	if end > 1<<63-1 || end < start {
		end = 1<<63 - 1
	}
	rows, err := s.pool.Query(ctx, "SELECT idx, event_id, chain, entry FROM entries WHERE log_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx LIMIT $4",
		id, int64(start), int64(end), int64(end-start))
	if err != nil {
		return nil, fmt.Errorf("read entries of log %q: %w", log, err)
	}
	defer rows.Close()
	out, err := scanEntries(rows, start, min(n, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("read entries of log %q from %d: %w", log, start, err)
	}
	return out, nil
}

// scanEntries reads rows of (idx, event_id, chain, entry) in index order
// from start, stopping at the first missing index. On the binary protocol it
// decodes the raw values itself, copying entries into shared chunks and
// event ids into shared strings, to allocate little per row.
func scanEntries(rows pgx.Rows, start uint64, capHint int) ([]ledger.StoredEntry, error) {
	out := make([]ledger.StoredEntry, 0, capHint)
	binaryFormat := true
	for _, fd := range rows.FieldDescriptions() {
		binaryFormat = binaryFormat && fd.Format == pgx.BinaryFormatCode
	}
	var (
		arena   []byte // entry bytes
		idBuf   []byte // formatted event ids not yet turned into a string
		idFirst int    // the entry the first id in idBuf belongs to
	)
	const idLen, idBatch = 36, 512
	flushIDs := func() {
		ids := string(idBuf)
		for i := idFirst; i < len(out); i++ {
			off := (i - idFirst) * idLen
			out[i].EventID = ids[off : off+idLen]
		}
		idBuf, idFirst = idBuf[:0], len(out)
	}
	for rows.Next() {
		var e ledger.StoredEntry
		if binaryFormat {
			v := rows.RawValues()
			if len(v[0]) != 8 || len(v[1]) != 16 || len(v[2]) != ledger.HashSize {
				return nil, errors.New("malformed row")
			}
			e.Index = binary.BigEndian.Uint64(v[0])
			if e.Index != start+uint64(len(out)) {
				break // a missing entry: stop before it
			}
			copy(e.Chain[:], v[2])
			if cap(arena)-len(arena) < len(v[3]) {
				arena = make([]byte, 0, max(len(v[3]), 256<<10))
			}
			off := len(arena)
			arena = append(arena, v[3]...)
			e.Data = arena[off:len(arena):len(arena)]
			if idBuf == nil {
				idBuf = make([]byte, 0, idLen*idBatch)
			}
			idBuf = appendUUID(idBuf, v[1])
		} else {
			var (
				idx         int64
				u           pgtype.UUID
				chain, data []byte
			)
			if err := rows.Scan(&idx, &u, &chain, &data); err != nil {
				return nil, err
			}
			e.Data = data
			if len(chain) != ledger.HashSize {
				return nil, errors.New("malformed chain hash")
			}
			e.Index = uint64(idx)
			if e.Index != start+uint64(len(out)) {
				break // a missing entry: stop before it
			}
			copy(e.Chain[:], chain)
			e.EventID = string(appendUUID(nil, u.Bytes[:]))
		}
		out = append(out, e)
		if len(idBuf) == idLen*idBatch {
			flushIDs()
		}
	}
	if len(idBuf) > 0 {
		flushIDs()
	}
	rows.Close()
	return out, rows.Err()
}

// ReadTiles implements [ledger.Store] (and [ledger.TileReader]) with one
// query for all the tiles. Each result is exactly W hashes. Entry bundles are
// not tiles of this table: read them with ReadEntries.
func (s *Store) ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error) {
	if len(tiles) == 0 {
		return [][]byte{}, nil
	}
	type key struct {
		l int16
		n int64
	}
	keys := make([]key, len(tiles))
	var levels []int16 // the distinct tiles asked for
	var idxs []int64
	distinct := make(map[key]bool, len(tiles))
	for i, t := range tiles {
		if t.Entries || t.W < 1 || t.W > ledger.TileWidth || t.L > 63 || t.N > 1<<63-1 {
			return nil, fmt.Errorf("read tiles of log %q: cannot read %s", log, t.Path())
		}
		k := key{int16(t.L), int64(t.N)}
		keys[i] = k
		if !distinct[k] {
			distinct[k] = true
			levels, idxs = append(levels, k.l), append(idxs, k.n)
		}
	}
	id, ok, err := s.logID(ctx, log)
	if err != nil {
		return nil, fmt.Errorf("read tiles of log %q: %w", log, err)
	}
	if !ok {
		return nil, fmt.Errorf("read tile %s of log %q: %w", tiles[0].Path(), log, ledger.ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, readTilesSQL, id, levels, idxs)
	if err != nil {
		return nil, fmt.Errorf("read tiles of log %q: %w", log, err)
	}
	got := make(map[key][]byte, len(levels))
	var (
		l      int16
		n      int64
		hashes []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&l, &n, &hashes}, func() error {
		got[key{l, n}] = hashes
		hashes = nil // Scan into a fresh slice for the next row
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tiles of log %q: %w", log, err)
	}
	out := make([][]byte, len(tiles))
	used := make(map[key]bool, len(got))
	for i, t := range tiles {
		k := keys[i]
		h := got[k]
		if len(h) < t.W*ledger.HashSize {
			return nil, fmt.Errorf("read tile %s of log %q (stored: %d hashes): %w", t.Path(), log, len(h)/ledger.HashSize, ledger.ErrNotFound)
		}
		h = h[: t.W*ledger.HashSize : t.W*ledger.HashSize]
		if used[k] {
			h = slices.Clone(h) // a tile asked for twice: no two results share memory
		}
		used[k] = true
		out[i] = h
	}
	return out, nil
}

// readTilesSQL probes the primary key of tiles once per tile asked for: the
// OFFSET 0 keeps the planner from flattening the lateral subquery into a
// join, which a generic plan (guessing 100 tiles asked for) may make a
// hash join over all of the log's tiles.
const readTilesSQL = `SELECT r.level, r.idx, t.hashes
	FROM unnest($2::smallint[], $3::bigint[]) AS r(level, idx),
	LATERAL (SELECT hashes FROM tiles WHERE log_id = $1 AND level = r.level AND idx = r.idx OFFSET 0) AS t`

// Checkpoints implements [ledger.Store].
func (s *Store) Checkpoints(ctx context.Context, log string, from, to uint64) ([][]byte, error) {
	id, ok, err := s.logID(ctx, log)
	if err != nil || !ok || from > to || from > 1<<63-1 {
		return nil, wrapErr(err, "read checkpoints of log %q", log)
	}
	to = min(to, 1<<63-1)
	rows, err := s.pool.Query(ctx, "SELECT note FROM checkpoints WHERE log_id = $1 AND size BETWEEN $2 AND $3 ORDER BY size", id, int64(from), int64(to))
	if err != nil {
		return nil, fmt.Errorf("read checkpoints of log %q: %w", log, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("read checkpoints of log %q: %w", log, err)
	}
	return out, nil
}

// ReadPayload implements [ledger.Store].
func (s *Store) ReadPayload(ctx context.Context, log string, index uint64) (ledger.Payload, error) {
	id, ok, err := s.logID(ctx, log)
	if err != nil {
		return ledger.Payload{}, fmt.Errorf("read payload %d of log %q: %w", index, log, err)
	}
	if !ok || index > 1<<63-1 {
		return ledger.Payload{}, fmt.Errorf("read payload %d of log %q: %w", index, log, ledger.ErrNotFound)
	}
	p := ledger.Payload{Index: index}
	var erased bool
	err = s.pool.QueryRow(ctx, "SELECT erased_at IS NOT NULL, salt, data FROM payloads WHERE log_id = $1 AND idx = $2", id, int64(index)).
		Scan(&erased, &p.Salt, &p.Data)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ledger.Payload{}, fmt.Errorf("read payload %d of log %q: %w", index, log, ledger.ErrNotFound)
	case err != nil:
		return ledger.Payload{}, fmt.Errorf("read payload %d of log %q: %w", index, log, err)
	case erased:
		return ledger.Payload{}, fmt.Errorf("read payload %d of log %q: %w", index, log, ledger.ErrPayloadErased)
	}
	return p, nil
}

// ErasePayload implements [ledger.Store]. The row stays, with salt and data
// set to NULL and erased_at set: it is the erasure marker. Erasing an erased
// payload does nothing. PostgreSQL removes the old row version (and its
// TOASTed data) at the next vacuum of payloads; until then it is on disk,
// though invisible, as it is in WAL and backups until they expire.
func (s *Store) ErasePayload(ctx context.Context, log string, index uint64) error {
	id, ok, err := s.logID(ctx, log)
	if err != nil {
		return fmt.Errorf("erase payload %d of log %q: %w", index, log, err)
	}
	if !ok || index > 1<<63-1 {
		return fmt.Errorf("erase payload %d of log %q: %w", index, log, ledger.ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, "UPDATE payloads SET salt = NULL, data = NULL, erased_at = now() WHERE log_id = $1 AND idx = $2 AND erased_at IS NULL", id, int64(index))
	if err != nil {
		return fmt.Errorf("erase payload %d of log %q: %w", index, log, err)
	}
	if tag.RowsAffected() == 1 {
		s.log.LogAttrs(ctx, slog.LevelInfo, "erased payload", slog.String("log", log), slog.Uint64("index", index))
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM payloads WHERE log_id = $1 AND idx = $2)", id, int64(index)).Scan(&exists); err != nil {
		return fmt.Errorf("erase payload %d of log %q: %w", index, log, err)
	}
	if !exists {
		return fmt.Errorf("erase payload %d of log %q: %w", index, log, ledger.ErrNotFound)
	}
	return nil
}

// Logs implements [ledger.Store], sorted bytewise.
func (s *Store) Logs(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name FROM logs WHERE size > 0 ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list logs: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list logs: %w", err)
	}
	return out, nil
}

// Lock implements [ledger.Store] with a session-level advisory lock
// (pg_try_advisory_lock) on a connection of its own, held until release. The
// lock excludes every process using the database. It is a liveness aid: if
// the connection breaks, the lock is gone, and AppendBatch's check of the
// log size is what keeps two sequencers from both appending.
func (s *Store) Lock(ctx context.Context, name string) (release func(), err error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("lock %q: store is closed", name)
	}
	conn, err := pgx.ConnectConfig(ctx, s.lockConf.Copy())
	if err != nil {
		return nil, fmt.Errorf("lock %q: connect: %w", name, err)
	}
	key := lockKey(name)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil || !ok {
		conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return nil, fmt.Errorf("lock %q: %w", name, err)
		}
		return nil, fmt.Errorf("lock %q: %w", name, ledger.ErrLocked)
	}
	l := &heldLock{s: s, conn: conn, key: key, name: name}
	s.mu.Lock()
	closed = s.closed
	if !closed {
		s.locks[l] = struct{}{}
	}
	s.mu.Unlock()
	if closed { // Close ran meanwhile: it cannot have seen this lock
		l.release()
		return nil, fmt.Errorf("lock %q: store is closed", name)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "took lock", slog.String("name", name))
	return l.release, nil
}

type heldLock struct {
	s    *Store
	conn *pgx.Conn
	key  int64
	name string
	once sync.Once
}

// release unlocks explicitly before closing, so that the lock is free when
// release returns (a closing backend would free it a moment later).
func (l *heldLock) release() {
	l.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := l.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", l.key); err != nil {
			l.s.log.Warn("unlock failed; closing the connection frees the lock", "name", l.name, "err", err)
		}
		l.conn.Close(ctx)
		l.s.mu.Lock()
		delete(l.s.locks, l)
		l.s.mu.Unlock()
		l.s.log.Info("released lock", "name", l.name)
	})
}

// lockKey maps a lock name to a bigint advisory lock key.
func lockKey(name string) int64 {
	h := sha256.Sum256([]byte("aigw lock\x00" + name))
	return int64(binary.BigEndian.Uint64(h[:8]))
}

// parseUUID parses a UUID in the canonical 8-4-4-4-12 hex form, either case.
func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	return u, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendUUID appends the canonical lowercase form of a 16-byte UUID.
func appendUUID(dst, u []byte) []byte {
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
	return append(dst, buf[:]...)
}

// wrapErr wraps a non-nil err with the formatted context, and returns nil for nil.
func wrapErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
