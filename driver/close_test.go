package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

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
func TestCloseWakesCallsWaitingForTheStore(t *testing.T) {
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
	time.Sleep(100 * time.Millisecond) // all of them waiting
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
	deadline := time.After(5 * time.Second)
	for name, ch := range done {
		select {
		case err := <-ch:
			if !errors.Is(err, driver.ErrClosed) {
				t.Errorf("%s after Close = %v, want ErrClosed", name, err)
			}
		case <-deadline:
			t.Errorf("%s still blocked 5s after db.Close", name)
		}
	}
}
