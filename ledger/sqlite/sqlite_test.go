package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/sqlite"
	"aigw/ledger/storetest"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// testLogger sends the store's logs to t.Logf.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Logf("%s", bytes.TrimSuffix(p, []byte("\n")))
	return len(p), nil
}

// openStore opens the store at path and closes it when t ends.
func openStore(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open(%s) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

func tempDB(t testing.TB) string { return filepath.Join(t.TempDir(), "ledger.db") }

func TestStore(t *testing.T) {
	var paths sync.Map // ledger.Store → its file
	storetest.RunWithReopen(t,
		func(t *testing.T) ledger.Store {
			path := tempDB(t)
			s := openStore(t, path)
			paths.Store(s, path)
			return s
		},
		func(t *testing.T, s ledger.Store) ledger.Store {
			path, ok := paths.Load(s)
			if !ok {
				t.Fatal("reopen: not a store of this test")
			}
			return openStore(t, path.(string))
		})
}

// rawDB opens the file with plain database/sql, as a careless operator would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestTriggersRefuseRewrites(t *testing.T) {
	t.Parallel()
	path := tempDB(t)
	s := openStore(t, path)
	a := storetest.NewAppender(t, "tenant")
	a.AppendN(t, s, 300)
	a.AppendN(t, s, 4)
	if err := s.ErasePayload(t.Context(), a.Log(), 2); err != nil {
		t.Fatal(err)
	}
	a.MarkErased(2)
	db := rawDB(t, path)

	for _, stmt := range []string{
		"UPDATE entries SET entry = x'7b7d' WHERE idx = 0",
		"UPDATE entries SET chain = zeroblob(32) WHERE idx = 5",
		"DELETE FROM entries WHERE idx = 303",
		"DELETE FROM entries",
		"INSERT OR REPLACE INTO entries SELECT log_id, idx, event_id, x'7b7d', chain FROM entries WHERE idx = 7",
		"INSERT OR REPLACE INTO entries SELECT log_id, 304, event_id, entry, chain FROM entries WHERE idx = 8",
		"UPDATE checkpoints SET note = x'00'",
		"DELETE FROM checkpoints WHERE size = 304",
		"INSERT OR REPLACE INTO checkpoints SELECT log_id, size, x'00' FROM checkpoints WHERE size = 300",
		"UPDATE tiles SET hashes = substr(hashes, 1, 32) WHERE level = 0 AND idx = 1",
		"UPDATE tiles SET hashes = zeroblob(length(hashes)) WHERE level = 0 AND idx = 0",
		"UPDATE tiles SET hashes = CAST(zeroblob(32) || substr(hashes, 33) || zeroblob(32) AS BLOB) WHERE level = 0 AND idx = 1",
		"DELETE FROM tiles WHERE level = 0 AND idx = 1",
		"INSERT OR REPLACE INTO tiles SELECT log_id, level, idx, zeroblob(length(hashes)) FROM tiles WHERE level = 0 AND idx = 0",
		"UPDATE logs SET size = size - 1",
		"UPDATE logs SET name = 'other'",
		"DELETE FROM logs",
		"INSERT OR REPLACE INTO logs SELECT id, name, 1, compact_range, chain, checkpoint FROM logs",
		"UPDATE payloads SET data = x'00' WHERE idx = 0",
		"UPDATE payloads SET salt = x'00', data = x'00', erased_at = NULL WHERE idx = 2",
		"DELETE FROM payloads WHERE idx = 2",
		"INSERT OR REPLACE INTO payloads SELECT log_id, idx, x'00', x'00', NULL FROM payloads WHERE idx = 2",
	} {
		_, err := db.ExecContext(t.Context(), stmt)
		var se *msqlite.Error
		if !errors.As(err, &se) || se.Code() != sqlite3.SQLITE_CONSTRAINT_TRIGGER {
			t.Errorf("%s = %v; want a trigger's refusal", stmt, err)
		}
	}
	// Growing a tile is what appends do; a trigger must allow it.
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(t.Context(), "UPDATE tiles SET hashes = CAST(hashes || zeroblob(32) AS BLOB) WHERE level = 0 AND idx = 1"); err != nil {
		t.Errorf("extending a tile = %v; want nil", err)
	}
	tx.Rollback()
	a.Check(t, s)
}

