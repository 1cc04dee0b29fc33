package driver_test

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// TestSharedStress is the proof of isolation for tenants that share
// sessions, against the real server: one *sql.DB, one connector and a
// small budget serve schema tenants (search_path) of one database, RLS
// tenants (app.tenant_id, a policy, a login role without BYPASSRLS) of
// another and, in the mixed case, tenants with a database of their own,
// so that sessions go from tenant to tenant all the time. Goroutines run a
// fixed number of random operations for random tenants: queries, Execs,
// transactions (committed, rolled back, or broken by a failing
// statement), queries cancelled mid-flight, statements that fail on
// purpose, session-level SET / set_config / RESET ALL / LISTEN / temporary
// tables / advisory locks by the tenant itself, a statement prepared once
// through database/sql for every tenant, pgx-level work through PgxConn,
// and backends killed by an admin connection. Every answer is checked
// against what the server says: current_schema(),
// current_setting('app.tenant_id'), current_database(), current_user, a
// session-level setting a tenant may leave behind (app.leak: empty or its
// own id, never another's) and the tenant-tagged rows. Every row
// written is checked afterwards to sit with its tenant, as many as were
// confirmed and no more than were sent.
//
// Errors are allowed only where they are the point: a cancelled query may
// fail as cancelled (or with its session broken), a statement that fails
// on purpose must fail with its own SQLSTATE, and the other operations
// may fail with a broken connection only as many times as backends were
// killed. Anything else, and any wrong answer, fails the test with the
// operation, tenant and answer.
//
// The work is fixed, not timed: a slow machine does the same operations
// later. The deadline only catches a hang.
func TestSharedStress(t *testing.T) {
	ops := 2000
	if testing.Short() {
		ops = 400
	}
	cases := []struct {
		name       string
		schemas    int  // schema tenants in one database
		rls        int  // RLS tenants in another
		dbs        int  // tenants with a database of their own
		public     bool // a tenant on the schema tenants' database without settings (public schema)
		maxConns   int
		goroutines int
	}{
		{name: "schema", schemas: 10, maxConns: 4, goroutines: 8},
		{name: "rls", rls: 10, maxConns: 4, goroutines: 8},
		// Five targets (the schema tenants', the RLS tenants', three
		// of their own) for four sessions: they take each other's.
		{name: "mixed", schemas: 6, rls: 6, dbs: 2, public: true, maxConns: 4, goroutines: 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newStressEnv(t, tc.name, tc.schemas, tc.rls, tc.dbs, tc.public, driver.WithMaxConns(tc.maxConns))
			e.run(t, tc.goroutines, ops)
		})
	}
}

// stTenant is one tenant of the stress test and what the server must say
// about every statement run for it.
type stTenant struct {
	id      string
	kind    string // "schema", "rls", "db"
	schema  string // current_schema()
	setting string // current_setting('app.tenant_id', true), "" for none
	db      string // current_database()
	user    string // current_user
	others  []string

	attempted atomic.Int64 // marks rows sent
	confirmed atomic.Int64 // marks rows whose commit was confirmed
}

func (st *stTenant) ctx(parent context.Context) context.Context {
	return tenantctx.WithTenant(parent, st.id)
}

type stressEnv struct {
	tdb      *sql.DB
	conn     *driver.Connector
	admin    *sql.DB // on the server's admin database: kills and checks
	tenants  []*stTenant
	dbs      []string // every database the tenants use
	schemaDB string
	rlsDB    string
	prepared *sql.Stmt // the check query, prepared once for the first tenant
}

var stressSeq atomic.Int64

