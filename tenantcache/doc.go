// Package tenantcache is a cache on Redis whose keys belong to the tenant
// of each call's context, as the tenantsql driver's queries do.
//
//	c, err := tenantcache.New(ctx, s, redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"}))
//	...
//	ctx = tenantctx.WithTenant(ctx, "tenant-1.test.com") // usually done by HTTP middleware
//	err = c.Set(ctx, "profile:42", data, 10*time.Minute)
//	data, err = c.Get(ctx, "profile:42") // tenant-1's profile:42, or ErrMiss
//
// # Namespaces
//
// Tenant t's key k is stored in Redis as
//
//	PREFIX:t:ID:CREATED:k
//
// PREFIX is "tenantcache" unless WithPrefix says otherwise; it may not be
// empty nor hold a ':' (New refuses it), so that no prefix and tenant
// name a namespace inside another cache's. ID is the tenant's id, made of
// [a-z0-9._-] (store.ValidateID), so the ':' after it ends it: no
// tenant's namespace is a prefix of another's, and "a" never reaches the
// keys of "ab" or "a.b". CREATED tells the tenant's incarnations apart
// (below). Get, Set and Delete take the key as it is; Scan and Flush
// escape the namespace in their SCAN MATCH pattern, so that a glob
// character in the prefix widens nothing, and a pattern given to Scan
// applies inside the namespace only. The cache offers no raw client:
// every command it sends is one of its own, in the caller's namespace.
//
// # Incarnations
//
// A tenant deleted and created again under the same id is a new tenant,
// and starts with an empty cache, whether or not the old one's keys were
// dropped. CREATED is the tenant's creation time (store.Tenant.CreatedAt)
// in microseconds since 1970, in base 36 (10 bytes of [0-9a-z] for
// today's dates): each incarnation has a namespace of its own, and the
// old one's keys, if they were not dropped, stay unread until they
// expire. A tenant whose store records no creation time has CREATED "0",
// the same in every process and every incarnation, which then share
// their keys. The cache reads CreatedAt from the store, so every process
// that follows the same store agrees on the namespace.
//
// # Errors
//
// A context without a tenant fails with ErrNoTenant, one whose tenant the
// store does not have with ErrUnknownTenant: there is no shared
// namespace to fall back on. These are the driver's sentinels
// (driver.ErrNoTenant and driver.ErrUnknownTenant, the same values), so
// one errors.Is test serves a query and a cache command alike; the
// messages say which of the two failed. For them this package imports
// the driver, which adds pgx's pool and database/sql driver to a program
// that uses the cache (pgx's connection code comes with package store
// anyway): a cost for nobody the cache is for, since they query through
// the driver. A Get of a key that is not there is ErrMiss, a tenant the
// cache cannot serve ErrTenantConfig, a command after Close ErrClosed.
//
// The cache follows the store (Watch), so it knows the tenants without
// asking for each command, and a change made through the same store
// value is seen by every command started after it returned, as with the
// driver.
//
// # A Redis per tenant
//
// A tenant whose deploy_info holds REDIS_URL (KeyRedisURL, or the key
// given WithURLKey) is cached on that Redis, in the same namespace;
// other tenants on the default client given to New. The URL takes the
// forms of the store's Redis URLs: redis:// or rediss:// for one server,
// several addr= (or cluster=true) for a Redis Cluster, master_name= for
// Sentinel. Like the driver's database pools, a tenant's client is made by
// its first command, replaced when an update changes the URL (commands in
// flight finish on the old client, closed after the last of them; keys
// written on the old Redis stay there until they expire) and closed when
// the tenant is deleted.
//
// A REDIS_URL that cannot be used (not a URL, a wrong scheme, an option
// go-redis does not know) fails that tenant's commands with
// ErrTenantConfig, whose message names the tenant and the key; the cache
// logs it once when it reads the tenant. No error or log line of this
// package shows a password: URLs are redacted as the store redacts them
// (store.RedactURL), and the tenant's secrets are masked in errors that
// come from go-redis.
//
// # Deleted tenants' keys
//
// Deleting a tenant leaves its keys, to expire, unless the cache was made
// WithDropKeysOnDelete. Then the cache drops them in the background:
// after the tenant's commands in flight have returned, it scans the
// tenant's namespace on the tenant's Redis (its own, or the default one)
// and deletes what it finds, each step bounded by 30 seconds. Meanwhile
// it goes on applying the store's changes and serving the other tenants;
// the deleted one's commands fail with ErrUnknownTenant from the moment
// the delete is applied. The drop touches the deleted incarnation's
// namespace only, not that of a tenant created again under the same id
// (unless the store records no creation time, when the two share it).
// At most four drops run at once. Close ends a drop still running and
// waits for it. Each drop is logged (WithLogger): the number of keys
// deleted, or the error that left some behind, never a password. Keys a
// drop leaves behind expire with their TTL; those set without one stay
// for good, since no command reaches a deleted incarnation's namespace
// again. Every process that follows the store with
// such a cache drops the keys; after the first, the others find none.
//
// # Redis Cluster
//
// Commands go through redis.UniversalClient, so the default client and a
// tenant's own may be Cluster clients. Delete and Flush send one command
// per key (pipelined, which a cluster client splits by slot), never a
// multi-key command across slots; Scan and Flush scan each master in turn
// (ForEachMaster). A tenant's keys spread over the cluster by their own
// hash slots, unless the prefix holds a hash tag.
package tenantcache
