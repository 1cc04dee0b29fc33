package driver_test

import (
	"context"
	sqldriver "database/sql/driver"
	"errors"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// Every database/sql method without a context, and every one given a
// context without a tenant, fails with ErrNoTenant, and none of them opens
// a session on any tenant database.
func TestNoTenantFailsClosed(t *testing.T) {
	f := newFixture(t, "noten", 2)
	bg := context.Background()
	calls := []struct {
		name string
		run  func() error
	}{
		{"DB.Query", func() error { _, err := f.db.Query(whereAmI); return err }},
		{"DB.QueryContext", func() error { _, err := f.db.QueryContext(bg, whereAmI); return err }},
		{"DB.QueryRow", func() error { return f.db.QueryRow(whereAmI).Scan(new(string), new(string)) }},
		{"DB.Exec", func() error { _, err := f.db.Exec("SELECT 1"); return err }},
		{"DB.ExecContext", func() error { _, err := f.db.ExecContext(bg, "SELECT 1"); return err }},
		{"DB.Prepare", func() error { _, err := f.db.Prepare("SELECT 1"); return err }},
		{"DB.Begin", func() error { _, err := f.db.Begin(); return err }},
		{"DB.BeginTx", func() error { _, err := f.db.BeginTx(bg, nil); return err }},
		{"Conn.QueryRowContext", func() error {
			c, err := f.db.Conn(bg)
			if err != nil {
				return err
			}
			defer c.Close()
			return c.QueryRowContext(bg, "SELECT 1").Scan(new(int))
		}},
		{"Conn.Raw PgxConn", func() error {
			c, err := f.db.Conn(bg)
			if err != nil {
				return err
			}
			defer c.Close()
			return c.Raw(func(dc any) error {
				_, err := dc.(*driver.Conn).PgxConn(bg)
				return err
			})
		}},
		{"empty tenant id", func() error {
			_, err := f.db.ExecContext(tenantctx.WithTenant(bg, ""), "SELECT 1")
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.run()
			if !errors.Is(err, driver.ErrNoTenant) {
				t.Fatalf("err = %v, want ErrNoTenant", err)
			}
			// It says what to call instead.
			for _, s := range []string{"QueryContext", "ExecContext", "BeginTx", "tenantctx.WithTenant"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
			if errors.Is(err, errBadConn) {
				t.Fatalf("err %v is ErrBadConn: database/sql would retry it", err)
			}
		})
	}
	if n := f.serverSessions(); n != 0 {
		t.Errorf("calls without a tenant opened %d server sessions, want 0", n)
	}
}

// Ping without a tenant answers for the store and touches no tenant
// database; with a tenant it reaches that tenant's database.
func TestPing(t *testing.T) {
	f := newFixture(t, "ping", 2)
	if err := f.db.Ping(); err != nil {
		t.Fatalf("Ping without tenant: %v", err)
	}
	if err := f.db.PingContext(context.Background()); err != nil {
		t.Fatalf("PingContext without tenant: %v", err)
	}
	if n := f.serverSessions(); n != 0 {
		t.Fatalf("Ping without a tenant opened %d tenant sessions, want 0", n)
	}
	ti := f.tenants[1]
	if err := f.db.PingContext(ti.ctx(context.Background())); err != nil {
		t.Fatalf("PingContext(%s): %v", ti.ID, err)
	}
	if n := f.serverSessionsOf(ti); n != 1 {
		t.Errorf("after a tenant ping the server has %d sessions of %s, want 1", n, ti.ID)
	}
	if n := f.serverSessionsOf(f.tenants[0]); n != 0 {
		t.Errorf("a ping for %s opened %d sessions of %s", ti.ID, n, f.tenants[0].ID)
	}
	err := f.db.PingContext(tenantctx.WithTenant(context.Background(), "nobody.test"))
	if !errors.Is(err, driver.ErrUnknownTenant) {
		t.Errorf("PingContext(unknown) = %v, want ErrUnknownTenant", err)
	}

	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Ping(); err == nil {
		t.Error("Ping without tenant after the store closed: got nil, want an error")
	}
}

func TestUnknownTenant(t *testing.T) {
	f := newFixture(t, "unk", 1)
	ctx := tenantctx.WithTenant(context.Background(), "not-there.test")
	_, err := f.db.ExecContext(ctx, "SELECT 1")
	if !errors.Is(err, driver.ErrUnknownTenant) {
		t.Fatalf("err = %v, want ErrUnknownTenant", err)
	}
	mustContain(t, err, `"not-there.test"`)
	// Near misses of a real id are other tenants, never aliases.
	for _, id := range []string{f.tenants[0].ID + " ", "X" + f.tenants[0].ID[1:]} {
		_, err := f.db.ExecContext(tenantctx.WithTenant(context.Background(), id), "SELECT 1")
		if !errors.Is(err, driver.ErrUnknownTenant) {
			t.Errorf("tenant %q: err = %v, want ErrUnknownTenant", id, err)
		}
	}
}

var errBadConn = sqldriver.ErrBadConn
