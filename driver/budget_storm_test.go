package driver

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// slowServer makes the fake server start sessions slowly, in units of
// work rather than time: one dial at a time, each finishing only once
// `cost` connections have been released since the last one, or once every
// worker still working is inside acquire (nobody could release: the test
// would hang).
type slowServer struct {
	// clock is the budget's: a query moves it on by queryCost, a session
	// start by dialCost, so connections turn cold as they would when
	// sessions start slowly.
	clock     time.Time
	dialCost  time.Duration
	queryCost time.Duration

	mu        sync.Mutex
	cond      *sync.Cond
	cost      int
	workers   int // still working
	inAcquire int
	released  int // since the last dial finished
	dialing   bool
}

func newSlowServer(cost int) *slowServer {
	s := &slowServer{cost: cost, clock: time.Now(), queryCost: 50 * time.Microsecond}
	s.dialCost = time.Duration(cost) * s.queryCost
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *slowServer) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clock
}

func (s *slowServer) start(n int) { s.mu.Lock(); s.workers = n; s.mu.Unlock() }
func (s *slowServer) done()       { s.mu.Lock(); s.workers--; s.cond.Broadcast(); s.mu.Unlock() }

func (s *slowServer) enter() { s.mu.Lock(); s.inAcquire++; s.cond.Broadcast(); s.mu.Unlock() }
func (s *slowServer) leave() { s.mu.Lock(); s.inAcquire--; s.mu.Unlock() }
func (s *slowServer) release() {
	s.mu.Lock()
	s.released++
	s.clock = s.clock.Add(s.queryCost)
	s.cond.Broadcast()
	s.mu.Unlock()
}

// wait blocks a dial until the server would have started its session.
func (s *slowServer) wait() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.dialing {
		s.cond.Wait()
	}
	s.dialing = true
	for s.released < s.cost && s.inAcquire < s.workers {
		s.cond.Wait()
	}
	s.released, s.dialing = 0, false
	s.clock = s.clock.Add(s.dialCost)
	s.cond.Broadcast()
}

// The scenario of an operator who sizes the budget to fit: 40 tenants, 16
// workers walking them round-robin, so at most 16 connections are in use
// at once, and budgets from one per tenant to twice that, with sessions
// slow to start. Once warm, the budget must evict nothing and open no new
// session beyond its free slots. Before, tenants that had dialled several
// connections during the warm-up kept them idle while others had none,
// and every checkout of a tenant with none closed another tenant's last
// connection: a storm of evictions that fed itself.
func TestBudgetNoStormWhenDemandFits(t *testing.T) {
	const (
		tenants = 40
		workers = 16
		laps    = 10
	)
	for _, tc := range []struct {
		budget int
		delay  time.Duration
		cost   int // a session start costs as much as this many queries
	}{
		{40, time.Hour, 20}, {50, time.Hour, 20}, {64, time.Hour, 20}, {80, time.Hour, 20},
		{50, time.Hour, 1000}, {80, time.Hour, 1000},
		{50, 0, 20}, {80, 0, 1000}, {50, DefaultEvictionDelay, 1000},
	} {
		t.Run(fmt.Sprintf("budget=%d/delay=%v/dial=%dq", tc.budget, tc.delay, tc.cost), func(t *testing.T) {
			bn := newBench(t, tc.budget, 0, WithEvictionDelay(tc.delay))
			slow := newSlowServer(tc.cost)
			bn.b.now = slow.now
			ids := make([]string, tenants)
			for i := range ids {
				ids[i] = fmt.Sprintf("t%02d", i)
				tn := bn.tenant(ids[i])
				fast := tn.dial
				tn.dial = func(ctx context.Context) (session, error) {
					slow.wait()
					return fast(ctx)
				}
			}
			lap := func() {
				var wg sync.WaitGroup
				slow.start(workers)
				for range workers {
					wg.Go(func() {
						defer slow.done()
						// A worker holds a connection until it has the
						// next one, so about one per worker is in use.
						var held *physConn
						for i := range tenants {
							slow.enter()
							pc, err := bn.b.acquire(context.Background(), bn.ts[ids[i%tenants]], nil)
							slow.leave()
							if err != nil {
								t.Errorf("acquire: %v", err)
								return
							}
							if held != nil {
								bn.b.release(held)
								slow.release()
							}
							held = pc
						}
						bn.b.release(held)
						slow.release()
					})
				}
				wg.Wait()
				bn.check()
			}
			counts := func() (dials, evictions int64, free int) {
				bn.b.mu.Lock()
				defer bn.b.mu.Unlock()
				return bn.b.stats.newConns, bn.b.stats.evictions, bn.b.max - bn.b.open
			}
			// Warm up until a lap opens nothing new; a budget that
			// collapsed never gets there, and is measured anyway.
			for range 30 {
				d0, _, _ := counts()
				lap()
				if d1, _, _ := counts(); d1 == d0 {
					break
				}
			}
			d0, e0, free := counts()
			for range laps {
				lap()
			}
			d1, e1, _ := counts()
			bn.b.mu.Lock()
			var dist []int
			for _, id := range ids {
				n := 0
				if p := bn.ts[id].pool; p != nil {
					n = p.open
				}
				dist = append(dist, n)
			}
			bn.b.mu.Unlock()
			t.Logf("warm-up: %d dials, %d evictions; measured: %d dials %d evictions; per tenant %v", d0, e0, d1-d0, e1-e0, dist)
			if e1 != e0 || d1-d0 > int64(free) {
				t.Errorf("warm, over %d laps of %d checkouts: %d evictions and %d new sessions (%d slots were free)",
					laps, laps*tenants*workers, e1-e0, d1-d0, free)
			}
		})
	}
}
