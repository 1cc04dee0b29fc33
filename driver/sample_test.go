package driver_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// testdata/tenant_config.json is the sample the README points to: it must
// open and route each tenant to its database. The sample names the default
// local server; the test runs it against the test server (whatever
// TENANTSQL_TEST_POSTGRES_URL says) by pointing each tenant's URL there,
// keeping its database, so it never skips.
func TestSampleConfig(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "testdata", "tenant_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("the sample is not JSON: %v", err)
	}
	tenants, ok := doc["tenants"].(map[string]any)
	if !ok || len(tenants) == 0 {
		t.Fatalf("the sample has no tenants: %s", data)
	}
	want := map[string]string{}
	for id, v := range tenants {
		info, _ := v.(map[string]any)
		deploy, _ := info["deploy_info"].(map[string]any)
		raw, _ := deploy["POSTGRES_URL"].(string)
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "postgres" || strings.Trim(u.Path, "/") == "" {
			t.Fatalf("tenant %s: sample POSTGRES_URL %q is not a postgres URL with a database", id, raw)
		}
		db := strings.Trim(u.Path, "/")
		want[id] = db
		testenv.EnsureDatabases(t, db)
		deploy["POSTGRES_URL"] = testenv.DatabaseURL(t, db)
	}
	if len(want) != 2 || want["tenant-1.test.com"] != "tenant_1" || want["tenant-3.test.com"] != "tenant_3" {
		t.Errorf("the sample's tenants: %v, want tenant-1.test.com on tenant_1 and tenant-3.test.com on tenant_3 (as the README says)", want)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	// Open a copy: the store may write next to the file it opens.
	path := filepath.Join(t.TempDir(), "tenant_config.json")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("tenantsql", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for id, wantDB := range want {
		var got string
		if err := db.QueryRowContext(tenantctx.WithTenant(context.Background(), id), "SELECT current_database()").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != wantDB {
			t.Errorf("%s ran on %s, want %s", id, got, wantDB)
		}
	}
}
