package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tenantsql/tenantsql/api"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// app is the tutorial's service: a tenantsql *sql.DB over a tenant store,
// the admin API and the hospital routes.
type app struct {
	cfg   config
	log   *slog.Logger
	store store.Store
	conn  *driver.Connector
	db    *sql.DB
	admin http.Handler
	obs   *observability
	// stopMetrics stops reporting the connector's pools and tenants.
	stopMetrics func() error
	jobs        *jobs // nil without --jobs-database
}

func newApp(ctx context.Context, cfg config, log *slog.Logger) (*app, error) {
	s, err := store.Open(ctx, cfg.store)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, store: s}
	ok := false
	defer func() {
		if !ok {
			a.close()
		}
	}()

	// The tutorial's hooks: a new tenant's database is created if needed,
	// then, for a tenant in a schema of a shared database (its URL has a
	// search_path), its schema; both in the ON phase, so that they exist
	// before the PostCreate hook migrates the tenant, below. (A program
	// can use the default registry, hooks.Subscribe; an explicit one keeps
	// two apps in one process, as in the tests, apart.)
	reg := hooks.New(log)
	var dbOpts []hooks.DatabaseOption
	if cfg.dropDatabases {
		dbOpts = append(dbOpts, hooks.DropDatabaseOnDelete(s))
	}
	createDatabase, dropDatabase := hooks.Databases(dbOpts...)
	if !cfg.createDatabases {
		createDatabase = nil
	}
	if createDatabase != nil {
		reg.Subscribe(hooks.OnCreate, createDatabase)
		reg.Subscribe(hooks.OnUpdate, createDatabase)
	}
	var schemaOpts []hooks.SchemaOption
	if cfg.dropSchemas {
		schemaOpts = append(schemaOpts, hooks.DropSchemaOnDelete(s))
	}
	createSchema, dropSchema := hooks.Schemas(schemaOpts...)
	reg.Subscribe(hooks.OnCreate, createSchema)
	reg.Subscribe(hooks.OnUpdate, createSchema)
	if dropSchema != nil {
		reg.Subscribe(hooks.PostDelete, dropSchema)
	}
	// After the schema, the database, unless another tenant still uses it.
	if dropDatabase != nil {
		reg.Subscribe(hooks.PostDelete, dropDatabase)
	}
	// Metrics: every statement's duration and every wait and dial come
	// through the connector's options; the pools and tenants are read
	// from its Stats at each scrape or export (Register).
	if a.obs, err = newObservability(ctx, os.Getenv, log); err != nil {
		return nil, err
	}
	a.conn, err = driver.NewConnector(s, driver.WithHooks(reg), driver.WithLogger(log),
		driver.WithMaxConns(cfg.maxConns),
		driver.WithQueryTracer(a.obs.metrics.QueryTracer), driver.WithPoolEvents(a.obs.metrics.PoolEvent))
	if err != nil {
		return nil, err
	}
	if a.stopMetrics, err = a.obs.metrics.Register(a.conn); err != nil {
		return nil, err
	}
	a.db = sql.OpenDB(a.conn)
	a.db.SetMaxOpenConns(32)
	a.db.SetMaxIdleConns(32)
	// A ping without a tenant returns once the tenants are loaded from the
	// store (or says why they cannot be), so nothing is served before.
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = a.db.PingContext(pctx)
	cancel()
	if err != nil {
		return nil, err
	}
	migrateHook, err := hooks.Migrate(a.db, migrations())
	if err != nil {
		return nil, err
	}
	reg.Subscribe(hooks.PostCreate, migrateHook)
	// A tenant moved to another database or schema gets it created (by
	// the ON hooks above) and migrated there too; its queries wait for
	// this hook, as for a create's.
	reg.SubscribeNamed(hooks.PostUpdate, "hospital: migrate a moved tenant", func(ctx context.Context, ev hooks.Event) error {
		if ev.Old.PostgresURL() == ev.Tenant.PostgresURL() {
			return nil
		}
		return migrateHook(ctx, ev)
	})

	if err := a.migrateKnownTenants(ctx, createDatabase, createSchema); err != nil {
		return nil, err
	}

	if cfg.jobsDatabase != "" {
		if a.jobs, err = startJobs(ctx, cfg.jobsDatabase, a.store, a.db, log); err != nil {
			return nil, err
		}
	}

	var opts []api.Option
	if cfg.noAuth {
		// run says so, with the address, once it listens.
		opts = append(opts, api.WithoutAuth())
	} else {
		opts = append(opts, api.WithToken(cfg.token))
	}
	opts = append(opts,
		api.WithHealth(a.db),
		api.WithStats(func(context.Context) any { return a.conn.Stats() }),
		api.WithUI(),
		api.WithLogger(log),
	)
	if len(cfg.allowedHosts) > 0 {
		opts = append(opts, api.WithAllowedHosts(cfg.allowedHosts...))
	}
	if a.admin, err = api.New(s, opts...); err != nil {
		return nil, err
	}
	ok = true
	return a, nil
}

