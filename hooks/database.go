package hooks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantsql/tenantsql/internal/pgurl"
	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/store"
)

// A DatabaseOption configures Databases.
type DatabaseOption func(*databaseConfig)

type databaseConfig struct {
	maintenance string         // the database the hooks connect to
	dropTenants migrate.Lister // non-nil: build the drop hook
}

// DefaultMaintenanceDatabase is the database Databases' hooks connect to
// unless told otherwise (MaintenanceDatabase): the one every PostgreSQL
// server has, as createdb and dropdb use.
const DefaultMaintenanceDatabase = "postgres"

// MaintenanceDatabase makes Databases' hooks connect to database name
// instead of DefaultMaintenanceDatabase to create and drop tenants'
// databases: for a server whose roles may not connect to postgres.
func MaintenanceDatabase(name string) DatabaseOption {
	if name == "" {
		panic("hooks: MaintenanceDatabase: empty database name")
	}
	return func(c *databaseConfig) { c.maintenance = name }
}

// DropDatabaseOnDelete makes Databases return a delete hook too, which
// drops a deleted tenant's database with everything in it (DROP DATABASE
// ... WITH (FORCE), which ends the sessions still connected to it;
// PostgreSQL 13 or later). Before dropping, the hook lists the tenants
// (tenants, usually the store.Store the *sql.DB follows) and keeps the
// database if another tenant still uses it: one whose POSTGRES_URL names
// the same host, port and database, such as the tenant created again under
// the same id, or tenants that share the database (in schemas, or with
// row-level security). It never drops postgres, template0, template1 or
// the maintenance database.
func DropDatabaseOnDelete(tenants migrate.Lister) DatabaseOption {
	if tenants == nil {
		panic("hooks: DropDatabaseOnDelete: nil tenant lister")
	}
	return func(c *databaseConfig) { c.dropTenants = tenants }
}

// Databases returns the hooks that provision a tenant's database: the
// database its POSTGRES_URL names (postgres://app:pw@db1/tenant_42 is
// database tenant_42 on db1), whether the tenant has it to itself or
// shares it with others (in schemas, or with row-level security).
//
// create creates the tenant's database if it does not exist (CREATE
// DATABASE, owned by the URL's role). Subscribe it to OnCreate, before
// the schema hook (Schemas) if there is one, so that both run before the
// PostCreate hooks (Migrate, whose tables go into the database), and to
// OnUpdate for tenants that move to another database: on an update that
// keeps POSTGRES_URL it does nothing. A database that tenants share is
// created once, by the first of them; for the others it exists.
//
// drop, returned only with the DropDatabaseOnDelete option (nil
// otherwise), drops the database of a deleted tenant unless another tenant
// still uses it: its tables and their data are gone. Subscribe it to
// PostDelete. Without it, deleting a tenant keeps its database and data.
//
//	create, drop := hooks.Databases(hooks.DropDatabaseOnDelete(tenantStore))
//	hooks.Subscribe(hooks.OnCreate, create)
//	hooks.Subscribe(hooks.OnUpdate, create)
//	hooks.Subscribe(hooks.PostDelete, drop)
//
// They do not go through the tenantsql driver, which cannot reach a
// database that does not exist: each opens one short-lived pgx connection
// to the tenant's server, on the tenant's URL with the maintenance
// database (postgres unless MaintenanceDatabase says otherwise) in place
// of the tenant's, without its tenant settings (search_path and custom
// settings), with the same credentials. That role must be allowed to
// create databases (CREATEDB) for a database that does not exist yet, and
// to drop the database (its owner) for drop; when it may not, the hook
// returns the server's error. Database names are quoted as identifiers, so
// any name is safe. Running the hooks in several processes at once is
// safe: create looks in pg_database first, creates under an advisory lock
// of the maintenance database keyed by the name, and takes a database
// another process created meanwhile for success; a database dropped
// meanwhile is not an error either.
//
// They read POSTGRES_URL only, whichever *sql.DB runs them: a tenant's
// databases under other keys (driver.WithURLKey, such as ANALYTICS_URL)
// are not created or dropped by them. Create those beforehand (the
// tenant's deploy_info then names a database that exists), or in a hook
// of your own that connects with that key's URL.
//
// Errors name the tenant and the database and show no password (where the
// password is also the user or database name, those are masked too). Each
// database created or dropped is logged at level Info, to the logger of
// the Registry that runs the hook (slog.Default() for a hook called
// directly), with the tenant and the database. Registry.Subscribe names the
// hooks "hooks.Databases.create" and "hooks.Databases.drop".
func Databases(opts ...DatabaseOption) (create, drop Func) {
	cfg := databaseConfig{maintenance: DefaultMaintenanceDatabase}
	for _, o := range opts {
		o(&cfg)
	}
	maintenance := cfg.maintenance
	create = named("hooks.Databases.create", func(ctx context.Context, ev Event) error {
		if (ev.Kind == OnUpdate || ev.Kind == PostUpdate) && ev.Old.PostgresURL() == ev.Tenant.PostgresURL() {
			return nil
		}
		return scrubTenant(createDatabase(ctx, ev.Tenant, maintenance), ev.Tenant)
	})
	if cfg.dropTenants != nil {
		tenants := cfg.dropTenants
		drop = named("hooks.Databases.drop", func(ctx context.Context, ev Event) error {
			return scrubTenant(dropDatabase(ctx, ev.Tenant, maintenance, tenants), ev.Tenant)
		})
	}
	return create, drop
}

