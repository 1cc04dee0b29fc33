package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// The ready-made create hook migrates a new tenant before its first query
// runs, in every process that receives the create (here two *sql.DBs on
// one store), and the migrations are applied once.
// hookDB is the database of the hook tests, this run's own.
var hookDB = testenv.Unique("tsql_mig_hook")

func TestCreateHookMigratesBeforeFirstQuery(t *testing.T) {
	testenv.EnsureDatabases(t, hookDB)
	testenv.ResetSchema(t, hookDB)
	s := store.NewMemory()
	open := func() *sql.DB {
		reg := hooks.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
		c, err := driver.NewConnector(s, driver.WithHooks(reg))
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(c)
		t.Cleanup(func() { db.Close() })
		h, err := hooks.Migrate(db, migrations)
		if err != nil {
			t.Fatal(err)
		}
		reg.Subscribe(hooks.PostCreate, h)
		return db
	}
	db1, db2 := open(), open()
	id := "hook-mig.test"
	if _, err := s.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, hookDB, "application_name", id)}}); err != nil {
		t.Fatal(err)
	}
	ctx := tenantctx.WithTenant(context.Background(), id)
	// No waiting in the test: the first query waits for the hook.
	for _, db := range []*sql.DB{db1, db2} {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM visit").Scan(&n); err != nil {
			t.Fatalf("first query after the create: %v", err)
		}
	}
	e := &env{t: t, dbOf: map[string]string{id: hookDB}}
	if got := e.serverVersions(id); !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
		t.Fatalf("the database records %v; each migration must be applied once", got)
	}
}

// A create hook whose migrations fail leaves the tenant not ready, with
// the cause.
func TestCreateHookFailure(t *testing.T) {
	testenv.EnsureDatabases(t, hookDB)
	testenv.ResetSchema(t, hookDB)
	s := store.NewMemory()
	reg := hooks.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	c, err := driver.NewConnector(s, driver.WithHooks(reg))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	broken := fstest.MapFS{
		"00001_ok.sql":  {Data: []byte("-- +goose Up\nCREATE TABLE ok (x int);\n")},
		"00002_bad.sql": {Data: []byte("-- +goose Up\nCREATE TABLE nope (x no_such_type);\n")},
	}
	h, err := hooks.Migrate(db, broken)
	if err != nil {
		t.Fatal(err)
	}
	reg.Subscribe(hooks.PostCreate, h)
	id := "hook-broken.test"
	if _, err := s.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, hookDB)}}); err != nil {
		t.Fatal(err)
	}
	_, err = db.ExecContext(tenantctx.WithTenant(context.Background(), id), "SELECT 1")
	if !errors.Is(err, driver.ErrTenantNotReady) || !contains(err.Error(), "no_such_type", "version:2") {
		t.Fatalf("query after failed migrations: %v", err)
	}
	if _, err := hooks.Migrate(db, fstest.MapFS{}); err == nil {
		t.Error("Migrate with no migrations: no error")
	}
}

// hooks.Migrate takes the README's `//go:embed migrations/*.sql` as it is
// (its files are under "migrations/"), and otherwise fails saying what to
// pass.
func TestCreateHookEmbedLayout(t *testing.T) {
	up := &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE embedded (id int);\n")}
	tests := []struct {
		name   string
		fsys   fstest.MapFS
		errHas string // hooks.Migrate's error, "" if it succeeds
	}{
		{"go:embed migrations/*.sql", fstest.MapFS{"migrations/00001_embedded.sql": up}, ""},
		{"go:embed sql/migrations/*.sql", fstest.MapFS{"sql/migrations/00001_embedded.sql": up}, `pass fs.Sub(fsys, "sql/migrations")`},
		{"nothing", fstest.MapFS{}, "no migrations found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := store.NewMemory()
			reg := hooks.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
			c, err := driver.NewConnector(s, driver.WithHooks(reg))
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(c)
			defer db.Close()
			h, err := hooks.Migrate(db, tt.fsys)
			if tt.errHas != "" {
				if err == nil || !contains(err.Error(), tt.errHas) {
					t.Fatalf("hooks.Migrate: %v, want an error that says %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			testenv.EnsureDatabases(t, hookDB)
			testenv.ResetSchema(t, hookDB)
			reg.Subscribe(hooks.PostCreate, h)
			id := "hook-embed.test"
			if _, err := s.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, hookDB)}}); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.QueryRowContext(tenantctx.WithTenant(context.Background(), id), "SELECT count(*) FROM embedded").Scan(&n); err != nil {
				t.Fatalf("first query after the create: %v", err)
			}
		})
	}
}
