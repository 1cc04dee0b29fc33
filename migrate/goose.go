package migrate

import (
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// provider returns a new goose Provider for the migrations, for one
// tenant's run. It reads the migrations through goFilesHidden, so that it
// writes nothing shared (see checkSources).
func (m *Migrator) provider() (*goose.Provider, error) {
	return m.newProvider(goFilesHidden{m.fsys})
}

func (m *Migrator) newProvider(fsys fs.FS) (*goose.Provider, error) {
	// A locker per provider: it looks stateless, but its retry budget
	// (go-retry's WithMaxRetries) counts attempts for its whole life, so a
	// shared one would run out after enough waits across tenants.
	locker, err := lock.NewPostgresSessionLocker(
		// Check every second instead of goose's five, for up to the timeout.
		lock.WithLockTimeout(1, uint64(max(m.cfg.lockTimeout/time.Second, 1))),
	)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	opts := []goose.ProviderOption{
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(slog.New(slog.DiscardHandler)),
	}
	if m.cfg.table != "" {
		opts = append(opts, goose.WithTableName(m.cfg.table))
	}
	opts = append(opts, m.cfg.gooseOpts...)
	p, err := goose.NewProvider(goose.DialectPostgres, m.db, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return p, nil
}

// sourcePaths serializes the goose.NewProvider calls that may record .go
// files' paths in shared *goose.Migration values (see checkSources).
var sourcePaths sync.Mutex

// checkSources checks the migrations and lists them.
//
// When the fs holds the .go file of a Go migration given with
// goose.WithGoMigrations, goose.NewProvider writes the file's path into
// that *goose.Migration, which every tenant's Provider shares (and so may
// other Migrators): a write racing with the other tenants' Providers
// reading it. So the per-tenant Providers never see the .go files, and
// goose sees them here, once, to check them (a .go file with no Go
// migration for its version is an error) and record their paths; not at
// all when an earlier New has recorded them already, as a second
// Migrator on the same migrations would find.
func (m *Migrator) checkSources() ([]*goose.Source, error) {
	p, err := m.provider()
	if err == nil {
		var unchecked bool
		if unchecked, err = m.goFilesUnchecked(p.ListSources()); err == nil && !unchecked {
			return p.ListSources(), nil
		}
	}
	// Let goose check the .go files, or say in its own words what is
	// wrong with the migrations.
	sourcePaths.Lock()
	defer sourcePaths.Unlock()
	p, err = m.newProvider(m.fsys)
	if err != nil {
		return nil, err
	}
	return p.ListSources(), nil
}

// goFilesUnchecked reports whether the fs holds a .go migration file that
// is not the recorded source of a registered Go migration.
func (m *Migrator) goFilesUnchecked(sources []*goose.Source) (bool, error) {
	files, err := fs.Glob(m.fsys, "*.go")
	if err != nil {
		return false, fmt.Errorf("migrate: list the .go files: %w", err)
	}
	for _, f := range files {
		v, err := goose.NumericComponent(path.Base(f))
		if strings.HasSuffix(f, "_test.go") || err != nil {
			continue // goose ignores them too
		}
		if !slices.ContainsFunc(sources, func(s *goose.Source) bool {
			return s.Type == goose.TypeGo && s.Version == v && s.Path == f
		}) {
			return true, nil
		}
	}
	return false, nil
}

// goFilesHidden is a migrations fs.FS without its .go files, for goose,
// which finds migrations with fs.Glob (see checkSources).
type goFilesHidden struct{ fs.FS }

func isGoFile(name string) bool { return strings.HasSuffix(name, ".go") }

func (f goFilesHidden) Glob(pattern string) ([]string, error) {
	names, err := fs.Glob(f.FS, pattern)
	return slices.DeleteFunc(names, isGoFile), err
}

func (f goFilesHidden) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(f.FS, name)
	return slices.DeleteFunc(entries, func(e fs.DirEntry) bool { return isGoFile(e.Name()) }), err
}
