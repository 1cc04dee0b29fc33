package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/benchkit"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// budgetSuite runs many tenants against one server with a small
// max_connections: tenantsql with a budget against the map of *sql.DB.
func budgetSuite(ctx context.Context, adminURL string, tenants, workers, budget int, d time.Duration) error {
	if err := benchkit.Setup(ctx, adminURL); err != nil {
		return err
	}
	maxConn, err := serverSetting(ctx, adminURL, "max_connections")
	if err != nil {
		return err
	}
	urls, err := benchkit.TenantURLs(adminURL, tenants)
	if err != nil {
		return err
	}
	type result struct {
		name, dist     string
		served         int64
		errs           map[string]int64
		firstErr       map[string]string
		elapsed        time.Duration
		p50, p99       time.Duration
		peak           int64
		sessions       int64
		evictions      int64
		serverMaxConns string
	}
	var results []result
	for _, dist := range []string{"uniform", "skewed 80/20"} {
		for _, kind := range []string{"tenantsql", "map[tenant]*sql.DB"} {
			if err := benchkit.WaitForIdle(ctx, adminURL); err != nil {
				return err
			}
			before, err := benchkit.Sessions(ctx, adminURL)
			if err != nil {
				return err
			}
			var (
				query func(ctx context.Context, i int) error
				close func()
				conn  *driver.Connector
			)
			ctxs := make([]context.Context, tenants)
			for i := range ctxs {
				ctxs[i] = tenantctx.WithTenant(ctx, fmt.Sprintf("bench-%d.test", i))
			}
			if kind == "tenantsql" {
				s := store.NewMemory()
				for i, u := range urls {
					if _, err := s.Create(ctx, store.Tenant{ID: fmt.Sprintf("bench-%d.test", i), DeployInfo: map[string]string{store.KeyPostgresURL: u}}); err != nil {
						return err
					}
				}
				conn, err = driver.NewConnector(s, driver.WithMaxConns(budget))
				if err != nil {
					return err
				}
				db := sql.OpenDB(conn)
				db.SetMaxOpenConns(workers)
				db.SetMaxIdleConns(workers)
				query = func(qctx context.Context, i int) error {
					var n int
					return db.QueryRowContext(tenantctx.WithTenant(qctx, fmt.Sprintf("bench-%d.test", i)), "SELECT 1").Scan(&n)
				}
				close = func() { db.Close() }
			} else {
				// The usual hand-rolled alternative, configured as a
				// careful user would: a few connections per tenant, idle
				// ones closed after a while.
				dbs := make([]*sql.DB, tenants)
				var mu sync.Mutex
				open := func(i int) *sql.DB {
					mu.Lock()
					defer mu.Unlock()
					if dbs[i] == nil {
						db, _ := sql.Open("pgx", urls[i])
						db.SetMaxOpenConns(8)
						db.SetMaxIdleConns(2)
						db.SetConnMaxIdleTime(30 * time.Second)
						dbs[i] = db
					}
					return dbs[i]
				}
				query = func(qctx context.Context, i int) error {
					var n int
					return open(i).QueryRowContext(qctx, "SELECT 1").Scan(&n)
				}
				close = func() {
					for _, db := range dbs {
						if db != nil {
							db.Close()
						}
					}
				}
			}

			stopPeak := samplePeak(ctx, adminURL)
			var (
				served atomic.Int64
				errMu  sync.Mutex
				errs   = map[string]int64{}
				first  = map[string]string{}
				lats   = make([][]time.Duration, workers)
			)
			deadline := time.Now().Add(d)
			start := time.Now()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(w), 42))
					for time.Now().Before(deadline) {
						i := pick(r, tenants, dist)
						qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
						t0 := time.Now()
						err := query(qctx, i)
						lat := time.Since(t0)
						cancel()
						if err != nil {
							kind := classify(err)
							errMu.Lock()
							errs[kind]++
							if first[kind] == "" {
								first[kind] = strings.Join(strings.Fields(err.Error()), " ")
							}
							errMu.Unlock()
							continue
						}
						served.Add(1)
						lats[w] = append(lats[w], lat)
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			peak := stopPeak()
			res := result{name: kind, dist: dist, served: served.Load(), errs: errs, firstErr: first, elapsed: elapsed, peak: peak, serverMaxConns: maxConn}
			if conn != nil {
				for _, ss := range conn.Stats().Servers {
					res.evictions += ss.Evictions
				}
			}
			close()
			if err := benchkit.WaitForIdle(ctx, adminURL); err != nil {
				return err
			}
			after, err := benchkit.Sessions(ctx, adminURL)
			if err != nil {
				return err
			}
			res.sessions = after - before
			all := slices.Concat(lats...)
			slices.Sort(all)
			if len(all) > 0 {
				res.p50 = all[len(all)/2]
				res.p99 = all[min(len(all)-1, len(all)*99/100)]
			}
			fmt.Fprintf(os.Stderr, "%-20s %-13s %8d served %6d errors, peak %d sessions\n", kind, dist, res.served, sum(errs), peak)
			results = append(results, res)
		}
	}

	fmt.Printf("\n%d tenants (on %d databases, told apart by application_name), %d workers, %v per case, server max_connections %s, tenantsql budget %d\n\n",
		tenants, benchkit.Databases, workers, d, maxConn, budget)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "load\tcase\tqueries served\terrors\tqueries/s\tp50\tp99\tpeak server sessions\tsessions opened/s\tevictions\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.0f\t%v\t%v\t%d\t%.0f\t%s\t\n", r.dist, r.name, r.served, errSummary(r.errs), float64(r.served)/r.elapsed.Seconds(),
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.peak, float64(r.sessions)/r.elapsed.Seconds(), map[bool]string{true: fmt.Sprint(r.evictions), false: "-"}[r.name == "tenantsql"])
	}
	tw.Flush()
	for _, r := range results {
		kinds := make([]string, 0, len(r.firstErr))
		for k := range r.firstErr {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			fmt.Printf("\n%s, %s: %d x %s, e.g. %q", r.dist, r.name, r.errs[k], k, r.firstErr[k])
		}
	}
	fmt.Println()
	return nil
}

