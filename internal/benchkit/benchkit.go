// Package benchkit sets up the side-by-side comparisons of the benchmarks:
// plain pgx on one database, tenantsql with 1, 10 or 100 tenants, and the
// hand-rolled alternative, a map of tenant to *sql.DB. Both the go test
// benchmarks and the bench command use it, so they measure the same thing.
package benchkit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the plain pgx baselines
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// Kind is what serves the queries.
type Kind int

const (
	Plain     Kind = iota // sql.Open("pgx") on one database
	TenantSQL             // one tenantsql *sql.DB for all tenants
	Map                   // map[tenant]*sql.DB of pgx stdlib DBs
)

func (k Kind) String() string {
	return [...]string{"plain pgx", "tenantsql", "map[tenant]*sql.DB"}[k]
}

// Case is one configuration to measure.
type Case struct {
	Kind    Kind
	Tenants int
}

func (c Case) String() string {
	if c.Kind == Plain {
		return "plain pgx, 1 database"
	}
	return fmt.Sprintf("%s, %d tenants", c.Kind, c.Tenants)
}

// QueryCases are the cases of the routing benchmark, in the order they
// are reported.
var QueryCases = []Case{
	{Kind: Plain, Tenants: 1},
	{Kind: TenantSQL, Tenants: 1},
	{Kind: TenantSQL, Tenants: 10},
	{Kind: Map, Tenants: 10},
	{Kind: TenantSQL, Tenants: 100},
	{Kind: Map, Tenants: 100},
}

// Databases is how many databases the tenants are spread over; tenants on
// one database are told apart by application_name, which also gives each
// tenant its own connection string, so no two tenants can share a session
// in either tenantsql or the map.
const Databases = 10

// DatabaseNames returns the benchmark databases.
func DatabaseNames() []string {
	out := make([]string, Databases)
	for i := range out {
		out[i] = fmt.Sprintf("tsql_bench_%d", i)
	}
	return out
}

// Setup creates the benchmark databases on the server at adminURL if they
// are missing.
func Setup(ctx context.Context, adminURL string) error {
	return EnsureDatabases(ctx, adminURL, DatabaseNames())
}

// EnsureDatabases creates the named databases on the server at adminURL if
// they are missing.
func EnsureDatabases(ctx context.Context, adminURL string, names []string) error {
	db, err := sql.Open("pgx", adminURL)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, name := range names {
		var exists bool
		if err := db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil && !strings.Contains(err.Error(), "already exists") {
				return fmt.Errorf("create database %s: %w", name, err)
			}
		}
	}
	return nil
}

