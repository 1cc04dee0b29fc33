package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/pressly/goose/v3"
)

// migrationsDir is the directory that `//go:embed migrations/*.sql`
// keeps in its embed.FS, and that a project's root usually holds.
const migrationsDir = "migrations"

// migrationsRoot returns the fs.FS that holds the migrations: fsys, or,
// when fsys's root holds no migration file but its "migrations"
// directory does, that directory. So the embed.FS of
// `//go:embed migrations/*.sql`, whose files are under "migrations/",
// works as it is, as does os.DirFS of a project's root.
func migrationsRoot(fsys fs.FS) (fs.FS, error) {
	if has, err := holdsMigrations(fsys, "."); err != nil || has {
		return fsys, err
	}
	if has, _ := holdsMigrations(fsys, migrationsDir); !has {
		return fsys, nil
	}
	sub, err := fs.Sub(fsys, migrationsDir)
	if err != nil {
		return nil, fmt.Errorf("migrate: the migrations' directory %q: %w", migrationsDir, err)
	}
	return sub, nil
}

// isMigrationFile reports whether goose takes a file of this name for a
// migration: NUMBER_name.sql or NUMBER_name.go, not a _test.go file.
func isMigrationFile(name string) bool {
	if strings.HasSuffix(name, "_test.go") || (path.Ext(name) != ".sql" && path.Ext(name) != ".go") {
		return false
	}
	_, err := goose.NumericComponent(name)
	return err == nil
}

// holdsMigrations reports whether the directory dir of fsys holds a
// migration file. A missing directory holds none.
func holdsMigrations(fsys fs.FS, dir string) (bool, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) && dir != "." {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("migrate: read the migrations' directory: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() && isMigrationFile(e.Name()) {
			return true, nil
		}
	}
	return false, nil
}

// Bounds of the search noMigrations makes for directories that hold
// migrations, so that an os.DirFS("/") given by mistake costs little.
const (
	searchDepth   = 4
	searchEntries = 2000
	searchFound   = 3
	dirsNamed     = 8
)

// noMigrations returns the error of a fsys that holds no migrations
// (err, which wraps goose.ErrNoMigrations), saying what to pass instead:
// fs.Sub of the directories below that hold migrations, if any, and the
// directories at the root.
func noMigrations(fsys fs.FS, err error) error {
	var dirs, found []string
	seen := 0
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return nil
		}
		seen++
		if seen > searchEntries || len(found) >= searchFound {
			return fs.SkipAll
		}
		if d.IsDir() {
			if !strings.Contains(p, "/") {
				dirs = append(dirs, p)
			}
			if strings.Count(p, "/")+1 >= searchDepth || strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if dir := path.Dir(p); dir != "." && isMigrationFile(d.Name()) && !slices.Contains(found, dir) {
			found = append(found, dir)
		}
		return nil
	})
	var b strings.Builder
	b.WriteString("migrate: no migrations found: the root of the migrations' fs.FS holds no goose migration file (NUMBER_name.sql or NUMBER_name.go)")
	switch {
	case len(found) > 0:
		quoted := make([]string, len(found))
		subs := make([]string, len(found))
		for i, f := range found {
			quoted[i] = strconv.Quote(f)
			subs[i] = "fs.Sub(fsys, " + quoted[i] + ")"
		}
		fmt.Fprintf(&b, "; they are in %s (an embed.FS keeps the directories of its //go:embed patterns): pass %s",
			strings.Join(quoted, ", "), strings.Join(subs, " or "))
	case len(dirs) > 0:
		b.WriteString("; it holds the directories ")
		for i, d := range dirs[:min(len(dirs), dirsNamed)] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(d))
		}
		if len(dirs) > dirsNamed {
			fmt.Fprintf(&b, " and %d more", len(dirs)-dirsNamed)
		}
		b.WriteString(": if the migrations are in one, pass fs.Sub(fsys, \"DIR\")")
	}
	return &noMigrationsError{msg: b.String(), err: err}
}

type noMigrationsError struct {
	msg string
	err error
}

func (e *noMigrationsError) Error() string { return e.msg }
func (e *noMigrationsError) Unwrap() error { return e.err }