func newStressEnv(t *testing.T, name string, schemas, rls, dbs int, public bool, opts ...driver.Option) *stressEnv {
	t.Helper()
	n := stressSeq.Add(1)
	base := testenv.Unique(fmt.Sprintf("tsql_sst%d", n))
	e := &stressEnv{admin: testenv.Admin(t)}
	e.admin.SetMaxOpenConns(2)
	ctx := context.Background()
	var super string // the test server's user, whom the tenants' URLs name unless they name a role
	if err := e.admin.QueryRowContext(ctx, "select current_user::text").Scan(&super); err != nil {
		t.Fatal(err)
	}
	s := store.NewMemory()
	add := func(st *stTenant, url string) {
		t.Helper()
		if _, err := s.Create(ctx, store.Tenant{ID: st.id, DeployInfo: map[string]string{store.KeyPostgresURL: url}}); err != nil {
			t.Fatal(err)
		}
		e.tenants = append(e.tenants, st)
	}
	// Runs set-up statements as the superuser on one database; the pool
	// is closed before the work starts, so that every backend on the
	// tenants' databases is the driver's.
	setup := func(db string, stmts ...string) {
		t.Helper()
		c, err := sql.Open("pgx", testenv.DatabaseURL(t, db))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, q := range stmts {
			if _, err := c.ExecContext(ctx, q); err != nil {
				t.Fatalf("set-up of %s: %q: %v", db, q, err)
			}
		}
	}
	create := func(db string) {
		t.Helper()
		testenv.RecreateDatabase(t, db)
		t.Cleanup(func() { testenv.DropDatabase(t, db) })
		e.dbs = append(e.dbs, db)
	}
	items := func(table, tag string) string {
		return fmt.Sprintf("insert into %s (n, tag) values (1, '%s'), (2, '%s'), (3, '%s')", table, tag, tag, tag)
	}

	if schemas > 0 || public {
		e.schemaDB = base + "_s"
		create(e.schemaDB)
		stmts := []string{
			"create table public.items (n int, tag text)",
			"create table public.marks (tag text, n bigint)",
		}
		if public {
			stmts = append(stmts, items("public.items", "p0.test"))
		}
		for i := range schemas {
			sc := fmt.Sprintf("s%d", i)
			stmts = append(stmts,
				"create schema "+sc,
				"create table "+sc+".items (n int, tag text)",
				"create table "+sc+".marks (tag text, n bigint)",
				items(sc+".items", sc+".test"))
		}
		setup(e.schemaDB, stmts...)
		for i := range schemas {
			sc := fmt.Sprintf("s%d", i)
			path := sc
			if i%2 == 1 {
				// public after it: a statement run without the
				// tenant's settings would read p0's rows.
				path = sc + ", public"
			}
			add(&stTenant{id: sc + ".test", kind: "schema", schema: sc, db: e.schemaDB, user: super}, testenv.DatabaseURL(t, e.schemaDB, "search_path", path))
		}
		if public {
			add(&stTenant{id: "p0.test", kind: "db", schema: "public", db: e.schemaDB, user: super}, testenv.DatabaseURL(t, e.schemaDB))
		}
	}

	if rls > 0 {
		e.rlsDB = base + "_r"
		role := base + "_app"
		create(e.rlsDB)
		// Registered after the database's drop, so run before it: the
		// role is dropped once the database (its grants) is gone.
		t.Cleanup(func() {
			testenv.DropDatabase(t, e.rlsDB)
			if _, err := e.admin.ExecContext(ctx, "drop role if exists "+role); err != nil {
				t.Errorf("drop role %s: %v", role, err)
			}
		})
		if _, err := e.admin.ExecContext(ctx, "drop role if exists "+role); err != nil {
			t.Fatal(err)
		}
		if _, err := e.admin.ExecContext(ctx, "create role "+role+" login nobypassrls"); err != nil {
			t.Fatal(err)
		}
		stmts := []string{
			"create table items (tenant_id text not null, n int, tag text not null)",
			"alter table items enable row level security",
			"alter table items force row level security",
			"create policy by_tenant on items using (tenant_id = current_setting('app.tenant_id'))",
			"create table marks (tenant_id text not null default current_setting('app.tenant_id'), tag text not null, n bigint)",
			"alter table marks enable row level security",
			"alter table marks force row level security",
			"create policy by_tenant on marks using (tenant_id = current_setting('app.tenant_id')) with check (tenant_id = current_setting('app.tenant_id'))",
			"grant select on items to " + role,
			"grant select, insert on marks to " + role,
		}
		for i := range rls {
			id := fmt.Sprintf("r%d.test", i)
			stmts = append(stmts, fmt.Sprintf("insert into items values ('%s', 1, '%s'), ('%s', 2, '%s'), ('%s', 3, '%s')", id, id, id, id, id, id))
		}
		setup(e.rlsDB, stmts...)
		for i := range rls {
			id := fmt.Sprintf("r%d.test", i)
			u := testenv.DatabaseURL(t, e.rlsDB, "app.tenant_id", id)
			u = strings.Replace(u, "postgres://postgres", "postgres://"+role, 1)
			if !strings.Contains(u, role) {
				t.Fatalf("cannot put role %s in the URL %s", role, u)
			}
			add(&stTenant{id: id, kind: "rls", schema: "public", setting: id, db: e.rlsDB, user: role}, u)
		}
	}

	for i := range dbs {
		db := fmt.Sprintf("%s_d%d", base, i)
		id := fmt.Sprintf("d%d.test", i)
		create(db)
		setup(db,
			"create table items (n int, tag text)",
			"create table marks (tag text, n bigint)",
			items("items", id))
		add(&stTenant{id: id, kind: "db", schema: "public", db: db, user: super}, testenv.DatabaseURL(t, db))
	}

	for _, st := range e.tenants {
		for _, o := range e.tenants {
			if o.kind == st.kind && o != st {
				st.others = append(st.others, o.id)
			}
		}
	}
	c, err := driver.NewConnector(s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	e.conn = c
	e.tdb = sql.OpenDB(c)
	t.Cleanup(func() { e.tdb.Close() })
	e.prepared, err = e.tdb.PrepareContext(e.tenants[0].ctx(ctx), stressCheck)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.prepared.Close() })
	t.Logf("%s: %d tenants (%d schema, %d RLS, %d database%s) on databases %v", name, len(e.tenants), schemas, rls, dbs, map[bool]string{true: " + one public-schema", false: ""}[public], e.dbs)
	return e
}

