package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/benchkit"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// The shared suite (issue 13, point 8): tenants that share a database,
// schema per tenant (search_path) and row-level security (app.tenant_id),
// against plain pgx on one database, the hand-rolled SET search_path, and
// database-per-tenant, side by side in one run.
//
// Everything runs as sharedRole, a login role that is neither superuser
// nor BYPASSRLS, so the RLS policy applies. The private server keeps what
// the set-up created (10,000 schemas take a while) between runs.
const (
	sharedDB    = "tsql_shared_bench" // public.items for plain pgx, schemas t_00000.. for schema tenants
	rlsDB       = "tsql_rls_bench"    // items(tenant_id, tag) under a forced RLS policy
	sharedRole  = "tsql_bench_app"
	maxTenants  = 10000
	schemaBatch = 250 // schemas created per transaction
)

// The query every case runs; only database-per-tenant differs (its tenants
// have no table of their own: they are told apart by application_name on
// ten databases, as in the budget suite, and prove it so).
const (
	sharedQuery = "select $1::int, tag from items"
	perDBQuery  = "select $1::int, current_setting('application_name')"
)

func schemaName(i int) string { return fmt.Sprintf("t_%05d", i) }

type sharedKind int

const (
	skPlain     sharedKind = iota // sql.Open("pgx") on one database, one table
	skSchema                      // tenantsql, search_path=t_NNNNN
	skRLS                         // tenantsql, app.tenant_id=N
	skHandRoll                    // plain pgx, SET search_path on a *sql.Conn, then the query
	skDatabases                   // tenantsql, a session per tenant (database-per-tenant)
)

type sharedCase struct {
	kind    sharedKind
	tenants int
}

func (c sharedCase) String() string {
	switch c.kind {
	case skPlain:
		return "plain pgx, 1 database"
	case skSchema:
		if c.tenants == 1 {
			return "tenantsql, 1 schema tenant"
		}
		return fmt.Sprintf("tenantsql, %d schema tenants", c.tenants)
	case skRLS:
		return fmt.Sprintf("tenantsql, %d RLS tenants", c.tenants)
	case skHandRoll:
		return fmt.Sprintf("pgx + SET search_path, %d schemas", c.tenants)
	default:
		return fmt.Sprintf("tenantsql, %d databases*", c.tenants)
	}
}

var sharedCases = []sharedCase{
	{skPlain, 1},
	{skSchema, 1}, // not asked for: the cost of a statement's settings without any change of tenant
	{skSchema, 1000},
	{skSchema, 10000},
	{skRLS, 1000},
	{skRLS, 10000},
	{skHandRoll, 1000},
	{skDatabases, 1000},
}

// sharedOpts are the suite's settings.
type sharedOpts struct {
	workers   int           // goroutines per case
	pool      int           // SetMaxOpenConns = SetMaxIdleConns of every *sql.DB; WithMaxConns of shared cases
	dbBudget  int           // WithMaxConns of database-per-tenant
	warm, d   time.Duration // per case and round
	dbWarm    time.Duration // database-per-tenant: shorter, fixed
	dbD       time.Duration
	rounds    int
	only      *regexp.Regexp // cases to run (nil: all)
	floor     bool           // also take the shared path apart with pgx alone
	floorOnly *regexp.Regexp // -shared-floor steps to run (nil: all)
}

type sharedResult struct {
	c            sharedCase
	ops, errs    int64
	wrong        int64 // answers from another tenant (counted in errs too)
	firstErr     error
	elapsed      time.Duration
	mallocs      uint64
	warmSessions int64         // sessions the server counted from opening to the end of warm-up
	newSessions  int64         // sessions the server counted during the measured time
	dials        int64         // sessions tenantsql dialled during the measured time (-1: not tenantsql)
	selfCPU      time.Duration // CPU time of this process during the measured time
	machineCPU   time.Duration // busy CPU time of the whole machine (server, this process, others)
}

