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

// Looking changes nothing: a dry run of any operation, and status, on a
// fresh tenant database report version 0 and what up would apply, and
// leave the database without a version table; with a table name of their
// own (here in a schema), they read that one.
func TestLookingCreatesNothing(t *testing.T) {
	tests := []struct {
		name    string
		op      migrate.Op
		version int64
		dry     bool
		table   string // WithTableName; "" for goose's default
		setup   string // run on the tenant's database first
		pending []int64
	}{
		{name: "dry up", op: migrate.Up, dry: true, pending: []int64{1, 2, 3, 4, 5}},
		{name: "dry up-to 3", op: migrate.UpTo, version: 3, dry: true, pending: []int64{1, 2, 3}},
		{name: "dry down", op: migrate.Down, dry: true},
		{name: "dry down-to 0", op: migrate.DownTo, dry: true},
		{name: "status", op: migrate.Status, pending: []int64{1, 2, 3, 4, 5}},
		{name: "dry up, table in a schema", op: migrate.Up, dry: true, table: "mig.versions", setup: "CREATE SCHEMA mig", pending: []int64{1, 2, 3, 4, 5}},
		{name: "status, table in a schema", op: migrate.Status, table: "mig.versions", setup: "CREATE SCHEMA mig", pending: []int64{1, 2, 3, 4, 5}},
		{name: "status, schema missing", op: migrate.Status, table: "nosuch.versions", pending: []int64{1, 2, 3, 4, 5}},
	}
	env := tenanttest.New(t, len(tests))
	for i, tt := range tests {
		tn := env.Tenants[i]
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != "" {
				if _, err := env.DB.ExecContext(env.Context(tn), tt.setup); err != nil {
					t.Fatal(err)
				}
			}
			opts := []migrate.Option{migrate.WithTenants(tn.ID), migrate.WithDryRun(tt.dry)}
			if tt.table != "" {
				opts = append(opts, migrate.WithTableName(tt.table))
			}
			m, err := migrate.New(env.DB, env.Store, migrations, opts...)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := m.Run(context.Background(), tt.op, tt.version)
			if err != nil {
				t.Fatal(err)
			}
			r := rep.Results[0]
			if r.Before != 0 || r.After != 0 || !slices.Equal(r.Pending, tt.pending) || len(r.Applied) != 0 {
				t.Errorf("before %d after %d pending %v applied %v; want 0, 0, %v, none", r.Before, r.After, r.Pending, r.Applied, tt.pending)
			}
			if tt.op == migrate.Status && len(r.Migrations) != 5 {
				t.Errorf("status lists %d migrations, want 5", len(r.Migrations))
			}
			var tables []string
			rows, err := env.DB.QueryContext(env.Context(tn), "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				tables = append(tables, s)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if len(tables) != 0 {
				t.Errorf("the database now has tables %v; looking must create none", tables)
			}
		})
	}

	// A table name of its own is the one read: migrated to 2 with it, the
	// tenant has 3, 4 and 5 pending, and goose's default table is absent.
	tn := env.Tenants[5]
	withTable := migrate.WithTableName("mig.versions")
	m, err := migrate.New(env.DB, env.Store, migrations, migrate.WithTenants(tn.ID), withTable)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(context.Background(), migrate.UpTo, 2); err != nil {
		t.Fatal(err)
	}
	dry, err := migrate.New(env.DB, env.Store, migrations, migrate.WithTenants(tn.ID), withTable, migrate.WithDryRun(true))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := dry.Run(context.Background(), migrate.Up, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.Before != 2 || !slices.Equal(r.Pending, []int64{3, 4, 5}) {
		t.Errorf("dry run with mig.versions: before %d, pending %v; want 2 and 3,4,5", r.Before, r.Pending)
	}
	var dflt bool
	if err := env.DB.QueryRowContext(env.Context(tn), "SELECT to_regclass('goose_db_version') IS NOT NULL").Scan(&dflt); err != nil || dflt {
		t.Errorf("goose_db_version exists (%v, %v): only mig.versions should", dflt, err)
	}
}
