package tenantcache_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
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

// redisURL is a tenant's deploy_info naming its own Redis.
func redisURL(u string) map[string]string { return map[string]string{tenantcache.KeyRedisURL: u} }

// urlPassword is in the tenants' REDIS_URLs, for the logs to be checked
// for it. The private servers have none: go-redis passes over the error
// of an AUTH with a password alone that the server does not need.
const urlPassword = "r3dis-Pw"

func withPassword(u string) string {
	return strings.Replace(u, "redis://", "redis://:"+urlPassword+"@", 1)
}

// noPassword fails the test if the cache's logs hold urlPassword.
func (e *env) noPassword() {
	e.t.Helper()
	if logs := e.logs.String(); strings.Contains(logs, urlPassword) {
		e.t.Errorf("the logs show a REDIS_URL's password:\n%s", logs)
	}
}

// A tenant's own Redis: the client is made by the first command, not
// before; an update to another URL sends the next commands there and
// closes the old client; a delete closes the client and, without
// WithDropKeysOnDelete, leaves the keys.
func TestOwnRedisLifecycle(t *testing.T) {
	second := testenv.StartRedis(t, false)
	third := testenv.StartRedis(t, false)
	raw2, raw3 := client(t, second.URL()), client(t, third.URL())
	e := newEnv(t, map[string]map[string]string{"own": redisURL(withPassword(second.URL())), "plain": nil})
	defer e.noPassword()

	// Only the test's own connection, until the tenant's first command.
	if n := connectedClients(t, raw2); n != 1 {
		t.Fatalf("second Redis has %d clients before any command of the tenant, want 1 (ours)", n)
	}
	e.set("own", "k", "on-second")
	e.set("plain", "k", "on-default")
	if n := connectedClients(t, raw2); n != 2 {
		t.Errorf("second Redis has %d clients after the tenant's first command, want 2", n)
	}
	if v, err := raw2.Get(context.Background(), e.ns("own")+"k").Result(); err != nil || v != "on-second" {
		t.Errorf("second Redis: own's k is %q, %v", v, err)
	}
	if n, _ := e.raw.Exists(context.Background(), e.ns("own")+"k").Result(); n != 0 {
		t.Errorf("own's k is on the default Redis too")
	}
	if n, _ := raw2.Exists(context.Background(), e.ns("plain")+"k").Result(); n != 0 {
		t.Errorf("plain's k is on the second Redis")
	}

	// Update to the third: the next command goes there, the old client
	// is closed (the server sees its connection go).
	e.update("own", redisURL(withPassword(third.URL())))
	e.set("own", "k2", "on-third")
	if v, err := raw3.Get(context.Background(), e.ns("own")+"k2").Result(); err != nil || v != "on-third" {
		t.Errorf("third Redis: own's k2 is %q, %v", v, err)
	}
	if n, _ := raw2.Exists(context.Background(), e.ns("own")+"k2").Result(); n != 0 {
		t.Errorf("own's k2 went to the second Redis after the update")
	}
	testenv.Eventually(t, 5*time.Second, "the old client's connection to the second Redis to close", func() bool {
		return connectedClients(t, raw2) == 1
	})
	if v, err := e.cache.Get(as("own"), "k"); !errors.Is(err, tenantcache.ErrMiss) {
		t.Errorf("own's k, left on the second Redis, read after the move: %q, %v; want ErrMiss", v, err)
	}

	// An update that leaves REDIS_URL alone keeps the client.
	e.update("own", map[string]string{tenantcache.KeyRedisURL: withPassword(third.URL()), "REGION": "eu"})
	e.set("own", "k3", "v")
	if n := connectedClients(t, raw3); n != 2 {
		t.Errorf("third Redis has %d clients after an update that kept the URL, want 2", n)
	}

	// Delete: the client is closed, the keys stay, the tenant is unknown.
	e.delete("own")
	if _, err := e.cache.Get(as("own"), "k2"); !errors.Is(err, tenantcache.ErrUnknownTenant) {
		t.Errorf("Get after delete: %v, want ErrUnknownTenant", err)
	}
	testenv.Eventually(t, 5*time.Second, "the deleted tenant's connection to the third Redis to close", func() bool {
		return connectedClients(t, raw3) == 1
	})
	for _, k := range []string{"k2", "k3"} {
		if n, err := raw3.Exists(context.Background(), e.ns("own")+k).Result(); err != nil || n != 1 {
			t.Errorf("without WithDropKeysOnDelete, own's %s is gone from the third Redis: %d, %v", k, n, err)
		}
	}
	if v, err := e.cache.Get(as("plain"), "k"); err != nil || string(v) != "on-default" {
		t.Errorf("plain's k: %q, %v", v, err)
	}
}

