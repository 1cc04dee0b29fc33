package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// openRedis opens a store on url with a fresh prefix (unless one is
// given) and a quick version check.
func openRedis(t *testing.T, url, prefix string, opts ...RedisOption) *Redis {
	t.Helper()
	if prefix == "" {
		prefix = testenv.RedisPrefix(t)
	}
	opts = append([]RedisOption{WithRedisPrefix(prefix), WithRedisCheckInterval(100 * time.Millisecond)}, opts...)
	s, err := OpenRedis(context.Background(), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawRedis returns a plain client on url, to change the store's keys
// behind its back.
func rawRedis(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// follow applies a store's events to a Tracker in the background and lets
// the test wait for a condition on it.
type follow struct {
	mu  sync.Mutex
	tr  *Tracker
	log []Event
}

func startFollow(t *testing.T, s Store) *follow {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := &follow{tr: NewTracker()}
	go func() {
		for ev := range ch {
			f.mu.Lock()
			f.tr.Apply(ev)
			f.log = append(f.log, ev)
			f.mu.Unlock()
		}
	}()
	return f
}

func (f *follow) has(ids ...string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.tr.Synced() {
		return false
	}
	for _, id := range ids {
		if _, ok := f.tr.Get(id); !ok {
			return false
		}
	}
	return true
}

func (f *follow) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tr.Len()
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, timeout, what, cond)
}

// Twenty stores (twenty clients, as twenty processes would have) creating
// one id at once: exactly one wins.
func TestRedisCreateRace(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	stores := make([]*Redis, 20)
	for i := range stores {
		stores[i] = openRedis(t, u, prefix)
	}
	var wins, exists atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Create(context.Background(), newTenant("contested", fmt.Sprint("db", i)))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, ErrExists):
				exists.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || exists.Load() != 19 {
		t.Fatalf("%d creates won and %d got ErrExists; want 1 and 19", wins.Load(), exists.Load())
	}
}

// Conditional updates from many clients: each version is won once, and
// unconditional updates all land with versions one apart.
func TestRedisUpdateRace(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	a := openRedis(t, u, prefix)
	ctx := context.Background()
	if _, err := a.Create(ctx, newTenant("t", "db0")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var won, conflicts atomic.Int64
	for i := range 10 {
		s := openRedis(t, u, prefix)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tn := newTenant("t", fmt.Sprint("db", i))
			tn.Version = 1
			_, err := s.Update(ctx, tn)
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, ErrConflict):
				conflicts.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 || conflicts.Load() != 9 {
		t.Fatalf("updates of version 1: %d won, %d conflicts; want 1 and 9", won.Load(), conflicts.Load())
	}
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Update(ctx, newTenant("t", fmt.Sprint("x", i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := a.Get(ctx, "t")
	if err != nil || got.Version != 22 {
		t.Fatalf("after 1 create and 21 updates: version %d, %v; want 22", got.Version, err)
	}
	if _, err := a.Update(ctx, newTenant("missing", "db")); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of a missing tenant: %v, want ErrNotFound", err)
	}
}
