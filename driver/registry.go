package driver

import (
	"fmt"
	"maps"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/internal/pgurl"
	"github.com/tenantsql/tenantsql/store"
)

// tenant is this process's view of one tenant at one configuration. A new
// POSTGRES_URL makes a new tenant value; the old one is retired, so a pool
// never mixes connections of two configurations.
type tenant struct {
	id      string
	version atomic.Int64
	dsn     string // the raw POSTGRES_URL, password included: never log it
	b       *budget
	cfg     *config
	gate    atomic.Pointer[gate]
	dial    dialFunc // nil: pgDialer; the budget's tests set a fake

	// guarded by b.mu
	pool    *pool
	removed bool
	stats   counters
}

type counters struct {
	acquires      int64
	newConns      int64
	waits         int64
	waitTime      time.Duration
	evictions     int64
	connectErrors int64
}

func (c *counters) add(o counters) {
	c.acquires += o.acquires
	c.newConns += o.newConns
	c.waits += o.waits
	c.waitTime += o.waitTime
	c.evictions += o.evictions
	c.connectErrors += o.connectErrors
}

// dialer returns the dial function of a new pool for t.
func (t *tenant) dialer() (dialFunc, error) {
	if t.dial != nil {
		return t.dial, nil
	}
	return t.pgDialer()
}

// parseDSN parses a tenant URL. pgx's parse errors mask passwords only
// "best effort", and what they give as the cause may quote any part of the
// URL, so the error is written anew: the URL as store.RedactURL shows it,
// and the cause as pgurl.ParseFailure gives it. pgx's error is not
// wrapped.
func parseDSN(id, dsn string) (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err == nil {
		return cc, nil
	}
	return nil, fmt.Errorf("%w: tenant %q: POSTGRES_URL: cannot parse `%s`: %s", ErrTenantConfig, id, store.RedactURL(dsn), pgurl.ParseFailure(dsn, pgxParse))
}

// pgxParse is pgx's reading of a URL, as pgurl.ParseFailure takes it.
func pgxParse(dsn string) error {
	_, err := pgx.ParseConfig(dsn)
	return err
}

// registry maps tenant ids to tenants. Readers (every checkout) load an
// immutable map with one atomic load; the one writer (the goroutine that
// follows the store) copies it, which costs O(n) per batch of store
// events, never per query.
type registry struct {
	m atomic.Pointer[map[string]*tenant]
}

func (r *registry) init() {
	m := make(map[string]*tenant)
	r.m.Store(&m)
}

func (r *registry) get(id string) *tenant { return (*r.m.Load())[id] }

func (r *registry) snapshot() map[string]*tenant { return *r.m.Load() }

// swap is what applying one change did to the registry.
type swap struct {
	change   store.Change
	old, new *tenant // old: replaced or removed; new: added or replacing
}

// apply applies a batch of changes and returns what each did. mk builds the
// tenant for a created tenant or a new POSTGRES_URL.
func (r *registry) apply(changes []store.Change, mk func(store.Change, *tenant) *tenant) []swap {
	next := maps.Clone(*r.m.Load())
	out := make([]swap, 0, len(changes))
	for _, c := range changes {
		old := next[c.Tenant.ID]
		sw := swap{change: c, old: old}
		switch c.Type {
		case store.EventCreate, store.EventUpdate:
			if old != nil && old.dsn == c.Tenant.PostgresURL() {
				sw.old, sw.new = nil, old // same configuration: keep the pool
				old.version.Store(c.Tenant.Version)
				break
			}
			sw.new = mk(c, old)
			next[c.Tenant.ID] = sw.new
		case store.EventDelete:
			delete(next, c.Tenant.ID)
		}
		out = append(out, sw)
	}
	r.m.Store(&next)
	return out
}

// gate is a tenant's readiness at one configuration in this process: open
// once the hooks of the change that made it (a create, or an update that
// moved the tenant to another database) have succeeded here. Tenants
// created well before the connector started (see isNew), and all tenants
// when there are no hooks, are open from the start.
type gate struct {
	kind store.EventType // the change whose hooks open it
	from store.Tenant    // for a move: the tenant before it
	done chan struct{}
	ok   atomic.Bool
	err  error // set before done closes
}

var openGate = func() *gate {
	g := &gate{done: make(chan struct{})}
	g.ok.Store(true)
	close(g.done)
	return g
}()

func newGate(kind store.EventType, from store.Tenant) *gate {
	return &gate{kind: kind, from: from, done: make(chan struct{})}
}

func (g *gate) resolve(err error) {
	g.err = err
	g.ok.Store(err == nil)
	close(g.done)
}

func (g *gate) failed() bool {
	select {
	case <-g.done:
		return g.err != nil
	default:
		return false
	}
}
