package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/store"
)

const tenantCount = 32

// maxSessions caps the sessions each *sql.DB of a test opens on the
// server (and the schema resets run at once), so that a test run beside
// this one on a server with max_connections 100 has room.
const maxSessions = 12

func TestMain(m *testing.M) { testenv.Main(m) }

// env is 32 tenants, each on its own freshly emptied database, behind a
// tenantsql *sql.DB.
type env struct {
	t     *testing.T
	store *store.Memory
	db    *sql.DB
	ids   []string
	dbOf  map[string]string
}

var migrations = os.DirFS("../testdata/migrations")

func newEnv(t *testing.T) *env {
	t.Helper()
	names := testenv.Names(testenv.Unique("tsql_mig"), tenantCount)
	testenv.EnsureDatabases(t, names...)
	// At most maxSessions resets at once, like the rest of the test: a
	// run beside this one on the same server needs room too.
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxSessions)
	for _, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); defer func() { <-sem }(); testenv.ResetSchema(t, n) }()
	}
	wg.Wait()
	e := &env{t: t, store: store.NewMemory(), dbOf: map[string]string{}}
	for i, n := range names {
		id := fmt.Sprintf("mig-%02d.test", i)
		if _, err := e.store.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, n, "application_name", id)}}); err != nil {
			t.Fatal(err)
		}
		e.ids = append(e.ids, id)
		e.dbOf[id] = n
	}
	e.db = e.open()
	return e
}

