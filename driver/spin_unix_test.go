//go:build unix

package driver_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
)

// processCPU is the CPU time this process has used, as the kernel counts it.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A caller waiting at its tenant's cap, with WithEvictionDelay(0) and a
// cold idle connection of another tenant in the budget, must sleep until a
// connection or slot comes, not re-arm its timer at zero and spin: it used
// a whole core for as long as it waited.
func TestWaiterAtTenantCapDoesNotSpin(t *testing.T) {
	f := newFixture(t, "spin", 2, driver.WithMaxConns(10), driver.WithMaxConnsPerTenant(1), driver.WithEvictionDelay(0))
	a, b := f.tenants[0], f.tenants[1]
	if _, err := f.where(b.ctx(f.ctx), f.db); err != nil { // B's connection goes idle...
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)        // ... and turns cold
	tx, err := f.db.BeginTx(a.ctx(f.ctx), nil) // A's only connection
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()

	const wait = 1500 * time.Millisecond
	ctx, cancel := context.WithTimeout(a.ctx(f.ctx), wait)
	defer cancel()
	before := processCPU(t)
	_, err = f.db.ExecContext(ctx, "SELECT 1") // waits at A's cap
	cpu := processCPU(t) - before
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exec at the tenant's cap = %v, want context.DeadlineExceeded", err)
	}
	// A spinning waiter burns close to a core (1.5 s here; more than
	// 0.4 s even on a loaded machine); a sleeping one a few milliseconds.
	if cpu > wait/4 {
		t.Errorf("the process used %v of CPU while one caller waited %v", cpu, wait)
	}
	// A cannot use a slot at its cap, so B's connection stays.
	if n := f.serverSessionsOf(b); n != 1 {
		t.Errorf("tenant B has %d sessions on the server, want its 1 idle one", n)
	}
}
