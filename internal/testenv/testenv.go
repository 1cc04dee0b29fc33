// Package testenv gives tests the PostgreSQL and Redis servers they run
// against. A test that needs a server calls PostgresURL or RedisURL first:
// when the server is unreachable the test is skipped, or, when the CI
// environment variable is set, it fails loudly, so CI never passes by
// skipping. PgBouncer gives the tests behind a transaction pooler a
// private PgBouncer in front of the PostgreSQL server.
package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the admin connection
)

// Environment variables that point the tests elsewhere.
const (
	EnvPostgres = "TENANTSQL_TEST_POSTGRES_URL"
	EnvRedis    = "TENANTSQL_TEST_REDIS_URL"
)

// The defaults match the local services the project's scripts start. The
// password is ignored under trust authentication and is the one the setup
// script gives the postgres role when it installs PostgreSQL itself; it
// also keeps the tests honest about redaction, since every DSN carries one.
const (
	defaultPostgres = "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"
	defaultRedis    = "redis://127.0.0.1:6379/0"
)

var (
	pgOnce  sync.Once
	pgErr   error
	rdsOnce sync.Once
	rdsErr  error
)

func unavailable(t testing.TB, what, env string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is unreachable and CI is set, so this is a failure, not a skip: %v (set %s, or run `make test` to start it)", what, err, env)
	}
	t.Skipf("%s is unreachable: %v (run `make test` to start it, or set %s)", what, err, env)
}

// PostgresURL returns the URL of the administrative database on the test
// server, after checking once per process that the server answers.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvPostgres)
	if u == "" {
		u = defaultPostgres
	}
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", u)
		if err != nil {
			pgErr = err
			return
		}
		defer db.Close()
		pgErr = db.PingContext(ctx)
	})
	if pgErr != nil {
		unavailable(t, "PostgreSQL", EnvPostgres, pgErr)
	}
	return u
}

// RedisURL returns the test Redis URL after checking once per process that
// something accepts connections there.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvRedis)
	if u == "" {
		u = defaultRedis
	}
	rdsOnce.Do(func() {
		pu, err := url.Parse(u)
		if err != nil {
			rdsErr = err
			return
		}
		c, err := net.DialTimeout("tcp", pu.Host, 3*time.Second)
		if err != nil {
			rdsErr = err
			return
		}
		c.Close()
	})
	if rdsErr != nil {
		unavailable(t, "Redis", EnvRedis, rdsErr)
	}
	return u
}

// Admin opens a connection pool to the administrative database, closed when
// the test ends.
func Admin(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// DatabaseURL returns the test server's URL for database name, with extra
// query parameters given as key, value pairs (application_name, ...).
func DatabaseURL(t testing.TB, name string, params ...string) string {
	t.Helper()
	if len(params)%2 != 0 {
		t.Fatalf("DatabaseURL: params must be key, value pairs")
	}
	return withDatabase(t, PostgresURL(t), name, params)
}

// withDatabase returns base with database name and params added to its
// query. A space is written %20: url's query encoding writes '+', which
// pgx reads as a plus sign ("a, public" would reach the server as
// "a,+public").
func withDatabase(t testing.TB, base, name string, params []string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	q := u.Query()
	for i := 0; i < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String()
}

var dbName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// EnsureDatabases creates the named databases if they do not exist yet.
// They are kept between runs: creating a database costs far more than a
// test that uses it.
func EnsureDatabases(t testing.TB, names ...string) {
	t.Helper()
	admin := Admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, name := range names {
		if !dbName.MatchString(name) {
			t.Fatalf("EnsureDatabases: %q is not a plain lowercase identifier", name)
		}
		var exists bool
		if err := admin.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			continue
		}
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil && !isDuplicate(err) {
			t.Fatalf("create database %s: %v", name, err)
		}
	}
}

// RecreateDatabase drops (forcibly) and creates the named database.
func RecreateDatabase(t testing.TB, name string) {
	t.Helper()
	DropDatabase(t, name)
	EnsureDatabases(t, name)
}

// DropDatabase drops the named database if it exists, disconnecting its
// sessions.
func DropDatabase(t testing.TB, name string) {
	t.Helper()
	if !dbName.MatchString(name) {
		t.Fatalf("DropDatabase: %q is not a plain lowercase identifier", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := Admin(t).ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		t.Fatalf("drop database %s: %v", name, err)
	}
}

// isDuplicate reports a concurrent CREATE DATABASE of the same name, from
// another test package running in parallel.
func isDuplicate(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42P04" || pe.Code == "23505")
}

// Names returns n names prefix_0 ... prefix_{n-1}.
func Names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s_%d", prefix, i)
	}
	return out
}

// ResetSchema empties the named database's public schema (what a test's
// migrations created), which is much quicker than recreating the database.
func ResetSchema(t testing.TB, name string) {
	t.Helper()
	db, err := sql.Open("pgx", DatabaseURL(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"); err != nil {
		t.Fatalf("reset schema of %s: %v", name, err)
	}
}

// Eventually polls cond every few milliseconds until it holds, and fails
// the test if it still does not after a while: timeout is what cond takes
// at most on a quiet machine, and Eventually waits four times that, and at
// least a minute, so that only a hang fails on a busy one (a suite beside
// another on two cores ran a 20-second wait out). A test's own deadline
// (go test -timeout) leaves room for the failure to be reported.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	wait := hangWait(t, timeout)
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", wait.Round(time.Second), what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hangWait is how long Eventually waits for what takes at most quiet on a
// quiet machine.
func hangWait(t testing.TB, quiet time.Duration) time.Duration {
	wait := max(4*quiet, time.Minute)
	if dt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := dt.Deadline(); ok {
			wait = max(min(wait, time.Until(dl)/2), quiet)
		}
	}
	return wait
}