func TestReopenKeepsEverything(t *testing.T) {
	t.Parallel()
	path := tempDB(t)
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	a := storetest.NewAppender(t, "kept")
	a.AppendN(t, s, 257)
	a.AppendN(t, s, 3)
	if err := s.ErasePayload(t.Context(), a.Log(), 4); err != nil {
		t.Fatal(err)
	}
	a.MarkErased(4)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close() = %v; want nil", err)
	}
	if _, err := s.Head(t.Context(), a.Log()); err == nil {
		t.Errorf("Head after Close = nil error; want one")
	}
	s = openStore(t, path)
	a.Check(t, s)
	a.AppendN(t, s, 10)
	a.Check(t, s)
}

func TestSecondStoreSharesFileAndLocks(t *testing.T) {
	t.Parallel()
	path := tempDB(t)
	s1, s2 := openStore(t, path), openStore(t, path)
	a := storetest.NewAppender(t, "shared")
	a.AppendN(t, s1, 20)
	a.Check(t, s2)
	a.AppendN(t, s2, 20)
	a.Check(t, s1)
	release, err := s1.Lock(t.Context(), "shared")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Lock(t.Context(), "shared"); !errors.Is(err, ledger.ErrLocked) {
		t.Errorf("Lock on a second Store while the first holds it = %v; want ErrLocked", err)
	}
	release()
	r2, err := s2.Lock(t.Context(), "shared")
	if err != nil {
		t.Errorf("Lock on a second Store after release = %v; want nil", err)
	} else {
		r2()
	}
}

