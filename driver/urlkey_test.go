package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

const analyticsKey = "ANALYTICS_URL"

// multiDB is a tenant store whose tenants have a default database
// (POSTGRES_URL) and an analytics one (ANALYTICS_URL), with a *sql.DB on
// each key. Each URL has its own application_name, so pg_stat_activity
// tells the two pools of a tenant apart.
type multiDB struct {
	t         *testing.T
	store     *store.Memory
	def, an   *sql.DB
	admin     *sql.DB
	tag       string
	databases []string
}

// newMultiDB opens a *sql.DB on each key, each with budgets of its own.
func newMultiDB(t *testing.T, opts ...driver.Option) *multiDB {
	t.Helper()
	m := newMultiStore(t)
	open := func(opts ...driver.Option) *sql.DB {
		c, err := driver.NewConnector(m.store, append([]driver.Option{driver.WithHooks(nil)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return sqlOpenDB(t, c)
	}
	m.def = open(opts...)
	m.an = open(append(opts, driver.WithURLKey(analyticsKey))...)
	return m
}

// newMultiStore is a multiDB without its *sql.DB.
func newMultiStore(t *testing.T) *multiDB {
	t.Helper()
	fixtureSeq.Lock()
	fixtureSeq.n++
	tag := fmt.Sprintf("mdb%d-%s", fixtureSeq.n, runID)
	fixtureSeq.Unlock()
	m := &multiDB{t: t, store: store.NewMemory(), admin: testenv.Admin(t), tag: tag, databases: testenv.Names("tsql_mdb", 5)}
	testenv.EnsureDatabases(t, m.databases...)
	return m
}

// app is the application_name of one tenant's sessions on one key.
func (m *multiDB) app(id, key string) string { return id + "/" + strings.ToLower(key) }

func (m *multiDB) url(id, key, database string) string {
	return testenv.DatabaseURL(m.t, database, "application_name", m.app(id, key))
}

func (m *multiDB) id(i int) string { return fmt.Sprintf("%s-%d.test", m.tag, i) }

func (m *multiDB) put(id string, info map[string]string) {
	m.t.Helper()
	ctx := context.Background()
	if _, err := m.store.Get(ctx, id); errors.Is(err, store.ErrNotFound) {
		_, err = m.store.Create(ctx, store.Tenant{ID: id, DeployInfo: info})
		if err != nil {
			m.t.Fatal(err)
		}
		return
	}
	cur, err := m.store.Get(ctx, id)
	if err != nil {
		m.t.Fatal(err)
	}
	cur.DeployInfo = info
	if _, err := m.store.Update(ctx, cur); err != nil {
		m.t.Fatal(err)
	}
}

// where asks the server which database and session a query of tenant id
// on db ran on.
func where(db *sql.DB, id string) (database, app string, pid int, err error) {
	err = db.QueryRowContext(tenantCtx(id), "SELECT current_database(), current_setting('application_name'), pg_backend_pid()").Scan(&database, &app, &pid)
	return database, app, pid, err
}

func (m *multiDB) sessions(app string) int {
	m.t.Helper()
	var n int
	if err := m.admin.QueryRowContext(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n); err != nil {
		m.t.Fatal(err)
	}
	return n
}

func TestURLKeyRoutesEachDBToItsKey(t *testing.T) {
	m := newMultiDB(t)
	d := m.databases
	tenants := []struct {
		id            string
		def, analytic string
	}{
		{m.id(0), d[0], d[1]},
		{m.id(1), d[2], d[3]},
	}
	for _, tt := range tenants {
		m.put(tt.id, map[string]string{
			store.KeyPostgresURL: m.url(tt.id, store.KeyPostgresURL, tt.def),
			analyticsKey:         m.url(tt.id, analyticsKey, tt.analytic),
		})
	}
	for _, tt := range tenants {
		for _, c := range []struct {
			name   string
			db     *sql.DB
			key    string
			wantDB string
		}{
			{"default", m.def, store.KeyPostgresURL, tt.def},
			{"analytics", m.an, analyticsKey, tt.analytic},
		} {
			t.Run(tt.id+"/"+c.name, func(t *testing.T) {
				gotDB, gotApp, _, err := where(c.db, tt.id)
				if err != nil {
					t.Fatal(err)
				}
				if gotDB != c.wantDB || gotApp != m.app(tt.id, c.key) {
					t.Errorf("query ran on %q as %q, want %q as %q", gotDB, gotApp, c.wantDB, m.app(tt.id, c.key))
				}
			})
		}
	}
}

func TestURLKeyMissingFailsClosed(t *testing.T) {
	m := newMultiDB(t)
	const secret = "s3cr3t-pw"
	cases := []struct {
		name        string
		value       string // ANALYTICS_URL; "-" leaves the key out
		wantMissing bool
	}{
		{"absent", "-", true},
		{"empty", "", true},
		{"keyword string", "host=127.0.0.1 dbname=" + m.databases[1] + " password=" + secret, false},
		{"other scheme", "mysql://u:" + secret + "@127.0.0.1/x", false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := m.id(i)
			info := map[string]string{store.KeyPostgresURL: m.url(id, store.KeyPostgresURL, m.databases[0])}
			if tc.value != "-" {
				info[analyticsKey] = tc.value
			}
			m.put(id, info)

			_, _, _, err := where(m.an, id)
			if !errors.Is(err, driver.ErrTenantConfig) {
				t.Fatalf("analytics query: got %v, want ErrTenantConfig", err)
			}
			var me *driver.MissingURLKeyError
			if got := errors.As(err, &me); got != tc.wantMissing || errors.Is(err, driver.ErrMissingURLKey) != tc.wantMissing {
				t.Fatalf("analytics query: got %v (a *MissingURLKeyError: %v), want one: %v", err, got, tc.wantMissing)
			}
			if me != nil && (me.Tenant != id || me.Key != analyticsKey) {
				t.Errorf("MissingURLKeyError{Tenant: %q, Key: %q}, want %q, %q", me.Tenant, me.Key, id, analyticsKey)
			}
			mustContain(t, err, id, analyticsKey)
			if tc.wantMissing {
				mustContain(t, err, "add "+analyticsKey)
			}
			mustNotContain(t, err, secret)
			// It never falls back to POSTGRES_URL: no session of the
			// tenant was opened by the analytics *sql.DB, and none on its
			// default database either.
			if n := m.sessions(m.app(id, store.KeyPostgresURL)); n != 0 {
				t.Errorf("%d sessions on the default database after an analytics query, want 0", n)
			}
			// The default *sql.DB serves it.
			if gotDB, _, _, err := where(m.def, id); err != nil || gotDB != m.databases[0] {
				t.Errorf("default query: %q, %v; want %q", gotDB, err, m.databases[0])
			}
		})
	}
}

func TestURLKeyUpdateMovesOnlyItsDB(t *testing.T) {
	m := newMultiDB(t)
	m.def.SetMaxOpenConns(1)
	m.an.SetMaxOpenConns(1)
	d := m.databases
	cases := []struct {
		name      string
		key       string // the key the update changes
		moved     *sql.DB
		kept      *sql.DB
		keptKey   string
		from, to  string // the moved key's databases
		keptOnDB  string
		otherKeys string
	}{
		{name: "analytics", key: analyticsKey, moved: m.an, kept: m.def, keptKey: store.KeyPostgresURL, from: d[1], to: d[4], keptOnDB: d[0]},
		{name: "default", key: store.KeyPostgresURL, moved: m.def, kept: m.an, keptKey: analyticsKey, from: d[0], to: d[2], keptOnDB: d[1]},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := m.id(i)
			info := map[string]string{
				store.KeyPostgresURL: m.url(id, store.KeyPostgresURL, d[0]),
				analyticsKey:         m.url(id, analyticsKey, d[1]),
			}
			m.put(id, info)
			movedDB, _, _, err := where(tc.moved, id)
			if err != nil || movedDB != tc.from {
				t.Fatalf("before: %q, %v; want %q", movedDB, err, tc.from)
			}
			_, _, keptPID, err := where(tc.kept, id)
			if err != nil {
				t.Fatal(err)
			}

			info[tc.key] = m.url(id, tc.key, tc.to)
			m.put(id, info)

			if got, _, _, err := where(tc.moved, id); err != nil || got != tc.to {
				t.Errorf("%s after the update: %q, %v; want %q", tc.key, got, err, tc.to)
			}
			// The other key's pool was kept: its one session is the one
			// that answered before the update.
			gotDB, _, pid, err := where(tc.kept, id)
			if err != nil || gotDB != tc.keptOnDB {
				t.Fatalf("%s after the update: %q, %v; want %q", tc.keptKey, gotDB, err, tc.keptOnDB)
			}
			if pid != keptPID {
				t.Errorf("%s: served by backend %d after an update of %s only, before by %d: its pool was rebuilt", tc.keptKey, pid, tc.key, keptPID)
			}
		})
	}
}

