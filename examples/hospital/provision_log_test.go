package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// A tenant added at run time through the admin API gets its database
// created and migrated by the library's hooks, and the example's log says
// so, naming the tenant and the hook.
func TestRuntimeProvisioningIsLogged(t *testing.T) {
	testenv.PostgresURL(t)
	db1, db2 := testenv.Unique("tsql_hosp_plog1"), testenv.Unique("tsql_hosp_plog2")
	testenv.DropDatabase(t, db1)
	testenv.DropDatabase(t, db2)
	s := start(t, writeConfig(t, map[string]string{"tenant-1.test.com": tenantURL(t, db1)}))
	code, body := s.do("POST", "/api/tenant/", "", map[string]any{
		"tenant_id":   "tenant-2.test.com",
		"deploy_info": map[string]string{"POSTGRES_URL": tenantURL(t, db2)},
	}, true)
	if code != http.StatusCreated {
		t.Fatalf("POST /api/tenant/: %d %v", code, body)
	}
	// The first query waits for the create hooks.
	if code, body := s.do("GET", "/hospital/", "tenant-2.test.com", nil, false); code != http.StatusOK {
		t.Fatalf("GET /hospital/ for tenant-2: %d %v", code, body)
	}
	if !databaseExists(t, db2) {
		t.Fatalf("database %s does not exist", db2)
	}
	if tables := serverTables(t, db2); len(tables) == 0 {
		t.Fatalf("database %s has no tables: not migrated", db2)
	}

	log := s.log()
	for _, want := range []string{
		`msg="tenantsql: created the tenant's database" hook=hooks.Databases.create kind=on_tenant_create tenant=tenant-2.test.com store_version=`,
		`msg="tenantsql: migrated the tenant" hook=hooks.Migrate kind=post_tenant_create tenant=tenant-2.test.com store_version=`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %s:\n%s", want, log)
		}
	}
}
