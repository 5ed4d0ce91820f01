// Package ledgertest holds helpers for tests of the ledger and its stores:
// a fresh PostgreSQL database per test, and logs routed to the test. It is
// imported only from _test.go files.
package ledgertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgres is the server tests use unless AIGW_TEST_POSTGRES names another.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresDSN creates a database of its own for t on the test server
// (AIGW_TEST_POSTGRES, default [DefaultPostgres]), drops it WITH (FORCE) when
// t ends, and returns its DSN. The server's user must be able to create
// databases. If the server cannot be reached, t fails; it never skips.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("AIGW_TEST_POSTGRES")
	if admin == "" {
		admin = DefaultPostgres
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("postgres at %s: %v (set AIGW_TEST_POSTGRES to a server where the user may create databases; see README)", redact(admin), err)
	}
	defer conn.Close(context.Background())

	var r [4]byte
	rand.Read(r[:])
	name := "aigw_" + sanitize(t.Name()) + "_" + hex.EncodeToString(r[:])
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		t.Fatalf("postgres at %s: create database %s: %v", redact(admin), name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("postgres at %s: drop database %s: %v", redact(admin), name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("postgres at %s: drop database %s: %v", redact(admin), name, err)
		}
	})
	return withDatabase(admin, name)
}

// sanitize maps a test name to at most 40 characters of [a-z0-9_].
func sanitize(s string) string {
	var b strings.Builder
	underscore := false
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			underscore = false
		} else if !underscore && b.Len() > 0 {
			b.WriteByte('_')
			underscore = true
		}
		if b.Len() >= 40 {
			break
		}
	}
	return strings.TrimRight(b.String(), "_")
}

// withDatabase returns dsn with its database replaced by name. It handles
// the URL form (postgres://...) and the key=value form (a later dbname wins).
func withDatabase(dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			u.Path = "/" + name
			u.RawPath = ""
			return u.String()
		}
	}
	return dsn + " dbname=" + name
}

// redact hides the password of a URL DSN, for messages.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
			return u.String()
		}
		return dsn
	}
	if strings.Contains(dsn, "password") {
		return "(a key=value DSN with a password)"
	}
	return dsn
}
