package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/store"
)

// Two *sql.DB on two keys of one server, the analytics one drawing on the
// default one's budget (WithBudgetsOf): the server never sees more
// sessions of theirs than that one budget, and each gets its turn.
func TestWithBudgetsOfSharesTheServerBudget(t *testing.T) {
	m := newMultiStore(t)
	owner, err := driver.NewConnector(m.store, driver.WithHooks(nil), driver.WithMaxConns(2))
	if err != nil {
		t.Fatal(err)
	}
	m.def = sqlOpenDB(t, owner)
	borrower, err := driver.NewConnector(m.store, driver.WithHooks(nil), driver.WithURLKey(analyticsKey), driver.WithBudgetsOf(owner), driver.WithMaxConns(50))
	if err != nil {
		t.Fatal(err)
	}
	m.an = sql.OpenDB(borrower)
	defer m.an.Close()

	id := m.id(0)
	m.put(id, map[string]string{
		store.KeyPostgresURL: m.url(id, store.KeyPostgresURL, m.databases[0]),
		analyticsKey:         m.url(id, analyticsKey, m.databases[1]),
	})
	apps := []string{m.app(id, store.KeyPostgresURL), m.app(id, analyticsKey)}
	sessions := func() int { return m.sessions(apps[0]) + m.sessions(apps[1]) }

	// The default *sql.DB holds the whole budget, two sessions in use.
	var txs []*sql.Tx
	for range 2 {
		tx, err := m.def.BeginTx(tenantCtx(id), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(tenantCtx(id), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	// The analytics *sql.DB, whose own WithMaxConns(50) does not apply,
	// gets no session until one is given back.
	ctx, cancel := context.WithTimeout(tenantCtx(id), 300*time.Millisecond)
	_, err = m.an.ExecContext(ctx, "SELECT 1")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("analytics query while the shared budget is in use: %v, want it to wait (context.DeadlineExceeded)", err)
	}
	if n := sessions(); n != 2 {
		t.Errorf("the server sees %d sessions of the two *sql.DB, want the budget's 2", n)
	}
	if err := txs[0].Rollback(); err != nil {
		t.Fatal(err)
	}
	// Now it takes the idle session's slot.
	got, _, _, err := where(m.an, id)
	if err != nil || got != m.databases[1] {
		t.Fatalf("analytics query after a session was given back: %q, %v; want %q", got, err, m.databases[1])
	}
	if n := sessions(); n > 2 {
		t.Errorf("the server sees %d sessions of the two *sql.DB, want at most the budget's 2", n)
	}
	// Both report the owner's servers, the two's sessions together; only
	// the borrower says they are borrowed, so a sum counts them once.
	ost, bst := owner.Stats(), borrower.Stats()
	if ost.BorrowedBudgets || !bst.BorrowedBudgets {
		t.Errorf("BorrowedBudgets: owner %v, borrower %v; want false, true", ost.BorrowedBudgets, bst.BorrowedBudgets)
	}
	if ost.Open != bst.Open || ost.Open != sessions() {
		t.Errorf("open sessions: owner's Stats %d, borrower's %d, the server %d; want all equal", ost.Open, bst.Open, sessions())
	}

	// Closing the analytics *sql.DB closes its sessions and leaves the
	// budget, and the default *sql.DB, working.
	if err := m.an.Close(); err != nil {
		t.Fatal(err)
	}
	if n := m.sessions(apps[1]); n != 0 {
		t.Errorf("%d analytics sessions after its *sql.DB was closed, want 0", n)
	}
	if err := txs[1].Rollback(); err != nil {
		t.Fatal(err)
	}
	if got, _, _, err := where(m.def, id); err != nil || got != m.databases[0] {
		t.Errorf("default query after the analytics *sql.DB was closed: %q, %v; want %q", got, err, m.databases[0])
	}
}

// Once the owner is closed, so are the budgets: the borrower's queries
// fail closed, for tenants it had and tenants it gets afterwards, and a
// new borrower is refused. (The URLs name a port nothing listens on: no
// query may get as far as dialling.)
func TestWithBudgetsOfClosedOwner(t *testing.T) {
	s := store.NewMemory()
	nowhere := "postgres://u:pw@127.0.0.1:1/x"
	if _, err := s.Create(context.Background(), store.Tenant{ID: "before.test", DeployInfo: map[string]string{store.KeyPostgresURL: nowhere}}); err != nil {
		t.Fatal(err)
	}
	owner, err := driver.NewConnector(s, driver.WithHooks(nil))
	if err != nil {
		t.Fatal(err)
	}
	borrower, err := driver.NewConnector(s, driver.WithHooks(nil), driver.WithBudgetsOf(owner))
	if err != nil {
		t.Fatal(err)
	}
	db := sqlOpenDB(t, borrower)
	if err := db.PingContext(context.Background()); err != nil { // the tenants are loaded
		t.Fatal(err)
	}
	owner.Close()
	if _, err := s.Create(context.Background(), store.Tenant{ID: "after.test", DeployInfo: map[string]string{store.KeyPostgresURL: nowhere}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"before.test", "after.test"} {
		if _, err := db.ExecContext(tenantCtx(id), "SELECT 1"); !errors.Is(err, driver.ErrClosed) {
			t.Errorf("%s: query through the borrower of a closed connector: %v, want ErrClosed", id, err)
		}
	}
	if _, err := driver.NewConnector(s, driver.WithBudgetsOf(owner)); !errors.Is(err, driver.ErrClosed) {
		t.Errorf("WithBudgetsOf a closed connector: %v, want ErrClosed", err)
	}
}

// newBorrower opens the default *sql.DB (the owner) and an analytics one
// drawing on its budgets (the borrower), with tenant id on a database of
// each, and warms the borrower's pool for id.
func newBorrower(t *testing.T) (m *multiDB, borrower *driver.Connector, id string) {
	t.Helper()
	m = newMultiStore(t)
	owner, err := driver.NewConnector(m.store, driver.WithHooks(nil))
	if err != nil {
		t.Fatal(err)
	}
	m.def = sqlOpenDB(t, owner)
	borrower, err = driver.NewConnector(m.store, driver.WithHooks(nil), driver.WithURLKey(analyticsKey), driver.WithBudgetsOf(owner))
	if err != nil {
		t.Fatal(err)
	}
	m.an = sqlOpenDB(t, borrower)
	id = m.id(0)
	m.put(id, map[string]string{
		store.KeyPostgresURL: m.url(id, store.KeyPostgresURL, m.databases[0]),
		analyticsKey:         m.url(id, analyticsKey, m.databases[1]),
	})
	if got, _, _, err := where(m.an, id); err != nil || got != m.databases[1] {
		t.Fatalf("analytics query: %q, %v; want %q", got, err, m.databases[1])
	}
	return m, borrower, id
}

// hangGuard is how long a query that must end at once may take before the
// test calls it a hang. It catches hangs only; nothing is timed.
const hangGuard = 20 * time.Second

// A borrower's Close retires its pools, in a budget that stays open for
// the owner: a checkout through it afterwards (a *sql.Conn taken before
// the Close) must fail with ErrClosed, not look the tenant up again and
// again (its pool is retired for good), and the owner keeps serving.
func TestWithBudgetsOfBorrowerClosed(t *testing.T) {
	m, borrower, id := newBorrower(t)
	conn, err := m.an.Conn(context.Background()) // unbound: binds on its first query
	if err != nil {
		t.Fatal(err)
	}
	if err := borrower.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := conn.ExecContext(tenantCtx(id), "SELECT 1")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, driver.ErrClosed) {
			t.Errorf("query through the closed borrower: %v, want ErrClosed", err)
		}
		conn.Close() // not on a hang: it would wait for the query
	case <-time.After(hangGuard):
		t.Fatalf("query through the closed borrower has not returned after %v", hangGuard)
	}
	if got, _, _, err := where(m.def, id); err != nil || got != m.databases[0] {
		t.Errorf("default query after the borrower was closed: %q, %v; want %q", got, err, m.databases[0])
	}
}

// Queries racing the borrower's Close each end with the server's answer
// or ErrClosed, whichever side of the Close they fall on; none hangs, and
// the owner keeps serving.
func TestWithBudgetsOfBorrowerCloseRace(t *testing.T) {
	m, borrower, id := newBorrower(t)
	const workers, queries = 8, 20
	errs := make(chan error, workers*queries)
	var started, finished sync.WaitGroup
	started.Add(workers)
	for range workers {
		finished.Go(func() {
			started.Done()
			for range queries {
				var db string
				err := m.an.QueryRowContext(tenantCtx(id), "SELECT current_database()").Scan(&db)
				switch {
				case err == nil && db != m.databases[1]:
					errs <- fmt.Errorf("analytics query ran on %q, want %q", db, m.databases[1])
				case err != nil && !errors.Is(err, driver.ErrClosed):
					errs <- fmt.Errorf("analytics query racing the borrower's Close: %w, want an answer or ErrClosed", err)
				}
			}
		})
	}
	started.Wait()
	if err := borrower.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { finished.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(hangGuard):
		t.Fatalf("queries racing the borrower's Close have not returned after %v", hangGuard)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// After the Close, every query fails closed.
	if _, err := m.an.ExecContext(tenantCtx(id), "SELECT 1"); !errors.Is(err, driver.ErrClosed) {
		t.Errorf("analytics query after the borrower's Close: %v, want ErrClosed", err)
	}
	if got, _, _, err := where(m.def, id); err != nil || got != m.databases[0] {
		t.Errorf("default query after the borrower was closed: %q, %v; want %q", got, err, m.databases[0])
	}
}
