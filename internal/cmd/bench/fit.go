package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/benchkit"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// fitCase is one configuration of the fit suite (issue 11): tenants
// walked round-robin by workers, a server budget, and how much slower than
// the server's own start-up a dial is made.
type fitCase struct {
	tenants, workers, budget int
	dialDelay                time.Duration
}

// fitResult is what one fit case measured.
type fitResult struct {
	fitCase
	plainQPS     float64 // plain pgx, same workers, same run
	qps          float64
	errs         int64
	firstErr     error
	warm         time.Duration // warm-up time, up to the cap
	warmLaps     int
	warmed       bool    // a warm-up lap dialled nothing
	sessionsPerS float64 // sessions the server counted during the measured time
	dialsPerS    float64 // dials the driver counted, as a cross-check
	evictPerS    float64
}

// fitSuite runs the operator's set-up of issue 11 over a grid: tenants
// (each with its own connection string) walked round-robin by workers that
// all start at tenant 0, one *sql.DB with SetMaxOpenConns(workers), and
// budgets from one connection per tenant to two. When workers <= tenants
// every budget fits the demand, and a warm connector should open no
// sessions; with more workers than the budget holds it does not fit, and
// the figure to watch is that throughput degrades without collapsing.
//
// Each case warms up by laps until a lap dials nothing, or for at most
// warmCap, then runs for d. Throughput is reported against plain pgx on one
// database with the same workers, measured in the same run, and new
// sessions per second are read from the server (pg_stat_database.sessions,
// which a backend reports as soon as it first goes idle).
func fitSuite(ctx context.Context, adminURL string, tenantsList, workersList []int, budgetFactors []float64, delays []time.Duration, warmCap, d time.Duration) error {
	if err := benchkit.Setup(ctx, adminURL); err != nil {
		return err
	}
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	admin.SetMaxOpenConns(1)
	sessions := func() (int64, error) {
		var n int64
		err := admin.QueryRowContext(ctx, "SELECT coalesce(sum(sessions), 0) FROM pg_stat_database WHERE datname = ANY($1)", benchkit.DatabaseNames()).Scan(&n)
		return n, err
	}

	plain := map[int]float64{}
	for _, w := range workersList {
		qps, err := fitPlain(ctx, adminURL, w, d)
		if err != nil {
			return fmt.Errorf("plain pgx, %d workers: %w", w, err)
		}
		plain[w] = qps
		fmt.Fprintf(os.Stderr, "plain pgx, %d workers: %.0f q/s\n", w, qps)
	}

	var results []fitResult
	for _, n := range tenantsList {
		for _, w := range workersList {
			for _, f := range budgetFactors {
				for _, delay := range delays {
					c := fitCase{tenants: n, workers: w, budget: int(float64(n)*f + 0.5), dialDelay: delay}
					r, err := fitRun(ctx, adminURL, c, warmCap, d, sessions)
					if err != nil {
						return fmt.Errorf("%d tenants, %d workers, budget %d, dial +%v: %w", n, w, c.budget, delay, err)
					}
					r.plainQPS = plain[w]
					fmt.Fprintf(os.Stderr, "%4d tenants %3d workers budget %4d dial +%-5v warm %5.1fs (%d laps, settled %v): %8.0f q/s (%.2fx plain), %6.1f new sessions/s, %6.1f evictions/s, %d errors\n",
						n, w, c.budget, delay, r.warm.Seconds(), r.warmLaps, r.warmed, r.qps, r.qps/r.plainQPS, r.sessionsPerS, r.evictPerS, r.errs)
					results = append(results, r)
				}
			}
		}
	}

	fmt.Printf("\n%s, GOMAXPROCS=%d, %v measured per case after a warm-up of at most %v; tenants on %d databases, told apart by application_name; %s\n\n",
		runtime.Version(), runtime.GOMAXPROCS(0), d, warmCap, benchkit.Databases, map[bool]string{false: "all workers start at tenant 0", true: "workers start spread over the tenants"}[fitSpread])
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tenants\tworkers\tbudget\tdial\twarm-up\tqueries/s\tvs plain pgx\tnew sessions/s (server)\tdials/s (driver)\tevictions/s\terrors\t")
	for _, r := range results {
		warm := fmt.Sprintf("%.1fs", r.warm.Seconds())
		if !r.warmed {
			warm += " (cap)"
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t+%v\t%s\t%.0f\t%.2fx\t%.1f\t%.1f\t%.1f\t%d\t\n",
			r.tenants, r.workers, r.budget, r.dialDelay, warm, r.qps, r.qps/r.plainQPS, r.sessionsPerS, r.dialsPerS, r.evictPerS, r.errs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if r.firstErr != nil {
			fmt.Printf("\n%d tenants, %d workers, budget %d, dial +%v: first error: %v", r.tenants, r.workers, r.budget, r.dialDelay, r.firstErr)
		}
	}
	fmt.Println()
	return nil
}

// fitPlain measures plain pgx on one database with workers goroutines.
func fitPlain(ctx context.Context, adminURL string, workers int, d time.Duration) (float64, error) {
	u, err := benchkit.DatabaseURL(adminURL, benchkit.DatabaseNames()[0], "bench-plain")
	if err != nil {
		return 0, err
	}
	db, err := sql.Open("pgx", u)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(workers)
	db.SetMaxIdleConns(workers)
	query := func(int) error {
		var n int
		return db.QueryRowContext(ctx, "SELECT 1").Scan(&n)
	}
	if _, _, err := fitLoad(workers, 1, time.Now().Add(d/4), query); err != nil {
		return 0, err
	}
	start := time.Now()
	ops, errs, first := fitLoad(workers, 1, start.Add(d), query)
	if errs > 0 {
		return 0, first
	}
	return float64(ops) / time.Since(start).Seconds(), nil
}

// fitSpread makes the workers start spread over the tenants instead of all
// at tenant 0 (-fit-spread).
var fitSpread bool

// fitFirst is the tenant worker w of workers starts its walk at. From
// tenant 0, all workers walk in step: at a budget of one connection per
// tenant they queue for that tenant's one connection, which the rules
// rightly do not let them take from other tenants.
func fitFirst(w, workers, n int) int {
	if !fitSpread {
		return 0
	}
	return w * n / workers
}

// fitLoad runs workers goroutines, each walking the n tenants round-robin
// from fitFirst, until deadline. It returns the queries served, the errors
// and the first error.
func fitLoad(workers, n int, deadline time.Time, query func(tenant int) error) (ops, errs int64, first error) {
	var (
		wg        sync.WaitGroup
		nops, ner atomic.Int64
		firstErr  atomic.Value
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := fitFirst(w, workers, n); time.Now().Before(deadline); i++ {
				if err := query(i % n); err != nil {
					ner.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				nops.Add(1)
			}
		}()
	}
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok {
		first = e
	}
	return nops.Load(), ner.Load(), first
}

// fitRun measures one case on a fresh connector.
func fitRun(ctx context.Context, adminURL string, c fitCase, warmCap, d time.Duration, sessions func() (int64, error)) (fitResult, error) {
	r := fitResult{fitCase: c}
	if err := benchkit.WaitForIdle(ctx, adminURL); err != nil {
		return r, err
	}
	urls, err := benchkit.TenantURLs(adminURL, c.tenants)
	if err != nil {
		return r, err
	}
	s := store.NewMemory()
	ctxs := make([]context.Context, c.tenants)
	for i, u := range urls {
		id := fmt.Sprintf("bench-%d.test", i)
		ctxs[i] = tenantctx.WithTenant(ctx, id)
		if _, err := s.Create(ctx, store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: u}}); err != nil {
			return r, err
		}
	}
	opts := []driver.Option{driver.WithMaxConns(c.budget)}
	if c.dialDelay > 0 {
		// A slow server: sessions that take dialDelay longer to start.
		opts = append(opts, driver.WithBeforeConnect(func(ctx context.Context, _ string, _ *pgx.ConnConfig) error {
			select {
			case <-time.After(c.dialDelay):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}))
	}
	conn, err := driver.NewConnector(s, opts...)
	if err != nil {
		return r, err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(c.workers)
	db.SetMaxIdleConns(c.workers)
	query := func(i int) error {
		var n int
		return db.QueryRowContext(ctxs[i], "SELECT 1").Scan(&n)
	}
	totals := func() (dials, evictions int64) {
		for _, ss := range conn.Stats().Servers {
			dials, evictions = dials+ss.NewConns, evictions+ss.Evictions
		}
		return dials, evictions
	}

	// Warm up by laps (every worker queries every tenant once) until a
	// lap dials nothing; a collapsing connector never gets there, so the
	// warm-up is capped.
	start := time.Now()
	capAt := start.Add(warmCap)
	for time.Now().Before(capAt) {
		d0, _ := totals()
		if err := fitLap(c.workers, c.tenants, capAt, query); err != nil {
			return r, fmt.Errorf("warm-up: %w", err)
		}
		r.warmLaps++
		if d1, _ := totals(); d1 == d0 && time.Now().Before(capAt) {
			r.warmed = true
			break
		}
	}
	r.warm = time.Since(start)

	s0, err := sessions()
	if err != nil {
		return r, err
	}
	d0, e0 := totals()
	t0 := time.Now()
	ops, errs, first := fitLoad(c.workers, c.tenants, t0.Add(d), query)
	elapsed := time.Since(t0)
	d1, e1 := totals()
	s1, err := sessions()
	if err != nil {
		return r, err
	}
	r.qps = float64(ops) / elapsed.Seconds()
	r.errs, r.firstErr = errs, first
	r.sessionsPerS = float64(s1-s0) / elapsed.Seconds()
	r.dialsPerS = float64(d1-d0) / elapsed.Seconds()
	r.evictPerS = float64(e1-e0) / elapsed.Seconds()
	return r, nil
}

// fitLap has every worker query every tenant once, from fitFirst, or
// stops at deadline.
func fitLap(workers, n int, deadline time.Time, query func(tenant int) error) error {
	var (
		wg       sync.WaitGroup
		firstErr atomic.Value
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := fitFirst(w, workers, n)
			for k := 0; k < n && time.Now().Before(deadline); k++ {
				if err := query((first + k) % n); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok {
		return e
	}
	return nil
}

// parseInts parses a comma-separated list of positive integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a list of positive integers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseFactors parses a comma-separated list of budget factors (>= 1).
func parseFactors(s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || x <= 0 {
			return nil, fmt.Errorf("%q is not a list of positive numbers", s)
		}
		out = append(out, x)
	}
	return out, nil
}

// parseDurations parses a comma-separated list of durations.
func parseDurations(s string) ([]time.Duration, error) {
	var out []time.Duration
	for f := range strings.SplitSeq(s, ",") {
		x, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || x < 0 {
			return nil, fmt.Errorf("%q is not a list of durations", s)
		}
		out = append(out, x)
	}
	return out, nil
}

// runFit parses the fit suite's flags and runs it.
func runFit(ctx context.Context, adminURL, tenants, workers, budgets, delays string, spread bool, warmCap, d time.Duration) error {
	fitSpread = spread
	ns, err := parseInts(tenants)
	if err != nil {
		return fmt.Errorf("-fit-tenants: %w", err)
	}
	ws, err := parseInts(workers)
	if err != nil {
		return fmt.Errorf("-fit-workers: %w", err)
	}
	fs, err := parseFactors(budgets)
	if err != nil {
		return fmt.Errorf("-fit-budgets: %w", err)
	}
	ds, err := parseDurations(delays)
	if err != nil {
		return fmt.Errorf("-fit-dial-delays: %w", err)
	}
	return fitSuite(ctx, adminURL, ns, ws, fs, ds, warmCap, d)
}
