package driver

import (
	"errors"
	"fmt"

	"github.com/tenantsql/tenantsql/internal/lifecycle"
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
	// ErrTenantConfig: the tenant's POSTGRES_URL (or the deploy_info key
	// the connector reads, WithURLKey) could not be used.
	ErrTenantConfig = errors.New("tenantsql: bad tenant configuration")
	// ErrMissingURLKey: the tenant's deploy_info lacks the key this
	// connector reads its database URL from (WithURLKey, url_key=), or
	// holds it empty. The error is a *MissingURLKeyError, which names the
	// tenant and the key; errors.Is matches ErrTenantConfig too. The
	// driver never falls back to another key.
	ErrMissingURLKey = lifecycle.ErrMissingURLKey // shared with package hooks, which must not import the driver
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

// MissingURLKeyError is the error of a query for a tenant whose deploy_info
// lacks the key the connector reads (see WithURLKey): the tenant has no
// database for this *sql.DB. errors.Is matches ErrMissingURLKey and
// ErrTenantConfig.
type MissingURLKeyError struct {
	Tenant string // the tenant's id
	Key    string // the deploy_info key it lacks, such as "ANALYTICS_URL"
}

func (e *MissingURLKeyError) Error() string {
	return fmt.Sprintf("tenantsql: tenant %q has no %s in its deploy_info, the key this *sql.DB routes by (it never falls back to another key): "+
		"add %s, a postgres:// URL, to the tenant's deploy_info, or query this tenant through a *sql.DB of a key it has",
		e.Tenant, e.Key, e.Key)
}

// Unwrap makes errors.Is match ErrMissingURLKey and ErrTenantConfig.
func (e *MissingURLKeyError) Unwrap() []error { return []error{ErrMissingURLKey, ErrTenantConfig} }
