package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestQueryPlans checks that every read finds its rows through an index
// rather than by scanning a table: a plan SQLite chooses without statistics
// can walk a whole log (an ORDER BY once made LookupLeaf do that).
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), Config{Path: filepath.Join(t.TempDir(), "ledger.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name, query, want string
	}{
		{"Head", qHead, "SEARCH logs USING INDEX sqlite_autoindex_logs_1 (name=?)"},
		{"ReadEntries", qReadEntries, "SEARCH entries USING INDEX sqlite_autoindex_entries_1 (log_id=? AND idx>?)"},
		{"LookupLeaf", qLookupLeaf, "SEARCH tiles USING INDEX sqlite_autoindex_tiles_1 (log_id=? AND level=?)"},
		{"Checkpoints", qCheckpoints, "SEARCH checkpoints USING PRIMARY KEY (log_id=? AND size>? AND size<?)"},
		{"ReadPayload", qReadPayload, "SEARCH payloads USING INDEX sqlite_autoindex_payloads_1 (log_id=? AND idx=?)"},
		{"LookupEvents", lookupEventsSQL(3), "SEARCH entries USING INDEX entries_event_id (log_id=? AND event_id=?)"},
		{"ReadTiles", readTilesSQL(3), "SEARCH t USING INDEX sqlite_autoindex_tiles_1 (log_id=? AND level=? AND idx=?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := strings.Count(tc.query, "?")
			args := make([]any, n)
			for i := range args {
				args[i] = int64(1)
			}
			rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+tc.query, args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, notUsed int
				var detail string
				if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			got := strings.Join(plan, "\n")
			if !strings.Contains(got, tc.want) || strings.Contains(got, "SCAN entries") || strings.Contains(got, "SCAN tiles") {
				t.Errorf("plan of %s:\n%s\nwant it to %s and scan no table", tc.name, got, tc.want)
			}
		})
	}
}
