package driver_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

// samplePeak samples the sessions of a fixture (or of one tenant) that
// the server reports at once.
func samplePeak(f *fixture, pattern string) *peakSampler {
	return peakOn(f.t, testenv.PostgresURL(f.t), pattern)
}

// However many tenants and callers, the server never sees more sessions
// than WithMaxConns, and every query is still served.
func TestMaxConnsCap(t *testing.T) {
	const maxConns = 4
	f := newFixture(t, "cap", 12, driver.WithMaxConns(maxConns))
	bg := context.Background()
	sampler := samplePeak(f, f.tag+"-%")
	ctx, cancel := context.WithTimeout(bg, hangAfter(t))
	defer cancel()
	var wg sync.WaitGroup
	var served atomic.Int64
	for range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A fixed number of queries each, and on until the load has
			// been sampled enough.
			for i := 0; i < 5 || !sampler.enough(); i++ {
				ti := f.tenants[rand.IntN(len(f.tenants))]
				var got answer
				err := f.db.QueryRowContext(ti.ctx(ctx), whereAmI+" FROM pg_sleep(0.001)").Scan(&got.DB, &got.App)
				if err != nil {
					t.Errorf("after %d queries served (%d samples): %v", served.Load(), sampler.samples.Load(), err)
					return
				}
				f.check(ti, got)
				served.Add(1)
			}
		}()
	}
	wg.Wait()
	peak, samples := sampler.result()
	t.Logf("%d queries served over %d tenants; peak %d server sessions in %d samples (cap %d)", served.Load(), len(f.tenants), peak, samples, maxConns)
	if peak > maxConns {
		t.Errorf("the server saw %d sessions at once, over the cap of %d", peak, maxConns)
	}
	if st := f.conn.Stats(); st.Open > maxConns {
		t.Errorf("stats report %d open", st.Open)
	}
}

func TestMaxConnsPerTenant(t *testing.T) {
	f := newFixture(t, "pertenant", 2, driver.WithMaxConnsPerTenant(2))
	bg := context.Background()
	hot := f.tenants[0]
	sampler := samplePeak(f, hot.ID)
	ctx, cancel := context.WithTimeout(bg, hangAfter(t))
	defer cancel()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20 || !sampler.enough(); i++ {
				var got answer
				if err := f.db.QueryRowContext(hot.ctx(ctx), whereAmI+" FROM pg_sleep(0.001)").Scan(&got.DB, &got.App); err != nil {
					t.Errorf("after %d samples: %v", sampler.samples.Load(), err)
					return
				}
				f.check(hot, got)
			}
		}()
	}
	wg.Wait()
	if peak, samples := sampler.result(); peak > 2 || peak == 0 {
		t.Errorf("the server saw %d sessions of the hot tenant at once (most of %d samples), want 1 or 2", peak, samples)
	}
	// The other tenant is not held back by the hot one's cap.
	got, err := f.where(f.tenants[1].ctx(bg), f.db)
	if err != nil {
		t.Fatal(err)
	}
	f.check(f.tenants[1], got)
}

// Without WithMaxConnsPerTenant a tenant may use its own server's whole
// budget, WithServerBudget included, not just the WithMaxConns default.
func TestPerTenantDefaultIsServerBudget(t *testing.T) {
	cc, err := pgx.ParseConfig(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	server := net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
	const budget = 4
	f := newFixture(t, "pertenantdef", 1, driver.WithMaxConns(2), driver.WithServerBudget(server, budget))
	ti := f.tenants[0]
	ctx, cancel := context.WithTimeout(ti.ctx(context.Background()), 5*time.Second)
	defer cancel()
	for i := range budget {
		tx, err := f.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatalf("transaction %d of one tenant, server budget %d: %v", i+1, budget, err)
		}
		defer tx.Rollback()
		var got answer
		if err := tx.QueryRowContext(ctx, whereAmI).Scan(&got.DB, &got.App); err != nil {
			t.Fatal(err)
		}
		f.check(ti, got)
	}
	if n := f.serverSessionsOf(ti); n != budget {
		t.Errorf("the server has %d sessions of the tenant, want %d", n, budget)
	}
}

