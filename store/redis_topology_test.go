package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// A redisTopology is a private Redis deployment the store's tests run on:
// one server, a Redis Cluster, or a primary and replica behind Sentinel.
type redisTopology struct {
	name string
	// url opens the store on it, as a user would write it.
	url string
	// primaries returns a plain client on every node that takes writes
	// now, to change the data behind the store's back.
	primaries func() []*redis.Client
}

// redisTopologies starts one deployment of each kind; the cluster has
// three masters with replicasPerMaster replicas each.
func redisTopologies(t *testing.T, replicasPerMaster int) []redisTopology {
	t.Helper()
	single := testenv.StartRedis(t, false)
	cluster := testenv.StartRedisCluster(t, 3, replicasPerMaster)
	sentinel := testenv.StartRedisSentinel(t)
	return []redisTopology{
		{name: "single", url: single.URL(), primaries: func() []*redis.Client { return []*redis.Client{single.Client()} }},
		{name: "cluster", url: cluster.URL(), primaries: func() []*redis.Client {
			var cs []*redis.Client
			for _, s := range cluster.Nodes {
				if !s.Running() {
					continue
				}
				c := s.Client()
				if role, err := c.Do(context.Background(), "ROLE").Slice(); err == nil && len(role) > 0 && role[0] == "master" {
					cs = append(cs, c)
				}
			}
			return cs
		}},
		{name: "sentinel", url: sentinel.URL(), primaries: func() []*redis.Client { return []*redis.Client{sentinel.Primary().Client()} }},
	}
}

// newPrefix returns a key prefix of its own for a test on a private
// deployment, which goes away with the deployment.
func newPrefix() string { return fmt.Sprintf("tsqltest-%x", rand.Uint64()) }

// The store's guarantees on each kind of deployment a user can name in the
// URL: changes reach another process (create, update, delete), a lost
// subscription leads to a resync that finds what was missed, and a Redis
// that lost its data (flushed on every primary) is reported, the tenants
// kept until the operator accepts the loss.
func TestRedisTopologies(t *testing.T) {
	ctx := context.Background()
	for _, top := range redisTopologies(t, 0) {
		t.Run(top.name, func(t *testing.T) {
			t.Run("propagation", func(t *testing.T) {
				prefix := newPrefix()
				a, b := openRedis(t, top.url, prefix), openRedis(t, top.url, prefix)
				fb := startFollow(t, b)
				waitFor(t, 10*time.Second, "the first sync", func() bool { return fb.has() })
				if _, err := a.Create(ctx, newTenant("t1", "one")); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 10*time.Second, "t1 in the other store", func() bool { return fb.has("t1") })
				if _, err := a.Update(ctx, newTenant("t1", "uno")); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 10*time.Second, "t1's update in the other store", func() bool {
					fb.mu.Lock()
					defer fb.mu.Unlock()
					tn, _ := fb.tr.Get("t1")
					return tn.Version == 2 && strings.HasSuffix(tn.PostgresURL(), "/uno")
				})
				if got := mustGet(t, b, "t1"); got.Version != 2 || !strings.HasSuffix(got.PostgresURL(), "/uno") {
					t.Errorf("Get through the other store: version %d, %s; want version 2 on uno", got.Version, got.PostgresURL())
				}
				if ok, err := a.Delete(ctx, "t1"); err != nil || !ok {
					t.Fatalf("delete: %v, %v", ok, err)
				}
				waitFor(t, 10*time.Second, "t1's delete in the other store", func() bool { return fb.count() == 0 })
				if b.Status().DataLoss {
					t.Error("Status().DataLoss after plain changes")
				}
			})

			t.Run("resync", func(t *testing.T) {
				prefix := newPrefix()
				a := openRedis(t, top.url, prefix)
				// No periodic check: only the resync that a new
				// subscription makes can find what was missed.
				b := openRedis(t, top.url, prefix, WithRedisCheckInterval(time.Hour))
				fb := startFollow(t, b)
				waitFor(t, 10*time.Second, "the first sync", func() bool { return fb.has() })
				resyncs := b.resyncCount()
				for _, c := range top.primaries() {
					if err := c.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil && !strings.Contains(err.Error(), "No such client") {
						t.Fatal(err)
					}
				}
				if _, err := a.Create(ctx, newTenant("missed", "db")); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 20*time.Second, "the tenant created while the subscription was down", func() bool { return fb.has("missed") })
				if b.resyncCount() <= resyncs {
					t.Error("the follower has the tenant without a resync: killing its subscription did not cut it off, the test proves nothing")
				}
			})

			t.Run("data loss", func(t *testing.T) {
				prefix := newPrefix()
				a, b := openRedis(t, top.url, prefix), openRedis(t, top.url, prefix)
				for _, id := range []string{"t1", "t2"} {
					if _, err := a.Create(ctx, newTenant(id, "db")); err != nil {
						t.Fatal(err)
					}
				}
				fb := startFollow(t, b)
				waitFor(t, 10*time.Second, "t1 and t2", func() bool { return fb.has("t1", "t2") })
				primaries := top.primaries()
				for _, c := range primaries {
					if err := c.FlushAll(ctx).Err(); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := a.Create(ctx, newTenant("t3", "db")); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 10*time.Second, "t3 after the flush", func() bool { return fb.has("t3") })
				if !fb.has("t1", "t2") || !b.Status().DataLoss {
					t.Fatalf("after FLUSHALL on the %d primaries: t1 and t2 kept %v, DataLoss %v; want both true", len(primaries), fb.has("t1", "t2"), b.Status().DataLoss)
				}
				if n := len(mustList(t, a)); n != 1 {
					t.Fatalf("Redis lists %d tenants after the flush and one create, want 1: the flush missed the store's keys", n)
				}
				if err := a.AcceptLoss(ctx); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 10*time.Second, "the accepted loss", func() bool { return !b.Status().DataLoss && fb.count() == 1 && fb.has("t3") })
			})

			// Two processes share a server's budget through leases
			// (Leaser), whose script and key work on every kind of
			// deployment.
			t.Run("lease", func(t *testing.T) {
				prefix := newPrefix()
				a, b := openRedis(t, top.url, prefix), openRedis(t, top.url, prefix)
				lease := func(s *Redis, holder string, want int) int {
					t.Helper()
					l, err := s.Lease(ctx, LeaseRequest{Server: "db:5432", Holder: holder, Want: want, Budget: 4, TTL: time.Minute})
					if err != nil {
						t.Fatal(err)
					}
					return l.Granted
				}
				if ga, gb := lease(a, "a", 3), lease(b, "b", 3); ga != 3 || gb != 1 {
					t.Fatalf("a then b ask 3 of 4: granted %d and %d, want 3 and 1", ga, gb)
				}
				if err := a.ReleaseLease(ctx, "db:5432", "a"); err != nil {
					t.Fatal(err)
				}
				if gb := lease(b, "b", 3); gb != 3 {
					t.Fatalf("after a's release, b asks 3 of 4: granted %d", gb)
				}
			})
		})
	}
}
