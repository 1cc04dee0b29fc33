package driver

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/store"
)

// Defaults for the physical connection pools.
const (
	// DefaultMaxConns caps the connections a connector keeps open to one
	// PostgreSQL server, across all the tenants it holds. It is half of
	// PostgreSQL's default max_connections (100), which leaves room for a
	// second process, migrations and administrators; a pool per tenant
	// with no shared cap exceeds max_connections as soon as a few dozen
	// tenants keep idle connections.
	DefaultMaxConns = 50
	// DefaultIdleTimeout is how long an unused physical connection stays
	// open, and how long an unused tenant keeps its pool.
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultMaxConnLifetime bounds the age of a physical connection, as
	// pgxpool does, so server-side memory and changed settings are renewed.
	DefaultMaxConnLifetime = time.Hour
	// DefaultConnectTimeout bounds a dial (see WithConnectTimeout).
	DefaultConnectTimeout = 10 * time.Second
	// DefaultEvictionDelay is how long a caller waits for a connection of its
	// own tenant when all connections are taken, before it closes an idle
	// connection of another tenant. Closing at once makes busy tenants take
	// turns closing each other's connections: thousands of new server
	// sessions a second for no gain.
	DefaultEvictionDelay = 20 * time.Millisecond
)

// An Option configures a Connector.
type Option func(*config)

type config struct {
	maxConns          int
	serverBudgetOpts  []serverBudget // as given, in order
	serverBudgets     map[string]int // by server key; set by validate
	maxConnsPerTenant int            // 0: the tenant's server budget
	idleTimeout       time.Duration
	maxConnLifetime   time.Duration
	connectTimeout    time.Duration
	evictionDelay     time.Duration
	log               *slog.Logger
	hooks             Hooks
	hooksSet          bool
	hookConcurrency   int
	beforeConnect     func(ctx context.Context, tenant string, cfg *pgx.ConnConfig) error
	afterConnect      func(ctx context.Context, tenant string, conn *pgx.Conn) error
	allowBypassRLS    bool
	urlKey            string     // the deploy_info key of the tenants' database URLs
	budgetOwner       *Connector // WithBudgetsOf
	queryTracer       func(PoolInfo) pgx.QueryTracer
	poolEvents        func(PoolEvent)
	fleet             bool          // WithFleetBudget
	fleetTTL          time.Duration // WithFleetTTL
	fleetFallback     int           // WithFleetFallback
}

type serverBudget struct {
	server string
	n      int
}

func defaultConfig() config {
	return config{
		maxConns:        DefaultMaxConns,
		idleTimeout:     DefaultIdleTimeout,
		maxConnLifetime: DefaultMaxConnLifetime,
		connectTimeout:  DefaultConnectTimeout,
		evictionDelay:   DefaultEvictionDelay,
		hookConcurrency: 4,
		log:             slog.Default(),
		urlKey:          store.KeyPostgresURL,
		fleetTTL:        DefaultFleetTTL,
		fleetFallback:   DefaultFleetFallback,
	}
}

func (c *config) validate() error {
	switch {
	case c.maxConns < 1:
		return fmt.Errorf("tenantsql: WithMaxConns(%d): must be at least 1", c.maxConns)
	case c.maxConnsPerTenant < 0:
		return fmt.Errorf("tenantsql: WithMaxConnsPerTenant(%d): must be at least 1", c.maxConnsPerTenant)
	case c.idleTimeout <= 0:
		return fmt.Errorf("tenantsql: WithIdleTimeout(%v): must be positive", c.idleTimeout)
	case c.maxConnLifetime <= 0:
		return fmt.Errorf("tenantsql: WithMaxConnLifetime(%v): must be positive", c.maxConnLifetime)
	case c.connectTimeout <= 0:
		return fmt.Errorf("tenantsql: WithConnectTimeout(%v): must be positive", c.connectTimeout)
	case c.evictionDelay < 0:
		return fmt.Errorf("tenantsql: WithEvictionDelay(%v): must not be negative", c.evictionDelay)
	case c.hookConcurrency < 1:
		return fmt.Errorf("tenantsql: WithHookConcurrency(%d): must be at least 1", c.hookConcurrency)
	case c.log == nil:
		return fmt.Errorf("tenantsql: WithLogger(nil)")
	case c.fleetTTL < 100*time.Millisecond:
		return fmt.Errorf("tenantsql: WithFleetTTL(%v): must be at least 100ms", c.fleetTTL)
	case c.fleetFallback < 0:
		return fmt.Errorf("tenantsql: WithFleetFallback(%d): must not be negative", c.fleetFallback)
	}
	if err := store.ValidateKey(c.urlKey); err != nil {
		return fmt.Errorf("tenantsql: WithURLKey(%q): %w", c.urlKey, err)
	}
	// Key the budgets as serverKey keys servers, so a budget applies
	// however its server is spelled here and in the URLs. Of two budgets
	// for one server, the later wins, as with any option given twice.
	c.serverBudgets = make(map[string]int, len(c.serverBudgetOpts))
	for _, sb := range c.serverBudgetOpts {
		if sb.n < 1 {
			return fmt.Errorf("tenantsql: WithServerBudget(%q, %d): must be at least 1", sb.server, sb.n)
		}
		key, err := parseServerKey(sb.server)
		if err != nil {
			return fmt.Errorf("tenantsql: WithServerBudget(%q, %d): %w", sb.server, sb.n, err)
		}
		c.serverBudgets[key] = sb.n
	}
	return nil
}

