package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a private Redis Cluster on local ports, for tests that
// need one and that fail its nodes over or kill them.
type RedisCluster struct {
	t testing.TB
	// Nodes are the servers, masters first, in the order they were made
	// masters; which are masters now is what the cluster says
	// (MasterOf).
	Nodes []*RedisServer
}

// clusterNodeTimeout is how long the nodes take a silent peer to be
// down: a killed master's replica is elected after about twice that.
const clusterNodeTimeout = 1000 // ms

// StartRedisCluster starts a Redis Cluster of masters masters, which share
// the 16384 slots evenly, each with replicasPerMaster replicas, without
// persistence, each node in a directory of t.TempDir(). It returns once
// every node sees the cluster whole (cluster_state:ok, every replica's link
// up); the nodes are killed at the test's end.
func StartRedisCluster(t testing.TB, masters, replicasPerMaster int) *RedisCluster {
	t.Helper()
	if masters < 1 || replicasPerMaster < 0 {
		t.Fatalf("StartRedisCluster(%d, %d): want at least one master and no negative replica count", masters, replicasPerMaster)
	}
	c := &RedisCluster{t: t}
	ctx := context.Background()
	n := masters * (1 + replicasPerMaster)
	for range n {
		// The config file is the node's own (its id, its view of the
		// cluster): in its directory, so that nodes never share one.
		s := startRedis(t, false, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", fmt.Sprint(clusterNodeTimeout))
		c.Nodes = append(c.Nodes, s)
	}
	clients := make([]*redis.Client, n)
	for i, s := range c.Nodes {
		clients[i] = s.Client()
	}
	per := 16384 / masters
	for i := range masters {
		lo, hi := i*per, (i+1)*per-1
		if i == masters-1 {
			hi = 16383
		}
		if err := clients[i].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE %d %d: %v", lo, hi, err)
		}
	}
	for _, s := range c.Nodes[1:] {
		if err := clients[0].ClusterMeet(ctx, "127.0.0.1", fmt.Sprint(s.port)).Err(); err != nil {
			t.Fatalf("CLUSTER MEET: %v", err)
		}
	}
	Eventually(t, 20*time.Second, fmt.Sprintf("every node to know the %d nodes", n), func() bool {
		for _, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d\r\n", n)) {
				return false
			}
		}
		return true
	})
	for i := masters; i < n; i++ {
		master := clients[(i-masters)%masters]
		id, err := master.ClusterMyID(ctx).Result()
		if err != nil {
			t.Fatalf("CLUSTER MYID: %v", err)
		}
		// The replica must have heard of the master's id by gossip,
		// which the wait above does not quite ensure.
		Eventually(t, 20*time.Second, "a replica to accept its master", func() bool {
			return clients[i].ClusterReplicate(ctx, id).Err() == nil
		})
	}
	c.waitHealthy(clients, masters)
	return c
}

// waitHealthy waits until every node answers that the cluster is ok with
// the masters given, and every replica's link to its master is up.
func (c *RedisCluster) waitHealthy(clients []*redis.Client, masters int) {
	c.t.Helper()
	ctx := context.Background()
	Eventually(c.t, 30*time.Second, "the cluster to be ok on every node", func() bool {
		for _, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, fmt.Sprintf("cluster_size:%d\r\n", masters)) {
				return false
			}
			repl, err := cl.Info(ctx, "replication").Result()
			if err != nil || strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
				return false
			}
		}
		return true
	})
}

// URL returns the cluster's URL for the store (every node's address).
func (c *RedisCluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr() + "?"
	for i, s := range c.Nodes[1:] {
		if i > 0 {
			u += "&"
		}
		u += "addr=" + s.Addr()
	}
	return strings.TrimSuffix(u, "?")
}

// Addrs returns every node's host:port.
func (c *RedisCluster) Addrs() []string {
	var a []string
	for _, s := range c.Nodes {
		a = append(a, s.Addr())
	}
	return a
}

// MasterOf returns the node that serves key's slot now, as the live nodes
// answer CLUSTER SHARDS, and a replica of it that is up (nil if none).
func (c *RedisCluster) MasterOf(key string) (master, replica *RedisServer) {
	c.t.Helper()
	ctx := context.Background()
	for _, s := range c.Nodes {
		if !s.Running() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: s.Addr()})
		defer cl.Close()
		slot, err := cl.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			continue
		}
		shards, err := cl.ClusterShards(ctx).Result()
		if err != nil {
			continue
		}
		for _, sh := range shards {
			in := false
			for _, r := range sh.Slots {
				in = in || int64(r.Start) <= slot && slot <= int64(r.End)
			}
			if !in {
				continue
			}
			for _, nd := range sh.Nodes {
				srv := c.byPort(nd.Port)
				// Not "online": Redis 7.0 says "loading" of a replica
				// that has not replicated a byte yet.
				if srv == nil || !srv.Running() || nd.Health == "failed" {
					continue
				}
				switch nd.Role {
				case "master":
					master = srv
				case "replica":
					replica = srv
				}
			}
			return master, replica
		}
	}
	c.t.Fatalf("no live node of the cluster answers which node serves %q", key)
	return nil, nil
}

func (c *RedisCluster) byPort(port int64) *RedisServer {
	for _, s := range c.Nodes {
		if int64(s.port) == port {
			return s
		}
	}
	return nil
}
