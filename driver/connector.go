package driver

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/internal/lifecycle"
	"github.com/tenantsql/tenantsql/store"
)

// Connector is the tenantsql driver.Connector. Open a *sql.DB on it with
// sql.OpenDB, or let sql.Open("tenantsql", storeURL) build one.
//
// It keeps an in-memory registry of the store's tenants, updated from the
// store's Watch channel, so a query never waits on the store; and one pool
// of physical pgx connections per tenant, created on first use and all
// sharing one cap (WithMaxConns).
type Connector struct {
	store    store.Store
	ownStore bool
	cfg      config
	log      *slog.Logger
	drv      *Driver
	reg      registry

	budgetsMu sync.Mutex
	budgets   map[string]*budget // per server: host:port
	owner     *Connector         // WithBudgetsOf: whose budgets this one's pools draw on; nil: its own

	targetsMu sync.Mutex
	targets   map[string]*target // shared ones, by URL without tenant settings

	hooks Hooks
	hookq *hookQueue

	// Read-your-writes: published reports how far the store has published
	// (nil if it is not a store.Sequencer), appliedSeq how far the
	// registry has applied; a checkout that finds the registry behind
	// waits for it (fence). applied is notified after each batch of
	// changes is applied; followDone is closed when follow stops, after
	// which nothing more will be.
	published  func() uint64
	appliedSeq atomic.Uint64
	applied    *broadcast
	followDone chan struct{}

	started time.Time // when NewConnector ran

	hookFailures atomic.Int64 // runs of a change's hooks that failed or panicked (Stats)

	// lastHookFailure holds each registered tenant's last failed hook run
	// (TenantStats.LastHookFailure), by tenant id. Guarded by
	// hookFailMu; an entry goes when the registry drops its tenant.
	hookFailMu      sync.Mutex
	lastHookFailure map[string]HookFailure

	ready     atomic.Bool
	readyCh   chan struct{}
	ctx       context.Context // ends when the connector closes; waits select on it
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closed    atomic.Bool
}

var (
	_ driver.Connector = (*Connector)(nil)
)

// NewConnector returns a Connector for the tenants in s. It starts watching
// s at once; queries wait (bounded by their context) until the first
// snapshot of tenants has arrived. Closing the Connector, or the *sql.DB
// opened on it, does not close s.
func NewConnector(s store.Store, opts ...Option) (*Connector, error) {
	if s == nil {
		return nil, errors.New("tenantsql: NewConnector: nil store")
	}
	cfg := defaultConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	owner := cfg.budgetOwner
	if owner != nil {
		if owner.owner != nil {
			owner = owner.owner // one owner for all that share its budgets
		}
		if owner.closed.Load() {
			return nil, fmt.Errorf("tenantsql: WithBudgetsOf: %w", ErrClosed)
		}
	}
	if _, ok := s.(store.Leaser); cfg.fleet && !ok && owner == nil {
		return nil, fmt.Errorf("tenantsql: WithFleetBudget: tenant store %T: %w; use the Redis store", s, ErrFleetUnsupported)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events, err := s.Watch(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("tenantsql: watch tenant store: %w", err)
	}
	c := &Connector{
		store:      s,
		cfg:        cfg,
		log:        cfg.log,
		budgets:    make(map[string]*budget),
		owner:      owner,
		targets:    make(map[string]*target),
		readyCh:    make(chan struct{}),
		applied:    newBroadcast(),
		started:    time.Now(),
		ctx:        ctx,
		cancel:     cancel,
		hooks:      cfg.hooks,
		hookq:      newHookQueue(ctx, cfg.hookConcurrency),
		followDone: make(chan struct{}),
	}
	if sq, ok := s.(store.Sequencer); ok {
		c.published = sq.Published
	}
	if !cfg.hooksSet {
		if h := lifecycle.Default(); h != nil {
			c.hooks = h
		}
	}
	c.drv = &Driver{c: c}
	c.reg.init(cfg.urlKey)
	c.wg.Add(2)
	go c.follow(ctx, events)
	go c.reapLoop(ctx)
	return c, nil
}

// Connect implements driver.Connector. It does no I/O and ignores ctx:
// database/sql also calls it from a background goroutine whose context
// names no tenant, and hands the result to any waiting caller. Binding to a
// tenant happens on the Conn's first operation.
func (c *Connector) Connect(context.Context) (driver.Conn, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	return &Conn{c: c}, nil
}

// Driver implements driver.Connector.
func (c *Connector) Driver() driver.Driver { return c.drv }

// Close stops following the store and closes every idle physical
// connection; connections in use are closed when they are released, by
// the goroutine that releases them. It returns once everything the
// connector started has ended: dials in flight (each bounded by
// WithConnectTimeout; the sessions they open are closed) and connections
// being closed, so no goroutine of the connector outlives it. The store is
// closed too if the connector opened it (sql.Open). database/sql calls
// Close from (*sql.DB).Close.
func (c *Connector) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.cancel()
		c.wg.Wait()
		c.hookq.wait()
		if c.owner != nil {
			c.retireTargets()
		}
		for _, b := range c.allBudgets() {
			b.close()
		}
		if c.ownStore {
			err = c.store.Close()
		}
	})
	return err
}

