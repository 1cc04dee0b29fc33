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
	// period yet (or completed and not yet removed by River's job cleaner,
	// a day by default): a restart within the same period does not repeat
	// it, one in the next does. So the periods must fit the schedule: no
	// longer than the interval between two runs, or runs are lost. River
	// takes the period of a fan-out from the time it inserts it, which
	// may be a fraction of a second before the scheduled time (it inserts
	// runs due within 100 ms together): a schedule that runs exactly at
	// the start of each period (cron at the hour, with an hour's period)
	// can, rarely, have a run counted in the period before, and skipped
	// if a RunOnStart fan-out already took that one. Where that matters,
	// give a period that does not divide the schedule's runs so evenly.
	//
	// Zero means the interval between the schedule's next two runs as of
	// Job's call, in whole seconds, at least one second (River's minimum):
	// an hour for river.PeriodicInterval(time.Hour) and for a cron
	// schedule of "0 * * * *". Give it for schedules of uneven intervals.
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
	if o.UniquePeriod < 0 {
		panic(fmt.Sprintf("tenantriver: Periodic.Job: %q: negative UniquePeriod %v", name, o.UniquePeriod))
	}
	if o.UniquePeriod == 0 {
		o.UniquePeriod = scheduleInterval(schedule, time.Now())
	}
	o.UniquePeriod = max(o.UniquePeriod, time.Second)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.jobs[name]; ok {
		panic(fmt.Sprintf("tenantriver: Periodic.Job: %q declared twice", name))
	}
	p.jobs[name] = construct
	unique := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: o.UniquePeriod}}
	return river.NewPeriodicJob(schedule, func() (river.JobArgs, *river.InsertOpts) {
		return FanoutArgs{Name: name}, unique
	}, &river.PeriodicJobOpts{ID: o.ID, RunOnStart: o.RunOnStart})
}

// scheduleInterval returns the interval between the next two runs of
// schedule after now, rounded to the second (zero for a schedule that
// never runs twice). Not the time to the next run: for a cron schedule
// that is a fraction of the interval.
func scheduleInterval(schedule river.PeriodicSchedule, now time.Time) time.Duration {
	next := schedule.Next(now)
	return schedule.Next(next).Sub(next).Round(time.Second)
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