func TestURLKeyDeleteClosesBothPools(t *testing.T) {
	m := newMultiDB(t)
	id := m.id(0)
	m.put(id, map[string]string{
		store.KeyPostgresURL: m.url(id, store.KeyPostgresURL, m.databases[0]),
		analyticsKey:         m.url(id, analyticsKey, m.databases[1]),
	})
	apps := []string{m.app(id, store.KeyPostgresURL), m.app(id, analyticsKey)}
	for _, db := range []*sql.DB{m.def, m.an} {
		if _, _, _, err := where(db, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, app := range apps {
		if n := m.sessions(app); n == 0 {
			t.Fatalf("no session named %q after a query", app)
		}
	}
	if _, err := m.store.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	for _, app := range apps {
		eventually(t, 30*time.Second, "sessions of "+app+" closed after the delete", func() bool { return m.sessions(app) == 0 })
	}
	for _, db := range []*sql.DB{m.def, m.an} {
		if _, _, _, err := where(db, id); !errors.Is(err, driver.ErrUnknownTenant) {
			t.Errorf("after the delete: %v, want ErrUnknownTenant", err)
		}
	}
}

func TestURLKeyOption(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		dsn     string
		wantErr string // "" for success
	}{
		{"memory", "memory:?url_key=ANALYTICS_URL", ""},
		{"file with its own option", "file:" + filepath.Join(dir, "a.json") + "?create=true&url_key=ANALYTICS_URL", ""},
		{"file option after", "file:" + filepath.Join(dir, "b.json") + "?url_key=ANALYTICS_URL&create=true", ""},
		{"empty", "memory:?url_key=", "url_key=\"\""},
		{"not a key", "memory:?url_key=analytics-url", "keys are 1 to 128 bytes"},
		{"twice", "memory:?url_key=A_URL&url_key=B_URL", "given twice"},
		{"store option still checked", "file:" + filepath.Join(dir, "c.json") + "?url_key=ANALYTICS_URL&bogus=1", "bogus"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sql.Open(driver.DriverName, tc.dsn)
			if err == nil {
				// sql.Open defers OpenConnector's errors to the first use.
				err = db.PingContext(context.Background())
				defer db.Close()
			}
			if tc.wantErr != "" {
				mustContain(t, err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The option reached the connector: a tenant with only
			// ANALYTICS_URL is served on that database.
			c, ok := driver.ConnectorOf(db)
			if !ok {
				t.Fatal("ConnectorOf: not a tenantsql *sql.DB")
			}
			testenv.EnsureDatabases(t, "tsql_mdb_1")
			id := "opt-" + runID + ".test"
			if _, err := c.Store().Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{
				store.KeyPostgresURL: testenv.DatabaseURL(t, "tsql_mdb_0"),
				analyticsKey:         testenv.DatabaseURL(t, "tsql_mdb_1"),
			}}); err != nil {
				t.Fatal(err)
			}
			if got, _, _, err := where(db, id); err != nil || got != "tsql_mdb_1" {
				t.Errorf("query: %q, %v; want tsql_mdb_1", got, err)
			}
		})
	}
}

