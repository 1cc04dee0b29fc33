package driver_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// A tenant added to the store is usable at once, without a restart; a
// deleted one fails with ErrUnknownTenant, while a transaction already
// open on it finishes on its session, which is then closed.
func TestTenantAddedAndDeleted(t *testing.T) {
	f := newFixture(t, "life", 2)
	bg := context.Background()
	testenv.EnsureDatabases(t, "tsql_t_2")
	added := tenantInfo{ID: f.tag + "-new.test", DB: "tsql_t_2"}
	added.URL = testenv.DatabaseURL(t, added.DB, "application_name", added.ID)

	if _, err := f.db.ExecContext(added.ctx(bg), "SELECT 1"); !errors.Is(err, driver.ErrUnknownTenant) {
		t.Fatalf("before it is added: err = %v, want ErrUnknownTenant", err)
	}
	f.add(added)
	eventually(t, 5*time.Second, "the new tenant to be served", func() bool {
		got, err := f.where(added.ctx(bg), f.db)
		if err != nil {
			return false
		}
		f.check(added, got)
		return true
	})

	victim := f.tenants[0]
	tx, err := f.db.BeginTx(victim.ctx(bg), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Delete(bg, victim.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the deleted tenant to be refused", func() bool {
		_, err := f.db.ExecContext(victim.ctx(bg), "SELECT 1")
		return errors.Is(err, driver.ErrUnknownTenant)
	})
	// The open transaction finishes where it started.
	got, err := f.where(victim.ctx(bg), tx)
	if err != nil {
		t.Fatalf("query in a transaction opened before the delete: %v", err)
	}
	f.check(victim, got)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the deleted tenant's sessions to close", func() bool {
		return f.serverSessionsOf(victim) == 0
	})
	if _, ok := f.conn.TenantStats(victim.ID); ok {
		t.Error("stats still list the deleted tenant")
	}
	// The others are untouched.
	for _, ti := range []tenantInfo{f.tenants[1], added} {
		got, err := f.where(ti.ctx(bg), f.db)
		if err != nil {
			t.Fatal(err)
		}
		f.check(ti, got)
	}
}

// A new POSTGRES_URL sends new checkouts to the new database while work in
// flight finishes on the old one, whose sessions are then closed.
func TestTenantURLChanged(t *testing.T) {
	f := newFixture(t, "move", 1)
	bg := context.Background()
	ti := f.tenants[0]
	testenv.EnsureDatabases(t, "tsql_t_3")
	moved := tenantInfo{ID: ti.ID, DB: "tsql_t_3"}
	moved.URL = testenv.DatabaseURL(t, moved.DB, "application_name", ti.ID)

	conn, err := f.db.Conn(bg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.where(ti.ctx(bg), conn)
	if err != nil {
		t.Fatal(err)
	}
	f.check(ti, got)

	if _, err := f.store.Update(bg, store.Tenant{ID: ti.ID, DeployInfo: map[string]string{store.KeyPostgresURL: moved.URL}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "new checkouts to reach the new database", func() bool {
		got, err := f.where(ti.ctx(bg), f.db)
		return err == nil && got.DB == moved.DB
	})
	// The pinned connection is still on the old database.
	got, err = f.where(ti.ctx(bg), conn)
	if err != nil {
		t.Fatal(err)
	}
	f.check(ti, got)
	conn.Close()
	eventually(t, 5*time.Second, "the old database's sessions to close", func() bool {
		return f.adminCount("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = $2", ti.ID, ti.DB) == 0
	})
	// One checkout before the change and at least one after: the new
	// configuration's counters start from the old ones.
	st := f.tenantStats(ti.ID)
	if st.Acquires < 2 {
		t.Errorf("stats lost their history across the change: %+v", st)
	}
}

// sql.Open("tenantsql", "file:...") serves the tenants of a JSON file and
// picks up tenants another process adds to it.
func TestSQLOpenFileStore(t *testing.T) {
	testenv.EnsureDatabases(t, "tsql_t_0", "tsql_t_1")
	bg := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "tenant_config.json")
	app := "fileopen-" + runID
	doc := map[string]any{"tenants": map[string]any{
		app + "-a.test": map[string]any{"deploy_info": map[string]string{"POSTGRES_URL": testenv.DatabaseURL(t, "tsql_t_0", "application_name", app+"-a.test")}},
	}}
	data, _ := json.Marshal(doc)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("tenantsql", "file:"+path+"?poll=20ms")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	var dbname string
	if err := db.QueryRowContext(tenantctx.WithTenant(bg, app+"-a.test"), "SELECT current_database()").Scan(&dbname); err != nil || dbname != "tsql_t_0" {
		t.Fatalf("tenant a: %q, %v", dbname, err)
	}

	// Another process (here: another store on the same file) adds b.
	other, err := store.OpenFile(bg, path, store.WithFilePollInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Create(bg, store.Tenant{ID: app + "-b.test", DeployInfo: map[string]string{"POSTGRES_URL": testenv.DatabaseURL(t, "tsql_t_1", "application_name", app+"-b.test")}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the tenant added by another process", func() bool {
		err := db.QueryRowContext(tenantctx.WithTenant(bg, app+"-b.test"), "SELECT current_database()").Scan(&dbname)
		return err == nil && dbname == "tsql_t_1"
	})
	c, ok := driver.ConnectorOf(db)
	if !ok {
		t.Fatal("ConnectorOf: not a tenantsql DB")
	}
	if st := c.Stats(); len(st.Tenants) != 2 || st.Tenants[app+"-b.test"].Acquires == 0 {
		t.Errorf("stats: %+v", st)
	}
}

func TestSQLOpenErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"tenants": {"a": {"deploy_info": {"POSTGRES_URL": "postgres://u:sekret@h/db"}},}}`), 0o600)
	missing := "file:" + filepath.Join(dir, "missing.json")
	tests := []struct {
		dsn  string
		want []string
		is   error
	}{
		{missing, []string{"missing.json", "no such file", missing + "?create=true"}, fs.ErrNotExist},
		{"file:" + bad, []string{"bad.json", "line 1"}, nil},
		{"nonsense", []string{"not a tenant store URL"}, store.ErrNotStoreURL},
		{"ftp://x", []string{`"ftp"`}, store.ErrNotStoreURL},
		// What sql.Open("pgx", ...) takes: the DSN names the store.
		{"postgres://u:sekret@127.0.0.1/db?sslmode=disable", []string{"PostgreSQL URL", "tenant store", `sql.Open("tenantsql", "file:tenant_config.json")`}, store.ErrNotStoreURL},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			_, err := sql.Open("tenantsql", tt.dsn)
			mustContain(t, err, tt.want...)
			mustNotContain(t, err, "sekret")
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("sql.Open(%q) = %v, does not wrap %v", tt.dsn, err, tt.is)
			}
		})
	}
}
