package tenanttest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// Env is a set of throwaway tenants, each with its own database, and a
// tenantsql *sql.DB on them. New makes one; it is gone when the test ends.
type Env struct {
	// DB is a tenantsql *sql.DB: each query runs on the database of the
	// tenant in its context (Context, Run).
	DB *sql.DB
	// Store holds the tenants. Tenants added to it are usable through DB
	// at once, but New creates no database for them.
	Store *store.Memory
	// Tenants are the tenants New made, in order.
	Tenants []Tenant
}

// A Tenant is one of an Env's tenants.
type Tenant struct {
	// ID is the tenant id, such as "3f9c2a7e5b1d0c84-0.tenanttest".
	ID string
	// Database is the name of the tenant's database.
	Database string
	// URL is the tenant's POSTGRES_URL in the store. It carries
	// application_name=ID, so the tenant's sessions are easy to find in
	// pg_stat_activity.
	URL string
}

// How many CREATE or DROP DATABASE statements run at once: each copies or
// removes a directory, so more mostly wait for the disk.
const parallelDDL = 4

// Bounds on the server work of New and of the cleanup; a test's own
// deadline cuts New shorter.
const (
	pingTimeout  = 5 * time.Second
	setupTimeout = 2 * time.Minute
	dropTimeout  = time.Minute
)

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// New creates n tenants, each with a new, empty database on the test
// server, registers them in a memory store, opens a tenantsql *sql.DB on
// them, and, when the test ends, closes the *sql.DB and drops the
// databases (DROP DATABASE ... WITH (FORCE), so sessions left open do not
// keep them).
//
// Databases are named <prefix>_<random hex>_<i> and tenants
// <random hex>-<i>.tenanttest, with the same random part, so tests running
// at the same time, in one process or several, never share a database.
//
// If the server cannot be reached the test is skipped, unless the CI
// environment variable is set: then it fails, so that CI never passes by
// skipping. Any other problem fails the test.
func New(t testing.TB, n int, opts ...Option) *Env {
	t.Helper()
	cfg := config{prefix: DefaultPrefix}
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.postgresURL == "" {
		cfg.postgresURL = os.Getenv(EnvPostgresURL)
	}
	if cfg.postgresURL == "" {
		cfg.postgresURL = DefaultPostgresURL
	}
	if n < 0 {
		t.Fatalf("tenanttest.New: %d tenants", n)
	}
	base, err := parseServerURL(cfg.postgresURL)
	if err != nil {
		t.Fatalf("tenanttest.New: %v", err)
	}
	token := randomHex()
	// The longest name has the most digits in its index.
	longest := fmt.Sprintf("%s_%s_%d", cfg.prefix, token, max(n-1, 0))
	switch {
	case !prefixRE.MatchString(cfg.prefix):
		t.Fatalf("tenanttest.New: WithPrefix(%q): want lower-case letters, digits and underscores, starting with a letter", cfg.prefix)
	case len(longest) > 63:
		t.Fatalf("tenanttest.New: WithPrefix(%q): too long: database names such as %s exceed PostgreSQL's 63 bytes", cfg.prefix, longest)
	}

	admin := openAdmin(t, cfg.postgresURL)

	e := &Env{Store: store.NewMemory()}
	for i := range n {
		name := fmt.Sprintf("%s_%s_%d", cfg.prefix, token, i)
		id := fmt.Sprintf("%s-%d.tenanttest", token, i)
		e.Tenants = append(e.Tenants, Tenant{ID: id, Database: name, URL: tenantURL(base, name, id)})
	}

	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()

	// Registered before any database exists, so that whatever was created
	// is dropped even if New fails halfway.
	var (
		ownedMu sync.Mutex
		owned   []string
	)
	t.Cleanup(func() {
		ownedMu.Lock()
		names := owned
		ownedMu.Unlock()
		if cfg.keep {
			for _, tn := range e.Tenants {
				if slices.Contains(names, tn.Database) {
					t.Logf("tenanttest: kept database %s of tenant %s: %s", tn.Database, tn.ID, store.RedactURL(tn.URL))
				}
			}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
		defer cancel()
		err := forEach(names, func(name string) error {
			if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(name)+" WITH (FORCE)"); err != nil {
				return fmt.Errorf("drop database %s: %w", name, err)
			}
			return nil
		})
		if err != nil {
			t.Errorf("tenanttest: cleanup: %v", err)
		}
	})
	err = forEach(databases(e.Tenants), func(name string) error {
		_, err := admin.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(name))
		if err == nil || !isDuplicate(err) {
			// Also after an error: a statement cut short by the
			// deadline may have created the database all the same.
			// The drop is IF EXISTS.
			ownedMu.Lock()
			owned = append(owned, name)
			ownedMu.Unlock()
		}
		if err != nil {
			return fmt.Errorf("create database %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("tenanttest.New: %v", err)
	}

	for _, tn := range e.Tenants {
		if _, err := e.Store.Create(ctx, store.Tenant{ID: tn.ID, DeployInfo: map[string]string{store.KeyPostgresURL: tn.URL}}); err != nil {
			t.Fatalf("tenanttest.New: add tenant to the store: %v", err)
		}
	}
	t.Cleanup(func() { e.Store.Close() })

	// The connector runs no hooks (unless WithDriverOptions adds some),
	// so the tenants are ready at once.
	c, err := driver.NewConnector(e.Store, append([]driver.Option{driver.WithHooks(nil)}, cfg.driverOpts...)...)
	if err != nil {
		t.Fatalf("tenanttest.New: %v", err)
	}
	e.DB = sql.OpenDB(c)
	// Closed before the databases are dropped (cleanups run last in,
	// first out), so the drop has no sessions of ours to cut.
	t.Cleanup(func() {
		if err := e.DB.Close(); err != nil {
			t.Errorf("tenanttest: close the *sql.DB: %v", err)
		}
	})

	if cfg.migrations != nil {
		m, err := migrate.New(e.DB, e.Store, cfg.migrations)
		if err != nil {
			t.Fatalf("tenanttest.New: WithMigrations: %v", err)
		}
		if _, err := m.Run(ctx, migrate.Up, 0); err != nil {
			t.Fatalf("tenanttest.New: WithMigrations: %v", err)
		}
	}
	return e
}

// Context returns a context that carries tn's id: queries through e.DB
// with it run on tn's database. It is never canceled, so it also serves in
// Cleanup functions.
func (e *Env) Context(tn Tenant) context.Context {
	return tenantctx.WithTenant(context.Background(), tn.ID)
}

// Run runs f as a subtest of t for each tenant, in order, named tenant-0,
// tenant-1, ... (stable across runs, for go test -run). ctx carries the
// tenant and is t.Context() of the subtest. f may call t.Parallel.
func (e *Env) Run(t *testing.T, f func(t *testing.T, ctx context.Context, tn Tenant)) {
	t.Helper()
	for i, tn := range e.Tenants {
		t.Run("tenant-"+strconv.Itoa(i), func(t *testing.T) {
			f(t, tenantctx.WithTenant(t.Context(), tn.ID), tn)
		})
	}
}

// parseServerURL checks that rawURL is a URL New can derive the tenants'
// URLs from. Errors do not show the URL: it may hold a password.
func parseServerURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Opaque != "" {
		return nil, fmt.Errorf("the server URL %s is not a postgres:// URL (set %s or use WithPostgresURL)", store.RedactURL(rawURL), EnvPostgresURL)
	}
	return u, nil
}

// tenantURL returns the server URL for database name with
// application_name=id.
func tenantURL(base *url.URL, name, id string) string {
	u := *base
	u.Path, u.RawPath = "/"+name, ""
	q := u.Query()
	q.Set("application_name", id)
	u.RawQuery = q.Encode()
	return u.String()
}

// openAdmin returns a small pool on the server's administrative database,
// closed after every other cleanup of New. It skips or fails the test
// when the server does not answer.
func openAdmin(t testing.TB, rawURL string) *sql.DB {
	t.Helper()
	cc, err := pgx.ParseConfig(rawURL)
	if err != nil {
		// pgx's parse errors redact the password.
		t.Fatalf("tenanttest.New: %v", err)
	}
	cc.RuntimeParams["application_name"] = "tenanttest"
	admin := stdlib.OpenDB(*cc)
	admin.SetMaxOpenConns(parallelDDL)
	t.Cleanup(func() { admin.Close() })

	ctx, cancel := context.WithTimeout(t.Context(), pingTimeout)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		where := store.RedactURL(rawURL)
		if os.Getenv("CI") != "" {
			t.Fatalf("tenanttest: PostgreSQL at %s is unreachable and CI is set, so this is a failure, not a skip: %v", where, err)
		}
		t.Skipf("tenanttest: PostgreSQL at %s is unreachable: %v (start it, or set %s)", where, err, EnvPostgresURL)
	}
	return admin
}

// forEach runs f for every name, parallelDDL at a time, and joins the
// errors.
func forEach(names []string, f func(name string) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  []error
		slots = make(chan struct{}, parallelDDL)
	)
	for _, name := range names {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := f(name); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func databases(ts []Tenant) []string {
	names := make([]string, len(ts))
	for i, tn := range ts {
		names[i] = tn.Database
	}
	return names
}

// randomHex returns 16 random hex digits: enough that two tests never
// pick the same names.
func randomHex() string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

func quoteIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

// isDuplicate reports a CREATE DATABASE of a name that exists: someone
// else's database, which New must not drop.
func isDuplicate(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P04"
}
