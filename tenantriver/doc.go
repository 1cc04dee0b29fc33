// Package tenantriver carries the tenant of a tenantsql application into
// its River background jobs (github.com/riverqueue/river, on PostgreSQL
// through riverpgxv5).
//
// River deliberately does not carry the inserting context to the worker,
// so a job inserted while handling tenant A's request would run with no
// tenant, and every query in it would fail with driver.ErrNoTenant.
// Middleware, installed on the River client, writes the tenant of the
// insert context into the job's metadata (MetadataKey) and puts it back in
// the context Work gets:
//
//	client, err := river.NewClient(riverpgxv5.New(controlPool), &river.Config{
//		Workers:    workers,
//		Queues:     map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
//		Middleware: []rivertype.Middleware{tenantriver.NewMiddleware()},
//	})
//	...
//	client.Insert(tenantctx.WithTenant(ctx, "tenant-2.test.com"), NotifyArgs{PatientID: 7}, nil)
//
//	func (w *NotifyWorker) Work(ctx context.Context, job *river.Job[NotifyArgs]) error {
//		// ctx carries tenant-2.test.com: this runs on tenant-2's database.
//		_, err := w.db.ExecContext(ctx, "INSERT INTO notification (patient_id) VALUES ($1)", job.Args.PatientID)
//		return err
//	}
//
// The rules, each failing closed:
//
//   - A job of a tenant's kind must be inserted with a tenant in the
//     context: without one the insert fails (errors.Is
//     driver.ErrNoTenant). A job that reaches the queue without one all
//     the same (inserted by a client without the middleware) is cancelled
//     without running.
//   - Kinds that belong to no tenant (maintenance across tenants, the
//     fan-out of Periodic) are declared with WithoutTenant; they run with
//     no tenant in the context, even if inserted from one that had a
//     tenant.
//   - A job whose tenant was deleted fails at its first query with
//     driver.ErrUnknownTenant and is cancelled (river.JobCancel), not
//     retried: no retry can bring the tenant back. Its row stays in
//     river_job, state cancelled, with the error.
//   - Retries keep the tenant: it is in the job's row.
//   - A unique job (river.UniqueOpts) is unique within its tenant.
//
// The middleware matches the errors a Work returns with errors.Is, so wrap
// them with %w. It cancels a deleted tenant's job after Work failed, not
// before Work started: checking the store first would cost a lookup per
// job and still race a delete during Work, and the driver, which refuses
// the query, is the authority on which tenants exist in this process. Do
// a job's queries before its side effects outside the database.
//
// # Periodic jobs per tenant
//
// Periodic declares a periodic job once and runs it once per tenant per
// period, as the tenant store lists the tenants then (the original
// library copied its Celery beat schedules per tenant the same way):
//
//	periodic := tenantriver.NewPeriodic(tenants) // the store the *sql.DB reads
//	river.AddWorker(workers, periodic)
//	config.PeriodicJobs = []*river.PeriodicJob{
//		periodic.Job("nightly-report", river.PeriodicInterval(24*time.Hour),
//			func(tenantID string) (river.JobArgs, *river.InsertOpts) { return ReportArgs{}, nil }, nil),
//	}
//
// # Where River's tables live
//
// The tested layout, and the one this package is written for, is one
// control database holding River's tables (river_job, river_leader, ...;
// migrate it with rivermigrate or the river CLI), apart from the tenants'
// databases, with one River client per process on a pgxpool of it. Jobs
// name their tenant in their metadata; their queries go through the
// tenantsql *sql.DB to the tenant's database.
//
//   - One control database: one place to operate and watch (River UI, one
//     set of queues, one leader), a fixed number of connections and pollers
//     whatever the number of tenants, and tenants can be added and deleted
//     without touching River. The price: inserting a job is not in the same
//     transaction as the tenant's data, since they are different
//     databases. A job inserted after the tenant's transaction committed
//     can be lost if the process dies in between; one inserted before can
//     run for data that was rolled back. Make jobs idempotent and able to
//     find their data missing, or record an outbox row in the tenant's
//     transaction and insert the job from it.
//   - River's tables in each tenant's database: a job can be inserted with
//     InsertTx in the tenant's own transaction (all or nothing), and a
//     tenant's jobs go with its database. The price: a River client per
//     tenant in every process, each with its pollers, leader election,
//     maintenance and LISTEN connection, so connections and load grow with
//     the number of tenants, and clients must be started and stopped as
//     tenants come and go. This package's middleware works there too
//     (every job of such a client has the same tenant), but Periodic does
//     not apply and nothing here manages those clients.
//
// Choose one control database unless most jobs must be transactional with
// the tenant's data and the tenants are few.
//
// River and its drivers are imported by this package only: a program that
// imports the driver alone does not compile them.
package tenantriver
