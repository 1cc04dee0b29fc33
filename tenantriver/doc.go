// Package tenantriver carries the tenant of a tenantsql application into
// its River background jobs (github.com/riverqueue/river, on PostgreSQL
// through riverpgxv5).
//
// River deliberately does not carry the inserting context to the worker,
// so a job inserted while handling tenant A's request would run with no
// tenant, and every query in it would fail with driver.ErrNoTenant.
// Middleware, installed on the River client, writes the tenant of the
// insert context into the job's metadata (MetadataKey), with the tenant's
// incarnation (MetadataKeyCreatedAt), and puts it back in the context
// Work gets. It asks the tenant store, the one the tenantsql *sql.DB
// reads, which tenants exist:
//
//	client, err := river.NewClient(riverpgxv5.New(controlPool), &river.Config{
//		Workers:    workers,
//		Queues:     map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
//		Middleware: []rivertype.Middleware{tenantriver.NewMiddleware(tenants)},
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
//   - A job is inserted only for a tenant the store has (else the insert
//     fails with driver.ErrUnknownTenant), and carries the tenant's
//     CreatedAt: a tenant deleted and created again with the same id is
//     a new tenant.
//   - Before a job runs, the store is asked for its tenant, once. A job
//     whose tenant was deleted and re-created since the job was inserted,
//     or deleted (the store does not have it, and the job is older than
//     WithStoreLag), is cancelled (river.JobCancel) without running, with
//     an error matching driver.ErrUnknownTenant: no retry can bring its
//     tenant back. Its row stays in river_job, state cancelled, with the
//     error. The store of the working process may lag the inserting
//     one's: a job younger than WithStoreLag whose tenant the store does
//     not have, or has only as an older incarnation, waits for it
//     (river.JobSnooze, using up no attempt), and so does a job whose
//     store cannot be asked, however long that lasts.
//   - A job whose queries fail with driver.ErrUnknownTenant while the
//     store has its tenant is retried: the store's changes reach
//     processes a moment apart, and this one has not heard of the tenant
//     yet.
//   - Retries keep the tenant: it is in the job's row.
//   - A unique job (river.UniqueOpts) is unique within its tenant's
//     incarnation.
//
// The middleware matches the errors a Work returns with errors.Is, so wrap
// them with %w. A tenant deleted while its job runs makes the job's next
// query fail; the attempt fails (the store had the tenant when it
// started), and the next attempt, which finds the tenant gone, is
// cancelled (once the job is older than WithStoreLag; snoozed till then). Work ran up to that query, so do a job's queries before its
// side effects outside the database. The lookup before each job costs a read of the store (a
// memory read for the file store, a round trip for Redis); it is what
// tells a new tenant that shares a deleted one's id from the deleted one,
// which the *sql.DB, that routes by id, cannot.
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
//			func(tenantID string) (river.JobArgs, *river.InsertOpts) { return ReportArgs{}, nil },
//			&tenantriver.PeriodicJobOpts{RunOnStart: true}),
//	}
//
// River's periodic enqueuer starts its schedule afresh whenever a process
// starts or becomes the leader, and inserts RunOnStart jobs then: each
// fan-out is therefore unique within a period (PeriodicJobOpts.UniquePeriod,
// by default the shortest interval between two runs of the schedule, less
// a second), so that a restart does not give every tenant a second job for
// the same period. A schedule with runs under a second apart gets no
// unique period.
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
