package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantriver"
)

// hospitalAddedArgs is the job enqueued when a hospital is added: it
// records the event in the tenant's database, after the request answered.
type hospitalAddedArgs struct {
	HospitalID int64 `json:"hospital_id"`
}

func (hospitalAddedArgs) Kind() string { return "hospital_added" }

type hospitalAddedWorker struct {
	river.WorkerDefaults[hospitalAddedArgs]
	db *sql.DB // the tenantsql *sql.DB
}

func (w *hospitalAddedWorker) Work(ctx context.Context, job *river.Job[hospitalAddedArgs]) error {
	// tenantriver put the tenant of the request that added the hospital
	// in ctx: this runs on that tenant's database.
	_, err := w.db.ExecContext(ctx, "INSERT INTO hospital_event (hospital_id, kind) VALUES ($1, 'hospital_added')", job.Args.HospitalID)
	return err
}

// jobs is the example's River client, its tables in one control database
// (--jobs-database), apart from the tenants'.
type jobs struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
}

// startJobs creates the control database if it does not exist (with the
// hook that creates tenants' databases, on the control database's URL),
// brings River's tables up to date and starts a client that works the
// example's jobs with the tenants of db, whose store is st.
func startJobs(ctx context.Context, url string, st store.Store, db *sql.DB, log *slog.Logger) (*jobs, error) {
	createDatabase, _ := hooks.Databases()
	control := store.Tenant{ID: "hospital-jobs", DeployInfo: map[string]string{store.KeyPostgresURL: url}}
	if err := createDatabase(ctx, hooks.Event{Kind: hooks.OnCreate, Tenant: control}); err != nil {
		return nil, fmt.Errorf("--jobs-database: create the database: %w", err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("--jobs-database %s: %w", store.RedactURL(url), err)
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: log})
	if err != nil {
		pool.Close()
		return nil, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		pool.Close()
		return nil, fmt.Errorf("--jobs-database: migrate River's tables: %w", err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &hospitalAddedWorker{db: db})
	client, err := river.NewClient(riverpgxv5.New(pool), riverConfig(workers, log, tenantriver.NewMiddleware(st)))
	if err != nil {
		pool.Close()
		return nil, err
	}
	// Not ctx: the end of ctx (a signal) is when run shuts the server down,
	// then stop lets the jobs being worked finish.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		pool.Close()
		return nil, err
	}
	log.Info("hospital: background jobs on River", "database", store.RedactURL(url))
	return &jobs{pool: pool, client: client}, nil
}

// Bounds on stop: how long the jobs being worked may take to finish
// (River's SoftStopTimeout), and then to return once River has cancelled
// their contexts.
const (
	stopTimeout   = 10 * time.Second
	cancelTimeout = 5 * time.Second
)

// riverConfig is the example's River configuration: workers, with
// middleware, logging to log.
func riverConfig(workers *river.Workers, log *slog.Logger, middleware ...rivertype.Middleware) *river.Config {
	return &river.Config{
		Queues:     map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers:    workers,
		Middleware: middleware,
		Logger:     log,
		// Stop waits this long for the jobs being worked, then cancels
		// their contexts (and logs that it did).
		SoftStopTimeout: stopTimeout,
	}
}

// stop stops River: it waits for the jobs being worked (at most
// stopTimeout, the client's SoftStopTimeout), River then cancels those
// still running, and stop waits for them to return (at most cancelTimeout
// more), and closes the pool. Call it before closing the *sql.DB the
// workers use: a job still running then would query a closed *sql.DB.
// So stop returns within 15 s; a job that ignores its context's
// cancellation may still be running after that, and its queries fail.
func (j *jobs) stop(log *slog.Logger) {
	j.stopWithin(log, stopTimeout+cancelTimeout)
}

// stopWithin stops River, waiting at most wait in all.
func (j *jobs) stopWithin(log *slog.Logger, wait time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := j.client.Stop(ctx); err != nil {
		log.Error("hospital: River's jobs did not return, even cancelled", "err", err, "waited", wait)
	}
	j.pool.Close()
}