// stressCheck is the query whose every row says where it ran: the
// tenant's three rows of items, each with the server's view of the
// session.
const stressCheck = `select current_schema()::text, coalesce(current_setting('app.tenant_id', true), ''),
	current_database()::text, coalesce(current_setting('app.leak', true), ''), tag, current_user::text, pg_backend_pid()
	from items order by n`

// stressSleepy is stressCheck slowed down, to be cancelled mid-flight.
const stressSleepy = `select current_schema()::text, coalesce(current_setting('app.tenant_id', true), ''),
	current_database()::text, coalesce(current_setting('app.leak', true), ''), tag, current_user::text, pg_backend_pid()
	from items, pg_sleep(0.02) order by n`

// stRow is a row of stressCheck: where the server says it ran.
type stRow struct {
	schema, setting, db, leak, tag, user string
	pid                                  int32
}

func (w *stRow) dest() []any {
	return []any{&w.schema, &w.setting, &w.db, &w.leak, &w.tag, &w.user, &w.pid}
}

func (w stRow) String() string {
	return fmt.Sprintf("schema=%s app.tenant_id=%q db=%s app.leak=%q tag=%s user=%s pid=%d", w.schema, w.setting, w.db, w.leak, w.tag, w.user, w.pid)
}

// owns reports whether the row is the tenant's, read in a session set
// for it: app.leak may be what the tenant itself left, never another's.
func (st *stTenant) owns(w stRow) bool {
	return w.schema == st.schema && w.setting == st.setting && w.db == st.db && (w.leak == "" || w.leak == st.id) && w.tag == st.id && w.user == st.user
}

func (st *stTenant) want() string {
	return fmt.Sprintf("schema=%s app.tenant_id=%q db=%s app.leak=\"\" or %q tag=%s user=%s", st.schema, st.setting, st.db, st.id, st.id, st.user)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// stressRun is the state of one run: counters, and the failures found.
type stressRun struct {
	e         *stressEnv
	ctx       context.Context // ends at the hang deadline
	seq       atomic.Int64    // marks' n
	connErrs  atomic.Int64    // ops that failed with a broken connection, not cancel ops
	cancelled atomic.Int64    // cancel ops that were cancelled
	okOps     atomic.Int64
	answers   atomic.Int64 // rows checked
	kills     atomic.Int64
	killed    atomic.Int64 // backends terminated
	byKind    [opKinds]atomic.Int64

	mu        sync.Mutex
	failures  []string
	connSeen  []string            // the broken-connection errors, a few
	pidTenant map[int32]string    // last tenant seen on each backend
	switches  int                 // answers on a backend whose previous answer was another tenant's
	pidSet    map[int32]struct{}  // backends seen
	shared    map[string]struct{} // "pid tenant" pairs seen
}

func (r *stressRun) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.failures) < 50 {
		r.failures = append(r.failures, fmt.Sprintf(format, args...))
	}
}