// cpuPerOp is a CPU time per query in microseconds.
func (r sharedResult) cpuPerOp(d time.Duration) float64 {
	return float64(d.Microseconds()) / float64(max(r.ops, 1))
}

// processCPU is the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusy is the busy CPU time of the whole machine so far, from
// /proc/stat (all but idle and iowait).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy int64
	for i, v := range f[1:] {
		var n int64
		fmt.Sscan(v, &n)
		if i != 3 && i != 4 && i < 8 { // idle, iowait; guest is counted in user
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

func (r sharedResult) qps() float64         { return float64(r.ops) / r.elapsed.Seconds() }
func (r sharedResult) allocsPerOp() float64 { return float64(r.mallocs) / float64(max(r.ops, 1)) }

// sharedSuite sets the private server up once, measures memory for
// registered tenants, then runs the cases in rotating rounds.
func sharedSuite(ctx context.Context, adminURL string, o sharedOpts) error {
	t0 := time.Now()
	if err := sharedSetup(ctx, adminURL); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	fmt.Fprintf(os.Stderr, "setup checked/done in %v\n", time.Since(t0).Round(time.Millisecond))
	appURL, err := withUser(adminURL, sharedRole)
	if err != nil {
		return err
	}
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	admin.SetMaxOpenConns(1)
	dbs := append([]string{sharedDB, rlsDB}, benchkit.DatabaseNames()...)
	if o.floorOnly != nil {
		return sharedFloor(ctx, os.Stdout, appURL, o)
	}

	mem, err := sharedMemory(ctx, appURL, o)
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}

	var cases []sharedCase
	for _, c := range sharedCases {
		if o.only == nil || o.only.MatchString(c.String()) {
			cases = append(cases, c)
		}
	}
	results := make([][]sharedResult, len(cases))
	for r := range o.rounds {
		for k := range cases {
			i := (k + r) % len(cases)
			res, err := runShared(ctx, admin, dbs, appURL, cases[i], o)
			if err != nil {
				return fmt.Errorf("%s: %w", cases[i], err)
			}
			var l1, l5, l15 float64
			if b, err := os.ReadFile("/proc/loadavg"); err == nil {
				fmt.Sscan(string(b), &l1, &l5, &l15)
			}
			fmt.Fprintf(os.Stderr, "round %d  %-38s %8.0f q/s  %5.1f allocs/op  %4d new sessions (warm-up %d, dials %d)  %d errors  CPU µs/q %.0f here, %.0f rest  load %.1f\n",
				r+1, cases[i], res.qps(), res.allocsPerOp(), res.newSessions, res.warmSessions, res.dials, res.errs, res.cpuPerOp(res.selfCPU), res.cpuPerOp(res.machineCPU-res.selfCPU), l1)
			if res.firstErr != nil {
				fmt.Fprintf(os.Stderr, "         first error: %v\n", res.firstErr)
			}
			results[i] = append(results[i], res)
		}
	}

	med := make([]sharedResult, len(cases))
	for i, rs := range results {
		sorted := slices.Clone(rs)
		slices.SortFunc(sorted, func(a, b sharedResult) int {
			return int(a.qps() - b.qps())
		})
		med[i] = sorted[len(sorted)/2]
	}
	var plain *sharedResult
	for i := range med {
		if med[i].c.kind == skPlain {
			plain = &med[i]
		}
	}

	var l1, l5, l15 float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(b), &l1, &l5, &l15)
	}
	fmt.Printf("\n%s, GOMAXPROCS=%d, %d workers, tenants picked uniformly at random per query; every *sql.DB SetMaxOpenConns(%d) = SetMaxIdleConns;\n"+
		"tenantsql WithMaxConns(%d) for shared databases, WithMaxConns(%d) for database-per-tenant;\n"+
		"%v warm-up + %v measured x %d rounds (median shown; * database-per-tenant: %v + %v); load average at the end %.2f %.2f %.2f\n\n",
		runtime.Version(), runtime.GOMAXPROCS(0), o.workers, o.pool, o.pool, o.dbBudget, o.warm, o.d, o.rounds, o.dbWarm, o.dbD, l1, l5, l15)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tqueries/s\tvs plain pgx\tper round\tallocs/op\textra allocs/op\tnew server sessions (measured)\terrors\tdials (tenantsql)\tCPU µs/query: bench process\trest of machine\t")
	for i, r := range med {
		vs, extra := "-", "-"
		var rounds []string
		if plain != nil && plain.ops > 0 {
			vs = fmt.Sprintf("%.2fx", r.qps()/plain.qps())
			extra = fmt.Sprintf("%+.1f", r.allocsPerOp()-plain.allocsPerOp())
			// Each round against plain pgx of the same round.
			for j, rr := range results[i] {
				if j < len(resultsOf(results, cases, skPlain)) {
					rounds = append(rounds, fmt.Sprintf("%.2f", rr.qps()/resultsOf(results, cases, skPlain)[j].qps()))
				}
			}
		}
		dials := "-"
		if r.dials >= 0 {
			dials = fmt.Sprint(r.dials)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%.1f\t%s\t%d\t%d\t%s\t%.0f\t%.0f\t\n", r.c, r.qps(), vs, strings.Join(rounds, " "), r.allocsPerOp(), extra, r.newSessions, r.errs,
			dials, r.cpuPerOp(r.selfCPU), r.cpuPerOp(r.machineCPU-r.selfCPU))
	}
	tw.Flush()
	for _, r := range med {
		if r.firstErr != nil {
			fmt.Printf("\n%s: %d errors (%d wrong tenant), first: %v", r.c, r.errs, r.wrong, r.firstErr)
		}
	}
	fmt.Println()
	fmt.Println()
	fmt.Print(mem)
	if o.floor {
		return sharedFloor(ctx, os.Stdout, appURL, o)
	}
	return nil
}

