package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// Each script answers what it did, and the version it wrote at, as the
// Store methods built on them expect.
func TestRedisScriptResults(t *testing.T) {
	s := openRedis(t, testenv.RedisURL(t), "")
	ctx := context.Background()
	check := func(what string, want scriptResult, wantV int64) func(scriptResult, written, error) {
		return func(res scriptResult, w written, err error) {
			t.Helper()
			v := w.v
			if err != nil || res != want || v != wantV {
				t.Errorf("%s = %d, version %d, %v; want %d, version %d", what, res, v, err, want, wantV)
			}
		}
	}
	check("create", scriptWrote, 1)(s.runCreate(ctx, "t", "one"))
	check("create of a taken id", scriptExists, 0)(s.runCreate(ctx, "t", "other"))
	check("update from a record not read", scriptChanged, 0)(s.runUpdate(ctx, "t", "other", "two"))
	check("update of a missing tenant", scriptNotFound, 0)(s.runUpdate(ctx, "missing", "one", "two"))
	check("update", scriptWrote, 2)(s.runUpdate(ctx, "t", "one", "two"))
	check("delete", scriptWrote, 3)(s.runDelete(ctx, "t"))
	check("delete of a missing tenant", scriptNotFound, 0)(s.runDelete(ctx, "t"))

	// A process keeps tenants Redis lost: deletes of missing tenants are
	// recorded, until an operator accepts the loss.
	if err := s.runMarkLost(ctx, 3); err != nil {
		t.Fatal(err)
	}
	check("delete of a kept tenant", scriptRecorded, 4)(s.runDelete(ctx, "t"))
	if err := s.runResync(ctx); err != nil { // version 5
		t.Fatal(err)
	}
	check("delete after the loss was accepted", scriptNotFound, 0)(s.runDelete(ctx, "t"))
	// A mark for a loss older than the acceptance is not set.
	if err := s.runMarkLost(ctx, 4); err != nil {
		t.Fatal(err)
	}
	check("delete after a stale mark", scriptNotFound, 0)(s.runDelete(ctx, "t"))
}

// TestRedisScriptsNoKeys: the check that keeps a writer without keys out
// of a sealed store is made by the write script itself: a writer with
// keys marks the store in the script that writes, and a writer without
// keys is refused by the script, whatever it checked before.
func TestRedisScriptsNoKeys(t *testing.T) {
	ctx := context.Background()
	url, prefix := testenv.RedisURL(t), testenv.RedisPrefix(t)
	plain := openRedis(t, url, prefix)
	keyed := openRedis(t, url, prefix, WithRedisKeys(testRing(t, "k1")))
	c := rawRedis(t, url)
	marked := func() bool {
		n, err := c.Exists(ctx, newRedisKeys(prefix).sealed).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if res, _, err := plain.runCreate(ctx, "a", `{"deploy_info":{}}`); err != nil || res != scriptWrote || marked() {
		t.Fatalf("create without keys in a store not sealed = %d, %v, marked %v; want written, not marked", res, err, marked())
	}
	if res, _, err := keyed.runCreate(ctx, "b", `{"deploy_info":{}}`); err != nil || res != scriptWrote || !marked() {
		t.Fatalf("create with keys = %d, %v, marked %v; want written and the store marked", res, err, marked())
	}
	if res, _, err := plain.runCreate(ctx, "c", `{"deploy_info":{}}`); err != nil || res != scriptNoKeys {
		t.Fatalf("create without keys in a sealed store = %d, %v; want scriptNoKeys", res, err)
	}
	if res, _, err := plain.runUpdate(ctx, "a", `{"deploy_info":{}}`, `{"deploy_info":{"X":"1"}}`); err != nil || res != scriptNoKeys {
		t.Fatalf("update without keys in a sealed store = %d, %v; want scriptNoKeys", res, err)
	}
	if ids, err := c.HKeys(ctx, newRedisKeys(prefix).tenants).Result(); err != nil || len(ids) != 2 {
		t.Fatalf("tenants = %v, %v; want a and b only", ids, err)
	}
}

// TestRedisNoKeysRace: processes without keys create tenants while one
// with keys creates its first; no tenant in clear is created after the
// sealed one, in the order of the store's own event stream. Each round
// is a new store, as only the first sealed write marks one.
func TestRedisNoKeysRace(t *testing.T) {
	ctx := context.Background()
	url := testenv.RedisURL(t)
	const rounds, writers, each = 20, 4, 10
	for round := range rounds {
		prefix := testenv.RedisPrefix(t)
		keyed := openRedis(t, url, prefix, WithRedisKeys(testRing(t, "k1")))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := range writers {
			plain := openRedis(t, url, prefix)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := range each {
					_, err := plain.Create(ctx, newTenant(fmt.Sprintf("plain-%d-%02d", w, i), "x"))
					if err != nil && !errors.Is(err, ErrNoKeys) {
						t.Error(err)
						return
					}
				}
			}()
		}
		close(start)
		if _, err := keyed.Create(ctx, newTenant("sealed", "x")); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		entries, err := rawRedis(t, url).XRange(ctx, newRedisKeys(prefix).events, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		seen := false
		for _, e := range entries {
			id := str(e.Values["id"])
			if id == "sealed" {
				seen = true
			} else if seen {
				t.Fatalf("round %d: tenant %s was written in clear after the store was sealed", round, id)
			}
		}
		if !seen {
			t.Fatalf("round %d: the sealed tenant's create is not in the stream", round)
		}
	}
}
