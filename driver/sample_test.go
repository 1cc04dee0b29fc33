package driver_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// testdata/tenant_config.json is the sample the README points to: it must
// open and route each tenant to its database.
func TestSampleConfig(t *testing.T) {
	if os.Getenv(testenv.EnvPostgres) != "" {
		t.Skip("the sample points at the default local server")
	}
	testenv.PostgresURL(t)
	testenv.EnsureDatabases(t, "tenant_1", "tenant_3")
	// Open a copy: the store may write next to the file it opens.
	data, err := os.ReadFile(filepath.Join("..", "testdata", "tenant_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tenant_config.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("tenantsql", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for id, want := range map[string]string{"tenant-1.test.com": "tenant_1", "tenant-3.test.com": "tenant_3"} {
		var got string
		if err := db.QueryRowContext(tenantctx.WithTenant(context.Background(), id), "SELECT current_database()").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s ran on %s, want %s", id, got, want)
		}
	}
}