// Made WithDropKeysOnDelete, the cache drops a deleted tenant's keys, from
// its own Redis or from the default one, and no other tenant's.
func TestDropKeysOnDelete(t *testing.T) {
	second := testenv.StartRedis(t, false)
	raw2 := client(t, second.URL())
	e := newEnv(t, map[string]map[string]string{
		"own":     redisURL(withPassword(second.URL())),
		"own2":    redisURL(second.URL()),
		"plain":   nil,
		"plain-2": nil,
		"p":       nil, // a prefix of the others' ids
	}, tenantcache.WithDropKeysOnDelete())
	defer e.noPassword()
	for _, id := range []string{"own", "own2", "plain", "plain-2", "p"} {
		for _, k := range []string{"a", "b", "c"} {
			e.set(id, k, id)
		}
	}
	e.delete("own")
	e.delete("plain")
	// The drops run in the background: wait for their ends.
	testenv.Eventually(t, 10*time.Second, "own's and plain's keys to be dropped", func() bool {
		for _, k := range []string{"a", "b", "c"} {
			n1, err1 := raw2.Exists(context.Background(), e.ns("own")+k).Result()
			n2, err2 := e.raw.Exists(context.Background(), e.ns("plain")+k).Result()
			if err1 != nil || err2 != nil || n1+n2 != 0 {
				return false
			}
		}
		return true
	})
	for _, c := range []struct {
		id   string
		raw  *redis.Client
		want int64
	}{
		{"own", raw2, 0}, {"own2", raw2, 1}, {"plain", e.raw, 0}, {"plain-2", e.raw, 1}, {"p", e.raw, 1},
	} {
		for _, k := range []string{"a", "b", "c"} {
			n, err := c.raw.Exists(context.Background(), e.ns(c.id)+k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n != c.want {
				t.Errorf("after deleting own and plain: %s%s exists %d, want %d", e.ns(c.id), k, n, c.want)
			}
		}
	}
	testenv.Eventually(t, 5*time.Second, "own's client to close (own2's stays)", func() bool {
		return connectedClients(t, raw2) == 2
	})
	e.set("own2", "d", "still served")
}

// A tenant deleted and created again under the same id starts with an
// empty cache, though the keys of its former self were not dropped: they
// stay in Redis, in a namespace the new tenant does not read.
func TestRecreatedTenantStartsEmpty(t *testing.T) {
	e := newEnv(t, tenantsOf("a", "b"))
	ctx := context.Background()
	e.set("a", "k", "old life")
	e.set("b", "k", "b's")
	oldNS := e.ns("a")
	e.delete("a") // without WithDropKeysOnDelete: the keys stay
	e.create("a", nil)
	if e.ns("a") == oldNS {
		t.Fatalf("the store gave the re-created tenant the creation time of the deleted one: namespace %q", oldNS)
	}

	if v, err := e.cache.Get(as("a"), "k"); !errors.Is(err, tenantcache.ErrMiss) {
		t.Errorf("the re-created tenant reads k: %q, %v; want ErrMiss", v, err)
	}
	for k, err := range e.cache.Scan(as("a"), "*") {
		t.Errorf("the re-created tenant's Scan yields %q, %v; want nothing", k, err)
	}
	// The old key is in Redis still, where the deleted tenant wrote it.
	if v, err := e.raw.Get(ctx, oldNS+"k").Result(); err != nil || v != "old life" {
		t.Errorf("Redis holds %q, %v under the deleted tenant's %q; want the value it set", v, err, oldNS+"k")
	}

	e.set("a", "k", "new life")
	for ns, want := range map[string]string{oldNS: "old life", e.ns("a"): "new life"} {
		if v, err := e.raw.Get(ctx, ns+"k").Result(); err != nil || v != want {
			t.Errorf("Redis holds %q, %v under %q; want %q", v, err, ns+"k", want)
		}
	}
	if v, err := e.cache.Get(as("b"), "k"); err != nil || string(v) != "b's" {
		t.Errorf("b's k: %q, %v", v, err)
	}
}

// A REDIS_URL that cannot be used fails the tenant's commands with an
// error that names the tenant and the key and not the password, and so do
// the logs; other tenants are served.
func TestBadRedisURL(t *testing.T) {
	const pw = "s3cr3t-Pw"
	// A port nothing listens on, for a URL that parses but cannot connect.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	second := testenv.StartRedis(t, false)
	secondHost := strings.TrimPrefix(strings.TrimSuffix(second.URL(), "/0"), "redis://")

	cases := []struct {
		name, url string
		want      error  // errors.Is
		reason    string // in the message
	}{
		{"empty", "", tenantcache.ErrTenantConfig, "is empty"},
		{"bad port", "redis://:" + pw + "@127.0.0.1:port/0", tenantcache.ErrTenantConfig, "not a URL"},
		{"space in password", "redis://:" + pw + " x@127.0.0.1:6379/0", tenantcache.ErrTenantConfig, "not a URL"},
		{"bad database", "redis://:" + pw + "@127.0.0.1:6379/zero", tenantcache.ErrTenantConfig, "invalid database number"},
		{"http", "http://:" + pw + "@127.0.0.1:6379/0", tenantcache.ErrTenantConfig, "scheme must be"},
		{"unknown option", "redis://127.0.0.1:6379/0?password=" + pw + "&colour=blue", tenantcache.ErrTenantConfig, "unexpected option"},
		{"nothing listens", "redis://:" + pw + "@127.0.0.1:" + strconv.Itoa(closedPort) + "/0", nil, "connection refused"},
		{"user the server has not", "redis://bob:" + pw + "@" + secondHost + "/0", nil, "WRONGPASS"},
	}
	tenants := map[string]map[string]string{"good": nil}
	for i, c := range cases {
		tenants["bad-"+strconv.Itoa(i)] = redisURL(c.url)
	}
	e := newEnv(t, tenants)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, c := range cases {
		id := "bad-" + strconv.Itoa(i)
		t.Run(c.name, func(t *testing.T) {
			err := e.cache.Set(tenantctx.WithTenant(ctx, id), "k", []byte("v"), time.Minute)
			if err == nil {
				t.Fatal("Set succeeded")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("error %v does not match %v", err, c.want)
			}
			msg := err.Error()
			for _, want := range []string{`"` + id + `"`, c.reason} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			if c.want != nil && !strings.Contains(msg, "deploy_info.REDIS_URL") {
				t.Errorf("error %q does not name the key", msg)
			}
			if strings.Contains(msg, pw) {
				t.Errorf("error shows the password: %q", msg)
			}
		})
	}
	e.set("good", "k", "v")
	e.cache.Close()
	logs := e.logs.String()
	if strings.Contains(logs, pw) {
		t.Errorf("logs show the password:\n%s", logs)
	}
	if !strings.Contains(logs, "bad-1") {
		t.Errorf("logs do not name the tenant with a bad URL:\n%s", logs)
	}
	// The store shows the URL without its password too.
	bad, err := e.store.Get(context.Background(), "bad-1")
	if err != nil {
		t.Fatal(err)
	}
	if s := bad.String(); strings.Contains(s, pw) {
		t.Errorf("store.Tenant.String shows the Redis password: %s", s)
	}
	if s := bad.Redacted().DeployInfo[tenantcache.KeyRedisURL]; strings.Contains(s, pw) {
		t.Errorf("store.Tenant.Redacted shows the Redis password: %s", s)
	}
}

// Close closes the clients made for tenants and ends every command after
// it; the default client, the caller's, stays open.
func TestClose(t *testing.T) {
	second := testenv.StartRedis(t, false)
	raw2 := client(t, second.URL())
	e := newEnv(t, map[string]map[string]string{"own": redisURL(second.URL()), "plain": nil})
	e.set("own", "k", "v")
	e.set("plain", "k", "v")
	if err := e.cache.Close(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "the tenant's client to close", func() bool {
		return connectedClients(t, raw2) == 1
	})
	if err := e.cache.Set(as("plain"), "k", []byte("v"), 0); !errors.Is(err, tenantcache.ErrClosed) {
		t.Errorf("Set after Close: %v, want ErrClosed", err)
	}
	if err := e.raw.Ping(context.Background()).Err(); err != nil {
		t.Errorf("the default client was closed: %v", err)
	}
}

// New checks its options and gives up when the store sends nothing.
func TestNewOptions(t *testing.T) {
	s := store.NewMemory()
	defer s.Close()
	cases := []struct {
		name string
		opts []tenantcache.Option
		want string
	}{
		{"empty prefix", []tenantcache.Option{tenantcache.WithPrefix("")}, "WithPrefix: the prefix must not be empty"},
		{"colon in prefix", []tenantcache.Option{tenantcache.WithPrefix("app:t:a")}, `WithPrefix("app:t:a"): the prefix must not hold ':'`},
		{"trailing colon", []tenantcache.Option{tenantcache.WithPrefix("app:")}, `WithPrefix("app:")`},
		{"bad url key", []tenantcache.Option{tenantcache.WithURLKey("redis-url")}, "WithURLKey"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := tenantcache.New(context.Background(), s, nil, c.opts...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error saying %q", err, c.want)
			}
		})
	}
}

