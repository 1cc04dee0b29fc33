package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// The fleet budget from the store URL (fleet_budget=on): on the Redis
// store, the server's budget is leased (Stats shows the lease); on a
// store that cannot share a budget, opening fails with
// ErrFleetUnsupported instead of silently keeping a budget per process.
func TestFleetBudgetOption(t *testing.T) {
	redisURL := testenv.WithQuery(testenv.RedisURL(t), "prefix", testenv.RedisPrefix(t))
	for _, tc := range []struct {
		name, dsn string
		fleet     bool
		wantErr   error  // nil for success
		wantMsg   string // in the error
	}{
		{name: "redis", dsn: testenv.WithQuery(redisURL, "fleet_budget", "on"), fleet: true},
		{name: "redis off", dsn: testenv.WithQuery(redisURL, "fleet_budget", "off")},
		{name: "memory", dsn: "memory:?fleet_budget=on", wantErr: driver.ErrFleetUnsupported, wantMsg: "Redis"},
		{name: "memory off", dsn: "memory:?fleet_budget=false"},
		{name: "bad value", dsn: "memory:?fleet_budget=maybe", wantMsg: "want on or off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sql.Open(driver.DriverName, tc.dsn)
			if err == nil {
				// sql.Open defers OpenConnector's errors to the first use.
				err = db.PingContext(context.Background())
				defer db.Close()
			}
			if tc.wantMsg != "" || tc.wantErr != nil {
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v, want %v", err, tc.wantErr)
				}
				mustContain(t, err, tc.wantMsg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, _ := driver.ConnectorOf(db)
			id := "fleetopt-" + runID + "-" + strings.ReplaceAll(tc.name, " ", "-") + ".test"
			testenv.EnsureDatabases(t, "tsql_t_0")
			if _, err := c.Store().Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, "tsql_t_0")}}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(tenantctx.WithTenant(context.Background(), id), 30*time.Second)
			defer cancel()
			if _, err := db.ExecContext(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
			st := c.Stats()
			if len(st.Servers) != 1 {
				t.Fatalf("%d servers in Stats, want 1", len(st.Servers))
			}
			for server, ss := range st.Servers {
				if (ss.Fleet != nil) != tc.fleet {
					t.Fatalf("server %s: fleet stats %+v, want a lease: %v", server, ss.Fleet, tc.fleet)
				}
				if tc.fleet && (ss.Fleet.Leased < 1 || ss.Fleet.Holders != 1 || ss.Fleet.Budget != driver.DefaultMaxConns) {
					t.Errorf("server %s: lease %+v; want at least the session used, one holder, the default budget", server, *ss.Fleet)
				}
			}
		})
	}
}

// The fleet options are checked like the others.
func TestFleetOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		opt  driver.Option
		want string
	}{
		{driver.WithFleetTTL(time.Millisecond), "WithFleetTTL"},
		{driver.WithFleetFallback(-1), "WithFleetFallback"},
	} {
		_, err := driver.NewConnector(store.NewMemory(), tc.opt)
		mustContain(t, err, tc.want)
	}
}
