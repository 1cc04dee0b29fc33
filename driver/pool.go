package driver

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// Why not one pgxpool.Pool per tenant: the cap that matters is on all
// connections to a server, across tenants, and making room under it means
// closing a particular idle connection of a cold tenant, which pgxpool
// cannot do from outside. Going through pgx's stdlib pool connector also
// rebuilds the *stdlib.Conn wrapper on every checkout (8 allocations) and
// cannot give a virtual connection back the physical one it had last. So
// the pools here are a thin layer over *stdlib.Conn, each dialled once by
// pgx's own stdlib connector and kept with its wrapper for its whole life;
// pgx still does the protocol, the statement cache, health pings
// (ResetSession) and cancellation.

// errRetired tells the caller that the tenant entry it looked up has been
// replaced or removed while it waited: look the tenant up again.
var errRetired = errors.New("tenantsql: tenant pool retired")

// pool holds one tenant's physical connections for one version of its
// configuration.
type pool struct {
	t         *tenant
	connector driver.Connector

	// guarded by budget.mu
	max      int
	open     int // open or being dialled
	inUse    int // checked out or being dialled
	idle     connList
	waiters  waitList
	retired  bool
	lastUsed time.Time
}

// A waiter is a caller waiting for a connection. It is granted either a
// connection of its own pool or a slot to dial one.
type waiter struct {
	p     *pool
	ch    chan grant // buffered: granting never blocks
	since time.Time

	// guarded by budget.mu
	queued    bool
	eager     bool // its tenant has no connection: it takes the next one released
	abandoned bool // gave up waiting while a hand-over was on its way to it
	all       waitLinks
	own       waitLinks
}

type grant struct {
	pc   *physConn // a connection of the waiter's pool
	dial bool      // a slot reserved for the waiter: dial
	err  error
}

// budget caps the physical connections of the pools that share it and
// arbitrates between them. One mutex guards all of its state; it is held
// only for list and counter updates, never across I/O.
type budget struct {
	server         string // host:port, as the tenants' URLs name it
	max            int
	perTenant      int
	lifetime       time.Duration
	connectTimeout time.Duration
	evictionDelay  time.Duration

	mu      sync.Mutex
	open    int      // sessions open, being dialled or being terminated
	idle    connList // every idle connection, most recently released first
	waiters waitList // every waiter, oldest first
	pools   map[*pool]struct{}
	closed  bool
	stats   counters // the server's, summed over its tenants

	// wg tracks the goroutines the budget starts (dials, terminations,
	// hand-overs), so that close can wait for them and nothing of the
	// connector runs after Close has returned. Add (wg.Go) only with mu
	// held and closed false: then every Add happens before close's Wait.
	// Once the budget is closed, work that would have gone to a goroutine
	// is done by the caller itself.
	wg sync.WaitGroup
}

func newBudget(cfg *config, server string) *budget {
	max := cfg.maxConns
	if n, ok := cfg.serverBudgets[server]; ok {
		max = n
	}
	perTenant := max
	if cfg.maxConnsPerTenant > 0 {
		perTenant = min(cfg.maxConnsPerTenant, max)
	}
	return &budget{
		server:         server,
		max:            max,
		perTenant:      perTenant,
		lifetime:       cfg.maxConnLifetime,
		connectTimeout: cfg.connectTimeout,
		evictionDelay:  cfg.evictionDelay,
		idle:           connList{sel: lruLinks},
		waiters:        waitList{sel: allLinks},
		pools:          make(map[*pool]struct{}),
	}
}

