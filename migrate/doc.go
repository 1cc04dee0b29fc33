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
// starts; a started tenant that waits for another run's lock stops
// waiting and is reported as interrupted (an error wrapping
// context.Canceled), and one that holds the lock finishes its migrations,
// since a migration cut in the middle would not be rolled back without a
// transaction.
//
// What is pending is what goose would do: the Migrator reads each
// tenant's version table (without creating it) and applies, as goose's Up
// does, the migrations not applied, including older ones merged late when
// goose.WithAllowOutofOrder allows them; Down and DownTo roll back in the
// reverse of the order migrations were applied.
//
// It is safe to run from several places at once. Each tenant gets its own
// goose Provider and takes goose's PostgreSQL session lock (an advisory
// lock, scoped to the tenant's database) for each migration it applies,
// and goose checks under the lock that the migration is still to do, so a
// migration is applied once even when two runs, or a run and a create hook
// in several processes, reach the same tenant together. A tenant with
// nothing pending costs two small queries and no lock, and a dry run or a
// status changes nothing, not even by creating goose's version table.
//
// For new tenants, hooks.Migrate wraps a Migrator as a create hook, so a
// tenant's first query runs after its migrations; the tenantsql command
// runs it from the shell ("tenantsql migrate up --dir migrations").
package migrate
