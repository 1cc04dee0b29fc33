package driver

import (
	"errors"
	"fmt"
)

// Errors a query can fail with before it reaches a database. They are never
// driver.ErrBadConn, so database/sql does not retry them, and the driver
// never falls back to another database: every path fails closed.
var (
	// ErrNoTenant: the context carries no tenant (tenantctx.WithTenant was
	// not called, or the call used a method without a context).
	ErrNoTenant = errors.New("tenantsql: no tenant in context")
	// ErrUnknownTenant: the tenant store has no such tenant (never had it,
	// or it was deleted).
	ErrUnknownTenant = errors.New("tenantsql: unknown tenant")
	// ErrTenantMismatch: a connection pinned to one tenant (by a Tx, a
	// *sql.Conn or open Rows) was used with a context naming another.
	ErrTenantMismatch = errors.New("tenantsql: tenant mismatch")
	// ErrTenantNotReady: the tenant's create hooks have not succeeded in
	// this process: they are still running when the context ended, or they
	// failed (the error wraps why).
	ErrTenantNotReady = errors.New("tenantsql: tenant not ready")
	// ErrTenantConfig: the tenant's POSTGRES_URL could not be used.
	ErrTenantConfig = errors.New("tenantsql: bad tenant configuration")
	// ErrClosed: the connector (the *sql.DB) was closed.
	ErrClosed = errors.New("tenantsql: connector closed")
)

func unknownTenant(id string) error {
	return fmt.Errorf("%w %q", ErrUnknownTenant, id)
}

func mismatch(bound, got string) error {
	return fmt.Errorf("%w: connection is bound to tenant %q, context names %q", ErrTenantMismatch, bound, got)
}

func noTenantBound(bound string) error {
	return fmt.Errorf("%w: connection is bound to tenant %q", ErrNoTenant, bound)
}
