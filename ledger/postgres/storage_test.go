package postgres

import (
	"fmt"
	"strings"
	"testing"

	"aigw/ledger"
	"aigw/ledger/ledgertest"

	"github.com/jackc/pgx/v5"
)

// storageBudget is the most a log may take per entry beyond the entry bytes
// themselves, tiles, checkpoints and indexes included.
const storageBudget = 200

// TestStoragePerEntry appends 200,000 realistic 1 KiB entries (20,000 with
// -short) in batches of 500, vacuums, and logs the bytes per entry of every
// table and index. It also checks the plans of the read queries, before and
// after the table is analyzed.
func TestStoragePerEntry(t *testing.T) {
	t.Parallel()
	total := 200_000
	if testing.Short() {
		total = 20_000
	}
	s := openStore(t, Config{DSN: ledgertest.PostgresDSN(t), Logger: quietLogger()})
	l := newFastLog(t, "storage", 1024)
	l.fill(t, s, 5000, 500)
	checkPlans(t, s, "before ANALYZE")
	l.fill(t, s, total-5000, 500)

	owner := superuser(t, s.cfg.DSN)
	ctx := t.Context()
	for _, table := range []string{"logs", "entries", "tiles", "checkpoints", "payloads"} {
		if _, err := owner.Exec(ctx, "VACUUM ANALYZE "+table); err != nil {
			t.Fatal(err)
		}
	}
	checkPlans(t, s, "after ANALYZE")

	var entryBytes, tileBytes int64
	if err := owner.QueryRow(ctx, "SELECT sum(octet_length(entry)) FROM entries").Scan(&entryBytes); err != nil {
		t.Fatal(err)
	}
	if err := owner.QueryRow(ctx, "SELECT sum(octet_length(hashes)) FROM tiles").Scan(&tileBytes); err != nil {
		t.Fatal(err)
	}
	var compression string
	if err := owner.QueryRow(ctx, "SELECT attcompression FROM pg_attribute WHERE attrelid = 'entries'::regclass AND attname = 'entry'").Scan(&compression); err != nil {
		t.Fatal(err)
	}
	rows, err := owner.Query(ctx, `
		SELECT c.relname, pg_relation_size(c.oid), coalesce(pg_total_relation_size(c.reltoastrelid), 0)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i')
		  AND c.relname NOT IN ('schema_migrations', 'schema_migrations_pkey', 'aigw_access', 'aigw_access_pkey')
		ORDER BY c.relname`)
	if err != nil {
		t.Fatal(err)
	}
	var (
		name        string
		main, toast int64
		sum         int64
		report      strings.Builder
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &main, &toast}, func() error {
		fmt.Fprintf(&report, "\n\t%-22s %8.1f B/entry", name, float64(main)/float64(total))
		if toast > 0 {
			fmt.Fprintf(&report, " + TOAST %.1f", float64(toast)/float64(total))
		}
		sum += main + toast
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	perEntry := float64(sum) / float64(total)
	overhead := float64(sum-entryBytes) / float64(total)
	t.Logf("%d entries of %.0f bytes: %.1f bytes/entry in all, %.1f beyond the entry bytes (budget %d)%s"+
		"\n\tlive tile hashes: %.1f B/entry (the rest of the tiles' TOAST is space that dead versions of partial tiles held, which VACUUM freed for reuse)"+
		"\n\tentry column compression: %q (l = lz4; only values in rows over ~2 KB are compressed)",
		total, float64(entryBytes)/float64(total), perEntry, overhead, storageBudget, report.String(),
		float64(tileBytes)/float64(total), compression)
	if overhead > storageBudget {
		t.Logf("over the budget of %d bytes/entry by %.1f (not asserted; see the package's report)", storageBudget, overhead-storageBudget)
	}
}

// checkPlans checks that the read queries use their indexes, with the
// generic plans the Store's sessions use.
func checkPlans(t *testing.T, s *Store, when string) {
	t.Helper()
	ctx := t.Context()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	var mode string
	if err := conn.QueryRow(ctx, "SHOW plan_cache_mode").Scan(&mode); err != nil || mode != "force_generic_plan" {
		t.Fatalf("the Store's sessions have plan_cache_mode %q, %v; want force_generic_plan", mode, err)
	}
	leaf := ledger.LeafHash([]byte("x"))
	for _, q := range []struct {
		name, sql string
		want      string // in the plan: the index it must use
		args      string // the EXECUTE arguments
	}{
		{"LookupLeaf", lookupLeafSQL, "on tiles", fmt.Sprintf(`1, '\x%x'`, leaf[:])},
		{"ReadEntries", "SELECT idx, event_id, chain, entry FROM entries WHERE log_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx LIMIT $4",
			"entries_pkey", "1, 0, 1000000000, 1000000000"},
		{"ReadTiles", readTilesSQL,
			"Nested Loop", "1, '{0,1}', '{3,0}'"}, // a probe per tile (tiles_pkey once the table is large)
		{"LookupEvents", "SELECT event_id, idx FROM entries WHERE log_id = $1 AND event_id = ANY($2::uuid[])",
			"entries_event_id_key", fmt.Sprintf("1, '{%s}'", ledger.NewEventID())},
	} {
		stmt := "plan_" + strings.ToLower(q.name)
		if _, err := conn.Conn().Prepare(ctx, stmt, q.sql); err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(ctx, "EXPLAIN (COSTS OFF) EXECUTE "+stmt+"("+q.args+")")
		if err != nil {
			t.Fatalf("explain %s: %v", q.name, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n\t")
		t.Logf("%s, %s:\n\t%s", when, q.name, plan)
		if !strings.Contains(plan, q.want) {
			t.Errorf("%s, the plan of %s has no %s", when, q.name, q.want)
		}
		if err := conn.Conn().Deallocate(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
}