// DatabaseURL is adminURL pointed at database db, with application_name
// app unless app is empty.
func DatabaseURL(adminURL, db, app string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + db
	if app != "" {
		q := u.Query()
		q.Set("application_name", app)
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// TenantURLs returns the URLs of n benchmark tenants: tenant i is on
// database i mod Databases, as application_name bench-i.
func TenantURLs(adminURL string, n int) ([]string, error) {
	dbs := DatabaseNames()
	urls := make([]string, n)
	for i := range urls {
		u, err := DatabaseURL(adminURL, dbs[i%len(dbs)], fmt.Sprintf("bench-%d", i))
		if err != nil {
			return nil, err
		}
		urls[i] = u
	}
	return urls, nil
}

// Target serves queries for one Case.
type Target struct {
	Case    Case
	dbs     []*sql.DB         // Plain, TenantSQL: one; Map: one per tenant
	ctxs    []context.Context // per tenant
	Conn    *driver.Connector // TenantSQL only
	workers int
}

// Open opens the target. workers is the number of goroutines that will
// query it; every *sql.DB allows that many connections open and idle (the
// same settings for tenantsql and the baselines). maxConns is tenantsql's
// physical connection cap.
func Open(ctx context.Context, adminURL string, c Case, workers, maxConns int) (*Target, error) {
	t := &Target{Case: c, workers: workers}
	urls, err := TenantURLs(adminURL, max(c.Tenants, 1))
	if err != nil {
		return nil, err
	}
	for i := range urls {
		t.ctxs = append(t.ctxs, tenantctx.WithTenant(ctx, fmt.Sprintf("bench-%d.test", i)))
	}
	tune := func(db *sql.DB) *sql.DB {
		db.SetMaxOpenConns(workers)
		db.SetMaxIdleConns(workers)
		return db
	}
	switch c.Kind {
	case Plain:
		db, err := sql.Open("pgx", urls[0])
		if err != nil {
			return nil, err
		}
		t.dbs = []*sql.DB{tune(db)}
	case Map:
		for _, u := range urls {
			db, err := sql.Open("pgx", u)
			if err != nil {
				t.Close()
				return nil, err
			}
			t.dbs = append(t.dbs, tune(db))
		}
	case TenantSQL:
		s := store.NewMemory()
		for i, u := range urls {
			id, _ := tenantctx.TenantFrom(t.ctxs[i])
			if _, err := s.Create(ctx, store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: u}}); err != nil {
				return nil, err
			}
		}
		conn, err := driver.NewConnector(s, driver.WithMaxConns(maxConns))
		if err != nil {
			return nil, err
		}
		t.Conn = conn
		t.dbs = []*sql.DB{tune(sql.OpenDB(conn))}
	}
	return t, nil
}

// Query runs the benchmark query for the i-th operation of a worker; i
// picks the tenant, so consecutive operations interleave tenants.
func (t *Target) Query(i int) error {
	k := i % len(t.ctxs)
	db := t.dbs[0]
	if t.Case.Kind == Map {
		db = t.dbs[k]
	}
	var n int
	return db.QueryRowContext(t.ctxs[k], "SELECT $1::int", i).Scan(&n)
}

// Close closes every *sql.DB of the target.
func (t *Target) Close() error {
	for _, db := range t.dbs {
		db.Close()
	}
	return nil
}

// Sessions returns how many sessions the server has counted on the
// benchmark databases (pg_stat_database.sessions). Counters of sessions
// that just ended may lag: call it after a pause.
func Sessions(ctx context.Context, adminURL string) (int64, error) {
	db, err := sql.Open("pgx", adminURL)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	err = db.QueryRowContext(ctx, "SELECT coalesce(sum(sessions), 0) FROM pg_stat_database WHERE datname = ANY($1)", DatabaseNames()).Scan(&n)
	return n, err
}

// WaitForIdle waits until the server has no sessions on the benchmark
// databases, so that their statistics are flushed and one case does not
// see another's connections.
func WaitForIdle(ctx context.Context, adminURL string) error {
	db, err := sql.Open("pgx", adminURL)
	if err != nil {
		return err
	}
	defer db.Close()
	return WaitForNoSessions(ctx, db, DatabaseNames())
}

// WaitForNoSessions waits until the server has no sessions on dbs.
func WaitForNoSessions(ctx context.Context, admin *sql.DB, dbs []string) error {
	for {
		var n int
		if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)", dbs).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// IsTooManyClients reports the server refusing a session because
// max_connections is reached.
func IsTooManyClients(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "53300"
}

// Result is what one timed run of a Case measured.
type Result struct {
	Case        Case
	Ops         int64
	Errors      int64
	FirstErr    error
	Elapsed     time.Duration
	Mallocs     uint64 // heap allocations by the whole process during the run
	NewSessions int64  // sessions the server counted, warm-up included
}

// QPS is the throughput in queries per second.
func (r Result) QPS() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

// NsPerOp is wall time per query across all workers, as go test reports it.
func (r Result) NsPerOp() float64 { return float64(r.Elapsed.Nanoseconds()) / float64(max(r.Ops, 1)) }

// AllocsPerOp is heap allocations per query.
func (r Result) AllocsPerOp() float64 { return float64(r.Mallocs) / float64(max(r.Ops, 1)) }
