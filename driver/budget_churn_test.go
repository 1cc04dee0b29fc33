package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
)

// coldAfter is how long an idle connection must have sat unused before a
// caller whose tenant has connections of its own may take its slot (the
// driver's rule, pool.go).
const coldAfter = time.Second

// A caller whose tenant's connections are all busy, with the cap reached,
// takes the slot of another tenant's idle connection only if it has waited
// WithEvictionDelay for one of its own, and only if that connection is cold
// (idle for coldAfter). Taking warm ones, or taking them at once, makes
// tenants take turns closing each other's connections: churn.
//
// With the default delay of 20 ms, a goroutine paused for longer while it
// holds its tenant's connection (a loaded machine) makes the caller behind
// it take a cold connection, as the rules allow: counting new sessions
// under load then measures the machine. So each subtest checks one rule in
// a way no pause can undo, and asserts what that rule guarantees.
func TestChurn(t *testing.T) {
	// Forty tenants served round-robin by sixteen goroutines must, once
	// warm, keep the server sessions they have, and the server must never
	// see more of them than the cap. Eight connections more than tenants
	// sit idle until they are cold: a caller whose tenant's connection is
	// busy (the goroutines go two to a tenant) could take one, but only
	// after waiting the eviction delay, here far longer than the test may
	// run. However long a goroutine is paused, no caller waits that long,
	// so the rule forbids every eviction: the server must list exactly the
	// same sessions of ours (pid and start) after the work as before it,
	// and the driver must count no eviction and no new connection.
	t.Run("round-robin keeps its sessions", func(t *testing.T) {
		const (
			tenants    = 40
			goroutines = 16
			maxConns   = tenants + 8
			queries    = 200 * tenants
		)
		f := newFixtureOn(t, "churn", tenants, "tsql_churn", tenants, driver.WithMaxConns(maxConns), driver.WithEvictionDelay(time.Hour))
		f.db.SetMaxOpenConns(goroutines)
		f.db.SetMaxIdleConns(goroutines)
		hang := hangAfter(t)
		ctx, cancel := context.WithTimeout(context.Background(), hang)
		defer cancel()
		sampler := samplePeak(f, f.tag+"-%")
		var wrong atomic.Int64
		query := func(ti tenantInfo) error {
			got, err := f.where(ti.ctx(ctx), f.db)
			if err != nil {
				return fmt.Errorf("tenant %s: %w", ti.ID, err)
			}
			if got.DB != ti.DB || got.App != ti.ID {
				wrong.Add(1)
			}
			return nil
		}

		// Warm up one tenant at a time (concurrent first queries of a
		// tenant would each dial), then fill the budget with second
		// connections, dialled by queries beside a transaction.
		for _, ti := range f.tenants {
			if err := query(ti); err != nil {
				t.Fatal(err)
			}
		}
		var txs []*sql.Tx
		for _, ti := range f.tenants {
			if f.conn.Stats().Open >= maxConns {
				break
			}
			tx, err := f.db.BeginTx(ti.ctx(ctx), nil)
			if err != nil {
				t.Fatal(err)
			}
			txs = append(txs, tx)
			if err := query(ti); err != nil {
				t.Fatal(err)
			}
		}
		for _, tx := range txs {
			tx.Rollback()
		}
		if st := f.conn.Stats(); st.Open != maxConns || st.Idle != maxConns {
			t.Fatalf("warm: %d connections open, %d idle; want %d of each", st.Open, st.Idle, maxConns)
		}
		time.Sleep(coldAfter + 100*time.Millisecond) // every idle connection turns cold

		before, st0 := churnSnapshot(t, f)
		var next atomic.Int64 // query k is for tenant k/2: two callers a tenant at a time
		var wg sync.WaitGroup
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A fixed number of queries, and on until the peak
				// sampler has sampled them enough.
				for k := next.Add(1) - 1; k < queries || !sampler.enough(); k = next.Add(1) - 1 {
					if err := query(f.tenants[(k/2)%tenants]); err != nil {
						t.Errorf("query %d: %v", k, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			st := f.conn.Stats()
			t.Fatalf("hung: %d queries were not done within %v: %d started; pool: %d open, %d in use, %d callers waiting",
				queries, hang, next.Load(), st.Open, st.InUse, st.Waiting)
		}
		after, st1 := churnSnapshot(t, f)
		peak, samples := sampler.result()

		e0, n0, w0 := serverTotals(st0)
		e1, n1, w1 := serverTotals(st1)
		t.Logf("steady state: %d queries, %d callers waited for their tenant's connection; %d sessions on the server before, %d after; %d evictions, %d new connections; peak %d sessions in %d samples (cap %d)",
			next.Load(), w1-w0, len(before), len(after), e1-e0, n1-n0, peak, samples, maxConns)
		if wrong.Load() != 0 {
			t.Fatalf("%d wrong-tenant answers", wrong.Load())
		}
		if len(before) != maxConns {
			t.Errorf("the server lists %d sessions of ours once warm, want the %d the driver has open", len(before), maxConns)
		}
		if gone, added := diffSessions(before, after); gone+added != "" {
			t.Errorf("once warm the server's sessions changed: closed %s; opened %s", orNone(gone), orNone(added))
		}
		if e1 != e0 || n1 != n0 {
			t.Errorf("once warm the driver evicted %d connections and dialled %d, want none", e1-e0, n1-n0)
		}
		if peak > maxConns {
			t.Errorf("the server saw %d sessions at once, over the cap of %d", peak, maxConns)
		}
	})

	// With no eviction delay, a caller whose tenant's only connection is
	// busy must not take another tenant's warm connection; once they are
	// cold it takes one whose tenant keeps another (B's second), never a
	// tenant's last one (C's). A connection is warm for coldAfter after
	// its release: the part that needs it warm is judged only if it ended
	// within coldAfter of the releases, and is done again, on a fresh
	// connector, if a slow machine took longer (it takes milliseconds).
	t.Run("only cold surplus connections are taken", func(t *testing.T) {
		hang := hangAfter(t)
		start := time.Now()
		for attempt := 1; ; attempt++ {
			if time.Since(start) > hang {
				t.Fatalf("hung: after %v and %d attempts, none had its part that needs warm connections done within %v", hang, attempt-1, coldAfter)
			}
			f := newFixture(t, "cold", 3, driver.WithMaxConns(4), driver.WithEvictionDelay(0))
			a, b, c := f.tenants[0], f.tenants[1], f.tenants[2]
			tx, err := f.db.BeginTx(a.ctx(f.ctx), nil) // A's only connection
			if err != nil {
				t.Fatal(err)
			}
			btx, err := f.db.BeginTx(b.ctx(f.ctx), nil) // so that B dials a second
			if err != nil {
				t.Fatal(err)
			}
			released := time.Now() // B's and C's connections are released after this
			for _, ti := range []tenantInfo{b, c} {
				got, err := f.where(ti.ctx(f.ctx), f.db)
				if err != nil {
					t.Fatal(err)
				}
				f.check(ti, got)
			}
			btx.Rollback()
			if st := f.conn.Stats(); st.Open != 4 || st.Idle != 3 {
				t.Fatalf("set-up: %d open, %d idle; want 4, of which B's two and C's one idle", st.Open, st.Idle)
			}
			ctx, cancel := context.WithTimeout(a.ctx(f.ctx), 200*time.Millisecond)
			_, err = f.db.ExecContext(ctx, "SELECT 1") // A's second caller: the cap is reached
			cancel()
			if d := time.Since(released); d >= coldAfter {
				t.Logf("attempt %d: %v after the releases B's and C's connections may be cold and may be taken: trying again", attempt, d.Round(time.Millisecond))
				tx.Rollback()
				continue
			}
			if evictions, _, _ := serverTotals(f.conn.Stats()); !errors.Is(err, context.DeadlineExceeded) || evictions != 0 {
				t.Fatalf("A's second caller, with only warm connections of B and C idle: err = %v and %d evictions; want to wait (DeadlineExceeded) and none", err, evictions)
			}

			// Once they are cold, A's second caller takes B's second.
			time.Sleep(coldAfter + 100*time.Millisecond)
			ctx, cancel = context.WithTimeout(a.ctx(f.ctx), time.Minute)
			_, err = f.db.ExecContext(ctx, "SELECT 1")
			cancel()
			if err != nil {
				t.Fatalf("A's second caller, with cold connections of B and C idle: %v", err)
			}
			if evictions, _, _ := serverTotals(f.conn.Stats()); evictions != 1 {
				t.Errorf("evictions: %d, want 1", evictions)
			}
			eventually(t, hang, "B's evicted session to end", func() bool { return f.serverSessionsOf(b) == 1 })
			if n := f.serverSessionsOf(c); n != 1 {
				t.Errorf("C has %d sessions on the server, want its last one kept", n)
			}
			tx.Rollback()
			return
		}
	})
}

// serverTotals sums the servers' eviction, new connection and wait counts.
func serverTotals(st driver.Stats) (evictions, newConns, waits int64) {
	for _, ss := range st.Servers {
		evictions, newConns, waits = evictions+ss.Evictions, newConns+ss.NewConns, waits+ss.Waits
	}
	return evictions, newConns, waits
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// churnSnapshot returns the sessions the server lists for the fixture
// (pid -> start time) and the driver's stats.
func churnSnapshot(t *testing.T, f *fixture) (map[int32]time.Time, driver.Stats) {
	t.Helper()
	rows, err := f.admin.QueryContext(f.ctx, "SELECT pid, backend_start FROM pg_stat_activity WHERE application_name LIKE $1", f.tag+"-%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[int32]time.Time{}
	for rows.Next() {
		var pid int32
		var start time.Time
		if err := rows.Scan(&pid, &start); err != nil {
			t.Fatal(err)
		}
		m[pid] = start
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m, f.conn.Stats()
}

// diffSessions describes the sessions in before but not in after (gone),
// and the other way round (added): how many, and the first few pids.
func diffSessions(before, after map[int32]time.Time) (gone, added string) {
	describe := func(from, in map[int32]time.Time) string {
		var pids []string
		for pid, start := range from {
			if s, ok := in[pid]; !ok || !s.Equal(start) {
				pids = append(pids, fmt.Sprint(pid))
			}
		}
		if len(pids) == 0 {
			return ""
		}
		sort.Strings(pids)
		return fmt.Sprintf("%d: pids %s", len(pids), strings.Join(pids[:min(len(pids), 8)], " "))
	}
	return describe(before, after), describe(after, before)
}