func resultsOf(results [][]sharedResult, cases []sharedCase, k sharedKind) []sharedResult {
	for i, c := range cases {
		if c.kind == k {
			return results[i]
		}
	}
	return nil
}

// runShared opens a case, warms it up and measures it.
func runShared(ctx context.Context, admin *sql.DB, dbs []string, appURL string, c sharedCase, o sharedOpts) (sharedResult, error) {
	res := sharedResult{c: c}
	if err := benchkit.WaitForNoSessions(ctx, admin, dbs); err != nil {
		return res, err
	}
	sessions := func() (int64, error) {
		var n int64
		err := admin.QueryRowContext(ctx, "select coalesce(sum(sessions), 0) from pg_stat_database where datname = any($1)", dbs).Scan(&n)
		return n, err
	}
	s0, err := sessions()
	if err != nil {
		return res, err
	}
	q, closeFn, dials, err := openShared(ctx, appURL, c, o)
	if err != nil {
		return res, err
	}
	warm, d := o.warm, o.d
	if c.kind == skDatabases {
		warm, d = o.dbWarm, o.dbD
	}
	var (
		ops, errs, wrong atomic.Int64
		firstErr         atomic.Value
	)
	loop := func(deadline time.Time, seed uint64) {
		var wg sync.WaitGroup
		for w := range o.workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(w), seed))
				for time.Now().Before(deadline) {
					i := r.IntN(c.tenants)
					if err := q(i, r.Int32()); err != nil {
						errs.Add(1)
						if _, ok := err.(wrongTenant); ok {
							wrong.Add(1)
						}
						firstErr.CompareAndSwap(nil, err)
					} else {
						ops.Add(1)
					}
				}
			}()
		}
		wg.Wait()
	}
	loop(time.Now().Add(warm), 1)
	ops.Store(0)
	errs.Store(0)
	wrong.Store(0)
	s1, err := sessions()
	if err != nil {
		closeFn()
		return res, err
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	d0 := dials()
	c0, b0 := processCPU(), machineBusy()
	start := time.Now()
	loop(start.Add(d), 2)
	res.elapsed = time.Since(start)
	res.selfCPU, res.machineCPU = processCPU()-c0, machineBusy()-b0
	if d0 >= 0 {
		res.dials = dials() - d0
	} else {
		res.dials = -1
	}
	runtime.ReadMemStats(&m1)
	res.mallocs = m1.Mallocs - m0.Mallocs
	res.ops, res.errs, res.wrong = ops.Load(), errs.Load(), wrong.Load()
	if e, ok := firstErr.Load().(error); ok {
		res.firstErr = e
	}
	closeFn()
	// Every session has ended, so every backend has reported its start.
	if err := benchkit.WaitForNoSessions(ctx, admin, dbs); err != nil {
		return res, err
	}
	s2, err := sessions()
	if err != nil {
		return res, err
	}
	res.warmSessions, res.newSessions = s1-s0, s2-s1
	return res, nil
}

