package readme

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/api"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
	"github.com/tenantsql/tenantsql/tenanttest"
)

// The README's Go blocks, each between "// snippet:NAME" and
// "// end snippet", inside a test that runs it against the test server
// and checks what the server answered. README_test.go checks that the
// README quotes them exactly.

func TestMain(m *testing.M) { testenv.Main(m) }

// tenantFile creates a database for each tenant (named after the tenant,
// with this process's suffix), writes a tenant_config.json that maps the
// tenants to them into a new directory, and makes it the working
// directory, so that the README's "file:tenant_config.json" finds it.
// It returns each tenant's database name.
func tenantFile(t *testing.T, ids ...string) map[string]string {
	t.Helper()
	dbs := map[string]string{}
	doc := map[string]map[string]any{"tenants": {}}
	for _, id := range ids {
		name := testenv.Unique("tsql_readme_" + strings.NewReplacer("-", "_", ".", "_").Replace(strings.TrimSuffix(id, ".test.com")))
		testenv.RecreateDatabase(t, name)
		t.Cleanup(func() { testenv.DropDatabase(t, name) })
		dbs[id] = name
		doc["tenants"][id] = map[string]any{"deploy_info": map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, name)}}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tenant_config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	return dbs
}

// scanOne returns the single text value rows hold.
func scanOne(t *testing.T, rows *sql.Rows) string {
	t.Helper()
	var got string
	if !rows.Next() {
		t.Fatalf("no row: %v", rows.Err())
	}
	if err := rows.Scan(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

// serverQuery runs query on a database of the test server directly, not
// through tenantsql, and returns the first column of its one row.
func serverQuery(t *testing.T, database, query string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, testenv.DatabaseURL(t, database))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var got *string
	if err := c.QueryRow(ctx, query).Scan(&got); err != nil {
		t.Fatalf("%s on %s: %v", query, database, err)
	}
	if got == nil {
		return ""
	}
	return *got
}

// ### Open
func TestOpenSnippet(t *testing.T) {
	dbs := tenantFile(t, "tenant-1.test.com")

	// snippet:open
	db, err := sql.Open("tenantsql", "file:tenant_config.json")
	// end snippet
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := tenantctx.WithTenant(context.Background(), "tenant-1.test.com")
	var got string
	if err := db.QueryRowContext(ctx, "SELECT current_database()").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != dbs["tenant-1.test.com"] {
		t.Fatalf("tenant-1's query ran on %q, want %q", got, dbs["tenant-1.test.com"])
	}
}

// ### Queries: pgx's CopyFrom through (*sql.Conn).Raw.
func TestRawSnippet(t *testing.T) {
	env := tenanttest.New(t, 1, tenanttest.WithMigrations(migrations))
	db, tn := env.DB, env.Tenants[0]
	ctx := env.Context(tn)
	cols := []string{"name", "qty"}
	rows := pgx.CopyFromRows([][]any{{"pen", 2}, {"ink", 1}})

	// snippet:raw
	conn, _ := db.Conn(ctx)
	defer conn.Close()
	err := conn.Raw(func(dc any) error {
		pgxConn, err := dc.(*driver.Conn).PgxConn(ctx) // checks ctx's tenant like any operation
		if err != nil {
			return err
		}
		_, err = pgxConn.CopyFrom(ctx, pgx.Identifier{"items"}, cols, rows)
		return err
	})
	// end snippet
	if err != nil {
		t.Fatal(err)
	}
	if got := serverQuery(t, tn.Database, "SELECT string_agg(name || '=' || qty, ',' ORDER BY name) FROM items"); got != "ink=1,pen=2" {
		t.Fatalf("the tenant's database holds items %q, want ink=1,pen=2", got)
	}
}

// ### HTTP: the middleware in front of the application and the admin API.
func TestHTTPSnippet(t *testing.T) {
	env := tenanttest.New(t, 2)
	db := env.DB
	const token = "readme-token"
	adminAPI, err := api.New(env.Store, api.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	listOrders := func(w http.ResponseWriter, r *http.Request) {
		var name string
		if err := db.QueryRowContext(r.Context(), "SELECT current_database()").Scan(&name); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, name)
	}

	// snippet:http
	c, _ := driver.ConnectorOf(db)
	mux := http.NewServeMux()
	mux.Handle("/api/", http.StripPrefix("/api", adminAPI)) // adminAPI, _ := api.New(store, api.WithToken(token), ...)
	mux.HandleFunc("GET /orders/", listOrders)              // queries with r.Context() run on the request's tenant
	handler := tenantctx.Middleware(mux,
		tenantctx.SkipPrefix("/api/"), // the admin API needs no tenant
		tenantctx.WithLookup(c.LookupTenant),
	)
	// end snippet

	srv := httptest.NewServer(handler)
	defer srv.Close()
	get := func(path, tenant, auth string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tenant != "" {
			req.Header.Set("x-tenant-id", tenant)
		}
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	for _, tn := range env.Tenants {
		if code, body := get("/orders/", tn.ID, ""); code != http.StatusOK || body != tn.Database {
			t.Errorf("GET /orders/ for %s: %d %q, want 200 and its database %q", tn.ID, code, body, tn.Database)
		}
	}
	if code, body := get("/orders/", "nobody.test", ""); code != http.StatusNotFound {
		t.Errorf("GET /orders/ for an unknown tenant: %d %q, want 404", code, body)
	}
	if code, body := get("/orders/", "", ""); code != http.StatusBadRequest {
		t.Errorf("GET /orders/ without a tenant: %d %q, want 400", code, body)
	}
	if code, body := get("/api/tenant/", "", token); code != http.StatusOK || !strings.Contains(body, env.Tenants[1].ID) {
		t.Errorf("GET /api/tenant/ without a tenant, with the token: %d %q, want 200 and the tenants", code, body)
	}
}

// ### Tests of your own: tenanttest. The README shows this test whole;
// TestOrdersMigrated checks on the server what it promises.

// snippet:tenanttest
func TestOrders(t *testing.T) {
	env := tenanttest.New(t, 3, tenanttest.WithMigrations(migrations)) // 3 throwaway databases
	env.Run(t, func(t *testing.T, ctx context.Context, tn tenanttest.Tenant) {
		// ctx names tn; env.DB is a tenantsql *sql.DB
	})
} // the databases are dropped when the test ends
// end snippet

// The embedded migrations, passed as the README passes them (the
// directory "migrations" inside the embed.FS), are applied to every
// tenant's database, and a query with the context Run gives reaches it.
func TestOrdersMigrated(t *testing.T) {
	env := tenanttest.New(t, 2, tenanttest.WithMigrations(migrations))
	env.Run(t, func(t *testing.T, ctx context.Context, tn tenanttest.Tenant) {
		if got := serverQuery(t, tn.Database, "SELECT to_regclass('public.orders')::text"); got != "orders" {
			t.Fatalf("table orders on %s: %q, want it migrated", tn.Database, got)
		}
		var db string
		if err := env.DB.QueryRowContext(ctx, "SELECT current_database() FROM (SELECT count(*) FROM orders) o").Scan(&db); err != nil {
			t.Fatal(err)
		}
		if db != tn.Database {
			t.Fatalf("env.DB with Run's context ran on %q, want %q", db, tn.Database)
		}
	})
}
