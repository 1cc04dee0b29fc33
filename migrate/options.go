package migrate

import (
	"context"
	"fmt"
	"time"

	"github.com/pressly/goose/v3"
)

// An Option configures a Migrator.
type Option func(*config)

type config struct {
	concurrency     int
	continueOnError bool
	include         []string
	exclude         []string
	dryRun          bool
	progress        func(Progress)
	observe         Observer
	table           string
	lockTimeout     time.Duration
	gooseOpts       []goose.ProviderOption
}

func defaultConfig() config {
	return config{concurrency: 4, lockTimeout: 5 * time.Minute}
}

func (c *config) validate() error {
	if c.concurrency < 1 {
		return fmt.Errorf("migrate: WithConcurrency(%d): must be at least 1", c.concurrency)
	}
	if c.lockTimeout < time.Second {
		return fmt.Errorf("migrate: WithLockTimeout(%v): must be at least a second", c.lockTimeout)
	}
	return nil
}

// WithConcurrency sets how many tenants are migrated at once (default 4).
// Each holds one connection of the *sql.DB while it runs (Go migrations
// without a transaction use a second one): keep it below the DB's
// SetMaxOpenConns.
func WithConcurrency(n int) Option { return func(c *config) { c.concurrency = n } }

// WithContinueOnError makes a run go on with the other tenants when one
// fails. By default no new tenant starts after a failure (tenants already
// running finish).
func WithContinueOnError(on bool) Option { return func(c *config) { c.continueOnError = on } }

// WithTenants limits a run to these tenants.
func WithTenants(ids ...string) Option {
	return func(c *config) { c.include = append(c.include, ids...) }
}

// WithExclude leaves these tenants out of a run.
func WithExclude(ids ...string) Option {
	return func(c *config) { c.exclude = append(c.exclude, ids...) }
}

// WithDryRun makes a run report what it would apply or roll back for each
// tenant (TenantResult.Pending), as goose would, without changing
// anything: it takes no lock and creates nothing, not even goose's
// version table on a tenant that has none (its version is then 0).
func WithDryRun(on bool) Option { return func(c *config) { c.dryRun = on } }

// WithProgress calls f after each tenant finishes, from the goroutine that
// ran it; f must be safe for concurrent use.
func WithProgress(f func(Progress)) Option { return func(c *config) { c.progress = f } }

// WithTableName sets goose's version table (default goose_db_version).
func WithTableName(name string) Option { return func(c *config) { c.table = name } }

// WithLockTimeout bounds how long a tenant waits for another run's lock on
// its database, each time it needs it (once per migration), before it
// fails (default 5 minutes). The end of the run's context ends the wait
// too.
func WithLockTimeout(d time.Duration) Option { return func(c *config) { c.lockTimeout = d } }

// WithGooseOptions passes options to every goose Provider (for example
// goose.WithGoMigrations, goose.WithAllowOutofOrder). The session locker,
// the global registry (disabled) and the logger are set by the Migrator.
// Name the version table with WithTableName: a goose.WithTableName here is
// overridden by it (default goose_db_version), since the Migrator reads
// the table itself, to see what is pending without taking the lock or
// creating the table, and must read the one goose writes.
//
// With goose.WithAllowOutofOrder, migrations older than a tenant's version
// that it has not applied (merged late from a branch) are applied by Up,
// and UpTo a version at or above them, first, as goose does; without it,
// Up and UpTo fail on them with goose's error, as does a dry run.
func WithGooseOptions(opts ...goose.ProviderOption) Option {
	return func(c *config) { c.gooseOpts = append(c.gooseOpts, opts...) }
}

// An Observer is called as a tenant's run starts (in Run, or Tenant), with
// the run's context, the tenant, the operation and its version (UpTo and
// DownTo), and returns the context the tenant's run uses instead
// (carrying a span, for one) and the function to call with the tenant's
// result when it ends.
//
// It is how the telemetry package traces migrations (telemetry's
// MigrateObserver) without this package importing OpenTelemetry: a
// program that migrates without it compiles none.
type Observer func(ctx context.Context, tenant string, op Op, version int64) (context.Context, func(TenantResult))

// WithObserver reports each tenant's run to o; o must be safe for
// concurrent use (tenants run at once, WithConcurrency).
func WithObserver(o Observer) Option { return func(c *config) { c.observe = o } }
