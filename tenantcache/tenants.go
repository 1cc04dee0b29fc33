package tenantcache

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/internal/pgurl"
	"github.com/tenantsql/tenantsql/store"
)

// A binding is a tenant as the cache uses it: its namespace and the Redis
// its commands go to. An update that changes the tenant's REDIS_URL
// replaces the binding: commands in flight finish on the old one, whose
// client is closed after the last of them.
type binding struct {
	id        string
	ns        namespace
	own       bool                         // the tenant names a Redis of its own
	url       string                       // which one (password included: never shown)
	err       error                        // the tenant cannot be served: every command fails with it
	newClient func() redis.UniversalClient // makes the tenant's own client; nil for the default

	// Guarded by Cache.mu.
	client  redis.UniversalClient // the tenant's own client, made on first use
	refs    int                   // commands in flight
	retired bool                  // replaced or deleted: no command starts on it any more
	keep    bool                  // retired, but its client is still needed to drop the keys
	idle    chan struct{}         // closed once retired with no command in flight
}

// clientLocked returns the client the binding's commands go to, making
// the tenant's own on first use: no command, no connection. Making one
// does no I/O (go-redis dials on the first command), so it is done under
// Cache.mu.
func (b *binding) clientLocked(def redis.UniversalClient) redis.UniversalClient {
	if b.newClient == nil {
		return def
	}
	if b.client == nil {
		b.client = b.newClient()
	}
	return b.client
}

// errorf wraps an error of a command with the tenant's id. go-redis's
// errors for a command name no password, but a URL's could be quoted by
// a dialer some day: the tenant's secrets are masked all the same.
func (b *binding) errorf(format string, args ...any) error {
	err := fmt.Errorf("tenantcache: tenant %q: "+format, append([]any{b.id}, args...)...)
	if !b.own {
		return err
	}
	return scrubbed(err, pgurl.Secrets(b.url))
}

// scrubbed is err with secrets masked in its message, still matching what
// err matches with errors.Is and errors.As.
func scrubbed(err error, secrets []string) error {
	msg := err.Error()
	if safe := pgurl.RedactText(msg, secrets); safe != msg {
		return &messageError{msg: safe, err: err}
	}
	return err
}

// newBinding reads how tenant t is to be served.
func (c *Cache) newBinding(t store.Tenant) *binding {
	b := &binding{id: t.ID, ns: newNamespace(c.cfg.prefix, t.ID, t.CreatedAt), idle: make(chan struct{})}
	// Stores validate ids, but the namespaces are kept apart only by ids
	// without ':' or glob characters: a Store of another make is checked
	// too.
	if err := store.ValidateID(t.ID); err != nil {
		b.err = fmt.Errorf("%w: %w", ErrTenantConfig, err)
		return b
	}
	b.url, b.own = t.DeployInfo[c.cfg.urlKey]
	switch {
	case b.own:
		b.newClient, b.err = parseRedisURL(t.ID, c.cfg.urlKey, b.url)
	case c.def == nil:
		b.err = fmt.Errorf("%w: tenant %q has no %s in deploy_info, and the cache has no default Redis client (tenantcache.New was given nil)", ErrTenantConfig, t.ID, c.cfg.urlKey)
	}
	return b
}

// parseRedisURL returns a function that makes the client raw describes,
// or an error that names the tenant and the key and shows no password.
// Like the store's Redis URLs, raw may name a Redis Cluster (several
// addr=, or cluster=true) or a Redis behind Sentinel (master_name=).
func parseRedisURL(id, key, raw string) (func() redis.UniversalClient, error) {
	shown := store.RedactURL(raw)
	if shown == pgurl.UnparsableText {
		shown = ""
	} else {
		shown = " " + shown
	}
	bad := func(reason string) error {
		return fmt.Errorf("%w: tenant %q: deploy_info.%s%s: %s", ErrTenantConfig, id, key, shown, reason)
	}
	if raw == "" {
		return nil, bad("is empty; remove the key for the tenant to use the cache's default Redis")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Not the error itself: url.Error quotes the URL, password and all.
		return nil, bad("not a URL; percent-encode any '@', ':', '/', '?', '#' or space in the user name or password")
	}
	switch strings.ToLower(u.Scheme) {
	case "redis", "rediss", "unix":
	default:
		return nil, bad("scheme must be redis://, rediss:// or unix://")
	}
	q := u.Query()
	cluster := q.Get("cluster") == "true"
	q.Del("cluster")
	u.RawQuery = q.Encode()
	secrets := pgurl.Secrets(raw)
	parseErr := func(err error) error {
		return bad(pgurl.RedactText(strings.TrimPrefix(err.Error(), "redis: "), secrets))
	}
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(u.String())
		if err != nil {
			return nil, parseErr(err)
		}
		o.ContextTimeoutEnabled = true
		return func() redis.UniversalClient { return redis.NewFailoverClient(o) }, nil
	case q.Has("addr") || cluster:
		o, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, parseErr(err)
		}
		o.ContextTimeoutEnabled = true
		return func() redis.UniversalClient { return redis.NewClusterClient(o) }, nil
	default:
		o, err := redis.ParseURL(u.String())
		if err != nil {
			return nil, parseErr(err)
		}
		o.ContextTimeoutEnabled = true
		return func() redis.UniversalClient { return redis.NewClient(o) }, nil
	}
}

