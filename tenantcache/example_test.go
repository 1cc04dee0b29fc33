package tenantcache_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantcache"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// Two tenants write the same key and each reads back its own value; tenant
// "tenant-2.test.com" keeps its cache on a Redis of its own. This one needs
// Redis servers on ports 6379 and 6380, so it has no Output to check.
func Example() {
	ctx := context.Background()
	s := store.NewMemory() // in a program: store.Open(ctx, "file:tenant_config.json")
	defer s.Close()
	for id, di := range map[string]map[string]string{
		"tenant-1.test.com": {store.KeyPostgresURL: "postgres://app@db/one"},
		"tenant-2.test.com": {store.KeyPostgresURL: "postgres://app@db/two", tenantcache.KeyRedisURL: "redis://127.0.0.1:6380/0"},
	} {
		if _, err := s.Create(ctx, store.Tenant{ID: id, DeployInfo: di}); err != nil {
			log.Fatal(err)
		}
	}

	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	c, err := tenantcache.New(ctx, s, rdb, tenantcache.WithDropKeysOnDelete())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for _, id := range []string{"tenant-1.test.com", "tenant-2.test.com"} {
		ctx := tenantctx.WithTenant(ctx, id)
		if err := c.Set(ctx, "greeting", []byte("hello from "+id), time.Minute); err != nil {
			log.Fatal(err)
		}
	}
	v, err := c.Get(tenantctx.WithTenant(ctx, "tenant-1.test.com"), "greeting")
	fmt.Println(string(v), err) // hello from tenant-1.test.com <nil>

	// Flush deletes tenant-2's keys, on its own Redis, and nobody else's.
	if err := c.Flush(tenantctx.WithTenant(ctx, "tenant-2.test.com")); err != nil {
		log.Fatal(err)
	}
	_, err = c.Get(tenantctx.WithTenant(ctx, "tenant-2.test.com"), "greeting")
	fmt.Println(errors.Is(err, tenantcache.ErrMiss)) // true
}

// Without a tenant, or with one the store does not have, a command fails
// before it reaches Redis.
func ExampleCache_Get_noTenant() {
	ctx := context.Background()
	s := store.NewMemory()
	defer s.Close()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"}) // dials on its first command only
	defer rdb.Close()
	c, err := tenantcache.New(ctx, s, rdb)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	_, err = c.Get(ctx, "greeting")
	fmt.Println(err)
	_, err = c.Get(tenantctx.WithTenant(ctx, "tenant-9.test.com"), "greeting")
	fmt.Println(err)
	// Output:
	// tenantcache: no tenant in context: pass a context from tenantctx.WithTenant(ctx, tenantID)
	// tenantcache: unknown tenant "tenant-9.test.com"
}
