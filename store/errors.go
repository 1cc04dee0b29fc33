package store

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error a Store returns for one of these conditions
// wraps the sentinel, so callers test with errors.Is; the message names the
// tenant involved.
var (
	// ErrNotFound: no tenant has that id.
	ErrNotFound = errors.New("tenant not found")
	// ErrExists: Create found a tenant with that id already.
	ErrExists = errors.New("tenant already exists")
	// ErrInvalid: the id or the deploy info breaks the rules (see Validate).
	// The concrete error is a *ValidationError.
	ErrInvalid = errors.New("invalid tenant")
	// ErrConflict: an Update named a version that is no longer current.
	ErrConflict = errors.New("tenant version conflict")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrNotStoreURL: Open was given something that names no tenant
	// store: an unknown scheme, or a PostgreSQL URL or key=value DSN,
	// which tenantsql takes per tenant (POSTGRES_URL), not as the
	// data source name.
	ErrNotStoreURL = errors.New("not a tenant store URL")
)

// ValidationError says which field of a tenant is wrong and why. It wraps
// ErrInvalid. Value is safe to show: a URL in it has its password redacted.
type ValidationError struct {
	Field  string // "tenant_id", "deploy_info" or "deploy_info.KEY"
	Value  string // the offending value, redacted and shortened
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Value, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Errors this package returns begin with "store: ", and the messages it
// logs with "tenantsql: store: ". An error reaches a caller that adds its
// own context, as Go errors do; a log line lands among the application's,
// where the module's name says whose it is. The sentinels above are
// wrapped with the tenant's id behind that prefix (notFound, exists,
// conflict), except ErrClosed, which is returned as it is. A
// ValidationError has no prefix: its text is meant for whoever supplied
// the tenant, such as a client of the admin API.
func notFound(id string) error { return fmt.Errorf("store: tenant %q: %w", id, ErrNotFound) }
func exists(id string) error   { return fmt.Errorf("store: tenant %q: %w", id, ErrExists) }
func conflict(id string, want, have int64) error {
	return fmt.Errorf("store: tenant %q: update of version %d, current is %d: %w", id, want, have, ErrConflict)
}