// tenantDatabase is a tenant's database and how to reach its server's
// maintenance database.
type tenantDatabase struct {
	name     string          // the tenant's database; "" if its URL names none
	quoted   string          // name quoted as an identifier
	where    string          // the tenant's URL, redacted, for errors
	conn     *pgx.ConnConfig // the maintenance database, without tenant settings
	password string          // the password conn uses, kept out of errors
	secrets  []string        // every password the tenant's URL may hold
}

// databaseOf reads a tenant's URL as the driver does and points a copy
// of its connection settings at the maintenance database.
func databaseOf(t store.Tenant, maintenance string) (tenantDatabase, error) {
	raw := t.PostgresURL()
	base, _, ok := pgurl.SplitSettings(raw)
	if !ok {
		base = raw // a keyword/value string: its tenant settings go below
	}
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		why := pgurl.ParseFailure(raw, func(s string) error { _, err := pgx.ParseConfig(s); return err })
		return tenantDatabase{}, fmt.Errorf("tenant %q: cannot parse its POSTGRES_URL: %s", t.ID, why)
	}
	for k := range cfg.RuntimeParams {
		if pgurl.IsTenantSetting(k) {
			delete(cfg.RuntimeParams, k)
		}
	}
	td := tenantDatabase{
		name:     cfg.Database,
		quoted:   pgx.Identifier{cfg.Database}.Sanitize(),
		where:    store.RedactURL(raw),
		password: cfg.Password,
		secrets:  pgurl.Secrets(raw),
	}
	cfg.Database = maintenance // fallback hosts share it
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	td.conn = cfg
	return td, nil
}

// protectedDatabase reports a database the drop hook never drops.
func protectedDatabase(name, maintenance string) bool {
	switch name {
	case "postgres", "template0", "template1", maintenance:
		return true
	}
	return false
}

// connectMaintenance opens a connection to the maintenance database of a
// tenant's server.
func connectMaintenance(ctx context.Context, id string, td tenantDatabase) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, td.conn)
	if err != nil {
		return nil, fmt.Errorf("tenant %q: connect to database %s on its server (%s) to provision database %s: %w",
			id, pgx.Identifier{td.conn.Database}.Sanitize(), td.where, td.quoted, td.scrub(err))
	}
	return conn, nil
}

// scrub masks the tenant's passwords in err's text.
func (td tenantDatabase) scrub(err error) error {
	return scrub(err, append([]string{td.password}, td.secrets...))
}

func createDatabase(ctx context.Context, t store.Tenant, maintenance string) error {
	td, err := databaseOf(t, maintenance)
	if err != nil || td.name == "" || td.name == maintenance {
		return err
	}
	conn, err := connectMaintenance(ctx, t.ID, td)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	exists := func() (bool, error) {
		var ok bool
		err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", td.name).Scan(&ok)
		if err != nil {
			return false, fmt.Errorf("tenant %q: look for database %s: %w", t.ID, td.quoted, td.scrub(err))
		}
		return ok, nil
	}
	// Most creates find the database there (every process runs the hook,
	// and tenants may share a database): no lock, and no CREATEDB needed.
	if ok, err := exists(); ok || err != nil {
		return err
	}
	// Two CREATE DATABASE of one name at once: one waits for the other,
	// then fails with duplicate_database or a unique violation on
	// pg_database. Processes of this library take turns on an advisory
	// lock instead, held by this session until it ends, and look again.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended('tenantsql: create database ' || $1, 0))", td.name); err != nil {
		return fmt.Errorf("tenant %q: lock to create database %s: %w", t.ID, td.quoted, td.scrub(err))
	}
	if ok, err := exists(); ok || err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+td.quoted)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P04" || pe.Code == "23505") {
		return nil // created meanwhile by something that takes no lock
	}
	if err != nil {
		return fmt.Errorf("tenant %q: create database %s: %w", t.ID, td.quoted, td.scrub(err))
	}
	logFrom(ctx, t.ID).Info("tenantsql: created the tenant's database", "database", td.name)
	return nil
}

func dropDatabase(ctx context.Context, t store.Tenant, maintenance string, tenants migrate.Lister) error {
	td, err := databaseOf(t, maintenance)
	if err != nil || td.name == "" {
		return err
	}
	if protectedDatabase(td.name, maintenance) {
		return fmt.Errorf("tenant %q: its database is %s, which is never dropped", t.ID, td.quoted)
	}
	all, err := tenants.List(ctx)
	if err != nil {
		return fmt.Errorf("tenant %q: list the tenants before dropping database %s: %w", t.ID, td.quoted, err)
	}
	for _, o := range all {
		if o.ID == t.ID && o.Version == t.Version && o.CreatedAt.Equal(t.CreatedAt) && o.PostgresURL() == t.PostgresURL() {
			// The tenant being deleted, as a store that has not applied
			// the delete yet lists it. One created again under its id
			// has another creation time, and keeps the database.
			continue
		}
		if sameDatabase(o.PostgresURL(), t.PostgresURL()) {
			return fmt.Errorf("tenant %q: database %s is kept: tenant %q uses it too", t.ID, td.quoted, o.ID)
		}
	}
	conn, err := connectMaintenance(ctx, t.ID, td)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+td.quoted+" WITH (FORCE)")
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "3D000" {
		return nil // dropped meanwhile by another process
	}
	if err != nil {
		return fmt.Errorf("tenant %q: drop database %s: %w", t.ID, td.quoted, td.scrub(err))
	}
	logFrom(ctx, t.ID).Info("tenantsql: dropped the deleted tenant's database", "database", td.name)
	return nil
}
