// Package migrate runs goose migrations for many tenants, each on its own
// database, in its own schema of a shared database, or in the shared
// tables of row-level-security tenants, through a tenantsql *sql.DB.
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
// goose Provider and takes a PostgreSQL session lock (an advisory lock,
// scoped to the tenant's database; see Locks) for each run of goose, and
// goose checks under the lock that each migration is still to do, so a
// migration is applied once even when two runs, or a run and a create hook
// in several processes, reach the same tenant together. A tenant with
// nothing pending costs two small queries and no lock, and a dry run or a
// status changes nothing, not even by creating goose's version table.
//
// # Tenants that share a database
//
// A tenant's POSTGRES_URL may carry session settings (see the driver):
// search_path, which gives a tenant a schema of its own in a shared
// database (postgres://app:pw@db1/saas?search_path=tenant_42), and custom
// settings with a dot in the name, which row-level-security policies read
// (postgres://app:pw@db1/saas?app.tenant_id=42). Every query of a run goes
// through the tenantsql *sql.DB with the tenant in the context, so it runs
// with the tenant's settings, as the application's queries do.
//
// Schema tenants are migrated as database tenants are, each in its
// schema: goose creates its version table (unqualified, as WithTableName
// gives it) in the session's current_schema(), the first schema of the
// search_path that exists, and the tables the migrations create land
// there too. The Migrator reads that same table (not one that a bare name
// would find further along the search_path, such as public's), and a
// tenant none of whose search_path schemas exists fails, naming the
// tenant, rather than migrate elsewhere: create schemas with the
// hooks.Schemas create hook, which runs before the tenant's first query.
//
// Tenants whose tables are the same are migrated once per run: the
// Migrator groups the tenants it lists by their POSTGRES_URL (for a
// *sql.DB opened on another key with driver.WithURLKey or url_key, that
// key's URL, the one its migrations reach) without its tenant settings (pgurl.SplitSettings: search_path and settings with a
// dot taken out, everything else kept, compared as text) together with
// their search_path (compared as written, or absent). Row-level-security
// tenants of one database (URLs that differ only in app.tenant_id, say)
// are one group: their shared tables and the one version table, in public,
// are migrated once, through the group's first selected tenant (in id
// order), and the report has one TenantResult for the group, whose
// Covers lists all its tenants. A database tenant whose URL is the
// group's without settings joins it (its tables are the same). Schema
// tenants of one database each have their own group, unless they have
// the same search_path. Tenants whose URLs differ in anything else (an
// application_name, a host written another way) are not grouped: each is
// migrated, which is safe, since they take the same lock and the later
// one finds nothing to do, only slower.
//
// Selecting one tenant of a group (WithTenants) migrates the group, since
// its tables are the others' too, and the result covers them all.
// Excluding some tenants of a group but not all (WithExclude) is an
// error, before anything runs: their tables cannot be migrated for some
// of them and not the others. Tenant, and the create hook, migrate the
// tables of the one tenant named, whichever group it is in: for a new
// row-level-security tenant, that brings the shared tables up to date.
//
// # Locks
//
// The lock is per version table. A tenant whose version table is in
// public (a database of its own, or row-level-security tenants sharing
// public's tables), or whose table name has its schema (WithTableName),
// takes goose's own lock id, lock.DefaultLockID, so goose run by other
// tools on that database excludes it, and it them. A tenant whose version
// table is in another schema, a schema tenant, takes SchemaLockID of that
// schema, a hash of its name: tenants of one database do not wait for
// each other, and every run on one schema, from any process, Run or
// Tenant or a create hook, takes the same lock. The schema is the one the
// server reports for the tenant's session (current_schema()), so all runs
// agree whatever the driver does with the settings. (A database tenant
// whose role has a schema of its own name, first in the default
// search_path "$user", public, keeps goose's table there and takes that
// schema's lock: goose run by other tools would not exclude it.)
//
// For new tenants, hooks.Migrate wraps a Migrator as a create hook, so a
// tenant's first query runs after its migrations; the tenantsql command
// runs it from the shell ("tenantsql migrate up --dir migrations").
//
// WithObserver reports each tenant's run, as it starts and with its
// result, to a plain function: the telemetry package's MigrateObserver
// makes a span of it, so this package imports no OpenTelemetry.
package migrate
