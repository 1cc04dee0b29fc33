package driver_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/internal/fleetproc"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

// Six OS processes share one fleet budget on a server with a small
// max_connections, each loading a hundred of 300 tenants, two of them
// busy and the others light, which two changing every round, while one
// is killed (SIGKILL, as a crash) and one stopped cleanly each round, and
// both started again. The server never holds more of their sessions than
// the budget (pg_stat_activity, sampled), refuses none of them (53300),
// and every answer comes from the tenant's database on the tenant's
// session; every process gets slots again after each change. Once all
// have ended, the crashed ones' leases have expired and a newcomer gets
// the whole budget.
func TestFleetBudgetProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server and six processes")
	}
	const (
		procs   = 6
		budget  = 24
		tenants = 300
		dbs     = 30
		busy    = 12 // workers of the two busy processes of a round
		light   = 1  // and of the others
		// Answers each busy (light) process gives in a round: a light
		// one dials for most of its queries, a few a second on two
		// busy cores.
		busyRound, lightRound = 200, 25
		rounds                = 4
	)
	// superuser_reserved_connections (3), then the sampler's superuser
	// session, which takes an ordinary slot: the processes' role has room
	// for 3 more than the budget, so the sampler sees a small overshoot
	// and the server refuses a larger one (53300), which the sampler
	// might miss.
	began := time.Now()
	pg := testenv.StartPostgres(t, budget+3+1+3)
	ctx := t.Context()
	var names []string
	for i := range dbs {
		names = append(names, fmt.Sprintf("fleet_%d", i))
	}
	pg.CreateDatabases(t, names...)
	admin := pg.URL("postgres")
	if err := execOn(ctx, admin, "CREATE ROLE fleet LOGIN"); err != nil {
		t.Fatal(err)
	}

	s, storeURL := redisFixture(t, testenv.RedisURL(t))
	var all []fleetproc.Tenant
	for i := range tenants {
		tn := fleetproc.Tenant{ID: fmt.Sprintf("fp-%d", i), DB: names[i%dbs]}
		all = append(all, tn)
		u := fmt.Sprintf("postgres://fleet@127.0.0.1:%d/%s?sslmode=disable", pg.Port, tn.DB)
		if _, err := s.Create(ctx, store.Tenant{ID: tn.ID, DeployInfo: map[string]string{store.KeyPostgresURL: u}}); err != nil {
			t.Fatal(err)
		}
	}
	wait := hangAfter(t)
	t.Logf("%v: server, databases and tenants ready", time.Since(began).Round(time.Millisecond))
	config := func(i int) fleetproc.Config {
		// Overlapping windows of 100 tenants: each process has its own
		// load, and most tenants are loaded by two processes. Eight of
		// them are hot, with two sessions at most each: a dial costs a backend's
		// start, and on two busy cores a load of dials alone would take
		// minutes.
		var mine []fleetproc.Tenant
		for k := range 100 {
			mine = append(mine, all[(i*50+k)%tenants])
		}
		// The default lease (10 s): a shorter one could lapse while a
		// process is starved of the CPU on a busy machine, which the
		// fleet's bound does not cover (the test would then fail on the
		// machine's speed; FellBack says so).
		return fleetproc.Config{
			Name: fmt.Sprintf("fp%d", i), StoreURL: storeURL, Budget: budget, Fleet: true,
			Tenants: mine, Hot: 8, PerTenant: 2, Hold: time.Millisecond, QueryTimeout: wait,
		}
	}
	var ended []*fleetproc.Proc // every process that ran, for the counts
	live := make([]*fleetproc.Proc, procs)
	t.Cleanup(func() {
		for _, p := range live {
			if p != nil {
				p.Kill()
			}
		}
	})
	// Two processes are busy in a round, the others light, and which
	// changes every round: slots have to move, while the processes that
	// held them give them back only at their next renewal.
	workers := func(i, round int) int {
		if i%3 == round%3 {
			return busy
		}
		return light
	}
	start := func(i, round int) {
		t.Helper()
		p, err := fleetproc.Start(config(i), wait)
		if err != nil {
			t.Fatal(err)
		}
		live[i] = p
		if err := p.Load(workers(i, round)); err != nil {
			t.Fatal(err)
		}
	}
	// progress waits for every live process to give its round's answers
	// more than it had at the round's start.
	progress := func(round int) {
		t.Helper()
		from := make([]int64, len(live))
		for i, p := range live {
			from[i] = p.Counts().OK
		}
		for i, p := range live {
			n := int64(lightRound)
			if workers(i, round) == busy {
				n = busyRound
			}
			if err := p.WaitFor(fmt.Sprintf("round %d's %d answers", round, n), func(c fleetproc.Counts) bool { return c.OK >= from[i]+n }, wait); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range live {
			c := p.Counts()
			t.Logf("%v round %d: %s: %v; %d sessions open, %d leased", time.Since(began).Round(time.Millisecond), round, p.Name, c, c.Open, c.Leased)
		}
	}

	peak, err := fleetproc.SamplePeak(ctx, admin, "fp%")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peak.Stop() })
	for i := range procs {
		start(i, 0)
	}
	for round := range rounds {
		for i, p := range live {
			if err := p.Load(workers(i, round)); err != nil {
				t.Fatal(err)
			}
		}
		progress(round)
		if round == rounds-1 {
			break
		}
		// One crashes, one stops cleanly (its lease given back), both
		// come back under the next round's load.
		crash, stop := (2*round)%procs, (2*round+1)%procs
		if err := live[crash].Kill(); err != nil {
			t.Fatal(err)
		}
		if err := live[stop].Close(wait); err != nil {
			t.Fatal(err)
		}
		ended = append(ended, live[crash], live[stop])
		t.Logf("%v: %s killed, %s stopped", time.Since(began).Round(time.Millisecond), live[crash].Name, live[stop].Name)
		start(crash, round+1)
		start(stop, round+1)
		t.Logf("%v: both started again", time.Since(began).Round(time.Millisecond))
	}
	for i, p := range live {
		if err := p.Close(wait); err != nil {
			t.Error(err)
		}
		ended = append(ended, p)
		live[i] = nil
	}
	n, at, samples, err := peak.Stop()
	if err != nil {
		t.Fatal(err)
	}

	var total fleetproc.Counts
	for _, p := range ended {
		c := p.Counts()
		total.OK += c.OK
		total.Wrong += c.Wrong
		total.TooMany += c.TooMany
		total.Errors += c.Errors
		total.FellBack = total.FellBack || c.FellBack
		if total.FirstErr == "" {
			total.FirstErr = c.FirstErr
		}
	}
	t.Logf("%d processes run: %v; the server held at most %d sessions of theirs (at %v, %d samples)", len(ended), total, n, at.Format("15:04:05.000"), samples)
	if total.FellBack {
		t.Errorf("a process lost its lease and fell back to the fallback share (starved past its lease, or Redis did not answer): the fleet's bound does not hold then, so what follows proves nothing about it")
	}
	if total.Wrong != 0 || total.TooMany != 0 || total.Errors != 0 {
		t.Errorf("want every query answered by its tenant's session: %v", total)
	}
	if n > budget {
		t.Errorf("the server held %d sessions of the processes at %v (%d samples), over the fleet budget of %d", n, at.Format("15:04:05.000"), samples, budget)
	}
	if n == 0 || samples < minPeakSamples {
		t.Errorf("the sampler saw %d sessions in %d samples: it did not watch the load", n, samples)
	}
	// Every lease has ended, the clean ones given back, the crashed ones
	// expired: a newcomer is granted the whole budget.
	leaser, server := s.(store.Leaser), fmt.Sprintf("127.0.0.1:%d", pg.Port)
	eventually(t, wait, "the whole budget for a newcomer once every process has ended", func() bool {
		l, err := leaser.Lease(ctx, store.LeaseRequest{Server: server, Holder: "newcomer", Want: budget, Budget: budget, TTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return l.Granted == budget && l.Holders == 1
	})
}

// execOn runs one statement on the server of url.
func execOn(ctx context.Context, url, stmt string) error {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, stmt)
	return err
}
