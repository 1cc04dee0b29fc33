package driver_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// recordingTracer counts the statements of one pool by the tenant their
// context carries.
type recordingTracer struct {
	info driver.PoolInfo
	mu   sync.Mutex
	by   map[string]int
}

func (r *recordingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	id, _ := tenantctx.TenantFrom(ctx)
	r.mu.Lock()
	r.by[id]++
	r.mu.Unlock()
	return ctx
}

func (r *recordingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestWithQueryTracer: each pool gets its own tracer, told the server and
// database its sessions reach (as the server answers them), and every
// statement of the tenant passes through it with the tenant's context.
func TestWithQueryTracer(t *testing.T) {
	var mu sync.Mutex
	tracers := map[string]*recordingTracer{} // by PoolInfo.Tenant
	f := newFixture(t, "qtrace", 2, driver.WithQueryTracer(func(p driver.PoolInfo) pgx.QueryTracer {
		r := &recordingTracer{info: p, by: map[string]int{}}
		mu.Lock()
		tracers[p.Tenant] = r
		mu.Unlock()
		return r
	}))
	const k = 3
	for _, ti := range f.tenants {
		for range k {
			var db string
			var port int
			if err := f.db.QueryRowContext(ti.ctx(f.ctx), "SELECT current_database(), inet_server_port()").Scan(&db, &port); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			r := tracers[ti.ID]
			mu.Unlock()
			if r == nil {
				t.Fatalf("tenant %s: no tracer made for its pool", ti.ID)
			}
			if r.info.Database != db {
				t.Errorf("tenant %s: PoolInfo.Database %q, the server answered %q", ti.ID, r.info.Database, db)
			}
			if !strings.HasSuffix(r.info.Server, ":"+strconv.Itoa(port)) {
				t.Errorf("tenant %s: PoolInfo.Server %q, the server's port is %d", ti.ID, r.info.Server, port)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tracers) != 2 {
		t.Errorf("%d tracers made, want one per pool (2)", len(tracers))
	}
	for id, r := range tracers {
		r.mu.Lock()
		if r.by[id] != k || len(r.by) != 1 {
			t.Errorf("tracer of %s saw %v, want %d statements of %s only", id, r.by, k, id)
		}
		r.mu.Unlock()
	}
}

// TestWithPoolEvents: on a budget of one session, a caller that gives up
// waiting makes a wait event with its context's error, and the one dial
// an event without error; the server has that one session.
func TestWithPoolEvents(t *testing.T) {
	var mu sync.Mutex
	var events []driver.PoolEvent
	f := newFixture(t, "pevents", 1, driver.WithMaxConns(1), driver.WithPoolEvents(func(ev driver.PoolEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}))
	ti := f.tenants[0]
	tx, err := f.db.BeginTx(ti.ctx(f.ctx), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ti.ctx(f.ctx), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ti.ctx(f.ctx))
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := f.db.ExecContext(ctx, "SELECT 1")
		done <- err
	}()
	testenv.Eventually(t, time.Minute, "a caller waiting", func() bool {
		st, _ := f.conn.TenantStats(ti.ID)
		return st.Waiting == 1
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("second caller on a full budget: %v, want context.Canceled", err)
	}
	if n := f.serverSessions(); n != 1 {
		t.Fatalf("the server has %d sessions of the tenant, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	var dials, waits int
	for _, ev := range events {
		if ev.Tenant != ti.ID || ev.Server == "" {
			t.Errorf("event %+v: want tenant %s and a server", ev, ti.ID)
		}
		switch ev.Kind {
		case driver.PoolDial:
			dials++
			if ev.Err != nil {
				t.Errorf("dial event with error %v", ev.Err)
			}
		case driver.PoolWait:
			waits++
			if !errors.Is(ev.Err, context.Canceled) || ev.Duration <= 0 {
				t.Errorf("wait event %+v: want context.Canceled and a duration", ev)
			}
		}
	}
	if dials != 1 || waits != 1 {
		t.Errorf("%d dials and %d waits reported, want 1 and 1 (%+v)", dials, waits, events)
	}
	st, _ := f.conn.TenantStats(ti.ID)
	if st.Timeouts != 1 {
		t.Errorf("TenantStats.Timeouts = %d, want 1", st.Timeouts)
	}
}

// endTracer records, per tenant of the context, each statement's start
// and its end's command tag or error.
type endTracer struct {
	mu     sync.Mutex
	starts map[string]int
	ends   map[string][]string // tag, or "error: SQLSTATE"
}

func (r *endTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	id, _ := tenantctx.TenantFrom(ctx)
	r.mu.Lock()
	r.starts[id]++
	r.mu.Unlock()
	return ctx
}

func (r *endTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	id, _ := tenantctx.TenantFrom(ctx)
	what := d.CommandTag.String()
	var pe *pgconn.PgError
	switch {
	case errors.As(d.Err, &pe):
		what = "error: " + pe.Code
	case d.Err != nil:
		what = "error: " + d.Err.Error()
	}
	r.mu.Lock()
	r.ends[id] = append(r.ends[id], what)
	r.mu.Unlock()
}

// TestWithQueryTracerShared: the statements of tenants that share a pool
// (schemas of one database), which the driver sends in its own pipeline
// below pgx.Conn.Query, pass through the pool's tracer too, each once,
// with its tenant's context and its command tag or the server's error.
func TestWithQueryTracerShared(t *testing.T) {
	r := &endTracer{starts: map[string]int{}, ends: map[string][]string{}}
	f := newSchemaFixture(t, 3, driver.WithMaxConns(2), driver.WithQueryTracer(func(driver.PoolInfo) pgx.QueryTracer { return r }))
	ctx := t.Context()
	for _, id := range f.tenants {
		tctx := tenantctx.WithTenant(ctx, id)
		var tag string
		if err := f.tdb.QueryRowContext(tctx, "select tag from items").Scan(&tag); err != nil || tag != id {
			t.Fatalf("tenant %s: select = %q, %v; want its own row", id, tag, err)
		}
		if _, err := f.tdb.ExecContext(tctx, "update items set tag = tag"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.tdb.ExecContext(tctx, "select * from no_such_table"); err == nil {
			t.Fatal("select from a missing table succeeded")
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	want := []string{"SELECT 1", "UPDATE 1", "error: 42P01"}
	for _, id := range f.tenants {
		if r.starts[id] != len(want) || !slices.Equal(r.ends[id], want) {
			t.Errorf("tenant %s: tracer saw %d starts and ends %q, want %d and %q", id, r.starts[id], r.ends[id], len(want), want)
		}
	}
	if len(r.starts) != len(f.tenants) {
		t.Errorf("tracer saw tenants %v, want exactly %v", r.starts, f.tenants)
	}
}