// acquire checks out a physical connection of tenant t, preferring hint
// (the connection the caller had last) when it is idle and of the same
// pool. newConnector builds the tenant's pgx connector when t has no pool.
func (b *budget) acquire(ctx context.Context, t *tenant, hint *physConn) (*physConn, error) {
	var start time.Time // set once the caller has to wait
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, ErrClosed
		}
		if t.removed {
			b.mu.Unlock()
			return nil, errRetired
		}
		p := t.pool
		if p == nil {
			b.mu.Unlock()
			conn, err := t.newConnector()
			if err != nil {
				return nil, err
			}
			b.mu.Lock()
			if t.removed || b.closed {
				b.mu.Unlock()
				continue
			}
			if t.pool == nil {
				t.pool = &pool{t: t, connector: conn, max: b.perTenant, idle: connList{sel: poolLinks}, waiters: waitList{sel: ownLinks}}
				b.pools[t.pool] = struct{}{}
			}
			p = t.pool
		}

		pc := p.idle.front
		if hint != nil && hint.pool == p && hint.state == stateIdle {
			pc = hint
		}
		if pc != nil {
			b.takeIdleLocked(pc)
			t.stats.acquires++
			b.stats.acquires++
			b.mu.Unlock()
			if b.reusable(ctx, pc) {
				return pc, nil
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			hint = nil
			continue
		}
		if p.open < p.max && b.open < b.max {
			p.open++
			p.inUse++
			b.open++
			t.stats.acquires++
			b.stats.acquires++
			d := b.dialLocked(ctx, p)
			b.mu.Unlock()
			return d.wait(ctx)
		}

		// Full. A tenant with no connection at all has nothing to wait
		// for: make room at once if another tenant has an idle one.
		if start.IsZero() {
			start = time.Now()
		}
		w := &waiter{p: p, ch: make(chan grant, 1), since: start, eager: p.open == 0}
		var victim *physConn
		if p.open == 0 {
			victim = b.victimLocked(time.Now(), true)
		}
		if victim != nil {
			b.evictLocked(victim, w)
		} else {
			w.queued = true
			b.waiters.pushBack(w)
			p.waiters.pushBack(w)
		}
		b.mu.Unlock()

		g, err := b.wait(ctx, w)
		if err != nil {
			return nil, err
		}
		b.mu.Lock()
		t.stats.waits++
		t.stats.waitTime += time.Since(start)
		b.stats.waits++
		b.stats.waitTime += time.Since(start)
		// A caller handed an evicted connection's slot is in no queue, so
		// retireLocked could not tell it the pool was retired while it
		// waited for the old session to end; and a grant may have been
		// sent just before the retirement. Dialling now would reach the
		// old URL (a deleted tenant, a database it moved away from).
		gone := g.err == nil && (p.retired || b.closed)
		if g.err == nil && !gone {
			t.stats.acquires++
			b.stats.acquires++
		}
		closed := b.closed
		var d *dial
		if g.dial && !gone {
			d = b.dialLocked(ctx, p)
		}
		b.mu.Unlock()
		switch {
		case gone:
			b.giveBack(w, g)
			if closed {
				return nil, ErrClosed
			}
			return nil, errRetired
		case g.err != nil:
			return nil, g.err
		case d != nil:
			return d.wait(ctx)
		case b.reusable(ctx, g.pc):
			return g.pc, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hint = nil
	}
}

// reusable runs pgx's own reuse check on a connection taken from the pool:
// it must be open and idle in no transaction, and it is pinged if it sat
// unused for more than a second (as database/sql with pgx would do). A
// connection that fails is destroyed.
func (b *budget) reusable(ctx context.Context, pc *physConn) bool {
	if err := pc.sc.ResetSession(ctx); err != nil {
		b.destroy(pc)
		return false
	}
	return true
}

// A dial is a physical connection being opened for a caller.
type dial struct {
	done      chan dialResult // unbuffered: a result goes only to a caller that takes it
	abandoned chan struct{}   // closed when the caller stops waiting
}

type dialResult struct {
	pc  *physConn
	err error
}

// dialLocked starts opening a physical connection for p in a slot already
// reserved; the caller holds b.mu, has found the budget open, and then
// waits for the result with wait. The dial is not cut short when ctx ends:
// a session half set up on the server would linger after the client hung
// up, its slot already given to someone else. The caller returns at once,
// and the connection, when it is up, goes to p's pool as if it had been
// used and released (pgxpool does the same). The connect timeout bounds
// the dial, and close waits for it.
func (b *budget) dialLocked(ctx context.Context, p *pool) *dial {
	d := &dial{done: make(chan dialResult), abandoned: make(chan struct{})}
	b.wg.Go(func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.connectTimeout)
		defer cancel()
		pc, err := b.connect(dctx, p)
		select {
		case d.done <- dialResult{pc, err}:
		case <-d.abandoned:
			if err == nil {
				b.release(pc)
			}
		}
	})
	return d
}

// wait returns the dial's connection, or ctx's error if ctx ends first.
func (d *dial) wait(ctx context.Context) (*physConn, error) {
	select {
	case r := <-d.done:
		return r.pc, r.err
	case <-ctx.Done():
		close(d.abandoned)
		return nil, ctx.Err()
	}
}