// Operation kinds, with their weights.
const (
	opQuery = iota
	opPrepared
	opExec
	opTx
	opCancel
	opFail
	opUserSet
	opKill
	opRaw
	opKinds
)

var opNames = [opKinds]string{"query", "prepared", "exec", "tx", "cancel", "fail", "user-set", "kill", "raw"}
var opWeights = [opKinds]int{25, 8, 15, 15, 10, 9, 15, 3, 5}

func pickOp(rng *rand.Rand) int {
	total := 0
	for _, w := range opWeights {
		total += w
	}
	x := rng.IntN(total)
	for k, w := range opWeights {
		if x < w {
			return k
		}
		x -= w
	}
	panic("unreachable")
}

func (e *stressEnv) run(t *testing.T, goroutines, ops int) {
	hang := hangAfter(t)
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	r := &stressRun{e: e, ctx: ctx, pidTenant: map[int32]string{}, pidSet: map[int32]struct{}{}, shared: map[string]struct{}{}}
	seed := rand.Uint64()
	t.Logf("seed %d, %d goroutines, %d operations", seed, goroutines, ops)
	e.tdb.SetMaxOpenConns(goroutines)
	e.tdb.SetMaxIdleConns(goroutines)

	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for {
				i := next.Add(1)
				if i > int64(ops) || ctx.Err() != nil {
					return
				}
				st := e.tenants[rng.IntN(len(e.tenants))]
				kind := pickOp(rng)
				r.byKind[kind].Add(1)
				r.do(i, kind, st, rng)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		t.Errorf("hung: after %v (the limit), %d of %d operations started; %d succeeded; pool %+v",
			hang.Round(time.Second), min(next.Load(), int64(ops)), ops, r.okOps.Load(), e.conn.Stats())
	}
	e.checkMarks(t, r)

	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.failures {
		t.Error(f)
	}
	if c, k := r.connErrs.Load(), r.killed.Load(); c > k {
		t.Errorf("%d operations (not cancellations) failed with a broken connection, but only %d backends were killed: %q", c, k, r.connSeen)
	}
	pairs := len(r.shared)
	var kinds []string
	for k := range opKinds {
		kinds = append(kinds, fmt.Sprintf("%s=%d", opNames[k], r.byKind[k].Load()))
	}
	sort.Strings(kinds)
	t.Logf("%d operations in %v (%v): %d succeeded, %d answers checked; %d cancelled; %d kills terminated %d backends, %d operations met a killed one; %d backends served %d (backend, tenant) pairs, %d tenant switches seen on a backend",
		ops, elapsed.Round(time.Millisecond), strings.Join(kinds, " "), r.okOps.Load(), r.answers.Load(), r.cancelled.Load(), r.kills.Load(), r.killed.Load(), r.connErrs.Load(), len(r.pidSet), pairs, r.switches)
	if r.switches == 0 && len(e.tenants) > 1 {
		t.Errorf("no backend served two tenants one after the other: the test did not exercise shared sessions")
	}
}