// follow applies the store's changes until ctx ends or the store closes
// the watch.
func (c *Cache) follow(ctx context.Context, events <-chan store.Event) {
	defer c.wg.Done()
	defer close(c.followDone)
	tr := store.NewTracker()
	ready := false
	for ev := range events {
		for _, ch := range tr.Apply(ev) {
			c.apply(ctx, ch)
		}
		if ev.Seq > c.appliedSeq.Load() {
			c.appliedSeq.Store(ev.Seq)
		}
		c.mu.Lock()
		close(c.applied)
		c.applied = make(chan struct{})
		c.mu.Unlock()
		if !ready && tr.Synced() {
			ready = true
			close(c.ready)
		}
	}
}

// apply makes one tenant's change take effect. It does no I/O but
// closing idle clients: a drop of keys runs in a goroutine of its own, so
// that neither the following changes nor other tenants' commands wait for
// it.
func (c *Cache) apply(ctx context.Context, ch store.Change) {
	id := ch.Tenant.ID
	switch ch.Type {
	case store.EventCreate, store.EventUpdate:
		nb := c.newBinding(ch.Tenant)
		c.mu.Lock()
		old := c.tenants[id]
		if old != nil && old.own == nb.own && old.url == nb.url && old.ns == nb.ns {
			c.mu.Unlock() // same Redis, same namespace: keep the client
			return
		}
		c.tenants[id] = nb
		var (
			idle redis.UniversalClient
			drop bool
		)
		if old != nil {
			// Another namespace on an update: the tenant's creation
			// time appeared or vanished (a store rewritten by hand; a
			// re-creation comes as a delete and a create, see
			// store.Tracker). The keys under the old namespace are out
			// of reach now, so they go as a delete's would.
			drop = old.ns != nb.ns && c.cfg.dropOnDel && old.err == nil
			idle = c.retireLocked(old, drop)
		}
		c.mu.Unlock()
		switch {
		case nb.err != nil:
			c.log.Warn("tenantcache: tenant cannot be served", "tenant", id, "err", nb.err)
		case old != nil && old.ns != nb.ns:
			c.log.Info("tenantcache: tenant's creation time changed in the store; its cache starts empty",
				"tenant", id, "redis", c.describe(nb))
		case old != nil:
			c.log.Info("tenantcache: tenant's Redis changed; commands in flight finish on the old one",
				"tenant", id, "redis", c.describe(nb))
		}
		if idle != nil {
			c.closeClient(id, idle)
		}
		if drop {
			c.startDrop(ctx, old)
		}
	case store.EventDelete:
		c.mu.Lock()
		old := c.tenants[id]
		if old == nil {
			c.mu.Unlock()
			return
		}
		delete(c.tenants, id)
		drop := c.cfg.dropOnDel && old.err == nil
		idle := c.retireLocked(old, drop)
		c.mu.Unlock()
		if idle != nil {
			c.closeClient(id, idle)
		}
		if drop {
			c.startDrop(ctx, old)
		}
	}
}

// describe names the Redis a binding uses, for logs.
func (c *Cache) describe(b *binding) string {
	if !b.own {
		return "default"
	}
	return store.RedactURL(b.url)
}

// retireLocked stops new commands on b and returns its client if it is to
// be closed now: it has no command in flight, and keep (its keys are to be
// dropped with it) is not set. Otherwise the last command's release closes
// it, or drop does.
func (c *Cache) retireLocked(b *binding, keep bool) redis.UniversalClient {
	b.retired, b.keep = true, keep
	if b.refs > 0 {
		return nil
	}
	close(b.idle)
	if keep {
		return nil
	}
	rc := b.client
	b.client = nil
	return rc
}

