package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// leaseSum reads the grants Redis holds for server, as the script wrote
// them.
func leaseSum(t *testing.T, url string, s *Redis, server string) (sum int, holders int) {
	t.Helper()
	sum, holders, err := readLeases(rawRedis(t, url), s.leaseKey(server))
	if err != nil {
		t.Fatal(err)
	}
	return sum, holders
}

func readLeases(c *redis.Client, key string) (sum int, holders int, err error) {
	all, err := c.HGetAll(context.Background(), key).Result()
	if err != nil {
		return 0, 0, err
	}
	for h, v := range all {
		g, err := strconv.Atoi(strings.Fields(v)[0])
		if err != nil {
			return 0, 0, fmt.Errorf("holder %s: value %q", h, v)
		}
		sum += g
	}
	return sum, len(all), nil
}

// The rules of a grant, one request after another on one server: a grant
// is what is left of the budget but a slot for each other holder with
// none, a holder keeps what it holds until it asks for less, the least
// budget a live holder gives is the one in force, and a released lease
// goes back at once.
func TestRedisLeaseRules(t *testing.T) {
	u := testenv.RedisURL(t)
	s := openRedis(t, u, "")
	ctx := context.Background()
	const server = "db.example:5432"
	t.Cleanup(func() {
		for _, h := range []string{"a", "b", "c"} {
			s.ReleaseLease(ctx, server, h)
		}
	})
	steps := []struct {
		what                  string
		holder                string
		want, budget          int
		release               bool
		granted, inForce      int
		fair, holders, leased int // leased: the sum Redis holds afterwards
	}{
		{what: "the first holder gets what it wants", holder: "a", want: 6, budget: 10, granted: 6, inForce: 10, fair: 6, holders: 1, leased: 6},
		{what: "the second gets the rest", holder: "b", want: 6, budget: 10, granted: 4, inForce: 10, fair: 5, holders: 2, leased: 10},
		{what: "a renewal keeps the grant", holder: "a", want: 6, budget: 10, granted: 6, inForce: 10, fair: 5, holders: 2, leased: 10},
		{what: "asking for less shrinks it", holder: "a", want: 2, budget: 10, granted: 2, inForce: 10, fair: 2, holders: 2, leased: 6},
		{what: "the slots given back go to another holder", holder: "b", want: 8, budget: 10, granted: 8, inForce: 10, fair: 8, holders: 2, leased: 10},
		{what: "no more than is left, however fair", holder: "a", want: 5, budget: 10, granted: 2, inForce: 10, fair: 5, holders: 2, leased: 10},
		{what: "a lower budget is in force, nothing left under it", holder: "c", want: 3, budget: 4, granted: 0, inForce: 4, fair: 1, holders: 3, leased: 10},
		{what: "a holder over the lower budget keeps its slots until it asks for less", holder: "b", want: 8, budget: 10, granted: 8, inForce: 4, fair: 1, holders: 3, leased: 10},
		{what: "and shrinks when it does", holder: "b", want: 1, budget: 10, granted: 1, inForce: 4, fair: 1, holders: 3, leased: 3},
		{what: "what is left under the lower budget", holder: "c", want: 3, budget: 4, granted: 1, inForce: 4, fair: 1, holders: 3, leased: 4},
		{what: "a release", holder: "a", release: true, leased: 2},
		{what: "gives its slots back at once", holder: "c", want: 3, budget: 4, granted: 3, inForce: 4, fair: 3, holders: 2, leased: 4},
		{what: "want 0 keeps the holder known with nothing", holder: "b", want: 0, budget: 10, granted: 0, inForce: 4, fair: 0, holders: 2, leased: 3},
		{what: "one slot stays free for a live holder that holds none", holder: "c", want: 4, budget: 4, granted: 3, inForce: 4, fair: 3, holders: 2, leased: 3},
		{what: "which it gets at once", holder: "b", want: 2, budget: 10, granted: 1, inForce: 4, fair: 2, holders: 2, leased: 4},
	}
	for _, st := range steps {
		if st.release {
			if err := s.ReleaseLease(ctx, server, st.holder); err != nil {
				t.Fatalf("%s: %v", st.what, err)
			}
		} else {
			before := time.Now()
			l, err := s.Lease(ctx, LeaseRequest{Server: server, Holder: st.holder, Want: st.want, Budget: st.budget, TTL: time.Minute})
			if err != nil {
				t.Fatalf("%s: %v", st.what, err)
			}
			if l.Granted != st.granted || l.Budget != st.inForce || l.Fair != st.fair || l.Holders != st.holders {
				t.Errorf("%s: %s asks %d of %d: granted %d, budget %d, fair %d, holders %d; want %d, %d, %d, %d",
					st.what, st.holder, st.want, st.budget, l.Granted, l.Budget, l.Fair, l.Holders, st.granted, st.inForce, st.fair, st.holders)
			}
			if l.Expires.Before(before.Add(time.Minute)) || l.Expires.After(time.Now().Add(time.Minute)) {
				t.Errorf("%s: expires %v, want a minute after the call", st.what, l.Expires)
			}
		}
		if sum, _ := leaseSum(t, u, s, server); sum != st.leased {
			t.Errorf("%s: Redis holds grants summing to %d, want %d", st.what, sum, st.leased)
		}
	}
	// The release of a lease not there is not an error.
	if err := s.ReleaseLease(ctx, server, "nobody"); err != nil {
		t.Errorf("release of a lease not held: %v", err)
	}
}

