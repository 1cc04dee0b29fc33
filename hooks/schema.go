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

// A SchemaOption configures Schemas.
type SchemaOption func(*schemaConfig)

type schemaConfig struct {
	dropTenants migrate.Lister // non-nil: build the drop hook
}

// DropSchemaOnDelete makes Schemas return a delete hook too, which drops a
// deleted schema tenant's schema with everything in it (DROP SCHEMA ...
// CASCADE). Before dropping, the hook lists the tenants (tenants, usually
// the store.Store the *sql.DB follows) and keeps the schema if another
// tenant still uses it: one whose POSTGRES_URL names the same database and
// the same first schema, such as the tenant created again under the same
// id, or tenants that share a schema. It never drops public.
func DropSchemaOnDelete(tenants migrate.Lister) SchemaOption {
	if tenants == nil {
		panic("hooks: DropSchemaOnDelete: nil tenant lister")
	}
	return func(c *schemaConfig) { c.dropTenants = tenants }
}

// Schemas returns the hooks of schema tenants: tenants that share a
// database, each in a schema of its own, named by the search_path of its
// POSTGRES_URL (postgres://app:pw@db1/saas?search_path=tenant_42; the
// first schema of the list is the tenant's).
//
// create creates the tenant's schema if it does not exist (CREATE
// SCHEMA). Subscribe it to OnCreate, so that it runs before the PostCreate
// hooks (Migrate, whose tables go into the schema), and to
// OnUpdate for tenants that move to another schema or database: on an
// update that keeps POSTGRES_URL it does nothing.
//
// drop, returned only with the DropSchemaOnDelete option (nil otherwise),
// drops the schema of a deleted tenant (DROP SCHEMA IF EXISTS ...
// CASCADE): its tables and their data are gone. Subscribe it to
// PostDelete.
//
//	create, drop := hooks.Schemas(hooks.DropSchemaOnDelete(tenantStore))
//	hooks.Subscribe(hooks.OnCreate, create)
//	hooks.Subscribe(hooks.OnUpdate, create)
//	hooks.Subscribe(hooks.PostDelete, drop)
//
// Both do nothing for a tenant whose URL has no search_path (a tenant with
// a database of its own, or a row-level-security tenant). They do not go
// through the tenantsql driver, which refuses a tenant whose schema does
// not exist: each opens one short-lived pgx connection to the shared
// database, on the tenant's URL without its tenant settings
// (search_path and custom settings), with the same credentials, which must
// be allowed to create schemas in the database (and to drop the schema).
// Schema names are quoted as identifiers, so any name is safe. Running the
// hooks in several processes at once is safe: a schema another process
// created or dropped meanwhile is not an error.
//
// They read POSTGRES_URL only, whichever *sql.DB runs them: a tenant's
// databases under other keys (driver.WithURLKey, such as ANALYTICS_URL)
// are not provisioned by them. Provision those beforehand (the tenant's
// deploy_info then names a database that exists), or in a hook of your
// own that connects with that key's URL.
//
// Errors name the tenant and show no password (where the password is also
// the user or database name, those are masked too). Each schema created or
// dropped is logged at level Info, to the logger of the Registry that runs
// the hook (slog.Default() for a hook called directly), with the tenant and
// the schema. Registry.Subscribe names the hooks "hooks.Schemas.create"
// and "hooks.Schemas.drop".
func Schemas(opts ...SchemaOption) (create, drop Func) {
	var cfg schemaConfig
	for _, o := range opts {
		o(&cfg)
	}
	create = named("hooks.Schemas.create", func(ctx context.Context, ev Event) error {
		if (ev.Kind == OnUpdate || ev.Kind == PostUpdate) && ev.Old.PostgresURL() == ev.Tenant.PostgresURL() {
			return nil
		}
		return scrubTenant(createSchema(ctx, ev.Tenant), ev.Tenant)
	})
	if cfg.dropTenants != nil {
		tenants := cfg.dropTenants
		drop = named("hooks.Schemas.drop", func(ctx context.Context, ev Event) error {
			return scrubTenant(dropSchema(ctx, ev.Tenant, tenants), ev.Tenant)
		})
	}
	return create, drop
}

// tenantSchema is where a schema tenant lives: the URL of its shared
// database (its own without tenant settings) and its schema. schema is ""
// for a tenant without search_path.
type tenantSchema struct {
	base   string
	schema string
}

