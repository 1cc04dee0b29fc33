package driver_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

// The exported functions and options that no other test exercises, each
// against the real server (or a real listener).

// LookupTenant answers from the registry, and from the store for a tenant
// the connector has not seen yet; an unknown or invalid id is "no", with no
// error, and a query for it fails with ErrUnknownTenant.
func TestLookupTenant(t *testing.T) {
	f := newFixture(t, "lookup", 1)
	bg := context.Background()
	known := f.tenants[0]
	if ok, err := f.conn.LookupTenant(bg, known.ID); err != nil || !ok {
		t.Fatalf("LookupTenant(%q) = %v, %v; want true, nil", known.ID, ok, err)
	}
	added := newTenantInfo(t, f, "added", "tsql_t_1")
	f.add(added)
	if ok, err := f.conn.LookupTenant(bg, added.ID); err != nil || !ok {
		t.Fatalf("LookupTenant of a tenant just created = %v, %v; want true, nil", ok, err)
	}
	got, err := f.where(added.ctx(bg), f.db)
	if err != nil {
		t.Fatal(err)
	}
	f.check(added, got)
	for _, id := range []string{f.tag + "-nobody.test", "not a valid id!"} {
		if ok, err := f.conn.LookupTenant(bg, id); err != nil || ok {
			t.Errorf("LookupTenant(%q) = %v, %v; want false, nil", id, ok, err)
		}
	}
	_, err = f.db.ExecContext(tenantCtx(f.tag+"-nobody.test"), "SELECT 1")
	if !errors.Is(err, driver.ErrUnknownTenant) {
		t.Fatalf("query for an unknown tenant: %v, want ErrUnknownTenant", err)
	}
	if _, err := f.store.Delete(bg, added.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "LookupTenant to stop finding the deleted tenant", func() bool {
		ok, err := f.conn.LookupTenant(bg, added.ID)
		if err != nil {
			t.Fatalf("LookupTenant of a deleted tenant: %v", err)
		}
		return !ok
	})
}

// Store and StoreStatus: a memory store reports no status; a Redis store
// reports that it follows its source.
func TestStoreStatus(t *testing.T) {
	f := newFixture(t, "status", 1)
	if f.conn.Store() != store.Store(f.store) {
		t.Errorf("Store() is not the store the connector was made with")
	}
	if st, ok := f.conn.StoreStatus(); ok {
		t.Errorf("StoreStatus of a memory store = %+v, true; want false", st)
	}
	if c, ok := driver.ConnectorOf(f.db); !ok || c != f.conn {
		t.Errorf("ConnectorOf(db) = %v, %v; want the fixture's connector", c, ok)
	}
	if f.conn.Driver() == nil {
		t.Errorf("Driver() is nil")
	}

	bg := context.Background()
	rs, err := store.OpenRedis(bg, testenv.RedisURL(t), store.WithRedisPrefix(testenv.RedisPrefix(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	id := f.tag + "-redis.test"
	if _, err := rs.Create(bg, store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, "tsql_t_0", "application_name", id)}}); err != nil {
		t.Fatal(err)
	}
	c, err := driver.NewConnector(rs, driver.WithHooks(nil))
	if err != nil {
		t.Fatal(err)
	}
	db := sqlOpenDB(t, c)
	var app string
	if err := db.QueryRowContext(tenantCtx(id), "SELECT current_setting('application_name')").Scan(&app); err != nil {
		t.Fatal(err)
	}
	if app != id {
		t.Errorf("query ran as %q, want %q", app, id)
	}
	st, ok := c.StoreStatus()
	if !ok {
		t.Fatal("StoreStatus of a Redis store: not reported")
	}
	if !st.Connected || st.LastError != "" || st.DataLoss {
		t.Errorf("StoreStatus of a Redis store that answers: %+v, want connected, no error, no data loss", st)
	}
	if st.Version < 1 {
		t.Errorf("StoreStatus version %d after a create, want at least 1", st.Version)
	}
}

