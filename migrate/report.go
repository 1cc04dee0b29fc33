package migrate

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// A Report is what one run did to each tenant.
type Report struct {
	Op       Op
	Version  int64 // target of UpTo and DownTo
	DryRun   bool
	Results  []TenantResult // one per selected tenant, or group of tenants sharing their tables, sorted by Tenant
	Duration time.Duration
}

// A TenantResult is what a run did to one tenant.
type TenantResult struct {
	// Tenant is the tenant the run went through.
	Tenant string
	// Covers lists, sorted, every tenant whose tables this result
	// migrated, when several share them (the same database and
	// search_path, as row-level-security tenants of one database do; see
	// the package documentation): Tenant and the others, which have no
	// result of their own. Nil for a tenant with tables of its own.
	Covers []string
	// Before and After are the tenant's migration versions (-1: unknown,
	// for example when its database could not be reached).
	Before, After int64
	// Applied lists the migrations run, in the order they ran; after a
	// failure, those that ran before it (they stay committed).
	Applied []Applied
	// Pending lists the versions still to apply (or, for Down and DownTo,
	// to roll back), in the order goose would: what a dry run would do,
	// or what a failure left. For Status, the migrations not applied.
	Pending []int64
	// Migrations is the state of every migration, for Status.
	Migrations []MigrationState
	Duration   time.Duration
	// Skipped reports a tenant the run did not start: after a failure
	// without WithContinueOnError, or when its context ended.
	Skipped bool
	// Err is why the tenant failed, a *TenantError; for a failed
	// migration it wraps goose's *PartialError. A tenant interrupted by
	// the end of the run's context, before it started or while waiting
	// for the lock, has an error wrapping ctx.Err() (context.Canceled).
	Err error
}

// Applied is one migration run for a tenant.
type Applied struct {
	Version   int64
	Path      string
	Direction string // "up" or "down"
	Duration  time.Duration
}

// MigrationState is one migration's state for a tenant.
type MigrationState struct {
	Version   int64
	Path      string
	Applied   bool
	AppliedAt time.Time
}

// TenantError is the error of one tenant's run.
type TenantError struct {
	Tenant string
	Op     Op
	Err    error
}

func (e *TenantError) Error() string {
	return fmt.Sprintf("migrate %s: tenant %q: %v", e.Op, e.Tenant, e.Err)
}

func (e *TenantError) Unwrap() error { return e.Err }

// Tenants returns the tenants a result stands for: Covers, or Tenant
// alone.
func (r TenantResult) Tenants() []string {
	if len(r.Covers) > 0 {
		return slices.Clone(r.Covers)
	}
	return []string{r.Tenant}
}

// Failed returns the results of the tenants that failed.
func (r *Report) Failed() []TenantResult {
	var out []TenantResult
	for _, res := range r.Results {
		if res.Err != nil {
			out = append(out, res)
		}
	}
	return out
}

// Err joins the errors of the tenants that failed, or is nil.
func (r *Report) Err() error {
	var errs []error
	for _, res := range r.Results {
		if res.Err != nil {
			errs = append(errs, res.Err)
		}
	}
	return errors.Join(errs...)
}

// Counts returns how many tenants changed (had migrations applied or rolled
// back), were already up to date, failed (or were interrupted) and were
// not started.
func (r *Report) Counts() (changed, unchanged, failed, skipped int) {
	for _, res := range r.Results {
		switch {
		case res.Skipped:
			skipped++
		case res.Err != nil:
			failed++
		case len(res.Applied) > 0:
			changed++
		default:
			unchanged++
		}
	}
	return
}

func (r *Report) skipped() int {
	_, _, _, s := r.Counts()
	return s
}

// Progress is reported after each tenant of a run.
type Progress struct {
	Done, Total int
	Result      TenantResult
}
