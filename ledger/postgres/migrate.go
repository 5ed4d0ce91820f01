package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLockKey is the advisory lock (the two-int4 form, so it cannot
// collide with the bigint keys of [Store.Lock]) that serializes migrations
// and the access setup of processes opening the same database at once.
const migrateLockKey1, migrateLockKey2 = 0x61696777, 1 // "aigw", 1

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations, ordered by version. A file is
// named NNNN_description.sql; versions start at 1 and have no gaps.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []migration
	for i, path := range names {
		name := strings.TrimPrefix(path, "migrations/")
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want a name starting %04d_", name, i+1)
		}
		sql, err := migrationFS.ReadFile(path)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(sql)})
	}
	return out, nil
}

// migrate brings the database to the latest schema and sets up the roles,
// grants and policies of cfg, on conn (a connection as the session user,
// not the app role). It holds an advisory lock throughout, so processes
// opening one database at once migrate it once, one after the other.
// Each migration runs in its own transaction and is recorded in
// schema_migrations.
func migrate(ctx context.Context, conn *pgx.Conn, cfg *Config, log *slog.Logger) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", migrateLockKey1, migrateLockKey2); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		// A failed unlock leaves the lock to the connection's close.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, $2)", migrateLockKey1, migrateLockKey2)
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(ms) {
		return fmt.Errorf("database schema version %d is newer than this binary's %d: upgrade aigw", current, len(ms))
	}
	applied := false
	for _, m := range ms[current:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", m.name, err)
		}
		log.Info("applied migration", "version", m.version, "name", m.name)
		applied = true
	}
	return setupAccess(ctx, conn, cfg, applied, log)
}

// setupAccess creates the app and reader roles if they do not exist, and
// grants them their privileges and row-level security policies. Role names
// are cluster-wide, so creating one tolerates another database's setup
// creating it at the same moment. It does the work only when a migration
// was just applied or the configured roles differ from the ones recorded in
// aigw_access; it then also revokes what the previously recorded roles had.
//
// The app role needs BYPASSRLS for COPY (PostgreSQL refuses COPY FROM into a
// table under row-level security); it gets it when the session user is a
// superuser and creates the role. Without it the store still works, through
// a slower staging table (see [Store.AppendBatch]).
func setupAccess(ctx context.Context, conn *pgx.Conn, cfg *Config, force bool, log *slog.Logger) error {
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS aigw_access (
		singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
		app_role    text NOT NULL,
		reader_role text NOT NULL)`); err != nil {
		return fmt.Errorf("create aigw_access: %w", err)
	}
	var oldApp, oldReader string
	err := conn.QueryRow(ctx, "SELECT app_role, reader_role FROM aigw_access").Scan(&oldApp, &oldReader)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read aigw_access: %w", err)
	}
	if !force && oldApp == cfg.AppRole && oldReader == cfg.ReaderRole {
		return nil
	}

	app := pgx.Identifier{cfg.AppRole}.Sanitize()
	reader := pgx.Identifier{cfg.ReaderRole}.Sanitize()
	var sql strings.Builder
	for _, r := range []struct {
		name, attrs string
	}{{cfg.AppRole, "NOLOGIN BYPASSRLS"}, {cfg.ReaderRole, "NOLOGIN"}} {
		// Check first: without CREATEROLE, CREATE ROLE fails on privileges
		// before it would notice that the role exists. A concurrent creator
		// makes ours fail with unique_violation (or duplicate_object).
		fmt.Fprintf(&sql, `DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %[1]s) THEN
		IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
			CREATE ROLE %[2]s %[3]s;
		ELSE
			CREATE ROLE %[2]s NOLOGIN;
		END IF;
	END IF;
	IF NOT pg_has_role(current_user, %[1]s, 'MEMBER') THEN
		EXECUTE format('GRANT %%I TO %%I', %[1]s, current_user);
	END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
`, quoteLiteral(r.name), pgx.Identifier{r.name}.Sanitize(), r.attrs)
	}
	const tables = "logs, entries, tiles, checkpoints, payloads"
	for _, old := range []string{oldApp, oldReader} {
		if old != "" && old != cfg.AppRole && old != cfg.ReaderRole {
			fmt.Fprintf(&sql, `DO $$ BEGIN
	IF EXISTS (SELECT FROM pg_roles WHERE rolname = %s) THEN
		REVOKE ALL ON %s FROM %s;
	END IF;
END $$;
`, quoteLiteral(old), tables, pgx.Identifier{old}.Sanitize())
		}
	}
	fmt.Fprintf(&sql, `
REVOKE ALL ON %[3]s FROM PUBLIC;
REVOKE ALL ON %[3]s FROM %[1]s, %[2]s;
DO $$ BEGIN
	EXECUTE format('GRANT USAGE ON SCHEMA %%I TO %%I, %%I', current_schema(), %[4]s, %[5]s);
END $$;
-- The app appends: INSERT and SELECT only on entries and checkpoints.
GRANT SELECT, INSERT ON entries, checkpoints TO %[1]s;
-- Tiles grow in place (trigger tiles_only_grow), heads move forward
-- (logs_head_forward), payloads can be erased (payloads_erasure_only).
GRANT SELECT, INSERT, UPDATE (hashes) ON tiles TO %[1]s;
GRANT SELECT, INSERT, UPDATE (size, chain, compact_range, checkpoint) ON logs TO %[1]s;
GRANT SELECT, INSERT, UPDATE (erased_at, salt, data) ON payloads TO %[1]s;
GRANT USAGE ON SEQUENCE logs_id_seq TO %[1]s;
GRANT EXECUTE ON FUNCTION aigw_session_log_id() TO %[1]s, %[2]s;
GRANT SELECT ON %[3]s TO %[2]s;
`, app, reader, tables, quoteLiteral(cfg.AppRole), quoteLiteral(cfg.ReaderRole))
	for _, table := range []string{"logs", "entries", "tiles", "checkpoints", "payloads"} {
		own := "log_id = aigw_session_log_id()"
		if table == "logs" {
			own = "name = current_setting('aigw.log', true)"
		}
		fmt.Fprintf(&sql, `
DROP POLICY IF EXISTS aigw_app ON %[1]s;
CREATE POLICY aigw_app ON %[1]s TO %[2]s USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS aigw_reader ON %[1]s;
CREATE POLICY aigw_reader ON %[1]s FOR SELECT TO %[3]s USING (%[4]s);
`, table, app, reader, own)
	}
	fmt.Fprintf(&sql, `
INSERT INTO aigw_access (app_role, reader_role) VALUES (%s, %s)
	ON CONFLICT (singleton) DO UPDATE SET app_role = excluded.app_role, reader_role = excluded.reader_role;
`, quoteLiteral(cfg.AppRole), quoteLiteral(cfg.ReaderRole))

	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sql.String())
		return err
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
			return fmt.Errorf("set up roles %q and %q: %w (hint: create them NOLOGIN, the app role with BYPASSRLS, "+
				"and grant both to the user of the DSN, or connect as a user with CREATEROLE)", cfg.AppRole, cfg.ReaderRole, err)
		}
		return fmt.Errorf("set up roles %q and %q: %w", cfg.AppRole, cfg.ReaderRole, err)
	}
	log.Info("set up roles and row-level security", "app_role", cfg.AppRole, "reader_role", cfg.ReaderRole)
	return nil
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings on).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
