package driver_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// preparedOnSession lists what the server holds prepared, by name, on the
// session that serves tenant id (the only one, with WithMaxConns(1)).
func preparedOnSession(t *testing.T, tdb *sql.DB, id string) map[string]int64 {
	t.Helper()
	rows, err := tdb.QueryContext(tenantCtx(id), "select statement, generic_plans + custom_plans from pg_prepared_statements where name like 'tenantsql\\_%'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int64{}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		got[s] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// A shared session keeps its settings statements prepared, and a
// row-level-security tenant's statements too, which every tenant then
// runs with one plan; a schema tenant's statements are not kept (another
// tenant's tables are others). Read from the server's
// pg_prepared_statements.
func TestSharedNamedStatements(t *testing.T) {
	const query = "select tag from items"
	for _, tc := range []struct {
		name     string
		open     func(t *testing.T) (*sql.DB, []string)
		userKept bool
	}{
		{"rls", func(t *testing.T) (*sql.DB, []string) {
			return rlsFixture(t, 2, false, driver.WithMaxConns(1))
		}, true},
		{"schema", func(t *testing.T) (*sql.DB, []string) {
			f := newSchemaFixture(t, 2, driver.WithMaxConns(1))
			return f.tdb, f.tenants
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tdb, ids := tc.open(t)
			const rounds = 20
			for i := range rounds {
				id := ids[i%2]
				var tag string
				if err := tdb.QueryRowContext(tenantCtx(id), query).Scan(&tag); err != nil {
					t.Fatal(err)
				}
				if tag != id {
					t.Fatalf("round %d: tenant %s got the row of %s", i, id, tag)
				}
			}
			got := preparedOnSession(t, tdb, ids[0])
			settings := 0
			for s := range got {
				if strings.Contains(s, "set_config") {
					settings++
				}
			}
			if settings == 0 {
				t.Errorf("no settings statement prepared on the session; prepared: %v", got)
			}
			n, kept := got[query]
			switch {
			case tc.userKept && !kept:
				t.Errorf("%q is not prepared on the session; prepared: %v", query, got)
			case tc.userKept && n < rounds:
				t.Errorf("%q was planned %d times on the session, want the %d executions of both tenants", query, n, rounds)
			case !tc.userKept && kept:
				t.Errorf("a schema tenant's %q is prepared on the shared session", query)
			}
		})
	}
}

// A migration that changes a prepared statement's result fails it once,
// as with pgx ("cached plan must not change result type"); the session
// is then replaced and the statement answers with the new columns. And a
// user's DEALLOCATE ALL, which drops the session's statements, does not
// leave a session whose next user would find them gone.
func TestSharedNamedStatementsInvalidated(t *testing.T) {
	tdb, ids := rlsFixture(t, 2, false, driver.WithMaxConns(1))
	ctx := context.Background()
	cols := func(id string) (int, error) {
		rows, err := tdb.QueryContext(tenantCtx(id), "select * from items")
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		c, err := rows.Columns()
		for rows.Next() {
		}
		if err == nil {
			err = rows.Err()
		}
		return len(c), err
	}
	for _, id := range ids {
		if n, err := cols(id); err != nil || n != 2 {
			t.Fatalf("before the migration: %d columns, %v", n, err)
		}
	}
	owner := ownerOf(t, tdb, ids[0])
	if _, err := owner.ExecContext(ctx, "alter table items add column extra int default 7"); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for i := range 6 {
		n, err := cols(ids[i%2])
		switch {
		case err != nil && strings.Contains(err.Error(), "cached plan") && failed == 0:
			failed++
		case err != nil:
			t.Fatalf("after the migration, query %d: %v", i, err)
		case n != 3:
			t.Fatalf("after the migration, query %d: %d columns, want 3", i, n)
		}
	}

	if _, err := tdb.ExecContext(tenantCtx(ids[0]), "deallocate all"); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if n, err := cols(ids[i%2]); err != nil || n != 3 {
			t.Fatalf("after DEALLOCATE ALL, query %d: %d columns, %v", i, n, err)
		}
	}
}

// ownerOf opens the database a tenant of tdb is served from as its
// owner, the test superuser.
func ownerOf(t *testing.T, tdb *sql.DB, id string) *sql.DB {
	t.Helper()
	var name string
	if err := tdb.QueryRowContext(tenantCtx(id), "select current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	owner, err := sql.Open("pgx", testenv.DatabaseURL(t, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Close() })
	return owner
}
