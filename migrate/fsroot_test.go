package migrate_test

import (
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pressly/goose/v3"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/store"
)

// New finds the migrations where `//go:embed migrations/*.sql` puts
// them (under "migrations/"), and otherwise says what to pass. It needs
// no server: New reads the migrations and nothing else.
func TestNewFindsTheMigrationsDirectory(t *testing.T) {
	c, err := driver.NewConnector(store.NewMemory(), driver.WithHooks(nil))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	up := &fstest.MapFile{Data: []byte("-- +goose Up\nSELECT 1;\n")}
	tests := []struct {
		name     string
		fsys     fs.FS
		versions []int64  // the migrations New finds
		errHas   []string // or what its error says
	}{
		{name: "files at the root", fsys: fstest.MapFS{"00001_a.sql": up, "00002_b.sql": up}, versions: []int64{1, 2}},
		{name: "go:embed migrations/*.sql", fsys: fstest.MapFS{"migrations/00001_a.sql": up, "migrations/00002_b.sql": up}, versions: []int64{1, 2}},
		{name: "os.DirFS of a project root", fsys: os.DirFS("../testdata"), versions: []int64{1, 2, 3, 4, 5}},
		{name: "root files win over migrations/", fsys: fstest.MapFS{"00007_root.sql": up, "migrations/00001_a.sql": up}, versions: []int64{7}},
		{name: "migrations/ beside other directories", fsys: fstest.MapFS{"migrations/00003_a.sql": up, "seeds/x.sql": up, "README.md": {}}, versions: []int64{3}},
		{
			name:   "go:embed db/migrations/*.sql",
			fsys:   fstest.MapFS{"db/migrations/00001_a.sql": up},
			errHas: []string{`no migrations found`, `they are in "db/migrations"`, `pass fs.Sub(fsys, "db/migrations")`},
		},
		{
			name:   "two directories with migrations",
			fsys:   fstest.MapFS{"a/00001_a.sql": up, "b/00001_b.sql": up},
			errHas: []string{`they are in "a", "b"`, `pass fs.Sub(fsys, "a") or fs.Sub(fsys, "b")`},
		},
		{
			name:   "directories without migrations",
			fsys:   fstest.MapFS{"migrations/create.sql": up, "docs/x.md": {}},
			errHas: []string{`holds no goose migration file (NUMBER_name.sql or NUMBER_name.go)`, `it holds the directories "docs", "migrations"`, `fs.Sub(fsys, "DIR")`},
		},
		{
			name:   "empty",
			fsys:   fstest.MapFS{},
			errHas: []string{`no migrations found: the root of the migrations' fs.FS holds no goose migration file`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := migrate.New(db, nil, tt.fsys)
			if tt.errHas != nil {
				if err == nil {
					t.Fatalf("New: no error, found %d migrations", len(m.Sources()))
				}
				t.Log(err)
				if !errors.Is(err, goose.ErrNoMigrations) {
					t.Errorf("error %q does not wrap goose.ErrNoMigrations", err)
				}
				for _, s := range tt.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			var got []int64
			for _, s := range m.Sources() {
				got = append(got, s.Version)
			}
			if !slices.Equal(got, tt.versions) {
				t.Errorf("migrations %v, want %v", got, tt.versions)
			}
		})
	}
}
