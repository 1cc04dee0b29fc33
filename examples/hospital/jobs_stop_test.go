package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// blockArgs is a job that runs until its context is cancelled.
type blockArgs struct{}

func (blockArgs) Kind() string { return "hospital_test_block" }

// A job still running when stop's graceful wait (the client's
// SoftStopTimeout) ends is cancelled, and stop
// returns only after it did: the job's last write, made once its context
// was cancelled, is in the control database, written before stop closed
// the pool.
func TestJobsStopCancelsRunningJob(t *testing.T) {
	testenv.PostgresURL(t)
	name := testenv.Unique("tsql_hosp_stop")
	testenv.RecreateDatabase(t, name)
	t.Cleanup(func() { testenv.DropDatabase(t, name) })
	url := testenv.DatabaseURL(t, name)
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrator.Migrate(t.Context(), rivermigrate.DirectionUp, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(t.Context(), "CREATE TABLE stopped (job_id bigint NOT NULL, cancelled bool NOT NULL)"); err != nil {
		t.Fatal(err)
	}

	started := make(chan struct{})
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[blockArgs]) error {
		close(started)
		<-ctx.Done()
		_, err := pool.Exec(context.WithoutCancel(ctx), "INSERT INTO stopped (job_id, cancelled) VALUES ($1, $2)", job.ID, ctx.Err() != nil)
		return err
	}))
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	cfg := riverConfig(workers, log)
	// The job never finishes by itself: the graceful wait always ends,
	// and sooner than the example's.
	cfg.SoftStopTimeout = 100 * time.Millisecond
	cfg.TestOnly = true
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(context.WithoutCancel(t.Context())); err != nil {
		t.Fatal(err)
	}
	res, err := client.Insert(t.Context(), blockArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(time.Minute):
		t.Fatal("the job did not start")
	}

	j := &jobs{pool: pool, client: client}
	j.stopWithin(log, time.Minute)

	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var (
		jobID     int64
		cancelled bool
	)
	if err := conn.QueryRow(t.Context(), "SELECT job_id, cancelled FROM stopped").Scan(&jobID, &cancelled); err != nil {
		t.Fatalf("the running job wrote nothing before stop returned: %v", err)
	}
	if jobID != res.Job.ID || !cancelled {
		t.Errorf("stopped: job %d, cancelled %v; want job %d, cancelled", jobID, cancelled, res.Job.ID)
	}
}
