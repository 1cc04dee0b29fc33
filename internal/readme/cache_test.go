package readme

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantcache"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// ### Caching per tenant: the tenant's value lands under its namespace on
// the default Redis, and another tenant does not see it.
func TestCacheSnippet(t *testing.T) {
	opts, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	s := store.NewMemory()
	defer s.Close()
	// Ids of this test's own: the snippet uses the default key prefix on
	// the shared Redis.
	id, other := testenv.RedisPrefix(t), testenv.RedisPrefix(t)
	var tenant store.Tenant
	for _, id := range []string{other, id} {
		tenant, err = s.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://app@db/x"}})
		if err != nil {
			t.Fatal(err)
		}
	}
	// tenantcache:t:ID:CREATED:key, CREATED the tenant's creation time in
	// microseconds since 1970, in base 36.
	rawKey := "tenantcache:t:" + id + ":" + strconv.FormatInt(tenant.CreatedAt.UnixMicro(), 36) + ":report:2026-12"
	t.Cleanup(func() { rdb.Del(context.Background(), rawKey) })
	ctx := tenantctx.WithTenant(context.Background(), id)
	report := []byte("42 patients")

	// snippet:cache-new
	cache, err := tenantcache.New(ctx, s, rdb) // s: the tenant store; rdb: a go-redis client, for tenants without REDIS_URL
	// end snippet
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	// snippet:cache-use
	err = cache.Set(ctx, "report:2026-12", report, time.Hour) // ctx names the tenant, as for queries
	// end snippet
	if err != nil {
		t.Fatal(err)
	}
	// snippet:cache-get
	report, err = cache.Get(ctx, "report:2026-12") // tenantcache.ErrMiss if it is not there
	// end snippet
	if err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(context.Background(), rawKey).Result(); err != nil || v != "42 patients" || string(report) != v {
		t.Fatalf("Redis holds %q, %v under %s; Get returned %q", v, err, rawKey, report)
	}
	if _, err := cache.Get(tenantctx.WithTenant(context.Background(), other), "report:2026-12"); !errors.Is(err, tenantcache.ErrMiss) {
		t.Fatalf("another tenant's Get: %v, want ErrMiss", err)
	}
}
