package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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

// A change made through one store reaches the watchers of another, and no
// password travels in the event stream or on the channel.
func TestRedisPropagation(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	a, b := openRedis(t, u, prefix), openRedis(t, u, prefix)
	fb := startFollow(t, b)
	ctx := context.Background()
	waitFor(t, 5*time.Second, "the first sync", func() bool { return fb.has() })

	opts, _ := redis.ParseURL(u)
	spy := redis.NewClient(opts)
	defer spy.Close()
	sub := spy.Subscribe(ctx, "{"+prefix+"}:changes")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}

	if _, err := a.Create(ctx, newTenant("t1", "one")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "t1 in the other store", func() bool { return fb.has("t1") })
	if _, err := a.Update(ctx, newTenant("t1", "uno")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "t1's update", func() bool {
		fb.mu.Lock()
		defer fb.mu.Unlock()
		tn, _ := fb.tr.Get("t1")
		return strings.HasSuffix(tn.PostgresURL(), "/uno")
	})
	if ok, err := a.Delete(ctx, "t1"); err != nil || !ok {
		t.Fatalf("delete: %v, %v", ok, err)
	}
	if ok, err := a.Delete(ctx, "t1"); err != nil || ok {
		t.Fatalf("second delete: %v, %v; want false, nil", ok, err)
	}
	waitFor(t, 5*time.Second, "t1's delete", func() bool { return fb.count() == 0 })

	msg, err := sub.ReceiveTimeout(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := msg.(*redis.Message); !ok || strings.Contains(m.Payload, "hunter2") {
		t.Errorf("channel message %v", msg)
	}
	ents, err := spy.XRange(ctx, "{"+prefix+"}:events", "-", "+").Result()
	if err != nil || len(ents) != 3 {
		t.Fatalf("stream: %d entries, %v; want 3", len(ents), err)
	}
	for _, e := range ents {
		if strings.Contains(fmt.Sprint(e.Values), "hunter2") {
			t.Errorf("stream entry %v holds a password", e.Values)
		}
	}
}

// A wake-up lost on the way (a change written without PUBLISH, as when
// pub/sub drops it) is found by the periodic version check; a gap in the
// stream (trimmed past the follower) leads to a resync.
func TestRedisLostWakeUpAndGap(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	s := openRedis(t, u, prefix)
	fs := startFollow(t, s)
	ctx := context.Background()
	waitFor(t, 5*time.Second, "the first sync", func() bool { return fs.has() })
	opts, _ := redis.ParseURL(u)
	raw := redis.NewClient(opts)
	defer raw.Close()
	k := newRedisKeys(prefix)
	rec, _ := encodeRecord(Tenant{ID: "silent", DeployInfo: dbInfo("silent"), Version: 1, CreatedAt: now(), UpdatedAt: now()})

	// Lost wake-up: the stream and counter are right, the message never came.
	v := raw.Incr(ctx, k.version).Val()
	raw.HSet(ctx, k.tenants, "silent", rec)
	raw.XAdd(ctx, &redis.XAddArgs{Stream: k.events, Values: []any{"v", v, "t", "create", "id", "silent"}})
	waitFor(t, 5*time.Second, "the silently created tenant", func() bool { return fs.has("silent") })

	// Gap: two versions whose stream entries were trimmed away.
	raw.Incr(ctx, k.version)
	v = raw.Incr(ctx, k.version).Val()
	rec2, _ := encodeRecord(Tenant{ID: "trimmed", DeployInfo: dbInfo("trimmed"), Version: 1, CreatedAt: now(), UpdatedAt: now()})
	raw.HSet(ctx, k.tenants, "trimmed", rec2)
	raw.XTrimMaxLen(ctx, k.events, 0)
	raw.XAdd(ctx, &redis.XAddArgs{Stream: k.events, Values: []any{"v", v, "t", "create", "id", "trimmed"}})
	raw.Publish(ctx, k.channel, v)
	waitFor(t, 5*time.Second, "the tenant behind the gap", func() bool { return fs.has("silent", "trimmed") })
}

// Redis restarted (with its data) while a process followed it, and a
// tenant created in between: the process has it within seconds of Redis
// coming back, and never dropped the others meanwhile.
func TestRedisRestart(t *testing.T) {
	srv := testenv.StartRedis(t, true)
	prefix := "restart"
	a := openRedis(t, srv.URL(), prefix)
	b := openRedis(t, srv.URL(), prefix)
	ctx := context.Background()
	if _, err := a.Create(ctx, newTenant("before", "db")); err != nil {
		t.Fatal(err)
	}
	fb := startFollow(t, b)
	waitFor(t, 5*time.Second, "the tenant created before", func() bool { return fb.has("before") })

	srv.Kill()
	waitFor(t, 5*time.Second, "the follower to notice", func() bool { return !b.Status().Connected })
	if !fb.has("before") {
		t.Fatal("tenants were dropped while Redis was down")
	}
	if err := b.Ping(ctx); err == nil {
		t.Error("Ping while Redis is down: nil")
	}
	srv.Start()
	if _, err := a.Create(ctx, newTenant("during", "db")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the tenant created after the restart", func() bool { return fb.has("before", "during") })
	if st := b.Status(); !st.Connected || st.DataLoss {
		t.Errorf("status after recovery: %+v", st)
	}
}

// Redis restarted empty: processes keep the tenants they know, say so
// loudly, keep applying new changes, and drop tenants only when an
// operator accepts the loss.
func TestRedisDataLoss(t *testing.T) {
	srv := testenv.StartRedis(t, false)
	prefix := "loss"
	var logs syncBuffer
	a := openRedis(t, srv.URL(), prefix)
	b := openRedis(t, srv.URL(), prefix, WithRedisLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the follower's log:\n%s", logs.String())
		}
	})
	ctx := context.Background()
	for _, id := range []string{"t1", "t2"} {
		if _, err := a.Create(ctx, newTenant(id, "db")); err != nil {
			t.Fatal(err)
		}
	}
	fb := startFollow(t, b)
	waitFor(t, 5*time.Second, "t1 and t2", func() bool { return fb.has("t1", "t2") })

	srv.Kill()
	srv.Start() // empty
	if _, err := a.Create(ctx, newTenant("t3", "db")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "t3 after the loss", func() bool { return fb.has("t3") })
	if !fb.has("t1", "t2", "t3") {
		t.Fatal("tenants the empty Redis no longer lists were dropped")
	}
	if !b.Status().DataLoss {
		t.Error("Status().DataLoss is false after Redis came back empty")
	}
	if !strings.Contains(logs.String(), "lost data") {
		t.Errorf("no error logged about the loss:\n%s", logs.String())
	}
	// Changes after the loss still apply, deletes included.
	if _, err := a.Create(ctx, newTenant("t4", "db")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Delete(ctx, "t3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "t4 in and t3 out", func() bool { return fb.has("t1", "t2", "t4") && !fb.has("t3") })

	if err := a.AcceptLoss(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the accepted resync", func() bool { return fb.has("t4") && fb.count() == 1 })
	if b.Status().DataLoss {
		t.Error("DataLoss still set after the accepted resync")
	}
}
