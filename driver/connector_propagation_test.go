package driver_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

// BenchmarkPropagation measures how long a change takes to reach another
// process: from Create returning in this process to the POST create hook
// running in a child process (so the child has registered the tenant and
// run its ON phase by then), over real Redis. Creates are sequential, each
// waiting for the previous one to arrive; b.N creates per run. Reports the
// median and 99th percentile.
//
//	go test -run '^$' -bench Propagation -benchtime 500x ./driver
func BenchmarkPropagation(b *testing.B) {
	u := testenv.WithQuery(testenv.RedisURL(b), "prefix", testenv.RedisPrefix(b))
	s, err := openStore(u)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := startChild(b, u)
	url := testenv.DatabaseURL(b, "tsql_t_0")
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("prop-%s-%d.test", runID, i)
		if _, err := s.Create(ctx, store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: url}}); err != nil {
			b.Fatal(err)
		}
		done := time.Now()
		deadline := done.Add(10 * time.Second)
		for {
			if at := c.hookAt(hooks.PostCreate, id); at != 0 {
				lat = append(lat, time.Unix(0, at).Sub(done))
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("tenant %d never reached the other process", i)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