// open opens another tenantsql *sql.DB on the same tenants, as another
// process would.
func (e *env) open() *sql.DB {
	c, err := driver.NewConnector(e.store, driver.WithHooks(nil), driver.WithMaxConns(maxSessions))
	if err != nil {
		e.t.Fatal(err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(maxSessions)
	db.SetMaxIdleConns(maxSessions)
	e.t.Cleanup(func() { db.Close() })
	return db
}

func (e *env) migrator(fsys any, opts ...migrate.Option) *migrate.Migrator {
	e.t.Helper()
	var f = migrations
	if m, ok := fsys.(fstest.MapFS); ok {
		f = m
	}
	m, err := migrate.New(e.db, e.store, f, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// serverVersion asks the tenant's database itself which migrations are
// recorded, bypassing the library.
func (e *env) serverVersions(id string) []int64 {
	e.t.Helper()
	db, err := sql.Open("pgx", testenv.DatabaseURL(e.t, e.dbOf[id]))
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	var exists bool
	if err := db.QueryRow("SELECT to_regclass('goose_db_version') IS NOT NULL").Scan(&exists); err != nil {
		e.t.Fatalf("%s: %v", id, err)
	}
	if !exists {
		return nil
	}
	rows, err := db.Query("SELECT version_id FROM goose_db_version WHERE version_id > 0 ORDER BY id")
	if err != nil {
		e.t.Fatalf("%s: %v", id, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			e.t.Fatalf("%s: %v", id, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatalf("%s: %v", id, err)
	}
	return out
}

func (e *env) serverExec(id, q string) {
	e.t.Helper()
	db, err := sql.Open("pgx", testenv.DatabaseURL(e.t, e.dbOf[id]))
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q); err != nil {
		e.t.Fatal(err)
	}
}

func TestUpAllTenants(t *testing.T) {
	e := newEnv(t)
	var progress atomic.Int64
	m := e.migrator(nil, migrate.WithConcurrency(8), migrate.WithProgress(func(p migrate.Progress) {
		progress.Add(1)
		if p.Total != tenantCount {
			t.Errorf("progress total %d", p.Total)
		}
	}))
	rep, err := m.Run(context.Background(), migrate.Up, 0)
	if err != nil {
		t.Fatal(err)
	}
	if progress.Load() != tenantCount {
		t.Errorf("progress called %d times, want %d", progress.Load(), tenantCount)
	}
	for _, r := range rep.Results {
		if r.Before != 0 || r.After != 5 || len(r.Applied) != 5 || r.Err != nil {
			t.Errorf("%s: before %d after %d applied %d err %v", r.Tenant, r.Before, r.After, len(r.Applied), r.Err)
		}
		if got := e.serverVersions(r.Tenant); !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
			t.Errorf("%s: the database records %v", r.Tenant, got)
		}
	}
	if changed, unchanged, failed, skipped := rep.Counts(); changed != tenantCount || unchanged+failed+skipped != 0 {
		t.Errorf("counts %d %d %d %d", changed, unchanged, failed, skipped)
	}

	// A rerun is a no-op that takes no lock.
	start := time.Now()
	rep, err = m.Run(context.Background(), migrate.Up, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, unchanged, _, _ := rep.Counts(); unchanged != tenantCount {
		t.Errorf("rerun: %d unchanged, want all", unchanged)
	}
	t.Logf("no-op rerun over %d tenants: %v", tenantCount, time.Since(start))
}

// One tenant's migration 4 fails: with WithContinueOnError the others
// finish; the report names the tenant, the cause and what did apply.
func TestBrokenMigrationContinueOnError(t *testing.T) {
	e := newEnv(t)
	bad := e.ids[7]
	e.serverExec(bad, "CREATE TABLE visit (x int)")
	rep, err := e.migrator(nil, migrate.WithConcurrency(8), migrate.WithContinueOnError(true)).Run(context.Background(), migrate.Up, 0)
	if err == nil {
		t.Fatal("no error")
	}
	var te *migrate.TenantError
	var pe *goose.PartialError
	if !errors.As(err, &te) || te.Tenant != bad || !errors.As(err, &pe) || pe.Failed.Source.Version != 4 {
		t.Fatalf("error %v: want a TenantError for %s wrapping goose's PartialError at version 4", err, bad)
	}
	if got := err.Error(); !contains(got, bad, "already exists") {
		t.Errorf("error %q does not name the tenant and the cause", got)
	}
	for _, r := range rep.Results {
		if r.Tenant == bad {
			if r.After != 3 || len(r.Applied) != 3 || !slices.Equal(r.Pending, []int64{4, 5}) {
				t.Errorf("failed tenant: after %d, applied %v, pending %v", r.After, r.Applied, r.Pending)
			}
			if got := e.serverVersions(bad); !slices.Equal(got, []int64{1, 2, 3}) {
				t.Errorf("failed tenant's database records %v", got)
			}
			continue
		}
		if r.Err != nil || r.After != 5 {
			t.Errorf("%s: %v, after %d", r.Tenant, r.Err, r.After)
		}
	}
}

// Without WithContinueOnError, no tenant starts after a failure.
func TestFailFast(t *testing.T) {
	e := newEnv(t)
	bad := e.ids[3]
	e.serverExec(bad, "CREATE TABLE visit (x int)")
	rep, err := e.migrator(nil, migrate.WithConcurrency(1)).Run(context.Background(), migrate.Up, 0)
	if err == nil {
		t.Fatal("no error")
	}
	changed, _, failed, skipped := rep.Counts()
	if changed != 3 || failed != 1 || skipped != tenantCount-4 {
		t.Fatalf("changed %d failed %d skipped %d; want 3, 1, %d", changed, failed, skipped, tenantCount-4)
	}
	for _, r := range rep.Results[4:] {
		if got := e.serverVersions(r.Tenant); len(got) != 0 {
			t.Errorf("%s was skipped but its database records %v", r.Tenant, got)
		}
	}
}

// A tenant whose database cannot be reached fails with the cause; the
// others finish.
func TestUnreachableDatabase(t *testing.T) {
	e := newEnv(t)
	if _, err := e.store.Create(context.Background(), store.Tenant{ID: "mig-zz-gone.test", DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://u:sekret@127.0.0.1:1/nowhere?connect_timeout=2"}}); err != nil {
		t.Fatal(err)
	}
	rep, err := e.migrator(nil, migrate.WithConcurrency(8), migrate.WithContinueOnError(true)).Run(context.Background(), migrate.Up, 0)
	if err == nil || !contains(err.Error(), "mig-zz-gone.test", "connect") || contains(err.Error(), "sekret") {
		t.Fatalf("error %v: want one naming the tenant and the connection failure, without the password", err)
	}
	if changed, _, failed, _ := rep.Counts(); changed != tenantCount || failed != 1 {
		t.Fatalf("changed %d failed %d", changed, failed)
	}
}

// Two runs at once (two *sql.DBs, as two processes would have) apply each
// migration once: the database's own log shows one row per migration.
func TestConcurrentRunsApplyOnce(t *testing.T) {
	e := newEnv(t)
	fsys := fstest.MapFS{}
	for v := 1; v <= 5; v++ {
		up := "CREATE TABLE IF NOT EXISTS applied_log (version int, at timestamptz DEFAULT clock_timestamp());\n"
		up += fmt.Sprintf("INSERT INTO applied_log (version) VALUES (%d);\nSELECT pg_sleep(0.01);\n", v)
		fsys[fmt.Sprintf("%05d_log.sql", v)] = &fstest.MapFile{Data: []byte("-- +goose Up\n" + up + "-- +goose Down\nSELECT 1;\n")}
	}
	db2 := e.open()
	m1 := e.migrator(fsys, migrate.WithConcurrency(8))
	m2, err := migrate.New(db2, e.store, fsys, migrate.WithConcurrency(8))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	reps := make([]*migrate.Report, 2)
	for i, m := range []*migrate.Migrator{m1, m2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := m.Run(context.Background(), migrate.Up, 0)
			if err != nil {
				t.Error(err)
			}
			reps[i] = rep
		}()
	}
	wg.Wait()
	applied := 0
	for _, rep := range reps {
		for _, r := range rep.Results {
			applied += len(r.Applied)
		}
	}
	if applied != tenantCount*5 {
		t.Errorf("the two runs report %d migrations applied, want %d", applied, tenantCount*5)
	}
	for _, id := range e.ids {
		db, err := sql.Open("pgx", testenv.DatabaseURL(t, e.dbOf[id]))
		if err != nil {
			t.Fatal(err)
		}
		var n, distinct int
		err = db.QueryRow("SELECT count(*), count(DISTINCT version) FROM applied_log").Scan(&n, &distinct)
		db.Close()
		if err != nil || n != 5 || distinct != 5 {
			t.Errorf("%s: applied_log has %d rows for %d versions (%v); want 5 and 5", id, n, distinct, err)
		}
	}
}

func TestDownStatusDryRun(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := e.migrator(nil, migrate.WithConcurrency(8))
	if _, err := m.Run(ctx, migrate.UpTo, 2); err != nil {
		t.Fatal(err)
	}
	one := e.ids[0]
	if got := e.serverVersions(one); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("after up-to 2: %v", got)
	}
	dry := e.migrator(nil, migrate.WithDryRun(true))
	rep, err := dry.Run(ctx, migrate.Up, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if !slices.Equal(r.Pending, []int64{3, 4, 5}) || len(r.Applied) != 0 {
			t.Errorf("dry run for %s: pending %v applied %v", r.Tenant, r.Pending, r.Applied)
		}
	}
	if got := e.serverVersions(one); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("the dry run changed the database: %v", got)
	}
	st, err := m.Run(ctx, migrate.Status, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Results {
		var applied []int64
		for _, s := range r.Migrations {
			if s.Applied {
				applied = append(applied, s.Version)
			}
		}
		if !slices.Equal(applied, []int64{1, 2}) || !slices.Equal(r.Pending, []int64{3, 4, 5}) {
			t.Errorf("status of %s: applied %v pending %v", r.Tenant, applied, r.Pending)
		}
	}
	if _, err := m.Run(ctx, migrate.Up, 0); err != nil {
		t.Fatal(err)
	}
	rep, err = m.Run(ctx, migrate.Down, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.Before != 5 || r.After != 4 || len(r.Applied) != 1 || r.Applied[0].Direction != "down" {
		t.Errorf("down: %+v", r)
	}
	if _, err := m.Run(ctx, migrate.DownTo, 2); err != nil {
		t.Fatal(err)
	}
	if got := e.serverVersions(one); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("after down-to 2 the database records %v", got)
	}
}

func TestSelectTenants(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rep, err := e.migrator(nil, migrate.WithTenants(e.ids[1], e.ids[2], e.ids[3]), migrate.WithExclude(e.ids[2])).Run(ctx, migrate.Up, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rep.Results {
		got = append(got, r.Tenant)
	}
	if !slices.Equal(got, []string{e.ids[1], e.ids[3]}) {
		t.Fatalf("ran %v", got)
	}
	if len(e.serverVersions(e.ids[2])) != 0 {
		t.Error("the excluded tenant was migrated")
	}
	if _, err := e.migrator(nil, migrate.WithTenants("nosuch.test")).Run(ctx, migrate.Up, 0); err == nil || !contains(err.Error(), "nosuch.test") {
		t.Errorf("unknown tenant: %v", err)
	}
}

// Cancelling a run starts no new tenant; the running ones finish the
// migration in flight and stop there, reported as interrupted with what
// they applied; the error says how many were not started.
func TestCancelStopsStarting(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	m := e.migrator(nil, migrate.WithConcurrency(2), migrate.WithProgress(func(p migrate.Progress) {
		if n.Add(1) == 4 {
			cancel()
		}
	}))
	rep, err := m.Run(ctx, migrate.Up, 0)
	if !errors.Is(err, context.Canceled) || !contains(err.Error(), "not started") {
		t.Fatalf("err = %v, want context.Canceled, saying how many were not started", err)
	}
	changed, _, failed, skipped := rep.Counts()
	if changed < 4 || skipped == 0 || changed+failed+skipped != tenantCount {
		t.Fatalf("changed %d failed %d skipped %d", changed, failed, skipped)
	}
	for _, r := range rep.Results {
		got := e.serverVersions(r.Tenant)
		var applied []int64
		for _, a := range r.Applied {
			applied = append(applied, a.Version)
		}
		switch {
		case r.Skipped:
			if len(got) != 0 {
				t.Errorf("%s was not started, yet its database records %v", r.Tenant, got)
			}
		case r.Err != nil:
			// Interrupted: no migration half done, the rest pending
			// (unknown when it ended before reading the version,
			// Before -1).
			if !errors.Is(r.Err, context.Canceled) || !slices.Equal(got, applied) || r.Before >= 0 && len(applied)+len(r.Pending) != 5 {
				t.Errorf("%s: err %v, applied %v, pending %v, database records %v", r.Tenant, r.Err, applied, r.Pending, got)
			}
		case len(got) != 5:
			t.Errorf("%s finished, yet its database records %v", r.Tenant, got)
		}
	}
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !stringsContains(s, p) {
			return false
		}
	}
	return true
}

func stringsContains(s, sub string) bool { return strings.Contains(s, sub) }
