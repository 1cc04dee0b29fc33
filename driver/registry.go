package driver

import (
	"context"
	"database/sql/driver"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/tenantsql/tenantsql/store"
)

// tenant is this process's view of one tenant at one configuration. A new
// POSTGRES_URL makes a new tenant value; the old one is retired, so a pool
// never mixes connections of two configurations.
type tenant struct {
	id      string
	version int64
	dsn     string // the raw POSTGRES_URL, password included: never log it
	b       *budget
	cfg     *config

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

// newConnector parses the tenant's URL and builds the pgx stdlib connector
// its pool dials with. It runs when a pool is created, not when the tenant
// is registered, so ten thousand registered tenants hold only their URLs.
func (t *tenant) newConnector() (driver.Connector, error) {
	cc, err := parseDSN(t.id, t.dsn)
	if err != nil {
		return nil, err
	}
	var opts []stdlib.OptionOpenDB
	if f := t.cfg.beforeConnect; f != nil {
		id := t.id
		opts = append(opts, stdlib.OptionBeforeConnect(func(ctx context.Context, cc *pgx.ConnConfig) error {
			return f(ctx, id, cc)
		}))
	}
	if f := t.cfg.afterConnect; f != nil {
		id := t.id
		opts = append(opts, stdlib.OptionAfterConnect(func(ctx context.Context, c *pgx.Conn) error {
			return f(ctx, id, c)
		}))
	}
	return stdlib.GetConnector(*cc, opts...), nil
}

// parseDSN parses a tenant URL. pgx's parse errors redact passwords only
// "best effort", so the password is also scrubbed from the message here,
// and the original error (which may hold it) is not wrapped.
func parseDSN(id, dsn string) (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err == nil {
		return cc, nil
	}
	msg := err.Error()
	if pw := passwordOf(dsn); pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	msg = strings.ReplaceAll(msg, dsn, store.RedactURL(dsn))
	return nil, fmt.Errorf("%w: tenant %q: POSTGRES_URL: %s", ErrTenantConfig, id, msg)
}

func passwordOf(dsn string) string {
	cc, err := pgx.ParseConfig(dsn)
	if err == nil {
		return cc.Password
	}
	// Unparsable: look for user:password@ by hand.
	rest, ok := strings.CutPrefix(dsn, "postgres://")
	if !ok {
		rest, _ = strings.CutPrefix(dsn, "postgresql://")
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
			return pw
		}
	}
	return ""
}

// registry maps tenant ids to tenants. Readers (every checkout) load an
// immutable map with one atomic load; writers copy it, which costs O(n) per
// batch of store events, never per query.
type registry struct {
	m       atomic.Pointer[map[string]*tenant]
	mu      sync.Mutex // serializes writers
	version int64      // store version applied last; guarded by mu
}

func (r *registry) init() {
	m := make(map[string]*tenant)
	r.m.Store(&m)
}

func (r *registry) get(id string) *tenant { return (*r.m.Load())[id] }

func (r *registry) snapshot() map[string]*tenant { return *r.m.Load() }

// change is what applying store events did to one tenant.
type change struct {
	old, new *tenant
}

// apply applies a batch of store events and returns the tenants that were
// added, replaced or removed. Events older than what was applied are
// skipped; a sync replaces the whole set.
func (r *registry) apply(evs []store.Event, mk func(store.Tenant) *tenant) []change {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := *r.m.Load()
	next := maps.Clone(cur)
	var changes []change
	upsert := func(st store.Tenant) {
		old := next[st.ID]
		if old != nil && old.dsn == st.PostgresURL() {
			return // same configuration: keep the pool
		}
		nt := mk(st)
		next[st.ID] = nt
		changes = append(changes, change{old: old, new: nt})
	}
	remove := func(id string) {
		if old := next[id]; old != nil {
			delete(next, id)
			changes = append(changes, change{old: old})
		}
	}
	for _, ev := range evs {
		if ev.Type != store.EventSync && ev.Version <= r.version {
			continue
		}
		switch ev.Type {
		case store.EventSync:
			seen := make(map[string]bool, len(ev.Tenants))
			for _, st := range ev.Tenants {
				seen[st.ID] = true
				upsert(st)
			}
			for id := range next {
				if !seen[id] {
					remove(id)
				}
			}
		case store.EventCreate, store.EventUpdate:
			upsert(ev.Tenant)
		case store.EventDelete:
			remove(ev.Tenant.ID)
		}
		r.version = max(r.version, ev.Version)
		if ev.Type == store.EventSync {
			r.version = ev.Version
		}
	}
	r.m.Store(&next)
	return changes
}
