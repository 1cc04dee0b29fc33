package tenantcache_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/tenantcache"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// stallScans is a go-redis hook that holds every SCAN whose MATCH pattern
// holds match until release is closed or the command's context ends: a
// drop of keys made as slow as the test wants, without timing.
type stallScans struct {
	match   string
	started chan struct{} // closed when the first such SCAN arrives
	release chan struct{}
	once    sync.Once
}

func newStallScans(match string) *stallScans {
	return &stallScans{match: match, started: make(chan struct{}), release: make(chan struct{})}
}

func (h *stallScans) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *stallScans) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *stallScans) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "scan" && h.holds(cmd) {
			h.once.Do(func() { close(h.started) })
			select {
			case <-h.release:
			case <-ctx.Done():
				cmd.SetErr(ctx.Err())
				return ctx.Err()
			}
		}
		return next(ctx, cmd)
	}
}

func (h *stallScans) holds(cmd redis.Cmder) bool {
	for _, a := range cmd.Args() {
		if s, ok := a.(string); ok && strings.Contains(s, h.match) {
			return true
		}
	}
	return false
}

// waitFor fails the test if ch is not closed before a deadline, which
// only catches a hang.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// While the drop of a deleted tenant's keys is held up (its SCAN stalls
// in a hook), the cache still applies the store's changes and serves the
// other tenants, a tenant created meanwhile among them; the drop deletes
// the keys once it may go on, and only the deleted tenant's.
func TestSlowDropBlocksNoOne(t *testing.T) {
	e := newEnv(t, tenantsOf("victim", "other"), tenantcache.WithDropKeysOnDelete())
	for _, k := range []string{"a", "b", "c"} {
		e.set("victim", k, "v")
		e.set("other", k, "v")
	}
	stall := newStallScans(e.ns("victim"))
	e.raw.AddHook(stall) // the cache's default client, the victim's Redis

	e.delete("victim")
	waitFor(t, stall.started, "the drop of the victim's keys to start")

	// The drop is held. Each command below would wait for it, were it in
	// the way: its deadline catches that.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	as := func(id string) context.Context { return tenantctx.WithTenant(ctx, id) }
	if err := e.cache.Set(as("other"), "d", []byte("during the drop"), time.Hour); err != nil {
		t.Fatalf("another tenant's Set during the drop: %v", err)
	}
	if v, err := e.cache.Get(as("other"), "a"); err != nil || string(v) != "v" {
		t.Fatalf("another tenant's Get during the drop: %q, %v", v, err)
	}
	if _, err := e.cache.Get(as("victim"), "a"); !errors.Is(err, tenantcache.ErrUnknownTenant) {
		t.Errorf("the deleted tenant's Get during the drop: %v, want ErrUnknownTenant", err)
	}
	// A change of the store made after the delete is applied meanwhile:
	// the follower is not the one dropping.
	e.create("late", nil)
	if err := e.cache.Set(as("late"), "k", []byte("v"), time.Hour); err != nil {
		t.Fatalf("a tenant created during the drop: %v", err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if n, err := e.raw.Exists(ctx, e.ns("victim")+k).Result(); err != nil || n != 1 {
			t.Fatalf("the victim's %s is gone while its drop is held: %d, %v", k, n, err)
		}
	}

	// Let the drop go on; Close would end it (TestCloseEndsDrop).
	close(stall.release)
	testenv.Eventually(t, 10*time.Second, "the victim's keys to be dropped", func() bool {
		n, err := e.raw.Exists(ctx, e.ns("victim")+"a", e.ns("victim")+"b", e.ns("victim")+"c").Result()
		return err == nil && n == 0
	})
	closed := make(chan struct{})
	go func() { e.cache.Close(); close(closed) }()
	waitFor(t, closed, "Close")
	for _, c := range []struct {
		ns, key string
		want    int64
	}{
		{e.ns("victim"), "a", 0}, {e.ns("victim"), "b", 0}, {e.ns("victim"), "c", 0},
		{e.ns("other"), "a", 1}, {e.ns("other"), "d", 1}, {e.ns("late"), "k", 1},
	} {
		if n, err := e.raw.Exists(ctx, c.ns+c.key).Result(); err != nil || n != c.want {
			t.Errorf("after the drop and Close: %s%s exists %d, %v; want %d", c.ns, c.key, n, err, c.want)
		}
	}
	if logs := e.logs.String(); !strings.Contains(logs, "dropped the keys of a deleted tenant") {
		t.Errorf("no log line of the drop:\n%s", logs)
	}
}

// Close ends a drop that does not end by itself, and returns once the
// drop has: the keys not dropped stay, and the drop's log line, written
// as it ends, is there when Close returns.
func TestCloseEndsDrop(t *testing.T) {
	e := newEnv(t, tenantsOf("victim", "other"), tenantcache.WithDropKeysOnDelete())
	e.set("victim", "a", "v")
	stall := newStallScans(e.ns("victim"))
	e.raw.AddHook(stall) // never released: only Close's cancel ends the SCAN
	e.delete("victim")
	waitFor(t, stall.started, "the drop of the victim's keys to start")

	closed := make(chan struct{})
	go func() { e.cache.Close(); close(closed) }()
	waitFor(t, closed, "Close, with a drop stalled")
	if n, err := e.raw.Exists(context.Background(), e.ns("victim")+"a").Result(); err != nil || n != 1 {
		t.Errorf("the victim's key after a drop cut short: exists %d, %v; want 1", n, err)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "closed before the keys of a deleted tenant were all dropped") {
		t.Errorf("the log does not say the drop was cut short:\n%s", logs)
	}
}
