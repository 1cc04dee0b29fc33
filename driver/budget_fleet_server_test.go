package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// Two connectors, as two processes would have, on one Redis store with a
// fleet budget: the server never holds more of their sessions than the
// budget, measured by the server (pg_stat_activity), while both are busy;
// and when one goes idle, the other takes its slots.
func TestFleetBudgetTwoConnectors(t *testing.T) {
	testenv.EnsureDatabases(t, "tsql_t_0", "tsql_t_1")
	const budget = 4
	ctx := context.Background()
	redisURL, prefix := testenv.RedisURL(t), testenv.RedisPrefix(t)
	tag := "fleet-" + runID
	var ids []string
	var dbs []*sql.DB
	for p := range 2 {
		s, err := store.OpenRedis(ctx, redisURL, store.WithRedisPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if p == 0 {
			for i := range 8 {
				id := fmt.Sprintf("%s-t%d", tag, i)
				ids = append(ids, id)
				if _, err := s.Create(ctx, store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, fmt.Sprintf("tsql_t_%d", i%2))}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Each connector's sessions say whose they are, so the server
		// can count them apart.
		name := fmt.Sprintf("%s-c%d", tag, p)
		c, err := driver.NewConnector(s, driver.WithMaxConns(budget), driver.WithFleetBudget(), driver.WithFleetTTL(900*time.Millisecond),
			driver.WithBeforeConnect(func(ctx context.Context, tenant string, cfg *pgx.ConnConfig) error {
				cfg.RuntimeParams["application_name"] = name + "/" + tenant
				return nil
			}))
		if err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, sqlOpenDB(t, c))
	}

	query := func(ctx context.Context, p int, id string) error {
		var app string
		err := dbs[p].QueryRowContext(tenantctx.WithTenant(ctx, id), "SELECT current_setting('application_name') FROM pg_sleep(0.002)").Scan(&app)
		if err == nil && app != fmt.Sprintf("%s-c%d/%s", tag, p, id) {
			err = fmt.Errorf("answered by session %q", app)
		}
		if err != nil {
			return fmt.Errorf("connector %d, tenant %s: %w", p, id, err)
		}
		return nil
	}
	// load runs workers on each connector in ps until stop is closed and
	// each has served at least 20 queries.
	load := func(ctx context.Context, ps []int, stop <-chan struct{}) int64 {
		var wg sync.WaitGroup
		var served atomic.Int64
		for _, p := range ps {
			for range 6 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							if i >= 20 {
								return
							}
						default:
						}
						if err := query(ctx, p, ids[rand.IntN(len(ids))]); err != nil {
							t.Error(err)
							return
						}
						served.Add(1)
					}
				})
			}
		}
		wg.Wait()
		return served.Load()
	}
	lctx, cancel := context.WithTimeout(ctx, hangAfter(t))
	defer cancel()

	// Both busy: together within the budget.
	peak := peakOn(t, testenv.PostgresURL(t), tag+"-%")
	stop := make(chan struct{})
	go func() {
		for !peak.enough() {
			time.Sleep(10 * time.Millisecond)
		}
		close(stop)
	}()
	served := load(lctx, []int{0, 1}, stop)
	if n, samples := peak.result(); n > budget || n == 0 {
		t.Fatalf("%d queries by two connectors: the server held %d of their sessions at most (%d samples), want 1 to the budget of %d", served, n, samples, budget)
	}

	// Connector 1 idle, 0 busy: 0 ends up with the whole budget but the
	// slot kept free for 1, which holds none, while the two together stay
	// within it.
	peak = peakOn(t, testenv.PostgresURL(t), tag+"-%")
	admin := testenv.Admin(t)
	stop = make(chan struct{})
	var took error
	go func() {
		defer close(stop)
		deadline := time.Now().Add(hangAfter(t) / 2)
		for time.Now().Before(deadline) {
			var own int
			if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", tag+"-c0/%").Scan(&own); err != nil {
				took = err
				return
			}
			if own == budget-1 && peak.enough() {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		took = errors.New("the busy connector never had the whole budget but one slot on the server")
	}()
	load(lctx, []int{0}, stop)
	if took != nil {
		t.Error(took)
	}
	if n, samples := peak.result(); n > budget {
		t.Fatalf("one connector busy, one idle: the server held %d of their sessions (%d samples), over the budget of %d", n, samples, budget)
	}
	c0, _ := driver.ConnectorOf(dbs[0])
	st := c0.Stats()
	for server, ss := range st.Servers {
		if ss.Fleet == nil || ss.Fleet.Budget != budget || !strings.Contains(server, ":") {
			t.Errorf("server %s: fleet stats %+v, want a lease under a budget of %d", server, ss.Fleet, budget)
		}
	}
}

