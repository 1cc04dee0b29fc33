package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// tenantsql migrate across tenants of one shared database: two schema
// tenants, each migrated in its schema, and two row-level-security
// tenants, whose shared tables in public are migrated once. Checked on
// the server.
func TestMigrateCommandSharedDatabase(t *testing.T) {
	name := testenv.Unique("tsql_cli_shared")
	testenv.EnsureDatabases(t, name)
	testenv.ResetSchema(t, name)
	admin, err := sql.Open("pgx", testenv.DatabaseURL(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	admin.SetMaxOpenConns(1)
	if _, err := admin.Exec("DROP SCHEMA IF EXISTS cli_s1, cli_s2 CASCADE; CREATE SCHEMA cli_s1; CREATE SCHEMA cli_s2"); err != nil {
		t.Fatal(err)
	}
	storeURL := "file:" + filepath.Join(t.TempDir(), "tenants.json") + "?create=true"
	for id, params := range map[string][]string{
		"s1.test":   {"search_path", "cli_s1"},
		"s2.test":   {"search_path", "cli_s2"},
		"rls1.test": {"app.tenant_id", "1"},
		"rls2.test": {"app.tenant_id", "2"},
	} {
		if code, _, errOut := migrateCLI(t, storeURL, "tenants", "add", id, testenv.DatabaseURL(t, name, params...)); code != 0 {
			t.Fatalf("add %s: %s", id, errOut)
		}
	}
	dir := filepath.Join("..", "..", "testdata", "migrations")
	code, out, errOut := migrateCLI(t, storeURL, "migrate", "up", "--dir", dir, "--concurrency", "3")
	if code != 0 {
		t.Fatalf("migrate up: exit %d\n%s%s", code, out, errOut)
	}
	for _, table := range []string{"cli_s1.goose_db_version", "cli_s2.goose_db_version", "public.goose_db_version"} {
		var n int
		if err := admin.QueryRowContext(context.Background(), "SELECT count(*) FROM "+table+" WHERE version_id > 0").Scan(&n); err != nil || n != 5 {
			t.Errorf("%s: %d versions (%v), want 5", table, n, err)
		}
	}
	if !strings.Contains(out, "rls1.test: shared tables") || !strings.Contains(out, "rls1.test, rls2.test") || !strings.Contains(errOut, "4 tenants (3 sets of tables): 3 migrated") {
		t.Errorf("the output does not tell the shared tables:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	code, _, errOut = migrateCLI(t, storeURL, "migrate", "up", "--dir", dir)
	if code != 0 || !strings.Contains(errOut, "3 already up to date") {
		t.Errorf("rerun: exit %d\n%s", code, errOut)
	}
}
