package tenantcache

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// A Cache stores values in Redis under the tenant of each call's context.
// It is safe for concurrent use.
type Cache struct {
	store store.Store
	def   redis.UniversalClient // nil: every tenant must name its own Redis
	cfg   config
	log   *slog.Logger

	// mu guards tenants, closed and applied, and the client, refs,
	// retired and keep fields of every binding. It is never held across
	// I/O.
	mu      sync.Mutex
	tenants map[string]*binding
	closed  bool
	applied chan struct{} // closed, and replaced, each time follow has applied an event

	// Read-your-writes, as the tenantsql driver does it: published says
	// how far the store has published (nil if it is not a
	// store.Sequencer), appliedSeq how far follow has applied; a command
	// that finds follow behind waits for it.
	published  func() uint64
	appliedSeq atomic.Uint64

	ready      chan struct{} // closed once the first snapshot is applied
	followDone chan struct{} // closed when follow returns
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	// drops holds a token for each drop of a deleted tenant's keys under
	// way: a bulk delete, or a resync that removes many tenants, would
	// otherwise start a keyspace SCAN per tenant at once, in every
	// process.
	drops     chan struct{}
	closeOnce sync.Once
}

// New returns a Cache for the tenants of s, whose commands go to def
// unless a tenant names a Redis of its own in deploy_info (REDIS_URL, or
// the key given WithURLKey). def may be nil when every tenant names one; a
// tenant that does not then gets ErrTenantConfig.
//
// New starts following s and waits, bounded by ctx, until it has read
// every tenant. Closing the Cache closes the clients it made for tenants,
// but neither def nor s.
func New(ctx context.Context, s store.Store, def redis.UniversalClient, opts ...Option) (*Cache, error) {
	if s == nil {
		return nil, errors.New("tenantcache: New: nil store")
	}
	cfg := defaultConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	if err := validatePrefix(cfg.prefix); err != nil {
		return nil, err
	}
	if err := store.ValidateKey(cfg.urlKey); err != nil {
		return nil, fmt.Errorf("tenantcache: WithURLKey: %w", err)
	}
	if cfg.log == nil {
		cfg.log = slog.Default()
	}
	fctx, cancel := context.WithCancel(context.Background())
	events, err := s.Watch(fctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("tenantcache: watch the tenant store: %w", err)
	}
	c := &Cache{
		store:      s,
		def:        def,
		cfg:        cfg,
		log:        cfg.log,
		tenants:    make(map[string]*binding),
		applied:    make(chan struct{}),
		ready:      make(chan struct{}),
		followDone: make(chan struct{}),
		cancel:     cancel,
		drops:      make(chan struct{}, maxDrops),
	}
	if sq, ok := s.(store.Sequencer); ok {
		c.published = sq.Published
	}
	c.wg.Add(1)
	go c.follow(fctx, events)
	select {
	case <-c.ready:
		return c, nil
	case <-c.followDone:
		c.Close()
		return nil, errors.New("tenantcache: the tenant store closed its watch before sending the tenants")
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("tenantcache: waiting for the tenants from the store: %w", ctx.Err())
	}
}

// Close stops following the store and closes the clients the cache made
// for tenants: idle ones at once, the others when their last command
// returns. It ends the drops of deleted tenants' keys still running
// (WithDropKeysOnDelete), whose keys left then stay until they expire,
// and returns once they and the goroutine that follows the store have
// ended. Commands started after Close fail with ErrClosed.
func (c *Cache) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true // before follow stops: a waiting fence then says ErrClosed
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.mu.Lock()
		idle := make(map[string]redis.UniversalClient)
		for id, b := range c.tenants {
			delete(c.tenants, id)
			if rc := c.retireLocked(b, false); rc != nil {
				idle[id] = rc
			}
		}
		c.mu.Unlock()
		for id, rc := range idle {
			c.closeClient(id, rc)
		}
	})
	return nil
}

// Get returns the value of the context's tenant under key, or ErrMiss.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, error) {
	b, rc, err := c.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer c.release(b)
	v, err := rc.Get(ctx, b.ns.key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrMiss
	}
	if err != nil {
		return nil, b.errorf("get: %w", err)
	}
	return v, nil
}

// Set stores value under key for the context's tenant. A ttl of zero
// keeps it until it is deleted or evicted; redis.KeepTTL keeps the ttl
// the key had.
func (c *Cache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	b, rc, err := c.acquire(ctx)
	if err != nil {
		return err
	}
	defer c.release(b)
	if err := rc.Set(ctx, b.ns.key(key), value, ttl).Err(); err != nil {
		return b.errorf("set: %w", err)
	}
	return nil
}

// Delete removes the context's tenant's keys. Keys that do not exist are
// not an error.
func (c *Cache) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	b, rc, err := c.acquire(ctx)
	if err != nil {
		return err
	}
	defer c.release(b)
	// One DEL per key, pipelined: a single DEL of several keys fails on a
	// Redis Cluster when they hash to different slots, and a cluster
	// client splits a pipeline by slot.
	_, err = rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, b.ns.key(k))
		}
		return nil
	})
	if err != nil {
		return b.errorf("delete: %w", err)
	}
	return nil
}

