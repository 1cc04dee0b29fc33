package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// BenchmarkRedisResync measures one full resync of a follower with 10,000
// tenants in Redis: the transaction that reads the hash, version, epoch and
// stream position, decoding every record, and publishing the sync.
//
//	go test -run '^$' -bench RedisResync ./store
func BenchmarkRedisResync(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			u := testenv.RedisURL(b)
			prefix := testenv.RedisPrefix(b)
			s, err := OpenRedis(context.Background(), u, WithRedisPrefix(prefix))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			// Load the tenants straight into the hash, in pipelines.
			pipe := s.c.Pipeline()
			for i := range n {
				t := Tenant{ID: fmt.Sprintf("tenant-%05d.bench.test", i), DeployInfo: dbInfo(fmt.Sprint("db", i)), Version: 1, CreatedAt: now(), UpdatedAt: now()}
				rec, _ := encodeRecord(t)
				pipe.HSet(ctx, s.keys.tenants, t.ID, rec)
				if i%1000 == 999 {
					if _, err := pipe.Exec(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
				b.Fatal(err)
			}
			s.c.Set(ctx, s.keys.version, n, 0)
			f := &follower{r: s}
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if err := f.resync(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/resync")
			if got := len(s.st.tenants); got != n {
				b.Fatalf("resync read %d tenants, want %d", got, n)
			}
		})
	}
}
