package tenant

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"               // registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Drivers [Config.Driver] accepts.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Defaults for the zero values of [Config].
const (
	DefaultMaxConns    = 10               // PostgreSQL connections
	DefaultReadConns   = 4                // SQLite read connections
	DefaultBusyTimeout = 10 * time.Second // SQLite: wait for another writer
)

// Config configures [Open]. Driver and DSN are required.
type Config struct {
	// Driver is DriverSQLite or DriverPostgres.
	Driver string
	// DSN is, for SQLite, the path of the database file (created with its
	// schema if missing; keep it apart from the ledger's file), and for
	// PostgreSQL a connection string (URL or key=value pairs) whose user
	// can create tables. The tables may share the ledger's database.
	DSN string
	// Now is the clock that stamps CreatedAt and RevokedAt and checks that
	// a new key's ExpiresAt is in the future (nil: time.Now).
	Now func() time.Time
	// Logger receives migrations (nil: discarded).
	Logger *slog.Logger
	// MaxConns bounds the open connections: the PostgreSQL pool (0:
	// DefaultMaxConns), or SQLite's read connections (0: DefaultReadConns;
	// SQLite writes through one connection).
	MaxConns int
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	switch {
	case c.Driver != DriverSQLite && c.Driver != DriverPostgres:
		return fmt.Errorf("tenant: Driver %q is neither %q nor %q", c.Driver, DriverSQLite, DriverPostgres)
	case c.DSN == "":
		return errors.New("tenant: DSN is required")
	case c.Driver == DriverSQLite && (c.DSN == ":memory:" || strings.HasPrefix(c.DSN, "file:")):
		return fmt.Errorf("tenant: SQLite DSN %q must be a file path, not :memory: or a URI", c.DSN)
	case c.MaxConns < 0:
		return fmt.Errorf("tenant: MaxConns %d is negative", c.MaxConns)
	}
	return nil
}

// Store keeps tenants and API keys in SQLite or PostgreSQL. It is safe for
// concurrent use, by several processes on one database too. Every method
// that names a tenant acts within that tenant only: a key of another tenant
// is ErrNotFound.
type Store struct {
	driver string
	desc   string // for errors: the SQLite path, or "postgres"
	w, r   *sql.DB
	now    func() time.Time
	log    *slog.Logger
	q      queries

	closeOnce sync.Once
	closeErr  error
}

// Open opens the database of cfg and brings its schema up to date. Several
// processes may open one database at once: SQLite migrations run in
// BEGIN IMMEDIATE transactions, PostgreSQL ones under an advisory lock.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{driver: cfg.Driver, now: cfg.Now, log: cfg.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.q = newQueries(cfg.Driver)
	var err error
	switch cfg.Driver {
	case DriverSQLite:
		err = s.openSQLite(ctx, cfg)
	case DriverPostgres:
		err = s.openPostgres(ctx, cfg)
	}
	if err != nil {
		s.closeDBs()
		return nil, err
	}
	return s, nil
}

func (s *Store) openSQLite(ctx context.Context, cfg Config) error {
	path, err := filepath.Abs(cfg.DSN)
	if err != nil {
		return fmt.Errorf("tenant: %w", err)
	}
	s.desc = path
	if s.w, err = sql.Open("sqlite", sqliteDSN(path, true)); err != nil {
		return fmt.Errorf("tenant: open %s: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	var mode string
	if err := retryBusy(ctx, func() error { return s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode) }); err != nil {
		return fmt.Errorf("tenant: open %s: %w", path, err)
	}
	if mode != "wal" {
		return fmt.Errorf("tenant: open %s: journal mode is %q, not wal (is the file on a network file system?)", path, mode)
	}
	if err := s.migrateOn(ctx, s.w); err != nil {
		return fmt.Errorf("tenant: open %s: %w", path, err)
	}
	if s.r, err = sql.Open("sqlite", sqliteDSN(path, false)); err != nil {
		return fmt.Errorf("tenant: open %s for reading: %w", path, err)
	}
	n := cfg.MaxConns
	if n == 0 {
		n = DefaultReadConns
	}
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("tenant: open %s for reading: %w", path, err)
	}
	return nil
}