// maxDrops is how many drops of deleted tenants' keys run at once.
const maxDrops = 4

// dropTimeout bounds each step of dropping a deleted tenant's keys: the
// wait for its commands in flight, then the scan and delete.
const dropTimeout = 30 * time.Second

// startDrop drops the keys of b, a deleted tenant, in a goroutine that
// Close waits for. ctx is the cache's: Close cancels it, which ends a drop
// still running.
//
// Nothing waits for the drop: follow goes on to the next change, and
// commands go on, the deleted tenant's failing with ErrUnknownTenant. A
// tenant created again under the same id while the drop runs has another
// namespace (its creation time is part of it), which the drop does not
// touch, unless the store records no creation time: then keys the new
// tenant writes meanwhile may be dropped too, which makes cache misses.
func (c *Cache) startDrop(ctx context.Context, b *binding) {
	c.wg.Add(1) // follow is counted: Close has not returned from Wait
	go func() {
		defer c.wg.Done()
		select {
		case c.drops <- struct{}{}:
			defer func() { <-c.drops }()
		case <-ctx.Done():
			c.log.Warn("tenantcache: the cache was closed before the keys of a deleted tenant were dropped; they stay until they expire, and those set without a TTL for good",
				"tenant", b.id, "redis", c.describe(b))
			c.dropped(b)
			return
		}
		c.drop(ctx, b)
	}()
}

// drop deletes the keys of b, a deleted tenant, then closes its client.
func (c *Cache) drop(ctx context.Context, b *binding) {
	c.log.Debug("tenantcache: dropping the keys of a deleted tenant", "tenant", b.id, "redis", c.describe(b))
	wait, cancel := context.WithTimeout(ctx, dropTimeout)
	select {
	case <-b.idle:
	case <-wait.Done():
		if ctx.Err() == nil {
			c.log.Warn("tenantcache: deleted tenant's commands still in flight; dropping its keys anyway", "tenant", b.id)
		}
	}
	cancel()
	var (
		n   int64
		err = ctx.Err()
	)
	if err == nil {
		c.mu.Lock()
		rc := b.clientLocked(c.def)
		// A tenant created again with the namespace b had (its store
		// records no creation time, or one finer than the namespace's
		// microseconds) writes its keys there now: dropping them would
		// lose its data, not the old tenant's.
		cur := c.tenants[b.id]
		reused := cur != nil && cur.ns == b.ns && cur.own == b.own && cur.url == b.url
		c.mu.Unlock()
		if reused {
			c.log.Warn("tenantcache: a deleted tenant's keys were not dropped: the tenant was created again under the same namespace (its store records no creation time); the keys are the new tenant's now",
				"tenant", b.id, "redis", c.describe(b))
			c.dropped(b)
			return
		}
		dctx, cancel := context.WithTimeout(ctx, dropTimeout)
		n, err = flushNamespace(dctx, rc, b.ns)
		cancel()
	}
	switch {
	case ctx.Err() != nil:
		c.log.Warn("tenantcache: the cache was closed before the keys of a deleted tenant were all dropped; the rest stay until they expire, and those set without a TTL for good",
			"tenant", b.id, "redis", c.describe(b), "dropped", n)
	case err != nil:
		c.log.Error("tenantcache: could not drop all keys of a deleted tenant; the rest stay until they expire, and those set without a TTL for good",
			"tenant", b.id, "redis", c.describe(b), "dropped", n, "err", b.errorf("drop keys: %w", err))
	default:
		c.log.Info("tenantcache: dropped the keys of a deleted tenant", "tenant", b.id, "redis", c.describe(b), "dropped", n)
	}
	c.dropped(b)
}

// dropped closes the client of b, a deleted tenant, kept for its drop,
// unless a command still uses it: then its release does.
func (c *Cache) dropped(b *binding) {
	c.mu.Lock()
	b.keep = false
	var own redis.UniversalClient
	if b.refs == 0 {
		own, b.client = b.client, nil
	}
	c.mu.Unlock()
	if own != nil {
		c.closeClient(b.id, own)
	}
}

// closeClient closes a client the cache made for tenant id.
func (c *Cache) closeClient(id string, rc redis.UniversalClient) {
	if err := rc.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		c.log.Warn("tenantcache: closing a tenant's Redis client", "tenant", id, "err", err)
		return
	}
	c.log.Debug("tenantcache: closed a tenant's Redis client", "tenant", id)
}