func TestWithURLKeyValidates(t *testing.T) {
	for _, key := range []string{"", "analytics-url", "1_URL", strings.Repeat("K", 129)} {
		_, err := driver.NewConnector(store.NewMemory(), driver.WithURLKey(key))
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("WithURLKey(%q): got %v, want store.ErrInvalid", key, err)
		}
		mustContain(t, err, "WithURLKey")
	}
	c, err := driver.NewConnector(store.NewMemory(), driver.WithURLKey("analytics_url_2"))
	if err != nil {
		t.Fatalf("WithURLKey(%q): %v", "analytics_url_2", err)
	}
	c.Close()
}

// A tenant whose update removes the key loses its database on that
// *sql.DB only: its queries there fail closed, its sessions there are
// closed, and the other key's pool is kept.
func TestURLKeyRemoved(t *testing.T) {
	m := newMultiDB(t)
	m.def.SetMaxOpenConns(1)
	id := m.id(0)
	info := map[string]string{
		store.KeyPostgresURL: m.url(id, store.KeyPostgresURL, m.databases[0]),
		analyticsKey:         m.url(id, analyticsKey, m.databases[1]),
	}
	m.put(id, info)
	_, _, defPID, err := where(m.def, id)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _, err := where(m.an, id); err != nil || got != m.databases[1] {
		t.Fatalf("analytics query: %q, %v; want %q", got, err, m.databases[1])
	}
	anApp := m.app(id, analyticsKey)
	if m.sessions(anApp) == 0 {
		t.Fatalf("no session named %q after an analytics query", anApp)
	}

	delete(info, analyticsKey)
	m.put(id, info)

	if _, _, _, err := where(m.an, id); !errors.Is(err, driver.ErrMissingURLKey) {
		t.Errorf("analytics query after the key was removed: %v, want ErrMissingURLKey", err)
	}
	eventually(t, 30*time.Second, "analytics sessions closed after the key was removed", func() bool { return m.sessions(anApp) == 0 })
	if got, _, pid, err := where(m.def, id); err != nil || got != m.databases[0] || pid != defPID {
		t.Errorf("default query: %q on backend %d, %v; want %q on the same backend %d", got, pid, err, m.databases[0], defPID)
	}
}