// retryBusy runs f until it does not fail with SQLITE_BUSY, for at most
// DefaultBusyTimeout. The first connection to a new file sets WAL mode, and
// while another process does the same SQLite answers SQLITE_BUSY at once,
// without waiting for busy_timeout.
func retryBusy(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(DefaultBusyTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		err := f()
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
	}
}

// sqliteDSN is the modernc.org/sqlite data source name of a connection to path.
func sqliteDSN(path string, write bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(DefaultBusyTimeout.Milliseconds(), 10))
	q.Set("_fk", "1")
	q.Set("_sync", "FULL")
	q.Set("_defensive", "1")
	q.Set("_dqs", "0")
	if write {
		q.Set("_journal_mode", "WAL")
		q.Set("_txlock", "immediate")
	} else {
		q.Set("_query_only", "1")
	}
	return (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
}

func (s *Store) openPostgres(ctx context.Context, cfg Config) error {
	s.desc = "postgres"
	db, err := sql.Open("pgx", cfg.DSN)
	if err != nil {
		return fmt.Errorf("tenant: postgres: %w", err)
	}
	s.w, s.r = db, db
	n := cfg.MaxConns
	if n == 0 {
		n = DefaultMaxConns
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := s.migrateOn(ctx, db); err != nil {
		return fmt.Errorf("tenant: postgres: %w", err)
	}
	return nil
}

// migrateOn runs the migrations on a connection of db of their own.
func (s *Store) migrateOn(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return migrate(ctx, conn, s.driver, s.log)
}

// Close closes the Store's connections. Calling it again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if err := s.closeDBs(); err != nil {
			s.closeErr = fmt.Errorf("tenant: close %s: %w", s.desc, err)
		}
	})
	return s.closeErr
}

func (s *Store) closeDBs() error {
	var errs []error
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	return errors.Join(errs...)
}

// queries are the Store's statements in the driver's placeholder syntax.
type queries struct {
	insertTenant, getTenant, listTenants, setDisabled  string
	insertKey, getKey, listKeys, revokeKey, lookupHash string
	insertStop, getStop, listStops, deleteStop         string
}

const (
	tenantCols = "id, name, created_at, disabled"
	keyCols    = "id, tenant, name, prefix, hash, models, created_at, expires_at, revoked_at, team"
	keyColsK   = "k.id, k.tenant, k.name, k.prefix, k.hash, k.models, k.created_at, k.expires_at, k.revoked_at, k.team"
)

func newQueries(driver string) queries {
	r := func(q string) string { return rebind(driver, q) }
	return queries{
		insertTenant: r("INSERT INTO tenants (" + tenantCols + ") VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"),
		getTenant:    r("SELECT " + tenantCols + " FROM tenants WHERE id = ?"),
		listTenants:  r("SELECT " + tenantCols + " FROM tenants ORDER BY id"),
		setDisabled:  r("UPDATE tenants SET disabled = ? WHERE id = ?"),
		insertKey: r("INSERT INTO api_keys (id, tenant, name, prefix, hash, models, created_at, expires_at, team) " +
			"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
		getKey:   r("SELECT " + keyCols + " FROM api_keys WHERE tenant = ? AND id = ?"),
		listKeys: r("SELECT " + keyCols + " FROM api_keys WHERE tenant = ? ORDER BY created_at, id"),
		revokeKey: r("UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE tenant = ? AND id = ? " +
			"RETURNING " + keyCols),
		lookupHash: r("SELECT " + keyColsK + ", t.name, t.created_at, t.disabled " +
			"FROM api_keys k JOIN tenants t ON t.id = k.tenant WHERE k.hash = ?"),
		insertStop: r("INSERT INTO oversight_stops (" + stopCols + ") VALUES (?, ?, ?, ?, ?, ?, ?) " +
			"ON CONFLICT (tenant, target_type, target) DO NOTHING"),
		getStop:    r("SELECT " + stopCols + " FROM oversight_stops WHERE tenant = ? AND target_type = ? AND target = ?"),
		listStops:  r("SELECT " + stopCols + " FROM oversight_stops WHERE tenant = ?"),
		deleteStop: r("DELETE FROM oversight_stops WHERE tenant = ? AND target_type = ? AND target = ? RETURNING " + stopCols),
	}
}

// timeArg is t as the driver stores it: Unix microseconds in SQLite, a
// timestamptz in PostgreSQL.
func (s *Store) timeArg(t *time.Time) any {
	switch {
	case t == nil:
		return nil
	case s.driver == DriverSQLite:
		return t.UnixMicro()
	default:
		return t.UTC()
	}
}

// nullTime scans a time column of either driver.
type nullTime struct {
	t     time.Time
	valid bool
}

func (n *nullTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		n.valid = false
	case int64:
		n.t, n.valid = time.UnixMicro(v).UTC(), true
	case time.Time:
		n.t, n.valid = v.UTC(), true
	default:
		return fmt.Errorf("time column holds a %T", v)
	}
	return nil
}