// do runs operation i and judges its outcome.
func (r *stressRun) do(i int64, kind int, st *stTenant, rng *rand.Rand) {
	ctx := st.ctx(r.ctx)
	var err error
	what := opNames[kind]
	switch kind {
	case opQuery:
		err = r.check(ctx, what, st, r.e.tdb)
	case opPrepared:
		err = r.checkRows(what, st, func() (*sql.Rows, error) { return r.e.prepared.QueryContext(ctx) })
	case opExec:
		err = r.insert(ctx, st, r.e.tdb, true)
	case opTx:
		what, err = r.tx(ctx, st, rng)
	case opCancel:
		err = r.cancel(ctx, st, rng, &what)
		if err != nil && r.ctx.Err() == nil && (cancelError(err) || brokenConn(err)) {
			r.cancelled.Add(1)
			return
		}
	case opFail:
		what, err = r.failOnPurpose(ctx, st, rng)
	case opRaw:
		err = r.raw(ctx, st)
	case opUserSet:
		what, err = r.userSet(ctx, st, rng)
	case opKill:
		// Half the kills go to a backend running a statement, if any.
		var n int64
		what = fmt.Sprintf("kill (active first: %v)", rng.IntN(2) == 0)
		err = r.e.admin.QueryRowContext(r.ctx, `select count(pg_terminate_backend(pid)) from
			(select pid from pg_stat_activity where datname = any($1) and backend_type = 'client backend'
			order by $2 and state = 'active' desc, random() limit 1) s`, r.e.dbs, strings.HasSuffix(what, "true)")).Scan(&n)
		r.kills.Add(1)
		r.killed.Add(n)
	}
	switch {
	case err == nil:
		r.okOps.Add(1)
	case r.ctx.Err() != nil:
		// The hang deadline: reported once, by run.
	case brokenConn(err):
		r.connErrs.Add(1)
		r.mu.Lock()
		if len(r.connSeen) < 5 {
			r.connSeen = append(r.connSeen, fmt.Sprintf("op %d %s for %s: %v", i, what, st.id, err))
		}
		r.mu.Unlock()
	case strings.Contains(err.Error(), "session holds state of another tenant"):
		// The driver's errNotClean, which must not reach a caller: see
		// TestSharedUncleanableSessionsEverywhere.
		r.fail("op %d (%s) for tenant %s (%s): unexpected error: %v (each session it was given had been left uncleanable, LISTEN or a temporary table, by another tenant; the driver gave up instead of using a clean one)", i, what, st.id, st.kind, err)
	default:
		r.fail("op %d (%s) for tenant %s (%s): unexpected error: %v", i, what, st.id, st.kind, err)
	}
}

// cancel runs a query whose context ends: at a random moment while the
// server sleeps, after the first row has been read, or in a transaction
// (whose insert must then not be committed).
func (r *stressRun) cancel(ctx context.Context, st *stTenant, rng *rand.Rand, what *string) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	switch rng.IntN(4) {
	case 0:
		*what = "cancel after the first row"
		return r.checkRows(*what, st, func() (*sql.Rows, error) { return r.e.tdb.QueryContext(cctx, stressCheck) }, cancel)
	case 1:
		d := time.Duration(rng.IntN(40000)) * time.Microsecond
		*what = fmt.Sprintf("cancel in a tx after %v", d)
		tx, err := r.e.tdb.BeginTx(cctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := r.insert(cctx, st, tx, false); err != nil {
			return err
		}
		time.AfterFunc(d, cancel)
		err = r.checkRows(*what, st, func() (*sql.Rows, error) { return tx.QueryContext(cctx, stressSleepy) })
		if err == nil {
			err = tx.Commit()
		}
		if errors.Is(err, sql.ErrTxDone) && cctx.Err() != nil {
			// database/sql rolled the transaction back when its
			// context ended, between the query and the commit.
			return cctx.Err()
		}
		if err != nil {
			return err
		}
		st.confirmed.Add(1)
		return nil
	default:
		d := time.Duration(rng.IntN(40000)) * time.Microsecond
		*what = fmt.Sprintf("cancel after %v", d)
		time.AfterFunc(d, cancel)
		return r.checkRows(*what, st, func() (*sql.Rows, error) { return r.e.tdb.QueryContext(cctx, stressSleepy) })
	}
}

// raw runs the check query through pgx itself, on the session
// (*driver.Conn).PgxConn gives (set for the tenant at session level).
func (r *stressRun) raw(ctx context.Context, st *stTenant) error {
	c, err := r.e.tdb.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Raw(func(dc any) error {
		pc, err := dc.(*driver.Conn).PgxConn(ctx)
		if err != nil {
			return err
		}
		var got []string
		wrong := false
		rows, err := pc.Query(ctx, stressCheck)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var w stRow
			if err := rows.Scan(w.dest()...); err != nil {
				return err
			}
			got = append(got, w.String())
			if !st.owns(w) {
				wrong = true
			}
		}
		if err := rows.Err(); err != nil && !wrong {
			return err
		}
		if wrong || len(got) != 3 {
			r.fail("WRONG ANSWER: raw pgx for tenant %s (%s) got %d rows [%s]; want 3 rows %s",
				st.id, st.kind, len(got), squeeze(got), st.want())
			return nil
		}
		r.answers.Add(3)
		return nil
	})
}

// check runs the check query on q and judges its rows.
func (r *stressRun) check(ctx context.Context, what string, st *stTenant, q querier) error {
	return r.checkRows(what, st, func() (*sql.Rows, error) { return q.QueryContext(ctx, stressCheck) })
}

