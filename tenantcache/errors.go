package tenantcache

import (
	"errors"
	"fmt"

	"github.com/tenantsql/tenantsql/driver"
)

// Errors of the cache. Callers test with errors.Is: an error returned for
// one of these conditions wraps the sentinel, and names the tenant
// involved, except ErrMiss, returned as it is since a miss is common and
// the caller knows its key.
//
// ErrNoTenant and ErrUnknownTenant are the driver's own sentinels, not
// copies: a handler that tests errors.Is(err, driver.ErrNoTenant) catches
// a cache command's failure as well as a query's. The errors the cache
// returns say what the cache wanted, in messages of its own.
var (
	// ErrMiss: Get found no value under the key (it was never set, it
	// expired, or it was deleted or evicted). It is what redis.Nil is to
	// a plain go-redis GET.
	ErrMiss = errors.New("tenantcache: miss")
	// ErrNoTenant (driver.ErrNoTenant): the context carries no tenant
	// (tenantctx.WithTenant was not called). The cache has no shared
	// namespace to fall back on.
	ErrNoTenant = driver.ErrNoTenant
	// ErrUnknownTenant (driver.ErrUnknownTenant): the store has no tenant
	// with the id in the context (never had it, or it was deleted).
	ErrUnknownTenant = driver.ErrUnknownTenant
	// ErrTenantConfig: the tenant's REDIS_URL (or the deploy_info key
	// given WithURLKey) cannot be used. The message names the tenant and
	// the key, never the password.
	ErrTenantConfig = errors.New("tenantcache: bad tenant configuration")
	// ErrClosed: the cache was closed.
	ErrClosed = errors.New("tenantcache: closed")
)

// errNoTenant is ErrNoTenant with a message about the cache: the
// driver's tells which database/sql methods to call.
var errNoTenant error = &messageError{
	msg: "tenantcache: no tenant in context: pass a context from tenantctx.WithTenant(ctx, tenantID)",
	err: ErrNoTenant,
}

func unknownTenant(id string) error {
	return &messageError{msg: fmt.Sprintf("tenantcache: unknown tenant %q", id), err: ErrUnknownTenant}
}

// A messageError is err shown with another message: a sentinel of the
// driver's in the cache's words, or an error with secrets masked. It
// matches what err matches with errors.Is and errors.As.
type messageError struct {
	msg string
	err error
}

func (e *messageError) Error() string { return e.msg }
func (e *messageError) Unwrap() error { return e.err }
