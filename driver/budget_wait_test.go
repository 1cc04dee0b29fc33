package driver

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A waiter at its tenant's cap can use no slot: the budget's rules for it,
// driven with fake sessions. Nothing here measures time or CPU: the tests
// wait (with a deadline that only catches a hang) for the event a rule is
// about, a timer re-check or a grant, and then look at the bookkeeping.

// benchResult waits for an asynchronous checkout's result, failing with
// what was expected instead of hanging.
func (bn *bench) result(what string, r <-chan result) result {
	bn.t.Helper()
	select {
	case got := <-r:
		return got
	case <-time.After(30 * time.Second):
		bn.t.Fatalf("timed out after 30s waiting for %s (a hang, or a grant that never came)", what)
		return result{}
	}
}

// dormant makes an idle connection look unused for longer than
// dormantAfter, so a waiter below its cap could take its slot.
func (bn *bench) makeDormant(pc *physConn) {
	bn.b.mu.Lock()
	defer bn.b.mu.Unlock()
	pc.idleAt = pc.idleAt.Add(-dormantAfter - coldAfter)
}

// atCap sets up a full budget (2 slots, 1 per tenant): a's only connection
// in use, b's only connection idle and dormant, and a second caller of a
// queued at a's cap with WithEvictionDelay(0), so its timer fires at once.
// It returns a's connection, b's and the queued caller's result.
func atCap(t *testing.T, ctx context.Context) (bn *bench, a1, b1 *physConn, r <-chan result) {
	bn = newBench(t, 2, 1, WithEvictionDelay(0))
	a1 = bn.acquire("a")
	b1 = bn.acquire("b")
	bn.release(b1)
	bn.makeDormant(b1)
	r = bn.acquireAsync(ctx, "a")
	// Queued, or queued already and re-checked (its timer fires at once).
	bn.waitFor("a's second caller to queue at a's cap", func() bool { return bn.waiters() == 1 || bn.b.rechecks > 0 })
	return bn, a1, b1, r
}

// A waiter at its tenant's cap whose timer fires takes no slot, not even
// that of another tenant's dormant connection: it could not use it.
func TestWaiterAtTenantCapTakesNoSlot(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bn, a1, b1, r := atCap(t, ctx)
	bn.waitFor("the waiter's timer to fire", func() bool { return bn.b.rechecks >= 1 })
	bn.b.mu.Lock()
	evictions, state, aOpen, queued := bn.b.stats.evictions, b1.state, bn.ts["a"].pool.open, bn.b.waiters.n
	bn.b.mu.Unlock()
	if evictions != 0 || state != stateIdle {
		t.Fatalf("a's waiter, at a's cap of 1, evicted b's dormant connection (evictions %d, b's connection in state %d): a waiter at its cap took a slot", evictions, state)
	}
	if aOpen != 1 || queued != 1 {
		t.Fatalf("after the waiter's re-check: a has %d connections (cap 1), %d waiting; want 1 and the waiter still queued", aOpen, queued)
	}
	bn.check()
	cancel()
	if got := bn.result("the waiter to give up", r); !errors.Is(got.err, context.Canceled) {
		t.Fatalf("the cancelled waiter: %v, %v; want context.Canceled", got.pc, got.err)
	}
	bn.release(a1)
	bn.check()
}

// A waiter at its tenant's cap is not woken again and again: at its re-check
// it re-arms its timer at coldAfter (a slow safety net; a release or freed
// slot reaches it through its channel), even with WithEvictionDelay(0) and
// a dormant connection in the budget. Re-arming at minRecheck made it spin
// on the budget's lock for as long as it waited.
func TestBudgetWaiterAtCapSleeps(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bn, a1, _, r := atCap(t, ctx)
	bn.waitFor("the waiter's first re-check", func() bool { return bn.b.rechecks >= 1 })
	bn.b.mu.Lock()
	next := bn.b.lastRecheck
	bn.b.mu.Unlock()
	if next != coldAfter {
		t.Errorf("a waiter at its tenant's cap re-armed its timer at %v, want coldAfter (%v): it wakes repeatedly", next, coldAfter)
	}
	cancel()
	if got := bn.result("the waiter to give up", r); !errors.Is(got.err, context.Canceled) {
		t.Fatalf("the cancelled waiter: %v, %v; want context.Canceled", got.pc, got.err)
	}
	bn.release(a1)
}

// A freed slot goes to the oldest waiter that can use it: one whose tenant
// is below its cap, not an older one at its cap.
func TestBudgetFreedSlotSkipsWaiterAtCap(t *testing.T) {
	bn := newBench(t, 2, 1)
	a1 := bn.acquire("a")
	b1 := bn.acquire("b")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ra := bn.acquireAsync(ctx, "a") // at a's cap: queued first
	bn.waitFor("a's second caller to queue", func() bool { return bn.waiters() == 1 })
	rc := bn.acquireAsync(ctx, "c") // bare, nothing idle: queued second
	bn.waitFor("c's caller to queue", func() bool { return bn.waiters() == 2 })

	// b's session dies: its slot frees once the server has seen it end.
	b1.sess.(*fakeSession).dead = true
	bn.release(b1)
	bn.waitFor("the freed slot to be granted to a waiter", func() bool { return bn.waiters() == 1 })
	bn.b.mu.Lock()
	aWaiting, cWaiting, aOpen := bn.ts["a"].pool.waiters.n, bn.ts["c"].pool.waiters.n, bn.ts["a"].pool.open
	bn.b.mu.Unlock()
	if aWaiting != 1 || cWaiting != 0 || aOpen != 1 {
		t.Fatalf("after a slot freed: a has %d connections (cap 1) and %d waiting, c %d waiting; want the slot given to c, below its cap, and a's waiter still queued", aOpen, aWaiting, cWaiting)
	}
	gc := bn.result("c's caller to get the freed slot", rc)
	if gc.err != nil || gc.pc.pool.t.name != "c" {
		t.Fatalf("c's caller: %v, %v; want a connection of c", gc.pc, gc.err)
	}
	bn.check()
	bn.release(gc.pc)
	bn.release(a1) // handed to a's waiter
	ga := bn.result("a's waiter to get a's released connection", ra)
	if ga.err != nil || ga.pc != a1 {
		t.Fatalf("a's waiter: %v, %v; want a's released connection", ga.pc, ga.err)
	}
	bn.release(ga.pc)
}
