package driver

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// The budget's rules, driven step by step with fake sessions: no server,
// no sleeps. After every step the budget's bookkeeping is checked against
// itself and against the sessions the fake server holds.

// fakeServer hands out fake sessions and records what happened to them.
type fakeServer struct {
	mu     sync.Mutex
	live   int      // sessions open
	peak   int      // most sessions open at once
	log    []string // "dial a", "end a": the order dials and ends happened in
	hold   chan struct{}
	failAt map[string]error // dials of these tenants fail
}

type fakeSession struct {
	srv       *fakeServer
	tenant    string
	dead      bool // as if the server had closed it
	inTx      bool // released inside a transaction
	resetErr  error
	ended     bool
	endedOnce sync.Once
}

func (s *fakeSession) reset(context.Context) error { return s.resetErr }

func (s *fakeSession) released() (dead, reusable bool) { return s.dead, !s.dead && !s.inTx }

func (s *fakeSession) terminate() {
	s.endedOnce.Do(func() {
		s.srv.mu.Lock()
		defer s.srv.mu.Unlock()
		s.ended = true
		s.srv.live--
		s.srv.log = append(s.srv.log, "end "+s.tenant)
	})
}

func (f *fakeServer) dialer(id string) dialFunc {
	return func(ctx context.Context) (session, error) {
		if f.hold != nil {
			select {
			case <-f.hold:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if err := f.failAt[id]; err != nil {
			return nil, err
		}
		f.live++
		f.peak = max(f.peak, f.live)
		f.log = append(f.log, "dial "+id)
		return &fakeSession{srv: f, tenant: id}, nil
	}
}

func (f *fakeServer) events() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

func (f *fakeServer) sessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live
}

// bench is a budget with fake tenants.
type bench struct {
	t   *testing.T
	b   *budget
	srv *fakeServer
	cfg config
	ts  map[string]*target
}

func newBench(t *testing.T, budget, perTenant int, opts ...Option) *bench {
	cfg := defaultConfig()
	cfg.maxConns = budget
	cfg.maxConnsPerTenant = perTenant
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	bn := &bench{t: t, srv: &fakeServer{failAt: map[string]error{}}, cfg: cfg, ts: map[string]*target{}}
	bn.b = newBudget(&bn.cfg, "fake:5432")
	t.Cleanup(func() {
		bn.b.close()
		if n := bn.srv.sessions(); n != 0 {
			t.Errorf("%d sessions left open after close", n)
		}
	})
	return bn
}

func (bn *bench) tenant(id string) *target {
	if t := bn.ts[id]; t != nil {
		return t
	}
	t := &target{name: id, cfg: &bn.cfg, b: bn.b, dial: bn.srv.dialer(id)}
	bn.ts[id] = t
	return t
}

// acquire checks out a connection of tenant id and checks the budget.
func (bn *bench) acquire(id string) *physConn {
	bn.t.Helper()
	pc, err := bn.b.acquire(context.Background(), bn.tenant(id), nil)
	if err != nil {
		bn.t.Fatalf("acquire %s: %v", id, err)
	}
	if pc.pool.t.name != id {
		bn.t.Fatalf("acquire %s: got a connection of %s", id, pc.pool.t.name)
	}
	bn.check()
	return pc
}

func (bn *bench) release(pc *physConn) {
	bn.t.Helper()
	bn.b.release(pc)
	bn.check()
}

// check verifies the budget's invariants: every count agrees with the
// lists, no pool and no budget is over its cap, and the server never
// held more sessions than the budget.
func (bn *bench) check() {
	bn.t.Helper()
	b := bn.b
	b.mu.Lock()
	defer b.mu.Unlock()
	var idle, waiting, open int
	for p := range b.pools {
		if p.open != p.inUse+p.idle.n {
			bn.t.Fatalf("pool %s: open %d != in use %d + idle %d", p.t.name, p.open, p.inUse, p.idle.n)
		}
		if p.open > p.max || p.open < 0 || p.inUse < 0 {
			bn.t.Fatalf("pool %s: open %d, in use %d, cap %d", p.t.name, p.open, p.inUse, p.max)
		}
		for pc := p.idle.front; pc != nil; pc = pc.pidle.next {
			if pc.state != stateIdle || pc.pool != p {
				bn.t.Fatalf("pool %s: idle list holds a connection in state %d of %s", p.t.name, pc.state, pc.pool.t.name)
			}
		}
		idle += p.idle.n
		waiting += p.waiters.n
		open += p.open
	}
	if idle != b.idle.n {
		bn.t.Fatalf("budget idle %d != pools' idle %d", b.idle.n, idle)
	}
	if waiting != b.waiters.n {
		bn.t.Fatalf("budget waiters %d != pools' waiters %d", b.waiters.n, waiting)
	}
	if b.open > b.max || b.open < open {
		bn.t.Fatalf("budget open %d: cap %d, pools hold %d", b.open, b.max, open)
	}
	bn.srv.mu.Lock()
	peak := bn.srv.peak
	bn.srv.mu.Unlock()
	if peak > b.max {
		bn.t.Fatalf("the server held %d sessions under a budget of %d", peak, b.max)
	}
}

// waitFor waits until cond holds under the budget's lock: for a goroutine
// to reach a queue, not for time to pass. The deadline only catches a
// hang.
func (bn *bench) waitFor(what string, cond func() bool) {
	bn.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		bn.b.mu.Lock()
		ok := cond()
		bn.b.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			bn.t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// acquireAsync starts a checkout in a goroutine; its result arrives on
// the channel returned.
func (bn *bench) acquireAsync(ctx context.Context, id string) <-chan result {
	ch := make(chan result, 1)
	t := bn.tenant(id)
	go func() {
		pc, err := bn.b.acquire(ctx, t, nil)
		ch <- result{pc, err}
	}()
	return ch
}

type result struct {
	pc  *physConn
	err error
}

func (bn *bench) waiters() int { return bn.b.waiters.n }

// makeCold marks an idle connection as unused for longer than coldAfter.
func (bn *bench) makeCold(pc *physConn) {
	bn.b.mu.Lock()
	defer bn.b.mu.Unlock()
	pc.idleAt = pc.idleAt.Add(-2 * coldAfter)
}

func TestBudgetReusesIdleAndCapsTheServer(t *testing.T) {
	bn := newBench(t, 3, 0)
	a1 := bn.acquire("a")
	bn.release(a1)
	if a2 := bn.acquire("a"); a2 != a1 {
		t.Fatal("a second checkout of an idle tenant dialled instead of reusing its idle connection")
	} else {
		bn.release(a2)
	}
	var held []*physConn
	for _, id := range []string{"a", "a", "b"} {
		held = append(held, bn.acquire(id))
	}
	// Full, and every connection in use: a fourth caller waits for one.
	ctx, cancel := context.WithCancel(context.Background())
	r := bn.acquireAsync(ctx, "b")
	bn.waitFor("the fourth caller to queue", func() bool { return bn.waiters() == 1 })
	bn.check()
	bn.release(held[2]) // b's: handed to b's waiter
	got := bn.result("the waiting checkout", r)
	cancel()
	if got.err != nil || got.pc != held[2] {
		t.Fatalf("b's waiter got %v, %v; want b's released connection", got.pc, got.err)
	}
	bn.release(got.pc)
	bn.release(held[0])
	bn.release(held[1])
	if n := bn.srv.sessions(); n != 3 {
		t.Fatalf("%d sessions, want 3", n)
	}
}

// A tenant with no connection takes the slot of another tenant's idle
// connection at once, and dials only after the server has seen that
// session end; it prefers a connection whose tenant keeps another.
func TestBudgetBareTenantEvictsAtOnce(t *testing.T) {
	bn := newBench(t, 3, 0)
	a1, a2, b1 := bn.acquire("a"), bn.acquire("a"), bn.acquire("b")
	bn.release(b1) // oldest idle: b's only connection
	bn.release(a1)
	bn.release(a2)
	c := bn.acquire("c")
	ev := bn.srv.events()
	if got := ev[len(ev)-2:]; got[0] != "end a" || got[1] != "dial c" {
		t.Fatalf("events %v: want a's surplus connection ended, then c dialled", ev)
	}
	if bn.b.stats.evictions != 1 || bn.ts["a"].stats.evictions != 1 {
		t.Fatalf("evictions: budget %d, a %d; want 1 each", bn.b.stats.evictions, bn.ts["a"].stats.evictions)
	}
	bn.release(c)
}

// A waiter whose tenant has connections takes, once the eviction delay
// has passed, a cold surplus connection of another tenant (one whose
// tenant keeps another), never a warm one, and another tenant's last
// connection only once that tenant is dormant.
func TestBudgetWaiterTakesOnlyColdSurplus(t *testing.T) {
	bn := newBench(t, 3, 0, WithEvictionDelay(0))
	a := bn.acquire("a")
	b1, b2 := bn.acquire("b"), bn.acquire("b")
	bn.release(b1)
	bn.release(b2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := bn.acquireAsync(ctx, "a") // a has a connection in use: it waits
	bn.waitFor("a's second caller to queue", func() bool { return bn.waiters() == 1 })
	select {
	case got := <-r:
		t.Fatalf("a's waiter took %v (%v) while b's idle connections were warm", got.pc, got.err)
	default:
	}
	bn.makeCold(b1) // b1 is the older: the surplus one taken
	bn.makeCold(b2)
	got := bn.result("the waiting checkout", r) // the waiter's recheck finds a cold one: at most coldAfter
	if got.err != nil || got.pc.pool.t.name != "a" {
		t.Fatalf("a's waiter: %v, %v", got.pc, got.err)
	}
	if ev := bn.srv.events(); !slices.Equal(ev[len(ev)-2:], []string{"end b", "dial a"}) {
		t.Fatalf("events %v: want one of b's cold connections ended, then a dialled", ev)
	}
	bn.check()

	// b's remaining connection is its last: cold is not enough.
	r = bn.acquireAsync(ctx, "a")
	bn.waitFor("a's third caller to queue", func() bool { return bn.waiters() == 1 })
	bn.b.mu.Lock()
	victim := bn.b.victimLocked(bn.b.now(), false)
	bn.b.mu.Unlock()
	if victim != nil {
		t.Fatalf("a growing tenant may take b's last connection, cold but not dormant")
	}
	bn.b.mu.Lock()
	last := bn.b.idle.back
	last.idleAt = last.idleAt.Add(-dormantAfter)
	bn.b.mu.Unlock()
	got2 := bn.result("the waiting checkout", r)
	if got2.err != nil || got2.pc.pool.t.name != "a" {
		t.Fatalf("a's waiter once b was dormant: %v, %v", got2.pc, got2.err)
	}
	bn.release(got2.pc)
	bn.release(got.pc)
	bn.release(a)
}

// First come, first served across tenants: a released connection goes to
// a tenant with no connection that has waited longer than the releasing
// tenant's own waiter, so no tenant starves behind a busy one.
func TestBudgetServesWaitersInOrder(t *testing.T) {
	bn := newBench(t, 2, 0)
	a1, a2 := bn.acquire("a"), bn.acquire("a")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rb := bn.acquireAsync(ctx, "b") // bare, and nothing idle: queued
	bn.waitFor("b to queue", func() bool { return bn.waiters() == 1 })
	ra := bn.acquireAsync(ctx, "a")
	bn.waitFor("a to queue", func() bool { return bn.waiters() == 2 })
	bn.release(a1) // b waited longer: a1 is closed to make room for b
	gb := bn.result("the waiting checkout rb", rb)
	if gb.err != nil || gb.pc.pool.t.name != "b" {
		t.Fatalf("b: %v, %v", gb.pc, gb.err)
	}
	bn.check()
	bn.release(a2) // now a's own waiter gets it
	ga := bn.result("the waiting checkout ra", ra)
	if ga.err != nil || ga.pc != a2 {
		t.Fatalf("a's waiter got %v, %v; want a2", ga.pc, ga.err)
	}
	bn.release(ga.pc)
	bn.release(gb.pc)
}

// A waiter that gives up leaves nothing reserved: its slot goes to the
// next waiter.
func TestBudgetWaiterGivesUp(t *testing.T) {
	bn := newBench(t, 1, 0)
	a := bn.acquire("a")
	ctx, cancel := context.WithCancel(context.Background())
	r1 := bn.acquireAsync(ctx, "b")
	bn.waitFor("b to queue", func() bool { return bn.waiters() == 1 })
	r2 := bn.acquireAsync(context.Background(), "c")
	bn.waitFor("c to queue", func() bool { return bn.waiters() == 2 })
	cancel()
	if got := bn.result("the waiting checkout r1", r1); !errors.Is(got.err, context.Canceled) {
		t.Fatalf("b after its context ended: %v, %v", got.pc, got.err)
	}
	bn.check()
	bn.release(a) // c, bare and now first, gets a's slot
	got := bn.result("the waiting checkout r2", r2)
	if got.err != nil || got.pc.pool.t.name != "c" {
		t.Fatalf("c: %v, %v", got.pc, got.err)
	}
	bn.release(got.pc)
}

// A retired pool (its tenant deleted or moved) serves nobody: its waiters
// are told to look the tenant up again, its idle connections end at once,
// and connections in use end when released.
func TestBudgetRetirement(t *testing.T) {
	bn := newBench(t, 1, 0)
	a := bn.acquire("a")
	r := bn.acquireAsync(context.Background(), "a")
	bn.waitFor("a's second caller to queue", func() bool { return bn.waiters() == 1 })
	bn.b.removeTarget(bn.ts["a"])
	if got := bn.result("the waiting checkout", r); !errors.Is(got.err, errRetired) {
		t.Fatalf("a's waiter after the retirement: %v, %v", got.pc, got.err)
	}
	bn.release(a)
	bn.waitFor("a's session to end", func() bool { return bn.b.open == 0 })
	if n := bn.srv.sessions(); n != 0 {
		t.Fatalf("%d sessions after the retired pool's connection was released", n)
	}
	if _, err := bn.b.acquire(context.Background(), bn.ts["a"], nil); !errors.Is(err, errRetired) {
		t.Fatalf("acquire on a removed tenant: %v", err)
	}
}

// A connection that cannot be reused (dead, in a transaction, failing its
// reset) is closed and its slot freed.
func TestBudgetDropsBrokenConnections(t *testing.T) {
	for _, tt := range []struct {
		name   string
		break_ func(*fakeSession)
	}{
		{"dead", func(s *fakeSession) { s.dead = true }},
		{"in a transaction", func(s *fakeSession) { s.inTx = true }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bn := newBench(t, 1, 0)
			a := bn.acquire("a")
			tt.break_(a.sess.(*fakeSession))
			bn.release(a)
			bn.waitFor("the slot to be freed", func() bool { return bn.b.open == 0 })
			if b := bn.acquire("b"); b == a {
				t.Fatal("a broken connection was reused")
			} else {
				bn.release(b)
			}
		})
	}
	t.Run("failing its reset", func(t *testing.T) {
		bn := newBench(t, 1, 0)
		a := bn.acquire("a")
		bn.release(a)
		a.sess.(*fakeSession).resetErr = errors.New("gone")
		a2 := bn.acquire("a")
		if a2 == a {
			t.Fatal("a connection that failed its reset was handed out")
		}
		bn.release(a2)
	})
}

// A failed dial frees its slot for the next caller.
func TestBudgetFailedDial(t *testing.T) {
	bn := newBench(t, 1, 0)
	bn.srv.failAt["a"] = errors.New("refused")
	if _, err := bn.b.acquire(context.Background(), bn.tenant("a"), nil); err == nil || err.Error() != "refused" {
		t.Fatalf("acquire with a failing dial: %v", err)
	}
	bn.check()
	if bn.b.open != 0 || bn.ts["a"].stats.connectErrors != 1 {
		t.Fatalf("after a failed dial: open %d, connect errors %d", bn.b.open, bn.ts["a"].stats.connectErrors)
	}
	bn.release(bn.acquire("b"))
}

// Close ends idle sessions at once and sessions in use when released,
// and sends waiters ErrClosed.
func TestBudgetClose(t *testing.T) {
	bn := newBench(t, 2, 0)
	a, b := bn.acquire("a"), bn.acquire("b")
	bn.release(b)
	r := bn.acquireAsync(context.Background(), "a")
	bn.waitFor("a's second caller to queue", func() bool { return bn.waiters() == 1 })
	bn.b.close()
	if got := bn.result("the waiting checkout", r); !errors.Is(got.err, ErrClosed) {
		t.Fatalf("waiter after close: %v, %v", got.pc, got.err)
	}
	if n := bn.srv.sessions(); n != 1 {
		t.Fatalf("%d sessions right after close, want 1 (the one in use)", n)
	}
	bn.b.release(a)
	if n := bn.srv.sessions(); n != 0 {
		t.Fatalf("%d sessions after the last one in use was released", n)
	}
}

// A random mix of checkouts, releases, cancellations and retirements from
// many goroutines never breaks the bookkeeping or the cap.
func TestBudgetInvariantsUnderLoad(t *testing.T) {
	bn := newBench(t, 5, 3, WithEvictionDelay(time.Millisecond))
	ids := []string{"a", "b", "c", "d", "e", "f", "g"}
	for _, id := range ids {
		bn.tenant(id)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				ctx, cancel := context.WithCancel(context.Background())
				if i%11 == 0 {
					cancel() // a caller that gives up at once
				}
				pc, err := bn.b.acquire(ctx, bn.ts[ids[(g+i)%len(ids)]], nil)
				cancel()
				switch {
				case err == nil:
					bn.b.release(pc)
				case !errors.Is(err, context.Canceled):
					errs <- fmt.Errorf("acquire: %w", err)
					return
				}
				bn.b.mu.Lock()
				over := bn.b.open > bn.b.max
				bn.b.mu.Unlock()
				if over {
					errs <- errors.New("budget over its cap")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	bn.check()
}

// A waiter counts as bare (first served, evicting at once) only while its
// tenant has no connection: once a sibling has got one, it is a tenant
// wanting more, and must not close another tenant's last connection to
// jump ahead of that tenant's own waiter.
func TestBudgetBareIsJudgedNow(t *testing.T) {
	bn := newBench(t, 2, 0)
	b, c := bn.acquire("b"), bn.acquire("c")
	// The deadline only catches a waiter left waiting for ever, as c's
	// was when a's second caller closed c's connection.
	bg, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ra1 := bn.acquireAsync(bg, "a")
	bn.waitFor("a's first caller to queue", func() bool { return bn.waiters() == 1 })
	ra2 := bn.acquireAsync(bg, "a")
	bn.waitFor("a's second caller to queue", func() bool { return bn.waiters() == 2 })
	rc := bn.acquireAsync(bg, "c")
	bn.waitFor("c's second caller to queue", func() bool { return bn.waiters() == 3 })
	bn.release(b) // a, bare, takes b's slot
	a1 := bn.result("the waiting checkout ra1", ra1)
	if a1.err != nil || a1.pc.pool.t.name != "a" {
		t.Fatalf("a's first caller: %v, %v", a1.pc, a1.err)
	}
	bn.release(c) // a has a connection now: c's own waiter gets it
	c2 := bn.result("the waiting checkout rc", rc)
	if c2.err != nil || c2.pc != c {
		t.Fatalf("c's waiter got %v, %v; want c's released connection (events %v)", c2.pc, c2.err, bn.srv.events())
	}
	if ev := bn.srv.events(); slices.Contains(ev, "end c") {
		t.Fatalf("events %v: c's last connection was closed for a tenant that had one", ev)
	}
	bn.release(a1.pc) // a's own second caller gets it
	a2 := bn.result("the waiting checkout ra2", ra2)
	if a2.err != nil || a2.pc != a1.pc {
		t.Fatalf("a's second caller: %v, %v", a2.pc, a2.err)
	}
	bn.release(a2.pc)
	bn.release(c2.pc)
}
