package tenantriver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/tenantsql/tenantsql/store"
)

// A PerTenantConstructor returns the job to insert for one tenant in one
// period, or nil args to insert none for it. It is called once per tenant
// per period, inside a River worker, so it may block briefly (unlike a
// river.PeriodicJobConstructor), but it must not insert anything itself.
type PerTenantConstructor func(tenantID string) (river.JobArgs, *river.InsertOpts)

// FanoutArgs are the args of the job that a per-tenant periodic job
// inserts each period: Periodic works it by inserting one job per tenant.
// Its kind belongs to no tenant in every Middleware.
type FanoutArgs struct {
	// Name is the name given to Periodic.Job.
	Name string `json:"name"`
}

// Kind is "tenantsql_fanout".
func (FanoutArgs) Kind() string { return "tenantsql_fanout" }

// Periodic declares periodic jobs once and runs them once per tenant per
// period, as the store lists the tenants when the period comes.
//
// Each period River's periodic enqueuer (on the elected leader only)
// inserts one tenant-less FanoutArgs job; Periodic, the worker of that
// kind, lists the tenants and inserts one job per tenant, each carrying its
// tenant, and marks the fan-out job completed in the same transaction: a
// fan-out that fails or is interrupted inserts nothing and is retried, one
// that commits is never worked again, so each tenant gets one job per
// period. A tenant created later gets its first job at the next period; a
// tenant deleted after the fan-out sees its job cancelled (Middleware).
// The periods are River's: its periodic enqueuer is approximate (a newly
// elected leader starts the schedule afresh, and RunOnStart runs at each
// start). Each fan-out job is unique within its period
// (PeriodicJobOpts.UniquePeriod), so a restart or a new leader does not
// repeat the fan-out of a period that had one.
//
// Register Periodic as a worker (river.AddWorker), pass the jobs Job
// returns in river.Config.PeriodicJobs, and declare the same names in every
// process that works jobs: the fan-out job may run in any of them. The
// client must use riverpgxv5 (the fan-out's transaction is a pgx.Tx).
type Periodic struct {
	river.WorkerDefaults[FanoutArgs]
	store store.Store

	mu   sync.Mutex                      // guards jobs
	jobs map[string]PerTenantConstructor // by name
}

// NewPeriodic returns a Periodic that lists the tenants of st.
func NewPeriodic(st store.Store) *Periodic {
	return &Periodic{store: st, jobs: map[string]PerTenantConstructor{}}
}

// PeriodicJobOpts are the options of a per-tenant periodic job.
type PeriodicJobOpts struct {
	// ID and RunOnStart are those of river.PeriodicJobOpts, for the
	// fan-out job.
	ID         string
	RunOnStart bool
	// UniquePeriod is the period within which one fan-out of the job is
	// inserted at most (river.UniqueOpts.ByPeriod). River's periodic
	// enqueuer starts its schedule afresh on every start and every
	// leader election, and with RunOnStart inserts at once: without a
	// unique period a restart would repeat the fan-out, and every
	// tenant's job, of a period that already had them.
	//
	// River divides time, in UTC, into periods of this length from the
	// zero time, and inserts a fan-out only if none of the job is in its
	// period yet (or completed and not yet removed: River's job cleaner
	// deletes completed jobs after river.Config.CompletedJobRetentionPeriod,
	// 24 hours by default). A restart within the same period does not
	// repeat it, one in the next does; and once the period's fan-out has
	// been removed, a restart within the period repeats it too. For a
	// period longer than a day, set CompletedJobRetentionPeriod to at
	// least the period. The periods must fit the schedule: no longer than
	// the shortest interval between two runs, or runs are lost.
	//
	// River keys a fan-out by the time it builds it, not by the run's
	// scheduled time, and builds runs due within the next 100 ms
	// together with the one due now: a run can be keyed a fraction of a
	// second early, into the period before, and is skipped if that
	// period's fan-out (its scheduled run, or a RunOnStart one) is still
	// there. A period a second shorter than the schedule's shortest
	// interval keeps two runs in different periods all the same; the
	// default is such a period.
	//
	// Zero means the shortest interval between two runs of the schedule,
	// less a second, in whole seconds: 59m59s for
	// river.PeriodicInterval(time.Hour) and for a cron schedule of
	// "0 * * * *", 7h59m59s for "0 9,17 * * *" (its runs 8 and 16 hours
	// apart). The runs looked at are those of the year from the start of
	// the current year (UTC), the first 1000 at most: processes that start
	// in the same year compute the same period, whenever they start, so
	// their fan-outs dedupe against each other. A schedule whose runs are
	// less than two seconds apart gets periods of one second (River's
	// minimum); one whose runs are less than a second apart gets no
	// unique period at all, and a restart may repeat a run.
	//
	// A UniquePeriod under one second makes Job panic: River refuses it.
	UniquePeriod time.Duration
}

