package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/tenanttest"
)

// run runs op for tn alone, through Run or through Tenant (the create
// hook's way).
type runner func(ctx context.Context, m *migrate.Migrator, tn tenanttest.Tenant) migrate.TenantResult

var runners = []struct {
	name string
	run  runner
}{
	{"Run", func(ctx context.Context, m *migrate.Migrator, tn tenanttest.Tenant) migrate.TenantResult {
		// Run's error is the tenant's, which the result carries: a
		// disagreement is reported through the result.
		rep, err := m.Run(ctx, migrate.Up, 0)
		r := rep.Results[0]
		if (err == nil) != (r.Err == nil) || err != nil && !errors.Is(err, r.Err) {
			r.Err = fmt.Errorf("Run returned %v, the tenant's result says %v", err, r.Err)
		}
		return r
	}},
	{"Tenant", func(ctx context.Context, m *migrate.Migrator, tn tenanttest.Tenant) migrate.TenantResult {
		return m.Tenant(ctx, tn.ID, migrate.Up, 0)
	}},
}

// When the context ends while a tenant migrates, under the lock, its
// migrations run to their end (their context is not canceled): one cut in
// the middle would not be rolled back without a transaction, and the
// version table the database answers with must say all of them applied.
func TestInterruptWhileMigrating(t *testing.T) {
	env := tenanttest.New(t, len(runners))
	for i, rn := range runners {
		tn := env.Tenants[i]
		t.Run(rn.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Migration 2 is in flight when the run is canceled (Ctrl-C).
			up := &goose.GoFunc{RunTx: func(mctx context.Context, tx *sql.Tx) error {
				cancel()
				time.Sleep(50 * time.Millisecond)
				if err := mctx.Err(); err != nil {
					return errors.New("the migration in flight was canceled with the run")
				}
				_, err := tx.ExecContext(mctx, "CREATE TABLE b (id int)")
				return err
			}}
			fsys := fstest.MapFS{"00001_a.sql": table("a"), "00002_b.go": {Data: []byte("package m\n")}, "00003_c.sql": table("c")}
			m, err := migrate.New(env.DB, env.Store, fsys, migrate.WithTenants(tn.ID),
				migrate.WithGooseOptions(goose.WithGoMigrations(goose.NewGoMigration(2, up, &goose.GoFunc{Mode: goose.TransactionEnabled}))))
			if err != nil {
				t.Fatal(err)
			}
			r := rn.run(ctx, m, tn)
			var applied []int64
			for _, a := range r.Applied {
				applied = append(applied, a.Version)
			}
			if r.Err != nil || !slices.Equal(applied, []int64{1, 2, 3}) || len(r.Pending) != 0 || r.After != 3 {
				t.Errorf("err %v, applied %v, pending %v, after %d; want 1, 2 and 3 applied, no error", r.Err, applied, r.Pending, r.After)
			}
			if got := recorded(t, env, tn); !slices.Equal(got, []int64{1, 2, 3}) {
				t.Errorf("the version table holds %v, want 1, 2, 3", got)
			}
		})
	}
}

// A tenant waiting for another run's lock on its database stops waiting
// when the context ends, applies nothing, and leaves no lock behind.
func TestInterruptWaitingForLock(t *testing.T) {
	env := tenanttest.New(t, len(runners))
	for i, rn := range runners {
		tn := env.Tenants[i]
		t.Run(rn.name, func(t *testing.T) {
			// Another run holds goose's lock on the tenant's database.
			other, err := env.DB.Conn(env.Context(tn))
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			if _, err := other.ExecContext(env.Context(tn), "SELECT pg_advisory_lock($1)", lock.DefaultLockID); err != nil {
				t.Fatal(err)
			}
			m, err := migrate.New(env.DB, env.Store, migrations, migrate.WithTenants(tn.ID), migrate.WithLockTimeout(20*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*time.Millisecond, cancel)
			start := time.Now()
			r := rn.run(ctx, m, tn)
			if took := time.Since(start); !errors.Is(r.Err, context.Canceled) || len(r.Applied) != 0 || took > 5*time.Second {
				t.Errorf("after %v: err %v, applied %v; want it interrupted (context.Canceled) at once, with nothing applied", took.Round(time.Millisecond), r.Err, r.Applied)
			}
			if _, err := other.ExecContext(env.Context(tn), "SELECT pg_advisory_unlock($1)", lock.DefaultLockID); err != nil {
				t.Fatal(err)
			}
			// Nobody holds the lock now: a new run gets it at once.
			m, err = migrate.New(env.DB, env.Store, migrations, migrate.WithTenants(tn.ID), migrate.WithLockTimeout(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if r := rn.run(context.Background(), m, tn); r.Err != nil || len(r.Applied) != 5 {
				t.Errorf("the run after: err %v, applied %d, want all 5", r.Err, len(r.Applied))
			}
		})
	}
}