type wrongTenant struct{ want, got string }

func (e wrongTenant) Error() string {
	return fmt.Sprintf("wrong tenant: wanted %q, the answer came from %q", e.want, e.got)
}

// openShared opens what serves case c and returns its query function:
// query(i, n) runs the case's query for tenant i with argument n and
// checks that the answer is tenant i's; and how many sessions tenantsql
// has dialled so far (-1 for the pgx cases).
func openShared(ctx context.Context, appURL string, c sharedCase, o sharedOpts) (query func(i int, n int32) error, closeFn func(), dials func() int64, err error) {
	noDials := func() int64 { return -1 }
	tune := func(db *sql.DB) *sql.DB {
		db.SetMaxOpenConns(o.pool)
		db.SetMaxIdleConns(o.pool)
		return db
	}
	check := func(n, got int32, tag, want string) error {
		if got != n || tag != want {
			return wrongTenant{want: fmt.Sprint(want, "/", n), got: fmt.Sprint(tag, "/", got)}
		}
		return nil
	}
	shared, err := benchkit.DatabaseURL(appURL, sharedDB, "")
	if err != nil {
		return nil, nil, nil, err
	}
	switch c.kind {
	case skPlain:
		db, err := sql.Open("pgx", shared)
		if err != nil {
			return nil, nil, nil, err
		}
		tune(db)
		return func(_ int, n int32) error {
			var got int32
			var tag string
			if err := db.QueryRowContext(ctx, sharedQuery, n).Scan(&got, &tag); err != nil {
				return err
			}
			return check(n, got, tag, "plain")
		}, func() { db.Close() }, noDials, nil

	case skHandRoll:
		db, err := sql.Open("pgx", shared)
		if err != nil {
			return nil, nil, nil, err
		}
		tune(db)
		sets := make([]string, c.tenants)
		for i := range sets {
			sets[i] = "set search_path to " + pgx.Identifier{schemaName(i)}.Sanitize()
		}
		return func(i int, n int32) error {
			conn, err := db.Conn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, sets[i]); err != nil {
				return err
			}
			var got int32
			var tag string
			if err := conn.QueryRowContext(ctx, sharedQuery, n).Scan(&got, &tag); err != nil {
				return err
			}
			return check(n, got, tag, schemaName(i))
		}, func() { db.Close() }, noDials, nil
	}

	// tenantsql
	ids := make([]string, c.tenants)
	urls := make([]string, c.tenants)
	wants := make([]string, c.tenants)
	budget := o.pool
	sqlText := sharedQuery
	for i := range ids {
		ids[i] = fmt.Sprintf("t%d.bench", i)
		switch c.kind {
		case skSchema:
			urls[i] = shared + "&search_path=" + schemaName(i)
			wants[i] = schemaName(i)
		case skRLS:
			u, err := benchkit.DatabaseURL(appURL, rlsDB, "")
			if err != nil {
				return nil, nil, nil, err
			}
			urls[i] = u + "&app.tenant_id=" + fmt.Sprint(i)
			wants[i] = fmt.Sprint("rls-", i)
		case skDatabases:
			db := benchkit.DatabaseNames()[i%benchkit.Databases]
			app := fmt.Sprintf("bench-%d", i)
			u, err := benchkit.DatabaseURL(appURL, db, app)
			if err != nil {
				return nil, nil, nil, err
			}
			urls[i] = u
			wants[i] = app
			budget = o.dbBudget
			sqlText = perDBQuery
		}
	}
	conn, err := sharedConnector(ctx, ids, urls, budget)
	if err != nil {
		return nil, nil, nil, err
	}
	db := tune(sql.OpenDB(conn))
	ctxs := make([]context.Context, len(ids))
	for i, id := range ids {
		ctxs[i] = tenantctx.WithTenant(ctx, id)
	}
	return func(i int, n int32) error {
			var got int32
			var tag string
			if err := db.QueryRowContext(ctxs[i], sqlText, n).Scan(&got, &tag); err != nil {
				return err
			}
			return check(n, got, tag, wants[i])
		}, func() { db.Close() }, func() int64 {
			var n int64
			for _, ts := range conn.Stats().Tenants {
				n += ts.NewConns
			}
			return n
		}, nil
}

