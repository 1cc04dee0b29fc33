package driver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/tenantsql/tenantsql/store"
)

// The fleet budget (WithFleetBudget): the processes that share a tenant
// store share each server's budget. Each budget leases its slots from the
// store (store.Leaser) and may open no more sessions than it leased; an
// agent goroutine per budget renews the lease, grows it when callers wait,
// and shrinks it when sessions sit unused or another process wants its
// fair share. The two orders that keep the processes together within the
// budget at every moment, as the server counts:
//
//   - grow: lease first, then dial; a slot is usable only once granted.
//   - shrink: close the sessions first (the server has seen them end),
//     then ask for the smaller lease.
//
// A checkout that finds an idle session of its tenant never talks to the
// store: the agent does, in the background.

// ErrFleetUnsupported: WithFleetBudget was given a tenant store that cannot
// share a budget between processes (one that is not a store.Leaser, such
// as the file store). Use the Redis store.
var ErrFleetUnsupported = errors.New("tenantsql: the tenant store cannot share a budget between processes")

const (
	// DefaultFleetTTL is how long a lease of the fleet budget lasts
	// unless renewed (WithFleetTTL): the time a crashed process's slots
	// take to come back, and how long a process keeps its slots while
	// the store is unreachable. The agent renews every third of it.
	DefaultFleetTTL = 10 * time.Second
	// DefaultFleetFallback is the sessions per server a process may keep
	// once its lease has expired with the store unreachable
	// (WithFleetFallback).
	DefaultFleetFallback = 1
)

// fleetMinRenew spaces the agent's calls to the store when callers wait:
// a wait with the fleet's budget all leased renews at once, not in a loop.
const fleetMinRenew = 50 * time.Millisecond

// fleetWaitRenew is how often the agent renews while callers wait with
// the lease below the budget: slots other processes give back as their
// sessions come back reach the waiting callers in a fraction of a
// second, not a third of the TTL.
const fleetWaitRenew = 250 * time.Millisecond

// fleet is a budget's lease on its server's fleet budget.
type fleet struct {
	b        *budget
	leaser   store.Leaser
	holder   string
	ttl      time.Duration
	fallback int
	log      *slog.Logger
	kick     chan struct{} // buffered: a caller waits with the lease full
	soon     chan struct{} // buffered: a caller waits, but the last renewal got less than it asked

	cancel context.CancelFunc
	done   chan struct{} // closed when the agent has stopped
	// calls tracks the store calls of lease, which may outlive it when
	// abandoned at their deadline: Close waits for them before it gives
	// the lease back, so that none lands after (leasing slots again to a
	// holder gone) and none outlives Close.
	calls sync.WaitGroup

	// guarded by b.mu
	cap       int       // sessions the budget may open: min(leased, what it asked for), or fallback
	leased    int       // the slots the store granted this holder last
	inForce   int       // the fleet budget in force (the least any holder gave)
	fair      int       // this holder's fair share of it
	holders   int       // live holders, this one included
	asked     int       // what the last renewal asked for
	expires   time.Time // the lease's end, on this process's clock; zero: none held
	fellBack  bool      // the lease expired with the store unreachable: cap is fallback
	lastError string
}

// FleetStats describes a server's lease under a fleet budget
// (WithFleetBudget).
type FleetStats struct {
	// Leased is the slots of the server's budget this process holds;
	// Cap, the sessions it may open now: at most Leased, less while it
	// gives slots back, the fallback share when Fallback is set.
	Leased int
	Cap    int
	// Budget is the fleet budget in force: the least that any live
	// process configured.
	Budget int
	// Fair is this process's max-min fair share of Budget given what
	// every process asks for; Holders, how many processes hold leases.
	Fair    int
	Holders int
	// Expires is when the lease ends unless renewed.
	Expires time.Time
	// Fallback reports that the lease expired while the store was
	// unreachable: the process keeps WithFleetFallback sessions until it
	// reaches the store again.
	Fallback bool
	// LastError is the last failed renewal's error, if any since the
	// last success.
	LastError string
}

