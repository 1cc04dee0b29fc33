package migrate_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pressly/goose/v3"
	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/tenanttest"
)

// recorded lists the versions tn's version table holds, in the order they
// were applied (goose rolls back in the reverse of this order).
func recorded(t *testing.T, env *tenanttest.Env, tn tenanttest.Tenant) []int64 {
	t.Helper()
	rows, err := env.DB.QueryContext(env.Context(tn), "SELECT version_id FROM goose_db_version WHERE version_id > 0 ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A branch merged late brings migration 2 to tenants that have 1 and 3.
// With goose.WithAllowOutofOrder, up applies it (and a dry run says so);
// without, both refuse with goose's error. Down and down-to undo
// migrations in the reverse of the order they were applied, as goose
// does, and their dry runs name the same ones.
func TestOutOfOrder(t *testing.T) {
	before := fstest.MapFS{"00001_a.sql": table("a"), "00003_c.sql": table("c")}
	merged := fstest.MapFS{"00001_a.sql": table("a"), "00002_b.sql": table("b"), "00003_c.sql": table("c")}
	ooo := migrate.WithGooseOptions(goose.WithAllowOutofOrder(true))
	tests := []struct {
		name string
		// setup brings the tenant from 1 and 3 to this order first
		// (with out-of-order migrations allowed).
		setup   []int64
		op      migrate.Op
		version int64
		opts    []migrate.Option
		want    []int64 // pending in the dry run, then applied, in order
		wantErr string  // instead: the error of both
		after   []int64 // the version table afterwards, in order
	}{
		{name: "up", setup: []int64{1, 3}, op: migrate.Up, opts: []migrate.Option{ooo}, want: []int64{2}, after: []int64{1, 3, 2}},
		{name: "up-to 2", setup: []int64{1, 3}, op: migrate.UpTo, version: 2, opts: []migrate.Option{ooo}, want: []int64{2}, after: []int64{1, 3, 2}},
		{name: "up-to 1", setup: []int64{1, 3}, op: migrate.UpTo, version: 1, opts: []migrate.Option{ooo}, after: []int64{1, 3}},
		{name: "up, out of order not allowed", setup: []int64{1, 3}, op: migrate.Up, wantErr: "missing (out-of-order) migration", after: []int64{1, 3}},
		{name: "up-to 2, out of order not allowed", setup: []int64{1, 3}, op: migrate.UpTo, version: 2, wantErr: "missing (out-of-order) migration", after: []int64{1, 3}},
		{name: "down", setup: []int64{1, 3, 2}, op: migrate.Down, want: []int64{2}, after: []int64{1, 3}},
		{name: "down-to 1", setup: []int64{1, 3, 2}, op: migrate.DownTo, version: 1, want: []int64{2, 3}, after: []int64{1}},
		{name: "down-to 0", setup: []int64{1, 3, 2}, op: migrate.DownTo, version: 0, want: []int64{2, 3, 1}, after: nil},
		// goose stops at the first migration, newest first, at or below
		// the target: 2 here, though 3 was applied before it.
		{name: "down-to 2", setup: []int64{1, 3, 2}, op: migrate.DownTo, version: 2, after: []int64{1, 3, 2}},
	}
	env := tenanttest.New(t, len(tests))
	ctx := context.Background()
	for i, tt := range tests {
		tn := env.Tenants[i]
		t.Run(tt.name, func(t *testing.T) {
			only := migrate.WithTenants(tn.ID)
			m1, err := migrate.New(env.DB, env.Store, before, only)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m1.Run(ctx, migrate.Up, 0); err != nil {
				t.Fatal(err)
			}
			if len(tt.setup) > 2 {
				// goose itself, so that the down cases do not depend on
				// the Migrator's up.
				p, err := goose.NewProvider(goose.DialectPostgres, env.DB, merged, goose.WithAllowOutofOrder(true), goose.WithDisableGlobalRegistry(true))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := p.Up(env.Context(tn)); err != nil {
					t.Fatal(err)
				}
			}
			if got := recorded(t, env, tn); !slices.Equal(got, tt.setup) {
				t.Fatalf("set up: the version table holds %v, want %v", got, tt.setup)
			}

			for _, dry := range []bool{true, false} {
				m, err := migrate.New(env.DB, env.Store, merged, append([]migrate.Option{only, migrate.WithDryRun(dry)}, tt.opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				rep, err := m.Run(ctx, tt.op, tt.version)
				r := rep.Results[0]
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) || len(r.Applied) != 0 {
						t.Errorf("dry run %v: err %v, applied %v; want an error saying %q", dry, err, r.Applied, tt.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("dry run %v: %v", dry, err)
				}
				got := r.Pending
				if !dry {
					got = nil
					for _, a := range r.Applied {
						got = append(got, a.Version)
					}
					if len(r.Pending) != 0 {
						t.Errorf("left pending: %v", r.Pending)
					}
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("dry run %v: %v, want %v", dry, got, tt.want)
				}
			}
			if got := recorded(t, env, tn); !slices.Equal(got, tt.after) {
				t.Errorf("the version table holds %v, want %v", got, tt.after)
			}
		})
	}
}
