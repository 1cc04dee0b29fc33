// Package tenantctx carries the current tenant's id in a context.Context.
//
// The id travels with the request: HTTP middleware (or a job runner) puts it
// in the context once with WithTenant, and everything below, most
// importantly the tenantsql database/sql driver, reads it back with
// TenantFrom. Nothing is stored in goroutine-local or global state, so a
// tenant can never leak from one request to another.
//
// # HTTP middleware
//
// Middleware does the putting for an HTTP server. It finds the tenant of
// each request, by default in the x-tenant-id header:
//
//	c, _ := driver.ConnectorOf(db) // db: the tenantsql *sql.DB
//	handler := tenantctx.Middleware(mux,
//		tenantctx.WithLookup(c.LookupTenant), // unknown tenants get 404
//		tenantctx.SkipPrefix("/healthz", "/api/"),
//	)
//
// Other sources: FromHeader (another header), FromHost (the whole host
// name, "tenant-2.test.com"), FromSubdomain ("acme" from
// "acme.example.com") and FromFunc (a rule of your own). Only one source
// is used: of several From options the last one given wins.
//
// A request that names no tenant, or names one the lookup does not know,
// never reaches the handler: it gets a short JSON answer,
//
//	400 {"error":"no tenant: set the x-tenant-id header"}
//	404 {"error":"unknown tenant \"tenant-9.test.com\""}
//	503 {"error":"cannot check the tenant now; try again later"}
//
// The 503 is for a lookup that failed (the tenant store is down); its error
// is logged with slog (WithMiddlewareLogger) and not sent, since it may
// name a database server. Requests that SkipPrefix or Skip select reach the
// handler with no tenant in their context, so any query they make fails
// with the driver's ErrNoTenant: skipping a path by mistake can break it
// but never serves another tenant's data.
//
// Without WithLookup there is no 404: every request with an id reaches the
// handler, and the driver refuses an unknown tenant at its first query
// (driver.ErrUnknownTenant), typically turned into a 500 by the
// application. This package imports nothing from the rest of the module,
// so it cannot supply the lookup itself; (*driver.Connector).LookupTenant,
// shown above, answers from memory for the tenants the process knows.
package tenantctx
