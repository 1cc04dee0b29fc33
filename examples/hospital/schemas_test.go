package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// The tutorial with its tenants as schemas of one database: the tenants of
// tenant_config_schemas.json, on a shared database of this run's own that
// does not exist yet. Each tenant's rows land in its own schema, as the
// server itself shows; a tenant added at run time gets its schema and
// migrations before its first query; a deleted tenant's schema is kept.
func TestSchemaTenants(t *testing.T) {
	testenv.PostgresURL(t)
	shared := testenv.Unique("tsql_hosp_shared")
	testenv.DropDatabase(t, shared)
	t.Cleanup(func() { testenv.DropDatabase(t, shared) })
	s := start(t, writeConfig(t, schemaTenants(t, shared)))
	db := openShared(t, shared)

	add := map[string][]string{
		"tenant-1.test.com": {"St. Mary"},
		"tenant-2.test.com": {"General", "Royal"},
	}
	for id, names := range add {
		for _, name := range names {
			if code, body := s.do("POST", "/hospital/", id, map[string]string{"name": name}, false); code != http.StatusCreated {
				t.Fatalf("POST /hospital/ %q for %s: %d %v", name, id, code, body)
			}
		}
	}
	for id, names := range add {
		code, body := s.do("GET", "/hospital/", id, nil, false)
		if data, _ := body["data"].([]any); code != http.StatusOK || len(data) != len(names) {
			t.Errorf("GET /hospital/ for %s: %d %v; want its %d hospitals only", id, code, body, len(names))
		}
	}

	// What the server holds: one database, each tenant's tables and rows
	// in its schema, nothing in public.
	if got := hospitalNames(t, db, "tenant_1"); !slices.Equal(got, []string{"St. Mary"}) {
		t.Errorf("tenant_1.hospital holds %q, want [St. Mary]", got)
	}
	if got := hospitalNames(t, db, "tenant_2"); !slices.Equal(got, []string{"General", "Royal"}) {
		t.Errorf("tenant_2.hospital holds %q, want [General Royal]", got)
	}
	if got := schemaTables(t, shared, "public"); len(got) != 0 {
		t.Errorf("public holds tables %v; the migrations belong in the tenants' schemas", got)
	}

	// A tenant added at run time, in a schema that does not exist yet: the
	// very next request is answered from it, created and migrated.
	code, body := s.do("POST", "/api/tenant/", "", map[string]any{
		"tenant_id":   "tenant-3.test.com",
		"deploy_info": map[string]string{"POSTGRES_URL": testenv.DatabaseURL(t, shared, "search_path", "tenant_3")},
	}, true)
	if code != http.StatusCreated {
		t.Fatalf("POST /api/tenant/: %d %v", code, body)
	}
	code, body = s.do("GET", "/hospital/", "tenant-3.test.com", nil, false)
	if code != http.StatusOK || fmt.Sprint(body["data"]) != "[]" {
		t.Fatalf(`GET /hospital/ for tenant-3: %d %v; want {"data": [], ...}`, code, body)
	}
	if got, want := schemaTables(t, shared, "tenant_3"), []string{"goose_db_version", "hospital", "hospital_event", "patient"}; !slices.Equal(got, want) {
		t.Fatalf("schema tenant_3 holds tables %v, want %v", got, want)
	}
	var version int
	if err := db.QueryRow("SELECT max(version_id) FROM tenant_3.goose_db_version").Scan(&version); err != nil || version != 3 {
		t.Fatalf("tenant_3's migration version: %d, %v; want 3", version, err)
	}
	if code, body := s.do("POST", "/hospital/", "tenant-3.test.com", map[string]string{"name": "Infirmary"}, false); code != http.StatusCreated {
		t.Fatalf("POST /hospital/ for tenant-3: %d %v", code, body)
	}
	if got := hospitalNames(t, db, "tenant_3"); !slices.Equal(got, []string{"Infirmary"}) {
		t.Errorf("tenant_3.hospital holds %q, want [Infirmary]", got)
	}
	if got := hospitalNames(t, db, "tenant_1"); !slices.Equal(got, []string{"St. Mary"}) {
		t.Errorf("tenant_1.hospital holds %q after tenant-3's insert, want [St. Mary]", got)
	}

	// Without --drop-schemas, a deleted tenant's schema stays, rows and
	// all. Its delete hooks run after the answer, so the schema is watched
	// for a while: TestSchemaTenantsDropSchemas sees a drop well within it.
	if code, body := s.do("DELETE", "/api/tenant/tenant-3.test.com/", "", nil, true); code != http.StatusOK {
		t.Fatalf("DELETE tenant-3: %d %v", code, body)
	}
	eventually(t, 10*time.Second, "the deleted tenant to be refused", func() bool {
		code, _ := s.do("GET", "/hospital/", "tenant-3.test.com", nil, false)
		return code == http.StatusNotFound
	})
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if !schemaExists(t, db, "tenant_3") {
			t.Fatal("schema tenant_3 was dropped with its tenant, without --drop-schemas")
		}
	}
	if got := hospitalNames(t, db, "tenant_3"); !slices.Equal(got, []string{"Infirmary"}) {
		t.Errorf("tenant_3.hospital holds %q after its tenant's delete, want [Infirmary]", got)
	}
}

