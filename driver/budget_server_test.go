package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
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

// peakSampler records the most sessions with an application_name matching
// a pattern that a server reports at once, sampling pg_stat_activity for as
// long as it runs. How many samples it takes in a given time depends on the
// machine, so a test does not stop its load at a fixed time but keeps it on
// until the sampler has enough samples: a slow machine samples the load as
// many times as a fast one, and a breach is no easier to miss.
type peakSampler struct {
	t             testing.TB
	peak, samples atomic.Int64
	failed        atomic.Pointer[error] // the first failed sample: result fails the test
	cancel        context.CancelFunc
	done          chan struct{}
}

// minPeakSamples is how many samples a load must have been sampled with.
const minPeakSamples = 200

// peakOn starts sampling the sessions matching pattern on a server.
func peakOn(t testing.TB, adminURL, pattern string) *peakSampler {
	t.Helper()
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &peakSampler{t: t, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer admin.Close()
		for ctx.Err() == nil {
			var n int64
			err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", pattern).Scan(&n)
			switch {
			case err == nil:
				if n > p.peak.Load() {
					p.peak.Store(n)
				}
				p.samples.Add(1)
			case ctx.Err() == nil:
				// A sample not taken is a breach not seen: fail.
				p.failed.CompareAndSwap(nil, &err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(p.stop)
	return p
}

// enough reports whether the sampler has taken minPeakSamples samples, or
// has stopped on a failed sample (which result reports).
func (p *peakSampler) enough() bool {
	return p.samples.Load() >= minPeakSamples || p.failed.Load() != nil
}

// stop ends the sampling; it may be called more than once.
func (p *peakSampler) stop() {
	p.cancel()
	<-p.done
}

// result stops the sampling and returns the peak and how many samples it
// is the most of.
func (p *peakSampler) result() (peak, samples int64) {
	p.t.Helper()
	p.stop()
	if err := p.failed.Load(); err != nil {
		p.t.Errorf("the peak sampler's query failed after %d samples: %v", p.samples.Load(), *err)
	}
	return p.peak.Load(), p.samples.Load()
}

// Two PostgreSQL servers, each with its own budget: the server never sees
// more of our sessions than its budget, and tenants of one server do not
// wait for the other's.
func TestServerBudgetsIndependent(t *testing.T) {
	testenv.EnsureDatabases(t, "tsql_t_0", "tsql_t_1")
	second := testenv.StartPostgres(t, 50)
	second.CreateDatabases(t, "b0", "b1")
	const budget = 3
	s := store.NewMemory()
	ctx := context.Background()
	tag := "srv-" + runID
	var a, b []string
	for i := range 6 {
		ida, idb := fmt.Sprintf("%s-a%d.test", tag, i), fmt.Sprintf("%s-b%d.test", tag, i)
		if _, err := s.Create(ctx, store.Tenant{ID: ida, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, fmt.Sprintf("tsql_t_%d", i%2), "application_name", ida)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, store.Tenant{ID: idb, DeployInfo: map[string]string{store.KeyPostgresURL: second.URL(fmt.Sprintf("b%d", i%2), "application_name", idb)}}); err != nil {
			t.Fatal(err)
		}
		a, b = append(a, ida), append(b, idb)
	}
	c, err := driver.NewConnector(s, driver.WithMaxConns(budget))
	if err != nil {
		t.Fatal(err)
	}
	db := sqlOpenDB(t, c)

	// Fill server A's budget with open transactions.
	var txs []*sql.Tx
	for _, id := range a[:budget] {
		tx, err := db.BeginTx(tenantctx.WithTenant(ctx, id), nil)
		if err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	// Server B is not affected: its tenants are served without waiting for
	// A's transactions, which stay open until after this loop (a query
	// waiting for them would wait until the generous limit, and fail).
	for _, id := range b {
		qctx, cancel := context.WithTimeout(tenantctx.WithTenant(ctx, id), 30*time.Second)
		var app string
		err := db.QueryRowContext(qctx, "SELECT current_setting('application_name')").Scan(&app)
		cancel()
		if err != nil || app != id {
			t.Fatalf("tenant %s on the other server while server A is full: %q, %v", id, app, err)
		}
	}
	// Server A's other tenants wait until a slot frees.
	qctx, cancel := context.WithTimeout(tenantctx.WithTenant(ctx, a[budget]), 100*time.Millisecond)
	_, err = db.ExecContext(qctx, "SELECT 1")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a fourth tenant on the full server: %v, want to wait and time out", err)
	}
	for _, tx := range txs {
		tx.Rollback()
	}

	// Random load on both, a fixed number of queries each and until both
	// samplers have sampled it enough: neither server ever sees more than
	// its budget.
	sa := peakOn(t, testenv.PostgresURL(t), tag+"-a%")
	sb := peakOn(t, second.URL("postgres"), tag+"-b%")
	hang := hangAfter(t)
	lctx, lcancel := context.WithTimeout(ctx, hang)
	defer lcancel()
	var wg sync.WaitGroup
	var served atomic.Int64
	all := append(slices.Clone(a), b...)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10 || !sa.enough() || !sb.enough(); i++ {
				id := all[rand.IntN(len(all))]
				var app string
				if err := db.QueryRowContext(tenantctx.WithTenant(lctx, id), "SELECT current_setting('application_name') FROM pg_sleep(0.002)").Scan(&app); err != nil {
					t.Errorf("after %d queries (%d samples of A, %d of B): %v", served.Load(), sa.samples.Load(), sb.samples.Load(), err)
					return
				}
				if app != id {
					t.Errorf("tenant %s answered as %s", id, app)
				}
				served.Add(1)
			}
		}()
	}
	wg.Wait()
	pa, na := sa.result()
	pb, nb := sb.result()
	t.Logf("%d queries over 12 tenants on 2 servers; peak sessions: %d on A (%d samples), %d on B (%d samples), budget %d each", served.Load(), pa, na, pb, nb, budget)
	if pa > budget || pb > budget {
		t.Errorf("peak sessions %d and %d, over the budget of %d", pa, pb, budget)
	}
	st := c.Stats()
	if len(st.Servers) != 2 {
		t.Errorf("stats list %d servers, want 2: %v", len(st.Servers), st.Servers)
	}
	for name, ss := range st.Servers {
		if ss.Budget != budget || ss.NewConns == 0 {
			t.Errorf("server %s: %+v", name, ss)
		}
	}
}

// A hot tenant keeping every connection of a small budget busy does not
// starve the others: each of their queries is served, in about the time
// the queue ahead of it takes.
func TestNoTenantStarves(t *testing.T) {
	f := newFixture(t, "starve", 7, driver.WithMaxConns(4))
	f.db.SetMaxOpenConns(64)
	bg := context.Background()
	hot, cold := f.tenants[0], f.tenants[1:]
	ctx, cancel := context.WithCancel(bg)
	var wg sync.WaitGroup
	// However the test ends, the hot load stops with it.
	defer func() { cancel(); wg.Wait() }()
	var hotServed atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := f.db.ExecContext(hot.ctx(bg), "SELECT pg_sleep(0.005)"); err == nil {
					hotServed.Add(1)
				}
			}
		}()
	}
	eventually(t, time.Minute, "the hot tenant to hold the whole budget, with callers waiting", func() bool {
		// The hot tenant is known once its first query has started.
		st, ok := f.conn.TenantStats(hot.ID)
		return ok && st.Open == 4 && st.Waiting > 0
	})
	var worst time.Duration
	var mu sync.Mutex
	var cw sync.WaitGroup
	for _, ti := range cold {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for range 5 {
				// Starving means waiting until the hot load stops; the
				// limit only has to be longer than a fair turn takes.
				qctx, qcancel := context.WithTimeout(ti.ctx(bg), 30*time.Second)
				start := time.Now()
				got, err := f.where(qctx, f.db)
				d := time.Since(start)
				qcancel()
				if err != nil {
					t.Errorf("cold tenant %s starved: %v after %v", ti.ID, err, d)
					return
				}
				f.check(ti, got)
				mu.Lock()
				worst = max(worst, d)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	cw.Wait()
	cancel()
	wg.Wait()
	t.Logf("cold tenants: 30 queries served beside a hot tenant (%d queries), the slowest in %v", hotServed.Load(), worst)
}

// Tenants whose URLs spell one server differently share its budget: with
// their hosts written "localhost", "LOCALHOST" and "Localhost.", and
// WithMaxConns(2), the server never sees more than 2 of their sessions.
// (Budgets were keyed by the host as written: each spelling had one, and
// the server saw up to 6.)
func TestBudgetSharedAcrossSpellings(t *testing.T) {
	base, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	var spellings []string
	switch host := base.Hostname(); {
	case host == "localhost" || net.ParseIP(host).IsLoopback():
		spellings = []string{"localhost", "LOCALHOST", "Localhost."}
	case net.ParseIP(host) == nil:
		spellings = []string{strings.ToLower(host), strings.ToUpper(host), host + "."}
	default:
		t.Skipf("the test server is at %s, an address with no other spelling to use", host)
	}
	const budget = 2
	dbs := testenv.Names("tsql_t", len(spellings))
	testenv.EnsureDatabases(t, dbs...)
	s := store.NewMemory()
	ctx := context.Background()
	tag := "spell-" + runID
	var tenants []tenantInfo
	for i, host := range spellings {
		ti := tenantInfo{ID: fmt.Sprintf("%s-%d.test", tag, i), DB: dbs[i]}
		u, err := url.Parse(testenv.DatabaseURL(t, ti.DB, "application_name", ti.ID))
		if err != nil {
			t.Fatal(err)
		}
		u.Host = net.JoinHostPort(host, base.Port())
		ti.URL = u.String()
		if _, err := s.Create(ctx, store.Tenant{ID: ti.ID, DeployInfo: map[string]string{store.KeyPostgresURL: ti.URL}}); err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, ti)
	}
	// Go's resolver finds a name with a trailing dot in /etc/hosts only if
	// it has another dot too, so "localhost." would go to DNS. The dial
	// drops the dot; the URL, and with it the budget, keeps it.
	lookup := driver.WithBeforeConnect(func(_ context.Context, _ string, cc *pgx.ConnConfig) error {
		cc.LookupFunc = func(ctx context.Context, host string) ([]string, error) {
			return net.DefaultResolver.LookupHost(ctx, strings.TrimSuffix(host, "."))
		}
		return nil
	})
	c, err := driver.NewConnector(s, driver.WithMaxConns(budget), lookup)
	if err != nil {
		t.Fatal(err)
	}
	db := sqlOpenDB(t, c)
	admin := testenv.Admin(t)
	sessions := func() int {
		t.Helper()
		var n int
		if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", tag+"-%").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	where := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}, ti tenantInfo) {
		t.Helper()
		var got answer
		if err := q.QueryRowContext(ti.ctx(ctx), whereAmI).Scan(&got.DB, &got.App); err != nil {
			t.Fatalf("tenant %s: %v", ti.ID, err)
		}
		if got.DB != ti.DB || got.App != ti.ID {
			t.Fatalf("tenant %s: ran on %q as %q, want %q as %q", ti.ID, got.DB, got.App, ti.DB, ti.ID)
		}
	}

	// Two transactions hold the whole budget: the third spelling's tenant
	// must wait for a slot, not open a third session.
	var txs []*sql.Tx
	for _, ti := range tenants[:budget] {
		tx, err := db.BeginTx(ti.ctx(ctx), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		txs = append(txs, tx)
		where(tx, ti)
	}
	if n := sessions(); n != budget {
		t.Fatalf("the server has %d sessions of the tenants, want %d", n, budget)
	}
	qctx, cancel := context.WithTimeout(tenants[budget].ctx(ctx), 500*time.Millisecond)
	_, err = db.ExecContext(qctx, "SELECT 1")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("tenant on %q while the tenants on %q hold the budget of %d: %v, want to wait and time out; the server has %d sessions of them",
			spellings[budget], spellings[:budget], budget, err, sessions())
	}
	if n := sessions(); n > budget {
		t.Fatalf("the server has %d sessions of the tenants, over the budget of %d", n, budget)
	}
	t.Logf("with %q holding the budget of %d, a query on %q waited: one budget for the three", spellings[:budget], budget, spellings[budget])
	for _, tx := range txs {
		tx.Rollback()
	}
	where(db, tenants[budget])

	// Load on all three: the server never sees more than the budget.
	sampler := peakOn(t, testenv.PostgresURL(t), tag+"-%")
	var wg sync.WaitGroup
	var queries atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 30 queries each, and on until the sampler has enough samples.
			for i := 0; i < 30 || !sampler.enough(); i++ {
				queries.Add(1)
				ti := tenants[(g+i)%len(tenants)]
				var got answer
				if err := db.QueryRowContext(ti.ctx(ctx), whereAmI+" FROM pg_sleep(0.002)").Scan(&got.DB, &got.App); err != nil {
					t.Error(err)
					return
				}
				if got.DB != ti.DB || got.App != ti.ID {
					t.Errorf("tenant %s: ran on %q as %q", ti.ID, got.DB, got.App)
				}
			}
		}()
	}
	wg.Wait()
	peak, samples := sampler.result()
	t.Logf("%d queries over 3 spellings of one server: peak of %d sessions in %d samples (budget %d); servers in Stats: %v",
		queries.Load(), peak, samples, budget, slices.Collect(maps.Keys(c.Stats().Servers)))
	if peak > budget {
		t.Errorf("the server saw %d sessions of the tenants at once, over the budget of %d", peak, budget)
	}
	if n := sessions(); n > budget {
		t.Errorf("the server has %d sessions of the tenants after the load, over the budget of %d", n, budget)
	}
}