// newHolder names this budget's lease: unique among the processes that
// share the store, and telling an operator which host and process holds
// it.
func newHolder() string {
	host, _ := os.Hostname()
	var r [4]byte
	rand.Read(r[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(r[:]))
}

// newFleet attaches a fleet lease to b, whose cap is 0 until the first
// grant. The agent is not started (start). The fallback share is at most
// the budget: a server's own budget (WithServerBudget) may be smaller
// than WithFleetFallback.
func newFleet(b *budget, l store.Leaser, ttl time.Duration, fallback int, log *slog.Logger) *fleet {
	fallback = min(fallback, b.max)
	f := &fleet{b: b, leaser: l, holder: newHolder(), ttl: ttl, fallback: fallback, log: log, kick: make(chan struct{}, 1), soon: make(chan struct{}, 1), done: make(chan struct{})}
	b.fleet = f
	return f
}

// start runs the agent until stop: the first lease at once, then a
// renewal every third of the TTL, or sooner when a caller waits.
func (f *fleet) start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go f.run(ctx)
}

func (f *fleet) run(ctx context.Context) {
	defer close(f.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last, due time.Time // the last renewal, and when the timer fires
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-f.kick:
		case <-f.soon:
			// The timer was set with no caller waiting (a third of the
			// TTL away): bring it within fleetWaitRenew of the last
			// renewal.
			if at := last.Add(fleetWaitRenew); at.Before(due) {
				due = at
				timer.Reset(max(time.Until(at), 0))
			}
			continue
		}
		f.renew(ctx)
		last = time.Now()
		select {
		case <-ctx.Done():
			return
		case <-time.After(fleetMinRenew):
		}
		d := f.nextRenewal()
		due = time.Now().Add(d)
		timer.Reset(d)
	}
}

// nextRenewal is when the agent renews unasked: a third of the TTL from
// now, or sooner if the lease would otherwise lapse.
func (f *fleet) nextRenewal() time.Duration {
	b := f.b
	b.mu.Lock()
	defer b.mu.Unlock()
	d := f.ttl / 3
	if b.waiters.n > 0 && f.cap < b.max {
		d = min(d, fleetWaitRenew)
	}
	if !f.expires.IsZero() {
		d = min(d, max(f.expires.Add(-f.margin()).Sub(b.now()), 0))
	}
	return d
}

// margin is how long before its expiry a lease is treated as gone:
// the local expiry already counts from before the call that granted it,
// this covers clocks that run at slightly different rates.
func (f *fleet) margin() time.Duration { return f.ttl / 10 }

// capLocked is how many sessions the budget may open now: f.cap while
// the lease is in force, but no more than the fallback share once it is
// within the margin of its expiry, whether or not the agent has noticed.
// A renewal stuck on a store that does not answer, an agent starved of
// the CPU or a process paused past its lease must not keep dialling up
// to a lease the store has already forgotten and may have granted to
// others.
func (f *fleet) capLocked() int {
	if !f.fellBack && !f.expires.IsZero() && !f.b.now().Before(f.expires.Add(-f.margin())) {
		return min(f.cap, f.fallback)
	}
	return f.cap
}

// stop ends the agent and waits for it; it may be called more than once.
func (f *fleet) stop() {
	if f.cancel != nil {
		f.cancel()
		<-f.done
	}
	f.calls.Wait()
}

// wakeLocked asks the agent for a renewal: a caller has to wait and the
// budget has used what it leased. At once if the last renewal got what it
// asked; otherwise (the store had no more, or the process is at its fair
// share) within fleetWaitRenew of it, since asking again at once would
// get the same answer, every fleetMinRenew for as long as callers wait.
func (f *fleet) wakeLocked() {
	switch {
	case f.cap >= f.b.max:
	case f.cap >= f.asked:
		f.kickLocked()
	default:
		select {
		case f.soon <- struct{}{}:
		default:
		}
	}
}

// kickLocked asks the agent for a renewal as soon as it may (it spaces
// them by fleetMinRenew).
func (f *fleet) kickLocked() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// closedLocked is told that a session has ended and freed its slot: once
// the sessions over a lowered cap have all ended, the agent gives the
// slots back now rather than at its next renewal, for the processes that
// want them.
func (f *fleet) closedLocked() {
	if f.leased > f.cap && f.b.open <= f.cap {
		f.kickLocked()
	}
}

