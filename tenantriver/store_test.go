package tenantriver_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
	"github.com/tenantsql/tenantsql/tenantriver"
)

// outageStore is a tenant store whose Get fails, as a store that cannot
// be reached does, while down is set.
type outageStore struct {
	store.Store
	down atomic.Bool
}

var errUnreachable = errors.New("dial tcp 127.0.0.1:1: connection refused")

func (s *outageStore) Get(ctx context.Context, id string) (store.Tenant, error) {
	if s.down.Load() {
		return store.Tenant{}, errUnreachable
	}
	return s.Store.Get(ctx, id)
}

// withMiddleware returns cfg with its middleware replaced by one on st.
func withMiddleware(cfg *river.Config, st store.Store, opts ...tenantriver.Option) *river.Config {
	cfg.Middleware = []rivertype.Middleware{tenantriver.NewMiddleware(st, opts...)}
	return cfg
}

// snoozes returns how many times River has snoozed job id, as its row
// in the control database counts them.
func (h *harness) snoozes(t *testing.T, id int64) int {
	t.Helper()
	var n int
	if err := h.control.QueryRow(t.Context(), "SELECT coalesce((metadata ->> 'snoozes')::int, 0) FROM river_job WHERE id = $1", id).Scan(&n); err != nil {
		t.Fatalf("job %d: %v", id, err)
	}
	return n
}

// waitSnoozed waits until River has snoozed job id n times, then checks
// that no attempt of it failed and it is neither cancelled nor discarded.
func (h *harness) waitSnoozed(t *testing.T, id int64, n int) {
	t.Helper()
	testenv.Eventually(t, wait, fmt.Sprintf("job %d snoozed %d times", id, n), func() bool {
		return h.snoozes(t, id) >= n
	})
	if s := h.job(t, id); len(s.Errors) != 0 || s.State == rivertype.JobStateCancelled || s.State == rivertype.JobStateDiscarded {
		t.Fatalf("job %d is %s with errors %q, want it waiting, its attempts untouched", id, s.State, s.Errors)
	}
}

