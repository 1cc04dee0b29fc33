package driver

import "time"

// WithFleetBudget makes the processes that share the tenant store share
// each server's budget (WithMaxConns, WithServerBudget): together they
// open no more sessions on a server than its budget, where without it
// each process may open a budget's worth. The store must be able to share
// a budget (a store.Leaser: the Redis store); NewConnector fails with
// ErrFleetUnsupported otherwise. The sql.Open form is the store URL option
// fleet_budget=on.
//
// Each process leases its part of a server's budget from the store and
// renews the lease every third of WithFleetTTL: it asks for the sessions
// in use, the callers waiting and one more, keeps idle sessions used in
// the last second, and gives the rest back, so slots move to the processes
// that need them. A process that holds more than its fair share while
// others want slots opens no more from the reply that tells it so, and
// gives the difference back as soon as its sessions over it have come
// back; while its callers wait it renews every 250ms.
// A caller that has to wait with the lease used up makes the process ask
// for more at once; a checkout that finds an idle session of its tenant
// never talks to the store. A process grows its lease before it dials
// and closes sessions before it asks for less, so the leases bound the
// sessions at every moment. The budget in force is the least any live
// process configured.
//
// One slot of the budget stays free for each live process that holds
// none, up to a tenth of the budget or one (store.Leaser), so that an idle
// process serves its first query at once instead of after the busy ones'
// next renewal; the busy process gets the rest.
//
// A process that crashes keeps its slots until its lease expires
// (WithFleetTTL; its sessions end when its sockets close, at once on the
// same host; for a lost host, when TCP keepalives give up: set
// tcp_keepalives_idle and friends on the server to bound that). A process
// that cannot reach the store keeps its lease until it expires, then
// falls back to WithFleetFallback sessions per server until it reaches
// the store again. A closed connector gives its leases back,
// except on a server where sessions are still in use, whose lease
// expires instead.
//
// The bound holds while every process is live and scheduled, the store
// keeps its leases (Redis does not fail over to a replica that missed the
// last grants: it replicates asynchronously, so a Sentinel or Cluster
// failover may lose a grant and give its slots again; on Sentinel,
// min-replicas-to-write narrows that window), the clocks of Redis and of
// the processes run at the same rate (synchronised, slewed rather than
// stepped: Redis expires leases on its own clock, a process on its own,
// with a margin of a tenth of WithFleetTTL), and the sessions in use when
// a process loses its lease are released by the lease's expiry. A process
// loses its lease when it cannot renew it: the store unreachable or not
// answering, the process paused or starved past it. Its cap drops to the
// fallback share a tenth of the TTL before the expiry, whether or not a
// renewal is still under way: it dials no more and closes idle sessions
// over the share, but sessions in use are not killed (their transactions
// run on) and end only as they are released, while the store may already
// have given their slots to other processes. The fleet may then exceed
// the budget by, for each process cut off, its fallback share and its
// sessions in use beyond it until they are released. A process that
// joins with a smaller budget lowers the budget in force at once for new
// grants; the others give back down to it on their next renewal.
//
// Stats reports each server's lease (ServerStats.Fleet).
func WithFleetBudget() Option { return func(c *config) { c.fleet = true } }

// WithFleetTTL sets how long a lease of the fleet budget lasts unless
// renewed (default DefaultFleetTTL, at least 100ms): a crashed process's
// slots come back after at most that long, and a process cut off from the
// store keeps its slots that long. Renewals cost one store round trip per
// server every third of it.
func WithFleetTTL(d time.Duration) Option { return func(c *config) { c.fleetTTL = d } }

// WithFleetFallback sets the sessions per server a process may keep once
// its lease of the fleet budget has expired with the store unreachable,
// when it could not lease at all, or, while its lease holds, after a
// renewal failed, so that callers need not wait for the expiry (default DefaultFleetFallback; 0
// stops its queries until the store is back, which keeps the budget at
// the cost of availability). It is at most the server's budget: a larger
// n gives the whole budget.
func WithFleetFallback(n int) Option { return func(c *config) { c.fleetFallback = n } }