// Requests that break the rules are refused before Redis is asked, with
// ErrBadLease and a message naming the field.
func TestRedisLeaseInvalid(t *testing.T) {
	s := openRedis(t, testenv.RedisURL(t), "")
	ok := LeaseRequest{Server: "db:5432", Holder: "a", Want: 1, Budget: 1, TTL: time.Second}
	for _, tc := range []struct {
		field  string
		change func(*LeaseRequest)
	}{
		{"Server", func(r *LeaseRequest) { r.Server = "" }},
		{"Holder", func(r *LeaseRequest) { r.Holder = "" }},
		{"Want", func(r *LeaseRequest) { r.Want = -1 }},
		{"Budget", func(r *LeaseRequest) { r.Budget = 0 }},
		{"TTL", func(r *LeaseRequest) { r.TTL = time.Microsecond }},
	} {
		req := ok
		tc.change(&req)
		_, err := s.Lease(context.Background(), req)
		if !errors.Is(err, ErrBadLease) || !strings.Contains(fmt.Sprint(err), tc.field) {
			t.Errorf("a bad %s: %v; want ErrBadLease naming %s", tc.field, err, tc.field)
		}
	}
	s.Close()
	if _, err := s.Lease(context.Background(), ok); !errors.Is(err, ErrClosed) {
		t.Errorf("Lease on a closed store: %v, want ErrClosed", err)
	}
}