// A job whose tenant the store has but this process's *sql.DB does not
// know yet (the store's changes reach processes a moment apart) is
// retried, not cancelled: each of its two attempts fails, and River
// discards it after the second.
func TestNotYetHereIsRetried(t *testing.T) {
	h := newHarness(t, 1)
	// The store the middleware asks has a tenant that the harness's
	// *sql.DB, on another store, has not heard of.
	ahead := store.NewMemory()
	t.Cleanup(func() { ahead.Close() })
	const newcomer = "newcomer.tenanttest"
	if _, err := ahead.Create(t.Context(), store.Tenant{ID: newcomer, DeployInfo: map[string]string{store.KeyPostgresURL: h.env.Tenants[0].URL}}); err != nil {
		t.Fatal(err)
	}
	c := h.client(t, withMiddleware(h.config(t), ahead))
	res, err := c.Insert(tenantctx.WithTenant(t.Context(), newcomer), recordArgs{}, &river.InsertOpts{MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	start(t, c)
	s := h.waitState(t, res.Job.ID, rivertype.JobStateDiscarded)
	if s.Attempt != 2 || len(s.Errors) != 2 {
		t.Fatalf("job discarded at attempt %d with errors %q, want two attempts, each failed", s.Attempt, s.Errors)
	}
	for _, e := range s.Errors {
		if !strings.Contains(e, "does not know it, not yet or no longer") {
			t.Errorf("attempt failed with %q, want it to say this process does not know the tenant yet", e)
		}
	}
	if got := h.ran(t, h.env.Tenants[0]); len(got) != 0 {
		t.Errorf("tenant's database: %+v, want nothing: the job never got past the *sql.DB", got)
	}
}

// A job whose store cannot be asked waits for it, however many attempts
// it is allowed (here one): it is snoozed, which uses up none, and runs
// once the store answers again.
func TestStoreOutageWaits(t *testing.T) {
	h := newHarness(t, 1)
	tn := h.env.Tenants[0]
	outage := &outageStore{Store: h.env.Store}
	outage.down.Store(true)
	inserter := h.client(t, h.config(t))
	res, err := inserter.Insert(h.env.Context(tn), recordArgs{}, &river.InsertOpts{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	start(t, h.client(t, withMiddleware(h.config(t), outage)))
	h.waitSnoozed(t, res.Job.ID, 2)
	outage.down.Store(false)
	h.waitState(t, res.Job.ID, rivertype.JobStateCompleted)
	if got := h.ran(t, tn); len(got) != 1 || got[0].JobID != res.Job.ID || got[0].DB != tn.Database {
		t.Errorf("tenant's database: %+v, want job %d run there once the store answered", got, res.Job.ID)
	}
}

// hangingStore is a tenant store whose Get, while hang is set, answers
// only when its context ends, as a store that accepted the connection
// and never replies.
type hangingStore struct {
	store.Store
	hang atomic.Bool
}

func (s *hangingStore) Get(ctx context.Context, id string) (store.Tenant, error) {
	if s.hang.Load() {
		<-ctx.Done()
		return store.Tenant{}, ctx.Err()
	}
	return s.Store.Get(ctx, id)
}

// A store that hangs holds no worker past WithLookupTimeout: River's
// JobTimeout starts only with Work. The job is snoozed, as for a store
// that cannot be reached, and runs once the store answers.
func TestHangingStoreTimesOut(t *testing.T) {
	h := newHarness(t, 1)
	tn := h.env.Tenants[0]
	hanging := &hangingStore{Store: h.env.Store}
	hanging.hang.Store(true)
	res, err := h.client(t, h.config(t)).Insert(h.env.Context(tn), recordArgs{}, &river.InsertOpts{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	start(t, h.client(t, withMiddleware(h.config(t), hanging, tenantriver.WithLookupTimeout(100*time.Millisecond))))
	h.waitSnoozed(t, res.Job.ID, 2)
	hanging.hang.Store(false)
	h.waitState(t, res.Job.ID, rivertype.JobStateCompleted)
	if got := h.ran(t, tn); len(got) != 1 || got[0].JobID != res.Job.ID || got[0].DB != tn.Database {
		t.Errorf("tenant's database: %+v, want job %d run there once the store answered", got, res.Job.ID)
	}
}

// A tenant created by one process, whose job another process fetches
// before its store has heard of the tenant (the file store polls the
// file), is not cancelled: the job waits for the store, and runs on the
// tenant's database once the store has caught up.
func TestLaggingStoreWaits(t *testing.T) {
	h := newHarness(t, 1)
	tn := h.env.Tenants[0]
	path := filepath.Join(t.TempDir(), "tenants.json")
	open := func(opts ...store.FileOption) *store.File {
		f, err := store.OpenFile(t.Context(), path, append([]store.FileOption{store.WithFileCreate(true)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	a := open()
	b := open(store.WithFilePollInterval(time.Hour)) // not polled during the test

	const lagged = "lagged.tenanttest"
	info := map[string]string{store.KeyPostgresURL: tn.URL}
	if _, err := a.Create(t.Context(), store.Tenant{ID: lagged, DeployInfo: info}); err != nil {
		t.Fatal(err)
	}
	// The *sql.DB, on the harness's store, knows the tenant: only the
	// worker's middleware lags.
	if _, err := h.env.Store.Create(t.Context(), store.Tenant{ID: lagged, DeployInfo: info}); err != nil {
		t.Fatal(err)
	}
	inserter := h.client(t, withMiddleware(h.config(t), a))
	res, err := inserter.Insert(tenantctx.WithTenant(t.Context(), lagged), recordArgs{}, &river.InsertOpts{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(t.Context(), lagged); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lagging store's Get: %v, want store.ErrNotFound: it must not have heard of the tenant yet", err)
	}
	worker := h.client(t, withMiddleware(h.config(t), b))
	start(t, worker)
	h.waitSnoozed(t, res.Job.ID, 1)

	// A write through b reads the file first: b catches up.
	if _, err := b.Create(t.Context(), store.Tenant{ID: "catch-up.tenanttest", DeployInfo: info}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(t.Context(), lagged); err != nil {
		t.Fatalf("lagging store's Get after a write through it: %v, want the tenant", err)
	}
	h.waitState(t, res.Job.ID, rivertype.JobStateCompleted)
	got := h.ran(t, tn)
	if len(got) != 1 || got[0].JobID != res.Job.ID || got[0].DB != tn.Database || got[0].CtxTenant != lagged {
		t.Errorf("tenant's database: %+v, want job %d run there for %s", got, res.Job.ID, lagged)
	}
}

// A job whose tenant the store no longer has is cancelled after one
// attempt, with an error naming driver.ErrUnknownTenant: checked before
// Work runs, or, for a job inserted before the middleware recorded the
// tenant's incarnation, after Work fails with driver.ErrUnknownTenant.
func TestGoneTenantCancels(t *testing.T) {
	h := newHarness(t, 3)
	kept := h.env.Tenants[2]
	c := h.client(t, h.cancelAtOnce(h.config(t)))
	plain := h.client(t, &river.Config{}) // insert-only, no middleware: an older job
	tests := []struct {
		name   string
		tenant int
		insert func(ctx context.Context, id string) (*rivertype.JobInsertResult, error)
	}{
		{"checked before work", 0, func(ctx context.Context, _ string) (*rivertype.JobInsertResult, error) {
			return c.Insert(ctx, recordArgs{}, nil)
		}},
		{"older job, after work", 1, func(ctx context.Context, id string) (*rivertype.JobInsertResult, error) {
			return plain.Insert(ctx, recordArgs{}, &river.InsertOpts{Metadata: fmt.Appendf(nil, `{%q: %q}`, tenantriver.MetadataKey, id)})
		}},
	}
	ids := make([]int64, len(tests))
	for i, tt := range tests {
		tn := h.env.Tenants[tt.tenant]
		res, err := tt.insert(h.env.Context(tn), tn.ID)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = res.Job.ID
		if ok, err := h.env.Store.Delete(t.Context(), tn.ID); err != nil || !ok {
			t.Fatalf("delete tenant: %v, %v", ok, err)
		}
	}
	// The older job is worked before the store is asked: the *sql.DB must
	// have heard of the deletes, or it would run on the deleted tenant's
	// database, which it may until it hears.
	for _, tt := range tests {
		tn := h.env.Tenants[tt.tenant]
		testenv.Eventually(t, wait, "the *sql.DB to hear that "+tn.ID+" was deleted", func() bool {
			_, err := h.env.DB.ExecContext(h.env.Context(tn), "SELECT 1")
			return errors.Is(err, driver.ErrUnknownTenant)
		})
	}
	resKept, err := c.Insert(h.env.Context(kept), recordArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start(t, c)
	for i, tt := range tests {
		tn := h.env.Tenants[tt.tenant]
		s := h.waitOutcome(t, ids[i])
		if s.State != rivertype.JobStateCancelled || len(s.Errors) != 1 ||
			!strings.Contains(s.Errors[0], driver.ErrUnknownTenant.Error()) || !strings.Contains(s.Errors[0], "no longer has") {
			t.Errorf("%s: job %s with errors %q, want cancelled after one attempt, the tenant unknown and deleted", tt.name, s.State, s.Errors)
		}
		if got := h.ran(t, tn); len(got) != 0 {
			t.Errorf("%s: deleted tenant's database: %+v, want nothing", tt.name, got)
		}
	}
	h.waitState(t, resKept.Job.ID, rivertype.JobStateCompleted)
	if got := h.ran(t, kept); len(got) != 1 || got[0].DB != kept.Database {
		t.Errorf("kept tenant's database: %+v, want its job", got)
	}
}

// A tenant deleted and created again with the same id (and here the same
// database) is a new tenant: the old incarnation's job is cancelled
// unrun, and the new one's runs; a unique job of the old incarnation does
// not stand in for the new one's.
func TestRecreatedTenantStartsEmpty(t *testing.T) {
	h := newHarness(t, 1)
	tn := h.env.Tenants[0]
	c := h.client(t, h.config(t))
	unique := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
	old, err := c.Insert(h.env.Context(tn), recordArgs{}, unique)
	if err != nil {
		t.Fatal(err)
	}
	before, err := h.env.Store.Get(t.Context(), tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.env.Store.Delete(t.Context(), tn.ID); err != nil || !ok {
		t.Fatalf("delete tenant: %v, %v", ok, err)
	}
	// Created at another instant than the first, whatever the clock's
	// resolution.
	var after store.Tenant
	for after.CreatedAt.IsZero() || after.CreatedAt.Equal(before.CreatedAt) {
		if after.ID != "" {
			if _, err := h.env.Store.Delete(t.Context(), tn.ID); err != nil {
				t.Fatal(err)
			}
		}
		if after, err = h.env.Store.Create(t.Context(), store.Tenant{ID: tn.ID, DeployInfo: map[string]string{store.KeyPostgresURL: tn.URL}}); err != nil {
			t.Fatal(err)
		}
	}
	renewed, err := c.Insert(h.env.Context(tn), recordArgs{}, unique)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.UniqueSkippedAsDuplicate {
		t.Fatalf("the new tenant's unique job was skipped as a duplicate of job %d, its predecessor's", renewed.Job.ID)
	}
	start(t, c)

	s := h.waitOutcome(t, old.Job.ID)
	if s.State != rivertype.JobStateCancelled || len(s.Errors) != 1 ||
		!strings.Contains(s.Errors[0], driver.ErrUnknownTenant.Error()) || !strings.Contains(s.Errors[0], "deleted and re-created") {
		t.Errorf("old incarnation's job: %s with errors %q, want cancelled after one attempt, the tenant re-created", s.State, s.Errors)
	}
	h.waitState(t, renewed.Job.ID, rivertype.JobStateCompleted)
	got := h.ran(t, tn)
	if len(got) != 1 || got[0].JobID != renewed.Job.ID {
		t.Errorf("tenant's database: %+v, want the new incarnation's job %d only", got, renewed.Job.ID)
	}
}

// Every insert method of the client carries the tenant and its
// incarnation into the job, as the control database stores it.
func TestInsertMethods(t *testing.T) {
	h := newHarness(t, 1)
	tn := h.env.Tenants[0]
	tenant, err := h.env.Store.Get(t.Context(), tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	c := h.client(t, h.config(t))
	many := []river.InsertManyParams{{Args: recordArgs{}}, {Args: recordArgs{FailFirst: true}}}
	inTx := func(ctx context.Context, f func(pgx.Tx) error) error {
		return pgx.BeginFunc(ctx, h.control, f)
	}
	tests := []struct {
		name   string
		jobs   int
		insert func(ctx context.Context) error
	}{
		{"Insert", 1, func(ctx context.Context) error {
			_, err := c.Insert(ctx, recordArgs{}, nil)
			return err
		}},
		{"InsertTx", 1, func(ctx context.Context) error {
			return inTx(ctx, func(tx pgx.Tx) error { _, err := c.InsertTx(ctx, tx, recordArgs{}, nil); return err })
		}},
		{"InsertMany", 2, func(ctx context.Context) error {
			_, err := c.InsertMany(ctx, many)
			return err
		}},
		{"InsertManyTx", 2, func(ctx context.Context) error {
			return inTx(ctx, func(tx pgx.Tx) error { _, err := c.InsertManyTx(ctx, tx, many); return err })
		}},
		{"InsertManyFast", 2, func(ctx context.Context) error {
			_, err := c.InsertManyFast(ctx, many)
			return err
		}},
		{"InsertManyFastTx", 2, func(ctx context.Context) error {
			return inTx(ctx, func(tx pgx.Tx) error { _, err := c.InsertManyFastTx(ctx, tx, many); return err })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := h.control.Exec(t.Context(), "DELETE FROM river_job"); err != nil {
				t.Fatal(err)
			}
			if err := tt.insert(h.env.Context(tn)); err != nil {
				t.Fatal(err)
			}
			rows, err := h.control.Query(t.Context(), "SELECT metadata ->> $1, metadata ->> $2 FROM river_job",
				tenantriver.MetadataKey, tenantriver.MetadataKeyCreatedAt)
			if err != nil {
				t.Fatal(err)
			}
			type meta struct{ Tenant, CreatedAt *string }
			got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[meta])
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.jobs {
				t.Fatalf("river_job holds %d jobs, want %d", len(got), tt.jobs)
			}
			for _, m := range got {
				if m.Tenant == nil || *m.Tenant != tn.ID || m.CreatedAt == nil {
					t.Errorf("job names tenant %v created at %v, want %s and its CreatedAt", m.Tenant, m.CreatedAt, tn.ID)
					continue
				}
				if at, err := time.Parse(time.RFC3339Nano, *m.CreatedAt); err != nil || !at.Equal(tenant.CreatedAt) {
					t.Errorf("job names the tenant created at %s (%v), want %s", *m.CreatedAt, err, tenant.CreatedAt)
				}
			}
		})
	}

	t.Run("unknown tenant", func(t *testing.T) {
		_, err := c.Insert(tenantctx.WithTenant(t.Context(), "nobody.tenanttest"), recordArgs{}, nil)
		if !errors.Is(err, driver.ErrUnknownTenant) || !strings.Contains(err.Error(), "nobody.tenanttest") {
			t.Errorf("insert for a tenant the store does not have: %v, want driver.ErrUnknownTenant naming it", err)
		}
	})
}

// The tenant is mixed into a unique job's key once, however many
// middlewares the insert goes through, and through Periodic's fan-out:
// a job inserted through two Middleware values, one through one, and one
// made by a fan-out are the same unique job.
func TestUniqueKeyMixedOnce(t *testing.T) {
	h := newHarness(t, 2)
	a := h.env.Tenants[0]
	unique := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}

	twice := h.config(t)
	twice.Middleware = append(twice.Middleware, tenantriver.NewMiddleware(h.env.Store))
	chained := h.client(t, twice)
	periodic := tenantriver.NewPeriodic(h.env.Store)
	periodic.Job("unique-record", river.PeriodicInterval(time.Hour), func(string) (river.JobArgs, *river.InsertOpts) {
		return recordArgs{}, unique
	}, nil)
	single := h.client(t, h.config(t, func(w *river.Workers) { river.AddWorker(w, periodic) }))

	first, err := chained.Insert(h.env.Context(a), recordArgs{}, unique)
	if err != nil {
		t.Fatal(err)
	}
	second, err := single.Insert(h.env.Context(a), recordArgs{}, unique)
	if err != nil {
		t.Fatal(err)
	}
	if !second.UniqueSkippedAsDuplicate || second.Job.ID != first.Job.ID {
		t.Errorf("insert through one middleware: job %d, skipped %v; want job %d, inserted through two, to stand in",
			second.Job.ID, second.UniqueSkippedAsDuplicate, first.Job.ID)
	}

	// The fan-out inserts every tenant's unique job: tenant a's is the
	// one above; only the other tenant's is new.
	fanout, err := single.Insert(t.Context(), tenantriver.FanoutArgs{Name: "unique-record"}, &river.InsertOpts{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	start(t, single)
	h.waitState(t, fanout.Job.ID, rivertype.JobStateCompleted)
	rows, err := h.control.Query(t.Context(), "SELECT metadata ->> $1 FROM river_job WHERE kind = $2 ORDER BY 1",
		tenantriver.MetadataKey, recordArgs{}.Kind())
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{a.ID, h.env.Tenants[1].ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("record jobs of tenants %v, want one of each: %v", got, want)
	}
}

// deleteSelfArgs is a job that deletes its own tenant from the store,
// then queries once the *sql.DB has heard of it.
type deleteSelfArgs struct{}

func (deleteSelfArgs) Kind() string { return "tenantriver_test_delete_self" }

type deleteSelfWorker struct {
	river.WorkerDefaults[deleteSelfArgs]
	h *harness
}

func (w *deleteSelfWorker) Work(ctx context.Context, job *river.Job[deleteSelfArgs]) error {
	id, _ := tenantctx.TenantFrom(ctx)
	if _, err := w.h.env.Store.Delete(ctx, id); err != nil {
		return err
	}
	for {
		_, err := w.h.env.DB.ExecContext(ctx, "SELECT 1")
		if err != nil {
			return fmt.Errorf("job %d: %w", job.ID, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// A tenant deleted while its job runs: the attempt whose query fails is
// retried (the store had the tenant when it started), and the next,
// which finds the tenant gone, is cancelled unrun.
func TestDeletedWhileRunning(t *testing.T) {
	h := newHarness(t, 1)
	tn := h.env.Tenants[0]
	c := h.client(t, h.cancelAtOnce(h.config(t, func(w *river.Workers) { river.AddWorker(w, &deleteSelfWorker{h: h}) })))
	res, err := c.Insert(h.env.Context(tn), deleteSelfArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start(t, c)
	s := h.waitState(t, res.Job.ID, rivertype.JobStateCancelled)
	if s.Attempt != 2 || len(s.Errors) != 2 || !strings.Contains(s.Errors[0], "no longer") || !strings.Contains(s.Errors[1], "no longer has") {
		t.Errorf("job cancelled at attempt %d with errors %q, want the first attempt failed and the second cancelled, the tenant deleted", s.Attempt, s.Errors)
	}
}
