package driver

import "time"

// coldAfter is how long an idle connection must sit unused before a tenant
// that already has connections may take its slot. A connection idle that
// long is cold: pgx would ping it before reuse anyway. Taking warm ones
// only moves the shortage to their tenant, which then dials in turn.
const coldAfter = time.Second

// minRecheck is the shortest interval at which a waiter looks for a
// connection to evict, whatever the eviction delay.
const minRecheck = 5 * time.Millisecond

// dormantAfter is how long a tenant's last connection must sit unused
// before a tenant that already has connections may take its slot to grow:
// long enough that its tenant is not merely slow to come back (a slow
// server makes every connection cold for a while), short enough that a
// busy tenant does not wait the idle timeout for room held by idle ones.
const dormantAfter = 30 * time.Second

// victimLocked picks the idle connection to close to make room, or nil.
//
// A connection whose tenant keeps another (surplus) goes before any
// tenant's last one, the coldest first. A caller whose tenant has no
// connection (bare) must get one: failing a surplus one, it takes the
// coldest connection there is. A caller whose tenant has connections of
// its own wants one more: it takes a cold surplus connection, or the last
// connection of a dormant tenant, never another. Taking the last
// connection of a tenant in use leaves that tenant bare, and its next
// query takes a connection from a third, and so on: a storm that fed
// itself (issue 11). Once sessions start slowly every connection turns
// cold, so coldness alone could not tell a dormant tenant from one that
// is merely waiting its turn; growing tenants took the last connections
// of others, and a budget large enough for every tenant ended with a few
// tenants hoarding idle connections while every checkout of the others
// dialled.
func (b *budget) victimLocked(now time.Time, bare bool) *physConn {
	for pc := b.idle.back; pc != nil; pc = pc.lru.prev {
		if pc.pool.open < 2 {
			continue
		}
		if bare || now.Sub(pc.idleAt) >= coldAfter {
			return pc
		}
		break // the other surplus connections are warmer still
	}
	back := b.idle.back
	if back != nil && (bare || now.Sub(back.idleAt) >= dormantAfter) {
		return back
	}
	return nil
}

// evictLocked closes victim, idle or just released, to give its slot to
// w, which must not be queued.
func (b *budget) evictLocked(victim *physConn, w *waiter) {
	b.removeLocked(victim)
	b.countLocked(victim.pool.t, counters{evictions: 1})
	b.handOverLocked(victim, w)
}

// handOverLocked gives the slot of victim, already taken out of its pool,
// to w, which is not queued: w is granted a dial once the server has seen
// victim's session end, or, if w has given up meanwhile, the slot is
// freed. The caller has found the budget open.
func (b *budget) handOverLocked(victim *physConn, w *waiter) {
	w.p.reserveLocked()
	b.wg.Go(func() {
		victim.sess.terminate()
		b.mu.Lock()
		defer b.mu.Unlock()
		if w.abandoned {
			b.unreserveLocked(w.p)
			return
		}
		// Under b.mu, so that wait can tell a grant sent from one on its
		// way. w.ch has room: w is in no queue, so nothing else sends.
		w.ch <- grant{dial: true}
	})
}