// WithURLKey reads a tenant's own Redis from another deploy_info key; one
// under REDIS_URL is then not looked at.
func TestURLKey(t *testing.T) {
	second := testenv.StartRedis(t, false)
	raw2 := client(t, second.URL())
	e := newEnv(t, map[string]map[string]string{
		"keyed": {"CACHE_URL": second.URL()},
		"other": redisURL(second.URL()),
	}, tenantcache.WithURLKey("CACHE_URL"))
	e.set("keyed", "k", "v")
	e.set("other", "k", "v")
	for _, c := range []struct {
		id    string
		onOwn bool
	}{{"keyed", true}, {"other", false}} {
		n2, _ := raw2.Exists(context.Background(), e.ns(c.id)+"k").Result()
		n1, _ := e.raw.Exists(context.Background(), e.ns(c.id)+"k").Result()
		if (n2 == 1) != c.onOwn || (n1 == 1) == c.onOwn {
			t.Errorf("%s's key: on the second Redis %d, on the default %d; want it on the second: %v", c.id, n2, n1, c.onOwn)
		}
	}
}

// A command in flight when its tenant moves to another Redis finishes on
// the old one, whose client is closed after it: a Scan holds its client
// from its first key to its last, across several SCAN round trips.
func TestUpdateDuringCommand(t *testing.T) {
	second, third := testenv.StartRedis(t, false), testenv.StartRedis(t, false)
	raw2, raw3 := client(t, second.URL()), client(t, third.URL())
	e := newEnv(t, map[string]map[string]string{"own": redisURL(second.URL())})
	const n = 1200 // more than two SCAN batches
	for i := range n {
		e.set("own", "k"+strconv.Itoa(i), "v")
	}
	seen := make(map[string]bool)
	for k, err := range e.cache.Scan(as("own"), "*") {
		if err != nil {
			t.Fatalf("Scan after %d keys: %v", len(seen), err)
		}
		if len(seen) == 0 {
			e.update("own", redisURL(third.URL()))
			e.set("own", "moved", "v") // after the update: on the third
			if n, _ := raw3.Exists(context.Background(), e.ns("own")+"moved").Result(); n != 1 {
				t.Fatal("the command after the update did not go to the third Redis")
			}
			if n := connectedClients(t, raw2); n != 2 {
				t.Fatalf("second Redis has %d clients while a Scan runs on it, want 2", n)
			}
		}
		seen[k] = true
	}
	if len(seen) != n {
		t.Errorf("Scan begun before the update yielded %d keys, want the %d on the second Redis", len(seen), n)
	}
	testenv.Eventually(t, 5*time.Second, "the old client to close after the Scan", func() bool {
		return connectedClients(t, raw2) == 1
	})
}

