package driver

import (
	"time"

	"github.com/tenantsql/tenantsql/store"
)

// Stats describes a connector's physical connections.
type Stats struct {
	MaxConns int // the WithMaxConns cap
	Open     int // physical connections open or being dialled
	Idle     int
	InUse    int
	Waiting  int // callers waiting for a connection
	// Tenants has an entry for every registered tenant.
	Tenants map[string]TenantStats
}

// TenantStats describes one tenant's physical connections. Counters are
// cumulative since the tenant was first registered in this process.
type TenantStats struct {
	Open    int // open or being dialled
	Idle    int
	InUse   int
	Waiting int

	Acquires      int64         // checkouts served
	NewConns      int64         // physical connections dialled
	ConnectErrors int64         // dials that failed
	Waits         int64         // checkouts that had to wait
	WaitDuration  time.Duration // total time spent waiting
	Evictions     int64         // idle connections closed to make room for other tenants
}

// Stats returns a snapshot of the connector's pools.
func (c *Connector) Stats() Stats {
	reg := c.reg.snapshot()
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Stats{MaxConns: b.max, Open: b.open, Idle: b.idle.n, Waiting: b.waiters.n, Tenants: make(map[string]TenantStats, len(reg))}
	for id, t := range reg {
		s.Tenants[id] = t.statsLocked()
	}
	s.InUse = s.Open - s.Idle
	return s
}

// TenantStats returns the statistics of one tenant, if it is registered.
func (c *Connector) TenantStats(id string) (TenantStats, bool) {
	t := c.reg.get(id)
	if t == nil {
		return TenantStats{}, false
	}
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	return t.statsLocked(), true
}

func (t *tenant) statsLocked() TenantStats {
	ts := TenantStats{
		Acquires:      t.stats.acquires,
		NewConns:      t.stats.newConns,
		ConnectErrors: t.stats.connectErrors,
		Waits:         t.stats.waits,
		WaitDuration:  t.stats.waitTime,
		Evictions:     t.stats.evictions,
	}
	if p := t.pool; p != nil {
		ts.Open, ts.Idle, ts.InUse, ts.Waiting = p.open, p.idle.n, p.inUse, p.waiters.n
	}
	return ts
}

// StoreStatus reports how the tenant store is following its source, for
// stores that follow a remote one (Redis): connected or not, the last
// error, and whether it came back without data it had.
func (c *Connector) StoreStatus() (store.Status, bool) {
	if r, ok := c.store.(store.StatusReporter); ok {
		return r.Status(), true
	}
	return store.Status{}, false
}
