package migrate

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/tenantsql/tenantsql/store"
)

// Op is what a run does to each tenant.
type Op uint8

// Operations.
const (
	Up     Op = iota + 1 // apply every pending migration
	UpTo                 // apply pending migrations up to and including a version
	Down                 // roll back the last applied migration
	DownTo               // roll back migrations down to (not including) a version
	Status               // report applied and pending migrations, change nothing
)

func (o Op) String() string {
	switch o {
	case Up:
		return "up"
	case UpTo:
		return "up-to"
	case Down:
		return "down"
	case DownTo:
		return "down-to"
	case Status:
		return "status"
	}
	return fmt.Sprintf("migrate.Op(%d)", uint8(o))
}

// Lister lists the tenants to migrate; a store.Store is one. Run reads
// each tenant's URL (DeployInfo) under the key the *sql.DB routes by
// (POSTGRES_URL, or the one given driver.WithURLKey) to group the tenants that share
// their tables; the migrations themselves go through the *sql.DB, which
// finds the tenant by its id.
type Lister interface {
	List(ctx context.Context) ([]store.Tenant, error)
}

// Migrator runs goose migrations for tenants, each on its own database or
// in its own schema, or once for tenants that share their tables, through
// a tenantsql *sql.DB. It is safe for concurrent use; runs from
// several processes at once are safe too (see New).
type Migrator struct {
	db      *sql.DB
	tenants Lister
	fsys    fs.FS
	cfg     config
	table   string // goose's version table, as goose names it in SQL
	sources []*goose.Source
}

// New returns a Migrator for the migrations in fsys (an embed.FS, or
// os.DirFS(dir)), run through db, a *sql.DB opened with the tenantsql
// driver, for the tenants that tenants lists (a store.Store; it may be nil
// if only Tenant is used).
//
// The migrations are the NUMBER_name.sql and .go files at fsys's root,
// or, when the root holds none, in its "migrations" directory: the
// embed.FS of `//go:embed migrations/*.sql` keeps its files under
// "migrations/", and needs no fs.Sub. With no migrations at either, New
// fails with an error that wraps goose.ErrNoMigrations and says which
// fs.Sub to pass, if a directory further down holds them.
//
// Each tenant gets its own goose Provider for each run (a Provider creates
// its version table once and would fail on the second database), and each
// takes a PostgreSQL session lock for its version table (goose's own on a
// tenant's database, one per schema for schema tenants: see Locks in the
// package documentation), so concurrent runs, from several processes or a
// create hook racing a CLI run, apply each migration once: the later one
// waits for the lock and then finds it applied. Tenants with databases or
// schemas of their own do not wait for each other.
func New(db *sql.DB, tenants Lister, fsys fs.FS, opts ...Option) (*Migrator, error) {
	if db == nil || fsys == nil {
		return nil, errors.New("migrate: New needs a *sql.DB and the migrations' fs.FS")
	}
	cfg := defaultConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	given := fsys
	fsys, err := migrationsRoot(fsys)
	if err != nil {
		return nil, err
	}
	m := &Migrator{db: db, tenants: tenants, fsys: fsys, cfg: cfg, table: cmp.Or(cfg.table, goose.DefaultTablename)}
	// Check the migrations themselves now, so a bad directory fails here
	// rather than once per tenant.
	sources, err := m.checkSources()
	if errors.Is(err, goose.ErrNoMigrations) {
		return nil, noMigrations(given, err)
	}
	if err != nil {
		return nil, err
	}
	m.sources = sources
	return m, nil
}

// Sources lists the migrations.
func (m *Migrator) Sources() []*goose.Source { return slices.Clone(m.sources) }

// Run applies op to the selected tenants (WithTenants, WithExclude), at
// most WithConcurrency at once, and reports on each; tenants that share
// their tables are migrated once, and reported on together (see the
// package documentation). version is the target
// of UpTo and DownTo and ignored otherwise.
//
// The tenant list is taken once, at the start; a tenant created during the
// run is migrated by its create hook. When a tenant fails, the others go
// on (WithContinueOnError) or no new tenant starts (the default). When ctx
// ends, no new tenant starts either, and each started tenant finishes the
// migration it is running, if any, then stops: it is reported with an
// error wrapping ctx.Err() (context.Canceled for Ctrl-C) and what it did
// apply, so none is left in the middle of a migration. The error joins
// every tenant's, and says how many were not started; the report is
// complete either way.
func (m *Migrator) Run(ctx context.Context, op Op, version int64) (*Report, error) {
	if op < Up || op > Status {
		return nil, fmt.Errorf("migrate: unknown operation %v", op)
	}
	if (op == UpTo || op == DownTo) && version < 0 {
		return nil, fmt.Errorf("migrate: %v: version must not be negative", op)
	}
	start := time.Now()
	units, err := m.selectTenants(ctx)
	if err != nil {
		return nil, err
	}
	rep := &Report{Op: op, Version: version, DryRun: m.cfg.dryRun, Results: make([]TenantResult, len(units))}
	for i, u := range units {
		rep.Results[i] = TenantResult{Tenant: u.tenant, Covers: u.covers, Before: -1, After: -1, Skipped: true}
	}

	var (
		mu      sync.Mutex
		done    int
		stopped bool
		wg      sync.WaitGroup
		slots   = make(chan struct{}, m.cfg.concurrency)
	)
loop:
	for i, u := range units {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		mu.Lock()
		stop := stopped
		mu.Unlock()
		if stop || ctx.Err() != nil {
			<-slots
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			// ctx itself: runTenant protects the migrations of a
			// tenant that holds the lock from its end, and nothing else.
			res := m.runTenant(ctx, u.tenant, op, version)
			res.Covers = u.covers
			mu.Lock()
			rep.Results[i] = res
			done++
			if res.Err != nil && !m.cfg.continueOnError {
				stopped = true
			}
			n := done
			mu.Unlock()
			if f := m.cfg.progress; f != nil {
				f(Progress{Done: n, Total: len(units), Result: res})
			}
		}()
	}
	wg.Wait()
	rep.Duration = time.Since(start)
	errs := []error{rep.Err()}
	if err := ctx.Err(); err != nil && rep.skipped() > 0 {
		errs = append(errs, fmt.Errorf("migrate: stopped with %d tenants not started: %w", rep.skipped(), err))
	}
	return rep, errors.Join(errs...)
}

// selectTenants lists the tenants, keeps the included ones and drops the
// excluded ones, and groups those that share their tables (see group),
// sorted by the id each group runs through. Naming a tenant that does not
// exist is an error: a typo must not look like a successful run.
func (m *Migrator) selectTenants(ctx context.Context) ([]unit, error) {
	if m.tenants == nil {
		return nil, errors.New("migrate: Run needs a tenant lister (New was given nil)")
	}
	all, err := m.tenants.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: list tenants: %w", err)
	}
	known := make(map[string]bool, len(all))
	for _, t := range all {
		known[t.ID] = true
	}
	var missing []string
	for _, id := range append(slices.Clone(m.cfg.include), m.cfg.exclude...) {
		if !known[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("migrate: no such tenant: %s", strings.Join(missing, ", "))
	}
	return group(all, urlKeyOf(m.db), func(id string) bool {
		return len(m.cfg.include) == 0 || slices.Contains(m.cfg.include, id)
	}, func(id string) bool {
		return slices.Contains(m.cfg.exclude, id)
	})
}
