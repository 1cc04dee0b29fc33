package migrate_test

import (
	"context"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/tenanttest"
)

// An up and a down that both planned while a third party held the lock
// must act on the database as it is once each gets the lock, not on their
// stale plans: up applies 2, then down rolls back 2 (the latest), leaving
// {1} and table a as migration 1 made it. Acting on the plans rolled back
// 1 under 2 and dropped table a.
func TestUpDownRaceActsOnCurrentState(t *testing.T) {
	env := tenanttest.New(t, 1)
	tn := env.Tenants[0]
	ctx := context.Background()
	fsys := fstest.MapFS{
		"00001_a.sql": table("a"),
		"00002_b.sql": {Data: []byte("-- +goose Up\nALTER TABLE a ADD COLUMN x int;\n-- +goose Down\nALTER TABLE a DROP COLUMN x;\n")},
	}
	m, err := migrate.New(env.DB, env.Store, fsys, migrate.WithTenants(tn.ID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(ctx, migrate.UpTo, 1); err != nil {
		t.Fatal(err)
	}
	other, err := env.DB.Conn(env.Context(tn))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(env.Context(tn), "SELECT pg_advisory_lock($1)", lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}
	type result struct {
		rep *migrate.Report
		err error
	}
	run := func(op migrate.Op) chan result {
		ch := make(chan result, 1)
		go func() {
			rep, err := m.Run(ctx, op, 0)
			ch <- result{rep, err}
		}()
		return ch
	}
	// The up queues for the lock first (goose's locker asks again every
	// second, so the order is only likely; both orders must end right).
	up := run(migrate.Up)
	time.Sleep(300 * time.Millisecond)
	down := run(migrate.Down)
	time.Sleep(300 * time.Millisecond)
	if _, err := other.ExecContext(env.Context(tn), "SELECT pg_advisory_unlock($1)", lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}
	u, d := <-up, <-down
	if u.err != nil || d.err != nil {
		t.Fatalf("up: %v; down: %v", u.err, d.err)
	}
	got := recorded(t, env, tn)
	var hasA bool
	if err := env.DB.QueryRowContext(env.Context(tn), "SELECT to_regclass('a') IS NOT NULL").Scan(&hasA); err != nil {
		t.Fatal(err)
	}
	// Up then down leaves {1}, down then up {1 2}; never a version table
	// that records what the schema lacks.
	switch {
	case slices.Equal(got, []int64{1}) && hasA:
	case slices.Equal(got, []int64{1, 2}) && hasA:
	default:
		t.Errorf("the version table holds %v and table a exists: %v; want {1} or {1 2} with table a", got, hasA)
	}
}

// A version table named through goose's own option is the one the
// Migrator reads and goose writes: the Migrator's (default) name wins, so
// status, a rerun and down see what up applied.
func TestGooseTableNameOption(t *testing.T) {
	env := tenanttest.New(t, 1)
	tn := env.Tenants[0]
	ctx := context.Background()
	fsys := fstest.MapFS{"00001_a.sql": table("a"), "00002_b.sql": table("b")}
	m, err := migrate.New(env.DB, env.Store, fsys, migrate.WithTenants(tn.ID), migrate.WithGooseOptions(goose.WithTableName("custom_versions")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(ctx, migrate.Up, 0); err != nil {
		t.Fatal(err)
	}
	rep, err := m.Run(ctx, migrate.Status, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.After != 2 || len(r.Pending) != 0 {
		t.Errorf("status: version %d, pending %v; want 2, none", r.After, r.Pending)
	}
	if got := recorded(t, env, tn); !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("goose_db_version holds %v, want 1, 2", got)
	}
	rep, err = m.Run(ctx, migrate.Down, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; len(r.Applied) != 1 || r.Applied[0].Version != 2 || r.After != 1 {
		t.Errorf("down: applied %v, version after %d; want 2 rolled back, at 1", r.Applied, r.After)
	}
}
