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

// victimLocked picks the idle connection to close to make room, or nil.
// The coldest (least recently used) goes first. A caller whose tenant has
// connections of its own (bare is false) only takes a cold one; a caller
// whose tenant has none must get one, and if nothing is cold it prefers a
// connection whose tenant keeps another, so no tenant is left with none.
func (b *budget) victimLocked(now time.Time, bare bool) *physConn {
	back := b.idle.back
	if back == nil {
		return nil
	}
	if now.Sub(back.idleAt) >= coldAfter {
		return back
	}
	if !bare {
		return nil
	}
	for pc := back; pc != nil; pc = pc.lru.prev {
		if pc.pool.open >= 2 {
			return pc
		}
	}
	return back
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