// checkRows judges the rows of stressCheck or stressSleepy: exactly the
// tenant's three rows, each saying the session was set for it. A wrong
// answer is a failure of the test; an error is returned. The rows read
// before an error are judged too. afterFirst, if not nil, runs once the
// first row is read.
func (r *stressRun) checkRows(what string, st *stTenant, query func() (*sql.Rows, error), afterFirst ...func()) error {
	rows, err := query()
	if err != nil {
		return err
	}
	defer rows.Close()
	var got []string
	var pid int32
	wrong := false
	for rows.Next() {
		var w stRow
		if err = rows.Scan(w.dest()...); err != nil {
			break
		}
		pid = w.pid
		got = append(got, w.String())
		if !st.owns(w) {
			wrong = true
		}
		if len(got) == 1 {
			for _, f := range afterFirst {
				f()
			}
		}
	}
	if err == nil {
		err = rows.Err()
	}
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if wrong || err == nil && len(got) != 3 {
		r.fail("WRONG ANSWER: %s for tenant %s (%s) got %d rows [%s] (then error %v); want 3 rows %s",
			what, st.id, st.kind, len(got), squeeze(got), err, st.want())
		return nil
	}
	if err != nil {
		return err
	}
	r.answers.Add(3)
	r.mu.Lock()
	r.pidSet[pid] = struct{}{}
	r.shared[fmt.Sprint(pid, " ", st.id)] = struct{}{}
	if prev, ok := r.pidTenant[pid]; ok && prev != st.id {
		r.switches++
	}
	r.pidTenant[pid] = st.id
	r.mu.Unlock()
	return nil
}

// squeeze writes rows, the same ones once with their count.
func squeeze(rows []string) string {
	var out []string
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j] == rows[i] {
			j++
		}
		if j-i > 1 {
			out = append(out, fmt.Sprintf("%d× %s", j-i, rows[i]))
		} else {
			out = append(out, rows[i])
		}
		i = j
	}
	return strings.Join(out, "; ")
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// insert writes one marks row tagged with the tenant; autocommit says
// whether its success confirms it.
func (r *stressRun) insert(ctx context.Context, st *stTenant, q execer, autocommit bool) error {
	st.attempted.Add(1)
	res, err := q.ExecContext(ctx, "insert into marks (tag, n) values ($1, $2)", st.id, r.seq.Add(1))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("insert into marks affected %d rows (%v), want 1", n, err)
	}
	if autocommit {
		st.confirmed.Add(1)
	}
	return nil
}

// tx runs a transaction of an insert and a check, sometimes with a
// session-level SET by the tenant in between (overridden by the next
// statement's settings), then commits, rolls back, or fails a statement
// and rolls back.
func (r *stressRun) tx(ctx context.Context, st *stTenant, rng *rand.Rand) (string, error) {
	mode := rng.IntN(3) // 0 commit, 1 rollback, 2 failing statement then rollback
	what := [...]string{"tx commit", "tx rollback", "tx with a failing statement"}[mode]
	set := ""
	if rng.IntN(3) == 0 {
		set = userSets(st, rng)
		what += " after " + set
	}
	tx, err := r.e.tdb.BeginTx(ctx, nil)
	if err != nil {
		return what, err
	}
	defer tx.Rollback()
	if err := r.insert(ctx, st, tx, false); err != nil {
		return what, err
	}
	if set != "" {
		if _, err := tx.ExecContext(ctx, set); err != nil {
			return what, err
		}
	}
	if rng.IntN(3) == 0 {
		what += " (prepared)"
		err = r.checkRows(what, st, func() (*sql.Rows, error) { return tx.StmtContext(ctx, r.e.prepared).QueryContext(ctx) })
	} else {
		err = r.check(ctx, what, st, tx)
	}
	if err != nil {
		return what, err
	}
	switch mode {
	case 0:
		if err := tx.Commit(); err != nil {
			return what, err
		}
		st.confirmed.Add(1)
	case 1:
		return what, tx.Rollback()
	case 2:
		_, err := tx.ExecContext(ctx, "select 1/0")
		if err := wantSQLState(err, "22012"); err != nil {
			return what, err
		}
		// PostgreSQL answers COMMIT of a failed transaction with a
		// ROLLBACK, which pgx reports as an error; nothing of it may
		// be committed (checkMarks).
		if err := tx.Commit(); !errors.Is(err, pgx.ErrTxCommitRollback) {
			if err != nil && brokenConn(err) {
				return what, err
			}
			return what, fmt.Errorf("commit after a failed statement: %v, want pgx.ErrTxCommitRollback", err)
		}
	}
	return what, nil
}