func (b *budget) connect(ctx context.Context, p *pool) (*physConn, error) {
	dc, err := p.connector.Connect(ctx)
	if err != nil {
		b.connectFailed(p)
		return nil, err
	}
	pc := &physConn{sc: dc.(*stdlib.Conn), pool: p, state: stateInUse}
	if f := p.t.cfg.afterConnect; f != nil {
		if err := f(ctx, p.t.id, pc.sc.Conn()); err != nil {
			// The session is up: end it, and wait for the server to see
			// it end, before its slot goes to anyone else.
			pc.terminate()
			b.connectFailed(p)
			return nil, fmt.Errorf("after connect: %w", err)
		}
	}
	// Jitter spreads the reconnects of connections dialled together.
	pc.expires = time.Now().Add(b.lifetime - rand.N(b.lifetime/10+1))
	b.mu.Lock()
	p.t.stats.newConns++
	b.stats.newConns++
	// Retired during the dial: the caller must not run its query on the
	// old configuration. release closes the session (the pool is retired).
	retired, closed := p.retired, b.closed
	b.mu.Unlock()
	if retired || closed {
		b.release(pc)
		if closed {
			return nil, ErrClosed
		}
		return nil, errRetired
	}
	return pc, nil
}

// connectFailed frees the slot of a dial that left no session open.
func (b *budget) connectFailed(p *pool) {
	b.mu.Lock()
	p.open--
	p.inUse--
	b.open--
	p.t.stats.connectErrors++
	b.stats.connectErrors++
	b.grantSlotsLocked()
	b.mu.Unlock()
}

// release returns a checked-out connection. It reports whether the
// connection was found dead (closed by the server, the network or a
// cancellation), as opposed to retired for age or configuration.
func (b *budget) release(pc *physConn) (dead bool) {
	conn := pc.sc.Conn()
	dead = conn.IsClosed()
	// As pgxpool does: a connection still busy or inside a transaction
	// cannot be given to anyone else.
	broken := dead || conn.PgConn().IsBusy() || conn.PgConn().TxStatus() != 'I'
	now := time.Now()

	b.mu.Lock()
	p := pc.pool
	p.inUse--
	p.lastUsed = now
	if broken || p.retired || b.closed || now.After(pc.expires) {
		b.removeLocked(pc)
		b.mu.Unlock()
		b.closeLater(pc)
		return dead
	}
	// Who gets the connection: the oldest caller waiting for this
	// tenant, unless a tenant with no connection at all has waited longer
	// (first come, first served across tenants): then this one is closed
	// to make room for it, so no tenant starves behind a busy one.
	own := p.waiters.front
	var bare *waiter
	if b.open >= b.max {
		bare = b.firstEagerLocked()
	}
	switch {
	case bare != nil && (own == nil || bare.since.Before(own.since)):
		b.dequeueLocked(bare)
		pc.state = stateClosed
		p.open--
		p.t.stats.evictions++
		b.stats.evictions++
		b.handOverLocked(pc, bare)
		b.mu.Unlock()
		return false
	case own != nil:
		b.dequeueLocked(own)
		p.inUse++
		own.ch <- grant{pc: pc}
		b.mu.Unlock()
		return false
	}
	pc.state = stateIdle
	pc.idleAt = now
	p.idle.pushFront(pc)
	b.idle.pushFront(pc)
	b.mu.Unlock()
	return false
}

// destroy closes a checked-out connection and frees its slot.
func (b *budget) destroy(pc *physConn) {
	b.mu.Lock()
	pc.pool.inUse--
	b.removeLocked(pc)
	b.mu.Unlock()
	b.closeLater(pc)
}

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

// closeNow terminates pc, already taken out of its pool, and frees its
// slot.
func (b *budget) closeNow(pc *physConn) {
	pc.terminate()
	b.mu.Lock()
	b.open--
	b.grantSlotsLocked()
	b.mu.Unlock()
}

