package main

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tenantsql/tenantsql/internal/benchkit"
	"github.com/tenantsql/tenantsql/internal/fleetproc"
	"github.com/tenantsql/tenantsql/store"
)

// fleetOpts are -suite fleet's settings.
type fleetOpts struct {
	redisURL      string
	procs         int
	budget        int
	tenants       int
	workers       int
	hold          time.Duration
	warm, d       time.Duration
	rounds        int
	recoveryTTLs  []time.Duration
	recoveryTries int
}

// fleetPrefix is the Redis key prefix of the suite's store; a run starts
// by deleting what an earlier one left under it.
const fleetPrefix = "tsqlbench-fleet"

// fleetSuite runs opts.procs OS processes on one Redis store and one
// server, one of them hot and the others idle, with the fleet budget
// (each configured with the whole budget, sharing it) against a static
// split (each with budget/procs, no store calls), and reports the hot
// process's throughput; then it kills the hot process and measures how
// long its slots take to reach another that turns hot.
func fleetSuite(ctx context.Context, adminURL string, o fleetOpts) error {
	if o.procs < 2 || o.budget < o.procs {
		return fmt.Errorf("-fleet-procs %d and -budget %d: want 2 processes or more, and a budget of one slot each at least", o.procs, o.budget)
	}
	tenants, storeURL, err := fleetSetup(ctx, adminURL, o)
	if err != nil {
		return err
	}
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	admin.SetMaxOpenConns(1) // one of the three superuser sessions max_connections leaves room for
	maxConn, err := serverSetting(ctx, adminURL, "max_connections")
	if err != nil {
		return err
	}

	type caseResult struct {
		hotQPS, idleQPS      float64
		hotPeak, allPeak     int64
		tooMany, errs, wrong int64
		firstErr             string
	}
	modes := []string{"static budget/N", "fleet budget"}
	results := map[string][]caseResult{}
	for r := range o.rounds {
		for k := range modes {
			mode := modes[(k+r)%len(modes)]
			fleet := mode == "fleet budget"
			procs, err := startFleet(ctx, admin, o, tenants, storeURL, fleet, 0)
			if err != nil {
				return err
			}
			res, err := func() (caseResult, error) {
				defer closeFleet(procs)
				if err := skew(procs, o); err != nil {
					return caseResult{}, err
				}
				allPeak, err := fleetproc.SamplePeak(ctx, adminURL, "fb%")
				if err != nil {
					return caseResult{}, err
				}
				hotPeak, err := fleetproc.SamplePeak(ctx, adminURL, "fb0/%")
				if err != nil {
					allPeak.Stop()
					return caseResult{}, err
				}
				before := counts(procs)
				time.Sleep(o.d)
				after := counts(procs)
				var res caseResult
				var err1, err2 error
				res.allPeak, _, _, err1 = allPeak.Stop()
				res.hotPeak, _, _, err2 = hotPeak.Stop()
				if err := cmp.Or(err1, err2); err != nil {
					return res, err
				}
				res.hotQPS = float64(after[0].OK-before[0].OK) / o.d.Seconds()
				for i := 1; i < len(after); i++ {
					res.idleQPS += float64(after[i].OK-before[i].OK) / o.d.Seconds()
				}
				for _, c := range after {
					res.tooMany += c.TooMany
					res.errs += c.Errors
					res.wrong += c.Wrong
					if res.firstErr == "" {
						res.firstErr = c.FirstErr
					}
				}
				return res, nil
			}()
			if err != nil {
				return fmt.Errorf("%s: %w", mode, err)
			}
			fmt.Fprintf(os.Stderr, "round %d  %-16s hot %7.0f q/s, hot sessions %3d, all sessions %3d, %d too many clients, %d errors, %d wrong\n",
				r+1, mode, res.hotQPS, res.hotPeak, res.allPeak, res.tooMany, res.errs, res.wrong)
			results[mode] = append(results[mode], res)
		}
	}

	fmt.Printf("\n%d processes on one server (max_connections %s, budget %d), one hot (%d workers over %d tenants, each query holding its session %v), the others idle; %v measured after a %v warm-up, %d rounds (median shown)\n\n",
		o.procs, maxConn, o.budget, o.workers, o.tenants, o.hold, o.d, o.warm, o.rounds)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\thot process q/s\tidle processes q/s\thot's sessions (server, peak)\tall sessions (server, peak)\ttoo many clients\tother errors\twrong answers\tvs static\t")
	var static float64
	for _, mode := range modes {
		rs := results[mode]
		slices.SortFunc(rs, func(a, b caseResult) int { return cmp.Compare(a.hotQPS, b.hotQPS) })
		m := rs[len(rs)/2]
		if mode == modes[0] {
			static = m.hotQPS
		}
		var tooMany, errs, wrong int64
		for _, r := range rs {
			tooMany, errs, wrong = tooMany+r.tooMany, errs+r.errs, wrong+r.wrong
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%d\t%d\t%d\t%d\t%d\t%.2fx\t\n", mode, m.hotQPS, m.idleQPS, m.hotPeak, m.allPeak, tooMany, errs, wrong, m.hotQPS/static)
		for _, r := range rs {
			if r.firstErr != "" {
				fmt.Fprintf(os.Stderr, "%s: first error: %s\n", mode, r.firstErr)
				break
			}
		}
	}
	tw.Flush()

	if len(o.recoveryTTLs) == 0 {
		return nil
	}
	fmt.Printf("\nA crashed process's slots: the hot process is killed (SIGKILL) and another turns hot at once; times from the kill, as the server saw them (median of %d)\n\n", o.recoveryTries)
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WithFleetTTL\thot's sessions before\tits sessions gone\tnew hot's first answer\tnew hot back to as many sessions\t")
	for _, ttl := range o.recoveryTTLs {
		var tries []recovery
		for range o.recoveryTries {
			rec, err := measureRecovery(ctx, admin, o, tenants, storeURL, ttl)
			if err != nil {
				return fmt.Errorf("recovery, TTL %v: %w", ttl, err)
			}
			fmt.Fprintf(os.Stderr, "TTL %v: %d sessions; gone after %v; first answer after %v; %d sessions after %v\n",
				ttl, rec.before, rec.gone, rec.firstAnswer, rec.before, rec.back)
			tries = append(tries, rec)
		}
		slices.SortFunc(tries, func(a, b recovery) int { return cmp.Compare(a.back, b.back) })
		m := tries[len(tries)/2]
		fmt.Fprintf(tw, "%v\t%d\t%v\t%v\t%v\t\n", ttl, m.before, m.gone.Round(time.Millisecond), m.firstAnswer.Round(time.Millisecond), m.back.Round(time.Millisecond))
	}
	tw.Flush()
	return nil
}

// fleetSetup creates the suite's role, databases and tenants: tenant i
// on database i mod benchkit.Databases, as role fleet, which the server
// refuses at max_connections - superuser_reserved_connections, where a
// superuser would get in. It returns the tenants and the store's URL.
func fleetSetup(ctx context.Context, adminURL string, o fleetOpts) ([]fleetproc.Tenant, string, error) {
	if err := benchkit.Setup(ctx, adminURL); err != nil {
		return nil, "", err
	}
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return nil, "", err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "DO $$ BEGIN CREATE ROLE fleet LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"); err != nil {
		return nil, "", fmt.Errorf("create role fleet: %w", err)
	}
	ropt, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return nil, "", fmt.Errorf("-redis: %w", err)
	}
	rc := redis.NewClient(ropt)
	defer rc.Close()
	// Delete what an earlier run left, tenants and leases alike.
	for _, pattern := range []string{"{" + fleetPrefix + "}*", "{" + fleetPrefix + ":fleet:*"} {
		iter := rc.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			if err := rc.Del(ctx, iter.Val()).Err(); err != nil {
				return nil, "", err
			}
		}
		if err := iter.Err(); err != nil {
			return nil, "", fmt.Errorf("redis at %s: %w", ropt.Addr, err)
		}
	}
	su, err := url.Parse(o.redisURL)
	if err != nil {
		return nil, "", fmt.Errorf("-redis: %w", err)
	}
	q := su.Query()
	q.Set("prefix", fleetPrefix)
	su.RawQuery = q.Encode()
	storeURL := su.String()
	s, err := store.Open(ctx, storeURL)
	if err != nil {
		return nil, "", err
	}
	defer s.Close()
	fleetURL, err := withUser(adminURL, "fleet")
	if err != nil {
		return nil, "", err
	}
	dbs := benchkit.DatabaseNames()
	tenants := make([]fleetproc.Tenant, o.tenants)
	for i := range tenants {
		t := fleetproc.Tenant{ID: fmt.Sprintf("fb-%d", i), DB: dbs[i%len(dbs)]}
		tenants[i] = t
		u, err := benchkit.DatabaseURL(fleetURL, t.DB, "")
		if err != nil {
			return nil, "", err
		}
		if _, err := s.Create(ctx, store.Tenant{ID: t.ID, DeployInfo: map[string]string{store.KeyPostgresURL: u}}); err != nil {
			return nil, "", err
		}
	}
	return tenants, storeURL, nil
}