// Holders in several processes (a store, so a client, each) grow and
// shrink their leases at once, a fixed number of times. Each uses what it
// was granted, and gives slots back before it asks for less, as the
// driver does: the slots in use never add up to more than the budget.
func TestRedisLeaseConcurrent(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	const (
		holders = 8
		budget  = 5
		rounds  = 60
		server  = "db.example:5432"
	)
	var (
		inUse, peak, granted atomic.Int64
		wg                   sync.WaitGroup
	)
	raw := rawRedis(t, u)
	stores := make([]*Redis, holders)
	for i := range stores {
		stores[i] = openRedis(t, u, prefix)
	}
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprint("h", i)
			used := 0
			defer func() {
				inUse.Add(int64(-used)) // give back, then release
				s.ReleaseLease(context.Background(), server, holder)
			}()
			for range rounds {
				want := rand.IntN(budget + 1)
				if want < used {
					inUse.Add(int64(want - used)) // give back first
					used = want
				}
				l, err := s.Lease(context.Background(), LeaseRequest{Server: server, Holder: holder, Want: want, Budget: budget, TTL: time.Minute})
				if err != nil {
					t.Error(err)
					return
				}
				if l.Granted > want || l.Granted < used {
					t.Errorf("%s asked %d holding %d: granted %d", holder, want, used, l.Granted)
					return
				}
				n := inUse.Add(int64(l.Granted - used))
				used = l.Granted
				granted.Add(int64(l.Granted))
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				if sum, _, err := readLeases(raw, s.leaseKey(server)); err != nil || sum > budget {
					t.Errorf("Redis holds grants summing to %d (%v), over the budget of %d", sum, err, budget)
				}
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > budget {
		t.Errorf("%d slots in use at once, over the budget of %d", p, budget)
	}
	if granted.Load() == 0 {
		t.Error("nothing was ever granted: the test proves nothing")
	}
}

// The slots kept free for holders that hold none: a tenth of the budget
// at most, however many idle holders there are, so a busy holder keeps
// the rest; a holder that took them before the idle ones joined is told
// to give them back (Fair); and an idle holder gets one at once.
func TestRedisLeaseReserve(t *testing.T) {
	u := testenv.RedisURL(t)
	s := openRedis(t, u, "")
	ctx := context.Background()
	const server, budget = "db.example:5432", 20
	lease := func(holder string, want int) Lease {
		t.Helper()
		l, err := s.Lease(ctx, LeaseRequest{Server: server, Holder: holder, Want: want, Budget: budget, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := lease("busy", budget); l.Granted != budget || l.Fair != budget {
		t.Fatalf("alone: granted %d, fair %d; want the whole budget, %d", l.Granted, l.Fair, budget)
	}
	var idle []string
	for i := range 30 {
		idle = append(idle, fmt.Sprintf("idle%d", i))
		if l := lease(idle[i], 0); l.Granted != 0 {
			t.Fatalf("%s asks for nothing: granted %d", idle[i], l.Granted)
		}
	}
	t.Cleanup(func() {
		for _, h := range append(idle, "busy") {
			s.ReleaseLease(ctx, server, h)
		}
	})
	// The busy holder keeps its grant, but is told its share is the
	// budget less the reserve: 2 slots (a tenth), not 30.
	l := lease("busy", budget)
	if l.Granted != budget || l.Fair != budget-2 {
		t.Fatalf("30 idle holders joined: busy granted %d, fair %d; want %d and %d", l.Granted, l.Fair, budget, budget-2)
	}
	// It gives the difference back, and asks again for the whole budget:
	// the reserve stays free.
	if l := lease("busy", budget-2); l.Granted != budget-2 {
		t.Fatalf("busy gives back to %d: granted %d", budget-2, l.Granted)
	}
	if l := lease("busy", budget); l.Granted != budget-2 {
		t.Fatalf("busy asks again for %d with 30 idle holders: granted %d, want %d", budget, l.Granted, budget-2)
	}
	// Two idle holders get a slot at once; the third finds the reserve
	// used up.
	for i, want := range []int{1, 1, 0} {
		if l := lease(idle[i], 1); l.Granted != want {
			t.Errorf("idle holder %d asks for one: granted %d, want %d", i, l.Granted, want)
		}
	}
	if sum, _ := leaseSum(t, u, s, server); sum != budget {
		t.Errorf("Redis holds %d slots leased, want the budget, %d", sum, budget)
	}
}

// A holder that stops renewing (a crashed process) loses its lease when
// it expires, on Redis's clock, and its share goes to the others; the key
// goes away with its last holder.
func TestRedisLeaseExpiry(t *testing.T) {
	u := testenv.RedisURL(t)
	s := openRedis(t, u, "")
	ctx := context.Background()
	const server = "db.example:5432"
	dead, err := s.Lease(ctx, LeaseRequest{Server: server, Holder: "dead", Want: 3, Budget: 3, TTL: 300 * time.Millisecond})
	if err != nil || dead.Granted != 3 {
		t.Fatalf("the holder that dies: granted %d, %v; want 3", dead.Granted, err)
	}
	ask := func() Lease {
		l, err := s.Lease(ctx, LeaseRequest{Server: server, Holder: "live", Want: 3, Budget: 3, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := ask(); l.Granted != 0 || l.Holders != 2 {
		t.Fatalf("while the other holds the whole budget: granted %d of %d holders; want 0 of 2", l.Granted, l.Holders)
	}
	var l Lease
	waitFor(t, 10*time.Second, "the dead holder's share", func() bool { l = ask(); return l.Granted == 3 })
	if l.Holders != 1 {
		t.Errorf("after the expiry, %d live holders; want 1", l.Holders)
	}
	if _, n := leaseSum(t, u, s, server); n != 1 {
		t.Errorf("Redis keeps %d holders, want the live one: the expired one was not dropped", n)
	}
	if pttl, err := rawRedis(t, u).PTTL(ctx, s.leaseKey(server)).Result(); err != nil || pttl <= 0 || pttl > time.Minute {
		t.Errorf("the leases' key expires in %v (%v); want within the live lease's minute", pttl, err)
	}
	if err := s.ReleaseLease(ctx, server, "live"); err != nil {
		t.Fatal(err)
	}
	if n, err := rawRedis(t, u).Exists(ctx, s.leaseKey(server)).Result(); err != nil || n != 0 {
		t.Errorf("after the last release the key exists: %d, %v", n, err)
	}
}