// WithBeforeConnect gets the tenant and a configuration whose changes the
// server sees.
func TestWithBeforeConnect(t *testing.T) {
	var mu sync.Mutex
	var saw []string
	f := newFixture(t, "beforec", 2, driver.WithBeforeConnect(func(_ context.Context, tenant string, cc *pgx.ConnConfig) error {
		mu.Lock()
		saw = append(saw, tenant)
		mu.Unlock()
		cc.RuntimeParams["application_name"] = tenant + "-bc"
		return nil
	}))
	bg := context.Background()
	for _, ti := range f.tenants {
		var app string
		if err := f.db.QueryRowContext(ti.ctx(bg), "SELECT current_setting('application_name')").Scan(&app); err != nil {
			t.Fatal(err)
		}
		if app != ti.ID+"-bc" {
			t.Errorf("tenant %s: the server sees application_name %q, want %q set by BeforeConnect", ti.ID, app, ti.ID+"-bc")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(saw) != 2 || saw[0] != f.tenants[0].ID || saw[1] != f.tenants[1].ID {
		t.Errorf("BeforeConnect ran for %q, want each tenant once, in order", saw)
	}

	// An error from BeforeConnect fails the query, wrapped.
	boom := errors.New("no token for you")
	f2 := newFixture(t, "beforecerr", 1, driver.WithBeforeConnect(func(context.Context, string, *pgx.ConnConfig) error { return boom }))
	_, err := f2.db.ExecContext(f2.tenants[0].ctx(bg), "SELECT 1")
	if !errors.Is(err, boom) {
		t.Fatalf("query when BeforeConnect fails: %v, want it to wrap %v", err, boom)
	}
}

// WithConnectTimeout bounds a dial to a server that accepts the TCP
// connection and never answers: the query fails with a timeout well before
// the default timeout would have ended it.
func TestWithConnectTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // accepted, never spoken to
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		conns.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})

	const timeout = 300 * time.Millisecond
	s := store.NewMemory()
	id := "silent.test"
	u := "postgres://u:secret-pw@" + ln.Addr().String() + "/db?sslmode=disable"
	if _, err := s.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: u}}); err != nil {
		t.Fatal(err)
	}
	c, err := driver.NewConnector(s, driver.WithHooks(nil), driver.WithConnectTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	db := sqlOpenDB(t, c)
	start := time.Now()
	_, err = db.ExecContext(tenantCtx(id), "SELECT 1")
	took := time.Since(start)
	if err == nil {
		t.Fatal("a query through a server that never answers succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
		t.Errorf("dial to a silent server: %v, want a timeout", err)
	}
	mustNotContain(t, err, "secret-pw")
	if took < timeout {
		t.Errorf("the dial failed after %v, before its timeout of %v", took, timeout)
	}
	if took >= driver.DefaultConnectTimeout {
		t.Errorf("the dial took %v: WithConnectTimeout(%v) was not applied (default %v)", took, timeout, driver.DefaultConnectTimeout)
	}
	t.Logf("dial to a silent server: %v after %v", err, took)

	if _, err := driver.NewConnector(s, driver.WithConnectTimeout(0)); err == nil {
		t.Error("WithConnectTimeout(0) accepted")
	}
}

// WithMaxConnLifetime: a session older than the lifetime is not reused when
// released: the next query runs on a new backend. With the default lifetime
// the same backend serves both.
func TestWithMaxConnLifetime(t *testing.T) {
	bg := context.Background()
	pids := func(f *fixture) (int, int) {
		t.Helper()
		ti := f.tenants[0]
		var p [2]int
		for i := range p {
			if err := f.db.QueryRowContext(ti.ctx(bg), "SELECT pg_backend_pid()").Scan(&p[i]); err != nil {
				t.Fatal(err)
			}
		}
		return p[0], p[1]
	}
	// Any session is older than a nanosecond when it is released.
	short := newFixture(t, "lifetime", 1, driver.WithMaxConnsPerTenant(1), driver.WithMaxConnLifetime(time.Nanosecond))
	if p1, p2 := pids(short); p1 == p2 {
		t.Errorf("a session past its lifetime was reused (backend %d twice)", p1)
	}
	eventually(t, 10*time.Second, "the expired sessions to end on the server, leaving at most the last", func() bool {
		return short.serverSessions() <= 1
	})
	long := newFixture(t, "lifetimel", 1, driver.WithMaxConnsPerTenant(1))
	if p1, p2 := pids(long); p1 != p2 {
		t.Errorf("with the default lifetime the second query ran on backend %d, not the first's %d", p2, p1)
	}
	if _, err := driver.NewConnector(store.NewMemory(), driver.WithMaxConnLifetime(0)); err == nil {
		t.Error("WithMaxConnLifetime(0) accepted")
	}
}

// WithHookConcurrency bounds how many tenants' hooks run at once.
func TestWithHookConcurrency(t *testing.T) {
	const limit, tenants = 2, 5
	reg := hooks.New(quietLog)
	release := make(chan struct{})
	started := make(chan string, tenants)
	var mu sync.Mutex
	running, peak := 0, 0
	prefix := "" // set once the fixture's tag is known; guarded by mu
	reg.Subscribe(hooks.PostCreate, func(ctx context.Context, ev hooks.Event) error {
		mu.Lock()
		ours := prefix != "" && strings.HasPrefix(ev.Tenant.ID, prefix)
		if !ours {
			mu.Unlock()
			return nil
		}
		running++
		peak = max(peak, running)
		mu.Unlock()
		started <- ev.Tenant.ID
		<-release
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	})
	f := newFixture(t, "hookconc", 1, driver.WithHooks(reg), driver.WithHookConcurrency(limit))
	var releaseAll sync.Once
	t.Cleanup(func() { releaseAll.Do(func() { close(release) }) })
	mu.Lock()
	prefix = f.tag + "-c"
	mu.Unlock()
	for i := range tenants {
		f.add(newTenantInfo(t, f, "c"+string(rune('a'+i)), "tsql_t_1"))
	}
	wait := func(what string) {
		t.Helper()
		select {
		case <-started:
		case <-time.After(time.Minute):
			t.Fatalf("timed out after a minute waiting for %s", what)
		}
	}
	for range limit {
		wait("the first hooks to start")
	}
	// Let them finish one at a time: each frees a place for one more.
	for i := limit; i < tenants; i++ {
		release <- struct{}{}
		wait("the next tenant's hook to start")
	}
	for range limit {
		release <- struct{}{}
	}
	mu.Lock()
	defer mu.Unlock()
	if peak != limit {
		t.Errorf("at most %d tenants' hooks ran at once, want %d (WithHookConcurrency(%d))", peak, limit, limit)
	}
	if _, err := driver.NewConnector(store.NewMemory(), driver.WithHookConcurrency(0)); err == nil {
		t.Error("WithHookConcurrency(0) accepted")
	}
}

// Driver.Open, for code that uses the driver directly: the connector's
// driver opens a virtual connection that serves the tenant of each call's
// context; a bare Driver refuses (it would leak a store per connection).
func TestDriverOpen(t *testing.T) {
	f := newFixture(t, "drvopen", 1)
	ti := f.tenants[0]
	dc, err := f.conn.Driver().Open("ignored")
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	vc, ok := dc.(*driver.Conn)
	if !ok {
		t.Fatalf("Driver().Open returned a %T, want *driver.Conn", dc)
	}
	if id, bound := vc.Tenant(); bound {
		t.Errorf("a fresh connection is bound to %q", id)
	}
	if err := vc.Ping(ti.ctx(context.Background())); err != nil {
		t.Fatal(err)
	}
	if id, bound := vc.Tenant(); !bound || id != ti.ID {
		t.Errorf("after a ping for %s: Tenant() = %q, %v", ti.ID, id, bound)
	}
	// What database/sql does when it takes the connection back and reuses
	// it: IsValid unbinds it, then ResetSession finds it unbound.
	if !vc.IsValid() {
		t.Error("a connection after a successful ping is not valid")
	}
	if id, bound := vc.Tenant(); bound {
		t.Errorf("IsValid left the connection bound to %q", id)
	}
	if err := vc.ResetSession(context.Background()); err != nil {
		t.Fatalf("ResetSession of an unbound connection: %v", err)
	}
	_, err = (&driver.Driver{}).Open("file:/nowhere.json")
	mustContain(t, err, "not supported")
}
