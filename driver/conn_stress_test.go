package driver_test

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantsql/tenantsql/driver"
)

// TestStress runs a randomized mix of every kind of operation for many
// tenants at once, with cancellations and backends killed under it, and
// checks every single answer against the server's own idea of where it
// ran. The only acceptable failures are those a killed backend or a
// cancelled context causes; a wrong-tenant answer fails the test.
//
// The test does a fixed amount of work, however long it takes: it runs
// until it has checked a set number of answers, and kills one tenant's
// backends every few operations, so a slow machine does the same work with
// the same mix of faults as a fast one, only later. A deadline far beyond
// that only catches a hang, and says how far the work got.
func TestStress(t *testing.T) {
	const (
		tenants    = 24
		goroutines = 32
		// killEvery is how many operations end between two kills of a
		// tenant's backends.
		killEvery = 4
	)
	target := int64(1500) // answers checked
	if testing.Short() {
		target = 500
	}
	f := newFixture(t, "stress", tenants, driver.WithMaxConns(16), driver.WithMaxConnsPerTenant(4))
	f.db.SetMaxOpenConns(8)
	f.db.SetMaxIdleConns(8)
	bg := context.Background()
	for _, ti := range f.tenants {
		if _, err := f.db.ExecContext(ti.ctx(bg), "CREATE TABLE IF NOT EXISTS stress_marks (tenant text, n bigint)"); err != nil {
			t.Fatal(err)
		}
	}
	shared, err := f.db.PrepareContext(f.tenants[0].ctx(bg), whereAmI+", $1::bigint")
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()

	var (
		wrong, ops, okOps, expectedErrs atomic.Int64
		timedOut                        atomic.Int64 // operations that ran into their own 10 s limit
		seq                             atomic.Int64
		unexpected                      sync.Map // error text -> count
	)
	verify := func(ti tenantInfo, got answer) {
		ops.Add(1)
		if got.DB != ti.DB || got.App != ti.ID {
			wrong.Add(1)
			t.Errorf("WRONG TENANT: %s got database %q as %q", ti.ID, got.DB, got.App)
		}
	}
	classify := func(err error) {
		if err == nil {
			okOps.Add(1)
			return
		}
		if acceptable(err) {
			expectedErrs.Add(1)
			return
		}
		n, _ := unexpected.LoadOrStore(err.Error(), new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}

	type op func(ctx context.Context, ti, other tenantInfo) error
	opsList := []op{
		func(ctx context.Context, ti, _ tenantInfo) error { // QueryRow
			got, err := f.where(ctx, f.db)
			if err == nil {
				verify(ti, got)
			}
			return err
		},
		func(ctx context.Context, ti, _ tenantInfo) error { // Query, several rows
			rows, err := f.db.QueryContext(ctx, "SELECT current_database(), current_setting('application_name'), g FROM generate_series(1, 3) g")
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var got answer
				var g int
				if err := rows.Scan(&got.DB, &got.App, &g); err != nil {
					return err
				}
				verify(ti, got)
			}
			return rows.Err()
		},
		func(ctx context.Context, ti, _ tenantInfo) error { // Exec
			res, err := f.db.ExecContext(ctx, "INSERT INTO stress_marks VALUES ($1, $2)", ti.ID, seq.Add(1))
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("insert affected %d rows", n)
			}
			return nil
		},
		func(ctx context.Context, ti, _ tenantInfo) error { // shared DB-level Stmt
			var got answer
			var n int64
			err := shared.QueryRowContext(ctx, 7).Scan(&got.DB, &got.App, &n)
			if err == nil {
				verify(ti, got)
			}
			return err
		},
		func(ctx context.Context, ti, other tenantInfo) error { // Tx with a stmt, and a refused foreign op
			tx, err := f.db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			got, err := f.where(ctx, tx)
			if err != nil {
				return err
			}
			verify(ti, got)
			_, err = tx.ExecContext(other.ctx(bg), "INSERT INTO stress_marks VALUES ($1, -1)", other.ID)
			switch {
			case other.ID == ti.ID, errors.Is(err, driver.ErrTenantMismatch):
			case errors.Is(err, errTxDone) && ctx.Err() != nil:
				// The op's context ended (a slow machine reaches its
				// limit): database/sql rolled the transaction back.
				return ctx.Err()
			default:
				t.Errorf("foreign op in a tx: err = %v, want ErrTenantMismatch", err)
			}
			var n int64
			if err := tx.StmtContext(ctx, shared).QueryRowContext(ctx, 8).Scan(&got.DB, &got.App, &n); err != nil {
				return err
			}
			verify(ti, got)
			if _, err := tx.ExecContext(ctx, "INSERT INTO stress_marks VALUES ($1, $2)", ti.ID, seq.Add(1)); err != nil {
				return err
			}
			if rand.IntN(2) == 0 {
				return tx.Commit()
			}
			return tx.Rollback()
		},
		func(ctx context.Context, ti, _ tenantInfo) error { // *sql.Conn and Raw
			conn, err := f.db.Conn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			got, err := f.where(ctx, conn)
			if err != nil {
				return err
			}
			verify(ti, got)
			return conn.Raw(func(dc any) error {
				pc, err := dc.(*driver.Conn).PgxConn(ctx)
				if err != nil {
					return err
				}
				br := pc.SendBatch(ctx, &pgx.Batch{QueuedQueries: []*pgx.QueuedQuery{{SQL: whereAmI}, {SQL: whereAmI}}})
				defer br.Close()
				for range 2 {
					var got answer
					if err := br.QueryRow().Scan(&got.DB, &got.App); err != nil {
						return err
					}
					verify(ti, got)
				}
				return nil
			})
		},
		func(ctx context.Context, ti, _ tenantInfo) error { // cancelled mid-query
			cctx, cancel := context.WithTimeout(ctx, time.Duration(rand.IntN(3000))*time.Microsecond)
			defer cancel()
			var got answer
			err := f.db.QueryRowContext(cctx, "SELECT current_database(), current_setting('application_name') FROM pg_sleep(0.002)").Scan(&got.DB, &got.App)
			if err == nil {
				verify(ti, got)
			}
			return err
		},
	}

	hang := hangAfter(t)
	ctx, stop := context.WithTimeout(bg, hang)
	defer stop()
	start := time.Now()
	var (
		wg    sync.WaitGroup
		ended atomic.Int64 // operations ended, however
		kick  = make(chan struct{}, 1)
	)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ops.Load() < target && ctx.Err() == nil {
				ti := f.tenants[rand.IntN(len(f.tenants))]
				other := f.tenants[rand.IntN(len(f.tenants))]
				opCtx, cancel := context.WithTimeout(ti.ctx(ctx), 10*time.Second)
				err := opsList[rand.IntN(len(opsList))](opCtx, ti, other)
				if err != nil && ctx.Err() == nil && errors.Is(opCtx.Err(), context.DeadlineExceeded) {
					timedOut.Add(1)
				}
				classify(err)
				cancel()
				if ended.Add(1)%killEvery == 0 {
					select {
					case kick <- struct{}{}:
					default: // a kill is pending already
					}
				}
			}
		}()
	}
	// Backends are killed as the work goes, not as the clock goes.
	var killed, kills int
	killerDone := make(chan struct{})
	workDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		for {
			select {
			case <-kick:
				ti := f.tenants[rand.IntN(len(f.tenants))]
				killed += f.killSessions(ti.ID)
				kills++
			case <-workDone:
				return
			}
		}
	}()
	wg.Wait()
	close(workDone)
	<-killerDone
	elapsed := time.Since(start)
	if ops.Load() < target {
		st := f.conn.Stats()
		t.Errorf("hung: after %v (the limit), %d of %d answers checked; %d ops succeeded, %d failed as expected, %d of them at their own 10 s limit; %d kills; pool: %d open, %d in use, %d callers waiting",
			hang.Round(time.Second), ops.Load(), target, okOps.Load(), expectedErrs.Load(), timedOut.Load(), kills, st.Open, st.InUse, st.Waiting)
	}

	// Every row an Exec or Tx wrote sits in its own tenant's database. The
	// first try may meet a session killed while it sat idle, which plain
	// pgx reports the same way.
	for _, ti := range f.tenants {
		var foreign int
		q := "SELECT count(*) FROM stress_marks WHERE tenant LIKE $1 AND tenant <> $2"
		err := f.db.QueryRowContext(ti.ctx(bg), q, f.tag+"-%", ti.ID).Scan(&foreign)
		if err != nil && acceptable(err) {
			err = f.db.QueryRowContext(ti.ctx(bg), q, f.tag+"-%", ti.ID).Scan(&foreign)
		}
		if err != nil {
			t.Fatal(err)
		}
		if foreign != 0 {
			wrong.Add(1)
			t.Errorf("%s's database holds %d rows written for other tenants", ti.ID, foreign)
		}
	}
	unexpected.Range(func(k, v any) bool {
		t.Errorf("unexpected error (%d times): %s", v.(*atomic.Int64).Load(), k)
		return true
	})
	st := f.conn.Stats()
	t.Logf("%d answers checked in %v, %d wrong; %d ops succeeded, %d failed as expected (cancelled or killed; %d at their own 10 s limit); %d backends killed in %d kills; %d physical conns open at the end (cap %d)",
		ops.Load(), elapsed.Round(time.Millisecond), wrong.Load(), okOps.Load(), expectedErrs.Load(), timedOut.Load(), killed, kills, st.Open, st.MaxConns)
	if wrong.Load() != 0 {
		t.Fatalf("%d wrong-tenant results", wrong.Load())
	}
}

// acceptable reports errors that a killed backend or a cancelled context
// legitimately cause.
func acceptable(err error) bool {
	var pe *pgconn.PgError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, sqldriver.ErrBadConn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, sql.ErrConnDone), errors.Is(err, sql.ErrTxDone), pgconn.Timeout(err), errors.As(err, &ne):
		return true
	case errors.As(err, &pe):
		// 57P01 admin_shutdown (pg_terminate_backend), 57014 query_canceled
		return pe.Code == "57P01" || pe.Code == "57014"
	}
	msg := err.Error()
	for _, s := range []string{"conn closed", "connection reset", "broken pipe", "unexpected EOF", "terminating connection", "timeout: context"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
