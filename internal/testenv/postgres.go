package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"
)

// PostgresServer is a private PostgreSQL server for tests that need a
// second server (per-server budgets) or a small max_connections.
type PostgresServer struct {
	Port int
	dir  string
	bin  string
}

// StartPostgres initializes and starts a PostgreSQL cluster in a temporary
// directory, with trust authentication on 127.0.0.1 and the given
// max_connections, and stops it when the test ends. It needs the server
// binaries (the postgresql package); as root it runs the server as the
// postgres user.
func StartPostgres(t testing.TB, maxConnections int) *PostgresServer {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		unavailable(t, "PostgreSQL server binaries (for a private server)", EnvPostgres, fmt.Errorf("no /usr/lib/postgresql/*/bin/initdb"))
	}
	sort.Strings(dirs)
	bin := filepath.Dir(dirs[len(dirs)-1])
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "tenantsql-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s := &PostgresServer{Port: port, dir: dir, bin: bin}
	asOwner := func(name string, args ...string) *exec.Cmd { return exec.Command(filepath.Join(bin, name), args...) }
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs a postgres user to run the server: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		asOwner = func(name string, args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := asOwner("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c max_connections=%d -c fsync=off", port, dir, maxConnections)
	if out, err := asOwner("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		asOwner("pg_ctl", "-D", data, "-m", "immediate", "stop").Run()
		os.RemoveAll(dir)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for db.PingContext(ctx) != nil {
		if ctx.Err() != nil {
			t.Fatal("private PostgreSQL server did not answer")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// URL returns the URL of database name on the server, with extra query
// parameters as key, value pairs.
func (s *PostgresServer) URL(name string, params ...string) string {
	return WithQuery(fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, name), params...)
}

// CreateDatabases creates databases on the server.
func (s *PostgresServer) CreateDatabases(t testing.TB, names ...string) {
	t.Helper()
	db, err := sql.Open("pgx", s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, n := range names {
		if !dbName.MatchString(n) {
			t.Fatalf("CreateDatabases: %q is not a plain lowercase identifier", n)
		}
		if _, err := db.ExecContext(t.Context(), "CREATE DATABASE "+n); err != nil {
			t.Fatalf("create database %s: %v", n, err)
		}
	}
}