// A value under the connector's key that is not a postgres:// URL may be
// anything, a webhook address with its token in the path among them: the
// debug log of the tenant's creation and update must not echo it (only
// that it is unusable), nor must the query's error.
func TestURLKeyNotAURLIsNotLogged(t *testing.T) {
	const secret = "T0KENs3cret"
	var logs testenv.LogBuffer
	s := store.NewMemory()
	c, err := driver.NewConnector(s, driver.WithHooks(nil), driver.WithURLKey(analyticsKey),
		driver.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	db := sqlOpenDB(t, c)
	const id = "not-a-url.test"
	tn, err := s.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{
		store.KeyPostgresURL: "postgres://u@127.0.0.1:1/x",
		analyticsKey:         "https://hooks.example.com/services/" + secret,
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, errCreate := db.ExecContext(tenantCtx(id), "SELECT 1") // after the create is applied
	tn.DeployInfo[analyticsKey] = "https://hooks.example.com/other/" + secret
	if _, err := s.Update(context.Background(), tn); err != nil {
		t.Fatal(err)
	}
	_, errUpdate := db.ExecContext(tenantCtx(id), "SELECT 1") // after the update is applied
	for _, err := range []error{errCreate, errUpdate} {
		if !errors.Is(err, driver.ErrTenantConfig) || strings.Contains(err.Error(), secret) {
			t.Errorf("query: %v; want ErrTenantConfig without the value", err)
		}
	}
	if out := logs.String(); strings.Contains(out, secret) {
		t.Errorf("the log shows the value of %s:\n%s", analyticsKey, out)
	}
}
