package tenantcache_test

import (
	"context"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantcache"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// env is a cache under test, on a real file store and the shared Redis,
// with a plain go-redis client (raw) to check what the cache wrote.
type env struct {
	t      *testing.T
	store  store.Store
	raw    *redis.Client // the default Redis, as the cache's default client and for checks
	prefix string        // the cache's key prefix, unique to the test
	logs   *testenv.LogBuffer
	cache  *tenantcache.Cache
	nss    map[string]string // id → namespace of the tenant's latest incarnation
}

// newEnv opens a file store holding tenants (id → deploy_info extra to
// POSTGRES_URL) and a Cache on it.
func newEnv(t *testing.T, tenants map[string]map[string]string, opts ...tenantcache.Option) *env {
	t.Helper()
	opt, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, raw: redis.NewClient(opt), logs: new(testenv.LogBuffer), nss: make(map[string]string)}
	t.Cleanup(func() { e.raw.Close() })
	// The braces match testenv.RedisPrefix's clean-up pattern, {PREFIX}:*.
	e.prefix = "{" + testenv.RedisPrefix(t) + "}"

	ctx := context.Background()
	e.store, err = store.Open(ctx, "file:"+filepath.Join(t.TempDir(), "tenants.json")+"?create=true")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	for _, id := range slices.Sorted(maps.Keys(tenants)) {
		e.create(id, tenants[id])
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts = append([]tenantcache.Option{tenantcache.WithPrefix(e.prefix), tenantcache.WithLogger(log)}, opts...)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	e.cache, err = tenantcache.New(ctx, e.store, e.raw, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.cache.Close() })
	return e
}

func deployInfo(extra map[string]string) map[string]string {
	di := map[string]string{store.KeyPostgresURL: "postgres://app:pg-secret@127.0.0.1:5432/app"}
	for k, v := range extra {
		di[k] = v
	}
	return di
}

func (e *env) create(id string, extra map[string]string) {
	e.t.Helper()
	t, err := e.store.Create(context.Background(), store.Tenant{ID: id, DeployInfo: deployInfo(extra)})
	if err != nil {
		e.t.Fatalf("create tenant %s: %v", id, err)
	}
	e.nss[id] = nsOf(e.prefix, t)
}

func (e *env) update(id string, extra map[string]string) {
	e.t.Helper()
	if _, err := e.store.Update(context.Background(), store.Tenant{ID: id, DeployInfo: deployInfo(extra)}); err != nil {
		e.t.Fatalf("update tenant %s: %v", id, err)
	}
}

func (e *env) delete(id string) {
	e.t.Helper()
	if ok, err := e.store.Delete(context.Background(), id); err != nil || !ok {
		e.t.Fatalf("delete tenant %s: %v, %v", id, ok, err)
	}
}

// ns is where tenant id's keys are expected in Redis: the namespace of
// the tenant as e.create last created it, deleted since or not.
func (e *env) ns(id string) string {
	e.t.Helper()
	ns, ok := e.nss[id]
	if !ok {
		e.t.Fatalf("tenant %s was not created by env.create", id)
	}
	return ns
}

// nsOf is where tenant t's keys are expected in Redis, as the package
// documents it: PREFIX:t:ID:CREATED:, CREATED being the tenant's creation
// time in microseconds since 1970 in base 36, or "0" if it has none.
func nsOf(prefix string, t store.Tenant) string {
	created := "0"
	if !t.CreatedAt.IsZero() {
		created = strconv.FormatInt(t.CreatedAt.UnixMicro(), 36)
	}
	return prefix + ":t:" + t.ID + ":" + created + ":"
}

func (e *env) set(id, key, value string) {
	e.t.Helper()
	if err := e.cache.Set(as(id), key, []byte(value), time.Hour); err != nil {
		e.t.Fatalf("tenant %s: set %s: %v", id, key, err)
	}
}

func as(id string) context.Context { return tenantctx.WithTenant(context.Background(), id) }

// rawKeys lists, by a plain SCAN on c, every key under the test's prefix.
func rawKeys(t *testing.T, c *redis.Client, prefix string) []string {
	t.Helper()
	var keys []string
	// The test's prefix holds no glob character ({ and } are not).
	iter := c.Scan(context.Background(), 0, prefix+":*", 1000).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// connectedClients is the number of client connections c's server has,
// c's own among them.
func connectedClients(t *testing.T, c *redis.Client) int {
	t.Helper()
	info, err := c.Info(context.Background(), "clients").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "connected_clients:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no connected_clients in INFO clients: %q", info)
	return 0
}

func client(t *testing.T, rawURL string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}
