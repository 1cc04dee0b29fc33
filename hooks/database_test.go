package hooks_test

import (
	"context"
	"database/sql"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

// admins holds one administrative pool per test: testenv.Admin opens a
// new one per call, kept until the test ends.
var admins sync.Map // *testing.T -> *sql.DB

func admin(t *testing.T) *sql.DB {
	t.Helper()
	if db, ok := admins.Load(t); ok {
		return db.(*sql.DB)
	}
	db := testenv.Admin(t)
	db.SetMaxOpenConns(2)
	admins.Store(t, db)
	t.Cleanup(func() { admins.Delete(t) })
	return db
}

// databaseExists asks the server whether database name exists.
func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	var ok bool
	if err := admin(t).QueryRow("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// dropAfter drops database name (any name: it is quoted) now and when the
// test ends.
func dropAfter(t *testing.T, name string) {
	t.Helper()
	drop := func() {
		if _, err := admin(t).Exec("DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %q: %v", name, err)
		}
	}
	drop()
	t.Cleanup(drop)
}

func tenantOn(id, u string) store.Tenant {
	return store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: u}}
}

// create makes a tenant's database, and doing it again is no error; a
// name that needs quoting is quoted; a tenant with tenant settings gets
// the database its URL names; an update that keeps the URL does nothing.
func TestDatabasesCreate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	create, drop := hooks.Databases()
	if drop != nil {
		t.Fatal("Databases without DropDatabaseOnDelete returned a drop hook")
	}
	plain := testenv.Unique("tsql_hooks_dbc")
	odd := testenv.Unique("tsql_hooks_dbq") + `-Odd"name`
	shared := testenv.Unique("tsql_hooks_dbs")
	for _, n := range []string{plain, odd, shared} {
		dropAfter(t, n)
	}
	tenants := []store.Tenant{
		tenantOn("plain.test", testenv.DatabaseURL(t, plain)),
		tenantOn("odd.test", testenv.DatabaseURL(t, odd)),
		tenantOn("sch.test", testenv.DatabaseURL(t, shared, "search_path", "tenant_s", "app.tenant_id", "7")),
	}
	for _, tn := range tenants {
		for i := range 2 {
			if err := create(ctx, hooks.Event{Kind: hooks.OnCreate, Tenant: tn}); err != nil {
				t.Fatalf("%s: create #%d: %v", tn.ID, i+1, err)
			}
		}
	}
	for _, n := range []string{plain, odd, shared} {
		if !databaseExists(t, n) {
			t.Errorf("database %q does not exist after create", n)
		}
	}
	// An update that keeps the URL does nothing: the database dropped
	// behind the hook's back stays dropped.
	dropAfter(t, plain)
	if err := create(ctx, hooks.Event{Kind: hooks.OnUpdate, Tenant: tenants[0], Old: tenants[0]}); err != nil {
		t.Fatal(err)
	}
	if databaseExists(t, plain) {
		t.Error("an update that keeps POSTGRES_URL created the database")
	}
	moved := tenantOn("plain.test", testenv.DatabaseURL(t, plain, "application_name", "moved"))
	if err := create(ctx, hooks.Event{Kind: hooks.OnUpdate, Tenant: moved, Old: tenants[0]}); err != nil {
		t.Fatal(err)
	}
	if !databaseExists(t, plain) {
		t.Error("an update that changes POSTGRES_URL did not create the database")
	}
}

// Many processes receive the same create at once: every one succeeds, and
// the database is there once.
func TestDatabasesCreateConcurrently(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := testenv.Unique("tsql_hooks_dbn")
	dropAfter(t, name)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		// A hook of its own per goroutine, as in separate processes.
		create, _ := hooks.Databases()
		tn := tenantOn("conc.test", testenv.DatabaseURL(t, name))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = create(ctx, hooks.Event{Kind: hooks.OnCreate, Tenant: tn})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("create #%d: %v", i, err)
		}
	}
	if !databaseExists(t, name) {
		t.Fatal("the database does not exist after the concurrent creates")
	}
}