// URLKey returns the deploy_info key whose URLs the connector routes to:
// POSTGRES_URL, or the key given WithURLKey (or url_key).
func (c *Connector) URLKey() string { return c.cfg.urlKey }

// Store returns the tenant store the connector follows.
func (c *Connector) Store() store.Store { return c.store }

// acquire checks out a physical connection for tenant id.
func (c *Connector) acquire(ctx context.Context, id string, hint *physConn) (*physConn, *tenant, error) {
	if hs := c.hookScopeOf(ctx, id); hs != nil {
		return hs.acquire(ctx, hint)
	}
	if !c.ready.Load() {
		if err := c.waitReady(ctx); err != nil {
			return nil, nil, err
		}
	}
	if err := c.fence(ctx); err != nil {
		return nil, nil, err
	}
	for {
		// Each round may follow an errRetired: a replacement appears in
		// the registry, but nothing replaces the pools of a closed
		// connector (a WithBudgetsOf borrower's are retired by its Close
		// while the owner's budgets stay open), and a caller that gave
		// up must not be kept looking.
		if c.closed.Load() {
			return nil, nil, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("tenantsql: tenant %q: %w", id, err)
		}
		t := c.reg.get(id)
		if t == nil {
			var err error
			if t, err = c.awaitTenant(ctx, id); err != nil {
				return nil, nil, err
			}
		}
		if t.err != nil {
			return nil, nil, t.err // no usable URL under this connector's key: fail closed, before any wait
		}
		if g := t.gate.Load(); !g.ok.Load() && (g.failed() || !c.inHookOf(ctx, id)) {
			if err := waitGate(ctx, t, g); err != nil {
				return nil, nil, err
			}
			if c.reg.get(id) != t {
				continue // replaced meanwhile
			}
		}
		pc, err := t.tg.b.acquire(ctx, t.tg, hint)
		switch {
		case err == nil:
			return pc, t, nil
		case errors.Is(err, errRetired):
			hint = nil
			continue // replaced or deleted meanwhile: look it up again
		case errors.Is(err, ErrTenantConfig), errors.Is(err, ErrClosed), errors.Is(err, ErrTenantNotReady):
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("tenantsql: tenant %q: %w", id, err)
	}
}

// propagationWait bounds how long a query for a tenant the store has but
// this process has not registered yet waits for the change to arrive.
const propagationWait = 5 * time.Second

// awaitTenant handles a tenant missing from the registry. If the store
// has it, the change that created it is on its way (a create made a moment
// ago, here or in another process): wait for it, so a query right after a
// create succeeds. Otherwise the tenant is unknown.
func (c *Connector) awaitTenant(ctx context.Context, id string) (*tenant, error) {
	if _, err := c.store.Get(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			return nil, unknownTenant(id)
		}
		return nil, fmt.Errorf("%w (and the tenant store could not be asked: %w)", unknownTenant(id), err)
	}
	timeout := time.NewTimer(propagationWait)
	defer timeout.Stop()
	for {
		applied := c.applied.next()
		if t := c.reg.get(id); t != nil {
			return t, nil
		}
		select {
		case <-applied:
		case <-c.ctx.Done(): // closed: no change will be applied any more
			return nil, fmt.Errorf("%w: in the store but not yet here: %w", unknownTenant(id), ErrClosed)
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: in the store but not yet here: %w", unknownTenant(id), ctx.Err())
		case <-timeout.C:
			return nil, fmt.Errorf("%w: in the store but not received here within %v", unknownTenant(id), propagationWait)
		}
	}
}

