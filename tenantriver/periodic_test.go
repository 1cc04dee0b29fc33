package tenantriver_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/tenantriver"
)

// fires is a schedule that comes n times, every interval, then not for a
// century: the number of periods is fixed, whatever the machine's speed.
type fires struct {
	mu    sync.Mutex // guards n
	n     int
	every time.Duration
}

func (f *fires) Next(t time.Time) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		return t.AddDate(100, 0, 0)
	}
	f.n--
	return t.Add(f.every)
}

// A periodic job declared once runs once per tenant per period, each on
// its tenant's database.
func TestPeriodicPerTenant(t *testing.T) {
	const tenants, periods = 3, 2
	h := newHarness(t, tenants)
	periodic := tenantriver.NewPeriodic(h.env.Store)
	job := periodic.Job("record", &fires{n: periods, every: 200 * time.Millisecond}, func(string) (river.JobArgs, *river.InsertOpts) {
		return recordArgs{}, nil
	}, nil)
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
	for _, tt := range []struct {
		name string
		fn   func()
	}{
		{"twice", func() { p.Job("a", river.PeriodicInterval(time.Hour), ctor, nil) }},
		{"no name", func() { p.Job("", river.PeriodicInterval(time.Hour), ctor, nil) }},
		{"no constructor", func() { p.Job("b", river.PeriodicInterval(time.Hour), nil, nil) }},
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
