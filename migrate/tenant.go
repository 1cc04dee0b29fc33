package migrate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// Tenant runs op for one tenant, whatever WithTenants and WithExclude say.
// The create hook (hooks.Migrate) uses it. When ctx ends, the migration in
// flight runs to its end and the tenant stops there, as in Run.
func (m *Migrator) Tenant(ctx context.Context, id string, op Op, version int64) TenantResult {
	return m.runTenant(ctx, id, op, version)
}

func (m *Migrator) runTenant(ctx context.Context, id string, op Op, version int64) (res TenantResult) {
	start := time.Now()
	res = TenantResult{Tenant: id, Before: -1, After: -1}
	defer func() {
		res.Duration = time.Since(start)
		if res.Err != nil {
			res.Err = &TenantError{Tenant: id, Op: op, Err: res.Err}
		}
	}()
	ctx = tenantctx.WithTenant(ctx, id)
	// Reading the version table takes no lock and creates nothing: a
	// tenant with nothing to do, or a dry run, costs this and no more.
	vs, err := m.readVersions(ctx)
	if err != nil {
		res.Err = err
		return res
	}
	res.Before, res.After = vs.current(), vs.current()

	var p *goose.Provider
	switch op {
	case Status:
		for _, s := range m.sources {
			at, applied := vs.at[s.Version]
			res.Migrations = append(res.Migrations, MigrationState{Version: s.Version, Path: s.Path, Applied: applied, AppliedAt: at})
			if !applied {
				res.Pending = append(res.Pending, s.Version)
			}
		}
		return res
	case Up, UpTo:
		target := int64(math.MaxInt64)
		if op == UpTo {
			target = version
		}
		var outOfOrder bool
		res.Pending, outOfOrder = m.upPlan(vs, target)
		if outOfOrder {
			// Below the current version: goose decides whether they may
			// be applied (goose.WithAllowOutofOrder), and its HasPending
			// fails where its Up would.
			if p, err = m.provider(); err == nil {
				_, err = p.HasPending(ctx)
			}
			if err != nil {
				res.Err = err
				return res
			}
		}
	case Down, DownTo:
		if res.Pending, err = m.downPlan(vs, op, version); err != nil {
			res.Err = err
			return res
		}
	}
	if len(res.Pending) == 0 || m.cfg.dryRun {
		return res
	}
	if p == nil {
		if p, err = m.provider(); err != nil {
			res.Err = err
			return res
		}
	}
	m.apply(ctx, p, vs, op == Up || op == UpTo, &res)
	return res
}

// apply runs the migrations of res.Pending in order, one at a time, each
// under the lock, and records what it did in res. Between two migrations
// it checks ctx; the migration itself runs to its end whatever ctx does.
func (m *Migrator) apply(ctx context.Context, p *goose.Provider, vs versions, up bool, res *TenantResult) {
	plan := res.Pending
	applied := maps.Clone(vs.at)
	var done []*goose.MigrationResult
	for i, v := range plan {
		if err := ctx.Err(); err != nil {
			res.Err = fmt.Errorf("interrupted before version %d: %w", v, err)
			res.Pending = plan[i:]
			break
		}
		r, err := p.ApplyVersion(detach(ctx), v, up)
		var pe *goose.PartialError
		switch {
		case errors.Is(err, goose.ErrAlreadyApplied), errors.Is(err, goose.ErrNotApplied):
			// Another run got there first; goose checked under the lock.
		case errors.As(err, &pe):
			// The documented PartialError says what this run applied
			// before the failure, not just this step.
			pe.Applied = append(done, pe.Applied...)
			res.Err = err
		case err != nil:
			res.Err = err
		default:
			done = append(done, r)
			res.Applied = append(res.Applied, Applied{Version: v, Path: r.Source.Path, Direction: r.Direction, Duration: r.Duration})
		}
		if res.Err != nil {
			res.Pending = plan[i:]
			break
		}
		if up {
			applied[v] = time.Time{}
		} else {
			delete(applied, v)
		}
	}
	if res.Err == nil {
		res.Pending = nil
	}
	res.After = versions{at: applied}.current()
}

// upPlan lists, in goose's order (ascending), the versions goose's Up, or
// UpTo target, would apply: those not applied up to target. outOfOrder
// reports some below the current version, which goose applies only with
// goose.WithAllowOutofOrder.
func (m *Migrator) upPlan(vs versions, target int64) (plan []int64, outOfOrder bool) {
	cur := vs.current()
	for _, s := range m.sources {
		if _, ok := vs.at[s.Version]; ok || s.Version > target {
			continue
		}
		plan = append(plan, s.Version)
		outOfOrder = outOfOrder || s.Version < cur
	}
	return plan, outOfOrder
}

// downPlan lists the versions goose's Down, or DownTo version, would roll
// back: in the reverse of the order they were applied (which is not the
// order of their versions after out-of-order migrations), stopping at the
// first at or below the target.
func (m *Migrator) downPlan(vs versions, op Op, version int64) ([]int64, error) {
	var plan []int64
	for _, v := range vs.rows {
		if v == 0 || op == DownTo && v <= version {
			break
		}
		plan = append(plan, v)
		if op == Down {
			break
		}
	}
	for _, v := range plan {
		if !slices.ContainsFunc(m.sources, func(s *goose.Source) bool { return s.Version == v }) {
			// As goose, refuse before rolling anything back.
			return nil, fmt.Errorf("migrate: version %d is applied but none of the migrations has it, so it cannot be rolled back", v)
		}
	}
	return plan, nil
}

// versions is what a tenant's version table records.
type versions struct {
	rows []int64             // version_id, the latest applied first (goose's order to roll back)
	at   map[int64]time.Time // when each version was applied
}

// current is the tenant's version as goose reports it: the highest
// applied (0 with none).
func (vs versions) current() int64 {
	var cur int64
	for v := range vs.at {
		cur = max(cur, v)
	}
	return cur
}

// readVersions reads the tenant's version table, without creating it.
// goose's own reads create it where it is missing, which a dry run or a
// status must not do.
func (m *Migrator) readVersions(ctx context.Context) (versions, error) {
	vs := versions{at: map[int64]time.Time{}}
	// to_regclass resolves the name as goose's SQL does (goose puts it in
	// its statements as given, schema and all), and answers NULL rather
	// than failing when it is not there.
	var exists bool
	if err := m.db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", m.table).Scan(&exists); err != nil {
		return vs, fmt.Errorf("migrate: look for the version table %s: %w", m.table, err)
	}
	if !exists {
		return vs, nil
	}
	// The order goose lists them in to roll back.
	rows, err := m.db.QueryContext(ctx, "SELECT version_id, tstamp FROM "+m.table+" ORDER BY id DESC")
	if err != nil {
		return vs, fmt.Errorf("migrate: read the version table %s: %w", m.table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			v  int64
			at time.Time
		)
		if err := rows.Scan(&v, &at); err != nil {
			return vs, fmt.Errorf("migrate: read the version table %s: %w", m.table, err)
		}
		vs.rows = append(vs.rows, v)
		if _, seen := vs.at[v]; !seen {
			vs.at[v] = at
		}
	}
	if err := rows.Err(); err != nil {
		return vs, fmt.Errorf("migrate: read the version table %s: %w", m.table, err)
	}
	return vs, nil
}
