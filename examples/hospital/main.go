// Command hospital is the tenantsql tutorial application: a small HTTP
// service whose every tenant (a hospital chain, say) has its own
// PostgreSQL database, with tenants added, changed and removed at run time
// through the admin API.
//
//	TENANTSQL_ADMIN_TOKEN=dev-token go run ./examples/hospital --store file:tenant_config.json
//
// Routes:
//
//	GET  /hospital/        {"data": [...], "tenant_id": "..."}  the tenant's hospitals
//	POST /hospital/        {"name": "...", "city": "..."}       add one
//	     /api/...          the admin API (package api), bearer token from TENANTSQL_ADMIN_TOKEN
//	GET  /api/ui/          the operator's page (api.WithUI), in a browser; it asks for the token
//	GET  /metrics          the connector's metrics (package telemetry), Prometheus text format
//
// /metrics needs no token: it names servers (host:port) and counts, no
// tenant and no password. With OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) set the same metrics are also
// pushed over OTLP (http/protobuf), every OTEL_METRIC_EXPORT_INTERVAL
// milliseconds (60000 by default); without, nothing is pushed.
//
// The tenant comes from the x-tenant-id header. Migrations are embedded;
// they run for every known tenant at start-up and, through a create hook,
// for every tenant added later, before its first query. With
// --create-databases (the default) a tenant's database is created if it
// does not exist yet (hooks.Databases); a deleted tenant's database is
// kept, with its rows, unless --drop-databases. --store redis://... runs
// several instances that share their tenants.
//
// A tenant whose POSTGRES_URL has a search_path lives in a schema of a
// database it shares with other tenants (tenant_config_schemas.json has
// two): the schema is created before the migrations run in it. A deleted
// tenant's schema is kept, with its rows, unless --drop-schemas.
//
// With --jobs-database URL, adding a hospital also enqueues a River job
// (package tenantriver) that records a hospital_added row in the tenant's
// hospital_event table; River's own tables live in that one database,
// created if it does not exist.
//
// --insecure-no-auth serves the admin API without a token, for local
// development; without --addr it then listens on 127.0.0.1:8000 only, so
// that other machines cannot reach an API that lets anyone change tenants.
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tenantsql/tenantsql/driver"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// defaultConfig is the tutorial's tenant file, written to the working
// directory when the default store file does not exist, so that
// "go run ./examples/hospital" works from anywhere.
//
//go:embed tenant_config.json
var defaultConfig []byte

const defaultStore = "file:tenant_config.json"

// defaultPort is the port to listen on without --addr. It is a variable so
// that a build can change it (go build -ldflags "-X main.defaultPort=8080"),
// as the tests do when 8000 is taken.
var defaultPort = "8000"

// Where to listen without --addr: every interface with a token, only the
// loopback interface without one.
func defaultAddr() string       { return ":" + defaultPort }
func defaultNoAuthAddr() string { return "127.0.0.1:" + defaultPort }

func migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

type config struct {
	store           string
	addr            string
	token           string
	noAuth          bool
	createDatabases bool
	dropSchemas     bool
	dropDatabases   bool
	allowedHosts    []string
	maxConns        int
	requestTimeout  time.Duration
	jobsDatabase    string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.store, "store", defaultStore, "tenant store URL (file:PATH, redis://HOST:PORT/DB?prefix=NAME)")
	flag.StringVar(&cfg.addr, "addr", "", "address to listen on (default "+defaultAddr()+", or "+defaultNoAuthAddr()+" with --insecure-no-auth)")
	flag.BoolVar(&cfg.noAuth, "insecure-no-auth", false, "serve the admin API without a token, for local development only; listens on "+defaultNoAuthAddr()+" unless --addr is given")
	flag.BoolVar(&cfg.createDatabases, "create-databases", true, "create a tenant's database when it does not exist")
	flag.BoolVar(&cfg.dropDatabases, "drop-databases", false, "drop a deleted tenant's database, with its tables and rows, unless another tenant still uses it; kept by default")
	flag.BoolVar(&cfg.dropSchemas, "drop-schemas", false, "drop a deleted tenant's schema, with its tables and rows (tenants with a search_path); kept by default")
	flag.IntVar(&cfg.maxConns, "max-conns", driver.DefaultMaxConns, "sessions the example may keep open to one PostgreSQL server, over all its tenants (the server's budget)")
	flag.DurationVar(&cfg.requestTimeout, "request-timeout", 10*time.Second, "how long a /hospital/ request may wait for a session and its statement, before it is answered 504")
	flag.StringVar(&cfg.jobsDatabase, "jobs-database", "", "postgres:// URL of River's database for background jobs (created if missing); none: no background jobs")
	allowed := flag.String("allowed-hosts", "", "comma-separated hosts, IPs or CIDRs a tenant's POSTGRES_URL may point at (default: any)")
	flag.Parse()
	addrSet := false
	flag.Visit(func(f *flag.Flag) { addrSet = addrSet || f.Name == "addr" })
	cfg.addr = listenAddr(cfg.addr, addrSet, cfg.noAuth)
	if *allowed != "" {
		cfg.allowedHosts = strings.Split(*allowed, ",")
	}
	cfg.token = os.Getenv("TENANTSQL_ADMIN_TOKEN")
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(log)

	if cfg.store == defaultStore {
		if err := writeDefaultConfig("tenant_config.json", log); err != nil {
			log.Error("hospital: " + err.Error())
			os.Exit(1)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log, os.Stdout); err != nil {
		log.Error("hospital: " + err.Error())
		os.Exit(1)
	}
}

// run serves until ctx ends. It prints "listening on http://ADDR" to out
// once the listener is up (the end-to-end tests wait for that line).
func run(ctx context.Context, cfg config, log *slog.Logger, out interface{ Write([]byte) (int, error) }) error {
	if cfg.token == "" && !cfg.noAuth {
		return errors.New("set TENANTSQL_ADMIN_TOKEN to the admin API's bearer token, or pass --insecure-no-auth for local development")
	}
	if cfg.requestTimeout <= 0 {
		return fmt.Errorf("--request-timeout %s: want a positive duration, such as 10s", cfg.requestTimeout)
	}
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close()

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           a.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.noAuth {
		if a, ok := ln.Addr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
			log.Warn("hospital: the admin API accepts requests without a token (--insecure-no-auth); listening on a loopback address, so only this machine can reach it ("+defaultNoAuthAddr()+" unless --addr is given)", "addr", ln.Addr().String())
		} else {
			log.Warn("hospital: the admin API accepts requests without a token (--insecure-no-auth), and --addr makes it reachable from other machines: anyone who reaches it can change tenants", "addr", ln.Addr().String())
		}
	}
	fmt.Fprintf(out, "listening on http://%s\n", ln.Addr())
	log.Info("hospital: the operator's page, for a browser", "url", "http://"+ln.Addr().String()+"/api/ui/")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("hospital: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// listenAddr is the address to listen on: addr if --addr was given (set),
// else the default, which is the loopback interface alone when the admin
// API has no token.
func listenAddr(addr string, set, noAuth bool) string {
	switch {
	case set:
		return addr
	case noAuth:
		return defaultNoAuthAddr()
	}
	return defaultAddr()
}

// writeDefaultConfig writes the tutorial's tenant file at path unless a
// file is there already.
func writeDefaultConfig(path string, log *slog.Logger) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(defaultConfig); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	log.Info("hospital: created tenant_config.json with the tutorial's tenant-1.test.com (use --store to point elsewhere)")
	return nil
}
