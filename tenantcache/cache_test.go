package tenantcache_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/tenantcache"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// Ids that a careless layout would mix up: "a" is a prefix of "ab" and of
// "a.b", and "a-b" and "a.b" differ by one byte.
var confusable = []string{"a", "ab", "a.b", "a-b", "b"}

func tenantsOf(ids ...string) map[string]map[string]string {
	m := make(map[string]map[string]string, len(ids))
	for _, id := range ids {
		m[id] = nil
	}
	return m
}

// Many goroutines per tenant write and read keys of the same names at the
// same time: each reads only its own tenant's values, and Redis holds each
// tenant's keys under its namespace and nowhere else.
func TestIsolationConcurrent(t *testing.T) {
	e := newEnv(t, tenantsOf(confusable...))
	const (
		workers = 8
		rounds  = 50
		names   = 10 // key names, shared by every tenant
	)
	var wg sync.WaitGroup
	errs := make(chan error, len(confusable)*workers)
	for _, id := range confusable {
		for w := range workers {
			wg.Go(func() {
				ctx := as(id)
				for i := range rounds {
					key := fmt.Sprintf("k%d", (w+i)%names)
					if err := e.cache.Set(ctx, key, []byte(id+"/"+key), time.Hour); err != nil {
						errs <- fmt.Errorf("tenant %s: set: %w", id, err)
						return
					}
					got, err := e.cache.Get(ctx, key)
					if err != nil {
						errs <- fmt.Errorf("tenant %s: get %s: %w", id, key, err)
						return
					}
					if string(got) != id+"/"+key {
						errs <- fmt.Errorf("tenant %s read %q under %s", id, got, key)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// What Redis holds: per tenant, the shared names under its own
	// namespace, each with its own value.
	keys := rawKeys(t, e.raw, e.prefix)
	if want := len(confusable) * names; len(keys) != want {
		t.Errorf("Redis holds %d keys under the prefix, want %d: %q", len(keys), want, keys)
	}
	for _, rk := range keys {
		rest, ok := strings.CutPrefix(rk, e.prefix+":t:")
		if !ok {
			t.Errorf("key %q is outside the tenants' namespaces", rk)
			continue
		}
		id, _, _ := strings.Cut(rest, ":")
		if !slices.Contains(confusable, id) {
			t.Errorf("key %q is in the namespace of %q, no tenant", rk, id)
			continue
		}
		key, ok := strings.CutPrefix(rk, e.ns(id))
		if !ok {
			t.Errorf("key %q is not in the namespace of %s as created, %q", rk, id, e.ns(id))
			continue
		}
		v, err := e.raw.Get(context.Background(), rk).Result()
		if err != nil {
			t.Fatal(err)
		}
		if v != id+"/"+key {
			t.Errorf("Redis has %q under %q, want %q", v, rk, id+"/"+key)
		}
	}
}

// Flush of one tenant deletes its keys, more than one SCAN batch of them,
// and leaves every other tenant's, those whose ids it is a prefix of
// among them; Delete removes only the caller's key of that name.
func TestFlushAndDeleteTouchOnlyTheTenant(t *testing.T) {
	e := newEnv(t, tenantsOf(confusable...))
	const n = 1200 // more than two SCAN batches
	for _, id := range confusable {
		for i := range n {
			e.set(id, fmt.Sprintf("k%d", i), id)
		}
	}
	count := func() map[string]int {
		m := make(map[string]int)
		for _, rk := range rawKeys(t, e.raw, e.prefix) {
			for _, id := range confusable {
				if strings.HasPrefix(rk, e.ns(id)) {
					m[id]++
				}
			}
		}
		return m
	}
	for _, id := range confusable {
		if got := count()[id]; got != n {
			t.Fatalf("before: tenant %s has %d keys in Redis, want %d", id, got, n)
		}
	}

	if err := e.cache.Flush(as("a")); err != nil {
		t.Fatal(err)
	}
	got := count()
	for _, id := range confusable {
		want := n
		if id == "a" {
			want = 0
		}
		if got[id] != want {
			t.Errorf("after Flush of a: tenant %s has %d keys in Redis, want %d", id, got[id], want)
		}
	}
	if _, err := e.cache.Get(as("a"), "k1"); !errors.Is(err, tenantcache.ErrMiss) {
		t.Errorf("a's k1 after Flush: %v, want ErrMiss", err)
	}

	if err := e.cache.Delete(as("ab"), "k1", "k2", "never-set"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ab", "a.b", "b"} {
		for _, k := range []string{"k1", "k2", "k3"} {
			exists, err := e.raw.Exists(context.Background(), e.ns(id)+k).Result()
			if err != nil {
				t.Fatal(err)
			}
			want := int64(1)
			if id == "ab" && k != "k3" {
				want = 0
			}
			if exists != want {
				t.Errorf("after Delete of ab's k1, k2: %s%s exists %d, want %d", e.ns(id), k, exists, want)
			}
		}
	}
}

// Without a tenant, or with one the store does not have, every command
// fails before it reaches Redis.
func TestNoTenantNoCommand(t *testing.T) {
	e := newEnv(t, tenantsOf("a"))
	ops := []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := e.cache.Get(ctx, "k"); return err }},
		{"Set", func(ctx context.Context) error { return e.cache.Set(ctx, "k", []byte("v"), time.Hour) }},
		{"Delete", func(ctx context.Context) error { return e.cache.Delete(ctx, "k") }},
		{"Flush", func(ctx context.Context) error { return e.cache.Flush(ctx) }},
		{"Scan", func(ctx context.Context) error {
			for _, err := range e.cache.Scan(ctx, "*") {
				return err
			}
			return errors.New("Scan yielded nothing")
		}},
	}
	ctxs := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"no tenant", context.Background(), tenantcache.ErrNoTenant},
		{"empty tenant", as(""), tenantcache.ErrNoTenant},
		{"unknown tenant", as("zz"), tenantcache.ErrUnknownTenant},
		{"invalid id", as("A*"), tenantcache.ErrUnknownTenant},
	}
	for _, c := range ctxs {
		for _, op := range ops {
			t.Run(c.name+"/"+op.name, func(t *testing.T) {
				if err := op.run(c.ctx); !errors.Is(err, c.want) {
					t.Errorf("got %v, want %v", err, c.want)
				}
			})
		}
	}
	if keys := rawKeys(t, e.raw, e.prefix); len(keys) != 0 {
		t.Errorf("Redis holds keys under the prefix: %q", keys)
	}
}

// The cache fails with the driver's sentinels: one errors.Is test catches
// a query's and a cache command's failure alike, and each message still
// says whose it is.
func TestErrorsAreTheDrivers(t *testing.T) {
	if tenantcache.ErrNoTenant != driver.ErrNoTenant || tenantcache.ErrUnknownTenant != driver.ErrUnknownTenant {
		t.Fatal("tenantcache.ErrNoTenant and ErrUnknownTenant are not the driver's sentinels")
	}
	e := newEnv(t, tenantsOf("a"))
	conn, err := driver.NewConnector(e.store)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cases := []struct {
		name      string
		ctx       context.Context
		want, not error
		msg       string // what the cache's message begins with
	}{
		{"no tenant", ctx, driver.ErrNoTenant, driver.ErrUnknownTenant,
			"tenantcache: no tenant in context: pass a context from tenantctx.WithTenant(ctx, tenantID)"},
		{"unknown tenant", tenantctx.WithTenant(ctx, "zz"), driver.ErrUnknownTenant, driver.ErrNoTenant,
			`tenantcache: unknown tenant "zz"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Neither reaches a database or Redis: no PostgreSQL is needed.
			_, queryErr := db.ExecContext(c.ctx, "SELECT 1")
			_, cacheErr := e.cache.Get(c.ctx, "k")
			for _, err := range []error{queryErr, cacheErr} {
				if !errors.Is(err, c.want) || errors.Is(err, c.not) {
					t.Errorf("%v: errors.Is %v is %v, %v is %v; want true, false", err, c.want, errors.Is(err, c.want), c.not, errors.Is(err, c.not))
				}
			}
			if cacheErr != nil && !strings.HasPrefix(cacheErr.Error(), c.msg) {
				t.Errorf("cache's error %q does not begin with %q", cacheErr, c.msg)
			}
		})
	}
}

// Scan finds the tenant's keys by pattern, in the tenant's terms, and
// none of another tenant's that match the same pattern.
func TestScan(t *testing.T) {
	e := newEnv(t, tenantsOf("a", "ab"))
	for _, k := range []string{"user:1", "user:2", "order:1"} {
		e.set("a", k, "v")
	}
	e.set("ab", "user:3", "v")
	e.set("ab", "user:1", "v")
	cases := []struct {
		id, pattern string
		want        []string
	}{
		{"a", "*", []string{"order:1", "user:1", "user:2"}},
		{"a", "user:*", []string{"user:1", "user:2"}},
		{"a", "user:?", []string{"user:1", "user:2"}},
		{"a", "*:1", []string{"order:1", "user:1"}},
		{"ab", "*", []string{"user:1", "user:3"}},
		{"a", "user:3", nil},
	}
	for _, c := range cases {
		t.Run(c.id+"/"+c.pattern, func(t *testing.T) {
			var got []string
			for k, err := range e.cache.Scan(as(c.id), c.pattern) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, k)
			}
			slices.Sort(got)
			got = slices.Compact(got) // SCAN may yield a key twice
			if !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// Glob characters in the prefix, or in a key, are taken literally: a
// Flush or Scan that did not escape the prefix would reach keys that
// merely match it as a pattern.
func TestGlobCharactersAreLiteral(t *testing.T) {
	e := newEnv(t, tenantsOf("a"))
	globPrefix := e.prefix + `*?[x]\`
	c, err := tenantcache.New(context.Background(), e.store, e.raw, tenantcache.WithPrefix(globPrefix))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Decoys that the unescaped namespace pattern,
	// PREFIX*?[x]\:t:a:CREATED:*, matches: * and ? stand for anything, [x]
	// for "x", \: for ":".
	rest := strings.TrimPrefix(e.ns("a"), e.prefix) // :t:a:CREATED:
	decoys := []string{
		e.prefix + "ZZZx" + rest + "k",
		e.prefix + "-Qx" + rest + "k",
	}
	for _, d := range decoys {
		if err := e.raw.Set(context.Background(), d, "decoy", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"*", "k?", "k1", `\`} {
		if err := c.Set(as("a"), k, []byte("v:"+k), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for k, err := range c.Scan(as("a"), "*") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	slices.Sort(got)
	if want := []string{"*", `\`, "k1", "k?"}; !slices.Equal(slices.Compact(got), want) {
		t.Errorf("Scan *: got %q, want %q", got, want)
	}
	// A key named "*" is one key, not a pattern.
	if err := c.Delete(as("a"), "*"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(as("a"), "k1"); err != nil || string(v) != "v:k1" {
		t.Errorf("k1 after Delete(*): %q, %v", v, err)
	}
	if err := c.Flush(as("a")); err != nil {
		t.Fatal(err)
	}
	for _, d := range decoys {
		if v, err := e.raw.Get(context.Background(), d).Result(); err != nil || v != "decoy" {
			t.Errorf("decoy %q after Flush: %q, %v", d, v, err)
		}
	}
	ns := globPrefix + rest
	for _, k := range []string{"k?", "k1", `\`} {
		if n, err := e.raw.Exists(context.Background(), ns+k).Result(); err != nil || n != 0 {
			t.Errorf("%q after Flush: exists %d, %v", ns+k, n, err)
		}
	}
}