// startFleet starts o.procs processes, fb0 to fbN, once the server has
// none of an earlier case's sessions; ttl 0 is the default lease.
func startFleet(ctx context.Context, admin *sql.DB, o fleetOpts, tenants []fleetproc.Tenant, storeURL string, fleet bool, ttl time.Duration) ([]*fleetproc.Proc, error) {
	for deadline := time.Now().Add(time.Minute); ; {
		var n int
		if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'fb%'").Scan(&n); err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the server still has %d sessions of an earlier case after a minute", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	budget := o.budget
	if !fleet {
		budget = o.budget / o.procs
	}
	var procs []*fleetproc.Proc
	for i := range o.procs {
		p, err := fleetproc.Start(fleetproc.Config{
			Name: fmt.Sprintf("fb%d", i), StoreURL: storeURL, Budget: budget, Fleet: fleet, TTL: ttl,
			Tenants: tenants, Hold: o.hold,
		}, time.Minute)
		if err != nil {
			closeFleet(procs)
			return nil, err
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// skew loads every process for a second, as a fleet that has been
// serving, then leaves fb0 hot and the others idle for the warm-up.
func skew(procs []*fleetproc.Proc, o fleetOpts) error {
	for _, p := range procs {
		if err := p.Load(o.workers / len(procs)); err != nil {
			return err
		}
	}
	time.Sleep(time.Second)
	for _, p := range procs[1:] {
		if err := p.Load(0); err != nil {
			return err
		}
	}
	if err := procs[0].Load(o.workers); err != nil {
		return err
	}
	time.Sleep(o.warm)
	return nil
}

func counts(procs []*fleetproc.Proc) []fleetproc.Counts {
	var out []fleetproc.Counts
	for _, p := range procs {
		out = append(out, p.Counts())
	}
	return out
}

func closeFleet(procs []*fleetproc.Proc) {
	for _, p := range procs {
		if err := p.Close(time.Minute); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}
}

// recovery is what one crash measured, from the moment of the kill.
type recovery struct {
	before      int           // the hot process's sessions on the server before
	gone        time.Duration // until the server had none of them
	firstAnswer time.Duration // until the new hot process's first answer
	back        time.Duration // until the new hot process had before sessions
}

// measureRecovery runs the skewed fleet with lease ttl, kills fb0, turns
// fb1 hot at once, and times, on the server's word, how long fb1 takes to
// hold as many sessions as fb0 held.
func measureRecovery(ctx context.Context, admin *sql.DB, o fleetOpts, tenants []fleetproc.Tenant, storeURL string, ttl time.Duration) (recovery, error) {
	procs, err := startFleet(ctx, admin, o, tenants, storeURL, true, ttl)
	if err != nil {
		return recovery{}, err
	}
	defer closeFleet(procs[1:])
	defer procs[0].Kill() // killed below, unless something failed first
	if err := skew(procs, o); err != nil {
		return recovery{}, err
	}
	sessions := func(name string) (int, error) {
		var n int
		err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", name+"/%").Scan(&n)
		return n, err
	}
	var rec recovery
	if rec.before, err = sessions("fb0"); err != nil {
		return rec, err
	}
	answered := procs[1].Counts().OK
	killed := time.Now()
	if err := procs[0].Kill(); err != nil {
		return rec, err
	}
	if err := procs[1].Load(o.workers); err != nil {
		return rec, err
	}
	deadline := killed.Add(3*ttl + time.Minute)
	for rec.back == 0 {
		if time.Now().After(deadline) {
			return rec, fmt.Errorf("fb1 never held %d sessions within %v of the kill", rec.before, time.Since(killed))
		}
		old, err := sessions("fb0")
		if err != nil {
			return rec, err
		}
		now, err := sessions("fb1")
		if err != nil {
			return rec, err
		}
		since := time.Since(killed)
		if old == 0 && rec.gone == 0 {
			rec.gone = since
		}
		if rec.firstAnswer == 0 && procs[1].Counts().OK > answered {
			rec.firstAnswer = since
		}
		if now >= rec.before {
			rec.back = since
		}
		time.Sleep(5 * time.Millisecond)
	}
	return rec, nil
}
