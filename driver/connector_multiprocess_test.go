package driver_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

func openStore(u string) (store.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), loadWait)
	defer cancel()
	return store.Open(ctx, u)
}

// redisFixture is a parent-side store on a fresh Redis prefix, and the URL
// a child process opens the same store with.
func redisFixture(t *testing.T, redisURL string) (store.Store, string) {
	t.Helper()
	u := testenv.WithQuery(redisURL, "prefix", testenv.RedisPrefix(t), "check", "500ms")
	s, err := openStore(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, u
}

func createTenant(t *testing.T, s store.Store, id, db string) {
	t.Helper()
	testenv.EnsureDatabases(t, db)
	if _, err := s.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, db, "application_name", id)}}); err != nil {
		t.Fatal(err)
	}
}

// A tenant created in one process is served in another, whose hooks run
// as soon as the change arrives.
func TestTwoProcessesCreate(t *testing.T) {
	s, u := redisFixture(t, testenv.RedisURL(t))
	id := "mp-create-" + runID + ".test"
	createTenant(t, s, "mp-before-"+runID+".test", "tsql_t_0")
	c := startChild(t, u)
	got, err := c.query("mp-before-" + runID + ".test")
	if err != nil || got.DB != "tsql_t_0" {
		t.Fatalf("tenant known at start-up: %+v, %v", got, err)
	}
	createTenant(t, s, id, "tsql_t_1")
	eventually(t, loadWait, "the child's create hook", func() bool { return c.hookAt(hooks.PostCreate, id) != 0 })
	got, err = c.query(id)
	if err != nil {
		t.Fatal(err)
	}
	if got.DB != "tsql_t_1" || got.App != id {
		t.Fatalf("child ran the new tenant's query on %+v", got)
	}
}

// The first query in another process right after a create succeeds: the
// process waits for the change when the store already has the tenant.
func TestQueryRightAfterCreateElsewhere(t *testing.T) {
	s, u := redisFixture(t, testenv.RedisURL(t))
	c := startChild(t, u)
	for i := range 5 {
		id := "mp-fast-" + runID + "-" + string(rune('a'+i)) + ".test"
		createTenant(t, s, id, "tsql_t_2")
		got, err := c.query(id)
		if err != nil {
			t.Fatalf("query right after the create: %v", err)
		}
		if got.App != id {
			t.Fatalf("got %+v", got)
		}
	}
}

// loadAnswers is how many answers the multi-process tests wait for on each
// side of a change, so that the load is known to run across it.
const loadAnswers = 50

// A new POSTGRES_URL, written by one process while another runs queries for
// the tenant: no query fails, none runs anywhere but the tenant's old or
// new database, and the new one takes over.
//
// The load runs until the test has seen it answered from the old database,
// then the update is written, and the load runs until answers come from the
// new database (or something failed): no sleep decides when the update
// lands in the load, and no fixed window decides when the load ends.
func TestUpdateUnderLoad(t *testing.T) {
	s, u := redisFixture(t, testenv.RedisURL(t))
	id := "mp-upd-" + runID + ".test"
	createTenant(t, s, id, "tsql_t_3")
	testenv.EnsureDatabases(t, "tsql_t_4")
	c := startChild(t, u)
	l := c.startLoad(id, 8)
	failed := func(r loadResult) bool { return r.errs+r.unknown+r.wrong != 0 }
	l.waitFor("answers from the old database", func(r loadResult) bool { return r.byDB["tsql_t_3"] >= loadAnswers || failed(r) })
	if _, err := s.Update(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, "tsql_t_4", "application_name", id)}}); err != nil {
		t.Fatal(err)
	}
	l.waitFor("answers from the new database after the update", func(r loadResult) bool { return r.byDB["tsql_t_4"] >= loadAnswers || failed(r) })
	r := l.stop()
	t.Logf("under an update: %d queries answered (%s), %d failed, %d wrong", r.ok, r.dbs, r.errs+r.unknown, r.wrong)
	if r.errs != 0 || r.unknown != 0 || r.wrong != 0 {
		t.Fatalf("%d queries failed (%s), %d unknown, %d wrong", r.errs, r.firstErr, r.unknown, r.wrong)
	}
	if !strings.Contains(r.dbs, "tsql_t_3=") || !strings.Contains(r.dbs, "tsql_t_4=") {
		t.Fatalf("answers came from %s, want both the old and the new database", r.dbs)
	}
	got, err := c.query(id)
	if err != nil || got.DB != "tsql_t_4" {
		t.Fatalf("after the update: %+v, %v", got, err)
	}
}

