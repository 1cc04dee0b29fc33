package migrate_test

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3/lock"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// shared is one database that several tenants share, each in a schema of
// its own (search_path) or in its tables with a row-level-security
// setting, behind a tenantsql *sql.DB.
type shared struct {
	t     *testing.T
	name  string // the database
	store *store.Memory
	db    *sql.DB
	admin *pgx.Conn // the database itself, without any tenant's settings
}

// newShared empties database name (this run's own) and opens a tenantsql
// *sql.DB of at most 6 sessions and one plain pgx connection on it.
func newShared(t *testing.T, name string) *shared {
	t.Helper()
	testenv.EnsureDatabases(t, name)
	testenv.ResetSchema(t, name)
	sh := &shared{t: t, name: name, store: store.NewMemory()}
	c, err := driver.NewConnector(sh.store, driver.WithHooks(nil), driver.WithMaxConns(6), driver.WithBypassRLS(true)) // the test server's role is a superuser
	if err != nil {
		t.Fatal(err)
	}
	sh.db = sql.OpenDB(c)
	sh.db.SetMaxOpenConns(6)
	sh.db.SetMaxIdleConns(6)
	t.Cleanup(func() { sh.db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if sh.admin, err = pgx.Connect(ctx, testenv.DatabaseURL(t, name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.admin.Close(context.Background()) })
	// ResetSchema empties public; the tenants' schemas of an earlier test
	// of this process (-count) go too.
	if _, err := sh.admin.Exec(ctx, `DO $$ DECLARE s name; BEGIN
		FOR s IN SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname NOT IN ('information_schema', 'public') LOOP
			EXECUTE format('DROP SCHEMA %I CASCADE', s);
		END LOOP; END $$`); err != nil {
		t.Fatal(err)
	}
	return sh
}

// add creates a tenant whose URL is the shared database's with params;
// with a search_path, its schema is created by the ready-made create hook.
func (sh *shared) add(id string, params ...string) store.Tenant {
	sh.t.Helper()
	tn, err := sh.store.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(sh.t, sh.name, params...)}})
	if err != nil {
		sh.t.Fatal(err)
	}
	create, _ := hooks.Schemas()
	if err := create(context.Background(), hooks.Event{Kind: hooks.OnCreate, Tenant: tn}); err != nil {
		sh.t.Fatalf("create hook: %v", err)
	}
	return tn
}

func (sh *shared) migrator(opts ...migrate.Option) *migrate.Migrator {
	sh.t.Helper()
	m, err := migrate.New(sh.db, sh.store, migrations, opts...)
	if err != nil {
		sh.t.Fatal(err)
	}
	return m
}

// exists asks the server whether a relation, named with its schema, exists.
func (sh *shared) exists(rel string) bool {
	sh.t.Helper()
	var ok bool
	if err := sh.admin.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", rel).Scan(&ok); err != nil {
		sh.t.Fatalf("to_regclass(%s): %v", rel, err)
	}
	return ok
}

// versions reads a version table, named with its schema, on the server.
func (sh *shared) versions(table string) []int64 {
	sh.t.Helper()
	if !sh.exists(table) {
		return nil
	}
	rows, err := sh.admin.Query(context.Background(), "SELECT version_id FROM "+table+" WHERE version_id > 0 ORDER BY id")
	if err != nil {
		sh.t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		sh.t.Fatal(err)
	}
	return vs
}

var allFive = []int64{1, 2, 3, 4, 5}

