package tenantriver_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
	"github.com/tenantsql/tenantsql/tenantriver"
)

// NotifyArgs is a tenant's job: notify about a new patient.
type NotifyArgs struct {
	PatientID int64 `json:"patient_id"`
}

func (NotifyArgs) Kind() string { return "notify" }

// NotifyWorker writes the notification into the tenant's database.
type NotifyWorker struct {
	river.WorkerDefaults[NotifyArgs]
	db *sql.DB // the tenantsql *sql.DB
}

func (w *NotifyWorker) Work(ctx context.Context, job *river.Job[NotifyArgs]) error {
	// ctx carries the job's tenant: this runs on its database.
	_, err := w.db.ExecContext(ctx, "INSERT INTO notification (patient_id) VALUES ($1)", job.Args.PatientID)
	return err
}

// The whole set-up: tenants in a file, River's tables in one control
// database, a job inserted for tenant-1 and worked on tenant-1's database.
// It needs the servers, so it is compiled, not run.
func Example() {
	ctx := context.Background()
	tenants, err := store.Open(ctx, "file:tenant_config.json")
	if err != nil {
		panic(err)
	}
	connector, err := driver.NewConnector(tenants)
	if err != nil {
		panic(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()

	control, err := pgxpool.New(ctx, os.Getenv("RIVER_DATABASE_URL")) // River's own database
	if err != nil {
		panic(err)
	}
	defer control.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(control), nil)
	if err != nil {
		panic(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		panic(err)
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &NotifyWorker{db: db})
	periodic := tenantriver.NewPeriodic(tenants)
	river.AddWorker(workers, periodic)
	client, err := river.NewClient(riverpgxv5.New(control), &river.Config{
		Queues:     map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers:    workers,
		Middleware: []rivertype.Middleware{tenantriver.NewMiddleware(tenants)},
		PeriodicJobs: []*river.PeriodicJob{
			// Every hour, one NotifyArgs job per tenant.
			periodic.Job("hourly-notify", river.PeriodicInterval(time.Hour),
				func(tenantID string) (river.JobArgs, *river.InsertOpts) { return NotifyArgs{}, nil }, nil),
		},
	})
	if err != nil {
		panic(err)
	}
	if err := client.Start(ctx); err != nil {
		panic(err)
	}
	defer client.Stop(ctx)

	_, err = client.Insert(tenantctx.WithTenant(ctx, "tenant-1.test.com"), NotifyArgs{PatientID: 7}, nil)
	fmt.Println(err)
}

// What the middleware writes into a job's metadata, and reads back.
func ExampleJobTenant() {
	tenants := store.NewMemory()
	tenants.Create(context.Background(), store.Tenant{ID: "tenant-2.test.com",
		DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://db2.example.com/tenant2"}})
	m := tenantriver.NewMiddleware(tenants)
	params := []*rivertype.JobInsertParams{{Kind: NotifyArgs{}.Kind(), Metadata: []byte(`{"source": "api"}`)}}
	ctx := tenantctx.WithTenant(context.Background(), "tenant-2.test.com")
	// River calls InsertMany around every insert; here without a database.
	m.InsertMany(ctx, params, func(context.Context) ([]*rivertype.JobInsertResult, error) { return nil, nil })
	var meta map[string]any
	json.Unmarshal(params[0].Metadata, &meta)
	fmt.Println(slices.Sorted(maps.Keys(meta)))

	id, err := tenantriver.JobTenant(&rivertype.JobRow{Metadata: params[0].Metadata})
	fmt.Println(id, err)
	// Output:
	// [source tenantsql_tenant tenantsql_tenant_created_at]
	// tenant-2.test.com <nil>
}