// Scan yields the context's tenant's keys that match the glob pattern
// (Redis's MATCH syntax: *, ?, [...], \ to escape), without the cache's
// namespace, so as they were given to Set. "*" yields every key. Like
// SCAN, on which it rests, it may yield a key more than once, and keys
// set or deleted meanwhile may or may not appear. It stops at the first
// error, which it yields with an empty key. On a Redis Cluster it scans
// each master in turn.
//
// The pattern applies inside the tenant's namespace only: nothing in it
// can reach another tenant's keys.
func (c *Cache) Scan(ctx context.Context, pattern string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		b, rc, err := c.acquire(ctx)
		if err != nil {
			yield("", err)
			return
		}
		defer c.release(b)
		for k, err := range scanNamespace(ctx, rc, b.ns, pattern) {
			if err != nil {
				yield("", b.errorf("scan: %w", err))
				return
			}
			if !yield(k, nil) {
				return
			}
		}
	}
}

// Flush deletes every key of the context's tenant, and only those: it
// scans the tenant's namespace and deletes what it finds, on the tenant's
// own Redis if it has one. It never runs FLUSHDB, not even on a Redis the
// tenant has to itself.
func (c *Cache) Flush(ctx context.Context) error {
	b, rc, err := c.acquire(ctx)
	if err != nil {
		return err
	}
	defer c.release(b)
	if _, err := flushNamespace(ctx, rc, b.ns); err != nil {
		return b.errorf("flush: %w", err)
	}
	return nil
}

// acquire finds the binding of the context's tenant and the client its
// commands go to, and counts a command in flight on it until release.
func (c *Cache) acquire(ctx context.Context) (*binding, redis.UniversalClient, error) {
	id, ok := tenantctx.TenantFrom(ctx)
	if !ok {
		return nil, nil, errNoTenant
	}
	if err := c.fence(ctx); err != nil {
		return nil, nil, err
	}
	var timeout <-chan time.Time
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, nil, ErrClosed
		}
		if b := c.tenants[id]; b != nil {
			if b.err != nil {
				c.mu.Unlock()
				return nil, nil, b.err
			}
			rc := b.clientLocked(c.def)
			b.refs++
			c.mu.Unlock()
			return b, rc, nil
		}
		applied := c.applied
		c.mu.Unlock()
		if timeout == nil {
			// Not known here. If the store has it, the change that
			// created it is on its way (made a moment ago in another
			// process): wait for it, so that a command right after a
			// create succeeds everywhere.
			if _, err := c.store.Get(ctx, id); err != nil {
				if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
					return nil, nil, unknownTenant(id)
				}
				return nil, nil, fmt.Errorf("%w (and the tenant store could not be asked: %w)", unknownTenant(id), err)
			}
			t := time.NewTimer(propagationWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-applied:
		case <-c.followDone:
			return nil, nil, fmt.Errorf("%w: in the store but not here, and the cache no longer follows the store", unknownTenant(id))
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w: in the store but not yet here: %w", unknownTenant(id), ctx.Err())
		case <-timeout:
			return nil, nil, fmt.Errorf("%w: in the store but not received here within %v", unknownTenant(id), propagationWait)
		}
	}
}

// propagationWait bounds how long a command for a tenant that the store
// has, but this cache has not received yet, waits for it.
const propagationWait = 5 * time.Second

// release ends a command that acquire counted.
func (c *Cache) release(b *binding) {
	c.mu.Lock()
	b.refs--
	var rc redis.UniversalClient
	if b.retired && b.refs == 0 {
		close(b.idle)
		if !b.keep {
			rc, b.client = b.client, nil
		}
	}
	c.mu.Unlock()
	if rc != nil {
		c.closeClient(b.id, rc)
	}
}

// fence makes a command see every change the store had published when it
// began: once Create, Update or Delete has returned, no command started
// afterwards uses the configuration it replaced.
func (c *Cache) fence(ctx context.Context) error {
	if c.published == nil {
		return nil
	}
	want := c.published()
	for {
		c.mu.Lock()
		applied := c.applied
		c.mu.Unlock()
		if c.appliedSeq.Load() >= want {
			return nil
		}
		select {
		case <-applied:
		case <-c.followDone:
			if c.appliedSeq.Load() >= want {
				return nil
			}
			c.mu.Lock()
			closed := c.closed
			c.mu.Unlock()
			if closed {
				return ErrClosed
			}
			return errors.New("tenantcache: the tenant store stopped sending changes; its latest ones are not applied here")
		case <-ctx.Done():
			return fmt.Errorf("tenantcache: waiting for the latest tenant changes to be applied: %w", ctx.Err())
		}
	}
}
