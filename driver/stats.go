package driver

import (
	"time"

	"github.com/tenantsql/tenantsql/store"
)

// Stats describes a connector's physical connections.
type Stats struct {
	MaxConns int // the default budget of a server (WithMaxConns)
	// Totals over all servers.
	Open    int // physical connections open, being dialled or being closed
	Idle    int
	InUse   int
	Waiting int // callers waiting for a connection

	// Registered counts the tenants this connector knows, and NotReady
	// those of them whose queries would not run now: their create hooks
	// (or those of a move to another database) are running or failed in
	// this process. HookFailures counts the runs of a change's hooks that
	// failed (or panicked) since the connector started.
	Registered   int
	NotReady     int
	HookFailures int64

	// BorrowedBudgets says that the connector draws on another's budgets
	// (WithBudgetsOf): Servers and the totals above are that owner's,
	// every connector's sessions on those servers, so whoever adds up
	// several connectors' figures (the telemetry package) counts them
	// once, with the owner.
	BorrowedBudgets bool

	// Servers has an entry per PostgreSQL server the registered tenants
	// use, named "host:port" in the canonical form WithMaxConns describes
	// (lower case, an IPv6 address in brackets, fallback hosts after a
	// comma), which is how WithServerBudget matches it.
	Servers map[string]ServerStats
	// Tenants has an entry for every registered tenant.
	Tenants map[string]TenantStats
}

// ServerStats describes the connections to one PostgreSQL server, shared by
// the tenants whose URLs name it. Counters are cumulative since the
// connector started.
type ServerStats struct {
	Budget  int // the server's connection budget
	Open    int // open, being dialled, or closed and not yet confirmed gone
	Idle    int
	InUse   int
	Waiting int
	Pools   int // tenants with a pool: those used within the idle timeout

	Acquires      int64
	NewConns      int64
	ConnectErrors int64
	Waits         int64
	WaitDuration  time.Duration
	Evictions     int64 // idle connections closed to make room for another tenant
	Timeouts      int64 // checkouts whose context ended while they waited for a connection

	// Fleet is the server's lease under a fleet budget
	// (WithFleetBudget); nil without one. Budget above is then the
	// budget this process configured.
	Fleet *FleetStats
}

// TenantStats describes one tenant's physical connections. Counters are
// cumulative since the tenant was first registered in this process.
type TenantStats struct {
	Server  string // the "host:port" whose budget it shares
	Open    int    // open or being dialled
	Idle    int
	InUse   int
	Waiting int

	Acquires      int64         // checkouts served
	NewConns      int64         // physical connections dialled
	ConnectErrors int64         // dials that failed
	Waits         int64         // checkouts that had to wait
	WaitDuration  time.Duration // total time spent waiting
	Evictions     int64         // idle connections closed to make room for other tenants
	Timeouts      int64         // checkouts whose context ended while they waited for a connection

	// Ready reports whether the tenant's queries would run now, as
	// Stats.NotReady counts: false while the hooks of its create (or of a
	// move to another database) run in this process, or after they
	// failed.
	Ready bool
	// LastHookFailure is the last run of the tenant's lifecycle hooks
	// that failed in this process, nil if none has. It stays after a
	// later run succeeds (Ready says whether one did), so that an
	// operator sees what went wrong, and when.
	LastHookFailure *HookFailure
}

// HookFailure describes a failed run of a tenant's lifecycle hooks.
type HookFailure struct {
	Time   time.Time
	Change string // what the hooks ran for: "create", "update" or "delete"
	// Error is the hooks' error, with every password of the tenant's
	// URLs masked.
	Error string
}

// Stats returns a snapshot of the connector's pools. It takes each
// server's lock in turn, so it is not one instant across servers.
func (c *Connector) Stats() Stats {
	reg := c.reg.snapshot()
	home := c.budgetHome() // WithBudgetsOf: the servers' budgets are the owner's
	s := Stats{
		MaxConns: home.cfg.maxConns, BorrowedBudgets: home != c, Registered: len(reg), HookFailures: c.hookFailures.Load(),
		Servers: make(map[string]ServerStats), Tenants: make(map[string]TenantStats, len(reg)),
	}
	byBudget := make(map[*budget][]*tenant)
	for _, t := range reg {
		if !t.gate.Load().ok.Load() {
			s.NotReady++
		}
		if t.tg == nil {
			continue // no URL under the connector's key: no pool
		}
		byBudget[t.tg.b] = append(byBudget[t.tg.b], t)
	}
	failures := c.copyHookFailures() // not under the budgets' locks, which checkouts take
	for _, b := range home.allBudgets() {
		b.mu.Lock()
		ss := ServerStats{
			Budget: b.max, Open: b.open, Idle: b.idle.n, Waiting: b.waiters.n, Pools: len(b.pools),
			Acquires: b.stats.acquires, NewConns: b.stats.newConns, ConnectErrors: b.stats.connectErrors,
			Waits: b.stats.waits, WaitDuration: b.stats.waitTime, Evictions: b.stats.evictions,
			Timeouts: b.stats.timeouts,
		}
		ss.InUse = ss.Open - ss.Idle
		if b.fleet != nil {
			ss.Fleet = b.fleet.statsLocked()
		}
		for _, t := range byBudget[b] {
			s.Tenants[t.id] = tenantStatsLocked(t, failures[t.id])
		}
		b.mu.Unlock()
		s.Servers[b.server] = ss
		s.Open += ss.Open
		s.Idle += ss.Idle
		s.InUse += ss.InUse
		s.Waiting += ss.Waiting
	}
	return s
}

// TenantStats returns the statistics of one tenant, if it is registered.
func (c *Connector) TenantStats(id string) (TenantStats, bool) {
	t := c.reg.get(id)
	if t == nil {
		return TenantStats{}, false
	}
	if t.tg == nil {
		// No URL under the connector's key: no pool, and no hooks here.
		return TenantStats{Ready: t.gate.Load().ok.Load()}, true
	}
	failures := c.copyHookFailures(t.id)
	t.tg.b.mu.Lock()
	defer t.tg.b.mu.Unlock()
	return tenantStatsLocked(t, failures[t.id]), true
}

// tenantStatsLocked reports t's figures, its readiness and its last hook
// failure f (zero: none). The caller holds t's budget's lock.
func tenantStatsLocked(t *tenant, f HookFailure) TenantStats {
	ts := t.tg.statsLocked()
	ts.Ready = t.gate.Load().ok.Load()
	if !f.Time.IsZero() {
		// A copy made here, so that only a tenant with a failure costs an
		// allocation (the address of f would move f to the heap for all).
		failure := f
		ts.LastHookFailure = &failure
	}
	return ts
}

// statsLocked reports a target's figures. Tenants that share a target
// report its figures, the sum of all of them: a shared session serves
// whichever of them needs it.
func (t *target) statsLocked() TenantStats {
	ts := TenantStats{
		Server:        t.b.server,
		Acquires:      t.stats.acquires,
		NewConns:      t.stats.newConns,
		ConnectErrors: t.stats.connectErrors,
		Waits:         t.stats.waits,
		WaitDuration:  t.stats.waitTime,
		Evictions:     t.stats.evictions,
		Timeouts:      t.stats.timeouts,
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
