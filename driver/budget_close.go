package driver

import (
	"sync"
	"time"
)

// closeLater terminates pc, already taken out of its pool, and frees its
// slot when the server has seen the session end. It does so in the
// background, except once the budget is closed: then nothing may be left
// running, and database/sql closes the connections still in use after
// (*sql.DB).Close has returned, so the caller terminates pc itself.
func (b *budget) closeLater(pc *physConn) {
	b.mu.Lock()
	closed := b.closed
	if !closed {
		b.wg.Go(func() { b.closeNow(pc) })
	}
	b.mu.Unlock()
	if closed {
		b.closeNow(pc)
	}
}

// closeWait terminates pcs, already taken out of their pools, at once,
// and returns when the server has seen every one of them end.
func (b *budget) closeWait(pcs []*physConn) {
	var wg sync.WaitGroup
	for _, pc := range pcs {
		wg.Go(func() { b.closeNow(pc) })
	}
	wg.Wait()
}

// closeNow terminates pc, already taken out of its pool, and frees its
// slot.
func (b *budget) closeNow(pc *physConn) {
	pc.sess.terminate()
	b.mu.Lock()
	b.freeLocked()
	if b.fleet != nil {
		b.fleet.closedLocked()
	}
	b.mu.Unlock()
}

// retireLocked takes p out of service: its idle connections are returned
// for the caller to close, its waiters are sent err, and connections still
// in use are closed when they are released, so work in flight finishes on
// the configuration it started with.
func (b *budget) retireLocked(p *pool, err error) []*physConn {
	if p.retired {
		return nil
	}
	p.retired = true
	delete(b.pools, p)
	var closing []*physConn
	for pc := p.idle.front; pc != nil; pc = p.idle.front {
		b.removeLocked(pc)
		closing = append(closing, pc)
	}
	for w := p.waiters.front; w != nil; w = p.waiters.front {
		b.dequeueLocked(w)
		w.ch <- grant{err: err}
	}
	b.grantSlotsLocked()
	return closing
}

// removeTarget retires t for good (deleted, or replaced by a new
// configuration).
func (b *budget) removeTarget(t *target) {
	b.mu.Lock()
	t.removed = true
	var closing []*physConn
	if t.pool != nil {
		closing = b.retireLocked(t.pool, errRetired)
		t.pool = nil
	}
	b.mu.Unlock()
	b.closeAll(closing)
}

// retireTargetNow retires t for good, as removeTarget does, and closes its
// idle sessions before it returns, for a connector that closes while the
// budget stays open (WithBudgetsOf).
func (b *budget) retireTargetNow(t *target) {
	b.mu.Lock()
	t.removed = true
	var closing []*physConn
	if t.pool != nil {
		closing = b.retireLocked(t.pool, ErrClosed)
		t.pool = nil
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, pc := range closing {
		wg.Go(func() { b.closeNow(pc) })
	}
	wg.Wait()
}

// reap closes connections idle longer than idleTimeout or past their
// lifetime, and drops pools that have had no connection for idleTimeout.
func (b *budget) reap(now time.Time, idleTimeout time.Duration) {
	var closing []*physConn
	b.mu.Lock()
	for pc := b.idle.back; pc != nil; {
		prev := pc.lru.prev
		if now.Sub(pc.idleAt) >= idleTimeout || now.After(pc.expires) {
			b.removeLocked(pc)
			closing = append(closing, pc)
		}
		pc = prev
	}
	for p := range b.pools {
		if p.open == 0 && p.waiters.n == 0 && now.Sub(p.lastUsed) >= idleTimeout {
			p.retired = true
			delete(b.pools, p)
			if p.t.pool == p {
				p.t.pool = nil
			}
		}
	}
	b.grantSlotsLocked()
	b.mu.Unlock()
	b.closeAll(closing)
}

// close shuts every pool: idle connections now, the rest when released,
// by the goroutine that releases them. It returns once the idle sessions
// have ended and every goroutine the budget started has returned: dials in
// flight (each bounded by the connect timeout; the session one opens is
// terminated, the budget being closed), terminations and hand-overs (each
// bounded by terminateTimeout).
func (b *budget) close() {
	b.mu.Lock()
	b.closed = true
	var closing []*physConn
	for p := range b.pools {
		closing = append(closing, b.retireLocked(p, ErrClosed)...)
	}
	for w := b.waiters.front; w != nil; w = b.waiters.front {
		b.dequeueLocked(w)
		w.ch <- grant{err: ErrClosed}
	}
	b.mu.Unlock()
	// Wait for the idle sessions to end, so that closing a *sql.DB leaves
	// nothing behind on the server; sessions still in use end when they
	// are released.
	b.closeWait(closing)
	// No goroutine starts any more (b.closed), and those running finish:
	// they wait for the server (a dial for up to the connect timeout,
	// WithBeforeConnect and WithAfterConnect included; a termination for
	// up to terminateTimeout), for b.mu, which no one holds across a
	// wait, and a dial for its caller, who takes the result or gives up
	// at once.
	b.wg.Wait()
	// The agent renews the lease until now: the sessions closed above
	// hold their slots until the server has seen them end, which may
	// take seconds.
	if b.fleet != nil {
		b.fleet.stop() // no renewal after this
		b.fleet.release()
	}
}

// closeAll terminates conns, already taken out of their pools, in the
// background (closeLater).
func (b *budget) closeAll(conns []*physConn) {
	for _, pc := range conns {
		b.closeLater(pc)
	}
}
