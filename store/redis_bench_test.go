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
// stream position, decoding every record, and publishing the sync; with
// the secrets in clear (plain) and sealed (sealed: each tenant's
// POSTGRES_URL opened with AES-256-GCM).
//
//	go test -run '^$' -bench RedisResync ./store
func BenchmarkRedisResync(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, sealed := range []bool{false, true} {
			name := fmt.Sprintf("%d/plain", n)
			if sealed {
				name = fmt.Sprintf("%d/sealed", n)
			}
			b.Run(name, func(b *testing.B) { benchResync(b, n, sealed) })
		}
	}
}

func benchResync(b *testing.B, n int, sealed bool) {
	u := testenv.RedisURL(b)
	prefix := testenv.RedisPrefix(b)
	opts := []RedisOption{WithRedisPrefix(prefix)}
	if sealed {
		opts = append(opts, WithRedisKeys(testRing(b, "k1")))
	}
	s, err := OpenRedis(context.Background(), u, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// Load the tenants straight into the hash, in pipelines.
	pipe := s.c.Pipeline()
	for i := range n {
		t := Tenant{ID: fmt.Sprintf("tenant-%05d.bench.test", i), DeployInfo: dbInfo(fmt.Sprint("db", i)), Version: 1, CreatedAt: now(), UpdatedAt: now()}
		rec, err := s.encode(t)
		if err != nil {
			b.Fatal(err)
		}
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
	if t := s.st.tenants["tenant-00000.bench.test"]; t.PostgresURL() != dbInfo("db0")[KeyPostgresURL] {
		b.Fatalf("resync read %s, want the plaintext URL", t)
	}
}
