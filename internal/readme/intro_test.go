//lint:file-ignore SA4006 the README's opening snippet checks err once, after its last line, as a reader's fragment does; the test checks it there.

package readme

// snippet:intro-import
import _ "github.com/tenantsql/tenantsql/driver"

// end snippet

import (
	"context"
	"database/sql"
	"testing"

	"github.com/tenantsql/tenantsql/tenantctx"
)

// The README's first block: the one-line change, then a query on the
// database the tenant in the context names, as the server reports it.
func TestIntroSnippet(t *testing.T) {
	dbs := tenantFile(t, "tenant-2.test.com")
	ctx := context.Background()

	// snippet:intro
	db, err := sql.Open("tenantsql", "file:tenant_config.json") // was sql.Open("pgx", dsn)

	ctx = tenantctx.WithTenant(ctx, "tenant-2.test.com")           // usually in HTTP middleware
	rows, err := db.QueryContext(ctx, "SELECT current_database()") // runs on tenant-2's database
	// end snippet
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	defer rows.Close()
	if got := scanOne(t, rows); got != dbs["tenant-2.test.com"] {
		t.Fatalf("the query ran on database %q, want tenant-2's %q", got, dbs["tenant-2.test.com"])
	}
}
