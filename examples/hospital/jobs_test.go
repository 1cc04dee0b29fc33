package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// With --jobs-database, adding a hospital enqueues a River job that
// records the event in the database of the tenant that added it: the
// control database is created at start, each tenant's hospital_event
// table gets its own hospitals' events only, and River's table shows the
// jobs completed, each naming its tenant.
func TestHospitalAddedJob(t *testing.T) {
	testenv.PostgresURL(t)
	control := testenv.Unique("tsql_hosp_jobs")
	dbs := map[string]string{
		"tenant-1.test.com": testenv.Unique("tsql_hosp_jobs_1"),
		"tenant-2.test.com": testenv.Unique("tsql_hosp_jobs_2"),
	}
	for _, name := range append([]string{control}, dbs["tenant-1.test.com"], dbs["tenant-2.test.com"]) {
		testenv.DropDatabase(t, name)
		t.Cleanup(func() { testenv.DropDatabase(t, name) })
	}
	urls := map[string]string{}
	for id, db := range dbs {
		urls[id] = tenantURL(t, db)
	}
	s := start(t, writeConfig(t, urls), "--jobs-database", testenv.DatabaseURL(t, control))
	if !databaseExists(t, control) {
		t.Fatalf("the control database %s was not created", control)
	}

	// tenant-1 adds two hospitals, tenant-2 one.
	added := map[string]int{"tenant-1.test.com": 2, "tenant-2.test.com": 1}
	for id, n := range added {
		for i := range n {
			code, body := s.do("POST", "/hospital/", id, map[string]string{"name": fmt.Sprintf("Hospital %d of %s", i+1, id)}, false)
			if code != http.StatusCreated {
				t.Fatalf("POST /hospital/ for %s: %d %v", id, code, body)
			}
		}
	}
	for id, n := range added {
		query := fmt.Sprintf("SELECT count(*) FROM hospital_event e JOIN hospital h ON h.id = e.hospital_id WHERE e.kind = 'hospital_added' AND h.name LIKE '%% of %s'", id)
		eventually(t, time.Minute, fmt.Sprintf("%d events in %s's database", n, id), func() bool {
			return countRows(t, dbs[id], query) == n
		})
		// River records a job completed a moment after Work returned.
		completed := fmt.Sprintf("SELECT count(*) FROM river_job WHERE kind = 'hospital_added' AND state = 'completed' AND metadata ->> 'tenantsql_tenant' = '%s'", id)
		eventually(t, time.Minute, fmt.Sprintf("%d completed jobs of %s", n, id), func() bool {
			return countRows(t, control, completed) == n
		})
	}
	for id, n := range added {
		// Every event in the tenant's database is of its own hospitals.
		if got := countRows(t, dbs[id], "SELECT count(*) FROM hospital_event"); got != n {
			t.Errorf("%s's database holds %d events, want its %d", id, got, n)
		}
	}
}
