// Package hooks runs functions of yours when a tenant is created, updated
// or deleted: the lifecycle hooks of the tenantsql driver.
//
//	hooks.Subscribe(hooks.PostCreate, func(ctx context.Context, ev hooks.Event) error {
//		// ctx names ev.Tenant.ID: this runs on the new tenant's database.
//		_, err := db.ExecContext(ctx, "CREATE TABLE notes (id bigint PRIMARY KEY, body text)")
//		return err
//	})
//	db, err = sql.Open("tenantsql", "file:tenant_config.json")
//
// # Kinds
//
// Every change has two phases, so there are six kinds of hook:
//
//	OnCreate    PostCreate
//	OnUpdate    PostUpdate
//	OnDelete    PostDelete
//
// The ON phase runs once the library has done its own work for the change
// in this process: the tenant is in the driver's tenant registry, and its
// pools are set up, replaced or retired. The POST phase runs after the ON
// phase, whether or not an ON hook failed. KindOf maps a store change and a
// phase (store.PhaseOn, store.PhasePost) to its Kind. Migrate builds a PostCreate hook that applies goose
// migrations to the new tenant's database; Databases builds the hooks that
// create a tenant's database if it is missing (and, if asked, drop it after
// a delete); Schemas builds the hooks that create (and, if asked, drop) a
// schema tenant's schema.
//
// # Tenants in schemas of a shared database
//
// A tenant whose POSTGRES_URL has a search_path lives in a schema of a
// database it shares with others: the first schema of the list
// (postgres://app:pw@db1/saas?search_path=tenant_42 lives in tenant_42).
// Schemas returns a create hook that creates that schema if it does not
// exist and, only with DropSchemaOnDelete, a delete hook that
// drops it with everything in it (DROP SCHEMA ... CASCADE), unless another
// tenant still uses it:
//
//	create, drop := hooks.Schemas(hooks.DropSchemaOnDelete(tenantStore))
//	hooks.Subscribe(hooks.OnCreate, create)   // before the PostCreate hooks
//	hooks.Subscribe(hooks.OnUpdate, create)   // a tenant moved to a new schema
//	hooks.Subscribe(hooks.PostDelete, drop)   // omit to keep deleted tenants' data
//	db, err := sql.Open("tenantsql", "file:tenant_config.json")
//	...
//	migrateHook, err := hooks.Migrate(db, migrations) // runs in the new schema
//	hooks.Subscribe(hooks.PostCreate, migrateHook)
//
// Subscribed to OnCreate, the schema exists before any PostCreate hook
// runs, and before the tenant's first query, which waits for its create
// hooks. The schema hooks connect to the shared database themselves, on
// the tenant's URL without its tenant settings, for the moment they need:
// not through the driver, which refuses a tenant whose schema does not
// exist. For a tenant without search_path (a database of its own, or
// row-level-security tenants sharing a database's tables) they do nothing.
//
// # When hooks run
//
// Every process that has a tenantsql *sql.DB runs the hooks for every
// change it applies: changes made by the process itself, by other
// processes, and those it learns of only by resyncing with the store after
// a disconnect (a tenant that appeared is a create, one that is gone a
// delete). Each *sql.DB runs them, so a process with two runs them twice.
// Tenants created more than about a minute before the *sql.DB started run
// no hooks there (their create hooks ran when they were created); newer
// ones, which a process may learn of only in its first sync, run their
// create hooks, so create hooks must be safe to run more than once.
//
// Hooks run in the background, not in the call that changed the store. A
// new tenant is ready in a process once its create hooks, ON and POST,
// have succeeded there. Until then its queries wait, as long as their
// context allows; they fail with driver.ErrTenantNotReady if the context
// ends first or if one of those hooks failed (the error wraps why). The
// next update of the tenant runs its create hooks again, instead of its
// update hooks, and the tenant is ready once they succeed. An update that
// changes POSTGRES_URL (a move) is gated the same way by its own update
// hooks: the tenant is served on the new database once they have
// succeeded; if one failed, the next update runs them again, with Old the
// tenant as it was before the move.
//
// The hooks of one tenant run one after another, in subscription order
// and in the order of its changes. Different tenants' hooks run side by
// side, up to driver.WithHookConcurrency tenants at a time (default 4).
//
// A hook's context carries the tenant (tenantctx.TenantFrom) at the
// configuration of the hook's own change. With that context, or one
// derived from it, the hook's queries through the tenantsql *sql.DB run on
// that configuration's database: a delete hook reaches the database being
// deleted, even when the tenant was created again elsewhere meanwhile, and
// an update hook the database of its update, even when a later update
// moved the tenant on. They do not wait for the tenant to be ready (a
// query with another context would wait for the hook itself). The context
// is canceled when the hook's change is done (all its hooks have returned)
// and when the *sql.DB is closed; Close waits for running hooks to return.
//
// # Failures
//
// A hook that returns an error or panics does not stop the hooks after
// it. Each failure is logged with log/slog at level Error (a panic with
// its stack), kept per tenant (Registry.Failures, the latest 16), and
// returned, with the others, by Registry.Run. A tenant's failures are
// forgotten when its delete has run its PostDelete phase, so a tenant
// created again under the same id starts with none.
//
// # Registries
//
// Subscribe adds a hook to the default registry (Default), which
// sql.Open("tenantsql", ...) and driver.NewConnector use: importing this
// package is enough to enable it.
//
// When to subscribe: a registry reads its hooks when it runs a change's
// hooks, so a hook runs for every change whose hooks start after it was
// subscribed, and for none before. The *sql.DB follows the store from
// sql.Open (or driver.NewConnector) on, and its first sync runs the create
// hooks of tenants created in the minute before; any other process may
// create a tenant at any time. So subscribe before sql.Open the hooks that
// do not need the *sql.DB (Databases, Schemas). A hook that needs it
// (Migrate) can only be subscribed after sql.Open: do it before the
// program serves or creates tenants, and bring the tenants that exist by
// then up to date at start-up (migrate.New(...).Run, as
// examples/hospital does), since their create hooks may have run without
// it. Subscribing later is allowed (even from a hook), and takes effect
// from the next change.
//
// # Names and logs
//
// Logs, errors and Failure.Hook call a hook by its name: the ready-made
// hooks by theirs ("hooks.Migrate", "hooks.Databases.create",
// "hooks.Databases.drop", "hooks.Schemas.create", "hooks.Schemas.drop"),
// a hook subscribed with SubscribeNamed by the name given, any other by
// its Go function name. Every record a registry logs about a hook carries
// hook, kind, tenant and store_version (the store's version of the
// change; a migration's versions are the tenant's schema's, and are
// logged as schema_version). The ready-made hooks log at level Info what
// they provision: a database or schema created or dropped, migrations
// applied.
//
// Programs that avoid global state build a Registry with New and give it
// to driver.NewConnector with driver.WithHooks; driver.WithHooks(nil) runs
// no hooks at all. A Registry can also be driven directly, by Run or by
// HandleChange for code that follows a store with a store.Tracker.
//
// Registry.SetObserver reports each hook run, as it starts and when it
// returns, to a plain function: the telemetry package's HookObserver makes
// a span of it, so this package imports no OpenTelemetry.
package hooks
