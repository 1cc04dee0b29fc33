package api

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Defaults.
const (
	// DefaultMaxBodyBytes bounds a request body. A tenant is an id and a
	// few URLs: 64 KiB is far more than any real one needs, and little
	// enough that a flood of requests cannot exhaust memory.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultMigrationTable is goose's version table.
	DefaultMigrationTable = "goose_db_version"
	// DefaultHealthConcurrency is how many tenants the health check probes
	// at once.
	DefaultHealthConcurrency = 8
	// DefaultHealthTimeout bounds the check of one tenant, and of the store.
	DefaultHealthTimeout = 2 * time.Second
)

// resolveTimeout bounds the look-ups of host names: those of the allow-list
// in New and those of a POSTGRES_URL in a request.
const resolveTimeout = 5 * time.Second

// An Option configures the handler New returns.
type Option func(*config)

// A HealthOption configures the per-tenant checks of WithHealth.
type HealthOption func(*healthConfig)

type config struct {
	token             string
	tokenSet          bool
	noAuth            bool
	maxBodyBytes      int64
	allowed           []string // as given; parsed by New
	allowedSet        bool
	serverCredentials bool
	health            *healthConfig
	stats             func(context.Context) any
	statsSet          bool
	ui                bool
	log               *slog.Logger
	resolver          *net.Resolver
	// lookup resolves a host name. Tests replace it to avoid DNS; in
	// production it is the resolver's LookupNetIP.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

type healthConfig struct {
	db          *sql.DB
	table       string
	concurrency int
	timeout     time.Duration
}

// WithToken makes every request present "Authorization: Bearer token".
// It is required unless WithoutAuth is given.
func WithToken(token string) Option {
	return func(c *config) { c.token, c.tokenSet = token, true }
}

// WithoutAuth turns authentication off, for local development. It must be
// asked for explicitly so that no deployment runs without a token by
// accident. Requests a browser sends for a page of another origin are
// then refused (403; see Browsers in the package documentation), but
// anything else that reaches the handler is served: listen on a loopback
// address.
func WithoutAuth() Option { return func(c *config) { c.noAuth = true } }

// WithMaxBodyBytes bounds request bodies (default DefaultMaxBodyBytes); a
// larger body is answered with 413.
func WithMaxBodyBytes(n int64) Option { return func(c *config) { c.maxBodyBytes = n } }

// WithAllowedHosts restricts the hosts a POSTGRES_URL may point at. Each
// entry is an IP address ("10.0.0.7", "::1"), a CIDR prefix
// ("10.0.0.0/8") or a host name ("db1.internal"). See the package
// documentation for the rule; in short, every address every host of the
// URL resolves to must be allowed, and a name entry stands for the
// addresses it resolved to when New ran. Without this option any host is
// accepted. Several calls add up.
func WithAllowedHosts(hosts ...string) Option {
	return func(c *config) {
		c.allowed = append(c.allowed, hosts...)
		c.allowedSet = true
	}
}

// WithServerCredentials accepts tenant URLs that connect with credentials
// of this machine rather than their own: a URL without a password when
// pgx would find one in PGPASSWORD, a password file (PGPASSFILE, or
// ~/.pgpass) or a service (PGSERVICE); a URL for which pgx would present
// a TLS client certificate (PGSSLCERT and PGSSLKEY, or
// ~/.postgresql/postgresql.crt and .key); and a URL whose host is a Unix
// socket, where the database may take the program for its
// operating-system user (peer authentication). It does not make file
// options (sslkey, passfile, ...) acceptable.
//
// Without it such URLs are refused with 400, and that is the default on
// purpose. Keeping passwords in ~/.pgpass is sound for tenants an
// operator writes into the store; but a URL that comes through the API is
// chosen by its client, who is trusted to name a database, not to use the
// program's credentials on any database of an allowed host. With a line
// such as "*:*:*:app:secret" in ~/.pgpass, a client could otherwise create
// a tenant for another application's database and reach it as app through
// the program; under WithoutAuth, so could anyone who reaches the API. A
// client that knows the password loses nothing: it puts it in the URL,
// which the store keeps and the API never shows.
//
// Give it only when every client of the API may use those credentials, for
// example when the API is for the operator alone.
func WithServerCredentials() Option { return func(c *config) { c.serverCredentials = true } }

// WithHealth makes GET /health-check/ check every tenant's database
// through db, a tenantsql *sql.DB: a ping, then the highest migration
// version.
func WithHealth(db *sql.DB, opts ...HealthOption) Option {
	return func(c *config) {
		h := &healthConfig{
			db:          db,
			table:       DefaultMigrationTable,
			concurrency: DefaultHealthConcurrency,
			timeout:     DefaultHealthTimeout,
		}
		for _, o := range opts {
			o(h)
		}
		c.health = h
	}
}

// WithMigrationTable names goose's version table (default
// DefaultMigrationTable). "schema.table" is accepted.
func WithMigrationTable(name string) HealthOption {
	return func(h *healthConfig) { h.table = name }
}

// WithHealthConcurrency sets how many tenants are checked at once (default
// DefaultHealthConcurrency).
func WithHealthConcurrency(n int) HealthOption {
	return func(h *healthConfig) { h.concurrency = n }
}

// WithHealthTimeout bounds the check of one tenant (default
// DefaultHealthTimeout).
func WithHealthTimeout(d time.Duration) HealthOption {
	return func(h *healthConfig) { h.timeout = d }
}

// WithStats enables GET /stats/, which answers f's result as JSON, for
// example driver.ConnectorOf(db).Stats().
func WithStats(f func(ctx context.Context) any) Option {
	return func(c *config) { c.stats, c.statsSet = f, true }
}

// WithUI serves the operator's page at /ui/: the tenants with their
// readiness, health, migration version and last hook failure, each
// server's budget with a live chart of its sessions, the store's status,
// and forms to create, update and delete tenants through the API. The
// page reads /stats/ when WithStats is given and /health-check/ (whose
// per-tenant figures need WithHealth).
//
// The page's files are served without the token: a browser loads a page
// without an Authorization header, and they hold no data. The page asks
// for the token, keeps it in memory only (not in storage, a cookie or the
// address) and sends it with each API request it makes, so every route
// but the files still needs it. The files carry a strict
// Content-Security-Policy: nothing but them runs or loads.
func WithUI() Option { return func(c *config) { c.ui = true } }

// WithLogger sets the logger for the audit log and for errors (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithResolver sets the resolver for the host names of the allow-list and
// of POSTGRES_URLs (default net.DefaultResolver).
func WithResolver(r *net.Resolver) Option { return func(c *config) { c.resolver = r } }

// withLookup replaces name resolution, for tests.
func withLookup(f func(ctx context.Context, host string) ([]netip.Addr, error)) Option {
	return func(c *config) { c.lookup = f }
}

// build applies opts and checks the result.
func build(opts []Option) (*config, error) {
	c := &config{maxBodyBytes: DefaultMaxBodyBytes}
	for _, o := range opts {
		o(c)
	}
	switch {
	case c.noAuth && c.tokenSet:
		return nil, errors.New("api: WithToken and WithoutAuth both given; use one")
	case c.noAuth:
	case !c.tokenSet || c.token == "":
		return nil, errors.New("api: no bearer token: pass api.WithToken(token) with a secret (for example from an environment variable), or api.WithoutAuth() for local development")
	case strings.TrimSpace(c.token) != c.token:
		// Header values are trimmed, so such a token could never match.
		return nil, errors.New("api: the token given to WithToken starts or ends with white space")
	}
	if c.maxBodyBytes <= 0 {
		return nil, fmt.Errorf("api: WithMaxBodyBytes(%d): want a positive size", c.maxBodyBytes)
	}
	if c.allowedSet && len(c.allowed) == 0 {
		return nil, errors.New("api: WithAllowedHosts needs at least one host, IP or CIDR")
	}
	if c.statsSet && c.stats == nil {
		return nil, errors.New("api: WithStats(nil): want a function")
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	if c.lookup == nil {
		r := c.resolver
		c.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return r.LookupNetIP(ctx, "ip", host)
		}
	}
	if h := c.health; h != nil {
		if h.db == nil {
			return nil, errors.New("api: WithHealth(nil): want the tenantsql *sql.DB")
		}
		if h.concurrency < 1 {
			return nil, fmt.Errorf("api: WithHealthConcurrency(%d): want at least 1", h.concurrency)
		}
		if h.timeout <= 0 {
			return nil, fmt.Errorf("api: WithHealthTimeout(%s): want a positive duration", h.timeout)
		}
		if err := checkTableName(h.table); err != nil {
			return nil, fmt.Errorf("api: WithMigrationTable(%q): %w", h.table, err)
		}
	}
	return c, nil
}

func tokenDigest(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }
