package driver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

// pauseProxy forwards TCP connections to PostgreSQL. pause holds back
// what the clients of the connections open at that moment send (so a
// session's Terminate does not reach the server), pauseNew that of the
// connections opened from then on (so a dial hangs), until resume.
type pauseProxy struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	pauseNew bool
	paused   []*atomic.Bool
}

func newPauseProxy(t *testing.T, target string) *pauseProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pauseProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.resume() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			paused := new(atomic.Bool)
			p.mu.Lock()
			paused.Store(p.pauseNew)
			p.paused = append(p.paused, paused)
			p.mu.Unlock()
			p.accepted.Add(1)
			// Whichever side ends, end the other: the client must see the
			// server close the session.
			go func() {
				io.Copy(c, s)
				c.Close()
				s.Close()
			}()
			go func() {
				defer c.Close()
				defer s.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					for paused.Load() {
						time.Sleep(5 * time.Millisecond)
					}
					if n > 0 {
						if _, err := s.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *pauseProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.paused {
		f.Store(true)
	}
}

func (p *pauseProxy) pauseNewConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pauseNew = true
}

func (p *pauseProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pauseNew = false
	for _, f := range p.paused {
		f.Store(false)
	}
}

// changeHooks reports every change once the connector has applied it to
// its registry and pools (the ON phase follows that work).
type changeHooks chan store.Change

func (h changeHooks) HandleChange(ctx context.Context, c store.Change, p store.Phase) error {
	if p == store.PhaseOn {
		h <- c
	}
	return nil
}

// A caller given the slot of another tenant's evicted connection waits,
// in no queue, for the server to end that session. If its tenant is
// deleted or moved meanwhile, it must not dial the old URL when the slot
// arrives: the query fails as for an unknown tenant, or runs on the new
// database. The same holds for a tenant changed while a caller's dial to
// it is in flight.
func TestTenantChangeWhileAcquiring(t *testing.T) {
	for _, tc := range []struct{ change, during string }{
		{"update", "hand-over"}, {"delete", "hand-over"},
		{"update", "dial"}, {"delete", "dial"},
	} {
		change := tc.change
		t.Run(tc.change+" during "+tc.during, func(t *testing.T) {
			testenv.EnsureDatabases(t, "tsql_t_0", "tsql_t_1")
			base, err := url.Parse(testenv.DatabaseURL(t, "tsql_t_0"))
			if err != nil {
				t.Fatal(err)
			}
			px := newPauseProxy(t, base.Host)
			viaProxy := func(db, app string) string {
				u, err := url.Parse(testenv.DatabaseURL(t, db, "application_name", app))
				if err != nil {
					t.Fatal(err)
				}
				u.Host = px.ln.Addr().String()
				return u.String()
			}
			tag := fmt.Sprintf("ho-%s-%s-%s", change, tc.during[:4], runID)
			idA, idB := tag+"-a.test", tag+"-b.test"
			appOld, appNew := tag+"-a-old", tag+"-a-new"
			ctx := context.Background()
			s := store.NewMemory()
			if _, err := s.Create(ctx, store.Tenant{ID: idA, DeployInfo: map[string]string{store.KeyPostgresURL: viaProxy("tsql_t_0", appOld)}}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Create(ctx, store.Tenant{ID: idB, DeployInfo: map[string]string{store.KeyPostgresURL: viaProxy("tsql_t_1", tag+"-b")}}); err != nil {
				t.Fatal(err)
			}
			hooks := make(changeHooks, 64)
			c, err := driver.NewConnector(s, driver.WithMaxConns(1), driver.WithHooks(hooks))
			if err != nil {
				t.Fatal(err)
			}
			db := sqlOpenDB(t, c)
			admin := testenv.Admin(t)
			if _, err := db.ExecContext(tenantCtx(idB), "SELECT 1"); err != nil { // B holds the only slot, idle
				t.Fatal(err)
			}

			if tc.during == "hand-over" {
				px.pause() // the server will not see B's session end until resume
			} else {
				px.pauseNewConns() // A's dial will hang until resume
			}
			accepted := px.accepted.Load()
			type result struct {
				a   answer
				err error
			}
			res := make(chan result, 1)
			go func() {
				qctx, cancel := context.WithTimeout(tenantCtx(idA), 30*time.Second)
				defer cancel()
				var r result
				r.err = db.QueryRowContext(qctx, whereAmI).Scan(&r.a.DB, &r.a.App)
				res <- r
			}()
			if tc.during == "hand-over" {
				// A takes B's slot at once (it has no connection) and waits
				// for B's session to end.
				eventually(t, 5*time.Second, "A to evict B's connection", func() bool {
					st, ok := c.TenantStats(idB)
					return ok && st.Evictions == 1
				})
			} else {
				eventually(t, 5*time.Second, "A to dial", func() bool { return px.accepted.Load() > accepted })
			}

			var want store.EventType
			switch change {
			case "update":
				want = store.EventUpdate
				_, err = s.Update(ctx, store.Tenant{ID: idA, DeployInfo: map[string]string{store.KeyPostgresURL: viaProxy("tsql_t_1", appNew)}})
			case "delete":
				want = store.EventDelete
				_, err = s.Delete(ctx, idA)
			}
			if err != nil {
				t.Fatal(err)
			}
			for ch := range hooks {
				if ch.Type == want && ch.Tenant.ID == idA {
					break
				}
			}
			px.resume() // B's session ends, or A's dial completes

			var r result
			select {
			case r = <-res:
			case <-time.After(20 * time.Second):
				t.Fatal("A's query did not return")
			}
			switch change {
			case "update":
				if r.err != nil {
					t.Fatalf("A's query after the move: %v", r.err)
				}
				if r.a.DB != "tsql_t_1" || r.a.App != appNew {
					t.Errorf("A's query ran on %q as %q after A moved to %q as %q", r.a.DB, r.a.App, "tsql_t_1", appNew)
				}
			case "delete":
				if !errors.Is(r.err, driver.ErrUnknownTenant) {
					t.Errorf("A's query after A was deleted: answer %+v, err %v; want ErrUnknownTenant", r.a, r.err)
				}
			}
			var old int
			if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", appOld).Scan(&old); err != nil {
				t.Fatal(err)
			}
			if old != 0 {
				t.Errorf("the server has %d sessions on A's old URL", old)
			}
		})
	}
}
