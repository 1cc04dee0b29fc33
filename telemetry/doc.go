// Package telemetry reports a tenantsql connector's pools, tenants and
// queries through OpenTelemetry metrics.
//
// It is a package of its own so that a program that imports only the
// driver does not compile OpenTelemetry; the driver offers what it needs
// in plain Go (driver.Connector.Stats, driver.WithQueryTracer,
// driver.WithPoolEvents). Traces will come through the same pgx tracer.
//
//	m, err := telemetry.New(telemetry.WithMeterProvider(mp))
//	c, err := driver.NewConnector(s,
//		driver.WithQueryTracer(m.QueryTracer), driver.WithPoolEvents(m.PoolEvent))
//	stop, err := m.Register(c)
//	db := sql.OpenDB(c)
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
// Nothing global is used: the MeterProvider is the one given, which may be
// otel.GetMeterProvider().
package telemetry
