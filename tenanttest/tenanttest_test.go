package tenanttest_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
	"github.com/tenantsql/tenantsql/tenanttest"
)

const whereAmI = "SELECT current_database(), current_setting('application_name')"

var (
	dbNameRE = regexp.MustCompile(`^tenanttest_[0-9a-f]{16}_[0-9]+$`)
	idRE     = regexp.MustCompile(`^[0-9a-f]{16}-[0-9]+\.tenanttest$`)
)

func TestNew(t *testing.T) {
	e := tenanttest.New(t, 3)
	if len(e.Tenants) != 3 {
		t.Fatalf("%d tenants, want 3", len(e.Tenants))
	}
	admin := testenv.Admin(t)
	seen := map[string]bool{}
	for i, tn := range e.Tenants {
		if !dbNameRE.MatchString(tn.Database) || !strings.HasSuffix(tn.Database, fmt.Sprintf("_%d", i)) || len(tn.Database) > 63 {
			t.Errorf("tenant %d: database name %q", i, tn.Database)
		}
		if !idRE.MatchString(tn.ID) || !strings.HasSuffix(tn.ID, fmt.Sprintf("-%d.tenanttest", i)) {
			t.Errorf("tenant %d: id %q", i, tn.ID)
		}
		if err := store.ValidateID(tn.ID); err != nil {
			t.Errorf("tenant %d: %v", i, err)
		}
		if seen[tn.ID] || seen[tn.Database] {
			t.Errorf("tenant %d: id or database repeated: %+v", i, tn)
		}
		seen[tn.ID], seen[tn.Database] = true, true

		u, err := url.Parse(tn.URL)
		if err != nil {
			t.Fatal(err)
		}
		if u.Path != "/"+tn.Database || u.Query().Get("application_name") != tn.ID || u.Query().Get("sslmode") != "disable" {
			t.Errorf("tenant %d: URL %s: want database %s, application_name %s and the server URL's sslmode", i, store.RedactURL(tn.URL), tn.Database, tn.ID)
		}
		st, err := e.Store.Get(t.Context(), tn.ID)
		if err != nil || st.PostgresURL() != tn.URL {
			t.Errorf("tenant %d in the store: %v, %v", i, st, err)
		}

		var exists bool
		if err := admin.QueryRowContext(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", tn.Database).Scan(&exists); err != nil || !exists {
			t.Errorf("database %s exists: %v, %v", tn.Database, exists, err)
		}
	}

	var ran []string
	e.Run(t, func(t *testing.T, ctx context.Context, tn tenanttest.Tenant) {
		ran = append(ran, tn.ID)
		if want := fmt.Sprintf("%s/tenant-%d", "TestNew", len(ran)-1); t.Name() != want {
			t.Errorf("subtest %q, want %q", t.Name(), want)
		}
		if id, _ := tenantctx.TenantFrom(ctx); id != tn.ID {
			t.Errorf("ctx carries tenant %q, want %q", id, tn.ID)
		}
		var db, app string
		if err := e.DB.QueryRowContext(ctx, whereAmI).Scan(&db, &app); err != nil {
			t.Fatal(err)
		}
		if db != tn.Database || app != tn.ID {
			t.Errorf("server answered database %s, application_name %s; want %s, %s", db, app, tn.Database, tn.ID)
		}
		// A new database: nothing in it but what PostgreSQL puts there.
		var tables int
		if err := e.DB.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&tables); err != nil || tables != 0 {
			t.Errorf("%d tables in public (%v), want 0", tables, err)
		}
	})
	var want []string
	for _, tn := range e.Tenants {
		want = append(want, tn.ID)
	}
	if !slices.Equal(ran, want) {
		t.Errorf("Run ran %q, want %q", ran, want)
	}

	// Context outside Run, and from the last tenant back to the first, on
	// one *sql.DB.
	for _, tn := range slices.Backward(e.Tenants) {
		var db, app string
		if err := e.DB.QueryRowContext(e.Context(tn), whereAmI).Scan(&db, &app); err != nil {
			t.Fatal(err)
		}
		if db != tn.Database || app != tn.ID {
			t.Errorf("Context(%s): server answered %s, %s", tn.ID, db, app)
		}
	}
}

func TestNewZero(t *testing.T) {
	e := tenanttest.New(t, 0)
	if len(e.Tenants) != 0 || e.DB == nil || e.Store == nil {
		t.Fatalf("New(t, 0) = %+v", e)
	}
	if err := e.DB.PingContext(t.Context()); err != nil {
		t.Errorf("ping without a tenant: %v", err)
	}
}