// With --drop-schemas, a deleted tenant's schema is dropped; the other
// tenant's, in the same database, stays and is served.
func TestSchemaTenantsDropSchemas(t *testing.T) {
	testenv.PostgresURL(t)
	shared := testenv.Unique("tsql_hosp_shdrop")
	testenv.DropDatabase(t, shared)
	t.Cleanup(func() { testenv.DropDatabase(t, shared) })
	s := start(t, writeConfig(t, schemaTenants(t, shared)), "--drop-schemas")
	db := openShared(t, shared)

	for _, id := range []string{"tenant-1.test.com", "tenant-2.test.com"} {
		if code, body := s.do("POST", "/hospital/", id, map[string]string{"name": "Of " + id}, false); code != http.StatusCreated {
			t.Fatalf("POST /hospital/ for %s: %d %v", id, code, body)
		}
	}
	if code, body := s.do("DELETE", "/api/tenant/tenant-2.test.com/", "", nil, true); code != http.StatusOK {
		t.Fatalf("DELETE tenant-2: %d %v", code, body)
	}
	eventually(t, 20*time.Second, "schema tenant_2 to be dropped", func() bool { return !schemaExists(t, db, "tenant_2") })
	if got := hospitalNames(t, db, "tenant_1"); !slices.Equal(got, []string{"Of tenant-1.test.com"}) {
		t.Errorf("tenant_1.hospital holds %q after tenant-2's delete, want its own row", got)
	}
	if code, body := s.do("GET", "/hospital/", "tenant-1.test.com", nil, false); code != http.StatusOK {
		t.Errorf("GET /hospital/ for tenant-1 after tenant-2's delete: %d %v", code, body)
	}
}

// schemaTenants returns the tenants of tenant_config_schemas.json, each in
// its schema of database shared on the test server instead of
// hospital_shared, so that the test runs the file the README shows.
func schemaTenants(t *testing.T, shared string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("tenant_config_schemas.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tenants map[string]struct {
			DeployInfo struct {
				PostgresURL string `json:"POSTGRES_URL"`
			} `json:"deploy_info"`
		} `json:"tenants"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for id, tn := range doc.Tenants {
		u, err := url.Parse(tn.DeployInfo.PostgresURL)
		if err != nil {
			t.Fatalf("tenant %s: %v", id, err)
		}
		schema := u.Query().Get("search_path")
		if u.Path != "/hospital_shared" || schema == "" {
			t.Fatalf("tenant %s: %s is not a schema of database hospital_shared", id, u.Redacted())
		}
		out[id] = testenv.DatabaseURL(t, shared, "search_path", schema)
	}
	if len(out) != 2 {
		t.Fatalf("tenant_config_schemas.json has %d tenants, want 2", len(out))
	}
	return out
}

// openShared opens a pool on the shared database, as the server's own
// view of it, closed when the test ends (before the database is dropped).
func openShared(t *testing.T, name string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", testenv.DatabaseURL(t, name))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// hospitalNames returns the names in schema's hospital table, in order.
func hospitalNames(t *testing.T, db *sql.DB, schema string) []string {
	t.Helper()
	rows, err := db.Query("SELECT name FROM " + schema + ".hospital ORDER BY name")
	if err != nil {
		t.Fatalf("read %s.hospital: %v", schema, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func schemaExists(t *testing.T, db *sql.DB, schema string) bool {
	t.Helper()
	var ok bool
	if err := db.QueryRow("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}