// Three schema tenants of one database: each is migrated in its own
// schema, with its own version table there, and nothing lands in public.
func TestSchemaTenantsMigrateInTheirSchemas(t *testing.T) {
	sh := newShared(t, testenv.Unique("tsql_mig_sch"))
	schemas := []string{"tenant_a", "tenant_b", "Tenant-C"}
	for i, s := range schemas {
		sh.add(fmt.Sprintf("sch-%d.test", i), "search_path", pgx.Identifier{s}.Sanitize())
	}
	for _, s := range schemas {
		var ok bool
		if err := sh.admin.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", s).Scan(&ok); err != nil || !ok {
			t.Fatalf("schema %q after the create hook: exists %v, %v", s, ok, err)
		}
	}

	rep, err := sh.migrator(migrate.WithConcurrency(3)).Run(context.Background(), migrate.Up, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 3 {
		t.Fatalf("%d results, want one per schema tenant", len(rep.Results))
	}
	for _, s := range schemas {
		q := pgx.Identifier{s}.Sanitize()
		if got := sh.versions(q + ".goose_db_version"); !slices.Equal(got, allFive) {
			t.Errorf("%s.goose_db_version records %v, want %v", q, got, allFive)
		}
		for _, table := range []string{"hospital", "patient", "visit"} {
			if !sh.exists(q + "." + table) {
				t.Errorf("%s.%s does not exist", q, table)
			}
		}
	}
	for _, rel := range []string{"public.goose_db_version", "public.hospital", "public.patient", "public.visit"} {
		if sh.exists(rel) {
			t.Errorf("%s exists: a schema tenant's migration landed in public", rel)
		}
	}

	// A second run finds each tenant up to date in its own schema.
	rep, err = sh.migrator(migrate.WithDryRun(true)).Run(context.Background(), migrate.Up, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Before != 5 || len(r.Pending) != 0 {
			t.Errorf("%s: version %d, pending %v after the run; want 5, none", r.Tenant, r.Before, r.Pending)
		}
	}
}

