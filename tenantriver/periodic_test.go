package tenantriver_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/tenantriver"
)

// fires is a schedule that comes n times, every interval from its start,
// then not for a century: the number of periods is fixed, whatever the
// machine's speed. It is a function of its argument, as River expects
// (Periodic.Job asks it for the interval between two runs).
type fires struct {
	start time.Time
	n     int
	every time.Duration
}

func newFires(n int, every time.Duration) *fires {
	return &fires{start: time.Now(), n: n, every: every}
}

func (f *fires) Next(t time.Time) time.Time {
	for k := 1; k <= f.n; k++ {
		if at := f.start.Add(time.Duration(k) * f.every); at.After(t) {
			return at
		}
	}
	return t.AddDate(100, 0, 0)
}

// A periodic job declared once runs once per tenant per period, each on
// its tenant's database.
func TestPeriodicPerTenant(t *testing.T) {
	const tenants, periods = 3, 2
	h := newHarness(t, tenants)
	periodic := tenantriver.NewPeriodic(h.env.Store)
	// Periods two seconds apart, each fan-out unique within a second
	// (River's least): a period's fan-out cannot stand in for the next's.
	job := periodic.Job("record", newFires(periods, 2*time.Second), func(string) (river.JobArgs, *river.InsertOpts) {
		return recordArgs{}, nil
	}, &tenantriver.PeriodicJobOpts{UniquePeriod: time.Second})
	cfg := h.config(t, func(w *river.Workers) { river.AddWorker(w, periodic) })
	cfg.PeriodicJobs = []*river.PeriodicJob{job}
	c := h.client(t, cfg)
	start(t, c)

	count := func(kind, state string) int {
		var n int
		if err := h.control.QueryRow(t.Context(), "SELECT count(*) FROM river_job WHERE kind = $1 AND state = $2", kind, state).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	testenv.Eventually(t, wait, fmt.Sprintf("%d fan-outs and %d tenant jobs completed", periods, periods*tenants), func() bool {
		return count(tenantriver.FanoutArgs{}.Kind(), "completed") == periods && count(recordArgs{}.Kind(), "completed") == periods*tenants
	})
	// Stop waits for every job started; the schedule has no period left,
	// so what the tables hold now is final.
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	var all int
	if err := h.control.QueryRow(t.Context(), "SELECT count(*) FROM river_job").Scan(&all); err != nil || all != periods*(tenants+1) {
		t.Errorf("river_job holds %d jobs (%v), want %d fan-outs and %d tenant jobs", all, err, periods, periods*tenants)
	}
	for _, tn := range h.env.Tenants {
		rows := h.ran(t, tn)
		if len(rows) != periods {
			t.Errorf("tenant %s: %d runs, want %d: %+v", tn.ID, len(rows), periods, rows)
		}
		for _, r := range rows {
			if r.DB != tn.Database || r.CtxTenant != tn.ID {
				t.Errorf("tenant %s: job %d ran on %s with tenant %q", tn.ID, r.JobID, r.DB, r.CtxTenant)
			}
		}
	}
}

// A restart does not repeat the fan-out of a period that had one: River's
// periodic enqueuer inserts the RunOnStart fan-out again at every start
// (and leader election), but it is unique within its period, so the
// second client's is skipped and each tenant has one job.
func TestPeriodicRestartDoesNotRepeat(t *testing.T) {
	const tenants = 3
	h := newHarness(t, tenants)
	count := func(kind string) int {
		var n int
		if err := h.control.QueryRow(t.Context(), "SELECT count(*) FROM river_job WHERE kind = $1", kind).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	completed := func(kind string) int {
		var n int
		if err := h.control.QueryRow(t.Context(), "SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'", kind).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for run := 1; run <= 2; run++ {
		// A process as it starts: its own Periodic and client, the same
		// declarations.
		periodic := tenantriver.NewPeriodic(h.env.Store)
		cfg := h.config(t, func(w *river.Workers) { river.AddWorker(w, periodic) })
		cfg.PeriodicJobs = []*river.PeriodicJob{
			// A period far longer than the test, so that the test
			// never straddles two.
			periodic.Job("record", river.PeriodicInterval(time.Hour), func(string) (river.JobArgs, *river.InsertOpts) {
				return recordArgs{}, nil
			}, &tenantriver.PeriodicJobOpts{RunOnStart: true, UniquePeriod: 1000 * 24 * time.Hour}),
			// A plain periodic job inserted at start, in the same
			// batch as the fan-out: once it is there, the start's
			// fan-out was inserted or skipped.
			river.NewPeriodicJob(river.PeriodicInterval(time.Hour), func() (river.JobArgs, *river.InsertOpts) {
				return sweepArgs{}, nil
			}, &river.PeriodicJobOpts{RunOnStart: true}),
		}
		c := h.client(t, cfg)
		if err := c.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		// The second start's fan-out, if it were inserted, would be
		// in river_job once the marker is: the counts below catch it.
		testenv.Eventually(t, wait, fmt.Sprintf("start %d's periodic jobs worked", run), func() bool {
			return completed(sweepArgs{}.Kind()) == run &&
				(run > 1 || completed(tenantriver.FanoutArgs{}.Kind()) == 1 && completed(recordArgs{}.Kind()) == tenants)
		})
		if err := c.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(tenantriver.FanoutArgs{}.Kind()); n != 1 {
		t.Errorf("river_job holds %d fan-outs, want 1", n)
	}
	if n := count(recordArgs{}.Kind()); n != tenants {
		t.Errorf("river_job holds %d tenant jobs after a restart, want one per tenant: %d", n, tenants)
	}
	for _, tn := range h.env.Tenants {
		if rows := h.ran(t, tn); len(rows) != 1 || rows[0].DB != tn.Database {
			t.Errorf("tenant %s: runs %+v, want one, on its database", tn.ID, rows)
		}
	}
}

// A fan-out that fails inserts no tenant's job: one whose name this
// process has not declared, and one whose constructor gives one tenant
// bad options (the batch is all or nothing, so no tenant gets a job that
// another misses). Each has one attempt here, so that its outcome is final.
func TestPeriodicFanoutFails(t *testing.T) {
	h := newHarness(t, 2)
	periodic := tenantriver.NewPeriodic(h.env.Store)
	bad := h.env.Tenants[1].ID
	periodic.Job("half", river.PeriodicInterval(time.Hour), func(tenantID string) (river.JobArgs, *river.InsertOpts) {
		if tenantID == bad {
			return recordArgs{}, &river.InsertOpts{Queue: "not a queue name!"}
		}
		return recordArgs{}, nil
	}, nil)
	c := h.client(t, h.config(t, func(w *river.Workers) { river.AddWorker(w, periodic) }))
	start(t, c)
	for _, tt := range []struct{ name, wantErr string }{
		{"nobody", "not declared in this process"},
		{"half", "queue"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Insert(t.Context(), tenantriver.FanoutArgs{Name: tt.name}, &river.InsertOpts{MaxAttempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			s := h.waitOutcome(t, res.Job.ID)
			if s.State != rivertype.JobStateDiscarded || len(s.Errors) != 1 || !strings.Contains(s.Errors[0], tt.wantErr) {
				t.Fatalf("fan-out %q: %s with errors %q, want discarded after one attempt failing with %q", tt.name, s.State, s.Errors, tt.wantErr)
			}
			var n int
			if err := h.control.QueryRow(t.Context(), "SELECT count(*) FROM river_job WHERE kind = $1", recordArgs{}.Kind()).Scan(&n); err != nil || n != 0 {
				t.Errorf("%d tenant jobs inserted (%v), want none", n, err)
			}
		})
	}
}

func TestPeriodicJobPanics(t *testing.T) {
	p := tenantriver.NewPeriodic(nil)
	ctor := func(string) (river.JobArgs, *river.InsertOpts) { return nil, nil }
	p.Job("a", river.PeriodicInterval(time.Hour), ctor, nil)
	neg := &tenantriver.PeriodicJobOpts{UniquePeriod: -time.Second}
	subSecond := &tenantriver.PeriodicJobOpts{UniquePeriod: 500 * time.Millisecond}
	for _, tt := range []struct {
		name string
		fn   func()
	}{
		{"twice", func() { p.Job("a", river.PeriodicInterval(time.Hour), ctor, nil) }},
		{"no name", func() { p.Job("", river.PeriodicInterval(time.Hour), ctor, nil) }},
		{"no constructor", func() { p.Job("b", river.PeriodicInterval(time.Hour), nil, nil) }},
		{"no schedule", func() { p.Job("c", nil, ctor, nil) }},
		{"negative unique period", func() { p.Job("d", river.PeriodicInterval(time.Hour), ctor, neg) }},
		{"unique period under a second", func() { p.Job("e", river.PeriodicInterval(time.Hour), ctor, subSecond) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.fn()
		})
	}
}