// fence makes a checkout see every change the store had published when it
// began, the ones made by this process among them: once Create, Update or
// Delete has returned, no query started afterwards runs on the
// configuration it replaced. On the hot path it costs two atomic loads;
// it waits only in the moment between a store's publishing a change and
// follow's applying it.
func (c *Connector) fence(ctx context.Context) error {
	if c.published == nil {
		return nil
	}
	want := c.published()
	if c.appliedSeq.Load() >= want {
		return nil
	}
	for {
		applied := c.applied.next()
		if c.appliedSeq.Load() >= want {
			return nil
		}
		select {
		case <-applied:
		case <-c.followDone:
			if c.appliedSeq.Load() >= want {
				return nil
			}
			if c.closed.Load() {
				return ErrClosed
			}
			return errors.New("tenantsql: the tenant store stopped sending changes; its latest ones are not applied here")
		case <-ctx.Done():
			return fmt.Errorf("tenantsql: waiting for the latest tenant changes to be applied: %w", ctx.Err())
		}
	}
}

func (c *Connector) release(pc *physConn) (dead bool) {
	return pc.pool.t.b.release(pc)
}

// waitReady waits for the first snapshot of tenants. Close ends the wait
// too: the snapshot will never come once the connector stops following the
// store, and a caller with no deadline would otherwise wait for ever.
func (c *Connector) waitReady(ctx context.Context) error {
	select {
	case <-c.readyCh:
		return nil
	case <-c.ctx.Done():
		return fmt.Errorf("tenantsql: tenants not loaded from the store yet: %w", ErrClosed)
	case <-ctx.Done():
		return fmt.Errorf("tenantsql: tenants not loaded from the store yet: %w", ctx.Err())
	}
}

// pingStore answers a Ping without a tenant: the store must answer and the
// registry must have been loaded from it.
func (c *Connector) pingStore(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := c.store.Ping(ctx); err != nil {
		return fmt.Errorf("tenantsql: tenant store: %w", err)
	}
	return c.waitReady(ctx)
}

// follow applies store events to the registry, in batches: a burst of
// changes (a bulk load, a resync) costs one registry copy, not one per
// tenant. It is the only writer of the registry.
func (c *Connector) follow(ctx context.Context, events <-chan store.Event) {
	defer c.wg.Done()
	defer close(c.followDone)
	tr := store.NewTracker()
	for {
		var batch []store.Event
		select {
		case ev, ok := <-events:
			if !ok {
				if ctx.Err() == nil {
					c.log.Error("tenantsql: tenant store stopped sending changes; tenants are frozen as they are")
				}
				return
			}
			batch = append(batch, ev)
		case <-ctx.Done():
			return
		}
	drain:
		for len(batch) < 1024 {
			select {
			case ev, ok := <-events:
				if !ok {
					break drain
				}
				batch = append(batch, ev)
			default:
				break drain
			}
		}
		var changes []store.Change
		var seq uint64
		for _, ev := range batch {
			changes = append(changes, tr.Apply(ev)...)
			seq = max(seq, ev.Seq)
		}
		c.apply(changes)
		// After the registry: a checkout that sees seq sees its changes.
		c.appliedSeq.Store(max(c.appliedSeq.Load(), seq))
		c.applied.notify() // wakes awaitTenant and fence
		if !c.ready.Load() && tr.Synced() {
			c.ready.Store(true)
			close(c.readyCh)
		}
	}
}

// apply does the library's own work for a batch of changes (the ON phase:
// registry and pools), then hands each change to the hooks.
func (c *Connector) apply(changes []store.Change) {
	if len(changes) == 0 {
		return
	}
	// The URL's attribute is named after the key: postgres_url, or
	// analytics_url for a connector on ANALYTICS_URL.
	urlAttr := strings.ToLower(c.cfg.urlKey)
	for _, sw := range c.reg.apply(changes, c.newTenant) {
		ch := sw.change
		// The URL, redacted, only if it is a postgres:// one: another
		// value under the key may be anything (a webhook address with a
		// token in its path), which RedactURL does not know how to mask.
		// newTenant has logged why it is unusable.
		var url []any
		if sw.new != nil && sw.new.err == nil {
			url = []any{urlAttr, store.RedactURL(sw.new.dsn)}
		}
		switch {
		case ch.Type == store.EventDelete:
			c.log.Debug("tenantsql: tenant removed", "tenant", ch.Tenant.ID)
			c.forgetHookFailure(ch.Tenant.ID)
		case sw.old == nil && sw.new != nil && ch.Type == store.EventCreate:
			c.log.Debug("tenantsql: tenant added", append([]any{"tenant", ch.Tenant.ID}, url...)...)
		case sw.old != nil:
			c.log.Debug("tenantsql: tenant configuration changed", append([]any{"tenant", ch.Tenant.ID}, url...)...)
		}
		if sw.old != nil && sw.old.tg != nil {
			if sw.new != nil && sw.new.tg != nil {
				inheritStats(sw.old, sw.new)
			}
			c.dropTarget(sw.old.tg)
		}
		c.scheduleHooks(sw)
	}
}

