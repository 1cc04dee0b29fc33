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
// others want slots gives the difference back as its sessions come back.
// A caller that has to wait with the lease used up makes the process ask
// for more at once; a checkout that finds an idle session of its tenant
// never talks to the store. A process grows its lease before it dials
// and closes sessions before it asks for less, so the leases bound the
// sessions at every moment. The budget in force is the least any live
// process configured.
//
// A process that crashes keeps its slots until its lease expires
// (WithFleetTTL; its sessions end when its sockets close, at once on the
// same host; for a lost host, when TCP keepalives give up: set
// tcp_keepalives_idle and friends on the server to bound that). A process
// that cannot reach the store keeps its lease until it expires, then
// falls back to WithFleetFallback sessions per server until it reaches
// the store again: the fleet may then exceed the budget by that many
// sessions per process cut off. A closed connector gives its leases back,
// except on a server where sessions are still in use, whose lease
// expires instead.
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
// or when it could not lease at all (default DefaultFleetFallback; 0
// stops its queries until the store is back, which keeps the budget at
// the cost of availability).
func WithFleetFallback(n int) Option { return func(c *config) { c.fleetFallback = n } }
