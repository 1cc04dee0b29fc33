package driver_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/driver"
)

// A failing WithAfterConnect must close the session it was given, and the
// server must have seen it end before the query fails: pgx's stdlib
// connector returns the hook's error without closing the connection, which
// left one live session per failed query, outside the budget, until the
// garbage collector found it.
func TestAfterConnectErrorClosesSession(t *testing.T) {
	const budget = 3
	errNo := errors.New("after-connect says no")
	f := newFixture(t, "acfail", 1, driver.WithMaxConns(budget),
		driver.WithAfterConnect(func(ctx context.Context, tenant string, c *pgx.Conn) error {
			return errNo
		}))
	ti := f.tenants[0]
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				_, err := f.db.ExecContext(ti.ctx(f.ctx), "SELECT 1")
				if !errors.Is(err, errNo) {
					t.Errorf("Exec = %v, want the AfterConnect error", err)
				}
				if n := f.serverSessionsOf(ti); n > budget {
					t.Errorf("the server has %d sessions of the tenant, budget %d", n, budget)
				}
			}
		}()
	}
	wg.Wait()
	// Every query has returned, so every session it opened has ended.
	if n := f.serverSessionsOf(ti); n != 0 {
		t.Errorf("after the failed queries the server still has %d sessions of the tenant, want 0", n)
	}
}

// What WithAfterConnect does to a session is what the query sees.
func TestAfterConnectSetsUpSession(t *testing.T) {
	var calls sync.Map
	f := newFixture(t, "acok", 2,
		driver.WithAfterConnect(func(ctx context.Context, tenant string, c *pgx.Conn) error {
			calls.Store(tenant, true)
			_, err := c.Exec(ctx, "SET search_path = pg_catalog, public")
			return err
		}))
	for _, ti := range f.tenants {
		a, err := f.where(ti.ctx(f.ctx), f.db)
		if err != nil {
			t.Fatal(err)
		}
		f.check(ti, a)
		var sp string
		if err := f.db.QueryRowContext(ti.ctx(f.ctx), "SELECT current_setting('search_path')").Scan(&sp); err != nil {
			t.Fatal(err)
		}
		if sp != "pg_catalog, public" {
			t.Errorf("tenant %s: search_path %q, want the one AfterConnect set", ti.ID, sp)
		}
		if _, ok := calls.Load(ti.ID); !ok {
			t.Errorf("AfterConnect was not called with tenant %s", ti.ID)
		}
	}
}