// newTenant builds the tenant for a change that needs a new one: a create,
// or an update that changes the URL (old is the tenant it replaces).
func (c *Connector) newTenant(ch store.Change, old *tenant) *tenant {
	t := &tenant{id: ch.Tenant.ID, dsn: ch.Tenant.DeployInfo[c.cfg.urlKey]}
	t.version.Store(ch.Tenant.Version)
	t.err = urlError(t.id, c.cfg.urlKey, t.dsn)
	switch {
	case c.hooks == nil, t.err != nil:
		// Without a usable URL its queries fail with t.err before any
		// gate, and it runs no hooks here (scheduleHooks).
		t.gate.Store(openGate)
	case gainsKey(old, t):
		// For this connector the tenant's database appears now (it had
		// no URL under the key before): a create, whose hooks (create
		// the database, migrate it) gate its queries.
		t.gate.Store(newGate(store.EventCreate, store.Tenant{}))
	case old != nil:
		// A move. Until this update's hooks (typically: create the new
		// database and migrate it) have succeeded, the new database may
		// lack tables; and the old one must not be served either, since
		// the change has been made: writes landing there after the move
		// returned would be lost when it is retired. So its queries wait.
		t.gate.Store(newGate(store.EventUpdate, ch.Old))
	case !c.isNew(ch):
		t.gate.Store(openGate)
	default:
		t.gate.Store(newGate(store.EventCreate, store.Tenant{})) // opened by its create hooks
	}
	if t.err != nil {
		// No target: there is nothing to dial, and no default to fall
		// back on. Queries fail with t.err. A tenant that lacks the key
		// is normal where only some tenants have, say, an analytics
		// database: not worth a warning per tenant at every start.
		level := slog.LevelWarn
		if errors.Is(t.err, ErrMissingURLKey) {
			level = slog.LevelDebug
		}
		c.log.Log(context.Background(), level, "tenantsql: tenant has no usable "+c.cfg.urlKey+"; its queries through this *sql.DB will fail", "tenant", t.id, "err", t.err)
		return t
	}
	// Report a bad URL now, in the log, not only at the first query.
	cc, err := parseDSN(t.id, c.cfg.urlKey, t.dsn)
	if err != nil {
		c.log.Warn("tenantsql: tenant has an unusable "+c.cfg.urlKey+"; its queries will fail", "tenant", t.id, "err", err)
	}
	base, set := splitTenantURL(t.dsn)
	t.set = set
	t.tg = c.targetFor(t.id, base, set != nil, set.custom(), serverKey(cc))
	return t
}

// gainsKey reports whether t, replacing old, is the first usable
// configuration of its tenant under the connector's key: before, the
// tenant lacked the key (or its value was not a URL) and ran no hooks
// here.
func gainsKey(old, t *tenant) bool {
	return old != nil && old.err != nil && t.err == nil
}

// targetFor returns the target a new tenant's sessions dial: a new one
// of its own, or, for a tenant with settings, the one it shares with the
// other tenants of that URL.
func (c *Connector) targetFor(id, base string, shared, rls bool, server string) *target {
	if !shared {
		return &target{name: id, dsn: base, cfg: &c.cfg, b: c.budgetFor(server)}
	}
	// Tenants with custom settings (row-level security) have a pool of
	// their own on the database, whose sessions are checked not to
	// bypass it (pgDialer); schema tenants' sessions are not.
	key := base
	if rls {
		key += " (rls)"
	}
	c.targetsMu.Lock()
	defer c.targetsMu.Unlock()
	tg := c.targets[key]
	if tg == nil {
		tg = &target{name: "(shared)", key: key, dsn: base, shared: true, rls: rls, cfg: &c.cfg, b: c.budgetFor(server)}
		c.targets[key] = tg
	}

	tg.refs++
	return tg
}

// dropTarget retires a target a tenant no longer uses: its own, or a
// shared one once no tenant uses it.
func (c *Connector) dropTarget(tg *target) {
	if tg.shared {
		c.targetsMu.Lock()
		tg.refs--
		last := tg.refs == 0
		if last && c.targets[tg.key] == tg {
			delete(c.targets, tg.key)
		}
		c.targetsMu.Unlock()
		if !last {
			return
		}
	}
	tg.b.removeTarget(tg)
}

