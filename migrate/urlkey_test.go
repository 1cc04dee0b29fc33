package migrate_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/store"
)

// A run through a *sql.DB on another deploy_info key (driver.WithURLKey)
// groups the tenants by their URLs under that key, the databases its
// migrations reach, not by POSTGRES_URL: two tenants with databases of
// their own that share an analytics database (row-level security) are
// migrated there once, and two that share their default database but
// have analytics databases of their own are each migrated. The server
// says so: each analytics database records each version once and one run
// of the recording migration; the default databases are untouched.
func TestRunGroupsByTheDBsURLKey(t *testing.T) {
	const key = "ANALYTICS_URL"
	var (
		defA, defB, defCD = testenv.Unique("tsql_mig_kda"), testenv.Unique("tsql_mig_kdb"), testenv.Unique("tsql_mig_kdcd")
		anAB, anC, anD    = testenv.Unique("tsql_mig_kaab"), testenv.Unique("tsql_mig_kac"), testenv.Unique("tsql_mig_kad")
	)
	all := []string{defA, defB, defCD, anAB, anC, anD}
	testenv.EnsureDatabases(t, all...)
	for _, name := range all {
		testenv.ResetSchema(t, name)
	}
	s := store.NewMemory()
	for _, tn := range []struct{ id, def, an string }{
		{"a.test", testenv.DatabaseURL(t, defA), testenv.DatabaseURL(t, anAB, "app.tenant_id", "1")},
		{"b.test", testenv.DatabaseURL(t, defB), testenv.DatabaseURL(t, anAB, "app.tenant_id", "2")},
		{"c.test", testenv.DatabaseURL(t, defCD, "app.tenant_id", "3"), testenv.DatabaseURL(t, anC)},
		{"d.test", testenv.DatabaseURL(t, defCD, "app.tenant_id", "4"), testenv.DatabaseURL(t, anD)},
	} {
		if _, err := s.Create(context.Background(), store.Tenant{ID: tn.id, DeployInfo: map[string]string{store.KeyPostgresURL: tn.def, key: tn.an}}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := driver.NewConnector(s, driver.WithHooks(nil), driver.WithURLKey(key), driver.WithBypassRLS(true)) // the test server's role is a superuser
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })

	b, err := readFile("00001_create_hospital.sql")
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{
		"00001_create_hospital.sql": &fstest.MapFile{Data: b},
		"00002_record.sql": &fstest.MapFile{Data: []byte(`-- +goose Up
CREATE TABLE migrated_by (tenant text);
INSERT INTO migrated_by SELECT coalesce(current_setting('app.tenant_id', true), '');
-- +goose Down
DROP TABLE migrated_by;
`)},
	}
	m, err := migrate.New(db, s, fsys)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := m.Run(ctx, migrate.Up, 0); err != nil {
		t.Fatal(err)
	}

	// What each database holds: goose's versions and who ran the
	// recording migration; nil for a database with no version table.
	type state struct {
		versions []int64
		by       []string
	}
	read := func(name string) state {
		t.Helper()
		conn, err := pgx.Connect(ctx, testenv.DatabaseURL(t, name))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var st state
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass('public.goose_db_version') IS NOT NULL").Scan(&exists); err != nil || !exists {
			return st
		}
		rows, _ := conn.Query(ctx, "SELECT version_id FROM public.goose_db_version WHERE version_id > 0 ORDER BY id")
		if st.versions, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			t.Fatal(err)
		}
		rows, _ = conn.Query(ctx, "SELECT tenant FROM public.migrated_by ORDER BY tenant")
		if st.by, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, tc := range []struct {
		name string
		db   string
		want state
	}{
		{"analytics shared by a and b: once, through a", anAB, state{[]int64{1, 2}, []string{"1"}}},
		{"analytics of c", anC, state{[]int64{1, 2}, []string{""}}},
		{"analytics of d (whose default database is c's)", anD, state{[]int64{1, 2}, []string{""}}},
		{"default of a", defA, state{}},
		{"default of b", defB, state{}},
		{"default of c and d", defCD, state{}},
	} {
		got := read(tc.db)
		if !slices.Equal(got.versions, tc.want.versions) || !slices.Equal(got.by, tc.want.by) {
			t.Errorf("%s: versions %v, migrated by %q; want %v, %q", tc.name, got.versions, got.by, tc.want.versions, tc.want.by)
		}
	}
}
