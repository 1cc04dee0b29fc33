package readme

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// snippet:migrate-embed

//go:embed migrations/*.sql
var migrations embed.FS

// end snippet

// childEnv marks the process that runs TestHooksSnippets' body.
const childEnv = "TENANTSQL_README_HOOKS_CHILD"

// migrateTenant is the README's stand-in for an application's own
// migration code.
func migrateTenant(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS audit (at timestamptz NOT NULL DEFAULT now())")
	return err
}

// The README's hook snippets (### Lifecycle hooks, its "Databases"
// paragraph, ### Migrations) subscribe to the default registry, as an
// application does, and a registry keeps its hooks for the life of the
// process: they would run, with a closed *sql.DB, for the tenants of
// every later test. So they run in a process of their own.
//
// A tenant created in the store, with a database that does not exist
// yet, gets it created (hooks.Databases), migrated with the embedded
// files (hooks.Migrate) and the application's own hook's table; its
// first query waits for all three. Deleting the tenant drops the
// database (DropDatabaseOnDelete). All checked on the server.
func TestHooksSnippets(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		testenv.PostgresURL(t) // skip (or fail under CI) here, not only in the child
		cmd := exec.Command(os.Args[0], "-test.run=^TestHooksSnippets$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), childEnv+"=1")
		out, err := cmd.CombinedOutput()
		switch {
		case err != nil:
			t.Fatalf("the hooks snippets, in their own process: %v\n%s", err, out)
		case bytes.Contains(out, []byte("--- SKIP: TestHooksSnippets")):
			t.Skipf("skipped in its own process:\n%s", out)
		case !bytes.Contains(out, []byte("--- PASS: TestHooksSnippets")):
			t.Fatalf("the hooks snippets' process did not report a pass:\n%s", out)
		}
		return
	}

	ctx := context.Background()
	tenantStore, err := store.Open(ctx, "memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer tenantStore.Close()
	var db *sql.DB

	// snippet:hooks-subscribe
	hooks.Subscribe(hooks.PostCreate, func(ctx context.Context, ev hooks.Event) error {
		// ctx carries ev.Tenant.ID: db.ExecContext(ctx, ...) runs on the new tenant's database
		return migrateTenant(ctx, db)
	})
	// end snippet

	// snippet:hooks-databases
	create, drop := hooks.Databases(hooks.DropDatabaseOnDelete(tenantStore)) // without the option drop is nil
	hooks.Subscribe(hooks.OnCreate, create)                                  // CREATE DATABASE if missing, before the PostCreate migrations
	hooks.Subscribe(hooks.OnUpdate, create)                                  // a tenant moved to a new database
	hooks.Subscribe(hooks.PostDelete, drop)                                  // DROP DATABASE ... WITH (FORCE), unless another tenant uses it
	// end snippet

	c, err := driver.NewConnector(tenantStore)
	if err != nil {
		t.Fatal(err)
	}
	db = sql.OpenDB(c)
	defer db.Close()

	// snippet:migrate
	h, err := hooks.Migrate(db, migrations) // db: the tenantsql *sql.DB
	hooks.Subscribe(hooks.PostCreate, h)    // a new tenant's first query runs after its migrations
	// end snippet
	if err != nil {
		t.Fatal(err)
	}

	name := testenv.Unique("tsql_readme_hooks")
	testenv.DropDatabase(t, name)
	t.Cleanup(func() { testenv.DropDatabase(t, name) })
	const id = "tenant-2.test.com"
	if _, err := tenantStore.Create(ctx, store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, name)}}); err != nil {
		t.Fatal(err)
	}
	qctx, cancel := context.WithTimeout(tenantctx.WithTenant(ctx, id), time.Minute)
	defer cancel()
	var got string
	if err := db.QueryRowContext(qctx, "SELECT current_database() FROM (SELECT count(*) FROM orders) o, (SELECT count(*) FROM audit) a").Scan(&got); err != nil {
		t.Fatalf("the new tenant's first query: %v (hook failures: %v)", err, hooks.Default().Failures(id))
	}
	if got != name {
		t.Fatalf("the new tenant's first query ran on %q, want %q", got, name)
	}
	for _, table := range []string{"orders", "items", "audit"} {
		if got := serverQuery(t, name, "SELECT to_regclass('public."+table+"')::text"); got != table {
			t.Errorf("table %s on the new tenant's database: %q, want it created by the hooks", table, got)
		}
	}

	if _, err := tenantStore.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "the deleted tenant's database to be dropped", func() bool {
		var n int
		if err := testenv.Admin(t).QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}