func (n nullTime) ptr() *time.Time {
	if !n.valid {
		return nil
	}
	t := n.t
	return &t
}

// stamp returns the Store's clock, in UTC, at the databases' microsecond precision.
func (s *Store) stamp() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// CreateTenant creates t and returns it as stored: CreatedAt is set by the
// Store (a CreatedAt in t is ignored). It fails with ErrInvalid if t.ID is
// not [ValidID] or t.Name is not a valid name, and with ErrExists if a
// tenant with t.ID exists.
func (s *Store) CreateTenant(ctx context.Context, t Tenant) (Tenant, error) {
	if !ValidID(t.ID) {
		return Tenant{}, fmt.Errorf("tenant: create tenant %q: id is not 1-63 of [a-z0-9_-] or is %q: %w", t.ID, "system", ErrInvalid)
	}
	if err := validName("name", t.Name); err != nil {
		return Tenant{}, fmt.Errorf("tenant: create tenant %q: %w", t.ID, err)
	}
	t.CreatedAt = s.stamp()
	res, err := s.w.ExecContext(ctx, s.q.insertTenant, t.ID, t.Name, s.timeArg(&t.CreatedAt), t.Disabled)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant: create tenant %q: %w", t.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Tenant{}, fmt.Errorf("tenant: create tenant %q: %w", t.ID, err)
	} else if n == 0 {
		return Tenant{}, fmt.Errorf("tenant: create tenant %q: %w", t.ID, ErrExists)
	}
	return t, nil
}

// GetTenant returns the tenant id, or ErrNotFound.
func (s *Store) GetTenant(ctx context.Context, id string) (Tenant, error) {
	if !ValidID(id) {
		return Tenant{}, fmt.Errorf("tenant: get tenant %q: %w", id, ErrInvalid)
	}
	t, err := scanTenant(s.r.QueryRowContext(ctx, s.q.getTenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Tenant{}, fmt.Errorf("tenant: get tenant %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant: get tenant %q: %w", id, err)
	}
	return t, nil
}

// ListTenants returns every tenant, ordered by ID.
func (s *Store) ListTenants(ctx context.Context) ([]Tenant, error) {
	rows, err := s.r.QueryContext(ctx, s.q.listTenants)
	if err != nil {
		return nil, fmt.Errorf("tenant: list tenants: %w", err)
	}
	defer rows.Close()
	var out []Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, fmt.Errorf("tenant: list tenants: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tenant: list tenants: %w", err)
	}
	return out, nil
}