// A schema tenant whose search_path goes on to public, where another
// tenant of the database has its version table: goose creates the schema
// tenant's own table in its schema, and the Migrator reads that one, not
// public's, so it plans and applies all five migrations there.
func TestSchemaTenantVersionTableIsItsSchemas(t *testing.T) {
	sh := newShared(t, testenv.Unique("tsql_mig_schpub"))
	sh.add("plain.test")
	sh.add("sch.test", "search_path", "tenant_p,public")
	// The tenant's sessions do search public after its schema.
	var path string
	if err := sh.db.QueryRowContext(tenantctx.WithTenant(context.Background(), "sch.test"), "SELECT array_to_string(current_schemas(false), ',')").Scan(&path); err != nil || path != "tenant_p,public" {
		t.Fatalf("the schema tenant's current_schemas: %q, %v; want tenant_p,public", path, err)
	}
	m := sh.migrator(migrate.WithTenants("plain.test"))
	if _, err := m.Run(context.Background(), migrate.Up, 0); err != nil {
		t.Fatal(err)
	}
	if got := sh.versions("public.goose_db_version"); !slices.Equal(got, allFive) {
		t.Fatalf("public.goose_db_version records %v after migrating the database tenant", got)
	}

	dry, err := sh.migrator(migrate.WithTenants("sch.test"), migrate.WithDryRun(true)).Run(context.Background(), migrate.Up, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r := dry.Results[0]; r.Before != 0 || !slices.Equal(r.Pending, allFive) {
		t.Fatalf("dry run for the schema tenant: version %d, pending %v; want 0 and all five (public's table is not its own)", r.Before, r.Pending)
	}
	if _, err := sh.migrator(migrate.WithTenants("sch.test")).Run(context.Background(), migrate.Up, 0); err != nil {
		t.Fatal(err)
	}
	if got := sh.versions("tenant_p.goose_db_version"); !slices.Equal(got, allFive) {
		t.Fatalf("tenant_p.goose_db_version records %v, want %v", got, allFive)
	}
	if !sh.exists("tenant_p.visit") {
		t.Fatal("tenant_p.visit does not exist")
	}
	if got := sh.versions("public.goose_db_version"); !slices.Equal(got, allFive) {
		t.Fatalf("public.goose_db_version records %v after migrating the schema tenant; it must not change", got)
	}
}

// Two schema tenants of one database do not share a lock: with a's lock
// (SchemaLockID) and goose's database-wide lock both held by another
// session, b migrates, and a waits until they are released (so runs on a's
// schema from anywhere do take that lock).
func TestSchemaTenantsLockApart(t *testing.T) {
	sh := newShared(t, testenv.Unique("tsql_mig_schlock"))
	sh.add("lock-a.test", "search_path", "lk_a")
	sh.add("lock-b.test", "search_path", "lk_b")
	ctx := context.Background()

	holder, err := pgx.Connect(ctx, testenv.DatabaseURL(t, sh.name))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1), pg_advisory_lock($2)", migrate.SchemaLockID("lk_a"), lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}

	aDone := make(chan migrate.TenantResult, 1)
	go func() {
		aDone <- sh.migrator(migrate.WithLockTimeout(time.Minute)).Tenant(ctx, "lock-a.test", migrate.Up, 0)
	}()
	// b fails within 3 s if it waits for either lock.
	rb := sh.migrator(migrate.WithLockTimeout(3*time.Second)).Tenant(ctx, "lock-b.test", migrate.Up, 0)
	if rb.Err != nil {
		t.Fatalf("b, while a's lock and the database's are held elsewhere: %v", rb.Err)
	}
	if got := sh.versions("lk_b.goose_db_version"); !slices.Equal(got, allFive) {
		t.Fatalf("lk_b.goose_db_version records %v, want %v", got, allFive)
	}

	// a is still waiting, and has applied nothing.
	select {
	case r := <-aDone:
		t.Fatalf("a finished while its lock was held elsewhere: %+v", r)
	case <-time.After(1500 * time.Millisecond):
	}
	if sh.exists("lk_a.hospital") {
		t.Fatal("lk_a.hospital exists: a migrated without its lock")
	}
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock_all()"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-aDone:
		if r.Err != nil {
			t.Fatalf("a after the locks were released: %v", r.Err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a did not finish after the locks were released")
	}
	if got := sh.versions("lk_a.goose_db_version"); !slices.Equal(got, allFive) {
		t.Fatalf("lk_a.goose_db_version records %v, want %v", got, allFive)
	}
}

// A database tenant (no search_path) still takes goose's database-wide
// lock, so goose run by other tools excludes it.
func TestDatabaseTenantTakesGooseLock(t *testing.T) {
	sh := newShared(t, testenv.Unique("tsql_mig_dblock"))
	sh.add("db.test")
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, testenv.DatabaseURL(t, sh.name))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}
	r := sh.migrator(migrate.WithLockTimeout(2*time.Second)).Tenant(ctx, "db.test", migrate.Up, 0)
	if r.Err == nil {
		t.Fatal("the database tenant migrated while goose's lock was held elsewhere")
	}
	if sh.exists("public.hospital") {
		t.Fatal("public.hospital exists: the tenant migrated without goose's lock")
	}
}

