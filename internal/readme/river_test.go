package readme

import (
	"context"
	"database/sql"
	"fmt"
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
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
	"github.com/tenantsql/tenantsql/tenantriver"
)

// snippet:river-worker
type NotifyArgs struct {
	PatientID int64 `json:"patient_id"`
}

func (NotifyArgs) Kind() string { return "notify" }

type NotifyWorker struct {
	river.WorkerDefaults[NotifyArgs]
	db *sql.DB // the tenantsql *sql.DB
}

func (w *NotifyWorker) Work(ctx context.Context, job *river.Job[NotifyArgs]) error {
	// ctx carries the job's tenant: this runs on its database.
	_, err := w.db.ExecContext(ctx, "INSERT INTO notification (patient_id) VALUES ($1)", job.Args.PatientID)
	return err
}

// end snippet

// ReportArgs is the README's periodic job: each tenant's report writes a
// row into its notification table, patient 0.
type ReportArgs struct{}

func (ReportArgs) Kind() string { return "report" }

type reportWorker struct {
	river.WorkerDefaults[ReportArgs]
	db *sql.DB
}

func (w *reportWorker) Work(ctx context.Context, job *river.Job[ReportArgs]) error {
	_, err := w.db.ExecContext(ctx, "INSERT INTO notification (patient_id) VALUES (0)")
	return err
}

// ### Background jobs (River): the worker, the client, an insert for
// tenant-2 and the periodic job, run on River with its tables in a control
// database of their own; each tenant's notification rows are counted in
// its own database.
func TestRiverSnippets(t *testing.T) {
	dbs := tenantFile(t, "tenant-1.test.com", "tenant-2.test.com")
	ctx := t.Context()
	tenants, err := store.Open(ctx, "file:tenant_config.json")
	if err != nil {
		t.Fatal(err)
	}
	defer tenants.Close()
	c, err := driver.NewConnector(tenants)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	for id := range dbs {
		if _, err := db.ExecContext(tenantctx.WithTenant(ctx, id), "CREATE TABLE notification (patient_id bigint NOT NULL)"); err != nil {
			t.Fatal(err)
		}
	}
	controlName := testenv.Unique("tsql_readme_river")
	testenv.RecreateDatabase(t, controlName)
	t.Cleanup(func() { testenv.DropDatabase(t, controlName) })
	controlPool, err := pgxpool.New(ctx, testenv.DatabaseURL(t, controlName))
	if err != nil {
		t.Fatal(err)
	}
	defer controlPool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(controlPool), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		t.Fatal(err)
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &NotifyWorker{db: db})
	river.AddWorker(workers, &reportWorker{db: db})
	// snippet:river-client
	config := &river.Config{
		Queues:     map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers:    workers,
		Middleware: []rivertype.Middleware{tenantriver.NewMiddleware(tenants)},
	}
	// end snippet
	// snippet:river-periodic
	periodic := tenantriver.NewPeriodic(tenants) // the store the *sql.DB reads
	river.AddWorker(workers, periodic)
	config.PeriodicJobs = []*river.PeriodicJob{
		periodic.Job("daily-report", river.PeriodicInterval(24*time.Hour),
			func(tenantID string) (river.JobArgs, *river.InsertOpts) { return ReportArgs{}, nil },
			&tenantriver.PeriodicJobOpts{RunOnStart: true}),
	}
	// end snippet
	config.TestOnly = true
	client, err := river.NewClient(riverpgxv5.New(controlPool), config)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer client.Stop(context.Background())

	// snippet:river-insert
	ctx = tenantctx.WithTenant(ctx, "tenant-2.test.com") // usually done by the HTTP middleware
	_, err = client.Insert(ctx, NotifyArgs{PatientID: 7}, nil)
	// end snippet
	if err != nil {
		t.Fatal(err)
	}

	// Asked of each tenant's database directly: tenant-2 has patient 7
	// and its report, tenant-1 its report only.
	want := map[string]string{"tenant-1.test.com": "[0]", "tenant-2.test.com": "[0 7]"}
	for id, name := range dbs {
		conn, err := pgx.Connect(t.Context(), testenv.DatabaseURL(t, name))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var got string
		testenv.Eventually(t, time.Minute, fmt.Sprintf("%s's notifications %s", id, want[id]), func() bool {
			var ids []int64
			if err := conn.QueryRow(t.Context(), "SELECT coalesce(array_agg(patient_id ORDER BY patient_id), '{}') FROM notification").Scan(&ids); err != nil {
				t.Fatal(err)
			}
			got = fmt.Sprint(ids)
			return got == want[id]
		})
	}
}