// Redis gone: the connector keeps its lease until it expires, then falls
// back to its fallback share, which the server sees (its other sessions
// end), and keeps serving queries on it; Redis back, it leases again.
func TestFleetBudgetRedisOutage(t *testing.T) {
	testenv.EnsureDatabases(t, "tsql_t_0")
	const budget, fallback = 3, 1
	ctx := context.Background()
	r := testenv.StartRedis(t, false)
	s, err := store.OpenRedis(ctx, r.URL(), store.WithRedisCheckInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tag := "fleetout-" + runID
	id := tag + ".test"
	if _, err := s.Create(ctx, store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, "tsql_t_0", "application_name", id)}}); err != nil {
		t.Fatal(err)
	}
	c, err := driver.NewConnector(s, driver.WithMaxConns(budget), driver.WithFleetBudget(),
		driver.WithFleetTTL(time.Second), driver.WithFleetFallback(fallback))
	if err != nil {
		t.Fatal(err)
	}
	db := sqlOpenDB(t, c)
	admin := testenv.Admin(t)
	sessions := func() int {
		var n int
		if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	lease := func() driver.FleetStats {
		for _, ss := range c.Stats().Servers {
			if ss.Fleet != nil {
				return *ss.Fleet
			}
		}
		return driver.FleetStats{}
	}
	// hold opens n transactions at once: n sessions.
	hold := func(n int) {
		tctx, cancel := context.WithTimeout(tenantctx.WithTenant(ctx, id), hangAfter(t))
		defer cancel()
		var txs []*sql.Tx
		for range n {
			tx, err := db.BeginTx(tctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(tctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
			txs = append(txs, tx)
		}
		for _, tx := range txs {
			tx.Rollback()
		}
	}
	hold(budget)
	if n := sessions(); n != budget {
		t.Fatalf("%d sessions after %d transactions at once, want %d", n, budget, budget)
	}

	r.Kill()
	eventually(t, 30*time.Second, "the fallback share once the lease has expired", func() bool { return lease().Fallback })
	eventually(t, 30*time.Second, "the sessions over the fallback share to end", func() bool { return sessions() <= fallback })
	// Served on the fallback share, never more sessions than it.
	peak := peakOn(t, testenv.PostgresURL(t), id)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				qctx, cancel := context.WithTimeout(tenantctx.WithTenant(ctx, id), hangAfter(t))
				var app string
				err := db.QueryRowContext(qctx, "SELECT current_setting('application_name')").Scan(&app)
				cancel()
				if err != nil || app != id {
					t.Errorf("query on the fallback share: %q, %v", app, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n, samples := peak.result(); n > fallback {
		t.Errorf("Redis down: the server held %d sessions (%d samples), over the fallback share of %d", n, samples, fallback)
	}

	r.Start()
	eventually(t, 30*time.Second, "a lease again once Redis is back", func() bool { l := lease(); return !l.Fallback && l.Holders == 1 })
	hold(budget)
	if n := sessions(); n != budget {
		t.Errorf("Redis back: %d sessions after %d transactions at once, want %d", n, budget, budget)
	}
}
