package migrate_test

import (
	"context"
	"slices"
	"testing"

	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/tenanttest"
)

// Status reports, per tenant, what the tenant's own database has recorded:
// here three throwaway tenants migrated to version 5 by tenanttest, one of
// them then rolled back to 3 by hand through its own session.
func TestStatusMatchesDatabases(t *testing.T) {
	env := tenanttest.New(t, 3, tenanttest.WithMigrations(migrations))
	target := env.Tenants[1]
	if _, err := env.DB.ExecContext(env.Context(target), "DELETE FROM goose_db_version WHERE version_id > 3"); err != nil {
		t.Fatal(err)
	}
	m, err := migrate.New(env.DB, env.Store, migrations)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := m.Run(context.Background(), migrate.Status, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		var applied []int64
		for _, s := range r.Migrations {
			if s.Applied {
				applied = append(applied, s.Version)
			}
		}
		want, pending := []int64{1, 2, 3, 4, 5}, []int64(nil)
		if r.Tenant == target.ID {
			want, pending = []int64{1, 2, 3}, []int64{4, 5}
		}
		if !slices.Equal(applied, want) || !slices.Equal(r.Pending, pending) || r.After != want[len(want)-1] {
			t.Errorf("%s: applied %v pending %v version %d; want %v, %v", r.Tenant, applied, r.Pending, r.After, want, pending)
		}
	}
	// Each tenant's subtest sees its own database.
	env.Run(t, func(t *testing.T, ctx context.Context, tn tenanttest.Tenant) {
		var db string
		if err := env.DB.QueryRowContext(ctx, "SELECT current_database()").Scan(&db); err != nil || db != tn.Database {
			t.Errorf("%s ran on %q (%v), want %q", tn.ID, db, err, tn.Database)
		}
	})
}
