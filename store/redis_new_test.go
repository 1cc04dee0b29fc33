package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// NewRedis makes a working store on a client the caller owns, with the
// options under their former names: it writes under its prefix, follows
// the store, and Close leaves the client open.
func TestNewRedis(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	c := rawRedis(t, u)
	ctx := context.Background()
	s, err := NewRedis(ctx, c, WithPrefix(prefix), WithCheckInterval(100*time.Millisecond), WithResyncInterval(time.Second), WithStreamLength(1000), WithRedisLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // again if the test stops early: Close is idempotent
	k := newRedisKeys(prefix)
	if n, err := c.Exists(ctx, k.epoch).Result(); err != nil || n != 1 {
		t.Fatalf("after NewRedis, EXISTS %s = %d, %v; want the epoch written", k.epoch, n, err)
	}
	fs := startFollow(t, s)
	if _, err := s.Create(ctx, newTenant("t1", "db")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "t1 followed", func() bool { return fs.has("t1") })
	if rec, err := c.HGet(ctx, k.tenants, "t1").Result(); err != nil || !strings.Contains(rec, "/db") {
		t.Fatalf("HGET %s t1 = %q, %v; want the record under the given prefix", k.tenants, rec, err)
	}
	if got := mustGet(t, s, "t1"); got.PostgresURL() != newTenant("t1", "db").PostgresURL() {
		t.Errorf("Get(t1) = %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("List after Close = %v, want ErrClosed", err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Errorf("the caller's client after the store's Close: %v; NewRedis must not close it", err)
	}
}

// NewRedis refuses bad options, and a client that cannot reach Redis.
func TestNewRedisErrors(t *testing.T) {
	u := testenv.RedisURL(t)
	c := rawRedis(t, u)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		opts []RedisOption
		want string
	}{
		{"empty prefix", []RedisOption{WithRedisPrefix("")}, "prefix"},
		{"prefix with a brace", []RedisOption{WithRedisPrefix("a}b")}, "prefix"},
		{"zero check", []RedisOption{WithRedisCheckInterval(0)}, "positive"},
		{"negative resync", []RedisOption{WithRedisResyncInterval(-time.Second)}, "positive"},
		{"zero stream length", []RedisOption{WithRedisStreamLength(0)}, "stream length"},
	} {
		s, err := NewRedis(ctx, c, append([]RedisOption{WithRedisPrefix(testenv.RedisPrefix(t))}, tt.opts...)...)
		if err == nil {
			s.Close()
			t.Errorf("%s: NewRedis succeeded", tt.name)
		} else if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewRedis error %q, want one containing %q", tt.name, err, tt.want)
		}
	}
	// Nothing listens on port 1.
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: time.Second, MaxRetries: -1})
	defer down.Close()
	if s, err := NewRedis(ctx, down, WithRedisPrefix(testenv.RedisPrefix(t))); err == nil {
		s.Close()
		t.Error("NewRedis on an unreachable Redis succeeded")
	} else if !strings.Contains(err.Error(), "store: redis") {
		t.Errorf("NewRedis on an unreachable Redis: %v, want an error naming the store", err)
	}
}

// WithRedisStreamLength bounds the event stream: XLEN on the server stays
// near the length asked for (MAXLEN ~ trims whole stream nodes, made small
// here on a private server), while the default keeps every entry.
func TestRedisStreamLength(t *testing.T) {
	srv := testenv.StartRedis(t, false)
	raw := rawRedis(t, srv.URL())
	ctx := context.Background()
	if err := raw.ConfigSet(ctx, "stream-node-max-entries", "10").Err(); err != nil {
		t.Fatal(err)
	}
	const length, writes = 20, 100
	short := openRedis(t, srv.URL(), "short", WithRedisStreamLength(length))
	long := openRedis(t, srv.URL(), "long")
	for i := range writes {
		tn := newTenant("t", "db")
		tn.DeployInfo["N"] = strings.Repeat("x", i%7)
		for _, s := range []*Redis{short, long} {
			if i == 0 {
				if _, err := s.Create(ctx, tn); err != nil {
					t.Fatal(err)
				}
				continue
			}
			tn.Version = int64(i)
			if _, err := s.Update(ctx, tn); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, err := raw.XLen(ctx, newRedisKeys("short").events).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n < length || n > length+10 {
		t.Errorf("with WithRedisStreamLength(%d), XLEN after %d writes = %d, want %d to %d", length, writes, n, length, length+10)
	}
	if n, err := raw.XLen(ctx, newRedisKeys("long").events).Result(); err != nil || n != writes {
		t.Errorf("with the default length, XLEN after %d writes = %d, %v; want %d", writes, n, err, writes)
	}
	// A follower started now reads the store from the trimmed stream.
	fs := startFollow(t, short)
	waitFor(t, 5*time.Second, "the short store followed", func() bool { return fs.has("t") })
}
