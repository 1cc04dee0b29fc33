package tenantcache

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/tenantsql/tenantsql/internal/clip"
)

// KeyRedisURL is the deploy_info key under which a tenant may name a
// Redis of its own.
const KeyRedisURL = "REDIS_URL"

// An Option configures a Cache.
type Option func(*config)

type config struct {
	prefix    string
	urlKey    string
	dropOnDel bool
	log       *slog.Logger
}

func defaultConfig() config {
	return config{prefix: "tenantcache", urlKey: KeyRedisURL, log: slog.Default()}
}

// WithPrefix sets the prefix of every key the cache writes (default
// "tenantcache"): tenant t's key k is stored under PREFIX:t:ID:... Caches
// that share a Redis but not their keys need different prefixes. The
// prefix must not be empty nor hold a ':', which New refuses: the ':'
// after the prefix is what keeps one cache's namespaces apart from
// another's: a prefix such as "app:t:a:..." would name keys inside tenant
// a's namespace of the cache whose prefix is "app". On a Redis Cluster, a
// prefix holding
// a hash tag ("{app}") would put every key in one slot; without one, a
// tenant's keys spread over the cluster.
func WithPrefix(p string) Option { return func(c *config) { c.prefix = p } }

// validatePrefix says why New refuses the prefix given WithPrefix.
func validatePrefix(p string) error {
	switch {
	case p == "":
		return errors.New("tenantcache: WithPrefix: the prefix must not be empty: every key of every tenant starts with it")
	case strings.Contains(p, ":"):
		return fmt.Errorf("tenantcache: WithPrefix(%q): the prefix must not hold ':', which ends it in every key: "+
			"one prefix and tenant could then name another's namespace; use another separator, such as '-' or '.'", clip.String(p))
	}
	return nil
}

// WithURLKey sets the deploy_info key read for a tenant's own Redis
// (default REDIS_URL).
func WithURLKey(key string) Option { return func(c *config) { c.urlKey = key } }

// WithDropKeysOnDelete makes the cache delete a tenant's keys when the
// tenant is deleted from the store: from the tenant's own Redis, or from
// the default one. Without it they stay until they expire, which suits
// keys set with a TTL; a tenant created again under the same id does not
// see them either way, since its namespace is another (see the package
// documentation). Every process that follows the store with such a Cache
// drops them; after the first, the others find nothing left.
//
// The drop runs in the background: the cache goes on applying the
// store's changes and serving the other tenants meanwhile. It first waits
// for the tenant's commands in flight, so that none of them writes a key
// after it, then scans the namespace and deletes what it finds; each step
// is bounded by 30 seconds. Close ends a drop still running and waits for
// it. The outcome is logged (WithLogger): the keys dropped, or the error
// that left some, which then stay until they expire.
func WithDropKeysOnDelete() Option { return func(c *config) { c.dropOnDel = true } }

// WithLogger sets where the cache logs what happens in the background:
// clients replaced and closed, keys dropped, a tenant's REDIS_URL refused.
// Default slog.Default(). Passwords are never logged.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }
