package driver

import (
	"context"
	"time"

	"github.com/tenantsql/tenantsql/tenantctx"
)

// A target is what a pool dials: one database with one set of connect
// settings. A tenant with a database of its own has a target of its own,
// replaced when its POSTGRES_URL changes. Tenants that share a database
// (their URLs differ only in tenant settings: search_path, custom
// settings) share one target, and with it one pool of sessions; each of
// their statements carries its tenant's settings (see shared.go). The
// budget's rules (who gets a session, whose is evicted) are about
// targets: a session belongs to a target, not to a tenant.
type target struct {
	name   string // a private target's tenant id; for errors and logs
	dsn    string // the URL dialled, password included: never log it
	key    string // a shared target's key in Connector.targets
	shared bool   // tenants share it (their settings travel with each statement)
	rls    bool   // a shared target whose tenants have custom settings: its role must not bypass RLS
	b      *budget
	cfg    *config
	dial   dialFunc // nil: pgDialer; the budget's tests set a fake

	// guarded by b.mu
	pool    *pool
	removed bool
	stats   counters

	refs int // shared targets: tenants using it; guarded by Connector.targetsMu
}

type counters struct {
	acquires      int64
	newConns      int64
	waits         int64
	waitTime      time.Duration
	evictions     int64
	connectErrors int64
	timeouts      int64
}

func (c *counters) add(o counters) {
	c.acquires += o.acquires
	c.newConns += o.newConns
	c.waits += o.waits
	c.waitTime += o.waitTime
	c.evictions += o.evictions
	c.connectErrors += o.connectErrors
	c.timeouts += o.timeouts
}

// dialer returns the dial function of a new pool for t.
func (t *target) dialer() (dialFunc, error) {
	if t.dial != nil {
		return t.dial, nil
	}
	return t.pgDialer()
}

// tenantOf names the tenant a session is dialled for, for the connect
// callbacks: a private target's tenant, or for a shared one the tenant
// whose checkout dials it (sessions of a shared target serve all its
// tenants; the callbacks must not set anything tenant-specific on them).
func (t *target) tenantOf(ctx context.Context) string {
	if !t.shared {
		return t.name
	}
	id, _ := tenantctx.TenantFrom(ctx)
	return id
}
