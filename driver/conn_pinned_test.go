package driver_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/driver"
)

// A Tx pins one connection; an operation with another tenant's context, or
// none, is refused and does not reach either database, and the transaction
// goes on working for its own tenant.
func TestTxOtherTenant(t *testing.T) {
	f := newFixture(t, "txother", 2)
	bg := context.Background()
	a, b := f.tenants[0], f.tenants[1]
	txMarks := f.runTable("tx_marks", f.tenants...)
	for _, ti := range f.tenants {
		if _, err := f.db.ExecContext(ti.ctx(bg), "CREATE TABLE IF NOT EXISTS "+txMarks+" (tenant text)"); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := f.db.BeginTx(a.ctx(bg), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(a.ctx(bg), "INSERT INTO "+txMarks+" VALUES ($1)", a.ID); err != nil {
		t.Fatal(err)
	}
	_, err = tx.ExecContext(b.ctx(bg), "INSERT INTO "+txMarks+" VALUES ($1)", b.ID)
	if !errors.Is(err, driver.ErrTenantMismatch) {
		t.Fatalf("Exec with %s's ctx in %s's tx: err = %v, want ErrTenantMismatch", b.ID, a.ID, err)
	}
	mustContain(t, err, a.ID, b.ID)
	if _, err := tx.ExecContext(bg, "INSERT INTO "+txMarks+" VALUES ('none')"); !errors.Is(err, driver.ErrNoTenant) {
		t.Fatalf("Exec without tenant in a tx: err = %v, want ErrNoTenant", err)
	}
	if _, err := tx.Exec("INSERT INTO " + txMarks + " VALUES ('none')"); !errors.Is(err, driver.ErrNoTenant) {
		t.Fatalf("Exec (no ctx) in a tx: err = %v, want ErrNoTenant", err)
	} else {
		mustContain(t, err, "bound to tenant "+strconv.Quote(a.ID), "ExecContext", "tenantctx.WithTenant")
	}
	got, err := f.where(a.ctx(bg), tx)
	if err != nil {
		t.Fatal(err)
	}
	f.check(a, got)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// The refused inserts reached neither database.
	for _, ti := range f.tenants {
		var marks []string
		rows, err := f.db.QueryContext(ti.ctx(bg), "DELETE FROM "+txMarks+" RETURNING tenant")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var m string
			if err := rows.Scan(&m); err != nil {
				t.Fatal(err)
			}
			marks = append(marks, m)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		want := 0
		if ti == a {
			want = 1
		}
		if len(marks) != want || (want == 1 && marks[0] != a.ID) {
			t.Errorf("%s's table holds %q after the tx", ti.ID, marks)
		}
	}
}

// A *sql.Conn keeps one backend for all its operations (session state such
// as advisory locks depends on it) and refuses other tenants.
func TestSQLConnPinned(t *testing.T) {
	f := newFixture(t, "conn", 2)
	bg := context.Background()
	a, b := f.tenants[0], f.tenants[1]
	conn, err := f.db.Conn(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pid1, pid2 int
	if err := conn.QueryRowContext(a.ctx(bg), "SELECT pg_backend_pid()").Scan(&pid1); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(a.ctx(bg), "SELECT pg_advisory_lock(42)"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(b.ctx(bg), "SELECT 1").Scan(new(int)); !errors.Is(err, driver.ErrTenantMismatch) {
		t.Fatalf("conn bound to %s used with %s: err = %v, want ErrTenantMismatch", a.ID, b.ID, err)
	}
	if err := conn.QueryRowContext(bg, "SELECT 1").Scan(new(int)); !errors.Is(err, driver.ErrNoTenant) {
		t.Fatalf("conn bound to %s used without tenant: err = %v, want ErrNoTenant", a.ID, err)
	}
	// Ping too: a bound conn answers only for its own tenant's session,
	// not for the store, as an unbound one would.
	if err := conn.PingContext(bg); !errors.Is(err, driver.ErrNoTenant) {
		t.Fatalf("conn bound to %s pinged without tenant: err = %v, want ErrNoTenant", a.ID, err)
	}
	if err := conn.PingContext(b.ctx(bg)); !errors.Is(err, driver.ErrTenantMismatch) {
		t.Fatalf("conn bound to %s pinged with %s: err = %v, want ErrTenantMismatch", a.ID, b.ID, err)
	}
	if err := conn.PingContext(a.ctx(bg)); err != nil {
		t.Fatalf("conn bound to %s pinged with its tenant: %v", a.ID, err)
	}
	if err := conn.QueryRowContext(a.ctx(bg), "SELECT pg_backend_pid()").Scan(&pid2); err != nil {
		t.Fatal(err)
	}
	if pid1 != pid2 {
		t.Fatalf("*sql.Conn moved from backend %d to %d between operations", pid1, pid2)
	}
	var unlocked bool
	if err := conn.QueryRowContext(a.ctx(bg), "SELECT pg_advisory_unlock(42)").Scan(&unlocked); err != nil || !unlocked {
		t.Fatalf("advisory unlock on the same *sql.Conn: %v, %v (the lock was taken on another session)", unlocked, err)
	}
	got, err := f.where(a.ctx(bg), conn)
	if err != nil {
		t.Fatal(err)
	}
	f.check(a, got)
}

// Cancelling a query mid-flight fails that query, and neither leaks its
// session to another caller nor leaves the server running it.
func TestCancelMidQuery(t *testing.T) {
	f := newFixture(t, "cancelq", 3)
	f.db.SetMaxOpenConns(2)
	bg := context.Background()
	a := f.tenants[0]
	for range 3 {
		ctx, cancel := context.WithTimeout(a.ctx(bg), 100*time.Millisecond)
		start := time.Now()
		_, err := f.db.ExecContext(ctx, "SELECT pg_sleep(30)")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("cancelled query: err = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("cancelled query returned after %v", d)
		}
		for _, ti := range f.tenants {
			got, err := f.where(ti.ctx(bg), f.db)
			if err != nil {
				t.Fatal(err)
			}
			f.check(ti, got)
		}
	}
	eventually(t, 10*time.Second, "the server to stop running the cancelled queries", func() bool {
		return f.adminCount("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1 AND query LIKE '%pg_sleep(30)%' AND state = 'active'", f.tag+"-%") == 0
	})

	t.Run("rows open when cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(a.ctx(bg))
		rows, err := f.db.QueryContext(ctx, "SELECT g, current_database() FROM generate_series(1, 100000) g")
		if err != nil {
			t.Fatal(err)
		}
		rows.Next()
		cancel()
		for rows.Next() {
		}
		rows.Close()
		for _, ti := range f.tenants {
			got, err := f.where(ti.ctx(bg), f.db)
			if err != nil {
				t.Fatal(err)
			}
			f.check(ti, got)
		}
	})
}

// BeginTx cancelled while it waits for a connection returns the context's
// error and leaks nothing; a transaction whose context is cancelled is
// rolled back (database/sql keeps the virtual connection, the session goes
// back clean or is closed) and its writes are gone.
func TestCancelBeginTx(t *testing.T) {
	f := newFixture(t, "cancelb", 2, driver.WithMaxConnsPerTenant(1))
	bg := context.Background()
	a, b := f.tenants[0], f.tenants[1]
	cancelMarks := f.runTable("cancel_marks", f.tenants...)
	if _, err := f.db.ExecContext(a.ctx(bg), "CREATE TABLE IF NOT EXISTS "+cancelMarks+" (n int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.ExecContext(a.ctx(bg), "TRUNCATE "+cancelMarks); err != nil {
		t.Fatal(err)
	}

	t.Run("while waiting for a connection", func(t *testing.T) {
		hold, err := f.db.BeginTx(a.ctx(bg), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(a.ctx(bg), 150*time.Millisecond)
		defer cancel()
		_, err = f.db.BeginTx(ctx, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("BeginTx waiting on a tenant at its cap: err = %v, want DeadlineExceeded", err)
		}
		if st := f.tenantStats(a.ID); st.Waiting != 0 || st.Open != 1 {
			t.Errorf("after the cancelled BeginTx: %+v, want 1 open and nobody waiting", st)
		}
		hold.Rollback()
		got, err := f.where(a.ctx(bg), f.db)
		if err != nil {
			t.Fatal(err)
		}
		f.check(a, got)
	})

	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(a.ctx(bg))
		cancel()
		if _, err := f.db.BeginTx(ctx, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})

	t.Run("cancelled inside the transaction", func(t *testing.T) {
		ctx, cancel := context.WithCancel(a.ctx(bg))
		tx, err := f.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+cancelMarks+" VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		cancel()
		eventually(t, 5*time.Second, "database/sql to roll the transaction back", func() bool {
			return errors.Is(tx.Commit(), context.Canceled) || errors.Is(tx.Commit(), errTxDone)
		})
		var n int
		if err := f.db.QueryRowContext(a.ctx(bg), "SELECT count(*) FROM "+cancelMarks).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("the cancelled transaction's insert is visible: %d rows", n)
		}
		got, err := f.where(b.ctx(bg), f.db)
		if err != nil {
			t.Fatal(err)
		}
		f.check(b, got)
	})
}

// (*sql.Conn).Raw gives the bound *pgx.Conn for pgx-only work, on the
// caller's tenant only.
func TestRaw(t *testing.T) {
	f := newFixture(t, "raw", 2)
	bg := context.Background()
	a, b := f.tenants[0], f.tenants[1]
	rawCopy := f.runTable("raw_copy", f.tenants...)
	for _, ti := range f.tenants {
		if _, err := f.db.ExecContext(ti.ctx(bg), "CREATE TABLE IF NOT EXISTS "+rawCopy+" (tenant text, n int); TRUNCATE "+rawCopy); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := f.db.Conn(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc, err := dc.(*driver.Conn).PgxConn(a.ctx(bg))
		if err != nil {
			return err
		}
		var got answer
		if err := pc.QueryRow(bg, whereAmI).Scan(&got.DB, &got.App); err != nil {
			return err
		}
		f.check(a, got)
		n, err := pc.CopyFrom(bg, pgx.Identifier{rawCopy}, []string{"tenant", "n"}, pgx.CopyFromRows([][]any{{a.ID, 1}, {a.ID, 2}}))
		if err != nil || n != 2 {
			t.Errorf("CopyFrom: %d, %v", n, err)
		}
		if _, err := dc.(*driver.Conn).PgxConn(b.ctx(bg)); !errors.Is(err, driver.ErrTenantMismatch) {
			t.Errorf("PgxConn(%s) on a conn bound to %s: err = %v, want ErrTenantMismatch", b.ID, a.ID, err)
		}
		if id, ok := dc.(*driver.Conn).Tenant(); !ok || id != a.ID {
			t.Errorf("Tenant() = %q, %v", id, ok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range f.tenants {
		var n int
		if err := f.db.QueryRowContext(ti.ctx(bg), "SELECT count(*) FROM "+rawCopy+" WHERE tenant = $1", a.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 2, false: 0}[ti == a]; n != want {
			t.Errorf("%s holds %d copied rows, want %d", ti.ID, n, want)
		}
	}

	t.Run("panic inside Raw", func(t *testing.T) {
		c2, err := f.db.Conn(bg)
		if err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() { recover() }()
			c2.Raw(func(dc any) error {
				if _, err := dc.(*driver.Conn).PgxConn(b.ctx(bg)); err != nil {
					t.Error(err)
				}
				panic("boom")
			})
		}()
		c2.Close()
		for _, ti := range f.tenants {
			got, err := f.where(ti.ctx(bg), f.db)
			if err != nil {
				t.Fatal(err)
			}
			f.check(ti, got)
		}
	})
}
