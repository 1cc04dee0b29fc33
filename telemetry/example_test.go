package telemetry_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/telemetry"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
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

// Spans of the statements, hook runs and migrations, with the metrics or
// without them. The SpanRecorder stands in for an exporter (OTLP).
func ExampleWithTracerProvider() {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(ctx)

	// With WithMeterProvider(mp) too, the same tracer records the metrics.
	m, err := telemetry.New(telemetry.WithTracerProvider(tp))
	if err != nil {
		log.Fatal(err)
	}
	reg := hooks.New(nil)
	reg.SetObserver(m.HookObserver) // a span per hook run
	c, err := driver.NewConnector(store.NewMemory(), driver.WithHooks(reg), driver.WithQueryTracer(m.QueryTracer))
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	// migrate.WithObserver(m.MigrateObserver) to migrate.New or
	// hooks.Migrate: a span per tenant's migration.
	reg.SubscribeNamed(hooks.PostCreate, "welcome", func(context.Context, hooks.Event) error { return nil })
	// The connector runs the hooks of each tenant it sees created; here
	// the registry runs one directly.
	tenant := store.Tenant{ID: "tenant-1.test.com", DeployInfo: map[string]string{
		store.KeyPostgresURL: "postgres://app@db1.internal:5432/tenant_1",
	}}
	if err := reg.Run(ctx, hooks.Event{Kind: hooks.PostCreate, Tenant: tenant}); err != nil {
		log.Fatal(err)
	}
	for _, span := range rec.Ended() {
		fmt.Println(span.Name())
	}
	// Output: hook post_tenant_create
}
