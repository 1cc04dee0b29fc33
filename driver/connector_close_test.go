package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jackc/pgx/v5"
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

// Closing the DB returns only once everything the connector started has
// ended: dials in flight (among them dials whose callers gave up),
// sessions being closed in the background, hand-overs of a slot from one
// tenant to another. At the moment Close returns no goroutine of the
// driver is left, so none can open or keep a session afterwards; and the
// server is left with none of the tenants' sessions.
func TestCloseWaitsForWhatItStarted(t *testing.T) {
	before := driverGoroutines() // other tests', if any are left
	const (
		budget  = 3
		loaded  = 6 // tenants under load
		stalled = 2 // tenants whose dial is in flight when the DB closes
	)
	// A dial for a caller whose context carries giveUp cancels that
	// caller, which returns at once and leaves the dial running, and goes
	// on only when the test closes the DB: a server session is set up
	// while Close runs.
	type giveUp struct{}
	closing := make(chan struct{})
	var closeOnce sync.Once
	startClosing := func() { closeOnce.Do(func() { close(closing) }) }
	beforeConnect := func(ctx context.Context, _ string, _ *pgx.ConnConfig) error {
		cancel, ok := ctx.Value(giveUp{}).(context.CancelFunc)
		if !ok {
			return nil
		}
		cancel()
		select {
		case <-closing:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f := newFixture(t, "closewait", loaded+stalled,
		driver.WithMaxConns(budget), driver.WithEvictionDelay(0), driver.WithBeforeConnect(beforeConnect))
	t.Cleanup(startClosing) // before the fixture closes the DB, if the test stops early
	bg := context.Background()

	// Callers that give up while their dial is in flight: the dials keep
	// two of the three slots until the DB closes.
	for _, ti := range f.tenants[loaded:] {
		ctx, cancel := context.WithCancel(ti.ctx(bg))
		_, err := f.db.ExecContext(context.WithValue(ctx, giveUp{}, cancel), "SELECT 1")
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("tenant %s, whose caller was cancelled during the dial: %v, want context.Canceled", ti.ID, err)
		}
	}

	// Six tenants share the last slot: each switch evicts the idle
	// connection of another tenant and hands its slot over. Some callers
	// give up after a millisecond or so, while waiting for a hand-over,
	// during a dial or in their query.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 24 {
				ti := f.tenants[(g+i)%loaded]
				ctx, cancel := ti.ctx(bg), context.CancelFunc(func() {})
				if i%3 == 0 {
					ctx, cancel = context.WithTimeout(ctx, time.Duration(1+i%4)*time.Millisecond)
				}
				got, err := f.where(ctx, f.db)
				switch {
				case err != nil && ctx.Err() == nil:
					t.Errorf("tenant %s: %v", ti.ID, err)
				case err == nil:
					f.check(ti, got)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	var evictions int64
	for _, ss := range f.conn.Stats().Servers {
		evictions += ss.Evictions
	}
	if evictions == 0 {
		t.Fatal("the load evicted no connection: the test would not cover hand-overs")
	}

	startClosing()
	start := time.Now()
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	// At once, not polled: a goroutine still running now may open or keep
	// a session after the caller was told the DB is closed.
	for id, stack := range driverGoroutines() {
		if _, ok := before[id]; !ok {
			t.Errorf("a goroutine of the driver is still running after Close returned:\n%s", stack)
		}
	}
	t.Logf("%d evictions; Close took %v", evictions, took)
	// The server may list a terminated backend for a moment more.
	eventually(t, 30*time.Second, "the server to have none of the tenants' sessions", func() bool {
		return f.serverSessions() == 0
	})
}

// driverGoroutines returns, by goroutine id, the stacks of the goroutines
// with a frame of package driver: running its code or blocked in it. A
// goroutine that has returned from the driver's function and is only
// exiting (its WaitGroup told already) still names the driver in its
// "created by" line; it can do nothing more, so that line does not count.
func driverGoroutines() map[string]string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	found := make(map[string]string)
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		for line := range strings.SplitSeq(g, "\n") {
			// driver_test's frames do not match: "driver_test." is not "driver.".
			if strings.HasPrefix(line, "github.com/tenantsql/tenantsql/driver.") {
				id, _, _ := strings.Cut(strings.TrimPrefix(g, "goroutine "), " ")
				found[id] = g
				break
			}
		}
	}
	return found
}
