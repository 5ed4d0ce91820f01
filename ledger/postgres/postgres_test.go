package postgres

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"aigw/ledger"
	"aigw/ledger/ledgertest"
	"aigw/ledger/storetest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// openTestStore opens a Store on a fresh database of its own.
func openTestStore(t *testing.T) *Store {
	t.Helper()
	return openStore(t, Config{DSN: ledgertest.PostgresDSN(t)})
}

// openStore opens a Store with cfg (logging to t) and closes it when t ends.
func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = ledgertest.TestLogger(t)
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 4
	}
	s, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// quietLogger logs warnings and errors only, to stderr (for benchmarks).
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func TestStore(t *testing.T) {
	storetest.RunWithReopen(t,
		func(t *testing.T) ledger.Store { return openTestStore(t) },
		func(t *testing.T, s ledger.Store) ledger.Store { return openStore(t, s.(*Store).cfg) })
}

// superuser connects to dsn as the DSN's user (the test server's superuser,
// which owns the tables) without SET ROLE.
func superuser(t *testing.T, dsn string) *pgx.Conn { return superuserTB(t, dsn) }

func superuserTB(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// asRole connects to dsn and switches to role.
func asRole(t *testing.T, dsn, role string) *pgx.Conn {
	t.Helper()
	conn := superuser(t, dsn)
	if _, err := conn.Exec(t.Context(), "SET ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return conn
}

// wantSQLError runs sql on conn and fails t unless it fails with SQLSTATE code.
func wantSQLError(t *testing.T, conn *pgx.Conn, code, sql string, args ...any) {
	t.Helper()
	_, err := conn.Exec(t.Context(), sql, args...)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code {
		t.Errorf("%s = %v; want SQLSTATE %s", sql, err, code)
		return
	}
	t.Logf("%s\n\t→ %s (SQLSTATE %s)", sql, pgErr.Message, pgErr.Code)
}

const (
	sqlstateInsufficientPrivilege = "42501"
	sqlstateRestrictViolation     = "23001"
)

// TestAppendOnly checks that entries and checkpoints cannot be changed: the
// app role has no privilege to, and the triggers refuse even the owner (a
// superuser here), replication mode included.
func TestAppendOnly(t *testing.T) {
	t.Parallel()
	s := openTestStore(t)
	a := storetest.NewAppender(t, "acme")
	a.AppendN(t, s, 300)
	dsn := s.cfg.DSN

	changes := []string{
		"UPDATE entries SET entry = 'x' WHERE idx = 1",
		"DELETE FROM entries WHERE idx = 1",
		"TRUNCATE entries",
		"UPDATE checkpoints SET note = 'x'",
		"DELETE FROM checkpoints",
		"TRUNCATE checkpoints",
		"DELETE FROM tiles",
		"TRUNCATE tiles",
		"DELETE FROM payloads",
		"DELETE FROM logs",
	}
	t.Run("AppRoleHasNoPrivilege", func(t *testing.T) {
		app := asRole(t, dsn, s.cfg.AppRole)
		for _, sql := range changes {
			wantSQLError(t, app, sqlstateInsufficientPrivilege, sql)
		}
		// What the app may change, it may change only as the ledger allows.
		wantSQLError(t, app, sqlstateRestrictViolation, "UPDATE tiles SET hashes = substr(hashes, 1, 32) WHERE level = 0 AND idx = 1")
		wantSQLError(t, app, sqlstateRestrictViolation, "UPDATE logs SET size = 1")
		wantSQLError(t, app, sqlstateInsufficientPrivilege, "UPDATE logs SET name = 'other'")
		wantSQLError(t, app, sqlstateRestrictViolation, "UPDATE payloads SET data = 'forged' WHERE idx = 0")
	})
	t.Run("TriggersRefuseOwner", func(t *testing.T) {
		owner := superuser(t, dsn)
		for _, sql := range changes {
			wantSQLError(t, owner, sqlstateRestrictViolation, sql)
		}
	})
	t.Run("TriggersRefuseReplicationMode", func(t *testing.T) {
		owner := superuser(t, dsn)
		if _, err := owner.Exec(t.Context(), "SET session_replication_role = replica"); err != nil {
			t.Fatal(err)
		}
		for _, sql := range changes {
			wantSQLError(t, owner, sqlstateRestrictViolation, sql)
		}
	})
	a.Check(t, s)
}

// TestSessionsRunAsAppRole checks that the Store's own connections run as
// the app role, so that a bug in the Store cannot rewrite the ledger either.
func TestSessionsRunAsAppRole(t *testing.T) {
	t.Parallel()
	s := openTestStore(t)
	a := storetest.NewAppender(t, "acme")
	a.AppendN(t, s, 5)
	ctx := t.Context()
	var user string
	if err := s.pool.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != DefaultAppRole {
		t.Errorf("the pool's current_user = %q, %v; want %q", user, err, DefaultAppRole)
	}
	for _, sql := range []string{"DELETE FROM entries", "UPDATE entries SET entry = 'x'", "TRUNCATE checkpoints"} {
		_, err := s.pool.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != sqlstateInsufficientPrivilege {
			t.Errorf("%s through the Store's pool = %v; want SQLSTATE %s", sql, err, sqlstateInsufficientPrivilege)
		}
	}
	a.Check(t, s)
}

// TestTilesOnlyGrow checks the one deliberate exception to append-only:
// a tile may be updated, by the owner too, only to a value that extends it.
func TestTilesOnlyGrow(t *testing.T) {
	t.Parallel()
	s := openTestStore(t)
	a := storetest.NewAppender(t, "grow")
	a.AppendN(t, s, 10)
	owner := superuser(t, s.cfg.DSN)
	for _, sql := range []string{
		"UPDATE tiles SET hashes = substr(hashes, 1, 9*32) WHERE level = 0 AND idx = 0",                               // shrink
		`UPDATE tiles SET hashes = '\x00'::bytea || substr(hashes, 2) WHERE level = 0 AND idx = 0`,                    // change a byte
		`UPDATE tiles SET hashes = substr(hashes, 1, 9*32) || sha256('x') || sha256('y') WHERE level = 0 AND idx = 0`, // change the last hash, grow
		"UPDATE tiles SET idx = 1 WHERE level = 0 AND idx = 0",                                                        // move
	} {
		wantSQLError(t, owner, sqlstateRestrictViolation, sql)
	}
	// Growing is allowed (this makes the stored tile wider than the tree,
	// which ReadTiles tolerates: tiles only grow).
	if _, err := owner.Exec(t.Context(), "UPDATE tiles SET hashes = hashes || sha256('next') WHERE level = 0 AND idx = 0"); err != nil {
		t.Errorf("extending a tile: %v", err)
	}
	a.Check(t, s)
}

// TestRowLevelSecurity checks that a reader session sees only the log that
// aigw.log names, and nothing without it.
func TestRowLevelSecurity(t *testing.T) {
	t.Parallel()
	s := openTestStore(t)
	a, b := storetest.NewAppender(t, "tenant-a"), storetest.NewAppender(t, "tenant-b")
	a.AppendN(t, s, 40)
	b.AppendN(t, s, 30)
	b.AppendN(t, s, 300)
	ctx := t.Context()
	reader := asRole(t, s.cfg.DSN, s.cfg.ReaderRole)

	count := func(table string) int {
		t.Helper()
		var n int
		if err := reader.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatalf("count %s as reader: %v", table, err)
		}
		return n
	}
	tables := []string{"logs", "entries", "tiles", "checkpoints", "payloads"}
	wantCounts := func(name string, want map[string]int) {
		t.Helper()
		for _, table := range tables {
			if got := count(table); got != want[table] {
				t.Errorf("%s: reader sees %d rows of %s; want %d", name, got, table, want[table])
			}
		}
	}
	wantCounts("without aigw.log", map[string]int{})
	if _, err := reader.Exec(ctx, "SET aigw.log = 'tenant-a'"); err != nil {
		t.Fatal(err)
	}
	// tenant-a: 40 entries, 1 tile, 1 checkpoint, every other entry with a payload.
	wantCounts("aigw.log = tenant-a", map[string]int{"logs": 1, "entries": 40, "tiles": 1, "checkpoints": 1, "payloads": 20})
	var n int
	idB := b.Entry(0).EventID
	if err := reader.QueryRow(ctx, "SELECT count(*) FROM entries WHERE event_id = $1", idB).Scan(&n); err != nil || n != 0 {
		t.Errorf("reader of tenant-a looking up an event of tenant-b: %d rows, %v; want 0, nil", n, err)
	}
	if _, err := reader.Exec(ctx, "SET aigw.log = 'tenant-b'"); err != nil {
		t.Fatal(err)
	}
	wantCounts("aigw.log = tenant-b", map[string]int{"logs": 1, "entries": 330, "tiles": 3, "checkpoints": 2, "payloads": 165})
	if _, err := reader.Exec(ctx, "SET aigw.log = 'no-such-log'"); err != nil {
		t.Fatal(err)
	}
	wantCounts("aigw.log = no-such-log", map[string]int{})
	// The reader writes nothing.
	wantSQLError(t, reader, sqlstateInsufficientPrivilege, "INSERT INTO checkpoints (log_id, size, note) VALUES (1, 99, 'x')")
}

// TestWithoutBypassRLS runs the store with an app role that lacks BYPASSRLS,
// as a managed PostgreSQL might leave it: appends go through the staging table.
func TestWithoutBypassRLS(t *testing.T) {
	t.Parallel()
	dsn := ledgertest.PostgresDSN(t)
	conn := superuser(t, dsn)
	if _, err := conn.Exec(t.Context(), `DO $$ BEGIN
		CREATE ROLE aigw_test_app_nobypass NOLOGIN;
	EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, Config{DSN: dsn, AppRole: "aigw_test_app_nobypass"})
	if !s.stage {
		t.Fatal("store does not use the staging table with an app role without BYPASSRLS")
	}
	a := storetest.NewAppender(t, "staged")
	a.AppendN(t, s, 10)
	a.AppendN(t, s, 300)
	b := a.Fork(t).NextN(t, 3)
	b.Entries[1].EventID = a.Entry(4).EventID
	if err := s.AppendBatch(t.Context(), b); !errors.Is(err, ledger.ErrDuplicate) {
		t.Errorf("AppendBatch(a duplicate event, staged) = %v; want ErrDuplicate", err)
	}
	a.AppendN(t, s, 5)
	if err := s.ErasePayload(t.Context(), a.Log(), 2); err != nil {
		t.Fatalf("ErasePayload(2), under the app policy = %v", err)
	}
	a.MarkErased(2)
	a.Check(t, s)
}

// TestSimpleProtocol runs the store over the simple query protocol (a DSN
// may ask for it, for poolers), where results come as text.
func TestSimpleProtocol(t *testing.T) {
	t.Parallel()
	dsn := ledgertest.PostgresDSN(t)
	if !strings.Contains(dsn, "?") {
		t.Fatalf("test DSN %q is not a URL with parameters", dsn)
	}
	s := openStore(t, Config{DSN: dsn + "&default_query_exec_mode=simple_protocol"})
	a := storetest.NewAppender(t, "simple")
	a.AppendN(t, s, 10)
	a.AppendN(t, s, 300)
	a.Check(t, s)
}

// TestTwoProcesses opens two Stores on one database at the same moment, as
// two processes starting together: migrations run once, Lock excludes across
// them, and of two appends at the same start exactly one wins.
func TestTwoProcesses(t *testing.T) {
	t.Parallel()
	dsn := ledgertest.PostgresDSN(t)
	var (
		stores [2]*Store
		errs   [2]error
		wg     sync.WaitGroup
	)
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = Open(t.Context(), Config{DSN: dsn, MaxConns: 4, Logger: ledgertest.TestLogger(t)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open #%d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	s1, s2 := stores[0], stores[1]
	var versions int
	if err := superuser(t, dsn).QueryRow(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&versions); err != nil || versions != 2 {
		t.Errorf("schema_migrations has %d rows, %v; want 2", versions, err)
	}

	ctx := t.Context()
	release, err := s1.Lock(ctx, "partition-0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Lock(ctx, "partition-0"); !errors.Is(err, ledger.ErrLocked) {
		t.Errorf("Lock held by the other process = %v; want ErrLocked", err)
	}
	r2, err := s2.Lock(ctx, "partition-1")
	if err != nil {
		t.Errorf("Lock of another name = %v; want nil", err)
	} else {
		r2()
	}
	release()
	release() // a second call does nothing
	if r, err := s2.Lock(ctx, "partition-0"); err != nil {
		t.Errorf("Lock after release = %v; want nil", err)
	} else {
		r()
	}

	a := storetest.NewAppender(t, "contested")
	a.AppendN(t, s1, 5)
	for range 5 {
		f1, f2 := a.Fork(t), a.Fork(t)
		b1, b2 := f1.NextN(t, 50), f2.NextN(t, 50)
		var errs [2]error
		var wg sync.WaitGroup
		wg.Go(func() { errs[0] = s1.AppendBatch(ctx, b1) })
		wg.Go(func() { errs[1] = s2.AppendBatch(ctx, b2) })
		wg.Wait()
		switch {
		case errs[0] == nil && errors.Is(errs[1], ledger.ErrConflict):
			a = f1
		case errs[1] == nil && errors.Is(errs[0], ledger.ErrConflict):
			a = f2
		default:
			t.Fatalf("concurrent AppendBatch at %d = %v, %v; want exactly one ErrConflict", b1.Start, errs[0], errs[1])
		}
	}
	a.Check(t, s1)
	a.Check(t, s2)
}

// TestReopen checks that reopening migrates nothing again and finds the data.
func TestReopen(t *testing.T) {
	t.Parallel()
	s := openTestStore(t)
	a := storetest.NewAppender(t, "kept")
	a.AppendN(t, s, 20)
	s.Close()
	for range 2 {
		s2 := openStore(t, s.cfg)
		a.AppendN(t, s2, 3)
		a.Check(t, s2)
		s2.Close()
	}
	var versions int
	if err := superuser(t, s.cfg.DSN).QueryRow(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&versions); err != nil || versions != 2 {
		t.Errorf("schema_migrations has %d rows, %v; want 2", versions, err)
	}
}

// TestChangedRoles reopens a database with other role names: the new roles
// get the privileges and policies, the old ones lose them.
func TestChangedRoles(t *testing.T) {
	t.Parallel()
	s := openTestStore(t)
	a := storetest.NewAppender(t, "roles")
	a.AppendN(t, s, 5)
	s.Close()
	cfg := s.cfg
	cfg.AppRole, cfg.ReaderRole = "aigw_test_app2", "aigw_test_reader2"
	s2 := openStore(t, cfg)
	a.AppendN(t, s2, 5)
	a.Check(t, s2)

	old := asRole(t, s.cfg.DSN, s.cfg.AppRole)
	wantSQLError(t, old, sqlstateInsufficientPrivilege, "SELECT count(*) FROM entries")
	reader := asRole(t, s.cfg.DSN, cfg.ReaderRole)
	var n int
	if _, err := reader.Exec(t.Context(), "SET aigw.log = 'roles'"); err != nil {
		t.Fatal(err)
	}
	if err := reader.QueryRow(t.Context(), "SELECT count(*) FROM entries").Scan(&n); err != nil || n != 10 {
		t.Errorf("new reader role sees %d entries, %v; want 10", n, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string // a substring of the error; "" for valid
	}{
		{"OK", Config{DSN: "postgres://h/db"}, ""},
		{"ErrEmptyDSN", Config{}, "empty DSN"},
		{"ErrNegativeMaxConns", Config{DSN: "x", MaxConns: -1}, "MaxConns"},
		{"ErrRoleNameQuoted", Config{DSN: "x", AppRole: `a"; DROP TABLE entries; --`}, "role name"},
		{"ErrRoleNameUppercase", Config{DSN: "x", ReaderRole: "Reader"}, "role name"},
		{"ErrSameRoles", Config{DSN: "x", AppRole: "r", ReaderRole: "r"}, "both"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v; want %q", err, tt.want)
			}
		})
	}
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	_, err := Open(t.Context(), Config{DSN: "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2"})
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("Open(unreachable) = %v; want a connect error", err)
	}
}

