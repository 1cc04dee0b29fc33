package tenantcache_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
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
	if _, err := exec.LookPath("redis-server"); err != nil {
		testenv.CannotRun(t, "no redis-server to start a private Redis Cluster: %v", err)
	}
	var nodes []*redis.Client
	for i := range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		dir := t.TempDir()
		cmd := exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"))
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
		t.Cleanup(func() { c.Close() })
		testenv.Eventually(t, 5*time.Second, "the cluster node to answer", func() bool {
			return c.Ping(context.Background()).Err() == nil
		})
		lo, hi := i*8192, i*8192+8191
		if err := c.Do(context.Background(), "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE %d %d: %v", lo, hi, err)
		}
		nodes = append(nodes, c)
	}
	port := strings.TrimPrefix(nodes[1].Options().Addr, "127.0.0.1:")
	if err := nodes[0].Do(context.Background(), "CLUSTER", "MEET", "127.0.0.1", port).Err(); err != nil {
		t.Fatalf("CLUSTER MEET: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, "the cluster to be ok on both nodes", func() bool {
		for _, n := range nodes {
			info, err := n.ClusterInfo(context.Background()).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:2") {
				return false
			}
		}
		return true
	})
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