func TestWithMigrations(t *testing.T) {
	e := tenanttest.New(t, 3, tenanttest.WithMigrations(os.DirFS("../testdata/migrations")))
	e.Run(t, func(t *testing.T, ctx context.Context, tn tenanttest.Tenant) {
		var db, tables string
		var version int64
		err := e.DB.QueryRowContext(ctx, `
			SELECT current_database(), string_agg(table_name, ',' ORDER BY table_name),
			       (SELECT max(version_id) FROM goose_db_version)
			FROM information_schema.tables
			WHERE table_schema = 'public' AND table_name IN ('hospital', 'patient', 'visit')`).Scan(&db, &tables, &version)
		if err != nil {
			t.Fatal(err)
		}
		if db != tn.Database || tables != "hospital,patient,visit" || version != 5 {
			t.Errorf("server answered database %s, tables %s, goose version %d; want %s, hospital,patient,visit, 5", db, tables, version, tn.Database)
		}
	})
}

func TestWithDriverOptions(t *testing.T) {
	e := tenanttest.New(t, 2, tenanttest.WithDriverOptions(
		driver.WithAfterConnect(func(ctx context.Context, tenant string, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, "SET statement_timeout = 12345")
			return err
		}),
	))
	e.Run(t, func(t *testing.T, ctx context.Context, tn tenanttest.Tenant) {
		var timeout string
		if err := e.DB.QueryRowContext(ctx, "SHOW statement_timeout").Scan(&timeout); err != nil {
			t.Fatal(err)
		}
		if timeout != "12345ms" {
			t.Errorf("statement_timeout = %s; the driver option was not used", timeout)
		}
	})
}

// After the test that made them, the databases are gone and the *sql.DB
// is closed; with WithKeep(true) the databases stay.
func TestCleanup(t *testing.T) {
	admin := testenv.Admin(t)
	countDatabases := func(names []string) int {
		t.Helper()
		var n int
		if err := admin.QueryRowContext(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	tests := []struct {
		name string
		keep bool
	}{
		{"drop", false},
		{"keep", true},
	}
	for _, tt := range tests {
		var (
			names []string
			db    *sql.DB
		)
		t.Run(tt.name, func(t *testing.T) {
			e := tenanttest.New(t, 2, tenanttest.WithKeep(tt.keep))
			// Sessions left open must not keep the databases.
			conn, err := e.DB.Conn(e.Context(e.Tenants[0]))
			if err != nil {
				t.Fatal(err)
			}
			if err := conn.PingContext(e.Context(e.Tenants[0])); err != nil {
				t.Fatal(err)
			}
			db = e.DB
			for _, tn := range e.Tenants {
				names = append(names, tn.Database)
			}
			if n := countDatabases(names); n != 2 {
				t.Fatalf("%d of the databases exist, want 2", n)
			}
		})
		if names == nil {
			continue // skipped: no server
		}
		if tt.keep {
			t.Cleanup(func() {
				for _, name := range names {
					testenv.DropDatabase(t, name)
				}
			})
		}
		want := 0
		if tt.keep {
			want = 2
		}
		if n := countDatabases(names); n != want {
			t.Errorf("%s: %d of the databases %q exist after the test, want %d", tt.name, n, names, want)
		}
		if err := db.PingContext(context.Background()); err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("%s: Env.DB after the test: ping %v, want it closed", tt.name, err)
		}
	}
}

// fakeTB records what New does to its test instead of doing it, so the
// failures New reports can be tested. Everything else goes to the real
// test.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	errors   []string
	fatal    string
	skip     string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// newFake runs New on a fakeTB, the way the testing package runs a test:
// in its own goroutine, which Fatalf and Skipf end. before runs after New
// ended and before the cleanups.
func newFake(t *testing.T, before func(), n int, opts ...tenanttest.Option) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tenanttest.New(f, n, opts...)
	}()
	<-done
	if before != nil {
		before()
	}
	for _, fn := range slices.Backward(f.cleanups) {
		fn()
	}
	return f
}

func TestUnreachable(t *testing.T) {
	const dead = "postgres://postgres:hunter2@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2"
	for _, ci := range []string{"", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			f := newFake(t, nil, 1, tenanttest.WithPostgresURL(dead))
			msg := f.skip
			if ci != "" {
				msg = f.fatal
			}
			if msg == "" || (f.skip != "" && f.fatal != "") {
				t.Fatalf("skip %q, fatal %q; want only a %s", f.skip, f.fatal, map[bool]string{true: "skip", false: "fatal"}[ci == ""])
			}
			if !strings.Contains(msg, "unreachable") || !strings.Contains(msg, "127.0.0.1:1") {
				t.Errorf("message %q does not say what is unreachable", msg)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("message shows the password: %q", msg)
			}
		})
	}
}