// renew sizes the lease to what the budget needs and asks the store for
// it: in use + waiting + 1 (nothing when idle), and the idle sessions used
// within coldAfter (closing those only to dial again would churn), up to
// the configured budget and down to the fair share when other processes
// want slots.
// Shrinking closes idle sessions and waits for the server to see them end
// before it asks for less.
func (f *fleet) renew(ctx context.Context) {
	b := f.b
	b.mu.Lock()
	if b.closed {
		// Closing: keep the slots of the sessions still ending leased
		// until close has seen them end and stops the agent.
		want := b.open
		b.mu.Unlock()
		l, err := f.lease(ctx, store.LeaseRequest{Server: b.server, Holder: f.holder, Want: want, Budget: b.max, TTL: f.ttl}, f.ttl/3)
		b.mu.Lock()
		if err == nil {
			f.leased, f.expires, f.asked = l.Granted, l.Expires, want
		}
		b.mu.Unlock()
		return
	}
	now := b.now()
	inUse := b.open - b.idle.n
	warm := 0
	for pc := b.idle.front; pc != nil && now.Sub(pc.idleAt) < coldAfter; pc = pc.lru.next {
		warm++
	}
	// One more than in use, for the next caller not to wait on the
	// store, while the process is busy; an idle one asks for nothing
	// but its warm sessions.
	headroom := 0
	if inUse > 0 || b.waiters.n > 0 {
		headroom = 1
	}
	target := min(b.max, max(inUse+b.waiters.n+headroom, inUse+warm))
	if f.inForce > 0 {
		// A process that joined with a smaller budget lowered the one in
		// force: give back down to it now, not when others ask.
		target = min(target, f.inForce)
	}
	if f.holders > 1 && f.fair < f.asked {
		// It asked for more than its fair share last time: others want
		// slots it holds. Give back down to the fair share, keeping one
		// so that its tenants are not shut out.
		target = min(target, max(f.fair, 1))
	}
	var closing []*physConn
	if target < f.cap {
		f.cap = target // no new session over it; release closes those over it
		for pc := b.idle.back; pc != nil && b.open-len(closing) > target; pc = b.idle.back {
			b.removeLocked(pc)
			closing = append(closing, pc)
		}
	}
	b.mu.Unlock()
	// The server must have seen these sessions end before another
	// process is granted their slots.
	b.closeWait(closing)

	b.mu.Lock()
	// b.open only went down meanwhile, or up within f.cap: what is open
	// stays leased.
	want := max(target, b.open)
	deadline := now.Add(f.ttl / 3)
	if !f.expires.IsZero() && !f.fellBack {
		deadline = f.expires.Add(-f.margin())
	}
	b.mu.Unlock()

	// Bounded, so that an unreachable store cannot hold the agent past
	// the lease's expiry, when the budget must fall back. The time left
	// is measured now, not from before closeWait, which may have taken
	// a while.
	// A renewal that starts late (closeWait ran past the deadline) still
	// gets time to be answered: capLocked already enforces the fallback
	// past expiry−margin, and a near-zero timeout would make a healthy
	// store look unreachable.
	d := deadline.Sub(b.now())
	if d < f.ttl/10 {
		d = f.ttl / 3
	}
	l, err := f.lease(ctx, store.LeaseRequest{Server: b.server, Holder: f.holder, Want: want, Budget: b.max, TTL: f.ttl}, d)

	if err != nil && ctx.Err() != nil {
		return // stopped: the budget is closing
	}
	b.mu.Lock()
	if err != nil {
		closing = f.failedLocked(err)
		b.mu.Unlock()
		b.closeAll(closing)
		return
	}
	if f.fellBack {
		f.log.Info("tenantsql: fleet budget: the tenant store is reachable again", "server", b.server, "leased", l.Granted)
	}
	f.leased, f.inForce, f.fair, f.holders, f.expires, f.asked = l.Granted, l.Budget, l.Fair, l.Holders, l.Expires, want
	f.fellBack, f.lastError = false, ""
	// No more than the budget in force, which a process that joined
	// with a smaller one may just have lowered.
	f.cap = min(l.Granted, target, l.Budget)
	if l.Holders > 1 && l.Fair < want {
		// Others want slots this process holds: it opens no more than
		// its fair share (keeping one, so that its tenants are not shut
		// out) from now, and gives the rest back on the next renewal,
		// which comes soon.
		f.cap = min(f.cap, max(l.Fair, 1))
		// Renew soon only if that gives slots back now: while sessions
		// over the cap are still in use, their end renews (closedLocked);
		// and a fair share below one, when busy processes outnumber the
		// budget, would otherwise renew every fleetMinRenew for good.
		if f.leased > f.cap && b.open <= f.cap {
			f.kickLocked()
		}
	}
	// Granted less than is open only if the lease had lapsed (the
	// fallback share, or a store that lost it): idle sessions over the
	// grant end now, those in use when released.
	closing = closing[:0]
	for pc := b.idle.back; pc != nil && b.open-len(closing) > f.cap; pc = b.idle.back {
		b.removeLocked(pc)
		closing = append(closing, pc)
	}
	b.grantSlotsLocked()
	b.mu.Unlock()
	b.closeAll(closing)
}

