package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// The one-line change: open "tenantsql" on a tenant file instead of "pgx"
// on a DSN, and put the tenant in the context.
func Example() {
	dir, _ := os.MkdirTemp("", "tenantsql-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tenant_config.json")
	os.WriteFile(path, []byte(`{"tenants": {
		"tenant-1.test.com": {"deploy_info": {"POSTGRES_URL": "postgres://postgres@127.0.0.1:5432/tenant_1"}}
	}}`), 0o600)

	db, err := sql.Open("tenantsql", "file:"+path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	// No tenant: refused, never sent to some default database.
	_, err = db.ExecContext(context.Background(), "SELECT 1")
	fmt.Println(err)

	ctx := tenantctx.WithTenant(context.Background(), "tenant-9.test.com")
	_, err = db.ExecContext(ctx, "SELECT 1")
	fmt.Println(err)
	// With "tenant-1.test.com" in ctx, queries would run on database
	// tenant_1.

	// Output:
	// tenantsql: no tenant in context: call the ...Context methods (QueryContext, ExecContext, QueryRowContext, PrepareContext, BeginTx) with a context from tenantctx.WithTenant(ctx, tenantID); Query, Exec, Begin and the other methods without a context use context.Background(), which has no tenant
	// tenantsql: unknown tenant "tenant-9.test.com"
}

// NewConnector takes options and any store; sql.OpenDB makes the *sql.DB.
func ExampleNewConnector() {
	s := store.NewMemory()
	s.Create(context.Background(), store.Tenant{
		ID:         "tenant-1.test.com",
		DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://postgres@127.0.0.1:5432/tenant_1"},
	})
	c, err := driver.NewConnector(s, driver.WithMaxConns(40), driver.WithMaxConnsPerTenant(10))
	if err != nil {
		fmt.Println(err)
		return
	}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(40)
	db.SetMaxIdleConns(40)

	fmt.Println(db.Ping()) // no tenant: checks the store, touches no database
	// Output:
	// <nil>
}

// Raw gives the *pgx.Conn bound to a *sql.Conn, for pgx-only features.
func ExampleConn_PgxConn() {
	var db *sql.DB // opened with the tenantsql driver
	if db == nil {
		return
	}
	ctx := tenantctx.WithTenant(context.Background(), "tenant-1.test.com")
	conn, err := db.Conn(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.Raw(func(dc any) error {
		pgxConn, err := dc.(*driver.Conn).PgxConn(ctx)
		if err != nil {
			return err
		}
		_, err = pgxConn.Exec(ctx, "LISTEN tenant_events")
		return err
	})
}

// Several databases per tenant: one *sql.DB per deploy_info key. The
// analytics connector draws on the default one's per-server budgets
// (WithBudgetsOf), so together they open at most 50 connections to a
// server both use.
func ExampleWithURLKey() {
	s := store.NewMemory()
	s.Create(context.Background(), store.Tenant{ID: "tenant-1.test.com", DeployInfo: map[string]string{
		store.KeyPostgresURL: "postgres://postgres@127.0.0.1:5432/tenant_1",
		"ANALYTICS_URL":      "postgres://postgres@127.0.0.1:5432/tenant_1_analytics",
	}})
	s.Create(context.Background(), store.Tenant{ID: "tenant-2.test.com", DeployInfo: map[string]string{
		store.KeyPostgresURL: "postgres://postgres@127.0.0.1:5432/tenant_2", // no analytics database
	}})

	def, err := driver.NewConnector(s, driver.WithMaxConns(50))
	if err != nil {
		fmt.Println(err)
		return
	}
	analytics, err := driver.NewConnector(s, driver.WithURLKey("ANALYTICS_URL"), driver.WithBudgetsOf(def))
	if err != nil {
		fmt.Println(err)
		return
	}
	db, adb := sql.OpenDB(def), sql.OpenDB(analytics)
	defer db.Close()
	defer adb.Close() // before db's: db's Close closes the budgets
	// Or: sql.Open("tenantsql", "file:tenant_config.json?url_key=ANALYTICS_URL").

	// With "tenant-1.test.com" in ctx, db's queries run on tenant_1 and
	// adb's on tenant_1_analytics. tenant-2 has no analytics database:
	// refused, never sent to its POSTGRES_URL.
	ctx := tenantctx.WithTenant(context.Background(), "tenant-2.test.com")
	_, err = adb.ExecContext(ctx, "SELECT 1")
	fmt.Println(errors.Is(err, driver.ErrMissingURLKey))
	fmt.Println(err)
	// Output:
	// true
	// tenantsql: tenant "tenant-2.test.com" has no ANALYTICS_URL in its deploy_info, the key this *sql.DB routes by (it never falls back to another key): add ANALYTICS_URL, a postgres:// URL, to the tenant's deploy_info, or query this tenant through a *sql.DB of a key it has
}
