//go:build unix

package driver_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
)

// A caller waiting at its tenant's cap, with WithEvictionDelay(0) and a
// cold idle connection of another tenant in the budget, must sleep until a
// connection or slot comes, not re-arm its timer at zero and spin: it used
// a whole core for as long as it waited.
//
// What is measured is the waiting caller itself, not the process: the
// caller's goroutine is locked to its OS thread for the wait, so the
// kernel's count of that thread's CPU time and of the times it went to
// sleep and was woken is the waiter's own. A loaded machine does not make a
// sleeping thread use more CPU or wake more often; other goroutines, the
// garbage collector and the race detector's own work run on other threads.
func TestWaiterAtTenantCapDoesNotSpin(t *testing.T) {
	f := newFixture(t, "spin", 2, driver.WithMaxConns(10), driver.WithMaxConnsPerTenant(1), driver.WithEvictionDelay(0))
	a, b := f.tenants[0], f.tenants[1]
	if _, err := f.where(b.ctx(f.ctx), f.db); err != nil { // B's connection goes idle...
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)        // ... and turns cold (idle for a second, the driver's rule)
	tx, err := f.db.BeginTx(a.ctx(f.ctx), nil) // A's only connection
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()

	const wait = 1500 * time.Millisecond
	ctx, cancel := context.WithTimeout(a.ctx(f.ctx), wait)
	defer cancel()
	runtime.LockOSThread()
	before, perThread := waiterUsage(t)
	start := time.Now()
	_, err = f.db.ExecContext(ctx, "SELECT 1") // waits at A's cap, on this thread
	waited := time.Since(start)
	after, _ := waiterUsage(t)
	runtime.UnlockOSThread()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exec at the tenant's cap = %v, want context.DeadlineExceeded", err)
	}
	cpu, wakeups := after.cpu-before.cpu, after.wakeups-before.wakeups
	t.Logf("the waiter waited %v; its thread used %v of CPU and was woken %d times (per thread: %v)", waited.Round(time.Millisecond), cpu, wakeups, perThread)
	if perThread {
		// A sleeping waiter wakes when its timer (a 1 s safety net at the
		// cap) fires and when its context ends, and uses microseconds of
		// CPU each time. A waiter re-armed at zero never sleeps: its CPU
		// time is however much of the wait the machine let it run, far
		// more than a tenth even on a loaded machine. One re-checking
		// every few milliseconds sleeps hundreds of times.
		if cpu > waited/10 {
			t.Errorf("the waiting caller's thread was on a CPU for %v of the %v it waited: it spins", cpu, waited)
		}
		if wakeups > 50 {
			t.Errorf("the waiting caller's thread was woken %d times in %v: it re-checks instead of sleeping", wakeups, waited)
		}
	} else if cpu > waited/2 {
		// Without per-thread counts (not Linux), the whole process's CPU
		// time, with a bound loose enough for the rest of the process
		// and a loaded machine: a spinning waiter alone takes close to
		// all of the wait.
		t.Errorf("the process used %v of CPU while one caller waited %v: the waiter spins", cpu, waited)
	}
	// A cannot use a slot at its cap, so B's connection stays.
	if n := f.serverSessionsOf(b); n != 1 {
		t.Errorf("tenant B has %d sessions on the server, want its 1 idle one", n)
	}
}

// usage is what the kernel counted for a thread (or a process): CPU time,
// and voluntary context switches, which for a thread running one locked
// goroutine are the times it blocked and was woken again.
type usage struct {
	cpu     time.Duration
	wakeups int64
}