// failOnPurpose runs a statement that must fail with its own SQLSTATE,
// then, on the same session, the check query.
func (r *stressRun) failOnPurpose(ctx context.Context, st *stTenant, rng *rand.Rand) (string, error) {
	stmts := [...]struct{ q, code string }{
		{"select 1/0 from items", "22012"},
		{"select * from no_such_table", "42P01"},
		{"select n from items where n = 'x'", "22P02"},
	}
	s := stmts[rng.IntN(len(stmts))]
	what := "fail: " + s.q
	c, err := r.e.tdb.Conn(ctx)
	if err != nil {
		return what, err
	}
	defer c.Close()
	var qerr error
	if rng.IntN(2) == 0 {
		_, qerr = c.ExecContext(ctx, s.q)
	} else {
		var rows *sql.Rows
		rows, qerr = c.QueryContext(ctx, s.q)
		if qerr == nil {
			for rows.Next() {
			}
			qerr = rows.Err()
			rows.Close()
		}
	}
	if err := wantSQLState(qerr, s.code); err != nil {
		return what, err
	}
	return what, r.check(ctx, what+", then the check", st, c)
}

// userSets returns a session-level statement the tenant may run: one the
// driver must override for its next statement (search_path, app.tenant_id
// of a shared tenant) or clean before another tenant's (the rest). A
// tenant with a database of its own only runs what leaves its own
// answers as they are (app.leak is its own id).
func userSets(st *stTenant, rng *rand.Rand) string {
	other := st.id
	if len(st.others) > 0 {
		other = st.others[rng.IntN(len(st.others))]
	}
	common := []string{
		"reset all",
		fmt.Sprintf("set app.leak = '%s'", st.id),
		fmt.Sprintf("select set_config('app.leak', '%s', false)", st.id),
		"set statement_timeout = '54321'",
		"create temp table if not exists leftover (x int)",
		"listen leftover",
		fmt.Sprintf("select pg_try_advisory_lock(hashtext('%s'))", st.id),
	}
	switch st.kind {
	case "schema":
		sc := strings.TrimSuffix(other, ".test")
		common = append(common,
			"set search_path = "+sc,
			fmt.Sprintf("select set_config('search_path', '%s', false)", sc),
			"set search_path = public",
		)
	case "rls":
		common = append(common,
			fmt.Sprintf("set app.tenant_id = '%s'", other),
			fmt.Sprintf("select set_config('app.tenant_id', '%s', false)", other),
		)
	}
	return common[rng.IntN(len(common))]
}

// userSet runs a session-level statement of the tenant's, then, on the
// same session, the check query.
func (r *stressRun) userSet(ctx context.Context, st *stTenant, rng *rand.Rand) (string, error) {
	q := userSets(st, rng)
	what := "user-set: " + q
	c, err := r.e.tdb.Conn(ctx)
	if err != nil {
		return what, err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, q); err != nil {
		return what, err
	}
	return what, r.check(ctx, what+", then the check", st, c)
}

