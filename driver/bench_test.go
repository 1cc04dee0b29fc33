package driver_test

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tenantsql/tenantsql/internal/benchkit"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// BenchmarkQuery compares, in one run, plain pgx on one database,
// tenantsql with 1, 10 and 100 tenants, and a map[tenant]*sql.DB of pgx
// DBs, each with 8 goroutines running SELECT $1::int, tenants interleaved.
// The 100-tenant cases need a server with max_connections of at least 900
// (the map may open up to 8 connections per tenant): point
// TENANTSQL_BENCH_POSTGRES_URL at one, or use `make bench`, which starts
// one. The bench command (internal/cmd/bench) prints the same comparison
// as a table with the server's count of connections opened.
func BenchmarkQuery(b *testing.B) {
	ctx := context.Background()
	url := os.Getenv("TENANTSQL_BENCH_POSTGRES_URL")
	if url == "" {
		url = testenv.PostgresURL(b)
	}
	if err := benchkit.Setup(ctx, url); err != nil {
		b.Fatal(err)
	}
	maxConnections := serverMaxConnections(b, url)
	const workers = 8
	cases := benchkit.QueryCases
	for _, c := range cases {
		name := strings.NewReplacer(" ", "", ",", "/", "[tenant]*sql.DB", "").Replace(c.String())
		// b.Run calls the function several times with growing b.N: the
		// target stays open across them, as a server's pool would.
		var t *benchkit.Target
		b.Run(name, func(b *testing.B) {
			if c.Tenants >= 100 && maxConnections < 900 {
				b.Skipf("the server's max_connections is %d; 100 tenants need 900: the map may open 8 per tenant (set TENANTSQL_BENCH_POSTGRES_URL or run make bench)", maxConnections)
			}
			if t == nil {
				var err error
				if t, err = benchkit.Open(ctx, url, c, workers, 128); err != nil {
					b.Fatal(err)
				}
			}
			var worker atomic.Int64
			n := max(c.Tenants, 1)
			b.SetParallelism((workers + 1) / 2) // x GOMAXPROCS (2 here) goroutines
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(worker.Add(1)) * n / workers
				for pb.Next() {
					if err := t.Query(i); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
		if t != nil {
			t.Close()
			if err := benchkit.WaitForIdle(ctx, url); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func serverMaxConnections(b *testing.B, url string) int {
	db, err := sql.Open("pgx", url)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT current_setting('max_connections')::int").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
