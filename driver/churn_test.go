package driver_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// Forty tenants served round-robin by sixteen goroutines must, once warm,
// open no new server sessions (counted by the server in
// pg_stat_database.sessions of their databases, which nothing else uses),
// and the server must never see more of our sessions than the cap.
func TestChurn(t *testing.T) {
	const (
		tenants    = 40
		goroutines = 16
		maxConns   = 48
	)
	// How long a caller waits for its own tenant's connection before it
	// takes a cold one of another tenant is a guess at how long a checkout
	// normally lasts. Under the race detector, on two cores shared with
	// the other test packages, a goroutine holding a connection is
	// sometimes descheduled for hundreds of milliseconds, and the waiting
	// caller then moves a cold connection over: a new session. Scale the
	// delay with that; the policy is the same, and without the race
	// detector the default holds (BENCHMARKS.md, issue 2 figures).
	delay := driver.DefaultEvictionDelay
	if raceEnabled {
		delay = time.Second
	}
	f := newFixtureOn(t, "churn", tenants, "tsql_churn", tenants, driver.WithMaxConns(maxConns), driver.WithEvictionDelay(delay))
	f.db.SetMaxOpenConns(goroutines)
	f.db.SetMaxIdleConns(goroutines)
	bg := context.Background()
	dbs := testenv.Names("tsql_churn", tenants)

	sessions := func() (n int64) {
		t.Helper()
		// Stats are read from a fresh snapshot each time.
		if _, err := f.admin.ExecContext(bg, "SELECT pg_stat_clear_snapshot()"); err != nil {
			t.Fatal(err)
		}
		if err := f.admin.QueryRowContext(bg, "SELECT coalesce(sum(sessions), 0) FROM pg_stat_database WHERE datname = ANY($1)", dbs).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	var next atomic.Int64
	var wrong, queries atomic.Int64
	run := func(d time.Duration) {
		ctx, stop := context.WithTimeout(bg, d)
		defer stop()
		var wg sync.WaitGroup
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					ti := f.tenants[next.Add(1)%tenants]
					got, err := f.where(ti.ctx(bg), f.db)
					if err != nil {
						t.Error(err)
						return
					}
					queries.Add(1)
					if got.DB != ti.DB || got.App != ti.ID {
						wrong.Add(1)
					}
				}
			}()
		}
		wg.Wait()
	}

	// Sample the server's view of our sessions throughout.
	var peak atomic.Int64
	sampling, stopSampling := context.WithCancel(bg)
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for sampling.Err() == nil {
			var n int64
			err := f.admin.QueryRowContext(sampling, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", f.tag+"-%").Scan(&n)
			if err == nil && n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	defer sampler.Wait()
	defer stopSampling()

	run(2 * time.Second) // warm up
	warm := sessions()
	warmQueries := queries.Load()
	run(4 * time.Second)
	// A session's start is counted when it first reports its statistics,
	// which an active backend does at least once a second.
	time.Sleep(1500 * time.Millisecond)
	after := sessions()
	stopSampling()
	sampler.Wait()

	st := f.conn.Stats()
	var evictions int64
	for _, ts := range st.Tenants {
		evictions += ts.Evictions
	}
	t.Logf("steady state: %d queries, %d new server sessions; peak %d sessions on the server (cap %d); evictions %d",
		queries.Load()-warmQueries, after-warm, peak.Load(), maxConns, evictions)
	if wrong.Load() != 0 {
		t.Fatalf("%d wrong-tenant answers", wrong.Load())
	}
	if after != warm {
		t.Errorf("the server counted %d new sessions once warm, want 0", after-warm)
	}
	if peak.Load() > maxConns {
		t.Errorf("the server saw %d sessions at once, over the cap of %d", peak.Load(), maxConns)
	}
}