// checkMarks checks, as the superuser, every row written: tagged with
// the tenant whose table it is in (or whose tenant_id it has), and as
// many as were confirmed, no more than were sent.
func (e *stressEnv) checkMarks(t *testing.T, r *stressRun) {
	t.Helper()
	ctx := context.Background()
	count := map[string]int64{}
	for _, db := range e.dbs {
		c, err := sql.Open("pgx", testenv.DatabaseURL(t, db))
		if err != nil {
			t.Fatal(err)
		}
		var stmts []string
		if db == e.rlsDB {
			stmts = append(stmts, "select 'public', tenant_id, tag, count(*) from marks group by 2, 3")
		} else {
			rows, err := c.QueryContext(ctx, "select n.nspname::text from pg_namespace n join pg_class c on c.relnamespace = n.oid where c.relname = 'marks' and c.relkind = 'r'")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var ns string
				if err := rows.Scan(&ns); err != nil {
					t.Fatal(err)
				}
				stmts = append(stmts, fmt.Sprintf("select '%s', '', tag, count(*) from %s.marks group by 3", ns, ns))
			}
			if err := rows.Close(); err != nil {
				t.Fatal(err)
			}
		}
		for _, q := range stmts {
			rows, err := c.QueryContext(ctx, q)
			if err != nil {
				t.Fatalf("%s: %q: %v", db, q, err)
			}
			for rows.Next() {
				var ns, tenantID, tag string
				var n int64
				if err := rows.Scan(&ns, &tenantID, &tag, &n); err != nil {
					t.Fatal(err)
				}
				owner := tenantID
				if db != e.rlsDB {
					owner = ns + ".test"
					if ns == "public" {
						owner = e.ownerOfPublic(db)
					}
				}
				if owner != tag {
					t.Errorf("WRONG WRITE: database %s, schema %s, tenant_id %q holds %d marks rows written by tenant %s", db, ns, tenantID, n, tag)
				}
				count[tag] += n
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
		}
		c.Close()
	}
	var sent, confirmed int64
	for _, st := range e.tenants {
		a, c, n := st.attempted.Load(), st.confirmed.Load(), count[st.id]
		sent += a
		confirmed += c
		if n < c || n > a {
			t.Errorf("tenant %s: %d marks rows in its table; %d inserts were confirmed, %d sent", st.id, n, c, a)
		}
	}
	t.Logf("marks: %d rows sent, %d confirmed committed; every row with its tenant", sent, confirmed)
}

// ownerOfPublic names the tenant whose table public.marks of db is.
func (e *stressEnv) ownerOfPublic(db string) string {
	for _, st := range e.tenants {
		if st.kind == "db" && st.db == db {
			return st.id
		}
	}
	return "(nobody: no tenant uses public of " + db + ")"
}

func isSQLState(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// wantSQLState returns nil if err is the server's error code, and an
// error saying what happened instead otherwise (a broken connection
// stays one, to be counted as such).
func wantSQLState(err error, code string) error {
	switch {
	case err == nil:
		return fmt.Errorf("succeeded; want SQLSTATE %s", code)
	case isSQLState(err, code):
		return nil
	case brokenConn(err):
		return err
	}
	return fmt.Errorf("want SQLSTATE %s, got: %w", code, err)
}

// cancelError reports the errors of a query whose context ended.
func cancelError(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		pgconn.Timeout(err) || isSQLState(err, "57014")
}

// brokenConn reports the errors of a session that died under a
// statement: terminated by pg_terminate_backend (57P01), or found closed.
func brokenConn(err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, sqldriver.ErrBadConn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, sql.ErrConnDone), errors.As(err, &ne) && !ne.Timeout(),
		isSQLState(err, "57P01"):
		return true
	}
	msg := err.Error()
	for _, s := range []string{"conn closed", "connection reset", "broken pipe", "unexpected EOF", "terminating connection"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// A tenant's statement runs, whatever other tenants left on the shared
// sessions: a session that cannot be cleaned (LISTEN, temporary objects)
// is closed and the statement goes to another (see shared.go). Here
// tenant s0 leaves all four sessions of the budget so; tenant s1's query
// must still run, on a clean session, instead of failing because of what
// another tenant did. (TestSharedStress meets this at random, when a
// statement's first sessions were all left so.)
func TestSharedUncleanableSessionsEverywhere(t *testing.T) {
	for _, leave := range []string{"listen leftover", "create temp table leftover (x int)"} {
		t.Run(leave, func(t *testing.T) {
			const budget = 4
			f := newSchemaFixture(t, 2, driver.WithMaxConns(budget))
			a, b := f.tenants[0], f.tenants[1]
			ctx := tenantCtx(a)
			var conns []*sql.Conn
			for range budget {
				c, err := f.tdb.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.ExecContext(ctx, leave); err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
			}
			for _, c := range conns {
				c.Close()
			}
			var schema, tag string
			err := f.tdb.QueryRowContext(tenantCtx(b), "select current_schema(), tag from items").Scan(&schema, &tag)
			if err != nil {
				t.Fatalf("tenant %s, after tenant %s left %q on all %d sessions: %v; want its answer from a clean session", b, a, leave, budget, err)
			}
			if schema != "s1" || tag != b {
				t.Fatalf("tenant %s read %q in schema %q", b, tag, schema)
			}
		})
	}
}
