package driver_test

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// A connection that comes fresh from the connector, one reused from
// database/sql's idle list, and one handed straight from a returning
// caller to a waiting one each run on the tenant of the caller's context.
func TestConnectionPaths(t *testing.T) {
	f := newFixture(t, "paths", 6)
	f.db.SetMaxOpenConns(1)
	bg := context.Background()

	t.Run("fresh", func(t *testing.T) {
		for _, ti := range f.tenants[:3] {
			got, err := f.where(ti.ctx(bg), f.db)
			if err != nil {
				t.Fatal(err)
			}
			f.check(ti, got)
		}
	})

	t.Run("idle reuse", func(t *testing.T) {
		// One pooled connection serves every tenant in turn.
		for i := range 30 {
			ti := f.tenants[i%len(f.tenants)]
			got, err := f.where(ti.ctx(bg), f.db)
			if err != nil {
				t.Fatal(err)
			}
			f.check(ti, got)
		}
		if open := f.db.Stats().OpenConnections; open != 1 {
			t.Fatalf("database/sql has %d connections open, want the 1 allowed", open)
		}
	})

	t.Run("handed to a waiter", func(t *testing.T) {
		before := f.db.Stats().WaitCount
		holder, err := f.db.Conn(bg)
		if err != nil {
			t.Fatal(err)
		}
		first := f.tenants[0]
		if got, err := f.where(first.ctx(bg), holder); err != nil {
			t.Fatal(err)
		} else {
			f.check(first, got)
		}
		var wg sync.WaitGroup
		for _, ti := range f.tenants[1:] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := f.where(ti.ctx(bg), f.db)
				if err != nil {
					t.Error(err)
					return
				}
				f.check(ti, got)
			}()
		}
		eventually(t, 5*time.Second, "callers queued behind the held connection", func() bool {
			return f.db.Stats().WaitCount >= before+int64(len(f.tenants)-1)
		})
		holder.Close()
		wg.Wait()
	})
}

// recordingConnector wraps the tenantsql connector to see which contexts
// database/sql calls Connect with: the background opener's has no tenant.
type recordingConnector struct {
	*driver.Connector
	withoutTenant atomic.Int64
}

func (r *recordingConnector) Connect(ctx context.Context) (sqldriver.Conn, error) {
	if _, ok := tenantctx.TenantFrom(ctx); !ok {
		r.withoutTenant.Add(1)
	}
	return r.Connector.Connect(ctx)
}

// When database/sql discards a connection while callers wait, its
// background opener makes a new one with a context that names no tenant,
// and gives it to a random waiter without ResetSession. Backends are
// killed under a queue of waiters to force exactly that; every query that
// succeeds must have run on its own tenant.
func TestBackgroundOpener(t *testing.T) {
	f := newFixture(t, "opener", 8)
	rc := &recordingConnector{Connector: f.conn}
	db := sql.OpenDB(rc)
	defer db.Close()
	db.SetMaxOpenConns(2)
	bg := context.Background()

	// The test ends on a count of the opener's connections, not on time:
	// the deadline only catches a hang.
	limit := hangAfter(t)
	ctx, cancel := context.WithTimeout(bg, limit)
	defer cancel()
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for g := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && rc.withoutTenant.Load() < 20 || i < 20; i++ {
				ti := f.tenants[(g+i)%len(f.tenants)]
				var a answer
				// pg_sleep keeps connections busy so callers queue up.
				err := db.QueryRowContext(ti.ctx(ctx), "SELECT current_database(), current_setting('application_name') FROM pg_sleep(0.002)").Scan(&a.DB, &a.App)
				if err != nil {
					failed.Add(1) // killed under us: expected, never a wrong answer
					continue
				}
				ok.Add(1)
				f.check(ti, a)
			}
		}()
	}
	for ctx.Err() == nil && rc.withoutTenant.Load() < 20 {
		f.killSessions("")
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	if n := rc.withoutTenant.Load(); n < 20 {
		t.Fatalf("the background opener made %d connections in %v (the deadline that catches a hang), want at least 20 to have tested its path", n, limit)
	}
	t.Logf("opener connections: %d; queries answered: %d, failed by killed backends: %d", rc.withoutTenant.Load(), ok.Load(), failed.Load())
	if ok.Load() == 0 {
		t.Fatal("no query succeeded")
	}
}

// A DB-level *sql.Stmt keeps one driver statement per pooled connection and
// reuses it for any later caller. Prepared under A and run under B and C on
// the only connection, it must run on B and C.
func TestDBStmtAcrossTenants(t *testing.T) {
	f := newFixture(t, "dbstmt", 3)
	f.db.SetMaxOpenConns(1)
	bg := context.Background()
	a, b, c := f.tenants[0], f.tenants[1], f.tenants[2]
	stmt, err := f.db.PrepareContext(a.ctx(bg), whereAmI)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range []tenantInfo{b, c, a, c, b} {
		var got answer
		if err := stmt.QueryRowContext(ti.ctx(bg)).Scan(&got.DB, &got.App); err != nil {
			t.Fatal(err)
		}
		f.check(ti, got)
	}
	if _, err := stmt.ExecContext(bg); !errors.Is(err, driver.ErrNoTenant) {
		t.Errorf("stmt without tenant: err = %v, want ErrNoTenant", err)
	}

	t.Run("close while the connection is in use", func(t *testing.T) {
		s2, err := f.db.PrepareContext(b.ctx(bg), whereAmI)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s2.QueryContext(b.ctx(bg))
		if err != nil {
			t.Fatal(err)
		}
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
		seen := 0
		for rows.Next() {
			var got answer
			if err := rows.Scan(&got.DB, &got.App); err != nil {
				t.Fatal(err)
			}
			f.check(b, got)
			seen++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if seen != 1 {
			t.Errorf("the statement's rows: %d, want 1", seen)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := f.where(c.ctx(bg), f.db)
		if err != nil {
			t.Fatal(err)
		}
		f.check(c, got)
	})

	t.Run("bad SQL fails at prepare", func(t *testing.T) {
		_, err := f.db.PrepareContext(a.ctx(bg), "SELEC nothing")
		mustContain(t, err, "syntax error")
	})
}

// Tx.StmtContext reuses the parent statement's driver statement when the
// transaction holds the same pooled connection.
func TestTxStmtContext(t *testing.T) {
	f := newFixture(t, "txstmt", 3)
	f.db.SetMaxOpenConns(1)
	bg := context.Background()
	a, b := f.tenants[0], f.tenants[1]
	stmt, err := f.db.PrepareContext(a.ctx(bg), whereAmI)
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	tx, err := f.db.BeginTx(b.ctx(bg), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var got answer
	if err := tx.StmtContext(b.ctx(bg), stmt).QueryRowContext(b.ctx(bg)).Scan(&got.DB, &got.App); err != nil {
		t.Fatal(err)
	}
	f.check(b, got)
	err = tx.StmtContext(a.ctx(bg), stmt).QueryRowContext(a.ctx(bg)).Scan(&got.DB, &got.App)
	if !errors.Is(err, driver.ErrTenantMismatch) {
		t.Fatalf("tx of %s running a stmt with %s's context: err = %v, want ErrTenantMismatch", b.ID, a.ID, err)
	}
}