// Job declares a periodic job run once per tenant on schedule, and returns
// the river.PeriodicJob to put in river.Config.PeriodicJobs (or add with
// Client.PeriodicJobs().Add). name identifies the declaration in the
// fan-out job's args; Job panics if name is empty or already declared, as
// http.ServeMux does for a pattern, since both are mistakes in the
// program's set-up. opts may be nil.
func (p *Periodic) Job(name string, schedule river.PeriodicSchedule, construct PerTenantConstructor, opts *PeriodicJobOpts) *river.PeriodicJob {
	if name == "" || construct == nil || schedule == nil {
		panic("tenantriver: Periodic.Job needs a name, a schedule and a constructor")
	}
	var o PeriodicJobOpts
	if opts != nil {
		o = *opts
	}
	switch {
	case o.UniquePeriod < 0:
		panic(fmt.Sprintf("tenantriver: Periodic.Job: %q: negative UniquePeriod %v", name, o.UniquePeriod))
	case o.UniquePeriod > 0 && o.UniquePeriod < time.Second:
		panic(fmt.Sprintf("tenantriver: Periodic.Job: %q: UniquePeriod %v is under a second, River's minimum; "+
			"give zero for the default, or at least a second", name, o.UniquePeriod))
	case o.UniquePeriod == 0:
		o.UniquePeriod = defaultUniquePeriod(shortestInterval(schedule, yearStart(time.Now())))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.jobs[name]; ok {
		panic(fmt.Sprintf("tenantriver: Periodic.Job: %q declared twice", name))
	}
	p.jobs[name] = construct
	unique := &river.InsertOpts{}
	if o.UniquePeriod > 0 { // zero: a sub-second schedule, not unique
		unique.UniqueOpts = river.UniqueOpts{ByArgs: true, ByPeriod: o.UniquePeriod}
	}
	return river.NewPeriodicJob(schedule, func() (river.JobArgs, *river.InsertOpts) {
		return FanoutArgs{Name: name}, unique
	}, &river.PeriodicJobOpts{ID: o.ID, RunOnStart: o.RunOnStart})
}

// Bounds on the runs shortestInterval looks at.
const (
	intervalRuns    = 1000
	intervalHorizon = 365 * 24 * time.Hour
)

// yearStart is the start, in UTC, of the year of t: the reference from
// which every process computes the default unique period.
func yearStart(t time.Time) time.Time {
	return time.Date(t.UTC().Year(), time.January, 1, 0, 0, 0, 0, time.UTC)
}

// shortestInterval returns the shortest interval between two runs of
// schedule among its runs after from, within a year of from or the first
// intervalRuns, whichever ends first (the first interval always counts),
// or zero for a schedule that never runs twice. Not the time to the next
// run, nor one sampled interval: a cron schedule of "0 9,17 * * *" has
// intervals of 8 and 16 hours, and one of weekdays, of a day and of three.
func shortestInterval(schedule river.PeriodicSchedule, from time.Time) time.Duration {
	end := from.Add(intervalHorizon)
	var shortest time.Duration
	prev := schedule.Next(from)
	for range intervalRuns {
		next := schedule.Next(prev)
		if !next.After(prev) || (shortest > 0 && next.After(end)) {
			break
		}
		if d := next.Sub(prev); shortest == 0 || d < shortest {
			shortest = d
		}
		prev = next
	}
	return shortest
}

// defaultUniquePeriod is the unique period for a schedule whose shortest
// interval is shortest: a second less, so that a run keyed up to a second
// early is still in another period than the run before it, in whole
// seconds; one second, River's minimum, under two; zero (no uniqueness)
// under one.
func defaultUniquePeriod(shortest time.Duration) time.Duration {
	switch {
	case shortest < time.Second:
		return 0
	case shortest < 2*time.Second:
		return time.Second
	}
	return (shortest - time.Second).Truncate(time.Second)
}

// ErrUndeclared is the error of a fan-out job whose name this process has
// not declared with Periodic.Job (the processes of a cluster disagree, as
// during a rolling deploy). The job is retried, so that a process that
// knows the name can run it.
var ErrUndeclared = errors.New("tenantriver: per-tenant periodic job not declared in this process")

// Work inserts one job per tenant for the period of the fan-out job, and
// completes the fan-out job in the same transaction.
func (p *Periodic) Work(ctx context.Context, job *river.Job[FanoutArgs]) error {
	p.mu.Lock()
	construct := p.jobs[job.Args.Name]
	p.mu.Unlock()
	if construct == nil {
		return fmt.Errorf("%w: %q: declare it with Periodic.Job in every process that works %s jobs", ErrUndeclared, job.Args.Name, job.Kind)
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return fmt.Errorf("tenantriver: fan-out %q needs a River client on riverpgxv5: %w", job.Args.Name, err)
	}
	tenants, err := p.store.List(ctx)
	if err != nil {
		return fmt.Errorf("tenantriver: fan-out %q: list tenants: %w", job.Args.Name, err)
	}
	var params []river.InsertManyParams
	for _, t := range tenants {
		args, opts := construct(t.ID)
		if args == nil {
			continue
		}
		// The tenant goes in the metadata, where Middleware reads it back
		// (fanoutKey), so that every tenant's job is one batch insert.
		o := river.InsertOpts{}
		if opts != nil {
			o = *opts
		}
		if o.Metadata, err = withTenant(o.Metadata, t); err != nil {
			return fmt.Errorf("tenantriver: fan-out %q: tenant %s: %w", job.Args.Name, t.ID, err)
		}
		params = append(params, river.InsertManyParams{Args: args, InsertOpts: &o})
	}

	drv := client.Driver()
	execTx, err := drv.GetExecutor().Begin(ctx)
	if err != nil {
		return fmt.Errorf("tenantriver: fan-out %q: begin: %w", job.Args.Name, err)
	}
	tx := drv.UnwrapTx(execTx)
	defer tx.Rollback(context.WithoutCancel(ctx)) // after Commit, a no-op
	if len(params) > 0 {
		if _, err := client.InsertManyTx(context.WithValue(ctx, fanoutKey{}, true), tx, params); err != nil {
			return fmt.Errorf("tenantriver: fan-out %q: insert %d jobs: %w", job.Args.Name, len(params), err)
		}
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("tenantriver: fan-out %q: complete: %w", job.Args.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("tenantriver: fan-out %q: commit: %w", job.Args.Name, err)
	}
	return nil
}

// withTenant writes t's id and CreatedAt into metadata, where Middleware
// reads them back (fanoutKey) without asking the store again.
func withTenant(metadata []byte, t store.Tenant) ([]byte, error) {
	meta, err := decodeMetadata(metadata)
	if err != nil {
		return nil, err
	}
	if named, err := metadataTenant(meta); err != nil {
		return nil, err
	} else if named != "" && named != t.ID {
		return nil, fmt.Errorf("the constructor's metadata names tenant %q", named)
	}
	meta[MetadataKey], _ = json.Marshal(t.ID)
	if t.CreatedAt.IsZero() {
		delete(meta, MetadataKeyCreatedAt)
	} else {
		meta[MetadataKeyCreatedAt], _ = json.Marshal(formatCreatedAt(t.CreatedAt))
	}
	return json.Marshal(meta)
}
