package tenantcache

import (
	"errors"
	"fmt"
)

// Errors of the cache. Callers test with errors.Is: an error returned for
// one of these conditions wraps the sentinel, and names the tenant
// involved, except ErrMiss, returned as it is since a miss is common and
// the caller knows its key.
var (
	// ErrMiss: Get found no value under the key (it was never set, it
	// expired, or it was deleted or evicted). It is what redis.Nil is to
	// a plain go-redis GET.
	ErrMiss = errors.New("tenantcache: miss")
	// ErrNoTenant: the context carries no tenant (tenantctx.WithTenant was
	// not called). The cache has no shared namespace to fall back on.
	ErrNoTenant = errors.New("tenantcache: no tenant in context: pass a context from tenantctx.WithTenant(ctx, tenantID)")
	// ErrUnknownTenant: the store has no tenant with the id in the
	// context (never had it, or it was deleted).
	ErrUnknownTenant = errors.New("tenantcache: unknown tenant")
	// ErrTenantConfig: the tenant's REDIS_URL (or the deploy_info key
	// given WithURLKey) cannot be used. The message names the tenant and
	// the key, never the password.
	ErrTenantConfig = errors.New("tenantcache: bad tenant configuration")
	// ErrClosed: the cache was closed.
	ErrClosed = errors.New("tenantcache: closed")
)

func unknownTenant(id string) error { return fmt.Errorf("%w %q", ErrUnknownTenant, id) }
