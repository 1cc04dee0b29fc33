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

// This run's databases of TestSharedRegistryTwoKeys.
var (
	sharedDefault   = testenv.Unique("tsql_hooks_sdef")
	sharedAnalytics = testenv.Unique("tsql_hooks_san")
)

// One registry for both *sql.DB (as hooks.Subscribe and sql.Open give):
// each runs every hook, so each migrates both databases, the other's with
// a query through the other *sql.DB while that one's own hooks run. Such a
// query must not wait for the other *sql.DB's hooks, which are waiting for
// its own in turn.
func TestSharedRegistryTwoKeys(t *testing.T) {
	dbs := []string{sharedDefault, sharedAnalytics}
	testenv.EnsureDatabases(t, dbs...)
	for _, name := range dbs {
		testenv.ResetSchema(t, name)
	}
	s, reg, def, an := twoKeysMigrated(t)
	const id = "mdb-shared.test"
	if _, err := s.Create(t.Context(), store.Tenant{ID: id, DeployInfo: map[string]string{
		store.KeyPostgresURL: testenv.DatabaseURL(t, sharedDefault),
		"ANALYTICS_URL":      testenv.DatabaseURL(t, sharedAnalytics),
	}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		db     *sql.DB
		wantDB string
	}{
		{"default", def, sharedDefault},
		{"analytics", an, sharedAnalytics},
	} {
		ctx, cancel := context.WithTimeout(tenantctx.WithTenant(t.Context(), id), 30*time.Second)
		var got string
		var migrated bool
		err := c.db.QueryRowContext(ctx, "SELECT current_database(), to_regclass('hospital') IS NOT NULL").Scan(&got, &migrated)
		cancel()
		if err != nil || got != c.wantDB || !migrated {
			t.Errorf("%s: database %q, migrated %v, err %v; want %q, true", c.name, got, migrated, err, c.wantDB)
		}
	}
	if fs := reg.Failures(id); len(fs) != 0 {
		t.Errorf("hook failures: %+v", fs)
	}
}

// This run's database of TestMigrateLacksKey.
var lackDefault = testenv.Unique("tsql_hooks_ldef")

// One registry for both *sql.DB, as hooks.Subscribe and sql.Open give,
// and a tenant without ANALYTICS_URL: the analytics Migrate hook, run by
// the default *sql.DB too, finds no analytics database for it, which is
// nothing to do, not a failure. So the tenant is ready on the default
// *sql.DB, migrated there, and no hook failed.
func TestMigrateLacksKey(t *testing.T) {
	testenv.EnsureDatabases(t, lackDefault)
	testenv.ResetSchema(t, lackDefault)
	s, reg, def, an := twoKeysMigrated(t)
	const id = "mdb-lacks.test"
	if _, err := s.Create(t.Context(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, lackDefault)}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(tenantctx.WithTenant(t.Context(), id), 30*time.Second)
	defer cancel()
	var got string
	var migrated bool
	if err := def.QueryRowContext(ctx, "SELECT current_database(), to_regclass('hospital') IS NOT NULL").Scan(&got, &migrated); err != nil || got != lackDefault || !migrated {
		t.Errorf("default *sql.DB: database %q, migrated %v, err %v; want %q, true", got, migrated, err, lackDefault)
	}
	if fs := reg.Failures(id); len(fs) != 0 {
		t.Errorf("hook failures for a tenant without ANALYTICS_URL: %+v", fs)
	}
	if _, err := an.ExecContext(ctx, "SELECT 1"); !errors.Is(err, driver.ErrMissingURLKey) {
		t.Errorf("analytics query of a tenant without ANALYTICS_URL: %v, want ErrMissingURLKey", err)
	}
}

// twoKeysMigrated opens a *sql.DB on POSTGRES_URL and one on ANALYTICS_URL
// over one memory store, sharing one hooks registry (as hooks.Subscribe
// and sql.Open give) in which each has a PostCreate Migrate hook.
func twoKeysMigrated(t *testing.T) (s *store.Memory, reg *hooks.Registry, def, an *sql.DB) {
	t.Helper()
	s = store.NewMemory()
	reg = hooks.New(slog.New(slog.DiscardHandler))
	open := func(opts ...driver.Option) *sql.DB {
		c, err := driver.NewConnector(s, append([]driver.Option{driver.WithHooks(reg)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(c)
		t.Cleanup(func() { db.Close() })
		return db
	}
	def = open()
	an = open(driver.WithURLKey("ANALYTICS_URL"))
	for _, db := range []*sql.DB{def, an} {
		h, err := hooks.Migrate(db, os.DirFS("../testdata/migrations"))
		if err != nil {
			t.Fatal(err)
		}
		reg.Subscribe(hooks.PostCreate, h)
	}
	return s, reg, def, an
}
