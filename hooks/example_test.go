package hooks_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// A PostCreate hook on the default registry creates a new tenant's schema.
// Every process that opens a tenantsql *sql.DB runs it when a tenant is
// added, and the tenant's queries wait until it has succeeded.
func Example() {
	var db *sql.DB
	hooks.Subscribe(hooks.PostCreate, func(ctx context.Context, ev hooks.Event) error {
		// ctx names ev.Tenant.ID, so this runs on the new tenant's database.
		_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS notes (id bigserial PRIMARY KEY, body text NOT NULL)`)
		return err
	})

	db, err := sql.Open("tenantsql", "file:tenant_config.json")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	ctx := tenantctx.WithTenant(context.Background(), "tenant-2.test.com")
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM notes`).Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "notes")
}

// An explicit registry, given to the connector with driver.WithHooks,
// avoids the default one. The hooks run in the background, ON then POST,
// for every change the connector applies; no database is needed until a
// hook or a request queries the tenant.
func ExampleNew() {
	ctx := context.Background()
	s, err := store.Open(ctx, "memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	reg := hooks.New(nil)
	ran := make(chan string, 2)
	record := func(ctx context.Context, ev hooks.Event) error {
		id, _ := tenantctx.TenantFrom(ctx)
		ran <- fmt.Sprintf("%s %s (context names %s)", ev.Kind, ev.Tenant.ID, id)
		return nil
	}
	reg.Subscribe(hooks.OnCreate, record)
	reg.Subscribe(hooks.PostCreate, record)

	c, err := driver.NewConnector(s, driver.WithHooks(reg))
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()

	_, err = s.Create(ctx, store.Tenant{
		ID:         "tenant-1.test.com",
		DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://app:secret@db:5432/one"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-ran)
	fmt.Println(<-ran)
	// Output:
	// on_tenant_create tenant-1.test.com (context names tenant-1.test.com)
	// post_tenant_create tenant-1.test.com (context names tenant-1.test.com)
}

var errNoSeed = errors.New("no seed data")

func createSchema(ctx context.Context, ev hooks.Event) error { return nil }

func seedData(ctx context.Context, ev hooks.Event) error { return errNoSeed }

// Run runs every hook of the event's kind, even after one failed, and
// returns their errors joined; Failures keeps them.
func ExampleRegistry_Run() {
	reg := hooks.New(slog.New(slog.DiscardHandler)) // failures are logged here
	reg.Subscribe(hooks.PostCreate, seedData)
	reg.Subscribe(hooks.PostCreate, createSchema)

	err := reg.Run(context.Background(), hooks.Event{
		Kind:    hooks.PostCreate,
		Tenant:  store.Tenant{ID: "tenant-1.test.com"},
		Version: 7,
	})
	fmt.Println(err)
	fmt.Println(errors.Is(err, errNoSeed))
	for _, f := range reg.Failures("tenant-1.test.com") {
		fmt.Println(f.Kind, f.Hook, f.Version, f.Err != nil)
	}
	// Output:
	// hooks: post_tenant_create hook github.com/tenantsql/tenantsql/hooks_test.seedData for tenant "tenant-1.test.com": no seed data
	// true
	// post_tenant_create github.com/tenantsql/tenantsql/hooks_test.seedData 7 true
}

func ExampleKind_String() {
	fmt.Println(hooks.OnCreate, hooks.PostDelete)
	fmt.Println(hooks.PostUpdate.Post(), hooks.OnUpdate.Post())
	// Output:
	// on_tenant_create post_tenant_delete
	// true false
}

func ExampleKindOf() {
	fmt.Println(hooks.KindOf(store.EventCreate, store.PhaseOn))
	fmt.Println(hooks.KindOf(store.EventCreate, store.PhasePost))
	fmt.Println(hooks.KindOf(store.EventDelete, store.PhasePost))
	fmt.Println(hooks.KindOf(store.EventSync, store.PhaseOn) == 0) // a sync is no change of its own
	// Output:
	// on_tenant_create
	// post_tenant_create
	// post_tenant_delete
	// true
}

// Schema tenants: each tenant's POSTGRES_URL names the shared database and
// its schema (postgres://app:pw@db1/saas?search_path=tenant_42). The
// create hook makes the schema before the migrations run in it; the drop
// hook, asked for explicitly, drops a deleted tenant's schema.
func ExampleSchemas() {
	ctx := context.Background()
	s, err := store.Open(ctx, "file:tenant_config.json")
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	reg := hooks.New(nil)
	create, drop := hooks.Schemas(hooks.DropSchemaOnDelete(s))
	reg.Subscribe(hooks.OnCreate, create)
	reg.Subscribe(hooks.OnUpdate, create)
	reg.Subscribe(hooks.PostDelete, drop)

	c, err := driver.NewConnector(s, driver.WithHooks(reg))
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	migrateHook, err := hooks.Migrate(db, os.DirFS("migrations"))
	if err != nil {
		log.Fatal(err)
	}
	reg.Subscribe(hooks.PostCreate, migrateHook) // after create: in the new schema
}

// Provisioning: a new tenant's database is created if it is missing,
// before its migrations run. The drop hook, asked for explicitly, drops a
// deleted tenant's database unless another tenant still uses it; without
// it, a deleted tenant's database and data are kept.
func ExampleDatabases() {
	ctx := context.Background()
	s, err := store.Open(ctx, "file:tenant_config.json")
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	reg := hooks.New(nil)
	createDB, dropDB := hooks.Databases(hooks.DropDatabaseOnDelete(s))
	reg.Subscribe(hooks.OnCreate, createDB) // first: the schema goes into it
	reg.Subscribe(hooks.OnUpdate, createDB)
	createSchema, _ := hooks.Schemas() // for tenants with a search_path
	reg.Subscribe(hooks.OnCreate, createSchema)
	reg.Subscribe(hooks.OnUpdate, createSchema)
	reg.Subscribe(hooks.PostDelete, dropDB)

	c, err := driver.NewConnector(s, driver.WithHooks(reg))
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	migrateHook, err := hooks.Migrate(db, os.DirFS("migrations"))
	if err != nil {
		log.Fatal(err)
	}
	reg.Subscribe(hooks.PostCreate, migrateHook) // after create: in the new database
}
