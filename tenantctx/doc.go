// Package tenantctx carries the current tenant's id in a context.Context.
//
// The id travels with the request: HTTP middleware (or a job runner) puts it
// in the context once with WithTenant, and everything below, most
// importantly the tenantsql database/sql driver, reads it back with
// TenantFrom. Nothing is stored in goroutine-local or global state, so a
// tenant can never leak from one request to another.
package tenantctx