// migrateKnownTenants brings every tenant known at start-up up to date,
// creating its database and its schema first (createDatabase, nil
// without --create-databases, and createSchema: the library's create
// hooks), as the create hooks would; tenants added later are migrated by
// the create hook. A tenant that fails is logged and the others are
// served.
func (a *app) migrateKnownTenants(ctx context.Context, createDatabase, createSchema hooks.Func) error {
	ts, err := a.store.List(ctx)
	if err != nil {
		return err
	}
	for _, t := range ts {
		ev := hooks.Event{Kind: hooks.OnCreate, Tenant: t}
		if createDatabase != nil {
			if err := createDatabase(ctx, ev); err != nil {
				a.log.Error("hospital: cannot create the tenant's database", "tenant", t.ID, "err", err)
				continue
			}
		}
		if err := createSchema(ctx, ev); err != nil {
			a.log.Error("hospital: cannot create the tenant's schema", "tenant", t.ID, "err", err)
		}
	}
	m, err := migrate.New(a.db, a.store, migrations(), migrate.WithConcurrency(4), migrate.WithContinueOnError(true))
	if err != nil {
		return err
	}
	rep, err := m.Run(ctx, migrate.Up, 0)
	if rep == nil {
		return err
	}
	changed, unchanged, failed, _ := rep.Counts()
	a.log.Info("hospital: migrated the tenants known at start-up", "changed", changed, "up_to_date", unchanged, "failed", failed)
	for _, r := range rep.Failed() {
		a.log.Error("hospital: tenant not migrated; its queries will fail until it is fixed", "tenant", r.Tenant, "err", r.Err)
	}
	return nil
}

func (a *app) close() {
	if a.jobs != nil {
		a.jobs.stop(a.log) // its workers use a.db
	}
	if a.stopMetrics != nil {
		a.stopMetrics()
	}
	if a.db != nil {
		a.db.Close()
	}
	a.store.Close()
	if a.obs != nil {
		// The last OTLP export, with the final counts; bounded, since
		// a collector that does not answer must not hold the exit.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.obs.shutdown(ctx); err != nil {
			a.log.Warn("hospital: metrics exporter shutdown", "err", err)
		}
	}
}

func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/", http.StripPrefix("/api", a.admin))
	mux.HandleFunc("GET /hospital/{$}", a.listHospitals)
	mux.HandleFunc("POST /hospital/{$}", a.addHospital)
	// /metrics is on the application's side, without the admin token:
	// it shows servers (host:port), counts and durations, no tenant and
	// no secret, and a scraper should not hold a token that can change
	// tenants.
	mux.Handle("GET /metrics", a.obs.handler)
	return tenantctx.Middleware(mux,
		tenantctx.SkipPrefix("/api/", "/metrics"),
		tenantctx.WithLookup(a.conn.LookupTenant),
	)
}

type hospital struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	City      string    `json:"city"`
	CreatedAt time.Time `json:"created_at"`
}

func (a *app) listHospitals(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.requestTimeout)
	defer cancel()
	id, _ := tenantctx.TenantFrom(ctx)
	rows, err := a.db.QueryContext(ctx, "SELECT id, name, city, created_at FROM hospital ORDER BY id")
	if err != nil {
		a.dbError(w, id, err)
		return
	}
	defer rows.Close()
	data := []hospital{}
	for rows.Next() {
		var h hospital
		if err := rows.Scan(&h.ID, &h.Name, &h.City, &h.CreatedAt); err != nil {
			a.dbError(w, id, err)
			return
		}
		data = append(data, h)
	}
	if err := rows.Err(); err != nil {
		a.dbError(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "tenant_id": id})
}

func (a *app) addHospital(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.requestTimeout)
	defer cancel()
	id, _ := tenantctx.TenantFrom(ctx)
	var in struct {
		Name string `json:"name"`
		City string `json:"city"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	in.Name, in.City = strings.TrimSpace(in.Name), strings.TrimSpace(in.City)
	if in.Name == "" || len(in.Name) > 200 || len(in.City) > 200 {
		writeError(w, http.StatusBadRequest, `"name" must be 1 to 200 characters, "city" at most 200`)
		return
	}
	h := hospital{Name: in.Name, City: in.City}
	err := a.db.QueryRowContext(ctx, "INSERT INTO hospital (name, city) VALUES ($1, $2) RETURNING id, created_at", in.Name, in.City).Scan(&h.ID, &h.CreatedAt)
	if err != nil {
		a.dbError(w, id, err)
		return
	}
	if a.jobs != nil {
		// ctx carries the tenant: the job will run on its database. The
		// job is inserted into River's database after the hospital's
		// transaction: if this fails, the hospital stays, without its
		// event (see package tenantriver on where River's tables live).
		if _, err := a.jobs.client.Insert(ctx, hospitalAddedArgs{HospitalID: h.ID}, nil); err != nil {
			a.log.Error("hospital: cannot enqueue the hospital_added job", "tenant", id, "hospital", h.ID, "err", err)
		}
	}
	writeJSON(w, http.StatusCreated, map[string]any{"data": h, "tenant_id": id})
}

// dbError answers for a failed query without exposing its details, which
// may name the database, and logs it.
func (a *app) dbError(w http.ResponseWriter, tenant string, err error) {
	switch {
	case errors.Is(err, driver.ErrUnknownTenant):
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown tenant %q", tenant))
		return
	case errors.Is(err, driver.ErrTenantNotReady):
		writeError(w, http.StatusServiceUnavailable, "the tenant is not ready: its setup failed or is still running")
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "the tenant's database did not answer in time")
	default:
		writeError(w, http.StatusInternalServerError, "the query failed")
	}
	a.log.Error("hospital: query failed", "tenant", tenant, "err", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
