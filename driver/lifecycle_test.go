package driver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
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

// recorder collects hook events in the order they ran.
type recorder struct {
	mu  sync.Mutex
	got []hooks.Event
}

func (r *recorder) hook(ctx context.Context, ev hooks.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, ev)
	return nil
}

func (r *recorder) kinds(id string) []hooks.Kind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []hooks.Kind
	for _, ev := range r.got {
		if ev.Tenant.ID == id {
			out = append(out, ev.Kind)
		}
	}
	return out
}

func newTenantInfo(t *testing.T, f *fixture, name, db string) tenantInfo {
	testenv.EnsureDatabases(t, db)
	ti := tenantInfo{ID: f.tag + "-" + name + ".test", DB: db}
	ti.URL = testenv.DatabaseURL(t, db, "application_name", ti.ID)
	return ti
}

// Hooks run promptly in the process, ON before POST, for create, update
// and delete, with the tenant in their context; tenants known at start-up
// run none.
// quietLog keeps the expected failures of these tests out of their output.
var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestHooksRunForEveryChange(t *testing.T) {
	reg := hooks.New(quietLog)
	rec := &recorder{}
	for _, k := range []hooks.Kind{hooks.OnCreate, hooks.PostCreate, hooks.OnUpdate, hooks.PostUpdate, hooks.OnDelete, hooks.PostDelete} {
		reg.Subscribe(k, rec.hook)
	}
	var ctxTenant atomic.Value
	reg.Subscribe(hooks.PostCreate, func(ctx context.Context, ev hooks.Event) error {
		id, _ := tenantctx.TenantFrom(ctx)
		ctxTenant.Store(id)
		return nil
	})
	f := newFixture(t, "hookrun", 1, driver.WithHooks(reg))
	bg := context.Background()
	ti := newTenantInfo(t, f, "new", "tsql_t_1")
	f.add(ti)
	eventually(t, 5*time.Second, "the create hooks, without any query", func() bool { return len(rec.kinds(ti.ID)) == 2 })
	if got, _ := ctxTenant.Load().(string); got != ti.ID {
		t.Errorf("hook context names tenant %q, want %q", got, ti.ID)
	}
	if _, err := f.store.Update(bg, store.Tenant{ID: ti.ID, DeployInfo: map[string]string{store.KeyPostgresURL: ti.URL, "PLAN": "gold"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Delete(bg, ti.ID); err != nil {
		t.Fatal(err)
	}
	want := []hooks.Kind{hooks.OnCreate, hooks.PostCreate, hooks.OnUpdate, hooks.PostUpdate, hooks.OnDelete, hooks.PostDelete}
	eventually(t, 5*time.Second, "all six hooks in order", func() bool { return len(rec.kinds(ti.ID)) == len(want) })
	got := rec.kinds(ti.ID)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("hooks ran as %v, want %v", got, want)
		}
	}
	// The fixture's tenant was created a moment before the connector
	// started: it may have been created while this process was still
	// connecting to the store, so its create hooks run here too.
	eventually(t, 5*time.Second, "the create hooks of the tenant created just before start-up", func() bool {
		return len(rec.kinds(f.tenants[0].ID)) == 2
	})
}

// Tenants that existed well before the process started run no hooks:
// their create hooks ran when they were created.
func TestOldTenantsRunNoHooks(t *testing.T) {
	reg := hooks.New(quietLog)
	rec := &recorder{}
	reg.Subscribe(hooks.OnCreate, rec.hook)
	reg.Subscribe(hooks.PostCreate, rec.hook)
	testenv.EnsureDatabases(t, "tsql_t_0")
	path := filepath.Join(t.TempDir(), "tenants.json")
	doc := `{"tenants": {
		"old.test": {"deploy_info": {"POSTGRES_URL": "` + testenv.DatabaseURL(t, "tsql_t_0") + `"}, "created_at": "2026-01-01T00:00:00Z"},
		"undated.test": {"deploy_info": {"POSTGRES_URL": "` + testenv.DatabaseURL(t, "tsql_t_0") + `"}}
	}}`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenFile(context.Background(), path, store.WithFilePollInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := driver.NewConnector(s, driver.WithHooks(reg))
	if err != nil {
		t.Fatal(err)
	}
	db := sqlOpenDB(t, c)
	for _, id := range []string{"old.test", "undated.test"} {
		if _, err := db.ExecContext(tenantCtx(id), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		if n := len(rec.kinds(id)); n != 0 {
			t.Errorf("%s, known long before start-up, ran %d hooks", id, n)
		}
	}
}

// The first query for a new tenant waits for its create hooks, which can
// query the tenant themselves, and then runs; if a hook failed, queries get
// ErrTenantNotReady with the cause, other hooks still ran, and an update
// retries the create hooks.
func TestTenantReadiness(t *testing.T) {
	reg := hooks.New(quietLog)
	f := newFixture(t, "ready", 1, driver.WithHooks(reg))
	bg := context.Background()
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseHook := func() { releaseOnce.Do(func() { close(release) }) }
	// parked is the query that waits for the slow tenant's hooks.
	var parked sync.WaitGroup
	// Whatever failed, the hook blocked on <-release is let go and the
	// parked query is waited for before the fixture closes the connector
	// (cleanups run last-in first-out: this one runs before the fixture's).
	t.Cleanup(func() {
		releaseHook()
		parked.Wait()
	})
	var hookSaw answer
	var secondRan atomic.Int64
	fail := atomic.Bool{}
	fail.Store(true)
	reg.Subscribe(hooks.PostCreate, func(ctx context.Context, ev hooks.Event) error {
		if ev.Tenant.ID != f.tag+"-slow.test" {
			return nil
		}
		// The hook queries its own tenant before the tenant is ready.
		if _, err := f.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS ready_marks (n int)"); err != nil {
			return err
		}
		var err error
		hookSaw, err = f.where(ctx, f.db)
		if err != nil {
			return err
		}
		<-release
		return nil
	})
	reg.Subscribe(hooks.PostCreate, func(ctx context.Context, ev hooks.Event) error {
		if ev.Tenant.ID != f.tag+"-broken.test" {
			return nil
		}
		if fail.Load() {
			// Quoting the tenant's URL, password included, as a careless
			// hook might: Stats must not show it.
			return fmt.Errorf("migration 3 failed: relation x exists (on %s)", ev.Tenant.PostgresURL())
		}
		return nil
	})
	reg.Subscribe(hooks.PostCreate, func(ctx context.Context, ev hooks.Event) error {
		if ev.Tenant.ID == f.tag+"-broken.test" {
			secondRan.Add(1)
			panic("boom")
		}
		return nil
	})

	slow := newTenantInfo(t, f, "slow", "tsql_t_1")
	f.add(slow)
	ctx, cancel := context.WithTimeout(slow.ctx(bg), 200*time.Millisecond)
	_, err := f.db.ExecContext(ctx, "SELECT 1")
	cancel()
	if err == nil {
		t.Fatal("a query for the new tenant ran while its create hooks were still running: the readiness gate was skipped")
	}
	if !errors.Is(err, driver.ErrTenantNotReady) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("query during the create hooks with a short deadline: %v, want ErrTenantNotReady and DeadlineExceeded (the readiness gate was not waited for)", err)
	}
	done := make(chan error, 1)
	parked.Add(1)
	go func() {
		defer parked.Done()
		var n int
		done <- f.db.QueryRowContext(slow.ctx(bg), "SELECT count(*) FROM ready_marks").Scan(&n)
	}()
	select {
	case err := <-done:
		t.Fatalf("query ran before the create hooks finished (the readiness gate was skipped): %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	releaseHook()
	if err := <-done; err != nil {
		t.Fatalf("first query after the hooks: %v", err)
	}
	f.check(slow, hookSaw)

	broken := newTenantInfo(t, f, "broken", "tsql_t_2")
	// A password of its own, to look for in what Stats shows; it never
	// connects (its hooks fail), so any password will do.
	u, err := url.Parse(broken.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "secret-pw")
	broken.URL = u.String()
	f.add(broken)
	_, err = f.db.ExecContext(broken.ctx(bg), "SELECT 1")
	if !errors.Is(err, driver.ErrTenantNotReady) {
		t.Fatalf("query after failed hooks: %v, want ErrTenantNotReady", err)
	}
	mustContain(t, err, "migration 3 failed", "panicked", broken.ID)
	if secondRan.Load() != 1 {
		t.Errorf("the hook after the failing one ran %d times, want 1", secondRan.Load())
	}
	if fs := reg.Failures(broken.ID); len(fs) != 2 {
		t.Errorf("failures kept: %v, want 2", fs)
	}
	// Stats says which tenant is not ready and why, without its password.
	st := f.conn.Stats()
	if ts := st.Tenants[slow.ID]; !ts.Ready || ts.LastHookFailure != nil {
		t.Errorf("Stats of the tenant whose hooks succeeded: Ready %v, LastHookFailure %+v; want ready, no failure", ts.Ready, ts.LastHookFailure)
	}
	bs := st.Tenants[broken.ID]
	if bs.Ready || bs.LastHookFailure == nil || bs.LastHookFailure.Change != "create" {
		t.Fatalf("Stats of the tenant whose hooks failed: Ready %v, LastHookFailure %+v; want not ready, a create's failure", bs.Ready, bs.LastHookFailure)
	}
	if msg := bs.LastHookFailure.Error; !strings.Contains(msg, "migration 3 failed") || !strings.Contains(msg, "panicked") || strings.Contains(msg, "secret-pw") {
		t.Errorf("LastHookFailure.Error = %q: want both hooks' causes and no password", msg)
	}
	fail.Store(false)
	if _, err := f.store.Update(bg, store.Tenant{ID: broken.ID, DeployInfo: map[string]string{store.KeyPostgresURL: broken.URL}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the retried create hooks (the panicking one still fails)", func() bool { return secondRan.Load() == 2 })
	_, err = f.db.ExecContext(broken.ctx(bg), "SELECT 1")
	mustContain(t, err, "panicked")
	if f := f.conn.Stats().Tenants[broken.ID].LastHookFailure; f == nil || !f.Time.After(bs.LastHookFailure.Time) || f.Change != "create" {
		t.Errorf("after the retried create failed again: LastHookFailure %+v, want a later create's", f)
	}
}

// quotingHooks is a Hooks of the user's own, not the hooks package's
// (which scrubs its errors): its create hooks fail with an error that
// quotes every value of the tenant's deploy_info, secrets included.
type quotingHooks struct{ fail atomic.Bool }

func (h *quotingHooks) HandleChange(ctx context.Context, ch store.Change, p store.Phase) error {
	if ch.Type != store.EventCreate || p != store.PhasePost || !h.fail.Load() {
		return nil
	}
	return fmt.Errorf("provisioning failed with %v", ch.Tenant.DeployInfo)
}

// A tenant's last hook failure shows what went wrong without any of its
// secrets, whatever the key that holds one, and goes with the tenant: one
// created again under its id starts clean.
func TestLastHookFailureMasksSecrets(t *testing.T) {
	h := &quotingHooks{}
	h.fail.Store(true)
	f := newFixture(t, "hookfail", 1, driver.WithHooks(h), driver.WithLogger(quietLog))
	bg := context.Background()
	ti := newTenantInfo(t, f, "quoted", "tsql_t_1")
	info := map[string]string{
		store.KeyPostgresURL: ti.URL,
		"REDIS_URL":          "redis://cache:redis-pw-7@10.0.0.9:6379/0",
		"BILLING_API_KEY":    "sk-live-abc123",
		"REGION":             "eu-west",
	}
	if _, err := f.store.Create(bg, store.Tenant{ID: ti.ID, DeployInfo: info}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.ExecContext(ti.ctx(bg), "SELECT 1"); !errors.Is(err, driver.ErrTenantNotReady) {
		t.Fatalf("query after the failed create hooks: %v, want ErrTenantNotReady", err)
	}
	got := f.conn.Stats().Tenants[ti.ID].LastHookFailure
	if got == nil {
		t.Fatal("Stats shows no hook failure for the tenant whose create hooks failed")
	}
	for _, secret := range []string{"redis-pw-7", "sk-live-abc123"} {
		if strings.Contains(got.Error, secret) {
			t.Errorf("LastHookFailure.Error shows the secret %q: %s", secret, got.Error)
		}
	}
	if !strings.Contains(got.Error, "eu-west") || !strings.Contains(got.Error, "10.0.0.9") {
		t.Errorf("LastHookFailure.Error = %q: want what is not secret kept (the region, the Redis host)", got.Error)
	}

	if _, err := f.store.Delete(bg, ti.ID); err != nil {
		t.Fatal(err)
	}
	h.fail.Store(false)
	if _, err := f.store.Create(bg, store.Tenant{ID: ti.ID, DeployInfo: info}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.ExecContext(ti.ctx(bg), "SELECT 1"); err != nil {
		t.Fatalf("query of the tenant created again: %v", err)
	}
	if ts := f.conn.Stats().Tenants[ti.ID]; !ts.Ready || ts.LastHookFailure != nil {
		t.Errorf("the tenant created again under its id: Ready %v, LastHookFailure %+v; want ready, with no failure of the deleted one", ts.Ready, ts.LastHookFailure)
	}
}
