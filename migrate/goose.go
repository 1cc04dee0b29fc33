package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
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
	sourcePaths.RLock()
	defer sourcePaths.RUnlock()
	return m.newProvider(goFilesHidden{m.fsys})
}

func (m *Migrator) newProvider(fsys fs.FS) (*goose.Provider, error) {
	opts := []goose.ProviderOption{
		goose.WithSessionLocker(&sessionLocker{timeout: m.cfg.lockTimeout, qualified: strings.Contains(m.table, ".")}),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(slog.New(slog.DiscardHandler)),
	}
	if m.cfg.table != "" {
		opts = append(opts, goose.WithTableName(m.cfg.table))
	}
	opts = append(opts, m.cfg.gooseOpts...)
	// Last, so that it wins over a goose.WithTableName among the goose
	// options: the Migrator reads the version table itself, and must read
	// the one goose writes.
	opts = append(opts, goose.WithTableName(m.table))
	p, err := goose.NewProvider(goose.DialectPostgres, m.db, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return p, nil
}

// sourcePaths guards the *goose.Migration values shared by Providers:
// goose.NewProvider reads them, and may record a .go file's path in them
// (see checkSources), which it does only under the write lock.
var sourcePaths sync.RWMutex

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
	sourcePaths.Lock()
	defer sourcePaths.Unlock()
	p, err := m.newProvider(goFilesHidden{m.fsys})
	if err == nil {
		var unchecked bool
		if unchecked, err = m.goFilesUnchecked(p.ListSources()); err == nil && !unchecked {
			return p.ListSources(), nil
		}
	}
	// Let goose check the .go files, or say in its own words what is
	// wrong with the migrations.
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

// waitKey holds, in the context goose runs a migration with (detached),
// the run's own context, which ends the wait for the lock.
type waitKey struct{}

// detach returns a context with ctx's values that is never canceled, for
// goose to apply the tenant's migrations with: a migration cut in the middle is
// rolled back by its transaction, but one without a transaction is not.
// Waiting for the lock, which can take minutes, still ends with ctx.
func detach(ctx context.Context) context.Context {
	return context.WithValue(context.WithoutCancel(ctx), waitKey{}, ctx)
}

// lockPoll is how often a tenant asks again for a lock another run holds
// (goose's own locker asks every five seconds).
const lockPoll = time.Second

// SchemaLockID returns the advisory lock id a Migrator takes on a tenant
// whose goose version table is in schema (its search_path's first
// schema), other than public: a stable 64-bit hash of the name (FNV-1a),
// so that tenants of one database, each in its own schema, do not wait for
// each other, and every run on the same schema, from any process, takes
// the same lock. Tenants whose version table is in public (a database of
// their own, or row-level-security tenants sharing a database's tables)
// take goose's own lock.DefaultLockID, as goose run by other tools does.
func SchemaLockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("tenantsql migrate schema\x00"))
	h.Write([]byte(schema))
	id := int64(h.Sum64())
	if id == lock.DefaultLockID {
		id++ // never goose's database-wide lock
	}
	return id
}

// sessionLocker is goose's PostgreSQL session lock (the same advisory
// lock, so it also excludes goose run by other tools), except for how it
// waits: on the run's context rather than the detached one goose passes
// (see detach), and for at most timeout per wait, where goose's locker
// counts its attempts over its whole life; and for which lock it takes:
// the one of the schema goose's version table is in (lockIDOf).
//
// A Provider, and so a sessionLocker, serves one tenant's run; goose locks
// and unlocks one session at a time with it, so held needs no guard beyond
// the mutex that keeps the race detector informed.
type sessionLocker struct {
	timeout   time.Duration
	qualified bool // the version table's name has its schema

	mu   sync.Mutex
	held int64
}

var _ lock.SessionLocker = (*sessionLocker)(nil)

// lockIDOf returns the lock id for the session's tenant: goose's
// database-wide id when the version table is in public or named with its
// schema (WithTableName("ops.goose_db_version"): one table per database),
// else SchemaLockID of the schema goose's unqualified statements create
// and use it in, the session's current_schema(). It asks the server, so
// that every run agrees on the lock of a version table however it was
// started (Run, Tenant, a create hook) and whatever the driver does with
// the tenant's settings.
func (l *sessionLocker) lockIDOf(ctx context.Context, conn *sql.Conn) (int64, error) {
	if l.qualified {
		return lock.DefaultLockID, nil
	}
	var schema sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return 0, fmt.Errorf("find the tenant's schema for the migration lock: %w", err)
	}
	if !schema.Valid {
		return 0, errNoSchema
	}
	if schema.String == "public" {
		return lock.DefaultLockID, nil
	}
	return SchemaLockID(schema.String), nil
}

// errNoSchema is a session whose search_path names no existing schema.
var errNoSchema = errors.New("none of the schemas of the tenant's search_path exists (create it first, for example with hooks.Schemas)")

func (l *sessionLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	wait, ok := ctx.Value(waitKey{}).(context.Context)
	if !ok {
		wait = ctx
	}
	id, err := l.lockIDOf(ctx, conn)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(l.timeout)
	for {
		// On the detached context: pg_try_advisory_lock does not block,
		// and a query cut short might leave the lock taken without us
		// knowing.
		var locked bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", id).Scan(&locked); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if locked {
			l.mu.Lock()
			l.held = id
			l.mu.Unlock()
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("another run has held the migration lock on this tenant's schema or database for %v (WithLockTimeout)", l.timeout)
		}
		t := time.NewTimer(min(lockPoll, left))
		select {
		case <-wait.Done():
			t.Stop()
			return fmt.Errorf("interrupted waiting for another run's migration lock: %w", wait.Err())
		case <-t.C:
		}
	}
}

func (l *sessionLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	l.mu.Lock()
	id := l.held
	l.mu.Unlock()
	// goose's, which retries: a lock left on a pooled session would hold
	// up every later run on this schema or database.
	gl, err := lock.NewPostgresSessionLocker(lock.WithLockID(id))
	if err != nil {
		return err
	}
	if err := gl.SessionUnlock(ctx, conn); err != nil {
		return fmt.Errorf("release the migration lock: %w", err)
	}
	return nil
}
