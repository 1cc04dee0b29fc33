package driver_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