// drop exists only with its option; it drops a deleted tenant's database,
// keeps one that another tenant still uses (listing who), and never
// drops postgres or a template.
func TestDatabasesDrop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	own := testenv.Unique("tsql_hooks_dbd")
	shared := testenv.Unique("tsql_hooks_dbk")
	dropAfter(t, own)
	dropAfter(t, shared)
	s := store.NewMemory()
	create, drop := hooks.Databases(hooks.DropDatabaseOnDelete(s))
	if drop == nil {
		t.Fatal("Databases with DropDatabaseOnDelete returned no drop hook")
	}
	add := func(id, u string) store.Tenant {
		t.Helper()
		tn, err := s.Create(ctx, tenantOn(id, u))
		if err != nil {
			t.Fatal(err)
		}
		if err := create(ctx, hooks.Event{Kind: hooks.OnCreate, Tenant: tn}); err != nil {
			t.Fatalf("%s: create: %v", id, err)
		}
		return tn
	}
	del := func(tn store.Tenant) error {
		t.Helper()
		if _, err := s.Delete(ctx, tn.ID); err != nil {
			t.Fatal(err)
		}
		return drop(ctx, hooks.Event{Kind: hooks.PostDelete, Tenant: tn})
	}
	a := add("own.test", testenv.DatabaseURL(t, own))
	b := add("s1.test", testenv.DatabaseURL(t, shared, "search_path", "s1"))
	c := add("s2.test", testenv.DatabaseURL(t, shared, "app.tenant_id", "2"))
	if !databaseExists(t, own) || !databaseExists(t, shared) {
		t.Fatal("the databases were not created")
	}
	// Something to lose, and a session still connected: FORCE ends it.
	conn, err := pgx.Connect(ctx, testenv.DatabaseURL(t, own))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE notes (id int)"); err != nil {
		t.Fatal(err)
	}
	if err := del(a); err != nil {
		t.Fatalf("drop own.test: %v", err)
	}
	if databaseExists(t, own) {
		t.Error("own.test's database is still there after the drop hook")
	}
	// Dropped already (another process): no error.
	if err := drop(ctx, hooks.Event{Kind: hooks.PostDelete, Tenant: a}); err != nil {
		t.Errorf("drop of a database dropped meanwhile: %v", err)
	}

	err = del(b)
	if err == nil || !strings.Contains(err.Error(), `"s2.test"`) || !strings.Contains(err.Error(), "kept") {
		t.Errorf("drop of a database another tenant uses: %v, want a refusal naming s2.test", err)
	}
	if !databaseExists(t, shared) {
		t.Fatal("the shared database was dropped while s2.test still uses it")
	}
	if err := del(c); err != nil {
		t.Fatalf("drop of the shared database's last tenant: %v", err)
	}
	if databaseExists(t, shared) {
		t.Error("the shared database is still there after its last tenant's drop")
	}

	for _, n := range []string{"postgres", "template1", "template0"} {
		tn := tenantOn("sys.test", testenv.DatabaseURL(t, n))
		err := drop(ctx, hooks.Event{Kind: hooks.PostDelete, Tenant: tn})
		if err == nil || !strings.Contains(err.Error(), "never dropped") {
			t.Errorf("drop of %s: %v, want a refusal", n, err)
		}
	}
	// The maintenance database, configured.
	_, dropM := hooks.Databases(hooks.DropDatabaseOnDelete(s), hooks.MaintenanceDatabase("template1"))
	tn := tenantOn("m.test", testenv.DatabaseURL(t, "postgres"))
	if err := dropM(ctx, hooks.Event{Kind: hooks.PostDelete, Tenant: tn}); err == nil {
		t.Error("drop of postgres with another maintenance database: no refusal")
	}
}

// A role that may not create databases gets the server's own error,
// naming the tenant and the database, without its password; a database
// that exists already needs no such right.
func TestDatabasesPermission(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := admin(t)
	role := testenv.Unique("tsql_nocreatedb")
	const password = "pw-Zq8vLk3x"
	if _, err := admin.ExecContext(ctx, "DROP ROLE IF EXISTS "+role); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, "CREATE ROLE "+role+" LOGIN NOCREATEDB NOSUPERUSER PASSWORD '"+password+"'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP ROLE IF EXISTS " + role) })
	name := testenv.Unique("tsql_hooks_dbp")
	dropAfter(t, name)
	u, err := url.Parse(testenv.DatabaseURL(t, name))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, password)
	tn := tenantOn("noperm.test", u.String())

	create, _ := hooks.Databases()
	err = create(ctx, hooks.Event{Kind: hooks.OnCreate, Tenant: tn})
	if err == nil {
		t.Fatal("a role without CREATEDB created a database")
	}
	t.Logf("error: %v", err)
	msg := err.Error()
	for _, want := range []string{`"noperm.test"`, name, "permission denied to create database"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, password) {
		t.Errorf("error %q shows the password", msg)
	}
	if databaseExists(t, name) {
		t.Fatal("the database exists")
	}
	testenv.EnsureDatabases(t, name)
	if err := create(ctx, hooks.Event{Kind: hooks.OnCreate, Tenant: tn}); err != nil {
		t.Errorf("create for a database that exists, by a role without CREATEDB: %v", err)
	}
}

// Errors name the tenant and show no password: an unreachable server, a
// URL that does not parse.
func TestDatabasesErrors(t *testing.T) {
	ctx := context.Background()
	create, drop := hooks.Databases(hooks.DropDatabaseOnDelete(store.NewMemory()))
	for _, u := range []string{
		"postgres://app:sekret@127.0.0.1:1/saas?connect_timeout=2",
		"postgres://app:sekret@127.0.0.1:1/saas?search_path=t1&password=sekret2&connect_timeout=2",
		"postgres://app:sekret@127.0.0.1:99999999/saas",
	} {
		for kind, fn := range map[hooks.Kind]hooks.Func{hooks.OnCreate: create, hooks.PostDelete: drop} {
			err := fn(ctx, hooks.Event{Kind: kind, Tenant: tenantOn("err.test", u)})
			if err == nil {
				t.Fatalf("%v on %s succeeded", kind, u)
			}
			t.Logf("error: %v", err)
			if msg := err.Error(); !strings.Contains(msg, `"err.test"`) || strings.Contains(msg, "sekret") {
				t.Errorf("error %q: must name the tenant and show no password", msg)
			}
		}
	}
}

// A server's error that quotes the password (here the role name, which is
// also the password, as in postgres:postgres) is shown with it masked,
// not withheld.
func TestDatabasesErrorShowsCauseWithoutPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const pw = "tsql_hooks_no_such_role"
	u, err := url.Parse(testenv.DatabaseURL(t, testenv.Unique("tsql_hooks_dbr")))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(pw, pw)
	create, _ := hooks.Databases()
	err = create(ctx, hooks.Event{Kind: hooks.OnCreate, Tenant: tenantOn("norole.test", u.String())})
	if err == nil {
		t.Fatal("create with an unknown role succeeded")
	}
	msg := err.Error()
	t.Logf("error: %s", msg)
	if strings.Contains(msg, pw) {
		t.Errorf("error %q shows the password", msg)
	}
	// The server's cause (28000 role does not exist, or 28P01 where it
	// asks for a password), with the role masked.
	for _, want := range []string{`tenant "norole.test"`, "SQLSTATE 28", `"xxxxx"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}