func TestMisuse(t *testing.T) {
	tests := []struct {
		name string
		n    int
		opts []tenanttest.Option
		want string
	}{
		{"negative n", -1, nil, "-1 tenants"},
		{"upper-case prefix", 1, []tenanttest.Option{tenanttest.WithPrefix("Tenants")}, "WithPrefix"},
		{"prefix with a dash", 1, []tenanttest.Option{tenanttest.WithPrefix("a-b")}, "WithPrefix"},
		{"empty prefix", 1, []tenanttest.Option{tenanttest.WithPrefix("")}, "WithPrefix"},
		{"long prefix", 1, []tenanttest.Option{tenanttest.WithPrefix(strings.Repeat("a", 45))}, "63 bytes"},
		{"key=value DSN", 1, []tenanttest.Option{tenanttest.WithPostgresURL("host=db password=hunter2")}, "not a postgres:// URL"},
		{"other scheme", 1, []tenanttest.Option{tenanttest.WithPostgresURL("mysql://root:hunter2@db/x")}, "not a postgres:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, nil, tt.n, tt.opts...)
			if !strings.Contains(f.fatal, tt.want) {
				t.Errorf("fatal %q, want it to mention %q", f.fatal, tt.want)
			}
			if strings.Contains(f.fatal, "hunter2") {
				t.Errorf("message shows the password: %q", f.fatal)
			}
		})
	}
	// The longest prefix that fits: 63 bytes with "_<16 hex>_<digit>".
	e := tenanttest.New(t, 1, tenanttest.WithPrefix(strings.Repeat("a", 44)))
	if n := len(e.Tenants[0].Database); n != 63 {
		t.Errorf("database name of %d bytes, want 63", n)
	}
}

// A migration that fails fails the test with the migration's error, and
// the databases made so far are dropped all the same.
func TestWithMigrationsFailure(t *testing.T) {
	testenv.PostgresURL(t) // skip without a server
	admin := testenv.Admin(t)
	prefix := "ttfail_" + strings.ReplaceAll(fmt.Sprint(os.Getpid()), "-", "")
	count := func() int {
		var n int
		if err := admin.QueryRowContext(context.Background(), "SELECT count(*) FROM pg_database WHERE datname LIKE $1", prefix+`\_%`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	migrations := fstest.MapFS{
		"00001_ok.sql":  {Data: []byte("-- +goose Up\nCREATE TABLE ok (id int);\n-- +goose Down\nDROP TABLE ok;\n")},
		"00002_bad.sql": {Data: []byte("-- +goose Up\nSELECT * FROM no_such_table;\n-- +goose Down\nSELECT 1;\n")},
	}
	var during int
	f := newFake(t, func() { during = count() }, 2, tenanttest.WithPrefix(prefix), tenanttest.WithMigrations(migrations))
	if !strings.Contains(f.fatal, "WithMigrations") || !strings.Contains(f.fatal, "no_such_table") {
		t.Errorf("fatal %q, want the migration's error", f.fatal)
	}
	if during != 2 {
		t.Errorf("%d databases before the cleanup, want 2", during)
	}
	if n := count(); n != 0 {
		t.Errorf("%d databases left after the cleanup, want 0", n)
	}
	if len(f.errors) != 0 {
		t.Errorf("cleanup errors: %q", f.errors)
	}
}

// WithMigrations takes the embed.FS of the README's
// `//go:embed migrations/*.sql` as it is (its files are under
// "migrations/"), and fails, saying what to pass, when the migrations are
// further down.
func TestWithMigrationsEmbedLayout(t *testing.T) {
	up := &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE embedded (id int);\n-- +goose Down\nDROP TABLE embedded;\n")}
	tests := []struct {
		name  string
		fsys  fstest.MapFS
		fatal string // what New's failure says, "" if it succeeds
	}{
		{"go:embed migrations/*.sql", fstest.MapFS{"migrations/00001_embedded.sql": up}, ""},
		{"go:embed db/migrations/*.sql", fstest.MapFS{"db/migrations/00001_embedded.sql": up}, `pass fs.Sub(fsys, "db/migrations")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fatal != "" {
				f := newFake(t, nil, 1, tenanttest.WithMigrations(tt.fsys))
				if !strings.Contains(f.fatal, "WithMigrations") || !strings.Contains(f.fatal, tt.fatal) {
					t.Errorf("fatal %q, want one that says %q", f.fatal, tt.fatal)
				}
				return
			}
			e := tenanttest.New(t, 1, tenanttest.WithMigrations(tt.fsys))
			e.Run(t, func(t *testing.T, ctx context.Context, tn tenanttest.Tenant) {
				var n int
				if err := e.DB.QueryRowContext(ctx, "SELECT count(*) FROM embedded").Scan(&n); err != nil {
					t.Fatalf("the migration's table: %v", err)
				}
			})
		})
	}
}