// WithMaxConns sets the connection budget of each PostgreSQL server: the
// physical connections open at once to one server (tenants whose
// POSTGRES_URLs name the same host and port), idle ones included, across
// all its tenants (default DefaultMaxConns). Tenants on other servers do
// not compete for it. (*sql.DB).SetMaxOpenConns still caps how many are in
// use; this caps how many exist.
//
// A server is the host and port the URLs name (after pgx's parsing, so
// with its defaults), compared in a canonical form: host names without
// regard to case or a trailing dot ("DB1.Internal." is "db1.internal"),
// IP addresses as addresses ("0:0::1" is "::1", "::ffff:10.0.0.1" is
// "10.0.0.1"). A URL that lists fallback hosts names them all, in order.
//
// Names are not resolved, so aliases are different servers, each with a
// budget of its own: "localhost" and "127.0.0.1", two DNS names of one
// address, a CNAME and its target. Tenants spread over the aliases of one
// machine can open a budget's worth of sessions through each. The driver
// does not resolve names when it registers a tenant: that would block the
// goroutine following the tenant store, and with it every tenant change,
// on DNS, and the answer can change afterwards. Spell each server one way
// in all tenant URLs, or give each alias a budget of its own
// (WithServerBudget) so that together they stay within the server's
// max_connections.
func WithMaxConns(n int) Option { return func(c *config) { c.maxConns = n } }

// WithServerBudget sets the budget of one server, overriding WithMaxConns
// for it. server is "host:port" (an IPv6 address in brackets,
// "[fd00::1]:5432"), compared as WithMaxConns describes: "DB1.internal.:5432"
// names the server of "postgres://db1.internal/app". For tenants whose URLs
// list fallback hosts, give them all, comma-separated, in the URLs' order
// ("db1:5432,db2:5432"), as Stats names the server. It does not cover the
// server's aliases (see WithMaxConns). NewConnector reports a server that
// is not host:port; of two budgets given for one server, the later
// applies.
func WithServerBudget(server string, n int) Option {
	return func(c *config) {
		c.serverBudgetOpts = append(c.serverBudgetOpts, serverBudget{server, n})
	}
}

// WithMaxConnsPerTenant caps the physical connections of one tenant. The
// default is the budget of the tenant's server (WithServerBudget, else
// WithMaxConns), so one busy tenant can use all of it (pgxpool's own
// default of max(4, NumCPU) starves a busy tenant that database/sql would
// give more). A cap above a server's budget is that budget. It applies
// per connector, so per key (WithURLKey): a tenant may hold that many
// sessions through each *sql.DB, also with WithBudgetsOf (the owner's
// cap, for each connector's pool).
func WithMaxConnsPerTenant(n int) Option { return func(c *config) { c.maxConnsPerTenant = n } }

// WithIdleTimeout sets how long a physical connection may sit unused before
// it is closed; a tenant whose connections are all closed has no pool left
// at all until its next query (default DefaultIdleTimeout).
func WithIdleTimeout(d time.Duration) Option { return func(c *config) { c.idleTimeout = d } }

// WithMaxConnLifetime sets the age after which a physical connection is
// closed when it is next released or found idle (default
// DefaultMaxConnLifetime).
func WithMaxConnLifetime(d time.Duration) Option { return func(c *config) { c.maxConnLifetime = d } }

