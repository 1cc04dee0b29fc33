package tenantcache

import (
	"context"
	"iter"
	"sync"

	"github.com/redis/go-redis/v9"
)

// scanCount is the COUNT hint of each SCAN: keys examined per round trip.
const scanCount = 500

// nodes returns the servers whose keyspaces together hold rc's keys: each
// master of a Redis Cluster, each shard of a Ring, or rc itself. SCAN
// sees one server's keyspace only.
func nodes(ctx context.Context, rc redis.UniversalClient) ([]redis.Cmdable, error) {
	var each func(context.Context, func(context.Context, *redis.Client) error) error
	switch rc := rc.(type) {
	case *redis.ClusterClient:
		each = rc.ForEachMaster
	case *redis.Ring:
		each = rc.ForEachShard
	default:
		return []redis.Cmdable{rc}, nil
	}
	// The callbacks run concurrently; the scans then run one node after
	// another, so that Scan can yield from the caller's goroutine.
	var (
		mu  sync.Mutex
		out []redis.Cmdable
	)
	err := each(ctx, func(_ context.Context, n *redis.Client) error {
		mu.Lock()
		out = append(out, n)
		mu.Unlock()
		return nil
	})
	return out, err
}

// scanNamespace yields the keys of namespace ns that match pattern, in
// the tenant's terms (without ns). An error ends it.
func scanNamespace(ctx context.Context, rc redis.UniversalClient, ns namespace, pattern string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for rk, err := range scanRaw(ctx, rc, ns.match(pattern)) {
			if err != nil {
				yield("", err)
				return
			}
			if k, ok := ns.trim(rk); ok && !yield(k, nil) {
				return
			}
		}
	}
}

// scanRaw yields the Redis keys that match, node by node.
func scanRaw(ctx context.Context, rc redis.UniversalClient, match string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		ns, err := nodes(ctx, rc)
		if err != nil {
			yield("", err)
			return
		}
		for _, n := range ns {
			var cursor uint64
			for {
				keys, next, err := n.Scan(ctx, cursor, match, scanCount).Result()
				if err != nil {
					yield("", err)
					return
				}
				for _, k := range keys {
					if !yield(k, nil) {
						return
					}
				}
				if cursor = next; cursor == 0 {
					break
				}
			}
		}
	}
}

// flushNamespace deletes every key of namespace ns and returns how many
// it deleted. Keys are deleted in batches as the scan finds them (SCAN
// still returns every key that was there when it started and was not
// deleted), one UNLINK per key in a pipeline through rc, which a cluster
// client splits by slot; UNLINK frees a large value's memory off Redis's
// main thread.
func flushNamespace(ctx context.Context, rc redis.UniversalClient, ns namespace) (int64, error) {
	var (
		n     int64
		batch []string
	)
	del := func() error {
		cmds, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range batch {
				p.Unlink(ctx, k)
			}
			return nil
		})
		for _, c := range cmds {
			if ic, ok := c.(*redis.IntCmd); ok {
				n += ic.Val()
			}
		}
		batch = batch[:0]
		return err
	}
	for rk, err := range scanRaw(ctx, rc, ns.match("*")) {
		if err != nil {
			return n, err
		}
		if _, ok := ns.trim(rk); !ok {
			continue
		}
		if batch = append(batch, rk); len(batch) >= scanCount {
			if err := del(); err != nil {
				return n, err
			}
		}
	}
	if len(batch) > 0 {
		if err := del(); err != nil {
			return n, err
		}
	}
	return n, nil
}
