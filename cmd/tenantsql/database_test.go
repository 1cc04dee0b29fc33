package main

import (
	"database/sql"
	"slices"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

// tenants add --create-database and tenants rm --drop-database, on the
// test server: the database (and a schema tenant's schema) is created
// before the tenant is added; rm keeps it unless --drop-database, which
// asks first unless --yes, and keeps a database another tenant uses.
func TestCreateAndDropDatabase(t *testing.T) {
	admin := testenv.Admin(t)
	admin.SetMaxOpenConns(1)
	exists := func(query string, args ...any) bool {
		t.Helper()
		var ok bool
		if err := admin.QueryRow(query, args...).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	dbExists := func(name string) bool {
		t.Helper()
		return exists("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name)
	}
	own := testenv.Unique("tsql_cli_own")
	shared := testenv.Unique("tsql_cli_shr")
	for _, n := range []string{own, shared} {
		testenv.DropDatabase(t, n)
		t.Cleanup(func() { testenv.DropDatabase(t, n) })
	}
	f := newFixture(t)

	r := f.run(t, "", "tenants", "add", "--create-database", "own.test", testenv.DatabaseURL(t, own))
	if r.code != exitOK || !strings.Contains(r.stdout, "database ready") || !strings.Contains(r.stdout, "created own.test") {
		t.Fatalf("add --create-database:\n%v", r)
	}
	if !dbExists(own) {
		t.Fatal("add --create-database did not create the database")
	}
	// The URL from stdin; two schema tenants of one database: the first
	// creates the database, each its schema.
	for _, sch := range []string{"cli_a", "cli_b"} {
		r = f.run(t, testenv.DatabaseURL(t, shared, "search_path", sch)+"\n", "tenants", "add", sch+".test", "-", "--create-database")
		if r.code != exitOK {
			t.Fatalf("add %s --create-database:\n%v", sch, r)
		}
	}
	c, err := sql.Open("pgx", testenv.DatabaseURL(t, shared))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var n int
	if err := c.QueryRow("SELECT count(*) FROM pg_namespace WHERE nspname IN ('cli_a', 'cli_b')").Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d of the schemas cli_a, cli_b exist (%v), want 2", n, err)
	}
	c.Close()

	// Adding a tenant that exists creates nothing.
	other := testenv.Unique("tsql_cli_oth")
	testenv.DropDatabase(t, other)
	r = f.run(t, "", "tenants", "add", "--create-database", "own.test", testenv.DatabaseURL(t, other))
	if r.code != exitError || !strings.Contains(r.stderr, "already exists") || dbExists(other) {
		t.Errorf("add --create-database of an existing tenant:\n%v", r)
	}

	// Not confirmed: a "no", or no answer at all.
	for _, answer := range []string{"n\n", "", "maybe\n"} {
		r = f.run(t, answer, "tenants", "rm", "own.test", "--drop-database")
		if r.code != exitError || !strings.Contains(r.stderr, "[y/N]") || !strings.Contains(r.stderr, "not confirmed: nothing deleted") {
			t.Errorf("rm --drop-database answered %q:\n%v", answer, r)
		}
		if _, ok := f.get(t, "own.test"); !ok || !dbExists(own) {
			t.Fatalf("rm --drop-database answered %q deleted something", answer)
		}
	}
	r = f.run(t, "y\n", "tenants", "rm", "own.test", "--drop-database")
	if r.code != exitOK || !strings.Contains(r.stdout, "deleted own.test") || !strings.Contains(r.stdout, "dropped its database") {
		t.Errorf("rm --drop-database confirmed:\n%v", r)
	}
	if _, ok := f.get(t, "own.test"); ok || dbExists(own) {
		t.Fatal("rm --drop-database confirmed: the tenant or its database is still there")
	}

	// Plain rm keeps the database; --drop-database keeps it while another
	// tenant uses it, and drops it with the last one.
	r = f.run(t, "", "tenants", "rm", "cli_a.test")
	if r.code != exitOK || !dbExists(shared) {
		t.Fatalf("rm: %v (database there: %v)", r, dbExists(shared))
	}
	if _, err := admin.Exec("DROP DATABASE " + shared + " WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	r = f.run(t, "", "tenants", "add", "--create-database", "cli_a.test", testenv.DatabaseURL(t, shared, "search_path", "cli_a"))
	if r.code != exitOK {
		t.Fatalf("add again: %v", r)
	}
	r = f.run(t, "", "tenants", "rm", "--yes", "--drop-database", "cli_a.test")
	if r.code != exitError || !strings.Contains(r.stderr, "kept") || !strings.Contains(r.stderr, `"cli_b.test"`) || !dbExists(shared) {
		t.Errorf("rm --drop-database --yes of a database another tenant uses:\n%v", r)
	}
	if ids := f.ids(t); !slices.Equal(ids, []string{"cli_b.test"}) {
		t.Errorf("the store holds %v, want [cli_b.test]", ids)
	}
	r = f.run(t, "", "tenants", "rm", "--yes", "--drop-database", "cli_b.test")
	if r.code != exitOK || dbExists(shared) {
		t.Errorf("rm --drop-database --yes of the last tenant:\n%v", r)
	}
	r = f.run(t, "", "tenants", "rm", "--yes", "--drop-database", "cli_b.test")
	if r.code != exitOK || !strings.Contains(r.stdout, "no such tenant") {
		t.Errorf("rm --drop-database of a missing tenant:\n%v", r)
	}
}

func TestDatabaseFlagsUsage(t *testing.T) {
	runCases(t, []cliCase{
		{
			name: "--create-database on rm", seed: []store.Tenant{tenantA}, args: []string{"tenants", "rm", "--create-database", "tenant-a.test"},
			code: exitUsage, usageOnErr: true, emptyOut: true, stderr: []string{"--create-database applies to add only"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "--drop-database on add", args: []string{"tenants", "add", "--drop-database", "tenant-n.test", urlNew},
			code: exitUsage, usageOnErr: true, emptyOut: true, stderr: []string{"--drop-database applies to rm only"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "--yes without --drop-database", seed: []store.Tenant{tenantA}, args: []string{"tenants", "rm", "--yes", "tenant-a.test"},
			code: exitUsage, usageOnErr: true, emptyOut: true, stderr: []string{"--yes applies to rm --drop-database only"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			// The server is unreachable: the error names the tenant,
			// shows no password, and nothing is added.
			name: "--create-database on no server", args: []string{"tenants", "add", "--create-database", "tenant-n.test", "postgres://app:hunter2@127.0.0.1:1/x?connect_timeout=2"},
			code: exitError, emptyOut: true, stderr: []string{`"tenant-n.test"`, "the tenant was not added"},
			check: func(t *testing.T, f *fixture, r result) {
				if _, ok := f.get(t, "tenant-n.test"); ok {
					t.Error("the tenant was added")
				}
			},
		},
	})
}
