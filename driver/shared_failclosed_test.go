package driver_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
)

// Nothing a tenant leaves on a shared session reaches the next tenant.
// With a budget of one session, tenant s0 does something to the session,
// then tenant s1 asks the server what the session holds: it must answer
// as a clean session set for s1 would, whether the session was cleaned or
// closed and replaced.
func TestSharedSessionLeavesNothing(t *testing.T) {
	f := newSchemaFixture(t, 2, driver.WithMaxConns(1))
	a, b := f.tenants[0], f.tenants[1]
	cases := []struct {
		name  string
		leave func(ctx context.Context, c *sql.Conn) // as tenant a, on one session
		ask   string                                 // as tenant b
		want  string
	}{
		{"set search_path", execs("set search_path = s0"), "select current_schema()", "s1"},
		{"reset all", execs("reset all"), "select current_schema()", "s1"},
		{"set a setting", execs("set statement_timeout = '4321'"), "select current_setting('statement_timeout')", "0"},
		{"set a custom setting", execs("set app.tenant_id = 'leak'"), "select coalesce(current_setting('app.tenant_id', true), '')", ""},
		{"temporary table", execs("create temp table leftover (x int)"), "select coalesce(to_regclass('pg_temp.leftover')::text, '')", ""},
		{"advisory lock", execs("select pg_advisory_lock(4242)"), "select count(*)::text from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()", "0"},
		{"listen", execs("listen leftover"), "select count(*)::text from pg_listening_channels()", "0"},
		{"prepare", execs("prepare leftover as select 1"), "select count(*)::text from pg_prepared_statements where from_sql", "0"},
		{"set role", execs("set role pg_monitor"), "select current_user::text", "postgres"},
		{"cursor with hold", func(ctx context.Context, c *sql.Conn) {
			tx, err := c.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, "declare leftover cursor with hold for select 1"); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}, "select count(*)::text from pg_cursors where name <> ''", "0"},
		{"set in a rolled-back transaction", func(ctx context.Context, c *sql.Conn) {
			tx, err := c.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			tx.ExecContext(ctx, "set search_path = s0")
			tx.Rollback()
		}, "select current_schema()", "s1"},
		{"failed statement after a set", func(ctx context.Context, c *sql.Conn) {
			c.ExecContext(ctx, "set statement_timeout = '4321'")
			c.ExecContext(ctx, "select * from no_such_table")
		}, "select current_setting('statement_timeout')", "0"},
		{"cancelled query", func(ctx context.Context, c *sql.Conn) {
			c.ExecContext(ctx, "set statement_timeout = '4321'")
			cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			c.ExecContext(cctx, "select pg_sleep(5)")
		}, "select current_setting('statement_timeout') || ' ' || current_schema()", "0 s1"},
		{"killed backend", func(ctx context.Context, c *sql.Conn) {
			c.ExecContext(ctx, "set statement_timeout = '4321'")
			var pid int
			if err := c.QueryRowContext(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			if _, err := f.admin.ExecContext(ctx, "select pg_terminate_backend($1)", pid); err != nil {
				t.Fatal(err)
			}
			c.ExecContext(ctx, "select 1")
		}, "select current_setting('statement_timeout') || ' ' || current_schema()", "0 s1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tenantCtx(a)
			c, err := f.tdb.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.PingContext(ctx); err != nil {
				t.Fatal(err)
			}
			tc.leave(ctx, c)
			c.Close()
			var got string
			if err := f.tdb.QueryRowContext(tenantCtx(b), tc.ask).Scan(&got); err != nil {
				t.Fatalf("tenant %s after %s: %v", b, tc.name, err)
			}
			if got != tc.want {
				t.Errorf("tenant %s after tenant %s's %s: %q answered %q, want %q", b, a, tc.name, tc.ask, got, tc.want)
			}
			var tag string
			if err := f.tdb.QueryRowContext(tenantCtx(b), "select tag from items").Scan(&tag); err != nil || tag != b {
				t.Errorf("tenant %s read %q (%v), want its own row", b, tag, err)
			}
		})
	}
}

func execs(q string) func(ctx context.Context, c *sql.Conn) {
	return func(ctx context.Context, c *sql.Conn) {
		c.ExecContext(ctx, q) // some fail on purpose (they may be refused); what matters is what b sees
	}
}

// A tenant whose schema does not exist gets an error naming it, never an
// answer from another schema.
func TestSharedMissingSchema(t *testing.T) {
	f := newSchemaFixture(t, 2, driver.WithMaxConns(1))
	if _, err := f.admin.Exec("drop schema s1 cascade"); err != nil {
		t.Fatal(err)
	}
	var s string
	err := f.tdb.QueryRowContext(tenantCtx(f.tenants[1]), "select current_schema()").Scan(&s)
	if err == nil {
		t.Fatalf("tenant %s without its schema ran in %q", f.tenants[1], s)
	}
	mustContain(t, err, f.tenants[1], "s1", "does not exist")
}

// A statement that fails rolls back the cleaning sent with it: the next
// statement of the same checkout must clean again.
func TestSharedCleanAfterFailedFirstStatement(t *testing.T) {
	f := newSchemaFixture(t, 2, driver.WithMaxConns(1))
	a, b := f.tenants[0], f.tenants[1]
	if _, err := f.tdb.ExecContext(tenantCtx(a), "set statement_timeout = '4321'"); err != nil {
		t.Fatal(err)
	}
	ctx := tenantCtx(b)
	c, err := f.tdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "select * from no_such_table"); err == nil {
		t.Fatal("a query of a missing table succeeded")
	}
	var got string
	if err := c.QueryRowContext(ctx, "select current_setting('statement_timeout')").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "0" {
		t.Errorf("tenant %s, after its first statement failed, sees statement_timeout %q set by tenant %s; want 0", b, got, a)
	}
}
