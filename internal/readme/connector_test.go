//lint:file-ignore SA4006 the README's connector snippet checks err once, after its last line, as a reader's fragment does; the test checks it there.

package readme

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// ### Open: the connector with options.
func TestConnectorSnippet(t *testing.T) {
	dbs := tenantFile(t, "tenant-1.test.com")
	ctx := context.Background()

	// snippet:connector
	s, err := store.Open(ctx, "file:tenant_config.json")
	c, err := driver.NewConnector(s,
		driver.WithMaxConns(40),          // connections to each PostgreSQL server, all its tenants together (default 50)
		driver.WithMaxConnsPerTenant(10), // default: the budget of the tenant's server
		driver.WithIdleTimeout(5*time.Minute),
	)
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(40)
	db.SetMaxIdleConns(40) // keep this equal to SetMaxOpenConns: see below
	// end snippet
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer db.Close()
	var got string
	if err := db.QueryRowContext(tenantctx.WithTenant(ctx, "tenant-1.test.com"), "SELECT current_database()").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != dbs["tenant-1.test.com"] {
		t.Fatalf("tenant-1's query ran on %q, want %q", got, dbs["tenant-1.test.com"])
	}
}