// With the Redis store, a tenant created through one process's store is
// usable at once through another's cache, and a delete there drops its
// keys.
func TestRedisStore(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	open := func() store.Store {
		s, err := store.OpenRedis(context.Background(), u, store.WithRedisPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	writer, reader := open(), open()
	raw := client(t, u)
	cachePrefix := "{" + testenv.RedisPrefix(t) + "}" // a second prefix, cleaned up as the store's is
	c, err := tenantcache.New(context.Background(), reader, raw, tenantcache.WithPrefix(cachePrefix), tenantcache.WithDropKeysOnDelete())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ns := make(map[string]string)
	for _, id := range []string{"x", "y"} {
		tn, err := writer.Create(context.Background(), store.Tenant{ID: id, DeployInfo: deployInfo(nil)})
		if err != nil {
			t.Fatal(err)
		}
		ns[id] = nsOf(cachePrefix, tn)
		if err := c.Set(as(id), "k", []byte(id), time.Hour); err != nil {
			t.Fatalf("Set right after the create in another process: %v", err)
		}
	}
	if _, err := writer.Delete(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "x's key to be dropped", func() bool {
		n, err := raw.Exists(context.Background(), ns["x"]+"k").Result()
		return err == nil && n == 0
	})
	if v, err := raw.Get(context.Background(), ns["y"]+"k").Result(); err != nil || v != "y" {
		t.Errorf("y's key after x's delete: %q, %v", v, err)
	}
}

// A tenant deleted and created again while the cache looked away reaches
// it as one resync (here: another process rewrote the tenant file with a
// new creation time for a). The cache drops the old incarnation's keys,
// as for a delete, and leaves the new one's alone.
func TestRecreationInOneResyncDrops(t *testing.T) {
	e := newEnv(t, tenantsOf("a", "b"), tenantcache.WithDropKeysOnDelete())
	ctx := context.Background()
	e.set("a", "k", "old life")
	e.set("b", "k", "b's")
	oldNS := e.ns("a")

	path := e.store.(*store.File).Path()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	a := doc["tenants"].(map[string]any)["a"].(map[string]any)
	created, err := time.Parse(time.RFC3339Nano, a["created_at"].(string))
	if err != nil {
		t.Fatalf("tenant a's created_at in the file: %v", err)
	}
	recreated := created.Add(time.Hour)
	a["created_at"] = recreated.Format(time.RFC3339Nano)
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	// One rename: the cache's store sees the old tenant and the new one
	// in no file between them.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}

	testenv.Eventually(t, 30*time.Second, "the old incarnation's key dropped", func() bool {
		n, err := e.raw.Exists(ctx, oldNS+"k").Result()
		return err == nil && n == 0
	})
	newNS := nsOf(e.prefix, store.Tenant{ID: "a", CreatedAt: recreated})
	testenv.Eventually(t, 30*time.Second, "the cache on the new incarnation", func() bool {
		if err := e.cache.Set(as("a"), "k", []byte("new life"), 0); err != nil {
			t.Fatal(err)
		}
		v, err := e.raw.Get(ctx, newNS+"k").Result()
		return err == nil && v == "new life"
	})
	if v, err := e.cache.Get(as("a"), "k"); err != nil || string(v) != "new life" {
		t.Errorf("a's k after the re-creation: %q, %v; want the value set since", v, err)
	}
	if v, err := e.cache.Get(as("b"), "k"); err != nil || string(v) != "b's" {
		t.Errorf("b's k: %q, %v; the drop of a's old keys must leave b's", v, err)
	}
}
