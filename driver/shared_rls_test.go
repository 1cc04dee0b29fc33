package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

var rlsSeq int // tests using rlsFixture do not run in parallel

// rlsFixture is one database with one table of every tenant's rows, a
// policy on app.tenant_id, and a login role without BYPASSRLS.
func rlsFixture(t *testing.T, tenants int, asSuperuser bool, opts ...driver.Option) (*sql.DB, []string) {
	t.Helper()
	rlsSeq++
	db := testenv.Unique(fmt.Sprintf("tsql_rls%d", rlsSeq))
	role := db + "_app"
	testenv.RecreateDatabase(t, db)
	admin := testenv.Admin(t)
	ctx := context.Background()
	t.Cleanup(func() {
		testenv.DropDatabase(t, db)
		admin.ExecContext(ctx, "drop role if exists "+role)
	})
	if _, err := admin.ExecContext(ctx, "create role "+role+" login nobypassrls"); err != nil {
		t.Fatal(err)
	}
	owner, err := sql.Open("pgx", testenv.DatabaseURL(t, db))
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	for _, q := range []string{
		"create table items (tenant_id text not null, tag text not null)",
		"alter table items enable row level security",
		"alter table items force row level security",
		"create policy by_tenant on items using (tenant_id = current_setting('app.tenant_id'))",
		"grant select on items to " + role,
	} {
		if _, err := owner.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s := store.NewMemory()
	var ids []string
	for i := range tenants {
		id := fmt.Sprintf("r%d.test", i)
		if _, err := owner.ExecContext(ctx, "insert into items values ($1, $1)", id); err != nil {
			t.Fatal(err)
		}
		u := testenv.DatabaseURL(t, db, "app.tenant_id", id)
		if !asSuperuser {
			u = strings.Replace(u, "postgres://postgres", "postgres://"+role, 1)
		}
		if _, err := s.Create(ctx, store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: u}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	c, err := driver.NewConnector(s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	tdb := sql.OpenDB(c)
	t.Cleanup(func() { tdb.Close() })
	return tdb, ids
}

// Tenants told apart by app.tenant_id share sessions and each sees only
// its own rows, as the server's policy filters them.
func TestRLSTenantsSeeOnlyTheirRows(t *testing.T) {
	tdb, ids := rlsFixture(t, 6, false, driver.WithMaxConns(2))
	for i := range 120 {
		id := ids[(i*5)%len(ids)]
		rows, err := tdb.QueryContext(tenantCtx(id), "select tag from items")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var tag string
			if err := rows.Scan(&tag); err != nil {
				t.Fatal(err)
			}
			got = append(got, tag)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != id {
			t.Fatalf("tenant %s read %v, want only its own row", id, got)
		}
	}
}

// A login role that bypasses row-level security would let every such
// tenant read every tenant's rows: refused, unless WithBypassRLS accepts it.
func TestRLSRefusesBypassingRole(t *testing.T) {
	tdb, ids := rlsFixture(t, 2, true, driver.WithMaxConns(2))
	var n int
	err := tdb.QueryRowContext(tenantCtx(ids[0]), "select count(*) from items").Scan(&n)
	if !errors.Is(err, driver.ErrTenantConfig) || !strings.Contains(err.Error(), "BYPASSRLS") {
		t.Fatalf("query as a superuser RLS tenant: %v (read %d rows); want ErrTenantConfig naming BYPASSRLS", err, n)
	}

	tdb, ids = rlsFixture(t, 2, true, driver.WithMaxConns(2), driver.WithBypassRLS(true))
	if err := tdb.QueryRowContext(tenantCtx(ids[0]), "select count(*) from items").Scan(&n); err != nil {
		t.Fatalf("with WithBypassRLS(true): %v", err)
	}
	if n != 2 {
		t.Fatalf("a superuser read %d rows; the policy does not apply to it, so want all 2", n)
	}
}