func TestIdleTimeout(t *testing.T) {
	f := newFixture(t, "idle", 3, driver.WithIdleTimeout(200*time.Millisecond))
	bg := context.Background()
	// Counted while in use, which the reaper never closes, so a slow
	// machine cannot make the count miss one; then released.
	var txs []*sql.Tx
	for _, ti := range f.tenants {
		tx, err := f.db.BeginTx(ti.ctx(bg), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.where(ti.ctx(bg), tx)
		if err != nil {
			t.Fatal(err)
		}
		f.check(ti, got)
		txs = append(txs, tx)
	}
	if n := f.serverSessions(); n != 3 {
		t.Fatalf("server sessions in use: %d, want 3", n)
	}
	for _, tx := range txs {
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	}
	hang := hangAfter(t)
	eventually(t, hang, "idle sessions to be closed", func() bool { return f.serverSessions() == 0 })
	// The slot is freed once the server has closed the socket, just after
	// the session left pg_stat_activity.
	eventually(t, hang, "stats to report no connection", func() bool { return f.conn.Stats().Open == 0 })
	got, err := f.where(f.tenants[0].ctx(bg), f.db)
	if err != nil {
		t.Fatal(err)
	}
	f.check(f.tenants[0], got)
}

// A caller waiting for a connection gives up cleanly when its context
// ends: an error wrapping the context's, nobody left waiting, nothing
// leaked.
func TestWaiterTimesOut(t *testing.T) {
	f := newFixture(t, "waitto", 2, driver.WithMaxConns(1))
	bg := context.Background()
	a, b := f.tenants[0], f.tenants[1]
	tx, err := f.db.BeginTx(a.ctx(bg), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(b.ctx(bg), 100*time.Millisecond)
	defer cancel()
	_, err = f.db.ExecContext(ctx, "SELECT 1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	mustContain(t, err, b.ID)
	if st := f.conn.Stats(); st.Waiting != 0 || st.Open != 1 {
		t.Fatalf("after the timeout: %d waiting, %d open; want 0 and 1", st.Waiting, st.Open)
	}
	tx.Rollback()
	// The slot is usable by b now (a's idle connection is evicted).
	got, err := f.where(b.ctx(bg), f.db)
	if err != nil {
		t.Fatal(err)
	}
	f.check(b, got)
	if n := f.serverSessionsOf(a); n != 0 {
		t.Errorf("a still has %d sessions; the cap of 1 is exceeded", n)
	}
}

// When the cap is full, the connection closed to make room is the one that
// has been idle longest.
func TestEvictionPicksColdest(t *testing.T) {
	f := newFixture(t, "evict", 4, driver.WithMaxConns(3))
	bg := context.Background()
	a, b, c, d := f.tenants[0], f.tenants[1], f.tenants[2], f.tenants[3]
	for _, ti := range []tenantInfo{c, a, b} { // c is the coldest
		if _, err := f.where(ti.ctx(bg), f.db); err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.where(d.ctx(bg), f.db)
	if err != nil {
		t.Fatal(err)
	}
	f.check(d, got)
	eventually(t, 5*time.Second, "the coldest tenant's session to close", func() bool { return f.serverSessionsOf(c) == 0 })
	for _, ti := range []tenantInfo{a, b, d} {
		if n := f.serverSessionsOf(ti); n != 1 {
			t.Errorf("%s has %d sessions, want 1", ti.ID, n)
		}
	}
	if st := f.tenantStats(c.ID); st.Evictions != 1 {
		t.Errorf("evictions of the coldest tenant: %d, want 1", st.Evictions)
	}
}

// Bad tenant URLs fail that tenant's queries with a clear error, and no
// password reaches an error or a log line.
func TestBadTenantURL(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := store.NewMemory()
	bg := context.Background()
	tenants := map[string]string{
		"badparam.test":    "postgres://u:sekret@127.0.0.1:5432/db?sslmode=bogus",
		"unreachable.test": "postgres://u:sekret@127.0.0.1:1/db?connect_timeout=2",
		"badport.test":     "postgres://u:sekret@127.0.0.1:99999/db",
	}
	for id, u := range tenants {
		if _, err := s.Create(bg, store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: u}}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := driver.NewConnector(s, driver.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	db := sqlOpenDB(t, c)
	for id := range tenants {
		t.Run(id, func(t *testing.T) {
			ctx := tenantCtx(id)
			_, err := db.ExecContext(ctx, "SELECT 1")
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			mustContain(t, err, id)
			mustNotContain(t, err, "sekret")
			if id == "badparam.test" && !errors.Is(err, driver.ErrTenantConfig) {
				t.Errorf("err = %v, want ErrTenantConfig", err)
			}
		})
	}
	if bytes.Contains(logs.Bytes(), []byte("sekret")) {
		t.Errorf("the log reveals a password:\n%s", logs.String())
	}
	if !bytes.Contains(logs.Bytes(), []byte("badparam.test")) {
		t.Errorf("the unusable URL was not logged when the tenant was registered:\n%s", logs.String())
	}
}

// Arguments go to pgx as they are: what plain pgx accepts, tenantsql does.
func TestPgxArguments(t *testing.T) {
	f := newFixture(t, "args", 1)
	ctx := f.tenants[0].ctx(context.Background())
	var n int
	if err := f.db.QueryRowContext(ctx, "SELECT cardinality($1::int8[])", []int64{1, 2, 3}).Scan(&n); err != nil || n != 3 {
		t.Errorf("[]int64 argument: %d, %v", n, err)
	}
	var s string
	if err := f.db.QueryRowContext(ctx, "SELECT $1::text", pgx.QueryExecModeSimpleProtocol, "simple").Scan(&s); err != nil || s != "simple" {
		t.Errorf("QueryExecModeSimpleProtocol: %q, %v", s, err)
	}
	var ts time.Time
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := f.db.QueryRowContext(ctx, "SELECT $1::timestamptz", now).Scan(&ts); err != nil || !ts.Equal(now) {
		t.Errorf("time: %v, %v", ts, err)
	}
	var u pgtype.UUID
	if err := f.db.QueryRowContext(ctx, "SELECT '00000000-0000-0000-0000-000000000001'::uuid").Scan(&u); err != nil || !u.Valid {
		t.Errorf("uuid: %v, %v", u, err)
	}
	var null *string
	if err := f.db.QueryRowContext(ctx, "SELECT $1::text", nil).Scan(&null); err != nil || null != nil {
		t.Errorf("nil: %v, %v", null, err)
	}
	var arr []int64
	m := pgtype.NewMap()
	if err := f.db.QueryRowContext(ctx, "SELECT '{4,5}'::int8[]").Scan(m.SQLScanner(&arr)); err != nil || len(arr) != 2 {
		t.Errorf("array scan: %v, %v", arr, err)
	}
	if _, err := f.db.ExecContext(ctx, "SELECT $1::int", "not a number"); err == nil {
		t.Error("a bad argument got no error")
	}
}

// Callers that give up at every moment of a hand-over (while queued,
// while the slot they were granted is still being freed, while dialling)
// leave no slot lost and no session over the cap.
func TestGiveUpDuringHandOver(t *testing.T) {
	f := newFixture(t, "giveup", 3, driver.WithMaxConns(1))
	bg := context.Background()
	sampler := samplePeak(f, f.tag+"-%")
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 60 give-ups each, and on until they have been sampled
			// enough; each waits at most a few milliseconds.
			for i := 0; i < 60 || !sampler.enough(); i++ {
				ti := f.tenants[(g+i)%len(f.tenants)]
				ctx, cancel := context.WithTimeout(ti.ctx(bg), time.Duration(rand.IntN(3000))*time.Microsecond)
				var got answer
				if err := f.db.QueryRowContext(ctx, whereAmI).Scan(&got.DB, &got.App); err == nil {
					f.check(ti, got)
				} else if !acceptable(err) {
					t.Error(err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if peak, samples := sampler.result(); peak > 1 {
		t.Errorf("the server saw %d sessions at once (most of %d samples), over the cap of 1", peak, samples)
	}
	eventually(t, 10*time.Second, "every slot to be back", func() bool {
		st := f.conn.Stats()
		return st.Waiting == 0 && st.InUse == 0 && st.Open <= 1
	})
	for _, ti := range f.tenants {
		got, err := f.where(ti.ctx(bg), f.db)
		if err != nil {
			t.Fatal(err)
		}
		f.check(ti, got)
	}
}
