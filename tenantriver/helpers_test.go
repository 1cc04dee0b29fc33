package tenantriver_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/tenantctx"
	"github.com/tenantsql/tenantsql/tenantriver"
	"github.com/tenantsql/tenantsql/tenanttest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// wait bounds the waits for River to work jobs: only a hang reaches it.
const wait = time.Minute

var controlSeq atomic.Int64

// harness is a test's tenants (a database each) and River's control
// database, migrated, with a pool on it.
type harness struct {
	env     *tenanttest.Env
	control *pgxpool.Pool
}

// newHarness makes n tenants, each with a table ran where recordWorker
// writes what the server says about the job's session, and a control
// database of the test's own with River's tables.
func newHarness(t *testing.T, n int) *harness {
	t.Helper()
	h := &harness{env: tenanttest.New(t, n)}
	for _, tn := range h.env.Tenants {
		if _, err := h.env.DB.ExecContext(h.env.Context(tn), `CREATE TABLE ran (
			job_id bigint NOT NULL, attempt int NOT NULL, db text NOT NULL, ctx_tenant text NOT NULL)`); err != nil {
			t.Fatal(err)
		}
	}
	name := testenv.Unique(fmt.Sprintf("tsql_river_%d", controlSeq.Add(1)))
	testenv.RecreateDatabase(t, name)
	t.Cleanup(func() { testenv.DropDatabase(t, name) })
	pool, err := pgxpool.New(t.Context(), testenv.DatabaseURL(t, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrator.Migrate(t.Context(), rivermigrate.DirectionUp, nil); err != nil {
		t.Fatalf("migrate River's tables: %v", err)
	}
	if _, err := pool.Exec(t.Context(), `CREATE TABLE swept (had_tenant bool NOT NULL, no_tenant_error bool NOT NULL, db text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	h.control = pool
	return h
}

// recordArgs is a tenant's job: it writes a row into the ran table of the
// database its context routes to. FailFirst makes its first attempt fail
// after writing.
type recordArgs struct {
	FailFirst bool `json:"fail_first"`
}

func (recordArgs) Kind() string { return "tenantriver_test_record" }

type recordWorker struct {
	river.WorkerDefaults[recordArgs]
	h *harness
}

var errFirstAttempt = errors.New("first attempt fails on purpose")

func (w *recordWorker) Work(ctx context.Context, job *river.Job[recordArgs]) error {
	id, _ := tenantctx.TenantFrom(ctx)
	if _, err := w.h.env.DB.ExecContext(ctx, `INSERT INTO ran (job_id, attempt, db, ctx_tenant)
		VALUES ($1, $2, current_database(), $3)`, job.ID, job.Attempt, id); err != nil {
		return fmt.Errorf("record job %d: %w", job.ID, err)
	}
	if job.Args.FailFirst && job.Attempt == 1 {
		return errFirstAttempt
	}
	return nil
}

// sweepArgs is a kind declared without tenant: it writes into the control
// database whether its context had a tenant and whether a tenantsql query
// failed closed.
type sweepArgs struct{}

func (sweepArgs) Kind() string { return "tenantriver_test_sweep" }

type sweepWorker struct {
	river.WorkerDefaults[sweepArgs]
	h *harness
}

func (w *sweepWorker) Work(ctx context.Context, job *river.Job[sweepArgs]) error {
	_, had := tenantctx.TenantFrom(ctx)
	_, queryErr := w.h.env.DB.ExecContext(ctx, "SELECT 1")
	_, err := w.h.control.Exec(ctx, `INSERT INTO swept (had_tenant, no_tenant_error, db) VALUES ($1, $2, current_database())`,
		had, errors.Is(queryErr, driver.ErrNoTenant))
	return err
}

// retryAtOnce retries a failed job without River's backoff (a second at
// the first retry), so the tests wait for no clock.
type retryAtOnce struct{}

func (retryAtOnce) NextRetry(*rivertype.JobRow) time.Time { return time.Now().Add(time.Millisecond) }

// config returns a River config with the harness's workers and the
// tenantriver middleware.
func (h *harness) config(t *testing.T, extra ...func(*river.Workers)) *river.Config {
	workers := river.NewWorkers()
	river.AddWorker(workers, &recordWorker{h: h})
	river.AddWorker(workers, &sweepWorker{h: h})
	for _, f := range extra {
		f(workers)
	}
	return &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 8}},
		Workers:           workers,
		Middleware:        []rivertype.Middleware{tenantriver.NewMiddleware(h.env.Store, tenantriver.WithoutTenant(sweepArgs{}.Kind()))},
		RetryPolicy:       retryAtOnce{},
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Logger:            slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		TestOnly:          true,
	}
}

// cancelAtOnce returns cfg with the harness's middleware set to take the
// store's word for a deleted tenant at once (WithStoreLag(0)): the tests
// that delete a tenant on purpose need no grace for a store that lags,
// and the harness's memory store has no lag.
func (h *harness) cancelAtOnce(cfg *river.Config) *river.Config {
	cfg.Middleware = []rivertype.Middleware{tenantriver.NewMiddleware(h.env.Store,
		tenantriver.WithoutTenant(sweepArgs{}.Kind()), tenantriver.WithStoreLag(0))}
	return cfg
}

// client returns a River client on the control database; start runs it
// until the test ends.
func (h *harness) client(t *testing.T, cfg *river.Config) *river.Client[pgx.Tx] {
	t.Helper()
	c, err := river.NewClient(riverpgxv5.New(h.control), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func start(t *testing.T, c *river.Client[pgx.Tx]) {
	t.Helper()
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := c.Stop(ctx); err != nil {
				t.Errorf("stop River client: %v", err)
			}
		})
	}
	t.Cleanup(stop)
}

// jobState is what the control database says about a job.
type jobState struct {
	State   rivertype.JobState
	Attempt int
	Errors  []string
	Tenant  *string // metadata ->> MetadataKey
}

func (h *harness) job(t *testing.T, id int64) jobState {
	t.Helper()
	var s jobState
	err := h.control.QueryRow(t.Context(), `SELECT state, attempt, ARRAY(SELECT e ->> 'error' FROM unnest(errors) e), metadata ->> $2
		FROM river_job WHERE id = $1`, id, tenantriver.MetadataKey).Scan(&s.State, &s.Attempt, &s.Errors, &s.Tenant)
	if err != nil {
		t.Fatalf("job %d: %v", id, err)
	}
	return s
}

// waitState waits until job id is in state, or fails the test with what
// the job is in.
func (h *harness) waitState(t *testing.T, id int64, state rivertype.JobState) jobState {
	t.Helper()
	testenv.Eventually(t, wait, fmt.Sprintf("job %d %s", id, state), func() bool {
		s := h.job(t, id)
		return s.State == state
	})
	return h.job(t, id)
}

// waitOutcome waits until job id has finished or failed an attempt, so a
// test that expects it cancelled fails at once when it is retried instead.
func (h *harness) waitOutcome(t *testing.T, id int64) jobState {
	t.Helper()
	var s jobState
	testenv.Eventually(t, wait, fmt.Sprintf("job %d to finish or fail", id), func() bool {
		s = h.job(t, id)
		return len(s.Errors) > 0 || s.State == rivertype.JobStateCompleted ||
			s.State == rivertype.JobStateCancelled || s.State == rivertype.JobStateDiscarded
	})
	return s
}

// ranRow is a row of a tenant's ran table.
type ranRow struct {
	JobID     int64
	Attempt   int
	DB        string
	CtxTenant string
}

// ran returns the rows of tenant tn's ran table, asked of tn's database
// directly (not through tenantsql), ordered by job and attempt.
func (h *harness) ran(t *testing.T, tn tenanttest.Tenant) []ranRow {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), testenv.DatabaseURL(t, tn.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), "SELECT job_id, attempt, db, ctx_tenant FROM ran ORDER BY job_id, attempt")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ranRow])
	if err != nil {
		t.Fatal(err)
	}
	return out
}