// TestLockExcludesOtherProcess takes a lock in a child process (this test
// binary, run as TestLockHelperProcess) and checks that it excludes this
// process until the child dies.
func TestLockExcludesOtherProcess(t *testing.T) {
	t.Parallel()
	path := tempDB(t)
	s := openStore(t, path)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), "AIGW_SQLITE_LOCK_HELPER="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 6)
	if _, err := stdout.Read(buf); err != nil || string(buf) != "LOCKED" {
		t.Fatalf("helper process said %q, %v; want LOCKED", buf, err)
	}
	if _, err := s.Lock(t.Context(), "seq/0"); !errors.Is(err, ledger.ErrLocked) {
		t.Fatalf("Lock held by another process = %v; want ErrLocked", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	release, err := s.Lock(t.Context(), "seq/0")
	if err != nil {
		t.Fatalf("Lock after the holding process died = %v; want nil", err)
	}
	release()
}

func TestLockHelperProcess(t *testing.T) {
	path := os.Getenv("AIGW_SQLITE_LOCK_HELPER")
	if path == "" {
		t.Skip("run by TestLockExcludesOtherProcess")
	}
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := s.Lock(context.Background(), "seq/0"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Stdout.WriteString("LOCKED")
	time.Sleep(time.Minute) // until killed
	os.Exit(0)
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	path := tempDB(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
			if err != nil {
				t.Errorf("concurrent Open = %v", err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	var n, max int
	if err := rawDB(t, path).QueryRow("SELECT count(*), max(version) FROM schema_migrations").Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != max || n < 1 {
		t.Errorf("schema_migrations has %d rows up to version %d; want one per version", n, max)
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string
	}{
		{"NewerSchema", func(t *testing.T, path string) {
			s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if _, err := rawDB(t, path).Exec("INSERT INTO schema_migrations VALUES (999, '0999_future.sql', '2030-01-01T00:00:00Z')"); err != nil {
				t.Fatal(err)
			}
		}, "newer than this aigw knows"},
		{"OtherApplication", func(t *testing.T, path string) {
			if _, err := rawDB(t, path).Exec("PRAGMA application_id = 42; CREATE TABLE t (x)"); err != nil {
				t.Fatal(err)
			}
		}, "not an aigw ledger database"},
		{"OtherTables", func(t *testing.T, path string) {
			if _, err := rawDB(t, path).Exec("CREATE TABLE entries (x)"); err != nil {
				t.Fatal(err)
			}
		}, "not an aigw ledger database"},
		{"NotADatabase", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte("not sqlite "), 1000), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := tempDB(t)
			tc.setup(t, path)
			s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
			if err == nil {
				s.Close()
				t.Fatalf("Open = nil; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open = %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  sqlite.Config
		ok   bool
	}{
		{"PathOnly", sqlite.Config{Path: "x.db"}, true},
		{"Full", sqlite.Config{Path: "x.db", BusyTimeout: time.Second, ReadConns: 2, Logger: slog.Default()}, true},
		{"NoPath", sqlite.Config{}, false},
		{"Memory", sqlite.Config{Path: ":memory:"}, false},
		{"URI", sqlite.Config{Path: "file:x.db?mode=ro"}, false},
		{"NegativeBusyTimeout", sqlite.Config{Path: "x.db", BusyTimeout: -1}, false},
		{"NegativeReadConns", sqlite.Config{Path: "x.db", ReadConns: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v; want ok %v", err, tc.ok)
			}
		})
	}
}

// TestErasureLeavesNoBytes checks that an erased payload is gone from every
// file of the database, not only from query results.
func TestErasureLeavesNoBytes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	s := openStore(t, path)
	marker := []byte("SECRET-PAYLOAD-7f3a9c")
	salt := []byte("SALT-MARKER-0123456789abcdef0123") // 32 bytes, to find the salt too
	a := storetest.NewAppender(t, "erase")
	a.AppendN(t, s, 10)
	big := bytes.Repeat(marker, 400) // spills to overflow pages
	f := a.Fork(t)
	b := f.Next(t, storetest.Item{Event: storetest.Event(a.Log()), Payload: marker},
		storetest.Item{Event: storetest.Event(a.Log()), Payload: big})
	b.Payloads[0].Salt = salt // the store trusts the caller's commitment
	if err := s.AppendBatch(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if !filesContain(t, dir, marker) {
		t.Fatal("the payload is not in the database files before erasure; the test cannot see it")
	}
	for _, i := range []uint64{10, 11} {
		if err := s.ErasePayload(t.Context(), a.Log(), i); err != nil {
			t.Fatal(err)
		}
	}
	f.AppendN(t, s, 5) // more writes after the erasure
	for _, m := range [][]byte{marker, salt} {
		if filesContain(t, dir, m) {
			t.Errorf("%q is still in the database files after erasure", m)
		}
	}
}

func filesContain(t *testing.T, dir string, b []byte) bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, b) {
			t.Logf("%q found in %s", b, e.Name())
			return true
		}
	}
	return false
}

// TestMigrateDropsLeafIndex upgrades a file written with the leaf-hash
// column and index of migration 0001: its entries, proofs and lookups by
// leaf hash survive 0002, and appends go on.
func TestMigrateDropsLeafIndex(t *testing.T) {
	t.Parallel()
	path := tempDB(t)
	s := openStore(t, path)
	a := storetest.NewAppender(t, "tenant")
	a.AppendN(t, s, 300)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Back to the shape of version 1: the lh column (filled) and its index.
	db := rawDB(t, path)
	for _, stmt := range []string{
		"ALTER TABLE entries ADD COLUMN lh INTEGER NOT NULL DEFAULT 0",
		"CREATE INDEX entries_leaf ON entries (log_id, lh)",
		"DELETE FROM schema_migrations WHERE version = 2",
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	s = openStore(t, path)
	a.Check(t, s)
	for _, i := range []uint64{0, 255, 256, 299} {
		if got, err := s.LookupLeaf(t.Context(), a.Log(), ledger.LeafHash(a.Entry(i).Data)); err != nil || got != i {
			t.Errorf("LookupLeaf(leaf of %d) = %d, %v; want %d", i, got, err, i)
		}
	}
	a.AppendN(t, s, 10)
	a.Check(t, s)
	var cols int
	if err := rawDB(t, path).QueryRow("SELECT count(*) FROM pragma_table_info('entries') WHERE name = 'lh'").Scan(&cols); err != nil || cols != 0 {
		t.Errorf("entries.lh columns after the migration = %d, %v; want 0", cols, err)
	}
}
