package testenv_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// The cluster spreads keys over its three masters, and each master's
// replica holds what its master confirmed once WAIT says so.
func TestStartRedisCluster(t *testing.T) {
	c := testenv.StartRedisCluster(t, 3, 1)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer cc.Close()
	ctx := context.Background()
	masters := map[string]bool{}
	for i := range 30 {
		key := fmt.Sprint("k", i)
		if err := cc.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		m, r := c.MasterOf(key)
		if m == nil || r == nil {
			t.Fatalf("MasterOf(%q) = %v, %v: want a master and a replica", key, m, r)
		}
		masters[m.Addr()] = true
		if got, err := m.Client().Get(ctx, key).Int(); err != nil || got != i {
			t.Fatalf("the master MasterOf names for %q answers %d, %v; want %d", key, got, err, i)
		}
		if n, err := m.Client().Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
			t.Fatalf("WAIT 1 on %q's master: %d, %v", key, n, err)
		}
		rc := r.Client()
		if err := rc.ReadOnly(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := rc.Get(ctx, key).Int(); err != nil || got != i {
			t.Fatalf("%q's replica answers %d, %v; want %d", key, got, err, i)
		}
	}
	if len(masters) != 3 {
		t.Errorf("30 keys landed on %d masters, want 3", len(masters))
	}
}

// The Sentinel names the primary it was started with, and the replica
// follows it.
func TestStartRedisSentinel(t *testing.T) {
	s := testenv.StartRedisSentinel(t)
	ctx := context.Background()
	p := s.Primary()
	if p != s.Servers[0] {
		t.Fatalf("the Sentinel names %s as the primary, want %s", p.Addr(), s.Servers[0].Addr())
	}
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: []string{s.Addr()}})
	defer fc.Close()
	if err := fc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Client().Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 on the primary: %d, %v", n, err)
	}
	if got, err := s.Servers[1].Client().Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("the replica answers %q, %v; want v", got, err)
	}
}
