// Command bench measures tenantsql against plain pgx and against a
// map[tenant]*sql.DB side by side, in one run, and prints a table.
//
//	go run ./internal/cmd/bench              # starts a private server (scripts/bench-postgres.sh)
//	go run ./internal/cmd/bench -url postgres://postgres@127.0.0.1:5432/postgres
//	go run ./internal/cmd/bench -suite migrate  # 200 tenants x 5 migrations
//	go run ./internal/cmd/bench -suite fit      # budgets that fit the demand (issue 11)
//	go run ./internal/cmd/bench -suite shared   # tenants that share a database (issue 13)
//	go run ./internal/cmd/bench -suite fleet    # a fleet budget across processes (issue 18)
//
// Each case runs for -duration after a warm-up, -rounds times, the order of
// cases rotating between rounds; the table shows the median round. Every
// case uses -workers goroutines and the same database/sql settings
// (SetMaxOpenConns and SetMaxIdleConns equal to -workers).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tenantsql/tenantsql/internal/benchkit"
	"github.com/tenantsql/tenantsql/internal/fleetproc"
)

func main() {
	fleetproc.Main() // -suite fleet runs this binary again as its processes
	var (
		adminURL = flag.String("url", "", "administrative URL of the PostgreSQL server to use (default: start a private one with scripts/bench-postgres.sh)")
		port     = flag.Int("port", 5433, "port of the private server")
		maxConn  = flag.Int("max-connections", 1000, "max_connections of the private server")
		dur      = flag.Duration("duration", 3*time.Second, "measured time per case and round")
		warm     = flag.Duration("warmup", 500*time.Millisecond, "warm-up per case and round")
		rounds   = flag.Int("rounds", 3, "rounds; the median is shown")
		workers  = flag.Int("workers", 8, "concurrent goroutines")
		cap100   = flag.Int("tenantsql-max-conns", 128, "tenantsql's WithMaxConns cap")
		suite    = flag.String("suite", "query", "what to measure: query (routing overhead), migrate (200 tenants x 5 migrations), budget (1000 tenants on max_connections 100) idle (10,000 registered tenants, 100 hot), fit (budgets that fit the demand, issue 11), shared (tenants that share a database, issue 13) or fleet (processes sharing a fleet budget, issue 18)")
		tenants  = flag.Int("tenants", 0, "tenants (default: 200 for migrate, 1000 for budget, 10000 for idle)")
		budget   = flag.Int("budget", 80, "tenantsql's server budget for -suite budget, and the fleet's for -suite fleet (default 40 there)")

		fitTenants = flag.String("fit-tenants", "40,400", "-suite fit: tenant counts")
		fitWorkers = flag.String("fit-workers", "16,64", "-suite fit: worker counts")
		fitBudgets = flag.String("fit-budgets", "1,2", "-suite fit: budgets, as multiples of the tenant count")
		fitDials   = flag.String("fit-dial-delays", "0s,30ms", "-suite fit: how much slower each dial is made")
		fitSpread  = flag.Bool("fit-spread", false, "-suite fit: workers start spread over the tenants, not all at tenant 0")
		fitWarmCap = flag.Duration("fit-warmup-cap", 10*time.Second, "-suite fit: longest warm-up per case")

		sharedPool    = flag.Int("shared-pool", 16, "-suite shared: SetMaxOpenConns = SetMaxIdleConns of every *sql.DB, and tenantsql's WithMaxConns for shared databases")
		sharedDBCap   = flag.Int("shared-db-budget", 80, "-suite shared: tenantsql's WithMaxConns for database-per-tenant")
		sharedDBWarm  = flag.Duration("shared-db-warmup", time.Second, "-suite shared: warm-up of database-per-tenant (fixed, shorter: it is slow)")
		sharedDBDur   = flag.Duration("shared-db-duration", 2*time.Second, "-suite shared: measured time of database-per-tenant")
		sharedCasesRe = flag.String("shared-cases", "", "-suite shared: run only the cases whose name matches this regexp")
		sharedFloorF  = flag.Bool("shared-floor", false, "-suite shared: also take the shared path apart with pgx alone (its statements one piece at a time)")
		floorStepsRe  = flag.String("floor-steps", "", "-shared-floor: run only the steps whose name matches this regexp")
		redisURL      = flag.String("redis", "redis://127.0.0.1:6379/0", "-suite fleet: the Redis the processes share their store and budget on")
		fleetProcs    = flag.Int("fleet-procs", 4, "-suite fleet: processes")
		fleetHold     = flag.Duration("fleet-hold", 20*time.Millisecond, "-suite fleet: how long each query holds its session")
		fleetTTLs     = flag.String("fleet-ttls", "10s,2s", "-suite fleet: WithFleetTTL values to time a crashed process's slots with (empty: none)")
		fleetTries    = flag.Int("fleet-tries", 3, "-suite fleet: crashes timed per TTL (the median is shown)")
		cpuProfile    = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	)
	flag.Parse()
	if !slices.Contains([]string{"query", "migrate", "budget", "idle", "fit", "shared", "fleet"}, *suite) {
		fmt.Fprintf(os.Stderr, "bench: unknown -suite %q (query, migrate, budget, idle, fit, shared or fleet)\n", *suite)
		os.Exit(2)
	}
	ctx := context.Background()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	maxConnSet := set["max-connections"]
	if *suite == "shared" {
		// Its own server: 10,000 schemas are kept between runs, and
		// max_connections leaves room for database-per-tenant.
		if !set["port"] {
			*port = 5435
		}
		if !maxConnSet {
			*maxConn = 1200
		}
		if !set["workers"] {
			*workers = 64
		}
		if !set["warmup"] {
			*warm = 2 * time.Second
		}
	}
	if *suite == "fleet" {
		// Its own server, whose max_connections leaves the processes'
		// role exactly the budget: an overshoot is refused, and counted.
		if !set["port"] {
			*port = 5436
		}
		if !set["budget"] {
			*budget = 40
		}
		if !maxConnSet {
			// superuser_reserved_connections, and the suite's own
			// superuser sessions (an admin session and two samplers),
			// which count against max_connections too.
			*maxConn = *budget + 3 + 3
		}
		if !set["workers"] {
			*workers = 64
		}
		if !set["tenants"] {
			*tenants = 8
		}
		if !set["warmup"] {
			// The idle processes give their slots back at their next
			// renewal, a third of the 10s default lease.
			*warm = 5 * time.Second
		}
		if !set["duration"] {
			*dur = 5 * time.Second
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *suite == "budget" && !maxConnSet {
		*maxConn = 100 // PostgreSQL's default, which the map of *sql.DB runs into
	}
	if *tenants == 0 {
		*tenants = map[string]int{"migrate": 200, "budget": 1000, "idle": 10000}[*suite]
	}

	stopServer := func() {}
	if *adminURL == "" {
		u, stop, err := startServer(*port, *maxConn)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		stopServer = stop
		defer stop()
		*adminURL = u
	}
	var suiteErr error
	switch *suite {
	case "migrate":
		suiteErr = migrateSuite(ctx, *adminURL, *tenants, []int{1, 8})
	case "budget":
		suiteErr = budgetSuite(ctx, *adminURL, *tenants, 64, *budget, *dur)
	case "idle":
		suiteErr = idleSuite(ctx, *adminURL, *tenants, 100, 16, *dur, 5*time.Second)
	case "shared":
		var only, floorOnly *regexp.Regexp
		if *sharedCasesRe != "" {
			only = regexp.MustCompile(*sharedCasesRe)
		}
		if *floorStepsRe != "" {
			floorOnly = regexp.MustCompile(*floorStepsRe)
		}
		suiteErr = sharedSuite(ctx, *adminURL, sharedOpts{
			workers: *workers, pool: *sharedPool, dbBudget: *sharedDBCap,
			warm: *warm, d: *dur, dbWarm: *sharedDBWarm, dbD: *sharedDBDur,
			rounds: *rounds, only: only, floor: *sharedFloorF || *floorStepsRe != "", floorOnly: floorOnly,
		})
	case "fleet":
		var ttls []time.Duration
		var err error
		if *fleetTTLs != "" {
			ttls, err = parseDurations(*fleetTTLs)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: -fleet-ttls:", err)
			os.Exit(2)
		}
		suiteErr = fleetSuite(ctx, *adminURL, fleetOpts{
			redisURL: *redisURL, procs: *fleetProcs, budget: *budget, tenants: *tenants, workers: *workers,
			hold: *fleetHold, warm: *warm, d: *dur, rounds: *rounds, recoveryTTLs: ttls, recoveryTries: *fleetTries,
		})
	case "fit":
		suiteErr = runFit(ctx, *adminURL, *fitTenants, *fitWorkers, *fitBudgets, *fitDials, *fitSpread, *fitWarmCap, *dur)
	}
	if *suite != "query" {
		if suiteErr != nil {
			fmt.Fprintln(os.Stderr, "bench:", suiteErr)
			stopServer()
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		stopServer()
		return
	}
	if err := benchkit.Setup(ctx, *adminURL); err != nil {
		fmt.Fprintln(os.Stderr, "bench: setup:", err)
		os.Exit(1)
	}

	cases := benchkit.QueryCases
	results := make([][]benchkit.Result, len(cases))
	for r := range *rounds {
		for k := range cases {
			i := (k + r) % len(cases)
			res, err := benchkit.Run(ctx, *adminURL, cases[i], *workers, *cap100, *warm, *dur)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: %s: %v\n", cases[i], err)
				os.Exit(1)
			}
			fmt.Fprintf(os.Stderr, "round %d  %-34s %9.0f q/s  %6.1f allocs/op  %5d sessions  %d errors\n",
				r+1, cases[i], res.QPS(), res.AllocsPerOp(), res.NewSessions, res.Errors)
			results[i] = append(results[i], res)
		}
	}

	med := make([]benchkit.Result, len(cases))
	for i, rs := range results {
		slices.SortFunc(rs, func(a, b benchkit.Result) int { return int(a.QPS() - b.QPS()) })
		med[i] = rs[len(rs)/2]
	}
	find := func(k benchkit.Kind, n int) benchkit.Result {
		for _, r := range med {
			if r.Case.Kind == k && r.Case.Tenants == n {
				return r
			}
		}
		return benchkit.Result{}
	}
	plain := find(benchkit.Plain, 1)

	fmt.Printf("\n%s, GOMAXPROCS=%d, %d workers, %v x %d rounds (median shown), tenantsql WithMaxConns(%d)\n\n",
		runtime.Version(), runtime.GOMAXPROCS(0), *workers, *dur, *rounds, *cap100)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tqueries/s\tns/op\tallocs/op\tserver conns opened\terrors\tvs plain pgx\tvs map, same tenants\t")
	for _, r := range med {
		vsMap := ""
		if r.Case.Kind == benchkit.TenantSQL && r.Case.Tenants > 1 {
			if m := find(benchkit.Map, r.Case.Tenants); m.Ops > 0 {
				vsMap = fmt.Sprintf("%.2fx", r.QPS()/m.QPS())
			}
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.1f\t%d\t%d\t%.2fx\t%s\t\n",
			r.Case, r.QPS(), r.NsPerOp(), r.AllocsPerOp(), r.NewSessions, r.Errors, r.QPS()/plain.QPS(), vsMap)
	}
	tw.Flush()
	for _, r := range med {
		if r.FirstErr != nil {
			fmt.Printf("\n%s: first error: %v\n", r.Case, r.FirstErr)
		}
	}
	if t1 := find(benchkit.TenantSQL, 1); t1.Ops > 0 {
		fmt.Printf("\ntenantsql, 1 tenant: %.2fx plain pgx throughput, %+.1f allocs/op\n", t1.QPS()/plain.QPS(), t1.AllocsPerOp()-plain.AllocsPerOp())
	}
}

// startServer runs scripts/bench-postgres.sh from the module root.
func startServer(port, maxConn int) (string, func(), error) {
	root, err := moduleRoot()
	if err != nil {
		return "", nil, err
	}
	script := filepath.Join(root, "scripts", "bench-postgres.sh")
	out, err := exec.Command(script, "start", fmt.Sprint(port), fmt.Sprint(maxConn)).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			err = fmt.Errorf("%v: %s", err, ee.Stderr)
		}
		return "", nil, fmt.Errorf("start private server: %w", err)
	}
	stop := func() { exec.Command(script, "stop", fmt.Sprint(port)).Run() }
	return strings.TrimSpace(string(out)), stop, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory: run from the module")
		}
		dir = parent
	}
}
