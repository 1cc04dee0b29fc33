package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/store"
)

// unsyncedStore answers but never delivers its first snapshot, as a Redis
// store still catching up would.
type unsyncedStore struct{ *store.Memory }

func (s unsyncedStore) Watch(ctx context.Context) (<-chan store.Event, error) {
	ch := make(chan store.Event)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

// Closing the DB ends the calls waiting for the store's first snapshot,
// which will never come: with context.Background they waited for ever.
//
// The test runs in a synctest bubble (no network, no database: the store
// is in memory and never ready), so "every call is waiting" and "every call
// has returned" are facts synctest.Wait establishes, not guesses a sleep
// makes on a machine of a given speed.
func TestCloseWakesCallsWaitingForTheStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := driver.NewConnector(unsyncedStore{store.NewMemory()}, driver.WithHooks(nil))
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(c)
		calls := map[string]func() error{
			"Exec":               func() error { _, err := db.ExecContext(tenantCtx("t1.test"), "SELECT 1"); return err },
			"Ping with a tenant": func() error { return db.PingContext(tenantCtx("t1.test")) },
			"Ping without one":   func() error { return db.PingContext(context.Background()) },
		}
		done := make(map[string]chan error)
		for name, call := range calls {
			ch := make(chan error, 1)
			done[name] = ch
			go func() { ch <- call() }()
		}
		// Every goroutine of the bubble, the three calls included, is
		// blocked and only another one of them could wake it: the calls
		// are waiting, and nothing but Close is left to end their wait.
		synctest.Wait()
		for name, ch := range done {
			select {
			case err := <-ch:
				t.Fatalf("%s returned before Close: %v", name, err)
			default:
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		// Everything Close set off has run its course: a call not done now
		// never will be.
		synctest.Wait()
		for name, ch := range done {
			select {
			case err := <-ch:
				if !errors.Is(err, driver.ErrClosed) {
					t.Errorf("%s after Close = %v, want ErrClosed", name, err)
				}
			default:
				t.Errorf("%s still blocked after db.Close, with nothing left that could wake it", name)
			}
		}
	})
}
