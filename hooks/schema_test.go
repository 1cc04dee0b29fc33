package hooks_test

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// schemaExists asks the server whether database db has schema name.
func schemaExists(t *testing.T, admin *pgx.Conn, name string) bool {
	t.Helper()
	var ok bool
	if err := admin.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// Through the driver: schema tenants created in the store get their
// schema before their first query (the create hook runs OnCreate), a
// database tenant gets none, and with DropSchemaOnDelete a deleted
// tenant's schema is dropped, unless another tenant still uses it.
func TestSchemasCreateAndDrop(t *testing.T) {
	name := testenv.Unique("tsql_hooks_sch")
	testenv.EnsureDatabases(t, name)
	testenv.ResetSchema(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, testenv.DatabaseURL(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())

	s := store.NewMemory()
	var logged testenv.LogBuffer
	reg := hooks.New(slog.New(slog.NewTextHandler(&logged, nil)))
	create, drop := hooks.Schemas(hooks.DropSchemaOnDelete(s))
	reg.Subscribe(hooks.OnCreate, create)
	reg.Subscribe(hooks.OnUpdate, create)
	reg.Subscribe(hooks.PostDelete, drop)
	c, err := driver.NewConnector(s, driver.WithHooks(reg), driver.WithMaxConns(4), driver.WithBypassRLS(true)) // the test server's role is a superuser
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(4)
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}

	add := func(id string, params ...string) {
		t.Helper()
		if _, err := s.Create(ctx, store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, name, params...)}}); err != nil {
			t.Fatal(err)
		}
	}
	// The schema names need quoting; two tenants share one schema.
	add("sch-a.test", "search_path", `"Tenant-A",public`)
	add("sch-b.test", "search_path", "shared_s")
	add("sch-c.test", "search_path", "shared_s", "app.tenant_id", "3")
	add("plain.test")
	for id, want := range map[string]string{"sch-a.test": "Tenant-A", "sch-b.test": "shared_s", "sch-c.test": "shared_s", "plain.test": "public"} {
		// The first query waits for the tenant's create hooks.
		var got string
		if err := db.QueryRowContext(tenantctx.WithTenant(ctx, id), "SELECT current_schema()").Scan(&got); err != nil {
			t.Fatalf("%s: first query: %v", id, err)
		}
		if got != want {
			t.Errorf("%s: current_schema() = %q, want %q", id, got, want)
		}
	}
	for _, sch := range []string{"Tenant-A", "shared_s"} {
		if !schemaExists(t, admin, sch) {
			t.Errorf("schema %q does not exist after its tenants' creates", sch)
		}
	}
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("%d schemas in the database, want 3 (public, Tenant-A, shared_s)", n)
	}
	// Something to lose in Tenant-A.
	if _, err := db.ExecContext(tenantctx.WithTenant(ctx, "sch-a.test"), "CREATE TABLE notes (id int)"); err != nil {
		t.Fatal(err)
	}

	if _, err := s.Delete(ctx, "sch-a.test"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "Tenant-A dropped after its tenant's delete", func() bool { return !schemaExists(t, admin, "Tenant-A") })
	if !schemaExists(t, admin, "public") {
		t.Fatal("public was dropped")
	}

	// shared_s stays while sch-c uses it, and goes with the last tenant.
	if _, err := s.Delete(ctx, "sch-b.test"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "sch-b's delete hook to refuse", func() bool {
		// The delete hook's record (the create hooks' records name the
		// tenant too).
		return strings.Contains(logged.String(), `kind=post_tenant_delete tenant=sch-b.test`) || !schemaExists(t, admin, "shared_s")
	})
	if !schemaExists(t, admin, "shared_s") {
		t.Fatal("shared_s was dropped while sch-c.test still uses it")
	}
	if log := logged.String(); !strings.Contains(log, `sch-c.test`) || !strings.Contains(log, "kept") {
		t.Errorf("the refusal does not say which tenant keeps the schema: %s", log)
	}
	if _, err := s.Delete(ctx, "sch-c.test"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "shared_s dropped after its last tenant's delete", func() bool { return !schemaExists(t, admin, "shared_s") })
}

// The hooks do nothing for a tenant without search_path, without even
// connecting; the drop hook exists only with its option; errors name the
// tenant and show no password.
func TestSchemasErrors(t *testing.T) {
	ctx := context.Background()
	create, drop := hooks.Schemas()
	if drop != nil {
		t.Fatal("Schemas without DropSchemaOnDelete returned a drop hook")
	}
	nowhere := "postgres://app:sekret@127.0.0.1:1/saas?connect_timeout=2"
	if err := create(ctx, hooks.Event{Kind: hooks.OnCreate, Tenant: store.Tenant{ID: "db.test", DeployInfo: map[string]string{store.KeyPostgresURL: nowhere}}}); err != nil {
		t.Fatalf("create hook for a tenant without search_path: %v", err)
	}
	for _, u := range []string{nowhere + "&search_path=t1", "postgres://app:sekret@127.0.0.1:1/saas?search_path=t1&password=sekret2&connect_timeout=2"} {
		err := create(ctx, hooks.Event{Kind: hooks.OnCreate, Tenant: store.Tenant{ID: "sch.test", DeployInfo: map[string]string{store.KeyPostgresURL: u}}})
		if err == nil {
			t.Fatal("create hook on a server that does not exist succeeded")
		}
		t.Logf("error: %v", err)
		if msg := err.Error(); !strings.Contains(msg, `"sch.test"`) || strings.Contains(msg, "sekret") {
			t.Errorf("error %q: must name the tenant and show no password", msg)
		}
	}
	err := create(ctx, hooks.Event{Kind: hooks.OnCreate, Tenant: store.Tenant{ID: "user.test", DeployInfo: map[string]string{store.KeyPostgresURL: nowhere + "&search_path=%24user,public"}}})
	if err == nil || !strings.Contains(err.Error(), "$user") {
		t.Errorf("create hook for a search_path starting with $user: %v, want a refusal", err)
	}
	// An update that keeps the URL does nothing (it would fail here).
	tn := store.Tenant{ID: "sch.test", DeployInfo: map[string]string{store.KeyPostgresURL: nowhere + "&search_path=t1"}}
	if err := create(ctx, hooks.Event{Kind: hooks.OnUpdate, Tenant: tn, Old: tn}); err != nil {
		t.Errorf("create hook on an update that keeps the URL: %v", err)
	}
	_, drop = hooks.Schemas(hooks.DropSchemaOnDelete(store.NewMemory()))
	pub := store.Tenant{ID: "pub.test", DeployInfo: map[string]string{store.KeyPostgresURL: nowhere + "&search_path=public"}}
	if err := drop(ctx, hooks.Event{Kind: hooks.PostDelete, Tenant: pub}); err == nil || !strings.Contains(err.Error(), "public") {
		t.Errorf("drop hook for a tenant in public: %v, want a refusal", err)
	}
}
