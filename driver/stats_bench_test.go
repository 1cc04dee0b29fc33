package driver

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/tenantsql/tenantsql/store"
)

// BenchmarkStats measures what a reader of Stats pays, such as the admin
// API's /stats/, which the operator's page reads every second: a
// snapshot of 1,000 tenants on 10 servers, and the same encoded as JSON
// as the API answers it.
//
//	go test -run '^$' -bench Stats -benchmem ./driver
func BenchmarkStats(b *testing.B) {
	const n = 1000
	tenants := make([]store.Tenant, n)
	for i := range tenants {
		tenants[i] = store.Tenant{ID: fmt.Sprintf("tenant-%04d.bench.test", i), Version: 1,
			DeployInfo: map[string]string{store.KeyPostgresURL: fmt.Sprintf("postgres://app:pw@db%d.internal/tenant_%d", i%10, i)}}
	}
	c := benchConnector(b)
	c.apply(store.NewTracker().Apply(store.Event{Type: store.EventSync, Version: 1, Tenants: tenants}))
	if s := c.Stats(); len(s.Tenants) != n || len(s.Servers) != 10 {
		b.Fatalf("Stats has %d tenants on %d servers, want %d on 10", len(s.Tenants), len(s.Servers), n)
	}
	b.Run("snapshot", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Stats()
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		var size int
		for b.Loop() {
			out, err := json.Marshal(c.Stats())
			if err != nil {
				b.Fatal(err)
			}
			size = len(out)
		}
		b.ReportMetric(float64(size), "bytes/answer")
	})
}
