package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
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
	var observed func(TenantResult)
	if o := m.cfg.observe; o != nil {
		ctx, observed = o(ctx, id, op, version)
	}
	defer func() {
		res.Duration = time.Since(start)
		if res.Err != nil {
			res.Err = &TenantError{Tenant: id, Op: op, Err: res.Err}
		}
		if observed != nil {
			observed(res)
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
	m.apply(ctx, p, op, version, &res)
	return res
}

// apply runs op for the tenant with one goose call, under goose's lock,
// and records what it did in res. goose plans again once it holds the
// lock, so a run that planned before another one finished does only what
// is still to do, and an up racing a down cannot roll back or apply on
// top of a plan that went stale (applying res.Pending version by version
// could: a down planned at {1} rolled back 1 under the 2 that an up had
// just applied). The wait for the lock ends with ctx; once the lock is
// held, the tenant's migrations run to their end whatever ctx does: one
// cut in the middle would not be rolled back without a transaction.
func (m *Migrator) apply(ctx context.Context, p *goose.Provider, op Op, version int64, res *TenantResult) {
	if err := ctx.Err(); err != nil {
		res.Err = fmt.Errorf("interrupted before migrating: %w", err)
		return
	}
	dctx := detach(ctx)
	var (
		results []*goose.MigrationResult
		err     error
	)
	switch op {
	case Up:
		results, err = p.Up(dctx)
	case UpTo:
		results, err = p.UpTo(dctx, version)
	case Down:
		var r *goose.MigrationResult
		if r, err = p.Down(dctx); r != nil {
			results = []*goose.MigrationResult{r}
		}
	case DownTo:
		results, err = p.DownTo(dctx, version)
	}
	res.record(results, err)
	// The version table as the run left it, even after a failure or an
	// end of ctx: the report must say where the tenant stands.
	if vs, err := m.readVersions(context.WithoutCancel(ctx)); err == nil {
		res.After = vs.current()
	}
}

// record keeps goose's results and error in res: what applied (with a
// *goose.PartialError, what applied before the failure) and what is left.
func (res *TenantResult) record(results []*goose.MigrationResult, err error) {
	var pe *goose.PartialError
	if errors.As(err, &pe) {
		results = pe.Applied
	}
	for _, r := range results {
		res.Applied = append(res.Applied, Applied{Version: r.Source.Version, Path: r.Source.Path, Direction: r.Direction, Duration: r.Duration})
	}
	// Nothing left to do once goose held the lock: another run did it.
	if errors.Is(err, goose.ErrNoNextVersion) || errors.Is(err, goose.ErrNoCurrentVersion) {
		err = nil
	}
	res.Err = err
	if err == nil {
		res.Pending = nil
		return
	}
	res.Pending = slices.DeleteFunc(res.Pending, func(v int64) bool {
		return slices.ContainsFunc(res.Applied, func(a Applied) bool { return a.Version == v })
	})
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
	table, err := m.versionTable(ctx)
	if err != nil || table == "" {
		return vs, err
	}
	// The order goose lists them in to roll back.
	rows, err := m.db.QueryContext(ctx, "SELECT version_id, tstamp FROM "+table+" ORDER BY id DESC")
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

// versionTable returns the name of the tenant's version table, qualified
// with its schema, or "" if it does not exist. It is the table goose
// uses: goose looks for an unqualified name in current_schema() (the
// first schema of the search_path that exists), creates it there, and its
// statements then find it there first. A name resolved over the whole
// search_path (to_regclass of the bare name) could be another schema's:
// with search_path "tenant_42, public", public's table before goose has
// created the tenant's own. A name with its schema (WithTableName) is
// taken as written, as goose does.
func (m *Migrator) versionTable(ctx context.Context) (string, error) {
	if strings.Contains(m.table, ".") {
		var exists bool
		if err := m.db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", m.table).Scan(&exists); err != nil {
			return "", fmt.Errorf("migrate: look for the version table %s: %w", m.table, err)
		}
		if !exists {
			return "", nil
		}
		return m.table, nil
	}
	var (
		schema sql.NullString
		exists bool
	)
	// to_regclass answers NULL rather than failing when the table is not
	// there; format's %I quotes the schema as an identifier (and fails on
	// NULL, hence the CASE).
	err := m.db.QueryRowContext(ctx, "SELECT s, CASE WHEN s IS NULL THEN false ELSE to_regclass(format('%I.%s', s, $1::text)) IS NOT NULL END FROM current_schema() AS s", m.table).Scan(&schema, &exists)
	if err != nil {
		return "", fmt.Errorf("migrate: look for the version table %s: %w", m.table, err)
	}
	if !schema.Valid {
		return "", fmt.Errorf("migrate: %w", errNoSchema)
	}
	if !exists {
		return "", nil
	}
	return pgx.Identifier{schema.String}.Sanitize() + "." + m.table, nil
}
