package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// DELETE keeps a tenant's database, rows and all, unless the example runs
// with --drop-databases; then the database goes with its tenant.
func TestDeleteKeepsOrDropsTheDatabase(t *testing.T) {
	// One pool for the polling below: databaseExists opens one per call,
	// each kept until the test ends.
	admin := testenv.Admin(t)
	admin.SetMaxOpenConns(1)
	exists := func(name string) bool {
		t.Helper()
		var ok bool
		if err := admin.QueryRow("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, drop := range []bool{false, true} {
		name := testenv.Unique("tsql_hosp_del")
		if drop {
			name = testenv.Unique("tsql_hosp_deldrop")
		}
		testenv.DropDatabase(t, name)
		t.Cleanup(func() { testenv.DropDatabase(t, name) })
		var extra []string
		if drop {
			extra = append(extra, "--drop-databases")
		}
		const id = "tenant-d.test.com"
		s := start(t, writeConfig(t, map[string]string{id: tenantURL(t, name)}), extra...)
		if code, body := s.do("POST", "/hospital/", id, map[string]string{"name": "Kept?"}, false); code != http.StatusCreated {
			t.Fatalf("POST /hospital/: %d %v", code, body)
		}
		if code, body := s.do("DELETE", "/api/tenant/"+id+"/", "", nil, true); code != http.StatusOK {
			t.Fatalf("DELETE: %d %v", code, body)
		}
		if drop {
			eventually(t, 20*time.Second, "the deleted tenant's database to be dropped", func() bool { return !exists(name) })
			continue
		}
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if !exists(name) {
				t.Fatal("the database was dropped with its tenant, without --drop-databases")
			}
		}
		if n := countRows(t, name, "SELECT count(*) FROM hospital"); n != 1 {
			t.Errorf("%d rows in the kept database, want 1", n)
		}
	}
}
