package driver_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// Database-per-tenant behind a real PgBouncer 1.18 in transaction mode
// (issue 13, point 4): every tenant's URL names the PgBouncer, with its own
// database name, which the PgBouncer's wildcard entry forwards to the same
// database on the test server; PgBouncer lends each transaction whichever
// of its few server connections to that database is free. Under concurrent
// load, every answer must come from the tenant's own database and session
// (current_database(), application_name), every committed row must be in
// the tenant's own database and nowhere else, as read without the
// PgBouncer, a rolled-back row nowhere, and PgBouncer must really have
// been in the path: its own counters and client list show each tenant's
// work, and the server shows no more sessions on a tenant's database than
// PgBouncer's pool size while it holds more clients than that.
func TestPgBouncerDatabasePerTenant(t *testing.T) {
	const (
		tenants   = 3
		workers   = 8
		perWorker = 200
		txEvery   = 10 // every tenth operation of a worker is a transaction
		held      = testenv.PgBouncerPoolSize + 2
	)
	testenv.PgBouncer(t) // skips now, or fails under CI, without one
	dbs := testenv.Names(testenv.Unique("tsql_pgb"), tenants)
	admin := testenv.Admin(t)
	t.Cleanup(func() { // after the fixture's DB has closed (cleanups run last-in first-out)
		for _, d := range dbs {
			if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+d+" WITH (FORCE)"); err != nil {
				t.Errorf("drop database %s: %v", d, err)
			}
		}
	})
	testenv.EnsureDatabases(t, dbs...)

	f := newFixtureOn(t, "pgb", 0, "tsql_t", sharedDBs)
	direct := testenv.PostgresURL(t)
	for i, d := range dbs {
		ti := tenantInfo{ID: fmt.Sprintf("%s-%d.test", f.tag, i), DB: d}
		ti.URL = testenv.PgBouncerURL(t, d, "application_name", ti.ID)
		if sameHost(t, ti.URL, direct) {
			t.Fatalf("tenant URL %s names the test server itself, not the PgBouncer", ti.URL)
		}
		f.add(ti)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangAfter(t))
	defer cancel()

	const table = "pgb_rows"
	for _, ti := range f.tenants {
		if _, err := f.db.ExecContext(ti.ctx(ctx), "CREATE TABLE "+table+" (tenant text NOT NULL, worker int NOT NULL, op int NOT NULL)"); err != nil {
			t.Fatalf("tenant %s: create table through PgBouncer: %v\nPgBouncer's output:\n%s", ti.ID, err, testenv.PgBouncerLog(t))
		}
	}

	// The load: a fixed amount of work; the context's deadline only
	// catches a hang.
	var (
		queries   [tenants]atomic.Int64
		committed [tenants]atomic.Int64
		failures  atomic.Int64
		wg        sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 20 {
			t.Errorf(format, args...)
		}
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for op := range perWorker {
				if ctx.Err() != nil {
					fail("worker %d: stopped at operation %d of %d: %v", w, op, perWorker, ctx.Err())
					return
				}
				k := (w + op) % tenants
				ti := f.tenants[k]
				tctx := ti.ctx(ctx)
				if op%txEvery != 0 {
					got, err := f.where(tctx, f.db)
					if err != nil {
						fail("tenant %s: query through PgBouncer: %v", ti.ID, err)
						continue
					}
					queries[k].Add(1)
					f.check(ti, got)
					continue
				}
				// A transaction: where it runs, and a row it writes, seen
				// by the statements of the same transaction.
				tx, err := f.db.BeginTx(tctx, nil)
				if err != nil {
					fail("tenant %s: begin through PgBouncer: %v", ti.ID, err)
					continue
				}
				if _, err := tx.ExecContext(tctx, "INSERT INTO "+table+" VALUES ($1, $2, $3)", ti.ID, w, op); err != nil {
					tx.Rollback()
					fail("tenant %s: insert in a transaction: %v", ti.ID, err)
					continue
				}
				got, err := f.where(tctx, tx)
				if err != nil {
					tx.Rollback()
					fail("tenant %s: query in a transaction: %v", ti.ID, err)
					continue
				}
				f.check(ti, got)
				var mine int
				if err := tx.QueryRowContext(tctx, "SELECT count(*) FROM "+table+" WHERE tenant = $1 AND worker = $2 AND op = $3", ti.ID, w, op).Scan(&mine); err != nil || mine != 1 {
					tx.Rollback()
					fail("tenant %s: the transaction sees %d of its own row (want 1), err %v", ti.ID, mine, err)
					continue
				}
				if err := tx.Commit(); err != nil {
					fail("tenant %s: commit through PgBouncer: %v", ti.ID, err)
					continue
				}
				committed[k].Add(1)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.Logf("PgBouncer's output:\n%s", testenv.PgBouncerLog(t))
		t.FailNow()
	}

	// A transaction rolled back behind PgBouncer leaves nothing.
	for _, ti := range f.tenants {
		tctx := ti.ctx(ctx)
		tx, err := f.db.BeginTx(tctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(tctx, "INSERT INTO "+table+" VALUES ($1, -1, -1)", ti.ID); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	}

	// PgBouncer was in the path: it counted each tenant's transactions on
	// the tenant's database (the database is this run's own, so nobody
	// else's), and lists the tenant's sessions as its clients.
	stats := map[string]map[string]string{}
	for _, r := range testenv.PgBouncerShow(t, "STATS") {
		stats[r["database"]] = r
	}
	clients := map[string]int{}
	for _, r := range testenv.PgBouncerShow(t, "CLIENTS") {
		clients[r["database"]+" "+r["application_name"]]++
	}
	for k, ti := range f.tenants {
		// Each query outside a transaction is one transaction to
		// PgBouncer; the committed and rolled-back ones, one each.
		want := queries[k].Load() + committed[k].Load() + 1
		got, err := strconv.ParseInt(stats[ti.DB]["total_xact_count"], 10, 64)
		if err != nil || got < want {
			t.Errorf("tenant %s: PgBouncer counted %q transactions on %s (err %v), want at least %d: its queries did not go through PgBouncer", ti.ID, stats[ti.DB]["total_xact_count"], ti.DB, err, want)
		}
		if clients[ti.DB+" "+ti.ID] == 0 {
			t.Errorf("tenant %s: SHOW CLIENTS lists no client on %s as %s: its sessions are not PgBouncer's", ti.ID, ti.DB, ti.ID)
		}
		t.Logf("tenant %s: %d queries, %d transactions committed; PgBouncer counted %d transactions, %d clients", ti.ID, queries[k].Load(), committed[k].Load(), got, clients[ti.DB+" "+ti.ID])
	}

	// Server connections are shared: hold more sessions of one tenant
	// (each *sql.Conn keeps its own PgBouncer client) than PgBouncer has
	// server connections for its database; each still answers from the
	// tenant's database, and the server has at most the pool size there.
	ti := f.tenants[0]
	tctx := ti.ctx(ctx)
	for i := range held {
		c, err := f.db.Conn(tctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got, err := f.where(tctx, c)
		if err != nil {
			t.Fatalf("held session %d of tenant %s: %v", i, ti.ID, err)
		}
		f.check(ti, got)
	}
	n := 0
	for _, r := range testenv.PgBouncerShow(t, "CLIENTS") {
		if r["database"] == ti.DB && r["application_name"] == ti.ID {
			n++
		}
	}
	if n < held {
		t.Errorf("tenant %s holds %d sessions, PgBouncer lists %d clients for it", ti.ID, held, n)
	}
	if n := f.adminCount("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'", ti.DB); n > testenv.PgBouncerPoolSize {
		t.Errorf("tenant %s holds %d sessions, the server has %d on %s: want at most PgBouncer's pool size, %d", ti.ID, held, n, ti.DB, testenv.PgBouncerPoolSize)
	}

	// Every committed row is in its tenant's database, and only there:
	// read on the server directly, not through PgBouncer or tenantsql.
	for k, ti := range f.tenants {
		db, err := sql.Open("pgx", testenv.DatabaseURL(t, ti.DB))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.QueryContext(ctx, "SELECT tenant, count(*), count(*) FILTER (WHERE worker < 0) FROM "+table+" GROUP BY tenant")
		if err != nil {
			t.Fatalf("read %s directly: %v", ti.DB, err)
		}
		seen := 0
		for rows.Next() {
			var tenant string
			var n, rolledBack int64
			if err := rows.Scan(&tenant, &n, &rolledBack); err != nil {
				t.Fatal(err)
			}
			seen++
			if tenant != ti.ID || n != committed[k].Load() || rolledBack != 0 {
				t.Errorf("database %s of tenant %s holds %d rows of tenant %s (%d rolled back); want only %d of its own, none rolled back", ti.DB, ti.ID, n, tenant, rolledBack, committed[k].Load())
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if seen == 0 && committed[k].Load() > 0 {
			t.Errorf("database %s of tenant %s holds none of its %d committed rows", ti.DB, ti.ID, committed[k].Load())
		}
	}
}

// sameHost reports whether two URLs name the same host and port.
func sameHost(t *testing.T, a, b string) bool {
	t.Helper()
	ua, err := url.Parse(a)
	if err != nil {
		t.Fatal(err)
	}
	ub, err := url.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return ua.Host == ub.Host
}
