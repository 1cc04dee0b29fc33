package driver

import (
	"context"
	"time"
)

// A waiter is a caller waiting for a connection. It is granted either a
// connection of its own pool or a slot to dial one.
type waiter struct {
	p        *pool
	ch       chan grant // buffered: granting never blocks
	since    time.Time
	patience time.Duration // before it looks for another tenant's connection

	// guarded by budget.mu
	queued    bool
	abandoned bool // gave up waiting while a hand-over was on its way to it
	all       waitLinks
	own       waitLinks
}

type grant struct {
	pc   *physConn // a connection of the waiter's pool
	dial bool      // a slot reserved for the waiter: dial
	err  error
}

func (b *budget) enqueueLocked(w *waiter) {
	w.queued = true
	b.waiters.pushBack(w)
	w.p.waiters.pushBack(w)
}

func (b *budget) dequeueLocked(w *waiter) {
	b.waiters.remove(w)
	w.p.waiters.remove(w)
	w.queued = false
}

// firstEagerLocked returns the oldest waiter whose tenant has no
// connection now (not when it was queued: a sibling may have got one
// since, and a tenant may have lost its last), which takes the next one
// released.
func (b *budget) firstEagerLocked() *waiter {
	for w := b.waiters.front; w != nil; w = w.all.next {
		if w.p.open == 0 {
			return w
		}
	}
	return nil
}

// grantSlotsLocked hands free slots to the oldest waiters that may use
// them. It runs whenever a slot frees up.
func (b *budget) grantSlotsLocked() {
	for w := b.waiters.front; w != nil && b.open < b.capLocked(); {
		next := w.all.next
		if w.p.open < w.p.max {
			b.dequeueLocked(w)
			b.reserveLocked(w.p)
			w.ch <- grant{dial: true}
		}
		w = next
	}
}

// wait blocks until w is granted something or ctx ends. A waiter whose
// tenant has connections waits for one of them; past its patience it also
// takes the slot of an idle connection of another tenant that
// victimLocked allows, checking again from time to time.
func (b *budget) wait(ctx context.Context, w *waiter) (grant, error) {
	timer := time.NewTimer(w.patience)
	defer timer.Stop()
	for {
		select {
		case g := <-w.ch:
			return g, nil
		case <-ctx.Done():
			b.mu.Lock()
			b.countLocked(w.p.t, counters{timeouts: 1})
			if w.queued {
				b.dequeueLocked(w)
				b.mu.Unlock()
				b.event(ctx, w.p.t, PoolWait, b.now().Sub(w.since), ctx.Err())
				return grant{}, ctx.Err()
			}
			// Granted meanwhile, or a hand-over is on its way (every
			// grant is sent under b.mu, so an empty w.ch means the
			// latter): give back the grant now, or let the hand-over
			// free the slot, without making the caller wait for it.
			var g grant
			select {
			case g = <-w.ch:
			default:
				w.abandoned = true
			}
			b.mu.Unlock()
			b.giveBack(w, g)
			b.event(ctx, w.p.t, PoolWait, b.now().Sub(w.since), ctx.Err())
			return grant{}, ctx.Err()
		case <-timer.C:
			b.mu.Lock()
			if !w.queued {
				// Granted meanwhile, or a hand-over is on its way: it
				// comes through w.ch. (Once the budget is closed no
				// waiter is queued, so the eviction below never runs
				// on a closed budget.)
				b.mu.Unlock()
				continue
			}
			b.rechecks++
			now := b.now()
			// Not over the cap (a fleet lease that lapsed meanwhile):
			// a hand-over would keep a slot the budget must free.
			if w.p.open < w.p.max && b.open <= b.capLocked() {
				if victim := b.victimLocked(now, w.p.open == 0); victim != nil {
					b.dequeueLocked(w)
					b.evictLocked(victim, w)
					b.mu.Unlock()
					continue // the grant follows once victim is gone
				}
			}
			// Check again when a surplus connection may have turned
			// cold, or the oldest idle one dormant. A waiter at its
			// tenant's cap can use no slot, cold or not:
			// a release or a freed slot reaches it through w.ch, and the
			// timer is only a slow safety net (its tenant may drop below
			// the cap by handing a slot to another tenant). Re-arming at
			// once there, with WithEvictionDelay(0) and a cold connection
			// in the budget, made the waiter spin on b.mu.
			next := coldAfter
			if back := b.idle.back; back != nil && w.p.open < w.p.max {
				next = max(w.patience, min(coldAfter, dormantAfter-now.Sub(back.idleAt)), minRecheck)
			}
			b.lastRecheck = next
			b.mu.Unlock()
			timer.Reset(next)
		}
	}
}

// giveBack returns what w was granted after it gave up waiting.
func (b *budget) giveBack(w *waiter, g grant) {
	switch {
	case g.pc != nil:
		b.release(g.pc)
	case g.dial:
		b.mu.Lock()
		b.unreserveLocked(w.p)
		b.mu.Unlock()
	}
}