// handOverLocked gives the slot of victim, already taken out of its pool,
// to w, which is not queued: w is granted a dial once the server has seen
// victim's session end, or, if w has given up meanwhile, the slot is
// freed. The caller has found the budget open.
func (b *budget) handOverLocked(victim *physConn, w *waiter) {
	w.p.open++
	w.p.inUse++
	b.wg.Go(func() {
		victim.terminate()
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

// unreserveLocked frees a slot reserved for a dial of p that will not
// happen.
func (b *budget) unreserveLocked(p *pool) {
	p.open--
	p.inUse--
	b.open--
	b.grantSlotsLocked()
}

func (b *budget) takeIdleLocked(pc *physConn) {
	pc.pool.idle.remove(pc)
	b.idle.remove(pc)
	pc.state = stateInUse
	pc.pool.inUse++
}

// removeLocked takes a connection that is in use or idle out of its pool;
// the caller passes it to closeLater, which frees its slot.
func (b *budget) removeLocked(pc *physConn) {
	if pc.state == stateIdle {
		pc.pool.idle.remove(pc)
		b.idle.remove(pc)
	}
	pc.state = stateClosed
	pc.pool.open--
}

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

// evictLocked closes an idle connection of another tenant to give its slot
// to w, which must not be queued.
func (b *budget) evictLocked(victim *physConn, w *waiter) {
	victim.pool.idle.remove(victim)
	b.idle.remove(victim)
	victim.state = stateClosed
	victim.pool.open--
	victim.pool.t.stats.evictions++
	b.stats.evictions++
	b.handOverLocked(victim, w)
}

func (b *budget) dequeueLocked(w *waiter) {
	b.waiters.remove(w)
	w.p.waiters.remove(w)
	w.queued = false
}

func (b *budget) firstEagerLocked() *waiter {
	for w := b.waiters.front; w != nil; w = w.all.next {
		if w.eager && w.p.open < w.p.max {
			return w
		}
	}
	return nil
}

// grantSlotsLocked hands free slots to the oldest waiters that may use
// them. It runs whenever a slot frees up.
func (b *budget) grantSlotsLocked() {
	for w := b.waiters.front; w != nil && b.open < b.max; {
		next := w.all.next
		if w.p.open < w.p.max {
			b.dequeueLocked(w)
			b.open++
			w.p.open++
			w.p.inUse++
			w.ch <- grant{dial: true}
		}
		w = next
	}
}

// wait blocks until w is granted something or ctx ends. A waiter whose
// tenant has connections waits for one of them; past the eviction delay it
// also takes the slot of a cold idle connection of another tenant, checking
// again whenever the oldest idle connection turns cold.
func (b *budget) wait(ctx context.Context, w *waiter) (grant, error) {
	timer := time.NewTimer(b.evictionDelay)
	defer timer.Stop()
	for {
		select {
		case g := <-w.ch:
			return g, nil
		case <-ctx.Done():
			b.mu.Lock()
			if w.queued {
				b.dequeueLocked(w)
				b.mu.Unlock()
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
			now := time.Now()
			if w.p.open < w.p.max {
				if victim := b.victimLocked(now, w.p.open == 0); victim != nil {
					b.dequeueLocked(w)
					b.evictLocked(victim, w)
					b.mu.Unlock()
					continue // the grant follows once victim is gone
				}
			}
			// Check again when the oldest idle connection turns cold. A
			// waiter at its tenant's cap can use no slot, cold or not:
			// a release or a freed slot reaches it through w.ch, and the
			// timer is only a slow safety net (its tenant may drop below
			// the cap by handing a slot to another tenant). Re-arming at
			// once there, with WithEvictionDelay(0) and a cold connection
			// in the budget, made the waiter spin on b.mu.
			next := coldAfter
			if back := b.idle.back; back != nil && w.p.open < w.p.max {
				next = max(b.evictionDelay, coldAfter-now.Sub(back.idleAt), minRecheck)
			}
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

// removeTenant retires t for good (deleted, or replaced by a new
// configuration).
func (b *budget) removeTenant(t *tenant) {
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
	var wg sync.WaitGroup
	for _, pc := range closing {
		wg.Go(func() { b.closeNow(pc) })
	}
	wg.Wait()
	// No goroutine starts any more (b.closed), and those running finish:
	// they wait for the server (a dial for up to the connect timeout,
	// WithBeforeConnect and WithAfterConnect included; a termination for
	// up to terminateTimeout), for b.mu, which no one holds across a
	// wait, and a dial for its caller, who takes the result or gives up
	// at once.
	b.wg.Wait()
}

func (b *budget) closeAll(conns []*physConn) {
	for _, pc := range conns {
		b.closeLater(pc)
	}
}
