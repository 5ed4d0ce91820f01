package tenant

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// migrationsTable records the applied migrations. It is not the ledger's
// schema_migrations, so that the tenant tables may live in the ledger's
// PostgreSQL database.
const migrationsTable = "tenant_schema_migrations"

// The PostgreSQL advisory lock (two-int4 form: "aigw", "tent") that
// serializes the migrations of processes opening one database at once. The
// ledger's stores use ("aigw", 1) and bigint keys.
const migrateLockKey1, migrateLockKey2 = 0x61696777, 0x74656e74

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations of driver in order. A file is
// named NNNN_description.sql; versions start at 1 and have no gaps.
func migrations(driver string) ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/"+driver+"/*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []migration
	for i, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want a name starting %04d_", base, i+1)
		}
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no migrations for driver %q", driver)
	}
	return out, nil
}

// migrate brings the schema up to date on conn, a connection of its own
// (the SQLite writer, whose transactions BEGIN IMMEDIATE, or a PostgreSQL
// session holding the advisory lock). Each migration runs in its own
// transaction, which checks first that no other process applied it.
func migrate(ctx context.Context, conn *sql.Conn, driver string, log *slog.Logger) error {
	ms, err := migrations(driver)
	if err != nil {
		return err
	}
	if driver == DriverPostgres {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1, $2)", migrateLockKey1, migrateLockKey2); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		defer func() {
			// A failed unlock leaves the lock to the session's end (conn is closed after).
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, $2)", migrateLockKey1, migrateLockKey2)
		}()
	}
	create := "CREATE TABLE IF NOT EXISTS " + migrationsTable + ` (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at TEXT    NOT NULL
	)`
	if driver == DriverSQLite {
		create += " STRICT"
	}
	if _, err := conn.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("create %s: %w", migrationsTable, err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM "+migrationsTable).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(ms) {
		return fmt.Errorf("tenant schema version %d is newer than this aigw knows (%d): upgrade aigw", current, len(ms))
	}
	for _, m := range ms[current:] {
		applied, err := apply(ctx, conn, driver, m)
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if applied {
			log.Info("tenant schema migration applied", "version", m.version, "migration", m.name)
		}
	}
	return nil
}

// apply runs m in a transaction unless it is already recorded, and reports
// whether it ran.
func apply(ctx context.Context, conn *sql.Conn, driver string, m migration) (bool, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var done int
	if err := tx.QueryRowContext(ctx, rebind(driver, "SELECT count(*) FROM "+migrationsTable+" WHERE version = ?"), m.version).Scan(&done); err != nil {
		return false, err
	}
	if done > 0 {
		return false, nil // another process applied it
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, rebind(driver, "INSERT INTO "+migrationsTable+" (version, name, applied_at) VALUES (?, ?, ?)"),
		m.version, m.name, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}

// rebind turns the '?' placeholders of query into PostgreSQL's $1, $2, ...
// The queries of this package hold no '?' but placeholders.
func rebind(driver, query string) string {
	if driver != DriverPostgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}
