package driver_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// sharedDBs is the number of databases the isolation tests spread their
// tenants over. They are created once and kept between runs.
const sharedDBs = 24

// fixture is a tenantsql *sql.DB over a memory store whose tenants each
// have their own database and their own application_name, so every answer
// can be checked against what the server says it is.
type fixture struct {
	t       testing.TB
	ctx     context.Context
	store   *store.Memory
	conn    *driver.Connector
	db      *sql.DB
	admin   *sql.DB
	tenants []tenantInfo
	byID    map[string]tenantInfo
	tag     string // application_name prefix of this fixture's sessions
}

type tenantInfo struct {
	ID  string // tenant id, also its application_name
	DB  string // database
	URL string
}

func (ti tenantInfo) ctx(parent context.Context) context.Context {
	return tenantctx.WithTenant(parent, ti.ID)
}

var fixtureSeq struct {
	sync.Mutex
	n int
}

// runID keeps this process's application names apart from those of an
// earlier run whose sessions the server may not have reaped yet.
var runID = fmt.Sprintf("%04x", rand.IntN(1<<16))

// newFixture registers n tenants named <tag>-<i>.test on databases
// prefix_0 ... (shared, modulo count) and opens a tenantsql *sql.DB.
func newFixture(t testing.TB, tag string, n int, opts ...driver.Option) *fixture {
	t.Helper()
	return newFixtureOn(t, tag, n, "tsql_t", sharedDBs, opts...)
}

func newFixtureOn(t testing.TB, tag string, n int, dbPrefix string, dbCount int, opts ...driver.Option) *fixture {
	t.Helper()
	fixtureSeq.Lock()
	fixtureSeq.n++
	tag = fmt.Sprintf("%s%d-%s", tag, fixtureSeq.n, runID)
	fixtureSeq.Unlock()

	dbs := testenv.Names(dbPrefix, min(n, dbCount))
	testenv.EnsureDatabases(t, dbs...)
	f := &fixture{
		t:     t,
		ctx:   context.Background(),
		store: store.NewMemory(),
		admin: testenv.Admin(t),
		byID:  make(map[string]tenantInfo),
		tag:   tag,
	}
	for i := range n {
		id := fmt.Sprintf("%s-%d.test", tag, i)
		db := dbs[i%len(dbs)]
		ti := tenantInfo{ID: id, DB: db, URL: testenv.DatabaseURL(t, db, "application_name", id)}
		f.add(ti)
	}
	c, err := driver.NewConnector(f.store, opts...)
	if err != nil {
		t.Fatal(err)
	}
	f.conn = c
	f.db = sql.OpenDB(c)
	t.Cleanup(func() { f.db.Close() })
	return f
}

func (f *fixture) add(ti tenantInfo) {
	f.t.Helper()
	if _, err := f.store.Create(f.ctx, store.Tenant{ID: ti.ID, DeployInfo: map[string]string{store.KeyPostgresURL: ti.URL}}); err != nil {
		f.t.Fatal(err)
	}
	f.tenants = append(f.tenants, ti)
	f.byID[ti.ID] = ti
}

// whereAmI is the query whose answer proves where a statement ran.
const whereAmI = "SELECT current_database(), current_setting('application_name')"

type answer struct{ DB, App string }

// check fails the test unless the answer is the tenant's own database and
// session.
func (f *fixture) check(ti tenantInfo, got answer) {
	f.t.Helper()
	if got.DB != ti.DB || got.App != ti.ID {
		f.t.Errorf("tenant %s: query ran on database %q as %q, want %q as %q", ti.ID, got.DB, got.App, ti.DB, ti.ID)
	}
}

func (f *fixture) where(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (answer, error) {
	var a answer
	err := q.QueryRowContext(ctx, whereAmI).Scan(&a.DB, &a.App)
	return a, err
}

// serverSessions counts this fixture's sessions as the server sees them.
func (f *fixture) serverSessions() int {
	f.t.Helper()
	var n int
	if err := f.admin.QueryRowContext(f.ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", f.tag+"-%").Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// adminCount runs a count query as the admin and fails the test when the
// query or its Scan fails: a failed server query never reads as 0.
func (f *fixture) adminCount(query string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.admin.QueryRowContext(f.ctx, query, args...).Scan(&n); err != nil {
		f.t.Fatalf("admin query %q: %v", query, err)
	}
	return n
}

// tenantStats is Connector.TenantStats, failing the test when the
// connector does not know the tenant (zero stats would pass most checks).
func (f *fixture) tenantStats(id string) driver.TenantStats {
	f.t.Helper()
	st, ok := f.conn.TenantStats(id)
	if !ok {
		f.t.Fatalf("TenantStats(%q): tenant unknown to the connector", id)
	}
	return st
}

// runTable names a table of this test process: test runs side by side
// (other checkouts on the same server) share the fixtures' databases, so a
// table a test empties or counts must be its own run's. The table is
// dropped in each of the tenants' databases when the test ends (before the
// fixture closes its DB: cleanups run last-in first-out).
func (f *fixture) runTable(base string, tenants ...tenantInfo) string {
	f.t.Helper()
	name := fmt.Sprintf("%s_%d", base, os.Getpid())
	f.t.Cleanup(func() {
		for _, ti := range tenants {
			if _, err := f.db.ExecContext(ti.ctx(context.Background()), "DROP TABLE IF EXISTS "+name); err != nil {
				f.t.Errorf("drop table %s in %s: %v", name, ti.DB, err)
			}
		}
	})
	return name
}

// serverSessionsOf counts the sessions of one tenant as the server sees them.
func (f *fixture) serverSessionsOf(ti tenantInfo) int {
	f.t.Helper()
	var n int
	if err := f.admin.QueryRowContext(f.ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", ti.ID).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// killSessions terminates this fixture's server sessions (all of them, or
// those of one tenant when app is not empty) and returns how many.
func (f *fixture) killSessions(app string) int {
	f.t.Helper()
	pattern := f.tag + "-%"
	if app != "" {
		pattern = app
	}
	var n int
	err := f.admin.QueryRowContext(f.ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE $1", pattern).Scan(&n)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// hangAfter is how long a test gives work of a fixed size (so many
// queries, so many answers) before it calls it hung: far more than the work
// takes on a loaded machine under the race detector, so that it only ever
// catches a hang, and less than what is left of go test's -timeout, so that
// the test reports how far it got instead of being killed.
func hangAfter(t *testing.T) time.Duration {
	d := 3 * time.Minute
	if dl, ok := t.Deadline(); ok {
		d = min(d, time.Until(dl)/2)
	}
	return d
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, timeout, what, cond)
}

func mustContain(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

var errTxDone = sql.ErrTxDone

func mustNotContain(t testing.TB, err error, secret string) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("error %q reveals %q", err, secret)
	}
}

func sqlOpenDB(t testing.TB, c *driver.Connector) *sql.DB {
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

func tenantCtx(id string) context.Context { return tenantctx.WithTenant(context.Background(), id) }
