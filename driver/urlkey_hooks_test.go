package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/store"
)

// openWithHooks opens a *sql.DB on m's store with registry reg and opts.
func (m *multiDB) openWithHooks(reg *hooks.Registry, opts ...driver.Option) *sql.DB {
	m.t.Helper()
	c, err := driver.NewConnector(m.store, append([]driver.Option{driver.WithHooks(reg)}, opts...)...)
	if err != nil {
		m.t.Fatal(err)
	}
	return sqlOpenDB(m.t, c)
}

// hookResult is what a hook's query through the other *sql.DB got.
type hookResult struct {
	db  string
	err error
}

// With a registry per *sql.DB, a hook of the default one querying the
// tenant through the analytics one is a query like any other there: its
// hooks (the analytics registry's) do not wait for this hook, so it waits
// for them, and fails with ErrTenantNotReady when its context ends first.
func TestHookWaitsForOtherRegistrysGate(t *testing.T) {
	m := newMultiStore(t)
	defReg, anReg := hooks.New(quietLog), hooks.New(quietLog)
	m.def = m.openWithHooks(defReg)
	m.an = m.openWithHooks(anReg, driver.WithURLKey(analyticsKey))

	// The analytics create hook holds the tenant not ready there until
	// the default one's hook has made its query.
	queried := make(chan struct{})
	anReg.Subscribe(hooks.PostCreate, func(ctx context.Context, ev hooks.Event) error {
		select {
		case <-queried:
			return nil
		case <-time.After(hangGuard):
			return errors.New("the default *sql.DB's hook never made its query")
		}
	})
	got := make(chan hookResult, 1)
	defReg.Subscribe(hooks.PostCreate, func(ctx context.Context, ev hooks.Event) error {
		defer close(queried)
		// The deadline is what it waits for: the analytics hooks are held
		// until this query has returned.
		qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		var r hookResult
		r.err = m.an.QueryRowContext(qctx, "SELECT current_database()").Scan(&r.db)
		got <- r
		return nil
	})

	id := m.id(0)
	m.put(id, map[string]string{
		store.KeyPostgresURL: m.url(id, store.KeyPostgresURL, m.databases[0]),
		analyticsKey:         m.url(id, analyticsKey, m.databases[1]),
	})
	var r hookResult
	select {
	case r = <-got:
	case <-time.After(hangGuard):
		t.Fatal("the default *sql.DB's create hook did not run")
	}
	if !errors.Is(r.err, driver.ErrTenantNotReady) || !errors.Is(r.err, context.DeadlineExceeded) {
		t.Errorf("hook's query through the analytics *sql.DB (another registry) before its hooks returned: database %q, err %v; want ErrTenantNotReady (deadline exceeded)", r.db, r.err)
	}
	// Once its own hooks have returned, the analytics *sql.DB serves.
	ctx, cancel := context.WithTimeout(tenantCtx(id), hangGuard)
	defer cancel()
	var db string
	if err := m.an.QueryRowContext(ctx, "SELECT current_database()").Scan(&db); err != nil || db != m.databases[1] {
		t.Errorf("analytics query after its hooks: %q, %v; want %q", db, err, m.databases[1])
	}
}

// With one registry for both, a hook's query through the other *sql.DB
// does not wait for a gate its hooks may be waiting on, but a gate that
// has failed stays shut for it too: the tenant is not ready there, and
// the hook must not reach a database whose set-up failed.
func TestHookDoesNotBypassFailedGate(t *testing.T) {
	m := newMultiStore(t)
	reg := hooks.New(quietLog)
	m.def = m.openWithHooks(reg)
	m.an = m.openWithHooks(reg, driver.WithURLKey(analyticsKey))

	// Creates with ANALYTICS_URL fail: only the analytics *sql.DB runs
	// one here, when the tenant gains the key by an update.
	errSetup := errors.New("analytics set-up failed")
	reg.Subscribe(hooks.PostCreate, func(ctx context.Context, ev hooks.Event) error {
		if ev.Tenant.DeployInfo[analyticsKey] != "" {
			return errSetup
		}
		return nil
	})
	// The update hooks run on the default *sql.DB only (for the
	// analytics one that update is a create).
	got := make(chan hookResult, 1)
	reg.Subscribe(hooks.PostUpdate, func(ctx context.Context, ev hooks.Event) error {
		wctx, cancel := context.WithTimeout(tenantCtx(ev.Tenant.ID), hangGuard)
		defer cancel()
		// A query that is no hook's waits for the analytics gate: once
		// it has failed, that gate is failed.
		if _, err := m.an.ExecContext(wctx, "SELECT 1"); !errors.Is(err, driver.ErrTenantNotReady) {
			got <- hookResult{err: errors.New("the analytics create hooks did not fail: " + errString(err))}
			return nil
		}
		qctx, cancel := context.WithTimeout(ctx, hangGuard)
		defer cancel()
		var r hookResult
		r.err = m.an.QueryRowContext(qctx, "SELECT current_database()").Scan(&r.db)
		got <- r
		return nil
	})

	id := m.id(0)
	m.put(id, map[string]string{store.KeyPostgresURL: m.url(id, store.KeyPostgresURL, m.databases[0])})
	m.put(id, map[string]string{
		store.KeyPostgresURL: m.url(id, store.KeyPostgresURL, m.databases[0]),
		analyticsKey:         m.url(id, analyticsKey, m.databases[1]),
	})
	var r hookResult
	select {
	case r = <-got:
	case <-time.After(hangGuard):
		t.Fatal("the default *sql.DB's update hook did not run")
	}
	if !errors.Is(r.err, driver.ErrTenantNotReady) || !errors.Is(r.err, errSetup) {
		t.Errorf("hook's query through the analytics *sql.DB whose create hooks failed: database %q, err %v; want ErrTenantNotReady with the hook's error", r.db, r.err)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