// A delete written by one process while another runs queries: queries
// before it succeed, queries after it fail with ErrUnknownTenant, nothing
// else fails and nothing runs on another tenant's database. As above, the
// load runs until it has been answered, then until it has been refused.
func TestDeleteUnderLoad(t *testing.T) {
	s, u := redisFixture(t, testenv.RedisURL(t))
	id := "mp-del-" + runID + ".test"
	createTenant(t, s, id, "tsql_t_5")
	c := startChild(t, u)
	l := c.startLoad(id, 8)
	failed := func(r loadResult) bool { return r.errs+r.wrong != 0 }
	if r := l.waitFor("answers before the delete", func(r loadResult) bool { return r.ok >= loadAnswers || failed(r) || r.unknown != 0 }); r.unknown != 0 {
		t.Fatalf("queries refused as an unknown tenant before the delete: %v", r)
	}
	if _, err := s.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	l.waitFor("queries refused as an unknown tenant after the delete", func(r loadResult) bool { return r.unknown >= loadAnswers || failed(r) })
	r := l.stop()
	t.Logf("under a delete: %d answered, %d unknown tenant, %d other errors, %d wrong", r.ok, r.unknown, r.errs, r.wrong)
	if r.errs != 0 || r.wrong != 0 {
		t.Fatalf("%d queries failed otherwise than unknown tenant (%s), %d wrong", r.errs, r.firstErr, r.wrong)
	}
	if r.ok == 0 || r.unknown == 0 {
		t.Fatalf("%d answered before and %d refused after the delete; want both", r.ok, r.unknown)
	}
	if _, err := c.query(id); err == nil || !strings.Contains(err.Error(), driver.ErrUnknownTenant.Error()) {
		t.Fatalf("after the delete: %v, want unknown tenant", err)
	}
}

// Redis killed and restarted, with a tenant created in between: the other
// process keeps serving the tenants it knew while Redis is down, and has
// the new one once Redis is back (how long that takes is logged; the test
// waits for it with a deadline that only catches a hang).
func TestRedisRestartAcrossProcesses(t *testing.T) {
	for _, persist := range []bool{true, false} {
		name := map[bool]string{true: "with persistence", false: "comes back empty"}[persist]
		t.Run(name, func(t *testing.T) {
			srv := testenv.StartRedis(t, persist)
			s, u := redisFixture(t, srv.URL())
			old := "mp-old-" + runID + ".test"
			createTenant(t, s, old, "tsql_t_6")
			c := startChild(t, u)
			if _, err := c.query(old); err != nil {
				t.Fatal(err)
			}
			srv.Kill()
			if got, err := c.query(old); err != nil || got.App != old {
				t.Fatalf("known tenant while Redis is down: %+v, %v", got, err)
			}
			srv.Start()
			id := "mp-new-" + runID + ".test"
			start := time.Now()
			eventually(t, loadWait, "the create to go through", func() bool {
				_, err := s.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, "tsql_t_7", "application_name", id)}})
				return err == nil || errors.Is(err, store.ErrExists)
			})
			testenv.EnsureDatabases(t, "tsql_t_7")
			eventually(t, loadWait, "the child to serve the new tenant", func() bool { return c.hookAt(hooks.PostCreate, id) != 0 })
			t.Logf("new tenant served by the other process %v after Redis came back", time.Since(start).Round(time.Millisecond))
			if got, err := c.query(id); err != nil || got.DB != "tsql_t_7" {
				t.Fatalf("new tenant: %+v, %v", got, err)
			}
			if got, err := c.query(old); err != nil || got.App != old {
				t.Fatalf("the tenant known before (Redis %s): %+v, %v", name, got, err)
			}
		})
	}
}
