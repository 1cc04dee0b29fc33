package driver

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Why not one pgxpool.Pool per tenant: the cap that matters is on all
// connections to a server, across tenants, and making room under it means
// closing a particular idle connection of a cold tenant, which pgxpool
// cannot do from outside. Going through pgx's stdlib pool connector also
// rebuilds the *stdlib.Conn wrapper on every checkout (8 allocations) and
// cannot give a virtual connection back the physical one it had last. So
// the pools here are a thin layer over *stdlib.Conn, each dialled once by
// pgx's own stdlib connector and kept with its wrapper for its whole life
// (pgSession); pgx still does the protocol, the statement cache, health
// pings (ResetSession) and cancellation.
//
// The budget is the server's share of connections and the rules for who
// gets one: checkout and release here; waiting in budget_wait.go, making
// room in budget_evict.go, dialling in budget_dial.go, retiring and closing
// in budget_close.go. It sees sessions through the session interface, so
// budget_test.go can drive its rules without a server.

// errRetired tells the caller that the tenant entry it looked up has been
// replaced or removed while it waited: look the tenant up again.
var errRetired = errors.New("tenantsql: tenant pool retired")

// budget caps the physical connections of the pools that share it (the
// tenants of one server) and arbitrates between them.
type budget struct {
	server         string // canonical host:port (serverKey)
	max            int
	perTenant      int
	lifetime       time.Duration
	connectTimeout time.Duration
	evictionDelay  time.Duration
	now            func() time.Time // time.Now; the budget's tests move a clock of their own

	// mu guards everything below, and the fields of pools, waiters and
	// physConns marked as guarded by budget.mu. It is held only for list
	// and counter updates, never across I/O or a wait.
	mu      sync.Mutex
	open    int      // sessions open, being dialled or being terminated
	idle    connList // every idle connection, most recently released first
	waiters waitList // every waiter, oldest first
	pools   map[*pool]struct{}
	closed  bool
	stats   counters // the server's, summed over its tenants
	// dialTime is how long a session takes to start here, on average of
	// the recent ones: a caller waits at least that long for its own
	// tenant's connection before it takes another tenant's (patience).
	dialTime time.Duration

	// rechecks counts the times a waiter's timer fired while it was
	// queued, and lastRecheck is the delay its timer was re-armed with
	// then: what the budget's tests check a waiter at its cap against
	// (it must sleep, not spin), without measuring time.
	rechecks    int
	lastRecheck time.Duration

	// fleet is the budget's lease on its server's fleet budget
	// (WithFleetBudget), nil without one; its cap, not max, then bounds
	// open (capLocked).
	fleet *fleet

	// wg tracks the goroutines the budget starts (dials, terminations,
	// hand-overs), so that close can wait for them and nothing of the
	// connector runs after Close has returned. Add (wg.Go) only with mu
	// held and closed false: then every Add happens before close's Wait.
	// Once the budget is closed, work that would have gone to a goroutine
	// is done by the caller itself.
	wg sync.WaitGroup
}

// pool holds one tenant's physical connections for one version of its
// configuration.
type pool struct {
	t    *target
	dial dialFunc

	// guarded by budget.mu
	max      int
	open     int // open or being dialled
	inUse    int // checked out or being dialled
	idle     connList
	waiters  waitList
	retired  bool
	lastUsed time.Time
}

func newBudget(cfg *config, server string) *budget {
	limit := cfg.maxConns
	if n, ok := cfg.serverBudgets[server]; ok {
		limit = n
	}
	perTenant := limit
	if cfg.maxConnsPerTenant > 0 {
		perTenant = min(cfg.maxConnsPerTenant, limit)
	}
	return &budget{
		server:         server,
		max:            limit,
		perTenant:      perTenant,
		lifetime:       cfg.maxConnLifetime,
		connectTimeout: cfg.connectTimeout,
		evictionDelay:  cfg.evictionDelay,
		now:            time.Now,
		idle:           connList{sel: lruLinks},
		waiters:        waitList{sel: allLinks},
		pools:          make(map[*pool]struct{}),
	}
}

// acquire checks out a physical connection of tenant t, preferring hint
// (the connection the caller had last) when it is idle and of the same
// pool. t's pool is made on first use.
func (b *budget) acquire(ctx context.Context, t *target, hint *physConn) (*physConn, error) {
	var start time.Time // set once the caller has to wait
	for {
		p, err := b.poolOf(t)
		if err != nil {
			return nil, err
		}
		co := b.checkoutLocked(ctx, p, hint, &start)
		b.mu.Unlock()
		var pc *physConn
		switch {
		case co.pc != nil:
			if b.reusable(ctx, co.pc) {
				return co.pc, nil
			}
		case co.dial != nil:
			return b.waitDial(ctx, p, co.dial)
		default:
			if pc, err = b.afterWait(ctx, p, co.w, start); pc != nil || err != nil {
				return pc, err
			}
		}
		// The connection given failed its check and was closed.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hint = nil
	}
}