func TestParseUUID(t *testing.T) {
	for _, s := range []string{ledger.NewEventID(), "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-7fff-bfff-ffffffffffff"} {
		u, ok := parseUUID(s)
		if got := string(appendUUID(nil, u[:])); !ok || got != s {
			t.Errorf("parseUUID(%q) round trip = %q, %v", s, got, ok)
		}
	}
	if u, ok := parseUUID("0189ABCD-0000-7000-8000-00000000000F"); !ok || string(appendUUID(nil, u[:])) != "0189abcd-0000-7000-8000-00000000000f" {
		t.Errorf("parseUUID(uppercase) = %x, %v", u, ok)
	}
	for _, s := range []string{"", "not-a-uuid", "0189abcd00007000800000000000000f", "0189abcd-0000-7000-8000-00000000000g", "0189abcd-0000-7000-8000_00000000000f"} {
		if _, ok := parseUUID(s); ok {
			t.Errorf("parseUUID(%q) = ok; want not ok", s)
		}
	}
}

func FuzzParseUUID(f *testing.F) {
	f.Add("0189abcd-0000-7000-8000-00000000000f")
	f.Add("not-a-uuid")
	f.Fuzz(func(t *testing.T, s string) {
		u, ok := parseUUID(s)
		if !ok {
			return
		}
		if got := string(appendUUID(nil, u[:])); got != strings.ToLower(s) {
			t.Errorf("parseUUID(%q) round trip = %q", s, got)
		}
	})
}
