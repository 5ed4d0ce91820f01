package tenant_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aigw/gateway/tenant"
	"aigw/ledger/ledgertest"
)

// clock is a controllable Now.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// database is a fresh database of one backend, and the clock of its Stores.
type database struct {
	driver, dsn string
	clock       *clock
}

// backends creates a fresh database of each driver for a test.
var backends = []struct {
	driver string
	dsn    func(t *testing.T) string
}{
	{tenant.DriverSQLite, func(t *testing.T) string { return filepath.Join(t.TempDir(), "tenants.db") }},
	{tenant.DriverPostgres, func(t *testing.T) string { return ledgertest.PostgresDSN(t) }},
}

// each runs f, in parallel, on a fresh database of every backend.
func each(t *testing.T, f func(t *testing.T, db database)) {
	t.Helper()
	t.Parallel()
	for _, b := range backends {
		t.Run(b.driver, func(t *testing.T) {
			t.Parallel()
			f(t, database{driver: b.driver, dsn: b.dsn(t), clock: newClock()})
		})
	}
}

// open opens a Store on db, closed when t ends.
func (db database) open(t testing.TB) *tenant.Store {
	t.Helper()
	s, err := tenant.Open(t.Context(), tenant.Config{
		Driver: db.driver, DSN: db.dsn, Now: db.clock.Now, Logger: ledgertest.TestLogger(t), MaxConns: 4,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// raw opens the database without the Store, for inspecting it.
func (db database) raw(t *testing.T) *sql.DB {
	t.Helper()
	name := "sqlite"
	if db.driver == tenant.DriverPostgres {
		name = "pgx"
	}
	r, err := sql.Open(name, db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func mustTenant(t *testing.T, s *tenant.Store, id string) tenant.Tenant {
	t.Helper()
	tn, err := s.CreateTenant(t.Context(), tenant.Tenant{ID: id, Name: "Tenant " + id})
	if err != nil {
		t.Fatalf("CreateTenant(%q): %v", id, err)
	}
	return tn
}

func mustKey(t *testing.T, s *tenant.Store, tenantID string, spec tenant.KeySpec) (tenant.Secret, tenant.Key) {
	t.Helper()
	secret, k, err := s.CreateKey(t.Context(), tenantID, spec)
	if err != nil {
		t.Fatalf("CreateKey(%q): %v", tenantID, err)
	}
	return secret, k
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v; want %v", what, err, want)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  tenant.Config
		ok   bool
	}{
		{"SQLite", tenant.Config{Driver: "sqlite", DSN: "/tmp/x.db"}, true},
		{"Postgres", tenant.Config{Driver: "postgres", DSN: "postgres://h/db"}, true},
		{"NoDriver", tenant.Config{DSN: "/tmp/x.db"}, false},
		{"UnknownDriver", tenant.Config{Driver: "mysql", DSN: "x"}, false},
		{"NoDSN", tenant.Config{Driver: "sqlite"}, false},
		{"Memory", tenant.Config{Driver: "sqlite", DSN: ":memory:"}, false},
		{"URI", tenant.Config{Driver: "sqlite", DSN: "file:x.db"}, false},
		{"NegativeConns", tenant.Config{Driver: "sqlite", DSN: "x.db", MaxConns: -1}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v; want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestTenants(t *testing.T) {
	each(t, func(t *testing.T, db database) {
		s := db.open(t)
		ctx := t.Context()
		acme, err := s.CreateTenant(ctx, tenant.Tenant{ID: "acme", Name: "Acme Corp", CreatedAt: time.Unix(1, 0)})
		if err != nil {
			t.Fatal(err)
		}
		want := tenant.Tenant{ID: "acme", Name: "Acme Corp", CreatedAt: db.clock.Now()}
		if !reflect.DeepEqual(acme, want) {
			t.Errorf("CreateTenant = %+v; want %+v", acme, want)
		}
		if got, err := s.GetTenant(ctx, "acme"); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("GetTenant = %+v, %v; want %+v", got, err, want)
		}
		_, err = s.CreateTenant(ctx, tenant.Tenant{ID: "acme", Name: "Other"})
		wantErr(t, "duplicate CreateTenant", err, tenant.ErrExists)
		if got, _ := s.GetTenant(ctx, "acme"); got.Name != "Acme Corp" {
			t.Errorf("duplicate CreateTenant changed the name to %q", got.Name)
		}

		for _, id := range []string{"", "system", "Acme", "-acme", "_acme", "a b", "a.b", "acmé", "a/b", strings.Repeat("a", 64)} {
			_, err := s.CreateTenant(ctx, tenant.Tenant{ID: id})
			wantErr(t, fmt.Sprintf("CreateTenant(%q)", id), err, tenant.ErrInvalid)
			_, err = s.GetTenant(ctx, id)
			wantErr(t, fmt.Sprintf("GetTenant(%q)", id), err, tenant.ErrInvalid)
		}
		for _, name := range []string{"tab\there", "nul\x00", strings.Repeat("n", tenant.MaxNameLen+1), "bad \xff utf-8"} {
			_, err := s.CreateTenant(ctx, tenant.Tenant{ID: "named", Name: name})
			wantErr(t, fmt.Sprintf("CreateTenant(name %q)", name), err, tenant.ErrInvalid)
		}
		ids := []string{"0", "a_b-c", strings.Repeat("z", 63), "b2b"}
		for _, id := range ids {
			mustTenant(t, s, id)
		}
		list, err := s.ListTenants(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tn := range list {
			got = append(got, tn.ID)
		}
		wantIDs := append(ids, "acme")
		slices.Sort(wantIDs)
		if !slices.Equal(got, wantIDs) {
			t.Errorf("ListTenants = %q; want %q", got, wantIDs)
		}

		_, err = s.GetTenant(ctx, "nobody")
		wantErr(t, "GetTenant(unknown)", err, tenant.ErrNotFound)
		wantErr(t, "SetTenantDisabled(unknown)", s.SetTenantDisabled(ctx, "nobody", true), tenant.ErrNotFound)
		wantErr(t, "SetTenantDisabled(invalid)", s.SetTenantDisabled(ctx, "System", true), tenant.ErrInvalid)
		for _, disabled := range []bool{true, true, false} {
			if err := s.SetTenantDisabled(ctx, "acme", disabled); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.GetTenant(ctx, "acme"); got.Disabled != disabled {
				t.Errorf("after SetTenantDisabled(%v), Disabled = %v", disabled, got.Disabled)
			}
		}
		off, err := s.CreateTenant(ctx, tenant.Tenant{ID: "off", Disabled: true})
		if err != nil || !off.Disabled {
			t.Errorf("CreateTenant(disabled) = %+v, %v", off, err)
		}
		if got, err := s.GetTenant(ctx, "off"); err != nil || !got.Disabled {
			t.Errorf("GetTenant of a tenant created disabled = %+v, %v", got, err)
		}
	})
}

func TestKeys(t *testing.T) {
	each(t, func(t *testing.T, db database) {
		s := db.open(t)
		ctx := t.Context()
		mustTenant(t, s, "acme")

		expires := db.clock.Now().Add(time.Hour)
		secret, k, err := s.CreateKey(ctx, "acme", tenant.KeySpec{Name: "ci", Models: []string{"gpt-4o*", "claude-*"}, ExpiresAt: &expires})
		if err != nil {
			t.Fatal(err)
		}
		raw := string(secret)
		if !tenant.WellFormed(raw) || !strings.HasPrefix(raw, "aigw_") || len(raw) != 48 {
			t.Errorf("secret %q is not aigw_ and 43 base64url characters", raw)
		}
		want := tenant.Key{
			ID: k.ID, Tenant: "acme", Name: "ci", Prefix: raw[:12], Hash: tenant.Hash(raw),
			Models: []string{"gpt-4o*", "claude-*"}, CreatedAt: db.clock.Now(), ExpiresAt: &expires,
		}
		if !tenant.ValidKeyID(k.ID) || !reflect.DeepEqual(k, want) {
			t.Errorf("CreateKey = %+v; want %+v", k, want)
		}
		if got, err := s.GetKey(ctx, "acme", k.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("GetKey = %+v, %v; want %+v", got, err, want)
		}
		gotK, gotT, err := s.LookupHash(ctx, tenant.Hash(raw))
		if err != nil || !reflect.DeepEqual(gotK, want) || gotT.ID != "acme" || gotT.Name != "Tenant acme" || !gotT.CreatedAt.Equal(db.clock.Now()) {
			t.Errorf("LookupHash = %+v, %+v, %v; want %+v of acme", gotK, gotT, err, want)
		}

		db.clock.Advance(time.Second)
		_, k2 := mustKey(t, s, "acme", tenant.KeySpec{})
		db.clock.Advance(time.Second)
		_, k3 := mustKey(t, s, "acme", tenant.KeySpec{Name: "third"})
		if k2.Models != nil || k2.ExpiresAt != nil || k2.RevokedAt != nil {
			t.Errorf("key of an empty spec = %+v; want no models, expiry or revocation", k2)
		}
		list, err := s.ListKeys(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(list, []tenant.Key{want, k2, k3}) {
			t.Errorf("ListKeys = %+v; want the three keys oldest first", list)
		}

		db.clock.Advance(time.Second)
		revokedAt := db.clock.Now()
		rk, err := s.RevokeKey(ctx, "acme", k2.ID)
		if err != nil || rk.RevokedAt == nil || !rk.RevokedAt.Equal(revokedAt) {
			t.Fatalf("RevokeKey = %+v, %v; want RevokedAt %v", rk, err, revokedAt)
		}
		db.clock.Advance(time.Second)
		again, err := s.RevokeKey(ctx, "acme", k2.ID)
		if err != nil || !reflect.DeepEqual(again, rk) {
			t.Errorf("RevokeKey again = %+v, %v; want %+v (first revocation kept)", again, err, rk)
		}
		if got, _ := s.GetKey(ctx, "acme", k2.ID); !reflect.DeepEqual(got, rk) {
			t.Errorf("GetKey after revocation = %+v; want %+v", got, rk)
		}
		if _, err := db.raw(t).ExecContext(ctx, "UPDATE api_keys SET revoked_at = NULL WHERE id = '"+k2.ID+"'"); err == nil {
			t.Error("un-revoking a key in SQL succeeded; want the trigger to refuse it")
		}

		past, now, later := db.clock.Now().Add(-time.Second), db.clock.Now(), db.clock.Now().Add(time.Hour)
		for _, tt := range []struct {
			name   string
			tenant string
			spec   tenant.KeySpec
			want   error
		}{
			{"InvalidTenant", "Acme", tenant.KeySpec{}, tenant.ErrInvalid},
			{"SystemTenant", "system", tenant.KeySpec{}, tenant.ErrInvalid},
			{"UnknownTenant", "nobody", tenant.KeySpec{}, tenant.ErrNotFound},
			{"LongName", "acme", tenant.KeySpec{Name: strings.Repeat("x", tenant.MaxNameLen+1)}, tenant.ErrInvalid},
			{"ControlInName", "acme", tenant.KeySpec{Name: "a\nb"}, tenant.ErrInvalid},
			{"EmptyPattern", "acme", tenant.KeySpec{Models: []string{""}}, tenant.ErrInvalid},
			{"SpaceInPattern", "acme", tenant.KeySpec{Models: []string{"gpt 4"}}, tenant.ErrInvalid},
			{"LongPattern", "acme", tenant.KeySpec{Models: []string{strings.Repeat("m", tenant.MaxPatternLen+1)}}, tenant.ErrInvalid},
			{"TooManyPatterns", "acme", tenant.KeySpec{Models: slices.Repeat([]string{"m"}, tenant.MaxModels+1)}, tenant.ErrInvalid},
			{"ExpiresInPast", "acme", tenant.KeySpec{ExpiresAt: &past}, tenant.ErrInvalid},
			{"ExpiresNow", "acme", tenant.KeySpec{ExpiresAt: &now}, tenant.ErrInvalid},
			{"Valid", "acme", tenant.KeySpec{Name: "ok", Models: []string{"*"}, ExpiresAt: &later}, nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				secret, k, err := s.CreateKey(ctx, tt.tenant, tt.spec)
				if tt.want == nil {
					if err != nil || secret == "" || k.ID == "" {
						t.Errorf("CreateKey = %q, %+v, %v; want a key", secret, k, err)
					}
					return
				}
				wantErr(t, "CreateKey", err, tt.want)
				if secret != "" || k.ID != "" {
					t.Errorf("failed CreateKey returned %q, %+v", secret, k)
				}
			})
		}

		for _, tt := range []struct {
			name, tenant, id string
			want             error
		}{
			{"BadKeyID", "acme", "key_XYZ", tenant.ErrInvalid},
			{"BadKeyIDPrefix", "acme", "kex_0123456789abcdef", tenant.ErrInvalid},
			{"BadTenant", "ACME", k.ID, tenant.ErrInvalid},
			{"UnknownKey", "acme", "key_0123456789abcdef", tenant.ErrNotFound},
			{"UnknownTenant", "nobody", k.ID, tenant.ErrNotFound},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.GetKey(ctx, tt.tenant, tt.id)
				wantErr(t, "GetKey", err, tt.want)
				_, err = s.RevokeKey(ctx, tt.tenant, tt.id)
				wantErr(t, "RevokeKey", err, tt.want)
			})
		}
		_, err = s.ListKeys(ctx, "nobody")
		wantErr(t, "ListKeys(unknown)", err, tenant.ErrNotFound)
		_, _, err = s.LookupHash(ctx, "not-a-hash")
		wantErr(t, "LookupHash(malformed)", err, tenant.ErrInvalid)
		_, _, err = s.LookupHash(ctx, strings.ToUpper(tenant.Hash(raw)))
		wantErr(t, "LookupHash(upper case)", err, tenant.ErrInvalid)
		_, _, err = s.LookupHash(ctx, tenant.Hash("aigw_unknown"))
		wantErr(t, "LookupHash(unknown)", err, tenant.ErrNotFound)
	})
}

// TestIsolation checks that a tenant can never see or affect another's keys.
func TestIsolation(t *testing.T) {
	each(t, func(t *testing.T, db database) {
		s := db.open(t)
		ctx := t.Context()
		mustTenant(t, s, "a")
		mustTenant(t, s, "b")
		mustTenant(t, s, "empty")
		var aKeys []string
		for range 3 {
			db.clock.Advance(time.Millisecond)
			_, k := mustKey(t, s, "a", tenant.KeySpec{})
			aKeys = append(aKeys, k.ID)
		}
		bSecret, bKey := mustKey(t, s, "b", tenant.KeySpec{Name: "b's"})

		_, err := s.GetKey(ctx, "a", bKey.ID)
		wantErr(t, "GetKey of b's key as a", err, tenant.ErrNotFound)
		_, err = s.RevokeKey(ctx, "a", bKey.ID)
		wantErr(t, "RevokeKey of b's key as a", err, tenant.ErrNotFound)
		if got, err := s.GetKey(ctx, "b", bKey.ID); err != nil || got.RevokedAt != nil {
			t.Errorf("b's key after a's revocation attempt = %+v, %v; want it live", got, err)
		}
		auth := newAuth(t, s, db.clock, tenant.AuthConfig{})
		if k, tn, err := auth.Authenticate(ctx, string(bSecret)); err != nil || k.ID != bKey.ID || tn.ID != "b" {
			t.Errorf("Authenticate(b's secret) = %s of %q, %v; want %s of b", k.ID, tn.ID, err, bKey.ID)
		}
		_, err = auth.Revoke(ctx, "a", bKey.ID)
		wantErr(t, "Authenticator.Revoke of b's key as a", err, tenant.ErrNotFound)
		if _, _, err := auth.Authenticate(ctx, string(bSecret)); err != nil {
			t.Errorf("Authenticate(b's secret) after a's revocation attempt: %v", err)
		}

		for _, tt := range []struct {
			tenant string
			want   []string
		}{{"a", aKeys}, {"b", []string{bKey.ID}}, {"empty", nil}} {
			list, err := s.ListKeys(ctx, tt.tenant)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range list {
				if k.Tenant != tt.tenant {
					t.Errorf("ListKeys(%q) returned key %s of %q", tt.tenant, k.ID, k.Tenant)
				}
				got = append(got, k.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ListKeys(%q) = %q; want %q", tt.tenant, got, tt.want)
			}
		}
	})
}

func TestConcurrentCreateKey(t *testing.T) {
	each(t, func(t *testing.T, db database) {
		s := db.open(t)
		mustTenant(t, s, "acme")
		const workers, perWorker = 16, 8
		type created struct {
			secret tenant.Secret
			key    tenant.Key
		}
		results := make(chan created, workers*perWorker)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range perWorker {
					secret, k, err := s.CreateKey(t.Context(), "acme", tenant.KeySpec{Name: "concurrent"})
					if err != nil {
						t.Error(err)
						return
					}
					results <- created{secret, k}
				}
			})
		}
		wg.Wait()
		close(results)
		ids, hashes := map[string]bool{}, map[string]bool{}
		var all []created
		for c := range results {
			if ids[c.key.ID] || hashes[c.key.Hash] {
				t.Errorf("key %s or its hash was returned twice", c.key.ID)
			}
			ids[c.key.ID], hashes[c.key.Hash] = true, true
			all = append(all, c)
		}
		list, err := s.ListKeys(t.Context(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != workers*perWorker || len(ids) != workers*perWorker {
			t.Fatalf("ListKeys has %d keys, CreateKey returned %d distinct; want %d", len(list), len(ids), workers*perWorker)
		}
		auth := newAuth(t, s, db.clock, tenant.AuthConfig{})
		for _, c := range all {
			if k, _, err := auth.Authenticate(t.Context(), string(c.secret)); err != nil || k.ID != c.key.ID {
				t.Errorf("Authenticate(secret of %s) = %s, %v", c.key.ID, k.ID, err)
			}
		}
	})
}

// TestConcurrentOpen opens one new database from several Stores at once,
// as replicas starting together do: every Open succeeds and the schema is
// migrated once.
func TestConcurrentOpen(t *testing.T) {
	each(t, func(t *testing.T, db database) {
		const n = 8
		stores := make([]*tenant.Store, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				s, err := tenant.Open(t.Context(), tenant.Config{Driver: db.driver, DSN: db.dsn, Now: db.clock.Now, MaxConns: 2})
				if err != nil {
					t.Errorf("Open %d: %v", i, err)
					return
				}
				stores[i] = s
			})
		}
		wg.Wait()
		for i, s := range stores {
			if s == nil {
				continue
			}
			defer s.Close()
			mustTenant(t, s, fmt.Sprintf("t%d", i))
		}
		var rows, versions int
		if err := db.raw(t).QueryRowContext(t.Context(), "SELECT count(*), count(DISTINCT version) FROM tenant_schema_migrations").Scan(&rows, &versions); err != nil {
			t.Fatal(err)
		}
		want, err := fs.Glob(os.DirFS("migrations/"+db.driver), "*.sql")
		if err != nil || len(want) < 2 {
			t.Fatalf("migrations of %s: %v %v", db.driver, want, err)
		}
		if rows != len(want) || versions != len(want) {
			t.Errorf("tenant_schema_migrations has %d rows of %d versions; want %d of %d (each migration once)", rows, versions, len(want), len(want))
		}
		// Reopening an up-to-date database migrates nothing and keeps the data.
		s := db.open(t)
		if list, err := s.ListTenants(t.Context()); err != nil || len(list) != n {
			t.Errorf("ListTenants after reopening = %d tenants, %v; want %d", len(list), err, n)
		}
	})
}

// TestSecretNeverStored scans every row of every table, and for SQLite the
// database files themselves, for the secrets of the keys created.
func TestSecretNeverStored(t *testing.T) {
	each(t, func(t *testing.T, db database) {
		s := db.open(t)
		mustTenant(t, s, "acme")
		var secrets []string
		for range 5 {
			secret, k := mustKey(t, s, "acme", tenant.KeySpec{Name: "k", Models: []string{"gpt-*"}})
			secrets = append(secrets, string(secret))
			if _, err := s.RevokeKey(t.Context(), "acme", k.ID); err != nil {
				t.Fatal(err)
			}
		}
		r := db.raw(t)
		tablesQuery := "SELECT name FROM sqlite_schema WHERE type = 'table'"
		if db.driver == tenant.DriverPostgres {
			tablesQuery = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
		}
		var dump bytes.Buffer
		tables := dumpQuery(t, r, tablesQuery, &dump)
		if len(tables) < 3 {
			t.Fatalf("found tables %q; want tenants, api_keys and the migrations", tables)
		}
		for _, table := range tables {
			dumpQuery(t, r, "SELECT * FROM "+table, &dump)
		}
		if !strings.Contains(dump.String(), tenant.Hash(secrets[0])) {
			t.Fatal("the dump does not hold the key's hash: it is not a dump of the keys")
		}
		if db.driver == tenant.DriverSQLite {
			for _, suffix := range []string{"", "-wal"} {
				b, err := os.ReadFile(db.dsn + suffix)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
				dump.Write(b)
			}
		}
		for _, secret := range secrets {
			// The prefix is stored by design; nothing after it may be.
			if bytes.Contains(dump.Bytes(), []byte(secret[tenant.KeyPrefixLen:])) {
				t.Errorf("the database holds the secret of a key")
			}
		}
	})
}

// dumpQuery writes every value of query's rows to w and returns the first
// column's values as strings.
func dumpQuery(t *testing.T, db *sql.DB, query string, w *bytes.Buffer) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var first []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			fmt.Fprintf(w, "%v\t", v)
			if i == 0 {
				first = append(first, fmt.Sprint(v))
			}
		}
		w.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return first
}