// pick chooses a tenant: uniformly, or with 80% of picks going to the
// first 20% of tenants.
func pick(r *rand.Rand, n int, dist string) int {
	if dist == "uniform" {
		return r.IntN(n)
	}
	hot := n / 5
	if r.IntN(10) < 8 {
		return r.IntN(hot)
	}
	return hot + r.IntN(n-hot)
}

func classify(err error) string {
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "53300":
		return "too many clients"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout (5s)"
	case errors.As(err, &pe):
		return "server error " + pe.Code
	}
	return "other"
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func errSummary(m map[string]int64) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%d %s", v, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func serverSetting(ctx context.Context, adminURL, name string) (string, error) {
	db, err := sql.Open("pgx", adminURL)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v string
	err = db.QueryRowContext(ctx, "SELECT current_setting($1)", name).Scan(&v)
	return v, err
}

// samplePeak records the most benchmark sessions the server reports at
// once (its own view, not the library's), until the returned func is
// called.
func samplePeak(ctx context.Context, adminURL string) func() int64 {
	db, err := sql.Open("pgx", adminURL)
	if err != nil {
		return func() int64 { return -1 }
	}
	db.SetMaxOpenConns(1)
	sctx, cancel := context.WithCancel(ctx)
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer db.Close()
		for sctx.Err() == nil {
			var n int64
			if err := db.QueryRowContext(sctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'bench-%'").Scan(&n); err == nil && n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return func() int64 { cancel(); <-done; return peak.Load() }
}

// idleSuite registers many tenants, keeps a few hot, and reports what the
// process and the server hold: heap, goroutines, pools and sessions.
func idleSuite(ctx context.Context, adminURL string, tenants, hot, workers int, d, idleTimeout time.Duration) error {
	if err := benchkit.Setup(ctx, adminURL); err != nil {
		return err
	}
	type snap struct {
		label          string
		heap           uint64
		goroutines     int
		pools, open    int
		serverSessions int64
	}
	var snaps []snap
	var conn *driver.Connector
	take := func(label string) error {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s := snap{label: label, heap: ms.HeapAlloc, goroutines: runtime.NumGoroutine()}
		if conn != nil {
			st := conn.Stats()
			for _, ss := range st.Servers {
				s.pools += ss.Pools
			}
			s.open = st.Open
		}
		db, err := sql.Open("pgx", adminURL)
		if err != nil {
			return err
		}
		defer db.Close()
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'bench-%'").Scan(&s.serverSessions); err != nil {
			return err
		}
		snaps = append(snaps, s)
		fmt.Fprintf(os.Stderr, "%-40s heap %6.1f MiB, %d goroutines, %d pools, %d sessions\n", label, float64(s.heap)/(1<<20), s.goroutines, s.pools, s.serverSessions)
		return nil
	}
	if err := take("before: no connector"); err != nil {
		return err
	}
	s := store.NewMemory()
	urls, err := benchkit.TenantURLs(adminURL, tenants)
	if err != nil {
		return err
	}
	for i, u := range urls {
		if _, err := s.Create(ctx, store.Tenant{ID: fmt.Sprintf("bench-%d.test", i), DeployInfo: map[string]string{store.KeyPostgresURL: u}}); err != nil {
			return err
		}
	}
	conn, err = driver.NewConnector(s, driver.WithIdleTimeout(idleTimeout), driver.WithMaxConns(2*hot))
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(workers)
	db.SetMaxIdleConns(workers)
	if err := db.PingContext(ctx); err != nil {
		return err
	}
	if err := take(fmt.Sprintf("%d tenants registered, none used", tenants)); err != nil {
		return err
	}
	var served atomic.Int64
	load := func(until time.Time) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(w), 7))
				for time.Now().Before(until) {
					var n int
					qctx := tenantctx.WithTenant(ctx, fmt.Sprintf("bench-%d.test", r.IntN(hot)))
					if err := db.QueryRowContext(qctx, "SELECT 1").Scan(&n); err == nil {
						served.Add(1)
					}
				}
			}()
		}
		wg.Wait()
	}
	load(time.Now().Add(d))
	if err := take(fmt.Sprintf("%d hot tenants, just after %v of load", hot, d)); err != nil {
		return err
	}
	time.Sleep(idleTimeout + 2*time.Second)
	if err := take(fmt.Sprintf("%v later (idle timeout %v)", idleTimeout+2*time.Second, idleTimeout)); err != nil {
		return err
	}
	fmt.Printf("\n%d tenants registered, %d of them hot (%d workers, %d queries served); WithIdleTimeout(%v), WithMaxConns(%d)\n\n", tenants, hot, workers, served.Load(), idleTimeout, 2*hot)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "moment\theap in use\tgoroutines\ttenant pools\tserver sessions\t")
	for _, s := range snaps {
		fmt.Fprintf(tw, "%s\t%.1f MiB\t%d\t%d\t%d\t\n", s.label, float64(s.heap)/(1<<20), s.goroutines, s.pools, s.serverSessions)
	}
	return tw.Flush()
}
