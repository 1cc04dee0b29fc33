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
	// not called, or the call used a method without a context). Its
	// message says what to call instead.
	ErrNoTenant = errors.New("tenantsql: no tenant in context" + noTenantHint)
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

// noTenantHint is what ErrNoTenant's message says to do: database/sql's
// methods without a context pass context.Background().
const noTenantHint = ": call the ...Context methods (QueryContext, ExecContext, QueryRowContext, PrepareContext, BeginTx) " +
	"with a context from tenantctx.WithTenant(ctx, tenantID); Query, Exec, Begin and the other methods without a context " +
	"use context.Background(), which has no tenant"

// noTenantError is ErrNoTenant with why in the middle of its message,
// before what to do.
type noTenantError struct{ why string }

func (e *noTenantError) Error() string {
	return "tenantsql: no tenant in context (" + e.why + ")" + noTenantHint
}

func (e *noTenantError) Unwrap() error { return ErrNoTenant }

func noTenantBound(bound string) error {
	return &noTenantError{why: fmt.Sprintf("connection is bound to tenant %q", bound)}
}