// WithConnectTimeout bounds each dial (default DefaultConnectTimeout); a
// connect_timeout in the tenant's URL bounds, within it, the attempt on
// each host the URL names. The caller's context does not bound the dial: a
// caller whose context ends first returns at once with its error, while
// the dial keeps its slot in the budget for up to this timeout and, if it
// succeeds, its connection joins the tenant's pool for the next caller.
// Cutting the dial short would leave a session half set up on the server
// after its slot had been given to someone else. Closing the connector
// waits for dials in flight, so this bounds Close too. WithBeforeConnect
// and WithAfterConnect run with the dial's context: the caller's values,
// this deadline.
func WithConnectTimeout(d time.Duration) Option { return func(c *config) { c.connectTimeout = d } }

// WithEvictionDelay sets how long a caller waits for its own tenant's
// connection, when the WithMaxConns cap is reached, before it closes an
// idle connection of another tenant (default DefaultEvictionDelay); it
// waits at least as long as a new session takes to start, whatever the
// delay, since its own connection is likely back first. A tenant with no
// connection in use has nothing to wait for and evicts at once.
func WithEvictionDelay(d time.Duration) Option { return func(c *config) { c.evictionDelay = d } }

// WithHooks sets the lifecycle hooks the connector runs (a
// *hooks.Registry). The default is the hooks package's default registry
// (hooks.Subscribe) if that package is linked in; WithHooks(nil) runs
// none.
//
// Two connectors of one application (WithURLKey) that should run the same
// hooks must be given the same registry, a pointer: a hook's query
// through the other connector then does not wait for that connector's
// hooks, which may be waiting for it. A Hooks of a type that == cannot
// compare (a func, a struct holding a slice) is never the same as
// another, and such a query waits as any other.
func WithHooks(h Hooks) Option {
	return func(c *config) { c.hooks, c.hooksSet = h, true }
}

// WithHookConcurrency sets how many tenants' hooks may run at once
// (default 4); one tenant's run one after another, in order.
func WithHookConcurrency(n int) Option { return func(c *config) { c.hookConcurrency = n } }

// WithLogger sets the logger for tenant changes and pool problems (default
// slog.Default()). Passwords are never logged.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithBeforeConnect runs f before each physical connection to a tenant's
// database is dialled, with a copy of the parsed configuration it may change
// (to fetch a short-lived password, add a tracer, ...).
func WithBeforeConnect(f func(ctx context.Context, tenant string, cfg *pgx.ConnConfig) error) Option {
	return func(c *config) { c.beforeConnect = f }
}

// WithAfterConnect runs f after each physical connection is established,
// before its first use (to set session parameters, register types, ...).
// An error closes the connection, waiting for the server to end the
// session before its slot in the budget is reused, and fails the query
// that needed it; the query's error wraps f's.
func WithAfterConnect(f func(ctx context.Context, tenant string, conn *pgx.Conn) error) Option {
	return func(c *config) { c.afterConnect = f }
}

// WithBypassRLS lets tenants told apart by custom settings (row-level
// security, app.tenant_id=42) log in with a role that bypasses row-level
// security: a superuser or a role with BYPASSRLS, to which no policy
// applies, so every such tenant would see every tenant's rows. By default
// their sessions are refused with ErrTenantConfig; turn this on only for
// roles whose isolation you enforce otherwise.
func WithBypassRLS(allow bool) Option {
	return func(c *config) { c.allowBypassRLS = allow }
}

// WithURLKey makes the connector route each tenant to the database named
// by another key of its deploy_info than POSTGRES_URL (the default), for
// a tenant with several databases: one *sql.DB per key, such as a
// default one on POSTGRES_URL and one on ANALYTICS_URL. Everything else
// works as for POSTGRES_URL: routing, budgets, pools replaced when the
// key's URL changes (and only then), lifecycle hooks. The key must be a
// valid deploy_info key (store.ValidateKey), checked by NewConnector.
//
// A tenant whose deploy_info lacks the key, or holds it empty, has no
// database for this connector: its queries fail with a
// *MissingURLKeyError (errors.Is ErrMissingURLKey), never reaching
// another key's database. A value that is not a postgres:// or
// postgresql:// URL fails them with ErrTenantConfig. For this connector a
// tenant that gains the key by an update is created: its create hooks run
// and gate its queries, as for a new tenant.
//
// The store URL option url_key=KEY does the same for sql.Open:
// sql.Open("tenantsql", "file:tenants.json?url_key=ANALYTICS_URL").
func WithURLKey(key string) Option { return func(c *config) { c.urlKey = key } }

