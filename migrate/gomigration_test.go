package migrate_test

import (
	"context"
	"database/sql"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/tenanttest"
)

// table is a migration that creates (and, down, drops) one table.
func table(name string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE " + name + " (id int);\n-- +goose Down\nDROP TABLE " + name + ";\n")}
}

// Go migrations given with goose.WithGoMigrations are one set of
// *goose.Migration values shared by every tenant's goose Provider. With
// their .go files in the fs beside the SQL ones, goose writes each file's
// path into its Migration when it builds a Provider: that must not race
// with the other tenants building theirs or running the migrations (run
// with -race). Two Migrators share them too, as a create hook and a
// rollout in one process would.
func TestGoMigrationsSharedAcrossTenants(t *testing.T) {
	env := tenanttest.New(t, 8)
	fsys := fstest.MapFS{
		"00001_a.sql":   table("a"),
		"00002_b.go":    {Data: []byte("package migrations\n")},
		"00003_c.sql":   table("c"),
		"helpers.go":    {Data: []byte("package migrations\n")}, // no version: not a migration
		"00002_test.go": {Data: []byte("package migrations\n")},
	}
	step := func(q string) *goose.GoFunc {
		return &goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
			time.Sleep(5 * time.Millisecond) // so that tenants overlap
			_, err := tx.ExecContext(ctx, q)
			return err
		}}
	}
	gm := goose.NewGoMigration(2, step("CREATE TABLE b (id int)"), step("DROP TABLE b"))
	goMigrations := migrate.WithGooseOptions(goose.WithGoMigrations(gm))
	var ms []*migrate.Migrator
	for range 2 {
		m, err := migrate.New(env.DB, env.Store, fsys, migrate.WithConcurrency(3), goMigrations)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	if src := ms[0].Sources(); len(src) != 3 || src[1].Type != goose.TypeGo || src[1].Path != "00002_b.go" {
		t.Errorf("sources %+v: want the Go migration second, with its file", src)
	}
	done := make(chan *migrate.Report, 2)
	for _, m := range ms {
		go func() {
			rep, err := m.Run(context.Background(), migrate.Up, 0)
			if err != nil {
				t.Error(err)
			}
			done <- rep
		}()
	}
	applied := 0
	for range ms {
		for _, r := range (<-done).Results {
			applied += len(r.Applied)
			for _, a := range r.Applied {
				if a.Version == 2 && a.Path != "00002_b.go" {
					t.Errorf("%s: the Go migration is reported as %q, want its file", r.Tenant, a.Path)
				}
			}
		}
	}
	if applied != 3*len(env.Tenants) {
		t.Errorf("%d migrations applied, want 3 per tenant (%d)", applied, 3*len(env.Tenants))
	}

	// A .go file for a version no Go migration was given for is refused,
	// as goose refuses it.
	fsys["00004_d.go"] = &fstest.MapFile{Data: []byte("package migrations\n")}
	if _, err := migrate.New(env.DB, env.Store, fsys, goMigrations); err == nil {
		t.Error("New accepted a .go migration file with no Go migration registered for it")
	}
}

// Migrators built at the same time on shared Go migrations (a create hook
// and a rollout starting together) do not race either (run with -race).
func TestGoMigrationsSharedAcrossNew(t *testing.T) {
	fsys := fstest.MapFS{"00001_a.sql": table("a"), "00002_b.go": {Data: []byte("package migrations\n")}}
	noop := &goose.GoFunc{RunTx: func(context.Context, *sql.Tx) error { return nil }}
	goMigrations := migrate.WithGooseOptions(goose.WithGoMigrations(goose.NewGoMigration(2, noop, noop)))
	env := tenanttest.New(t, 1)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := migrate.New(env.DB, env.Store, fsys, goMigrations)
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
