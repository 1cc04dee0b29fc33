// Package migrate runs goose migrations for many tenants, each on its own
// database, through a tenantsql *sql.DB.
//
//	m, err := migrate.New(db, tenantStore, migrationsFS,
//		migrate.WithConcurrency(8),
//		migrate.WithContinueOnError(true),
//	)
//	report, err := m.Run(ctx, migrate.Up, 0)
//	for _, r := range report.Failed() {
//		log.Printf("%s: %v (applied %d before failing)", r.Tenant, r.Err, len(r.Applied))
//	}
//
// Run does up, up-to a version, down, down-to a version or status, for all
// tenants or a chosen set (WithTenants, WithExclude), a few at a time, and
// returns a report with, for each tenant, its version before and after,
// the migrations applied, how long it took and why it failed (goose's
// *PartialError, which says what did apply before the failure). By default
// no new tenant starts after a failure; WithContinueOnError goes on. A dry
// run lists what would be applied. When the context ends, no new tenant
// starts and the started ones finish.
//
// It is safe to run from several places at once. Each tenant gets its own
// goose Provider and takes goose's PostgreSQL session lock (an advisory
// lock, scoped to the tenant's database) while it applies migrations, so a
// migration is applied once even when two runs, or a run and a create hook
// in several processes, reach the same tenant together. A tenant with
// nothing pending is checked without taking the lock.
//
// For new tenants, hooks.Migrate wraps a Migrator as a create hook, so a
// tenant's first query runs after its migrations; the tenantsql command
// runs it from the shell ("tenantsql migrate up --dir migrations").
package migrate