// sharedConnector registers the tenants in a memory store and opens a
// connector on it.
func sharedConnector(ctx context.Context, ids, urls []string, budget int) (*driver.Connector, error) {
	s := store.NewMemory()
	for i, id := range ids {
		if _, err := s.Create(ctx, store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: urls[i]}}); err != nil {
			return nil, err
		}
	}
	return driver.NewConnector(s, driver.WithMaxConns(budget))
}

// sharedMemory measures the heap of a connector with maxTenants schema
// tenants registered: none used, then each used once.
func sharedMemory(ctx context.Context, appURL string, o sharedOpts) (string, error) {
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	shared, err := benchkit.DatabaseURL(appURL, sharedDB, "")
	if err != nil {
		return "", err
	}
	h0 := heap()
	s := store.NewMemory()
	ids := make([]string, maxTenants)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%d.bench", i)
		if _, err := s.Create(ctx, store.Tenant{ID: ids[i], DeployInfo: map[string]string{store.KeyPostgresURL: shared + "&search_path=" + schemaName(i)}}); err != nil {
			return "", err
		}
	}
	h1 := heap()
	conn, err := driver.NewConnector(s, driver.WithMaxConns(o.pool))
	if err != nil {
		return "", err
	}
	h2 := heap()
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(o.pool)
	db.SetMaxIdleConns(o.pool)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= maxTenants {
					return
				}
				var n int32
				var tag string
				err := db.QueryRowContext(tenantctx.WithTenant(ctx, ids[i]), sharedQuery, 1).Scan(&n, &tag)
				if err == nil && tag != schemaName(i) {
					err = wrongTenant{want: schemaName(i), got: tag}
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok {
		db.Close()
		return "", e
	}
	h3 := heap()
	st := conn.Stats()
	db.Close()
	runtime.KeepAlive(s)

	mb := func(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
	per := func(a, b uint64) string { return fmt.Sprintf("%.0f B", (float64(b)-float64(a))/maxTenants) }
	var out strings.Builder
	fmt.Fprintf(&out, "Memory for %d schema tenants of one database (heap in use after GC, runtime.MemStats.HeapAlloc):\n\n", maxTenants)
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "moment\theap\tdelta\tper tenant\t")
	fmt.Fprintf(tw, "no store, no connector\t%s\t\t\t\n", mb(h0))
	fmt.Fprintf(tw, "memory store with the tenants, no connector\t%s\t%s\t%s\t\n", mb(h1), mb(h1-h0), per(h0, h1))
	fmt.Fprintf(tw, "connector with the tenants registered, none used\t%s\t%s\t%s\t\n", mb(h2), mb(h2-h1), per(h1, h2))
	fmt.Fprintf(tw, "each tenant used once (%d sessions open)\t%s\t%s\t%s\t\n", st.Open, mb(h3), mb(h3-h1), per(h1, h3))
	tw.Flush()
	out.WriteString("(delta and per tenant of the connector rows: against the store alone)\n")
	return out.String(), nil
}