// schemaOf reads a tenant's URL as the driver does: pgx's parse gives the
// search_path, pgurl.SplitSettings the shared database's URL.
func schemaOf(t store.Tenant) (tenantSchema, error) {
	raw := t.PostgresURL()
	cfg, err := pgconn.ParseConfig(raw)
	if err != nil {
		why := pgurl.ParseFailure(raw, func(s string) error { _, err := pgconn.ParseConfig(s); return err })
		return tenantSchema{}, fmt.Errorf("tenant %q: cannot parse its POSTGRES_URL: %s", t.ID, why)
	}
	sp, ok := cfg.RuntimeParams["search_path"]
	if !ok {
		return tenantSchema{}, nil
	}
	base, _, ok := pgurl.SplitSettings(raw)
	if !ok {
		return tenantSchema{}, fmt.Errorf("tenant %q: its POSTGRES_URL %s is not a postgres:// URL", t.ID, store.RedactURL(raw))
	}
	schema := pgurl.FirstSchema(sp)
	switch schema {
	case "":
		return tenantSchema{}, fmt.Errorf("tenant %q: its search_path %q names no schema first", t.ID, sp)
	case "$user":
		return tenantSchema{}, fmt.Errorf("tenant %q: its search_path %q starts with $user, which names no schema of the tenant's own", t.ID, sp)
	}
	return tenantSchema{base: base, schema: schema}, nil
}

// connectShared opens a connection to a schema tenant's shared database,
// on its URL without tenant settings.
func connectShared(ctx context.Context, id string, ts tenantSchema) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(ts.base)
	if err != nil {
		why := pgurl.ParseFailure(ts.base, func(s string) error { _, err := pgx.ParseConfig(s); return err })
		return nil, fmt.Errorf("tenant %q: cannot parse its database's URL %s: %s", id, store.RedactURL(ts.base), why)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("tenant %q: connect to its database %s: %w", id, store.RedactURL(ts.base), scrub(err, []string{cfg.Password}))
	}
	return conn, nil
}

func createSchema(ctx context.Context, t store.Tenant) error {
	ts, err := schemaOf(t)
	if err != nil || ts.schema == "" {
		return err
	}
	conn, err := connectShared(ctx, t.ID, ts)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	quoted := pgx.Identifier{ts.schema}.Sanitize()
	// Most creates find the schema there (every process runs the hook):
	// look first, so that only a schema this call creates is logged as
	// created, and the server logs no error for one that exists.
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", ts.schema).Scan(&exists)
	if err != nil {
		return fmt.Errorf("tenant %q: look for schema %s: %w", t.ID, quoted, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+quoted)
	// Created meanwhile by another process: duplicate_schema, or, when
	// both inserted at once, a unique violation on the catalog's index.
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P06" || pe.Code == "23505") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tenant %q: create schema %s: %w", t.ID, quoted, err)
	}
	logFrom(ctx, t.ID).Info("tenantsql: created the tenant's schema", "schema", ts.schema)
	return nil
}

func dropSchema(ctx context.Context, t store.Tenant, tenants migrate.Lister) error {
	ts, err := schemaOf(t)
	if err != nil || ts.schema == "" {
		return err
	}
	quoted := pgx.Identifier{ts.schema}.Sanitize()
	if ts.schema == "public" {
		return fmt.Errorf("tenant %q: its schema is public, which is never dropped", t.ID)
	}
	all, err := tenants.List(ctx)
	if err != nil {
		return fmt.Errorf("tenant %q: list the tenants before dropping schema %s: %w", t.ID, quoted, err)
	}
	for _, o := range all {
		if o.ID == t.ID && o.Version == t.Version && o.CreatedAt.Equal(t.CreatedAt) && o.PostgresURL() == t.PostgresURL() {
			// The tenant being deleted, as a store that has not applied
			// the delete yet lists it. One created again under its id
			// has another creation time, and keeps the schema.
			continue
		}
		ots, err := schemaOf(o)
		if err != nil || ots.schema != ts.schema {
			continue
		}
		if sameDatabase(ots.base, ts.base) {
			return fmt.Errorf("tenant %q: schema %s is kept: tenant %q uses it too", t.ID, quoted, o.ID)
		}
	}
	conn, err := connectShared(ctx, t.ID, ts)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+quoted+" CASCADE")
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "3F000" {
		return nil // dropped meanwhile by another process
	}
	if err != nil {
		return fmt.Errorf("tenant %q: drop schema %s: %w", t.ID, quoted, err)
	}
	logFrom(ctx, t.ID).Info("tenantsql: dropped the deleted tenant's schema", "schema", ts.schema)
	return nil
}

// sameDatabase reports whether two shared-database URLs reach the same
// database: the same hosts, ports and database name as pgx reads them.
// Anything it cannot tell counts as the same, so a schema is kept rather
// than dropped under another tenant.
func sameDatabase(a, b string) bool {
	if a == b {
		return true
	}
	ca, errA := pgconn.ParseConfig(a)
	cb, errB := pgconn.ParseConfig(b)
	if errA != nil || errB != nil {
		return true
	}
	return ca.Host == cb.Host && ca.Port == cb.Port && ca.Database == cb.Database
}