// errLeaseTimeout: the store did not answer a renewal before the lease's
// expiry (minus the margin).
var errLeaseTimeout = errors.New("the tenant store did not answer the lease renewal in time")

// lease calls the store within d. It returns at the deadline even if the
// store's call does not: a Redis client reading from a server that does
// not answer may ignore its context (go-redis does, unless
// ContextTimeoutEnabled) until its own read timeout. The call abandoned
// finishes in the background; if the store granted it, the grant is one
// this process does not use, which the next renewal corrects.
func (f *fleet) lease(ctx context.Context, req store.LeaseRequest, d time.Duration) (store.Lease, error) {
	lctx, cancel := context.WithTimeout(ctx, d)
	defer cancel() // once returned, the call, if still running, is abandoned
	type result struct {
		l   store.Lease
		err error
	}
	done := make(chan result, 1) // buffered: an abandoned call does not block
	f.calls.Go(func() {
		l, err := f.leaser.Lease(lctx, req)
		done <- result{l, err}
	})
	select {
	case r := <-done:
		return r.l, r.err
	case <-lctx.Done():
		select {
		case r := <-done: // answered as the deadline passed
			return r.l, r.err
		default:
		}
		if ctx.Err() != nil {
			return store.Lease{}, ctx.Err()
		}
		return store.Lease{}, fmt.Errorf("tenantsql: fleet budget: lease on %s: %w (%w)", req.Server, errLeaseTimeout, lctx.Err())
	}
}

// failedLocked records a failed renewal. The lease holds until it
// expires; past that (minus the margin) the budget falls back to its
// fallback share, and returns the idle sessions over it for the caller to
// close; release closes those in use over it.
func (f *fleet) failedLocked(err error) []*physConn {
	b := f.b
	f.lastError = err.Error()
	if b.closed {
		return nil
	}
	if !f.fellBack && !f.expires.IsZero() && b.now().Before(f.expires.Add(-f.margin())) {
		// The lease holds, but the renewal that was to grow it failed:
		// the callers waiting for it get the fallback share now rather
		// than wait for the lease to expire (its cap may be what the
		// budget used when idle, often nothing).
		f.cap = max(f.cap, f.fallback)
		b.grantSlotsLocked()
		return nil
	}
	if f.fellBack {
		// Still cut off: the fallback share again, which this renewal
		// may have lowered to what the process used.
		f.cap = max(f.cap, f.fallback)
		b.grantSlotsLocked()
		return nil
	}
	if f.expires.IsZero() {
		f.log.Error("tenantsql: fleet budget: no lease, the tenant store is unreachable; using the local fallback share",
			"server", b.server, "fallback", f.fallback, "err", err)
	} else {
		f.log.Error("tenantsql: fleet budget: the lease expired with the tenant store unreachable; falling back to the local share",
			"server", b.server, "fallback", f.fallback, "err", err)
	}
	f.fellBack, f.leased, f.expires = true, 0, time.Time{}
	f.cap = f.fallback
	var closing []*physConn
	for pc := b.idle.back; pc != nil && b.open-len(closing) > f.cap; pc = b.idle.back {
		b.removeLocked(pc)
		closing = append(closing, pc)
	}
	b.grantSlotsLocked()
	return closing
}

// release gives the lease back once the budget is closed, so that the
// others need not wait for it to expire. Sessions still in use (database/sql
// closes them when they come back) keep it: it then expires instead. With
// none open it is given back even if this process knows of no lease: a
// renewal it abandoned may have been granted one (and giving back none
// is harmless).
func (f *fleet) release() {
	b := f.b
	b.mu.Lock()
	open := b.open
	b.mu.Unlock()
	if open > 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(f.ttl/3, time.Second))
	defer cancel()
	if err := f.leaser.ReleaseLease(ctx, b.server, f.holder); err != nil {
		f.log.Warn("tenantsql: fleet budget: give the lease back; it expires instead", "server", b.server, "err", err)
	}
}

// statsLocked reports the lease.
func (f *fleet) statsLocked() *FleetStats {
	return &FleetStats{Leased: f.leased, Cap: f.capLocked(), Budget: f.inForce, Fair: f.fair, Holders: f.holders,
		Expires: f.expires, Fallback: f.fellBack, LastError: f.lastError}
}
