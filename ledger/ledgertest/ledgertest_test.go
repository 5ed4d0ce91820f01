package ledgertest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestPostgresDSN(t *testing.T) {
	t.Parallel()
	var dsn, name string
	t.Run("CreatesDatabase", func(t *testing.T) {
		dsn = PostgresDSN(t)
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatalf("connect to %s: %v", dsn, err)
		}
		defer conn.Close(context.Background())
		if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, "aigw_testpostgresdsn_createsdatabase_") {
			t.Errorf("current_database() = %q; want aigw_testpostgresdsn_createsdatabase_<random>", name)
		}
	})
	t.Run("DroppedAfterTest", func(t *testing.T) {
		if name == "" {
			t.Skip("no database was created")
		}
		conn, err := pgx.Connect(t.Context(), DefaultPostgres)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("database %s still exists after its test", name)
		}
	})
}

func TestSanitize(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"TestStore", "teststore"},
		{"TestStore/AppendThenRead", "teststore_appendthenread"},
		{"TestX/with spaces & symbols!", "testx_with_spaces_symbols"},
		{"Test/#01", "test_01"},
		{strings.Repeat("A", 100), strings.Repeat("a", 40)},
	} {
		if got := sanitize(tt.in); got != tt.want {
			t.Errorf("sanitize(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestWithDatabase(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"URL", "postgres://u@h:5432/test?sslmode=disable", "postgres://u@h:5432/aigw_x?sslmode=disable"},
		{"URLNoPath", "postgresql://u@h", "postgresql://u@h/aigw_x"},
		{"KeyValue", "host=h user=u dbname=test", "host=h user=u dbname=test dbname=aigw_x"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := withDatabase(tt.in, "aigw_x"); got != tt.want {
				t.Errorf("withDatabase(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	if got := redact("postgres://u:secret@h/db"); strings.Contains(got, "secret") {
		t.Errorf("redact kept the password: %q", got)
	}
	if got := redact("host=h password=secret"); strings.Contains(got, "secret") {
		t.Errorf("redact kept the password: %q", got)
	}
}

type recorder struct {
	testing.TB
	lines []string
}

func (r *recorder) Logf(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func TestTestLogger(t *testing.T) {
	r := &recorder{TB: t}
	TestLogger(r).Debug("appended batch", "log", "acme", "size", 3)
	if len(r.lines) != 1 {
		t.Fatalf("got %d log lines; want 1", len(r.lines))
	}
	for _, want := range []string{"level=DEBUG", "source=ledgertest_test.go:", `msg="appended batch"`, "log=acme", "size=3"} {
		if !strings.Contains(r.lines[0], want) {
			t.Errorf("log line %q does not contain %q", r.lines[0], want)
		}
	}
}