// WithBudgetsOf makes the connector's pools draw on owner's per-server
// budgets instead of budgets of its own, so that two *sql.DB in one
// process, typically one on POSTGRES_URL and one on ANALYTICS_URL
// (WithURLKey), whose databases live on the same servers together stay
// within each server's budget: a session of either counts against it, and
// either may close the other's idle sessions to make room, by the usual
// rules. The budget options of owner apply (WithMaxConns,
// WithServerBudget, WithMaxConnsPerTenant, WithMaxConnLifetime,
// WithConnectTimeout, WithEvictionDelay, WithIdleTimeout); this
// connector's own are not used for them. Its other options (the key,
// hooks, connect callbacks) stay its own.
//
// Close this connector before owner: closing it closes its own pools,
// while closing owner closes the budgets, after which this connector's
// queries fail with ErrClosed. Its Close does not wait for its dials in
// flight (owner's does). Stats reports owner's servers and this
// connector's tenants. A connector that itself draws on another's budgets
// passes that one on.
func WithBudgetsOf(owner *Connector) Option { return func(c *config) { c.budgetOwner = owner } }

// PoolInfo describes the sessions of one pool to WithQueryTracer: the
// server and the database they reach.
type PoolInfo struct {
	// Server is the "host:port" whose budget the pool shares, as Stats
	// names it.
	Server string
	// Database is the database the sessions log in to.
	Database string
	// Tenant is the tenant whose database it is, or "" for a pool that
	// tenants share (their URLs differ only in settings): there the
	// tenant of a query is the one its context carries
	// (tenantctx.TenantFrom).
	Tenant string
}

// WithQueryTracer gives the sessions of each pool the pgx tracer newTracer
// returns for it (pgx.ConnConfig.Tracer), so that every statement the
// driver sends to a tenant's database is seen: its SQL, duration and
// error, with the caller's context (and so its tenant). The tracer may
// also implement pgx's other tracer interfaces (BatchTracer,
// ConnectTracer, PrepareTracer, ...). newTracer runs once per pool, when
// a tenant's pool is made, not per query, so it can prepare what its
// pool's queries share (attributes naming the server and database).
//
// Statements of tenants that share a pool (schemas, row-level security)
// are traced too, once each, with their tenant's context, although the
// driver sends them with their settings in a pipeline of its own: the
// settings are not traced apart. A new row-level-security session's
// role check (WithBypassRLS) is a statement of the driver's that the
// tracer sees.
//
// The telemetry package builds one that records query durations through
// OpenTelemetry. A tracer that WithBeforeConnect sets on the
// configuration runs too, after this one. Without this option no
// tracer is set and queries cost what they did.
func WithQueryTracer(newTracer func(PoolInfo) pgx.QueryTracer) Option {
	return func(c *config) { c.queryTracer = newTracer }
}

// A PoolEvent is a wait for a session or a dial of one, for
// WithPoolEvents.
type PoolEvent struct {
	Kind PoolEventKind
	// Server is the "host:port" whose budget the session counts against,
	// as Stats names it.
	Server string
	// Tenant is the tenant whose checkout waited or dialled: for a pool
	// that tenants share, the one whose checkout it was.
	Tenant string
	// Duration is how long the caller waited in the queue (PoolWait), or
	// the dial took (PoolDial).
	Duration time.Duration
	// Err is, for a wait, the caller's context error when it gave up
	// waiting (a timeout), or ErrClosed when the connector closed under
	// it; for a dial, why it failed. nil otherwise.
	Err error
}

// PoolEventKind tells the events of WithPoolEvents apart.
type PoolEventKind uint8

const (
	// PoolWait: a checkout found the budget or its tenant's cap full and
	// waited in the queue, until it was served or gave up.
	PoolWait PoolEventKind = iota + 1
	// PoolDial: a session was dialled, successfully or not.
	PoolDial
)

// WithPoolEvents calls f after each wait in a checkout queue and each
// dial, so that their durations can be recorded one by one (the
// telemetry package's histograms); Stats has their totals. A checkout
// served by an idle session, the common case, makes no event. f runs on
// the caller's goroutine (or the dial's), with no lock held: it must be
// quick and must not block.
func WithPoolEvents(f func(PoolEvent)) Option { return func(c *config) { c.poolEvents = f } }
