// Package driver is the tenantsql database/sql driver: one *sql.DB for all
// tenants, each query routed to the PostgreSQL database of the tenant named
// in its context.
//
//	import _ "github.com/tenantsql/tenantsql/driver"
//
//	db, err := sql.Open("tenantsql", "file:tenant_config.json")
//	...
//	ctx = tenantctx.WithTenant(ctx, "tenant-2.test.com")
//	rows, err := db.QueryContext(ctx, "SELECT ...") // runs on tenant-2's database
//
// The data source name is a tenant store URL (see store.Open). Use
// NewConnector and sql.OpenDB to pass options or a store of your own.
//
// # How a query finds its database
//
// database/sql pools connections and tells a driver almost nothing about who
// uses one: it may open a connection from a background goroutine whose
// context names no tenant and hand it to any waiting caller, and it reuses a
// prepared statement for later callers on the same connection. So the
// connections it pools are virtual. The first operation of each checkout
// (Exec, Query, Prepare, Begin, Ping) reads the tenant from that
// operation's context and binds a physical pgx connection from that
// tenant's pool; the binding holds until database/sql takes the connection
// back, so Rows, a Tx and a *sql.Conn keep one session throughout; then the
// physical connection goes back to its tenant's pool. Prepared statements
// hold only their SQL text and run on whatever is bound for the caller;
// pgx's statement cache prepares them per session.
//
// Every path fails closed: no tenant in the context is ErrNoTenant, a tenant
// the store does not know is ErrUnknownTenant, and a Tx or *sql.Conn used
// with another tenant's context is ErrTenantMismatch. None of them is
// driver.ErrBadConn, so database/sql never retries them, and there is no
// default database. The exception is (*sql.DB).Ping without a tenant,
// which start-up code and ORMs call: it reports whether the tenant store is
// usable and touches no tenant database. (A *sql.Conn already bound to a
// tenant fails closed there too.)
//
// # Tenants that share a database
//
// A tenant's POSTGRES_URL may carry session settings: search_path (a
// schema per tenant) and custom settings, whose name has a dot
// (app.tenant_id=42, read by row-level security policies). Tenants whose
// URLs are the same apart from those share one pool of sessions. Each of
// their statements is sent in one round trip with set_config(name, value,
// true) for its tenant, so the settings last that statement's transaction
// only: safe behind a transaction pooler, and never seen by the next
// tenant. A session going from one tenant to another is cleaned (RESET
// ALL, advisory locks) or, when it holds what cannot be cleaned (temporary
// objects, LISTEN, another role), closed. A schema tenant's statements
// are not prepared, so tenants at different schema versions never share a
// result description; row-level-security tenants' statements and the
// settings statements are, per session, unless the URL's
// default_query_exec_mode says otherwise (behind PgBouncer). Row-level-security tenants whose login role bypasses RLS are
// refused unless WithBypassRLS(true).
//
// # Several databases per tenant
//
// A *sql.DB routes by one key of the tenants' deploy_info: POSTGRES_URL by
// default, another with WithURLKey or the store URL option url_key, for
// tenants that have, say, a default and an analytics database:
//
//	db, err := sql.Open("tenantsql", "file:tenants.json")                          // POSTGRES_URL
//	adb, err := sql.Open("tenantsql", "file:tenants.json?url_key=ANALYTICS_URL")    // ANALYTICS_URL
//
// Each is a connector of its own, with the same routing, lifecycle and
// hooks: an update that changes only ANALYTICS_URL replaces only adb's
// pool for that tenant (db's sessions stay), a delete closes both. A
// tenant whose deploy_info lacks the key, or holds it empty, fails closed
// on adb with a *MissingURLKeyError naming the tenant and the key
// (errors.Is ErrMissingURLKey and ErrTenantConfig); it is never sent to
// POSTGRES_URL. A value that is not a postgres:// URL is ErrTenantConfig.
// For adb, a tenant that gains the key by an update is created: its
// create hooks run there and gate its queries. A tenant without the key
// runs no hooks on adb.
//
// Budgets belong to a connector: by default db and adb each have
// WithMaxConns (or WithServerBudget) connections per server, so where both
// keys' databases live on one server, that server sees up to the sum (two
// *sql.DB opened with sql.Open: 50 each). To keep them within one budget,
// open adb with NewConnector and WithBudgetsOf(dbConnector): its pools
// then draw on db's per-server budgets (db's budget options apply), either
// may take the other's idle sessions by the usual rules, and the two
// together open no more than the one budget. Close adb before db: db's
// Close closes the budgets. Otherwise give each connector a share that
// fits (WithMaxConns(30) and WithMaxConns(20)). Budgets are not shared
// between connectors by default: a budget is closed, and its sessions
// waited for, by the connector that owns it, and carries that connector's
// options.
//
// Hooks: give adb a registry of its own (WithHooks), holding the hooks of
// the analytics databases, hooks.Migrate(adb, analyticsMigrations) among
// them. With one registry for both (hooks.Subscribe, sql.Open), each
// *sql.DB runs every hook, as any two do; a hook's query through the other
// *sql.DB does not wait for that one's hooks (they may be waiting for this
// one's), so this works too, at the cost of running every hook twice; if
// those hooks have failed, it fails with ErrTenantNotReady as any query
// does. With a registry each, a hook's query through the other *sql.DB
// waits for that one's hooks as any query does. A tenant without
// ANALYTICS_URL runs no hooks on adb; with one registry, db runs adb's
// hooks for it too: hooks.Migrate(adb, ...) takes ErrMissingURLKey for
// nothing to migrate, but a hook of your own that queries adb gets the
// error, which leaves the tenant not ready on db (ErrTenantNotReady).
// hooks.Databases and hooks.Schemas provision the database of
// POSTGRES_URL only: create the databases of other keys beforehand, or in
// a hook of your own.
//
// WithMaxConnsPerTenant applies per connector, so per key: a tenant may
// hold that many sessions through db and as many through adb, also with
// WithBudgetsOf (the owner's cap, for each connector's pool).
//
// # Connections
//
// Each tenant has a pool of physical connections, created on first use and
// dropped after WithIdleTimeout without use. The pools of the tenants on one
// PostgreSQL server (same host and port in their URLs) share that server's
// budget of open connections (WithMaxConns, default 50, half of
// PostgreSQL's default max_connections; WithServerBudget for one server);
// tenants on other servers do not compete for it. Host names are compared
// without regard to case or a trailing dot, and IP addresses as addresses,
// but names are not resolved (that would make every tenant change wait on
// DNS, for an answer that can change): "localhost" and "127.0.0.1", or a
// CNAME and its target, are two servers, with a budget each. Spell each
// server one way in the URLs, or give each alias its own budget (see
// WithMaxConns). When a budget is full, a tenant with no connection takes
// the slot of an idle one at once, a surplus connection (whose tenant keeps
// another) before any tenant's last, the least recently used first. A
// caller whose tenant has connections waits for one of them, at least the
// eviction delay and as long as a session takes to start, then takes only
// a cold surplus connection or the last one of a dormant tenant (unused
// for 30 s), never the last connection of a tenant in use, so evictions
// cannot feed each other. Waiting callers are served first come, first
// served across tenants, so none starves behind a busy one. A slot is reused only once the server has closed the
// old session, so the server does not see more sessions than the budget,
// with three exceptions, each brief: a session closed while still busy
// (pgx closes those without waiting for the server), a server that does
// not confirm the end within 5 seconds (the slot is freed anyway), and a
// session whose network path broke, which the server keeps until it
// notices. A tenant may be capped too (WithMaxConnsPerTenant; by default
// it may use its server's whole budget).
// (*sql.DB).SetMaxOpenConns still caps the connections in use; set
// SetMaxIdleConns to the same value, since database/sql's default of 2 makes
// it discard virtual connections (cheap) and with them the session each
// was last given (worth about 10%).
//
// # Several processes: the fleet budget
//
// Each process keeps its own budgets, so ten processes with a budget of 80
// can open 800 sessions on one server. With WithFleetBudget (store URL
// option fleet_budget=on) and the Redis store, the processes that share
// the store share each server's budget instead: each leases its part from
// Redis (store.Leaser) and renews the lease in the background, growing it
// (lease first, then dial) when its callers wait and shrinking it (close
// sessions first, then lease less) when its sessions sit unused or another
// process wants its fair share. A checkout that finds an idle session of
// its tenant never talks to Redis. A crashed process's share comes back
// when its lease expires (WithFleetTTL, default 10 s); a process that
// cannot reach Redis keeps its lease until then, and afterwards a small
// local share (WithFleetFallback, default 1 session per server) until
// Redis is back. The budget holds while the processes are live, Redis
// keeps its leases (a failover to a replica that missed the last grants
// loses them), the clocks run at the same rate, and sessions in use when
// a process loses its lease are released by its expiry; otherwise the
// fleet may exceed it by each cut-off process's fallback share and its
// sessions in use beyond that, until released (WithFleetBudget says
// more). Stats reports each server's lease (ServerStats.Fleet).
//
// Tenants are followed live: a tenant added to the store is usable at once,
// one whose POSTGRES_URL changes gets a new pool while work in flight
// finishes on the old one, and a deleted one is refused. With lifecycle
// hooks (package hooks, WithHooks) a tenant created while the process
// runs is ready once its create hooks have succeeded here: until then its
// queries wait, bounded by their context, and if a hook failed they get
// ErrTenantNotReady. An update that moves a tenant to another database is
// gated the same way by its update hooks. A query for a tenant the store has
// but this process has not received yet waits for the change rather than
// failing.
//
// Within a process, routing is linearizable: once a Create, Update or
// Delete on the store the connector follows has returned, every query
// started afterwards uses what it wrote or a later change (the stores of
// package store are store.Sequencers; the connector waits, before a
// checkout, for the changes they have published). Work in flight (a Tx,
// Rows, a *sql.Conn) finishes on the configuration it began on. Other
// processes see a change within the store's propagation delay.
//
// A hook's queries made with its context run on the configuration of the
// hook's own change, even when a later change has replaced it, and do not
// wait for the tenant to be ready.
//
// Stats (per server and per tenant), TenantStats, StoreStatus and
// ConnectorOf expose the pools and the store; WithQueryTracer gives the
// sessions a pgx tracer and WithPoolEvents reports each wait and dial
// (the telemetry package uses them to report these figures and their
// durations through OpenTelemetry without the driver importing it);
// (*sql.Conn).Raw
// with (*Conn).PgxConn gives the bound *pgx.Conn for CopyFrom, batches and
// LISTEN.
package driver
