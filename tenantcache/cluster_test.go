package tenantcache_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantcache"
)

// startCluster starts a private Redis Cluster of two masters, each
// holding half of the slots, and returns a plain client per node.
func startCluster(t *testing.T) []*redis.Client {
	t.Helper()
	var nodes []*redis.Client
	for _, s := range testenv.StartRedisCluster(t, 2, 0).Nodes {
		nodes = append(nodes, s.Client())
	}
	return nodes
}

// On a Redis Cluster, a tenant's keys spread over the masters; Scan and
// Flush find them on every master, Delete removes keys of different slots
// in one call, and another tenant's keys stay.
func TestCluster(t *testing.T) {
	nodes := startCluster(t)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].Options().Addr, nodes[1].Options().Addr}})
	defer cc.Close()
	s, err := store.Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "tenants.json")+"?create=true")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"a", "ab"} {
		if _, err := s.Create(context.Background(), store.Tenant{ID: id, DeployInfo: deployInfo(nil)}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := tenantcache.New(context.Background(), s, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const n = 200
	var keys []string
	for i := range n {
		keys = append(keys, fmt.Sprintf("k%d", i))
	}
	for _, id := range []string{"a", "ab"} {
		for _, k := range keys {
			if err := c.Set(as(id), k, []byte(id), time.Hour); err != nil {
				t.Fatal(err)
			}
		}
	}
	// What each master holds, by tenant.
	held := func() (perNode []map[string]int) {
		for _, node := range nodes {
			m := make(map[string]int)
			all, err := node.Keys(context.Background(), "tenantcache:t:*").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range all {
				id, _, _ := strings.Cut(strings.TrimPrefix(k, "tenantcache:t:"), ":")
				m[id]++
			}
			perNode = append(perNode, m)
		}
		return perNode
	}
	before := held()
	for i, m := range before {
		if m["a"] == 0 || m["ab"] == 0 {
			t.Fatalf("master %d holds %v: the keys did not spread over the cluster, the test proves nothing", i, m)
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
	sorted := slices.Sorted(slices.Values(keys))
	if got = slices.Compact(got); !slices.Equal(got, sorted) {
		t.Errorf("Scan found %d of a's %d keys", len(got), n)
	}

	if err := c.Delete(as("ab"), keys[:50]...); err != nil {
		t.Fatalf("Delete of keys in different slots: %v", err)
	}
	if err := c.Flush(as("a")); err != nil {
		t.Fatal(err)
	}
	after := held()
	total := map[string]int{}
	for _, m := range after {
		for id, k := range m {
			total[id] += k
		}
	}
	if total["a"] != 0 || total["ab"] != n-50 {
		t.Errorf("after Delete of 50 of ab's keys and Flush of a, the masters hold %v, want a: 0, ab: %d", total, n-50)
	}
}
