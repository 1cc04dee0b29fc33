package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// The tests of routing while tenants change: once a store call has
// returned, this process's queries use what it wrote; hooks act on the
// configuration of their own change; a move is served only once its hooks
// are done. Every answer is the server's.

// motionDBs are the databases these tests move tenants between.
var motionDBs = testenv.Names("tsql_t", 4)

// motionStores opens each kind of store a connector can follow in this
// process: the stores whose writes it must see at once.
func motionStores(t *testing.T) map[string]func(t *testing.T) store.Store {
	return map[string]func(t *testing.T) store.Store{
		"memory": func(t *testing.T) store.Store { return store.NewMemory() },
		"file": func(t *testing.T) store.Store {
			s, err := store.OpenFile(context.Background(), filepath.Join(t.TempDir(), "tenants.json"), store.WithFileCreate(true))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"redis": func(t *testing.T) store.Store {
			s, err := store.OpenRedis(context.Background(), testenv.RedisURL(t), store.WithRedisPrefix(testenv.RedisPrefix(t)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
}

// config is one configuration of a tenant: a database and an
// application_name that no other configuration has, so an answer names
// the configuration it ran on.
type config struct{ db, app, url string }

func (c config) tenant(id string) store.Tenant {
	return store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: c.url}}
}

// is reports whether the server's answer names this configuration.
func (c config) is(a answer) bool { return a.DB == c.db && a.App == c.app }

func (c config) String() string { return c.db + " as " + c.app }

// configs returns n configurations for tag, spread over motionDBs so that
// consecutive ones are on different databases.
func configs(t testing.TB, tag string, n int) []config {
	out := make([]config, n)
	for i := range out {
		c := config{db: motionDBs[i%len(motionDBs)], app: fmt.Sprintf("%s.%d", tag, i)}
		c.url = testenv.DatabaseURL(t, c.db, "application_name", c.app)
		out[i] = c
	}
	return out
}

var motionSeq = make(chan int, 1)

func init() { motionSeq <- 0 }

func motionTag(name string) string {
	n := <-motionSeq
	motionSeq <- n + 1
	return fmt.Sprintf("mo%d-%s-%s", n, runID, name)
}

// openOn opens a tenantsql *sql.DB following s, with reg's hooks.
func openOn(t *testing.T, s store.Store, reg *hooks.Registry, opts ...driver.Option) *sql.DB {
	t.Helper()
	testenv.EnsureDatabases(t, motionDBs...)
	c, err := driver.NewConnector(s, append([]driver.Option{driver.WithHooks(reg), driver.WithLogger(quietLog)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	db := sqlOpenDB(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// ranOn runs whereAmI for tenant id and returns the configuration the
// server says it ran on.
func ranOn(ctx context.Context, db *sql.DB, id string) (answer, error) {
	var a answer
	err := db.QueryRowContext(tenantctx.WithTenant(ctx, id), whereAmI).Scan(&a.DB, &a.App)
	return a, err
}

// Right after Update, Delete or Create returns, the next query of this
// process runs on what it wrote: the new database, no tenant, the
// re-created tenant. Before, the next query ran on the old database about
// half the time, and a deleted tenant kept being served.
func TestReadYourWrites(t *testing.T) {
	for name, open := range motionStores(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			db := openOn(t, s, hooks.New(quietLog))
			ctx := context.Background()
			id := motionTag("ryw") + ".test"
			cfgs := configs(t, id, 60)
			if _, err := s.Create(ctx, cfgs[0].tenant(id)); err != nil {
				t.Fatal(err)
			}
			for i, want := range cfgs {
				if i > 0 {
					if _, err := s.Update(ctx, want.tenant(id)); err != nil {
						t.Fatal(err)
					}
				}
				got, err := ranOn(ctx, db, id)
				if err != nil {
					t.Fatalf("change %d: query right after the update: %v", i, err)
				}
				if !want.is(got) {
					t.Fatalf("change %d: query right after the update ran on %v, want %v", i, got, want)
				}
			}
			recreated := configs(t, id+"-again", 20)
			for i, want := range recreated {
				if _, err := s.Delete(ctx, id); err != nil {
					t.Fatal(err)
				}
				if got, err := ranOn(ctx, db, id); !errors.Is(err, driver.ErrUnknownTenant) {
					t.Fatalf("round %d: query right after the delete: %v, %v; want ErrUnknownTenant", i, got, err)
				}
				if _, err := s.Create(ctx, want.tenant(id)); err != nil {
					t.Fatal(err)
				}
				got, err := ranOn(ctx, db, id)
				if err != nil || !want.is(got) {
					t.Fatalf("round %d: query right after the re-create ran on %v (%v), want %v", i, got, err, want)
				}
			}
		})
	}
}

// A delete hook that cleans up with the context it is given reaches the
// database being deleted, even when the tenant has been created again on
// another database before the hook queries. Before, it reached the new
// one and deleted the new tenant's rows, every time.
// A hook's context kept past its hooks (context.WithoutCancel) reaches
// nothing: the deleted configuration is no longer the hook's, and the
// tenant re-created under the same id never was.
func TestHookContextAfterItsHooks(t *testing.T) {
	reg := hooks.New(quietLog)
	kept := make(chan context.Context, 1)
	reg.Subscribe(hooks.OnDelete, func(ctx context.Context, ev hooks.Event) error {
		kept <- context.WithoutCancel(ctx)
		return nil
	})
	s := store.NewMemory()
	db := openOn(t, s, reg)
	ctx := context.Background()
	id := motionTag("hookended") + ".test"
	cfgs := configs(t, id, 2)
	if _, err := s.Create(ctx, cfgs[0].tenant(id)); err != nil {
		t.Fatal(err)
	}
	if got, err := ranOn(ctx, db, id); err != nil || !cfgs[0].is(got) {
		t.Fatalf("before the delete: ran on %v (%v), want %v", got, err, cfgs[0])
	}
	if _, err := s.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	var hctx context.Context
	select {
	case hctx = <-kept:
	case <-time.After(hangAfter(t)):
		t.Fatal("the delete hook never ran")
	}
	const refused = "used after its hooks returned"
	// Until the hook has returned its queries still reach the deleted
	// configuration; after, they must be refused.
	var last error
	eventually(t, hangAfter(t), "a query with the kept hook context to be refused once its hooks returned", func() bool {
		_, last = ranOn(hctx, db, id)
		return last != nil && strings.Contains(last.Error(), refused)
	})
	if _, err := s.Create(ctx, cfgs[1].tenant(id)); err != nil {
		t.Fatal(err)
	}
	if got, err := ranOn(ctx, db, id); err != nil || !cfgs[1].is(got) {
		t.Fatalf("the re-created tenant: ran on %v (%v), want %v", got, err, cfgs[1])
	}
	if got, err := ranOn(hctx, db, id); err == nil || !strings.Contains(err.Error(), refused) {
		t.Fatalf("the kept hook context after the re-create: ran on %v (%v), want an error saying it was %s", got, err, refused)
	}
}

func TestDeleteHookReachesTheDeletedDatabase(t *testing.T) {
	reg := hooks.New(quietLog)
	type hookAnswer struct {
		got answer
		err error
	}
	recreated := make(chan struct{})
	answers := make(chan hookAnswer, 1)
	var db *sql.DB
	reg.Subscribe(hooks.OnDelete, func(ctx context.Context, ev hooks.Event) error {
		select {
		case <-recreated: // the re-create has been applied here
		case <-ctx.Done():
			return ctx.Err()
		}
		var a hookAnswer
		a.err = db.QueryRowContext(ctx, whereAmI).Scan(&a.got.DB, &a.got.App)
		answers <- a
		return a.err
	})
	s := store.NewMemory()
	db = openOn(t, s, reg)
	ctx := context.Background()
	id := motionTag("delhook") + ".test"
	const rounds = 10
	cfgs := configs(t, id, rounds+1)
	if _, err := s.Create(ctx, cfgs[0].tenant(id)); err != nil {
		t.Fatal(err)
	}
	for i := range rounds {
		old, next := cfgs[i], cfgs[i+1]
		if _, err := s.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, next.tenant(id)); err != nil {
			t.Fatal(err)
		}
		recreated <- struct{}{}
		var a hookAnswer
		select {
		case a = <-answers:
		case <-time.After(hangAfter(t)):
			t.Fatalf("round %d: the delete hook's query never answered (did it wait for the re-created tenant's gate?)", i)
		}
		if a.err != nil {
			t.Fatalf("round %d: the delete hook's query: %v", i, a.err)
		}
		if !old.is(a.got) {
			t.Fatalf("round %d: the delete hook's query ran on %v, want the deleted configuration %v", i, a.got, old)
		}
		// And the new tenant is served on its own database.
		if got, err := ranOn(ctx, db, id); err != nil || !next.is(got) {
			t.Fatalf("round %d: the re-created tenant's query ran on %v (%v), want %v", i, got, err, next)
		}
	}
}

// An update hook runs on the configuration of its own update, even when a
// later update has replaced it before the hook queries, and its queries do
// not wait for (nor pass) the gate of the later one.
func TestUpdateHookRunsOnItsOwnConfiguration(t *testing.T) {
	reg := hooks.New(quietLog)
	type hookAnswer struct {
		want config
		got  answer
		err  error
	}
	proceed := make(chan struct{})
	answers := make(chan hookAnswer, 2)
	var db *sql.DB
	byApp := map[string]config{}
	reg.Subscribe(hooks.OnUpdate, func(ctx context.Context, ev hooks.Event) error {
		select {
		case <-proceed:
		case <-ctx.Done():
			return ctx.Err()
		}
		a := hookAnswer{want: byApp[ev.Tenant.PostgresURL()]}
		a.err = db.QueryRowContext(ctx, whereAmI).Scan(&a.got.DB, &a.got.App)
		answers <- a
		return a.err
	})
	s := store.NewMemory()
	db = openOn(t, s, reg)
	ctx := context.Background()
	id := motionTag("updhook") + ".test"
	cfgs := configs(t, id, 3)
	for _, c := range cfgs {
		byApp[c.url] = c
	}
	if _, err := s.Create(ctx, cfgs[0].tenant(id)); err != nil {
		t.Fatal(err)
	}
	// B, then C at once: B's hook queries after C is in effect here.
	for _, c := range cfgs[1:] {
		if _, err := s.Update(ctx, c.tenant(id)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		proceed <- struct{}{}
		a := <-answers
		if a.err != nil || !a.want.is(a.got) {
			t.Fatalf("the update hook for %v queried %v (%v)", a.want, a.got, a.err)
		}
	}
	if got, err := ranOn(ctx, db, id); err != nil || !cfgs[2].is(got) {
		t.Fatalf("after both updates the tenant's query ran on %v (%v), want %v", got, err, cfgs[2])
	}
}

// A tenant moved to another database is not served until that update's
// hooks have succeeded here: its queries wait (and, if their context ends
// first, fail with ErrTenantNotReady); if a hook fails they get
// ErrTenantNotReady with the cause, and the next update retries the hooks.
// Before, the next query ran on the new database before its hooks had
// created or migrated it.
func TestMoveIsGated(t *testing.T) {
	reg := hooks.New(quietLog)
	release := make(chan error)
	reg.Subscribe(hooks.PostUpdate, func(ctx context.Context, ev hooks.Event) error {
		select {
		case err := <-release:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	s := store.NewMemory()
	db := openOn(t, s, reg)
	ctx := context.Background()
	id := motionTag("move") + ".test"
	cfgs := configs(t, id, 3)
	if _, err := s.Create(ctx, cfgs[0].tenant(id)); err != nil {
		t.Fatal(err)
	}
	if got, err := ranOn(ctx, db, id); err != nil || !cfgs[0].is(got) {
		t.Fatalf("before the move: ran on %v (%v), want %v", got, err, cfgs[0])
	}
	if _, err := s.Update(ctx, cfgs[1].tenant(id)); err != nil {
		t.Fatal(err)
	}
	// The hook cannot return before the test releases it, so this wait
	// ends by the context whatever the machine's speed.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	got, err := ranOn(short, db, id)
	cancel()
	if !errors.Is(err, driver.ErrTenantNotReady) {
		t.Fatalf("while the move's hooks run: ran on %v (%v), want ErrTenantNotReady", got, err)
	}
	mustContain(t, err, id, "update")

	// A query that is waiting when the hooks succeed runs on the new
	// database.
	type result struct {
		got answer
		err error
	}
	waiting := make(chan result, 1)
	go func() {
		got, err := ranOn(ctx, db, id)
		waiting <- result{got, err}
	}()
	release <- nil
	if r := <-waiting; r.err != nil || !cfgs[1].is(r.got) {
		t.Fatalf("after the move's hooks: ran on %v (%v), want %v", r.got, r.err, cfgs[1])
	}

	// A failed move: queries say why; an update to the same URL retries.
	if _, err := s.Update(ctx, cfgs[2].tenant(id)); err != nil {
		t.Fatal(err)
	}
	release <- errors.New("database not reachable")
	got, err = ranOn(ctx, db, id)
	if !errors.Is(err, driver.ErrTenantNotReady) {
		t.Fatalf("after the move's hooks failed: ran on %v (%v), want ErrTenantNotReady", got, err)
	}
	mustContain(t, err, "database not reachable")
	retry := cfgs[2].tenant(id)
	retry.DeployInfo["NOTE"] = "retry"
	if _, err := s.Update(ctx, retry); err != nil {
		t.Fatal(err)
	}
	release <- nil
	if got, err := ranOn(ctx, db, id); err != nil || !cfgs[2].is(got) {
		t.Fatalf("after the retried hooks: ran on %v (%v), want %v", got, err, cfgs[2])
	}
}

// TestLifecycleStress queries a few tenants from several goroutines while
// others update, delete and re-create them on a few databases, on the
// memory and the Redis store. Every answer is the server's, and must come
// from a configuration no older than the last change that had returned
// when the query started, and no newer than the last one started when it
// ended; a transaction's statements all run on one configuration; every
// hook query runs on its own change's configuration. The work is fixed (a
// number of changes per tenant, each followed by a query that started
// after it); the deadline only catches a hang.
func TestLifecycleStress(t *testing.T) {
	for _, name := range []string{"memory", "redis"} {
		t.Run(name, func(t *testing.T) { lifecycleStress(t, motionStores(t)[name](t)) })
	}
}

// churned is one tenant under change: every configuration it was given,
// in order (a nil entry is a delete), and how far its changes went.
type churned struct {
	id      string
	mu      sync.Mutex
	states  []*config      // guarded by mu
	byApp   map[string]int // guarded by mu: application_name -> index in states
	begun   atomic.Int64   // index of the last change started
	done    atomic.Int64   // index of the last change returned
	checked chan int64     // the change after which a checked query started
}

func (c *churned) begin(cfg *config) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = append(c.states, cfg)
	if cfg != nil {
		c.byApp[cfg.app] = len(c.states) - 1
	}
	c.begun.Store(int64(len(c.states) - 1))
	return len(c.states) - 1
}

// judge says what is wrong with an answer (or error) to a query that
// started when change lo had returned and ended when change hi had begun.
func (c *churned) judge(lo, hi int64, got answer, err error) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case errors.Is(err, driver.ErrUnknownTenant):
		for i := lo; i <= hi; i++ {
			if c.states[i] == nil {
				return ""
			}
		}
		return fmt.Sprintf("unknown tenant, but it existed throughout changes %d..%d", lo, hi)
	case err != nil:
		return err.Error()
	}
	j, ok := c.byApp[got.App]
	switch {
	case !ok:
		return fmt.Sprintf("ran as %q, none of its configurations", got.App)
	case c.states[j].db != got.DB:
		return fmt.Sprintf("ran as %q on database %s, want %s", got.App, got.DB, c.states[j].db)
	case int64(j) < lo || int64(j) > hi:
		return fmt.Sprintf("ran on configuration %d (%v), want one of %d..%d", j, c.states[j], lo, hi)
	}
	return ""
}

func lifecycleStress(t *testing.T, s store.Store) {
	const (
		tenants = 4
		changes = 40 // per tenant
		readers = 6
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var (
		hookMu   sync.Mutex
		hookURLs = map[string]config{} // POSTGRES_URL -> configuration
		hookRuns atomic.Int64
		failures = make(chan string, 100)
	)
	fail := func(format string, args ...any) {
		select {
		case failures <- fmt.Sprintf(format, args...):
		default:
		}
	}
	var db *sql.DB
	reg := hooks.New(quietLog)
	for _, k := range []hooks.Kind{hooks.OnCreate, hooks.PostCreate, hooks.OnUpdate, hooks.PostUpdate, hooks.OnDelete, hooks.PostDelete} {
		reg.Subscribe(k, func(hctx context.Context, ev hooks.Event) error {
			hookMu.Lock()
			want, ok := hookURLs[ev.Tenant.PostgresURL()]
			hookMu.Unlock()
			var got answer
			err := db.QueryRowContext(hctx, whereAmI).Scan(&got.DB, &got.App)
			switch {
			case errors.Is(err, context.Canceled) && ctx.Err() != nil:
			case err != nil:
				fail("%v hook of %s (%v): %v", ev.Kind, ev.Tenant.ID, want, err)
			case !ok || !want.is(got):
				fail("%v hook of %s for %v ran on %v", ev.Kind, ev.Tenant.ID, want, got)
			}
			hookRuns.Add(1)
			return nil
		})
	}
	db = openOn(t, s, reg, driver.WithMaxConns(24))
	db.SetMaxOpenConns(readers * 2)

	tag := motionTag("churn")
	ts := make([]*churned, tenants)
	for i := range ts {
		c := &churned{id: fmt.Sprintf("%s-%d.test", tag, i), byApp: map[string]int{}, checked: make(chan int64, 1)}
		cfgs := configs(t, c.id, changes+1)
		hookMu.Lock()
		for _, cfg := range cfgs {
			hookURLs[cfg.url] = cfg
		}
		hookMu.Unlock()
		c.begin(&cfgs[0])
		if _, err := s.Create(ctx, cfgs[0].tenant(c.id)); err != nil {
			t.Fatal(err)
		}
		ts[i] = c
	}

	var writers, readersWG sync.WaitGroup
	stop := make(chan struct{})
	for _, c := range ts {
		writers.Add(1)
		go func() {
			defer writers.Done()
			cfgs := configs(t, c.id, changes+1)
			exists := true
			for k := 1; k <= changes; k++ {
				var err error
				switch {
				case !exists:
					c.begin(&cfgs[k])
					_, err = s.Create(ctx, cfgs[k].tenant(c.id))
					exists = true
				case k%5 == 0:
					c.begin(nil)
					_, err = s.Delete(ctx, c.id)
					exists = false
				default:
					c.begin(&cfgs[k])
					_, err = s.Update(ctx, cfgs[k].tenant(c.id))
				}
				if err != nil {
					fail("change %d of %s: %v", k, c.id, err)
					return
				}
				c.done.Store(c.begun.Load())
				// Wait until a query that started after this change was
				// checked, so every change is tried, however slow.
				for after := int64(-1); after < c.done.Load(); {
					select {
					case after = <-c.checked:
					case <-ctx.Done():
						fail("%s: no query checked after change %d before the deadline", c.id, k)
						return
					}
				}
			}
		}()
	}
	var queries, inTx atomic.Int64
	for r := range readers {
		readersWG.Add(1)
		go func() {
			defer readersWG.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				c := ts[(r+n)%len(ts)]
				lo := c.done.Load()
				got, err := ranOn(ctx, db, c.id)
				if n%7 == 0 && err == nil {
					// A transaction stays on the configuration it began on.
					tx, err2 := db.BeginTx(tenantctx.WithTenant(ctx, c.id), nil)
					if err2 == nil {
						var a, b answer
						err2 = tx.QueryRowContext(tenantctx.WithTenant(ctx, c.id), whereAmI).Scan(&a.DB, &a.App)
						if err2 == nil {
							err2 = tx.QueryRowContext(tenantctx.WithTenant(ctx, c.id), whereAmI).Scan(&b.DB, &b.App)
						}
						tx.Rollback()
						if err2 == nil && a != b {
							fail("%s: one transaction ran on %v, then on %v", c.id, a, b)
						}
						inTx.Add(1)
					}
					if err2 != nil && !errors.Is(err2, driver.ErrUnknownTenant) {
						fail("%s: transaction: %v", c.id, err2)
					}
				}
				hi := c.begun.Load()
				if ctx.Err() != nil {
					return
				}
				if why := c.judge(lo, hi, got, err); why != "" {
					fail("%s: query after change %d: %s", c.id, lo, why)
				}
				queries.Add(1)
				select {
				case c.checked <- lo:
				default:
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	readersWG.Wait()
	close(failures)
	n := 0
	for f := range failures {
		t.Error(f)
		if n++; n == 20 {
			break
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("did not finish before the deadline: %d queries checked", queries.Load())
	}
	t.Logf("%d changes, %d queries checked (%d with a transaction), %d hook queries", tenants*changes, queries.Load(), inTx.Load(), hookRuns.Load())
}