// Row-level-security tenants of one database (a custom setting, no
// search_path) share their tables: a run migrates them once, through one
// of them, and the report lists the group. A schema tenant of the same
// database is migrated on its own.
func TestRLSTenantsMigrateOnce(t *testing.T) {
	sh := newShared(t, testenv.Unique("tsql_mig_rls"))
	for i := 1; i <= 3; i++ {
		sh.add(fmt.Sprintf("rls-%d.test", i), "app.tenant_id", fmt.Sprint(i))
	}
	sh.add("rls-schema.test", "search_path", "rls_s", "app.tenant_id", "9")
	// A migration that records, on the server, whose session ran it.
	fsys := fstest.MapFS{}
	for _, name := range []string{"00001_create_hospital.sql", "00002_create_patient.sql"} {
		b, err := readFile(name)
		if err != nil {
			t.Fatal(err)
		}
		fsys[name] = &fstest.MapFile{Data: b}
	}
	fsys["00003_record.sql"] = &fstest.MapFile{Data: []byte(`-- +goose Up
CREATE TABLE migrated_by (tenant text);
INSERT INTO migrated_by SELECT current_setting('app.tenant_id');
-- +goose Down
DROP TABLE migrated_by;
`)}
	m, err := migrate.New(sh.db, sh.store, fsys)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := m.Run(context.Background(), migrate.Up, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("%d results, want 2 (the RLS group, the schema tenant): %+v", len(rep.Results), rep.Results)
	}
	g, s := rep.Results[0], rep.Results[1]
	if g.Tenant != "rls-1.test" || !slices.Equal(g.Covers, []string{"rls-1.test", "rls-2.test", "rls-3.test"}) || len(g.Applied) != 3 {
		t.Errorf("group result: tenant %s, covers %v, applied %d; want rls-1.test covering rls-1..3, 3 applied", g.Tenant, g.Covers, len(g.Applied))
	}
	if s.Tenant != "rls-schema.test" || s.Covers != nil || len(s.Applied) != 3 {
		t.Errorf("schema tenant result: tenant %s, covers %v, applied %d", s.Tenant, s.Covers, len(s.Applied))
	}

	// The server: one version table in public with each version once,
	// the migration ran once, in rls-1's session; the schema tenant's
	// own in its schema.
	if got := sh.versions("public.goose_db_version"); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("public.goose_db_version records %v, want [1 2 3]", got)
	}
	rows, err := sh.admin.Query(context.Background(), "SELECT tenant FROM public.migrated_by")
	if err != nil {
		t.Fatal(err)
	}
	by, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(by, []string{"1"}) {
		t.Errorf("public.migrated_by: %v, want one run, with rls-1's setting", by)
	}
	if got := sh.versions("rls_s.goose_db_version"); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("rls_s.goose_db_version records %v, want [1 2 3]", got)
	}
	var n int
	if err := sh.admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE tablename = 'goose_db_version'").Scan(&n); err != nil || n != 2 {
		t.Errorf("%d version tables in the database (%v), want 2: public's and rls_s's", n, err)
	}

	// Selecting one tenant of the group migrates the group; excluding
	// some of it, but not all, is refused.
	rep, err = sh.migrator(migrate.WithTenants("rls-2.test"), migrate.WithDryRun(true)).Run(context.Background(), migrate.Status, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Tenant != "rls-2.test" || len(rep.Results[0].Covers) != 3 {
		t.Errorf("status of rls-2 alone: %+v, want one result through rls-2 covering the group", rep.Results)
	}
	if _, err := sh.migrator(migrate.WithExclude("rls-2.test")).Run(context.Background(), migrate.Up, 0); err == nil {
		t.Error("excluding one tenant of a group whose tables the others share ran")
	}
	if rep, err := sh.migrator(migrate.WithExclude("rls-1.test", "rls-2.test", "rls-3.test")).Run(context.Background(), migrate.Status, 0); err != nil || len(rep.Results) != 1 {
		t.Errorf("excluding the whole group: %v, %d results; want the schema tenant alone", err, len(rep.Results))
	}
}

// A schema tenant whose schema does not exist fails, naming the tenant;
// nothing lands in public.
func TestSchemaTenantWithoutSchemaFails(t *testing.T) {
	sh := newShared(t, testenv.Unique("tsql_mig_nosch"))
	tn, err := sh.store.Create(context.Background(), store.Tenant{ID: "nosch.test", DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, sh.name, "search_path", "not_there")}})
	if err != nil {
		t.Fatal(err)
	}
	r := sh.migrator().Tenant(context.Background(), tn.ID, migrate.Up, 0)
	if r.Err == nil {
		t.Fatal("migrated a schema tenant whose schema does not exist")
	}
	t.Logf("error: %v", r.Err)
	if !containsAll(r.Err.Error(), "nosch.test") {
		t.Errorf("error %q does not name the tenant", r.Err)
	}
	for _, rel := range []string{"public.goose_db_version", "public.hospital"} {
		if sh.exists(rel) {
			t.Errorf("%s exists", rel)
		}
	}
}

func readFile(name string) ([]byte, error) { return fs.ReadFile(migrations, name) }

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
