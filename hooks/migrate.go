package hooks

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"

	"github.com/tenantsql/tenantsql/internal/lifecycle"
	"github.com/tenantsql/tenantsql/migrate"
)

// Migrate returns a hook that brings a new tenant's database up to date
// with the goose migrations in fsys (an embed.FS, or os.DirFS(dir)),
// through db, the application's tenantsql *sql.DB. Subscribe it to
// PostCreate:
//
//	h, err := hooks.Migrate(db, migrations)
//	...
//	hooks.Subscribe(hooks.PostCreate, h)
//
// The tenant's first query runs after it: queries wait for a new tenant's
// create hooks. Every process that receives the create runs the hook;
// the migration lock (goose's session lock on the tenant's database, or
// the tenant's schema's: see package migrate) makes one apply the
// migrations while the others wait and find nothing to do. For a schema
// tenant, subscribe the Schemas create hook to OnCreate, so that the
// schema exists when this runs; for a row-level-security tenant it brings
// the database's shared tables up to date. A failure is
// the hook's error, with the migrations that did apply (*goose.PartialError
// inside a *migrate.TenantError). Closing db ends the hook's context: a
// hook waiting for the lock returns an error wrapping context.Canceled,
// and one migrating runs its migrations to their end. It returns an
// error if fsys holds no valid migrations. The embed.FS of
// `//go:embed migrations/*.sql` is taken as it is: when the root holds no
// migration, those of its "migrations" directory are used (see
// migrate.New).
//
// When it applies migrations, the hook logs it at level Info, to the
// logger of the Registry that runs it, with the tenant, how many were
// applied and the schema versions before and after. Registry.Subscribe
// names it "hooks.Migrate".
//
// A tenant that has no database under db's key (db opened with
// driver.WithURLKey, a tenant without that key: driver.ErrMissingURLKey)
// has nothing to migrate: the hook returns nil and logs it at level
// Debug. So one registry may hold the Migrate hooks of a *sql.DB per key
// even when some tenants lack a key.
func Migrate(db *sql.DB, fsys fs.FS, opts ...migrate.Option) (Func, error) {
	m, err := migrate.New(db, nil, fsys, opts...)
	if err != nil {
		return nil, err
	}
	return named("hooks.Migrate", func(ctx context.Context, ev Event) error {
		res := m.Tenant(ctx, ev.Tenant.ID, migrate.Up, 0)
		if errors.Is(res.Err, lifecycle.ErrMissingURLKey) {
			// No database under db's key (a tenant without ANALYTICS_URL,
			// with one registry for two *sql.DB): nothing to migrate.
			logFrom(ctx, ev.Tenant.ID).Debug("tenantsql: the tenant has no database under this *sql.DB's key; nothing to migrate", "err", res.Err)
			return nil
		}
		if len(res.Applied) > 0 {
			// Schema versions, not the store's: the attribute names say
			// which (the registry's logger adds store_version).
			logFrom(ctx, ev.Tenant.ID).Info("tenantsql: migrated the tenant",
				"applied", len(res.Applied), "schema_version_before", res.Before, "schema_version", res.After)
		}
		return res.Err
	}), nil
}
