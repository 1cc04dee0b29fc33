package telemetry_test

import (
	"context"
	"database/sql"
	"os"
	"testing"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/benchkit"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/telemetry"
	"github.com/tenantsql/tenantsql/tenantctx"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// BenchmarkQueryMetrics is driver.BenchmarkQuery's 1-tenant case (8
// goroutines running SELECT $1::int) without the telemetry package (off)
// and with all of its metrics (on): the query tracer, the pool events and
// Register, on an SDK MeterProvider (a ManualReader that is never
// collected, so this measures recording, not export); and with its spans
// only (traces): an SDK TracerProvider sampling every span, with no
// processor, so this measures making spans, not exporting them.
func BenchmarkQueryMetrics(b *testing.B) {
	ctx := context.Background()
	url := os.Getenv("TENANTSQL_BENCH_POSTGRES_URL")
	if url == "" {
		url = testenv.PostgresURL(b)
	}
	if err := benchkit.Setup(ctx, url); err != nil {
		b.Fatal(err)
	}
	urls, err := benchkit.TenantURLs(url, 1)
	if err != nil {
		b.Fatal(err)
	}
	const workers = 8
	for _, name := range []string{"off", "on", "traces"} {
		on := name == "on"
		b.Run(name, func(b *testing.B) {
			s := store.NewMemory()
			if _, err := s.Create(ctx, store.Tenant{ID: "bench-0.test", DeployInfo: map[string]string{store.KeyPostgresURL: urls[0]}}); err != nil {
				b.Fatal(err)
			}
			opts := []driver.Option{driver.WithHooks(nil), driver.WithMaxConns(128)}
			var m *telemetry.Metrics
			if on {
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
				defer mp.Shutdown(ctx)
				if m, err = telemetry.New(telemetry.WithMeterProvider(mp)); err != nil {
					b.Fatal(err)
				}
				opts = append(opts, driver.WithQueryTracer(m.QueryTracer), driver.WithPoolEvents(m.PoolEvent))
			}
			if name == "traces" {
				tp := sdktrace.NewTracerProvider()
				defer tp.Shutdown(ctx)
				tm, err := telemetry.New(telemetry.WithTracerProvider(tp))
				if err != nil {
					b.Fatal(err)
				}
				opts = append(opts, driver.WithQueryTracer(tm.QueryTracer))
			}
			c, err := driver.NewConnector(s, opts...)
			if err != nil {
				b.Fatal(err)
			}
			db := sql.OpenDB(c)
			defer db.Close()
			db.SetMaxOpenConns(workers)
			db.SetMaxIdleConns(workers)
			if on {
				stop, err := m.Register(c)
				if err != nil {
					b.Fatal(err)
				}
				defer stop()
			}
			tctx := tenantctx.WithTenant(ctx, "bench-0.test")
			b.SetParallelism((workers + 1) / 2)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var n int
				for pb.Next() {
					if err := db.QueryRowContext(tctx, "SELECT $1::int", 1).Scan(&n); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