// poolOf returns t's pool with b.mu held, making the pool if t has none.
// On error b.mu is not held.
func (b *budget) poolOf(t *target) (*pool, error) {
	var dial dialFunc
	for {
		b.mu.Lock()
		switch {
		case b.closed:
			b.mu.Unlock()
			return nil, ErrClosed
		case t.removed:
			b.mu.Unlock()
			return nil, errRetired
		case t.pool != nil:
			return t.pool, nil
		case dial != nil:
			t.pool = &pool{t: t, dial: dial, max: b.perTenant, idle: connList{sel: poolLinks}, waiters: waitList{sel: ownLinks}}
			b.pools[t.pool] = struct{}{}
			return t.pool, nil
		}
		// Parsing the URL and building pgx's connector is done once per
		// pool, without the lock.
		b.mu.Unlock()
		var err error
		if dial, err = t.dialer(); err != nil {
			return nil, err
		}
	}
}

// A checkout is what checkoutLocked decided: take an idle connection,
// dial in a slot reserved, or wait.
type checkout struct {
	pc   *physConn // taken from the pool: check it (reusable)
	dial *dial     // started: wait for it
	w    *waiter   // queued, or handed an evicted connection's slot
}

// checkoutLocked decides how a caller gets a connection of p: its idle
// connection (hint first), a new one if p and the budget have room, or a
// wait. A tenant with no connection at all has nothing to wait for: it
// makes room at once if another tenant has an idle one.
func (b *budget) checkoutLocked(ctx context.Context, p *pool, hint *physConn, start *time.Time) checkout {
	pc := p.idle.front
	if hint != nil && hint.pool == p && hint.state == stateIdle {
		pc = hint
	}
	if pc != nil {
		b.takeIdleLocked(pc)
		b.countLocked(p.t, counters{acquires: 1})
		return checkout{pc: pc}
	}
	if p.open < p.max && b.open < b.capLocked() {
		b.reserveLocked(p)
		b.countLocked(p.t, counters{acquires: 1})
		return checkout{dial: b.dialLocked(ctx, p)}
	}
	if start.IsZero() {
		*start = b.now()
	}
	if b.fleet != nil {
		b.fleet.wakeLocked()
	}
	w := &waiter{p: p, ch: make(chan grant, 1), since: *start, patience: b.patienceLocked(p)}
	var victim *physConn
	// Over the cap (a fleet lease shrunk or expired), an evicted
	// session's slot is not there to hand over.
	if p.open == 0 && b.open <= b.capLocked() {
		victim = b.victimLocked(b.now(), true)
	}
	if victim != nil {
		b.evictLocked(victim, w)
	} else {
		b.enqueueLocked(w)
	}
	return checkout{w: w}
}

// afterWait waits for w's grant and turns it into a connection. It
// returns neither a connection nor an error when the connection granted
// failed its check: the caller starts again.
func (b *budget) afterWait(ctx context.Context, p *pool, w *waiter, start time.Time) (*physConn, error) {
	g, err := b.wait(ctx, w)
	if err != nil {
		return nil, err
	}
	waited := b.now().Sub(start)
	b.event(ctx, p.t, PoolWait, waited, g.err)
	b.mu.Lock()
	b.countLocked(p.t, counters{waits: 1, waitTime: waited})
	// A caller handed an evicted connection's slot is in no queue, so
	// retireLocked could not tell it the pool was retired while it waited
	// for the old session to end; and a grant may have been sent just
	// before the retirement. Dialling now would reach the old URL (a
	// deleted tenant, a database it moved away from).
	gone := g.err == nil && (p.retired || b.closed)
	if g.err == nil && !gone {
		b.countLocked(p.t, counters{acquires: 1})
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
		return b.waitDial(ctx, p, d)
	case b.reusable(ctx, g.pc):
		return g.pc, nil
	}
	return nil, nil
}

// reusable runs the session's reuse check on a connection taken from the
// pool (pgx's: open, idle in no transaction, pinged if unused for more
// than a second, as database/sql with pgx would do). A connection that
// fails is destroyed.
func (b *budget) reusable(ctx context.Context, pc *physConn) bool {
	if err := pc.sess.reset(ctx); err != nil {
		b.destroy(pc)
		return false
	}
	return true
}