func withUser(raw, user string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	u.User = url.User(user)
	return u.String(), nil
}

// sharedSetup creates, if missing: the login role, the shared database
// with public.items and maxTenants schemas each with its own items, the
// RLS database with one forced-RLS items table, and the ten databases of
// database-per-tenant.
func sharedSetup(ctx context.Context, adminURL string) error {
	if err := benchkit.EnsureDatabases(ctx, adminURL, append([]string{sharedDB, rlsDB}, benchkit.DatabaseNames()...)); err != nil {
		return err
	}
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	var exists bool
	if err := admin.QueryRowContext(ctx, "select exists (select from pg_roles where rolname = $1)", sharedRole).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := admin.ExecContext(ctx, "create role "+sharedRole+" login nosuperuser nobypassrls"); err != nil {
			return err
		}
	}

	// The shared database: public.items for plain pgx, a schema per tenant.
	su, err := benchkit.DatabaseURL(adminURL, sharedDB, "")
	if err != nil {
		return err
	}
	sdb, err := sql.Open("pgx", su)
	if err != nil {
		return err
	}
	defer sdb.Close()
	if _, err := sdb.ExecContext(ctx, `
create table if not exists public.items (tag text not null);
insert into public.items select 'plain' where not exists (select from public.items);
grant select on public.items to `+sharedRole); err != nil {
		return err
	}
	have := map[string]bool{}
	rows, err := sdb.QueryContext(ctx, `select nspname from pg_namespace where nspname ~ '^t_[0-9]{5}$'`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return err
		}
		have[s] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var missing []string
	for i := range maxTenants {
		if !have[schemaName(i)] {
			missing = append(missing, schemaName(i))
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "creating %d schemas in %s, %d per transaction (once per private server)\n", len(missing), sharedDB, schemaBatch)
	}
	for len(missing) > 0 {
		batch := missing[:min(schemaBatch, len(missing))]
		missing = missing[len(batch):]
		var b strings.Builder
		// One simple-protocol query: one implicit transaction.
		for _, s := range batch {
			fmt.Fprintf(&b, "create schema %[1]s; create table %[1]s.items (tag text not null); insert into %[1]s.items values ('%[1]s'); grant usage on schema %[1]s to %[2]s; grant select on %[1]s.items to %[2]s;\n", s, sharedRole)
		}
		if _, err := sdb.ExecContext(ctx, b.String()); err != nil {
			return err
		}
	}

	// The RLS database: one table, a row per tenant, a policy that reads
	// app.tenant_id, forced (it would bind the owner too).
	ru, err := benchkit.DatabaseURL(adminURL, rlsDB, "")
	if err != nil {
		return err
	}
	rdb, err := sql.Open("pgx", ru)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := rdb.QueryRowContext(ctx, "select to_regclass('public.items') is not null").Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := rdb.ExecContext(ctx, fmt.Sprintf(`
begin;
create table public.items (tenant_id text not null, tag text not null);
insert into public.items select i::text, 'rls-' || i from generate_series(0, %d) i;
create index on public.items (tenant_id);
alter table public.items enable row level security;
alter table public.items force row level security;
create policy tenant_rows on public.items using (tenant_id = current_setting('app.tenant_id'));
grant select on public.items to %s;
commit;
analyze public.items;`, maxTenants-1, sharedRole)); err != nil {
			return err
		}
	}
	return nil
}
