package tenanttest

import (
	"io/fs"

	"github.com/tenantsql/tenantsql/driver"
)

// Where New finds PostgreSQL when WithPostgresURL is not given. The
// variable and the default are the ones this project's own tests use.
const (
	// EnvPostgresURL names the environment variable holding the test
	// server's URL.
	EnvPostgresURL = "TENANTSQL_TEST_POSTGRES_URL"
	// DefaultPostgresURL is the local server of a development machine or
	// a CI job. The password is ignored under trust authentication.
	DefaultPostgresURL = "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"
)

// DefaultPrefix begins the names of the databases New creates.
const DefaultPrefix = "tenanttest"

// An Option configures New.
type Option func(*config)

type config struct {
	postgresURL string
	migrations  fs.FS
	prefix      string
	driverOpts  []driver.Option
	keep        bool
}

// WithPostgresURL sets the server on which New creates the tenant
// databases: a postgres:// URL of a role allowed to create databases. Its
// database is used for CREATE and DROP DATABASE only; its other parameters
// (sslmode, ...) are kept in every tenant's URL. The default is the
// EnvPostgresURL environment variable, else DefaultPostgresURL.
func WithPostgresURL(url string) Option { return func(c *config) { c.postgresURL = url } }

// WithMigrations makes New apply the goose migrations in fsys (os.DirFS,
// an embed.FS) to every tenant database, with the migrate package, before
// it returns. A migration that fails fails the test. The embed.FS of
// `//go:embed migrations/*.sql` is taken as it is (see migrate.New).
func WithMigrations(fsys fs.FS) Option { return func(c *config) { c.migrations = fsys } }

// WithPrefix sets the beginning of the database names (default
// DefaultPrefix): lower-case letters, digits and underscores, starting
// with a letter, short enough for the whole name to fit PostgreSQL's 63
// bytes (about 40 bytes).
func WithPrefix(prefix string) Option { return func(c *config) { c.prefix = prefix } }

// WithDriverOptions passes options to driver.NewConnector after New's own
// driver.WithHooks(nil), so they can override it: the default runs no
// lifecycle hooks, not even those registered with hooks.Subscribe.
func WithDriverOptions(opts ...driver.Option) Option {
	return func(c *config) { c.driverOpts = append(c.driverOpts, opts...) }
}

// WithKeep(true) keeps the databases when the test ends, for looking into
// after a failure; their names and URLs are logged. Drop them by hand.
func WithKeep(keep bool) Option { return func(c *config) { c.keep = keep } }