// release returns a checked-out connection. It reports whether the
// connection was found dead (closed by the server, the network or a
// cancellation), as opposed to retired for age or configuration.
func (b *budget) release(pc *physConn) (dead bool) {
	dead, reusable := pc.sess.released()
	reusable = reusable && !pc.dirty
	now := b.now()

	b.mu.Lock()
	p := pc.pool
	b.checkinLocked(pc)
	p.lastUsed = now
	// Over the cap (a fleet budget giving slots back), the session ends
	// instead of idling.
	if !reusable || p.retired || b.closed || now.After(pc.expires) || b.open > b.capLocked() {
		b.removeLocked(pc)
		b.mu.Unlock()
		b.closeLater(pc)
		return dead
	}
	pc.state = stateIdle
	pc.idleAt = now
	p.idle.pushFront(pc)
	b.idle.pushFront(pc)
	// A tenant with no connection at all that has waited longer than
	// this tenant's own oldest caller goes first (first come, first
	// served across tenants, so no tenant starves behind a busy one): an
	// idle connection is closed to make room for it, chosen as any
	// eviction is (victimLocked), so a surplus one goes before this
	// tenant's last. Then this tenant's oldest caller gets the connection
	// if it is still there.
	own := p.waiters.front
	if b.open >= b.capLocked() {
		if bare := b.firstEagerLocked(); bare != nil && (own == nil || bare.since.Before(own.since)) {
			b.dequeueLocked(bare)
			b.evictLocked(b.victimLocked(now, true), bare)
		}
	}
	if own != nil && pc.state == stateIdle {
		b.dequeueLocked(own)
		b.takeIdleLocked(pc)
		own.ch <- grant{pc: pc}
	}
	b.mu.Unlock()
	return false
}

// capLocked is how many sessions the budget may have open: max, or under
// a fleet budget what it leased (fleet.capLocked).
func (b *budget) capLocked() int {
	if b.fleet != nil {
		return b.fleet.capLocked()
	}
	return b.max
}

// destroy closes a checked-out connection and frees its slot.
func (b *budget) destroy(pc *physConn) {
	b.mu.Lock()
	b.checkinLocked(pc)
	b.removeLocked(pc)
	b.mu.Unlock()
	b.closeLater(pc)
}

// patienceLocked is how long a caller of p waits before it looks for a
// connection of another tenant to take. With none of its own it has
// nothing to wait for: the eviction delay. With some, it waits for one of
// them at least as long as starting a session takes: taking another's
// slot sooner costs that tenant a connection and gains nothing, since the
// caller's own is likely back first. Without this, once sessions started
// slowly, callers that could have waited a moment took cold connections
// of others, each taking cost a slow dial that made more connections
// cold, and connections churned between tenants whose demand fitted.
func (b *budget) patienceLocked(p *pool) time.Duration {
	if p.open == 0 {
		return b.evictionDelay
	}
	return max(b.evictionDelay, b.dialTime)
}

// The bookkeeping of slots and connections. Every count of open and
// in-use connections changes here.

// reserveLocked counts a slot for a dial of p: open and in use in p and in
// the budget.
func (b *budget) reserveLocked(p *pool) {
	b.open++
	p.reserveLocked()
}

// reserveLocked counts, in p alone, a slot the budget already counts: one
// handed over from an evicted connection.
func (p *pool) reserveLocked() {
	p.open++
	p.inUse++
}

// unreserveLocked frees a slot reserved for a dial of p that will not
// happen, or that failed.
func (b *budget) unreserveLocked(p *pool) {
	p.open--
	p.inUse--
	b.freeLocked()
}

// freeLocked frees a slot of the budget (its session has ended, or was
// never opened) and hands it on.
func (b *budget) freeLocked() {
	b.open--
	b.grantSlotsLocked()
}

// checkinLocked counts a connection back from its caller, who no longer
// uses it; takeIdleLocked and reserveLocked count it out.
func (b *budget) checkinLocked(pc *physConn) {
	pc.pool.inUse--
}

func (b *budget) takeIdleLocked(pc *physConn) {
	pc.pool.idle.remove(pc)
	b.idle.remove(pc)
	pc.state = stateInUse
	pc.pool.inUse++
}

// removeLocked takes a connection that is in use or idle out of its pool.
// Its slot stays counted in the budget until its session has ended: the
// caller terminates it (closeLater) or hands the slot over.
func (b *budget) removeLocked(pc *physConn) {
	if pc.state == stateIdle {
		pc.pool.idle.remove(pc)
		b.idle.remove(pc)
	}
	pc.state = stateClosed
	pc.pool.open--
}

// event reports a wait or a dial of t's to WithPoolEvents, if set. It
// runs without b.mu.
func (b *budget) event(ctx context.Context, t *target, kind PoolEventKind, d time.Duration, err error) {
	f := t.cfg.poolEvents
	if f == nil {
		return
	}
	id := t.name
	if t.shared {
		id = t.tenantOf(ctx)
	}
	f(PoolEvent{Kind: kind, Server: b.server, Tenant: id, Duration: d, Err: err})
}

// countLocked adds c to the statistics of t and of the budget.
func (b *budget) countLocked(t *target, c counters) {
	t.stats.add(c)
	b.stats.add(c)
}
