package telemetry_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/telemetry"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// A connector whose pools, tenants and queries are measured. The
// ManualReader stands in for an exporter (Prometheus, OTLP).
func Example() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	m, err := telemetry.New(telemetry.WithMeterProvider(mp))
	if err != nil {
		log.Fatal(err)
	}
	s := store.NewMemory()
	s.Create(ctx, store.Tenant{ID: "tenant-1.test.com", DeployInfo: map[string]string{
		store.KeyPostgresURL: "postgres://app@db1.internal:5432/tenant_1",
	}})
	c, err := driver.NewConnector(s, driver.WithHooks(nil),
		driver.WithQueryTracer(m.QueryTracer), driver.WithPoolEvents(m.PoolEvent))
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	stop, err := m.Register(c)
	if err != nil {
		log.Fatal(err)
	}
	defer stop()

	if err := db.PingContext(ctx); err != nil { // without a tenant: the tenants are loaded
		log.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if mt.Name == "tenantsql.tenants.registered" {
				fmt.Println(mt.Name, mt.Data.(metricdata.Sum[int64]).DataPoints[0].Value)
			}
		}
	}
	// Output: tenantsql.tenants.registered 1
}