// inheritStats carries a tenant's counters over to its replacement, which
// may already be in use.
func inheritStats(old, new *tenant) {
	if old.tg.shared || new.tg.shared {
		return // a shared target's counters are its tenants' together
	}
	old.tg.b.mu.Lock()
	s := old.tg.stats
	old.tg.b.mu.Unlock()
	new.tg.b.mu.Lock()
	new.tg.stats.add(s)
	new.tg.b.mu.Unlock()
}

func (c *Connector) reapLoop(ctx context.Context) {
	defer c.wg.Done()
	every := min(max(c.cfg.idleTimeout/4, 50*time.Millisecond), 5*time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			for _, b := range c.allBudgets() {
				b.reap(now, c.cfg.idleTimeout)
			}
		}
	}
}

// LookupTenant reports whether the tenant exists, for HTTP middleware that
// answers 404 before any query: from this process's registry when it is
// there (no I/O), else from the store, so a tenant created a moment ago,
// here or in another process, is found. The tenant may still be getting
// ready; its queries wait for that.
func (c *Connector) LookupTenant(ctx context.Context, id string) (bool, error) {
	if c.ready.Load() {
		if err := c.fence(ctx); err != nil {
			return false, err
		}
	}
	if c.reg.get(id) != nil {
		return true, nil
	}
	if _, err := c.store.Get(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			return false, nil
		}
		return false, fmt.Errorf("tenantsql: look up tenant %q: %w", id, err)
	}
	return true, nil
}

// budgetFor returns the budget of a server, making it on first use: the
// owner's, for a connector that draws on another's budgets.
func (c *Connector) budgetFor(server string) *budget {
	if c.owner != nil {
		return c.owner.budgetFor(server)
	}
	c.budgetsMu.Lock()
	defer c.budgetsMu.Unlock()
	b := c.budgets[server]
	if b == nil {
		b = newBudget(&c.cfg, server)
		if c.closed.Load() {
			// Asked by a connector that draws on this closed one's
			// budgets: a budget no one would close must not open
			// sessions.
			b.closed = true
			return b
		}
		c.budgets[server] = b
		if c.cfg.fleet {
			newFleet(b, c.store.(store.Leaser), c.cfg.fleetTTL, c.cfg.fleetFallback, c.log).start()
		}
	}
	return b
}

// budgetHome is the connector whose budgets this one's pools draw on.
func (c *Connector) budgetHome() *Connector {
	if c.owner != nil {
		return c.owner
	}
	return c
}

// retireTargets retires the pools of a connector that draws on another's
// budgets, when it closes: the budgets stay open for the owner (and other
// connectors sharing them), so only its own pools go. Idle sessions are
// closed before it returns; sessions in use are closed when released.
func (c *Connector) retireTargets() {
	var tgs []*target
	for _, t := range c.reg.snapshot() {
		if t.tg != nil && !t.tg.shared {
			tgs = append(tgs, t.tg)
		}
	}
	c.targetsMu.Lock()
	for _, tg := range c.targets {
		tgs = append(tgs, tg)
	}
	c.targetsMu.Unlock()
	var wg sync.WaitGroup
	for _, tg := range tgs {
		wg.Go(func() { tg.b.retireTargetNow(tg) })
	}
	wg.Wait()
}

func (c *Connector) allBudgets() []*budget {
	c.budgetsMu.Lock()
	defer c.budgetsMu.Unlock()
	out := make([]*budget, 0, len(c.budgets))
	for _, b := range c.budgets {
		out = append(out, b)
	}
	return out
}

// serverKey names the server a tenant's connections go to: host:port as
// pgx parsed them, with any fallback hosts, each in canonical form
// (canonicalHost), so tenants sharing a server share its budget however
// their URLs spell it. An unusable URL gets a budget of its own, whose
// queries all fail anyway.
func serverKey(cc *pgx.ConnConfig) string {
	if cc == nil {
		return "(unusable URL)"
	}
	addrs := []string{serverAddr(cc.Host, cc.Port)}
	for _, fb := range cc.Fallbacks {
		addrs = append(addrs, serverAddr(fb.Host, fb.Port))
	}
	return joinServerAddrs(addrs)
}

// startupSkew is how far before this connector started a tenant may have
// been created and still count as new here: clocks of different machines
// disagree, and running create hooks twice is harmless (they run in every
// process anyway), while skipping them is not.
const startupSkew = time.Minute

// isNew reports whether a create is one this process should run create
// hooks for: every create it receives as a change, and, in its first sync,
// tenants created since (about) it started, which a process that was
// still connecting to the store learns of only through that sync.
func (c *Connector) isNew(ch store.Change) bool {
	return !ch.Initial || ch.Tenant.CreatedAt.After(c.started.Add(-startupSkew))
}
