package driver_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

// schemaFixture is one database whose tenants are schemas: tenant i has
// schema s<i>, a table items holding one row tagged with its id, and
// every second schema an extra column (a later schema version).
type schemaFixture struct {
	db      string
	url     string // the database's URL, no tenant settings
	admin   *sql.DB
	store   *store.Memory
	conn    *driver.Connector
	tdb     *sql.DB
	tenants []string
}

func newSchemaFixture(t *testing.T, n int, opts ...driver.Option) *schemaFixture {
	t.Helper()
	return newSchemaFixtureVia(t, n, testenv.DatabaseURL, opts...)
}

// newSchemaFixtureVia is newSchemaFixture with tenant URLs made by
// tenantURL (the test PgBouncer's, say); the fixture's own set-up goes to
// the server directly.
func newSchemaFixtureVia(t *testing.T, n int, tenantURL func(testing.TB, string, ...string) string, opts ...driver.Option) *schemaFixture {
	t.Helper()
	f := &schemaFixture{db: testenv.Unique("tsql_shared"), store: store.NewMemory()}
	testenv.RecreateDatabase(t, f.db)
	t.Cleanup(func() { testenv.DropDatabase(t, f.db) })
	f.url = testenv.DatabaseURL(t, f.db)
	admin, err := sql.Open("pgx", f.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	f.admin = admin
	ctx := context.Background()
	for i := range n {
		id := fmt.Sprintf("s%d.test", i)
		schema := fmt.Sprintf("s%d", i)
		extra := ""
		if i%2 == 1 {
			extra = ", added int default 7"
		}
		for _, q := range []string{
			fmt.Sprintf("create schema %s", schema),
			fmt.Sprintf("create table %s.items (tag text%s)", schema, extra),
			fmt.Sprintf("insert into %s.items (tag) values ('%s')", schema, id),
		} {
			if _, err := admin.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.store.Create(ctx, store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: tenantURL(t, f.db, "search_path", schema)}}); err != nil {
			t.Fatal(err)
		}
		f.tenants = append(f.tenants, id)
	}
	c, err := driver.NewConnector(f.store, opts...)
	if err != nil {
		t.Fatal(err)
	}
	f.conn = c
	f.tdb = sql.OpenDB(c)
	t.Cleanup(func() { f.tdb.Close() })
	return f
}

// sessions counts the server's sessions on the fixture's database.
func (f *schemaFixture) sessions(t *testing.T) int {
	t.Helper()
	var n int
	if err := f.admin.QueryRow("select count(*) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()", f.db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Schema tenants of one database share its sessions, and every answer
// comes from the tenant's own schema, as the server says.
func TestSchemaTenantsShareSessions(t *testing.T) {
	const tenants = 12
	f := newSchemaFixture(t, tenants, driver.WithMaxConns(4))
	f.hammer(t, 6, 100)
	if n := f.sessions(t); n > 4 {
		t.Errorf("server has %d sessions on the database, want at most 4 (WithMaxConns) for %d tenants", n, tenants)
	}
}

// Behind PgBouncer in transaction mode, where a server connection goes to
// another client after every transaction, no statement runs with another
// tenant's search_path: the settings travel in each statement's own
// transaction. More clients (8) than PgBouncer has server connections
// (testenv.PgBouncerPoolSize), so the server connections do change hands.
func TestPgBouncerSchemaTenants(t *testing.T) {
	testenv.PgBouncer(t) // skips now, or fails under CI, without one
	f := newSchemaFixtureVia(t, 12, testenv.PgBouncerURL, driver.WithMaxConns(8))
	f.hammer(t, 8, 150)
	if n := f.sessions(t); n > testenv.PgBouncerPoolSize {
		t.Errorf("server has %d sessions on the database; through PgBouncer there should be at most %d", n, testenv.PgBouncerPoolSize)
	}
	served := false
	for _, row := range testenv.PgBouncerShow(t, "STATS") {
		if row["database"] == f.db && row["total_query_count"] != "0" && row["total_query_count"] != "" {
			served = true
		}
	}
	if !served {
		t.Errorf("PgBouncer's SHOW STATS has no queries for %s: the tenants bypassed it", f.db)
	}
}

// hammer runs rounds queries on each of workers goroutines, tenants in
// turn, and checks every answer against the server: the schema it ran in,
// the row it read, the shape of the tenant's table.
func (f *schemaFixture) hammer(t *testing.T, workers, rounds int) {
	t.Helper()
	tenants := len(f.tenants)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				id := f.tenants[(w*7+i)%tenants]
				var schema, tag string
				err := f.tdb.QueryRowContext(tenantCtx(id), "select current_schema(), tag from items").Scan(&schema, &tag)
				if err != nil {
					errs <- fmt.Errorf("tenant %s: %w", id, err)
					return
				}
				if tag != id || "s"+id[1:len(id)-len(".test")] != schema {
					errs <- fmt.Errorf("tenant %s: ran in schema %q and read %q", id, schema, tag)
					return
				}
				// Tenants at two schema versions: the same text, two
				// result shapes, on the same sessions.
				rows, err := f.tdb.QueryContext(tenantCtx(id), "select * from items")
				if err != nil {
					errs <- fmt.Errorf("tenant %s: select *: %w", id, err)
					return
				}
				cols, _ := rows.Columns()
				rows.Close()
				if want := 1 + ((w*7+i)%tenants)%2; len(cols) != want {
					errs <- fmt.Errorf("tenant %s: select * gave columns %v, want %d", id, cols, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A statement prepared through database/sql runs for each caller's own
// tenant, whichever tenant's session prepared it, and bad SQL fails at
// Prepare, with the tenant's settings in effect.
func TestSharedPreparedStatement(t *testing.T) {
	f := newSchemaFixture(t, 3, driver.WithMaxConns(2))
	st, err := f.tdb.PrepareContext(tenantCtx(f.tenants[0]), "select tag, current_schema() from items")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 30 {
		id := f.tenants[i%len(f.tenants)]
		var tag, schema string
		if err := st.QueryRowContext(tenantCtx(id)).Scan(&tag, &schema); err != nil {
			t.Fatalf("tenant %s: %v", id, err)
		}
		if tag != id {
			t.Fatalf("tenant %s: prepared statement read %q in schema %q", id, tag, schema)
		}
	}
	if _, err := f.tdb.PrepareContext(tenantCtx(f.tenants[1]), "select * from no_such_table"); err == nil {
		t.Fatal("Prepare of a missing table succeeded")
	}
}