// SetTenantDisabled disables or re-enables the tenant id (ErrNotFound if
// there is none). The keys of a disabled tenant stop authenticating: at
// once through [Authenticator.SetTenantDisabled], within the cache TTL
// in other processes.
func (s *Store) SetTenantDisabled(ctx context.Context, id string, disabled bool) error {
	if !ValidID(id) {
		return fmt.Errorf("tenant: set tenant %q disabled: %w", id, ErrInvalid)
	}
	res, err := s.w.ExecContext(ctx, s.q.setDisabled, disabled, id)
	if err != nil {
		return fmt.Errorf("tenant: set tenant %q disabled: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("tenant: set tenant %q disabled: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("tenant: set tenant %q disabled: %w", id, ErrNotFound)
	}
	return nil
}

// CreateKey creates a key of tenant and returns its secret, which only this
// call ever sees, with the key as stored. It fails with ErrInvalid for an
// invalid tenant id or spec (including an ExpiresAt not in the future), and
// with ErrNotFound if the tenant does not exist. A disabled tenant may get
// keys; they authenticate once it is enabled.
func (s *Store) CreateKey(ctx context.Context, tenant string, spec KeySpec) (Secret, Key, error) {
	fail := func(err error) (Secret, Key, error) {
		return "", Key{}, fmt.Errorf("tenant: create key of %q: %w", tenant, err)
	}
	if !ValidID(tenant) {
		return fail(fmt.Errorf("tenant id: %w", ErrInvalid))
	}
	if err := validName("key name", spec.Name); err != nil {
		return fail(err)
	}
	if err := validModels(spec.Models); err != nil {
		return fail(err)
	}
	if spec.Team != "" && !ValidTeam(spec.Team) {
		return fail(fmt.Errorf("team %q: 1 to 63 characters of [a-z0-9_.-]: %w", spec.Team, ErrInvalid))
	}
	now := s.stamp()
	var expires *time.Time
	if spec.ExpiresAt != nil {
		e := spec.ExpiresAt.UTC().Truncate(time.Microsecond)
		if !e.After(now) {
			return fail(fmt.Errorf("expiry %s is not in the future: %w", e.Format(time.RFC3339Nano), ErrInvalid))
		}
		expires = &e
	}
	// Tenants are never deleted, so checking first leaves no race.
	if _, err := s.GetTenant(ctx, tenant); err != nil {
		return "", Key{}, err
	}
	models := append([]string{}, spec.Models...)
	mj, err := json.Marshal(models)
	if len(models) == 0 {
		models = nil
	}
	if err != nil {
		return fail(err)
	}
	secret := NewSecret()
	k := Key{
		ID:        newKeyID(),
		Tenant:    tenant,
		Name:      spec.Name,
		Prefix:    string(secret[:KeyPrefixLen]),
		Hash:      Hash(string(secret)),
		Models:    models,
		CreatedAt: now,
		ExpiresAt: expires,
		Team:      spec.Team,
	}
	if _, err := s.w.ExecContext(ctx, s.q.insertKey, k.ID, k.Tenant, k.Name, k.Prefix, k.Hash, string(mj),
		s.timeArg(&k.CreatedAt), s.timeArg(k.ExpiresAt), k.Team); err != nil {
		return fail(err)
	}
	return secret, k, nil
}

// GetKey returns the key id of tenant; a key of another tenant is ErrNotFound.
func (s *Store) GetKey(ctx context.Context, tenant, id string) (Key, error) {
	if !ValidID(tenant) || !ValidKeyID(id) {
		return Key{}, fmt.Errorf("tenant: get key %q of %q: %w", id, tenant, ErrInvalid)
	}
	k, err := scanKey(s.r.QueryRowContext(ctx, s.q.getKey, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, fmt.Errorf("tenant: get key %s of %q: %w", id, tenant, ErrNotFound)
	}
	if err != nil {
		return Key{}, fmt.Errorf("tenant: get key %s of %q: %w", id, tenant, err)
	}
	return k, nil
}

// ListKeys returns the keys of tenant, revoked and expired ones included,
// oldest first; ErrNotFound if there is no such tenant.
func (s *Store) ListKeys(ctx context.Context, tenant string) ([]Key, error) {
	if _, err := s.GetTenant(ctx, tenant); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, s.q.listKeys, tenant)
	if err != nil {
		return nil, fmt.Errorf("tenant: list keys of %q: %w", tenant, err)
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("tenant: list keys of %q: %w", tenant, err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tenant: list keys of %q: %w", tenant, err)
	}
	return out, nil
}

// RevokeKey revokes the key id of tenant and returns it. Revoking a revoked
// key does nothing and returns it with its first RevokedAt. A key of
// another tenant is ErrNotFound. Other processes' Authenticators see the
// revocation within their TTL; [Authenticator.Revoke] applies it to its
// own cache at once.
func (s *Store) RevokeKey(ctx context.Context, tenant, id string) (Key, error) {
	if !ValidID(tenant) || !ValidKeyID(id) {
		return Key{}, fmt.Errorf("tenant: revoke key %q of %q: %w", id, tenant, ErrInvalid)
	}
	now := s.stamp()
	k, err := scanKey(s.w.QueryRowContext(ctx, s.q.revokeKey, s.timeArg(&now), tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, fmt.Errorf("tenant: revoke key %s of %q: %w", id, tenant, ErrNotFound)
	}
	if err != nil {
		return Key{}, fmt.Errorf("tenant: revoke key %s of %q: %w", id, tenant, err)
	}
	return k, nil
}

// LookupHash returns the key whose secret hashes to hash ([Hash]) and its
// tenant, or ErrNotFound. It returns revoked and expired keys and disabled
// tenants as they are: [Authenticator.Authenticate] is what refuses them.
func (s *Store) LookupHash(ctx context.Context, hash string) (Key, Tenant, error) {
	if !validHash(hash) {
		return Key{}, Tenant{}, fmt.Errorf("tenant: look up key hash: not a hex SHA-256: %w", ErrInvalid)
	}
	var (
		k        Key
		t        Tenant
		kt       keyScan
		tCreated nullTime
	)
	err := s.r.QueryRowContext(ctx, s.q.lookupHash, hash).Scan(append(kt.dest(&k), &t.Name, &tCreated, &t.Disabled)...)
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, Tenant{}, fmt.Errorf("tenant: look up key hash: %w", ErrNotFound)
	}
	if err == nil {
		err = kt.finish(&k)
	}
	if err != nil {
		return Key{}, Tenant{}, fmt.Errorf("tenant: look up key hash: %w", err)
	}
	t.ID, t.CreatedAt = k.Tenant, tCreated.t
	return k, t, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanTenant(r scanner) (Tenant, error) {
	var (
		t       Tenant
		created nullTime
	)
	if err := r.Scan(&t.ID, &t.Name, &created, &t.Disabled); err != nil {
		return Tenant{}, err
	}
	t.CreatedAt = created.t
	return t, nil
}

// keyScan holds the columns of keyCols that need converting.
type keyScan struct {
	models                    []byte
	created, expires, revoked nullTime
}

func (ks *keyScan) dest(k *Key) []any {
	return []any{&k.ID, &k.Tenant, &k.Name, &k.Prefix, &k.Hash, &ks.models, &ks.created, &ks.expires, &ks.revoked, &k.Team}
}

func (ks *keyScan) finish(k *Key) error {
	if err := json.Unmarshal(ks.models, &k.Models); err != nil {
		return fmt.Errorf("key %s: models: %w", k.ID, err)
	}
	if len(k.Models) == 0 {
		k.Models = nil
	}
	k.CreatedAt, k.ExpiresAt, k.RevokedAt = ks.created.t, ks.expires.ptr(), ks.revoked.ptr()
	return nil
}

func scanKey(r scanner) (Key, error) {
	var (
		k  Key
		ks keyScan
	)
	if err := r.Scan(ks.dest(&k)...); err != nil {
		return Key{}, err
	}
	if err := ks.finish(&k); err != nil {
		return Key{}, err
	}
	return k, nil
}
