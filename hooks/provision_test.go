package hooks_test

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// withMsg returns the records of logs whose msg is msg.
func withMsg(t *testing.T, logs *testenv.LogBuffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range logs.Records(t) {
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// What the ready-made hooks provision at run time is logged at level Info
// through the registry's logger, with the tenant and the hook: the
// database and the schema created (only when they were), and the
// migrations applied, with schema versions told apart from the store's.
func TestProvisioningIsLogged(t *testing.T) {
	name := testenv.Unique("tsql_hooks_prov")
	dropAfter(t, name)
	logs := &testenv.LogBuffer{}
	reg := hooks.New(slog.New(slog.NewJSONHandler(logs, nil)))
	s := store.NewMemory()
	c, err := driver.NewConnector(s, driver.WithHooks(reg), driver.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	createDB, _ := hooks.Databases()
	createSchema, _ := hooks.Schemas()
	migrateHook, err := hooks.Migrate(db, os.DirFS("../testdata/migrations"))
	if err != nil {
		t.Fatal(err)
	}
	reg.Subscribe(hooks.OnCreate, createDB)
	reg.Subscribe(hooks.OnCreate, createSchema)
	reg.Subscribe(hooks.PostCreate, migrateHook)

	const id = "prov.test"
	tn, err := s.Create(t.Context(), tenantOn(id, testenv.DatabaseURL(t, name, "search_path", "tenant_prov")))
	if err != nil {
		t.Fatal(err)
	}
	// The query waits for the create hooks; then the server says where
	// it ran and that the migration's table is in the tenant's schema (the
	// database is new: its only hospital table).
	ctx, cancel := context.WithTimeout(tenantctx.WithTenant(t.Context(), id), time.Minute)
	defer cancel()
	var database, schema string
	if err := db.QueryRowContext(ctx, "SELECT current_database(), (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'hospital')").Scan(&database, &schema); err != nil {
		t.Fatal(err)
	}
	if database != name || schema != "tenant_prov" {
		t.Fatalf("tenant on %q with table hospital in schema %q, want %q and tenant_prov", database, schema, name)
	}

	for _, want := range []struct {
		msg, hook, key, value string
	}{
		{"tenantsql: created the tenant's database", "hooks.Databases.create", "database", name},
		{"tenantsql: created the tenant's schema", "hooks.Schemas.create", "schema", "tenant_prov"},
		{"tenantsql: migrated the tenant", "hooks.Migrate", "", ""},
	} {
		recs := withMsg(t, logs, want.msg)
		if len(recs) != 1 {
			t.Errorf("%d records %q, want 1", len(recs), want.msg)
			continue
		}
		r := recs[0]
		if r["level"] != "INFO" || r["tenant"] != id || r["hook"] != want.hook || r["store_version"] != float64(tn.Version) {
			t.Errorf("record %q: %v, want INFO with tenant %s, hook %s, store_version %d", want.msg, r, id, want.hook, tn.Version)
		}
		if want.key != "" && r[want.key] != want.value {
			t.Errorf("record %q: %s = %v, want %q", want.msg, want.key, r[want.key], want.value)
		}
		if want.hook == "hooks.Migrate" {
			if applied, _ := r["applied"].(float64); applied < 1 || r["schema_version"] == nil {
				t.Errorf("record %q: %v, want applied and schema_version", want.msg, r)
			}
		}
	}

	// Run again, as another process would: the database and schema are
	// there and the tenant is up to date, so nothing more is logged.
	for _, kind := range []hooks.Kind{hooks.OnCreate, hooks.PostCreate} {
		if err := reg.Run(t.Context(), hooks.Event{Kind: kind, Tenant: tn, Version: tn.Version}); err != nil {
			t.Fatal(err)
		}
	}
	for _, msg := range []string{"tenantsql: created the tenant's database", "tenantsql: created the tenant's schema", "tenantsql: migrated the tenant"} {
		if n := len(withMsg(t, logs, msg)); n != 1 {
			t.Errorf("%d records %q after the hooks ran again, want still 1", n, msg)
		}
	}
}
