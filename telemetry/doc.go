// Package telemetry reports a tenantsql connector's pools, tenants and
// queries through OpenTelemetry metrics, and its statements, hooks and
// migrations through OpenTelemetry traces.
//
// It is a package of its own so that a program that imports only the
// driver does not compile OpenTelemetry; the driver, hooks and migrate
// offer what it needs in plain Go (driver.Connector.Stats,
// driver.WithQueryTracer, driver.WithPoolEvents, hooks.Registry.SetObserver,
// migrate.WithObserver).
//
//	m, err := telemetry.New(telemetry.WithMeterProvider(mp), telemetry.WithTracerProvider(tp))
//	hooks.Default().SetObserver(m.HookObserver)
//	c, err := driver.NewConnector(s,
//		driver.WithQueryTracer(m.QueryTracer), driver.WithPoolEvents(m.PoolEvent))
//	stop, err := m.Register(c)
//	db := sql.OpenDB(c)
//	mig, err := migrate.New(db, s, migrations, migrate.WithObserver(m.MigrateObserver))
//
// # Metrics
//
// Register reports the pool and tenant instruments from c.Stats() at each
// collection, so it costs nothing between collections. The query tracer
// records db.client.operation.duration for every statement, and the pool
// events the wait_time and create_time histograms (each wait in a
// checkout queue, each dial; a checkout served by an idle session makes
// no event). Both are options of the connector, since its sessions are
// set up when it dials them: a *sql.DB opened with sql.Open (whose
// connector driver.ConnectorOf gives) has neither, and RegisterMetrics
// reports the rest.
//
// Instruments follow OpenTelemetry's database semantic conventions where
// one exists (db.client.connection.*, db.client.operation.duration), with
// db.client.connection.pool.name the server ("host:port") whose budget the
// sessions share; the others are named tenantsql.*. README.md lists them
// all. The tenant is no attribute unless WithTenantAttribute adds it, with
// a cap on the values (cardinality).
//
// # Traces
//
// With WithTracerProvider the same query tracer makes a client span per
// statement, dial and prepare, under the caller's span, named
// "{operation} {database}" as the database conventions say, with the
// tenant (TenantAttribute, from the context: in a pool that tenants share,
// the tenant the statement ran for), the server, the database and the
// error. db.query.text is off unless WithQueryText: statements may hold
// literals. One tracer does metrics and spans, so the connector takes one
// option, not two tracers.
//
// Hooks and migrations are traced through observers (HookObserver,
// MigrateObserver) rather than by wrapping each hook: the hooks keep their
// names in logs and failures, and hooks and migrate import no
// OpenTelemetry. A hook's or a migration's statements are its span's
// children.
//
// Nothing global is used: the providers are the ones given, which may be
// otel.GetMeterProvider() and otel.GetTracerProvider(). Without a
// TracerProvider nothing of the traces runs; without a MeterProvider
// nothing of the metrics.
package telemetry
