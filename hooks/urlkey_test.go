package hooks_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// This run's databases of TestMigrateAnalyticsDB: a tenant's default
// database, its analytics one, and the analytics database of a tenant that
// gains the key by an update.
var (
	mdbDefault   = testenv.Unique("tsql_hooks_mdef")
	mdbAnalytics = testenv.Unique("tsql_hooks_man")
	mdbGained    = testenv.Unique("tsql_hooks_mgain")
)

// hooks.Migrate works on a *sql.DB opened on another deploy_info key as
// on the default one: with the analytics *sql.DB's own registry, a new
// tenant's analytics database is migrated, its default one is not, and a
// tenant that gains the key by an update is migrated then (for that
// *sql.DB it is created).
func TestMigrateAnalyticsDB(t *testing.T) {
	dbs := []string{mdbDefault, mdbAnalytics, mdbGained}
	testenv.EnsureDatabases(t, dbs...)
	for _, name := range dbs {
		testenv.ResetSchema(t, name)
	}
	s := store.NewMemory()
	open := func(opts ...driver.Option) *sql.DB {
		c, err := driver.NewConnector(s, opts...)
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(c)
		t.Cleanup(func() { db.Close() })
		return db
	}
	def := open(driver.WithHooks(nil))
	reg := hooks.New(slog.New(slog.DiscardHandler))
	an := open(driver.WithURLKey("ANALYTICS_URL"), driver.WithHooks(reg))
	migrateHook, err := hooks.Migrate(an, os.DirFS("../testdata/migrations"))
	if err != nil {
		t.Fatal(err)
	}
	reg.Subscribe(hooks.PostCreate, migrateHook)

	// hospital is created by the first migration.
	const probe = "SELECT current_database(), to_regclass('hospital') IS NOT NULL"
	ask := func(db *sql.DB, id string) (database string, migrated bool, err error) {
		ctx, cancel := context.WithTimeout(tenantctx.WithTenant(t.Context(), id), time.Minute)
		defer cancel()
		err = db.QueryRowContext(ctx, probe).Scan(&database, &migrated)
		return database, migrated, err
	}

	const both, gains = "mdb-both.test", "mdb-gains.test"
	defURL := testenv.DatabaseURL(t, mdbDefault)
	for _, tn := range []store.Tenant{
		{ID: both, DeployInfo: map[string]string{store.KeyPostgresURL: defURL, "ANALYTICS_URL": testenv.DatabaseURL(t, mdbAnalytics)}},
		{ID: gains, DeployInfo: map[string]string{store.KeyPostgresURL: defURL}},
	} {
		if _, err := s.Create(t.Context(), tn); err != nil {
			t.Fatal(err)
		}
	}

	cases := []struct {
		name         string
		db           *sql.DB
		id           string
		wantDB       string
		wantMigrated bool
	}{
		{"analytics is migrated", an, both, mdbAnalytics, true},
		{"default is not", def, both, mdbDefault, false},
	}
	for _, tc := range cases {
		got, migrated, err := ask(tc.db, tc.id)
		if err != nil || got != tc.wantDB || migrated != tc.wantMigrated {
			t.Errorf("%s: database %q, migrated %v, err %v; want %q, %v", tc.name, got, migrated, err, tc.wantDB, tc.wantMigrated)
		}
	}

	// Without the key: no database for the analytics *sql.DB, and no
	// hook ran for it there (a Migrate would only have failed).
	if _, _, err := ask(an, gains); !errors.Is(err, driver.ErrMissingURLKey) {
		t.Fatalf("analytics query of a tenant without ANALYTICS_URL: %v, want ErrMissingURLKey", err)
	}
	if fs := reg.Failures(gains); len(fs) != 0 {
		t.Errorf("hooks failed for a tenant without ANALYTICS_URL: %+v", fs)
	}
	tn, err := s.Get(t.Context(), gains)
	if err != nil {
		t.Fatal(err)
	}
	tn.DeployInfo["ANALYTICS_URL"] = testenv.DatabaseURL(t, mdbGained)
	if _, err := s.Update(t.Context(), tn); err != nil {
		t.Fatal(err)
	}
	// The first query waits for its create hooks: the migrations.
	if got, migrated, err := ask(an, gains); err != nil || got != mdbGained || !migrated {
		t.Errorf("after gaining ANALYTICS_URL: database %q, migrated %v, err %v; want %q, true", got, migrated, err, mdbGained)
	}
}
