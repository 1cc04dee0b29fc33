package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/pressly/goose/v3"
)

// migrationName is what migrate create accepts as NAME: goose turns it
// into the file name (snake_case) and, for a Go migration, into function
// names (CamelCase), so it must read as both; a leading digit would also
// run into the version in front of it.
var migrationName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,99}$`)

// errBadMigrationName is the error of a NAME that migrationName refuses.
var errBadMigrationName = errors.New("not a migration name")

// gooseCreate serializes the uses of goose's create: it reads a package
// variable (SetSequential) and logs through goose's package logger.
var gooseCreate sync.Mutex

// createMigration writes a new migration file in dir with goose's own
// create (goose.CreateWithTemplate), so that the file is named, versioned
// and laid out exactly as "goose create" would: a timestamp version
// (20060102150405) unless sequential, then the next number after the
// directory's last migration. It returns the file's path.
func createMigration(dir, name, kind string, sequential bool) (string, error) {
	if !migrationName.MatchString(name) {
		return "", fmt.Errorf("%w: %q: use 1 to 100 letters, digits, '_' and '-', starting with a letter (for example add_users_table)", errBadMigrationName, name)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("migrations directory %s does not exist: create it, or name another with --dir", dir)
	}
	gooseCreate.Lock()
	defer gooseCreate.Unlock()
	goose.SetSequential(sequential)
	defer goose.SetSequential(false)
	rec := &createdLogger{}
	goose.SetLogger(rec)
	defer goose.SetLogger(goose.NopLogger())
	if err := goose.CreateWithTemplate(nil, dir, nil, name, kind); err != nil {
		return "", fmt.Errorf("create a migration in %s: %w", dir, err)
	}
	if rec.path == "" {
		return "", errors.New("goose created a migration but did not say which file")
	}
	// goose's timestamps have a resolution of a second: two creates in
	// one second give two migrations of one version, which goose then
	// refuses to run. Better to fail now than at the next migrate.
	if other := sameVersion(dir, rec.path); other != "" {
		os.Remove(rec.path)
		return "", fmt.Errorf("%s has the version the new migration would have (created in the same second?): nothing created; run the command again", other)
	}
	return rec.path, nil
}

// sameVersion returns another migration file of dir with created's
// version, or "".
func sameVersion(dir, created string) string {
	v, err := goose.NumericComponent(filepath.Base(created))
	if err != nil {
		return ""
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name := e.Name()
		if name == filepath.Base(created) || !(strings.HasSuffix(name, ".sql") || strings.HasSuffix(name, ".go")) || strings.HasSuffix(name, "_test.go") {
			continue
		}
		if ov, err := goose.NumericComponent(name); err == nil && ov == v {
			return filepath.Join(dir, name)
		}
	}
	return ""
}

// createdLogger records the file goose's create reports.
type createdLogger struct{ path string }

func (l *createdLogger) Printf(format string, v ...any) {
	if strings.HasPrefix(format, "Created new file: ") && len(v) == 1 {
		l.path, _ = v[0].(string)
	}
}

func (l *createdLogger) Fatalf(format string, v ...any) {}

// migrationVersion is the version goose reads from path's name.
func migrationVersion(path string) string {
	v, err := goose.NumericComponent(filepath.Base(path))
	if err != nil {
		return "?"
	}
	return fmt.Sprint(v)
}
