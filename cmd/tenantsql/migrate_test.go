package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3/lock"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// runMainEnv set to 1 makes the test binary run the command (main)
// instead of the tests, for tests that need it as a process of its own.
const runMainEnv = "TENANTSQL_TEST_RUN_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	testenv.Main(m)
}

// migrateEnv is a file store with four tenants on freshly emptied
// databases of their own, and a fifth whose server does not exist.
func migrateEnv(t *testing.T) (storeURL string, dbs []string) {
	t.Helper()
	dbs = testenv.Names(testenv.Unique("tsql_cli"), 4)
	testenv.EnsureDatabases(t, dbs...)
	storeURL = "file:" + filepath.Join(t.TempDir(), "tenants.json") + "?create=true"
	for i, db := range dbs {
		testenv.ResetSchema(t, db)
		if code, _, errOut := migrateCLI(t, storeURL, "tenants", "add", fmt.Sprintf("cli-%d.test", i), testenv.DatabaseURL(t, db)); code != 0 {
			t.Fatalf("add: %s", errOut)
		}
	}
	return storeURL, dbs
}

func migrateCLI(t *testing.T, storeURL string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"--store", storeURL}, args...), strings.NewReader(""), &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

func serverVersion(t *testing.T, db string) int64 {
	t.Helper()
	conn, err := sql.Open("pgx", testenv.DatabaseURL(t, db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var exists bool
	if err := conn.QueryRow("SELECT to_regclass('goose_db_version') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatalf("%s: %v", db, err)
	}
	if !exists {
		return -1
	}
	var v int64
	if err := conn.QueryRow("SELECT coalesce(max(version_id), -1) FROM goose_db_version").Scan(&v); err != nil {
		t.Fatalf("%s: %v", db, err)
	}
	return v
}

func TestMigrateCommand(t *testing.T) {
	storeURL, dbs := migrateEnv(t)
	dir := filepath.Join("..", "..", "testdata", "migrations")

	code, out, errOut := migrateCLI(t, storeURL, "migrate", "up", "--dir", dir, "--concurrency", "2")
	if code != 0 {
		t.Fatalf("migrate up: exit %d\n%s%s", code, out, errOut)
	}
	for _, db := range dbs {
		if v := serverVersion(t, db); v != 5 {
			t.Errorf("%s is at version %d after migrate up, want 5", db, v)
		}
	}
	if !strings.Contains(errOut, "[4/4]") || !strings.Contains(errOut, "4 migrated") || !strings.Contains(out, "1,2,3,4,5") {
		t.Errorf("progress or summary missing:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}

	code, _, errOut = migrateCLI(t, storeURL, "migrate", "up", "--dir", dir)
	if code != 0 || !strings.Contains(errOut, "0 migrated, 4 already up to date") {
		t.Errorf("rerun: exit %d\n%s", code, errOut)
	}

	// Status counts what its words say; APPLIED is a count of applied
	// migrations, SCHEMA_VERSION the server's.
	code, out, errOut = migrateCLI(t, storeURL, "migrate", "status", "--dir", dir)
	if code != 0 || !strings.Contains(errOut, "4 up to date, 0 with pending migrations") ||
		!hasRow(out, "TENANT", "SCHEMA_VERSION", "APPLIED", "PENDING", "RESULT") || !hasRow(out, "cli-0.test", "5", "5", "-", "ok") {
		t.Errorf("status with all up to date: exit %d\n%s%s", code, out, errOut)
	}

	code, out, errOut = migrateCLI(t, storeURL, "migrate", "down-to", "3", "--dir", dir, "--tenant", "cli-1.test")
	if code != 0 || serverVersion(t, dbs[1]) != 3 || serverVersion(t, dbs[0]) != 5 {
		t.Errorf("down-to 3 for cli-1 only: exit %d, versions %d and %d\n%s", code, serverVersion(t, dbs[1]), serverVersion(t, dbs[0]), errOut)
	}
	// RAN lists the versions this run rolled back, in the order it did.
	if !strings.Contains(errOut, "1 rolled back, 0 with nothing to roll back") ||
		!hasRow(out, "TENANT", "SCHEMA_BEFORE", "SCHEMA_AFTER", "RAN", "DURATION", "RESULT") || !strings.Contains(out, "5,4") {
		t.Errorf("down-to 3 output:\n%s%s", out, errOut)
	}

	code, out, errOut = migrateCLI(t, storeURL, "migrate", "up", "--dry-run", "--dir", dir)
	if code != 0 || !hasRow(out, "cli-1.test", "3", "4,5", "ok") || serverVersion(t, dbs[1]) != 3 ||
		!strings.Contains(errOut, "1 would be migrated, 3 already up to date") {
		t.Errorf("dry run: exit %d, version %d\n%s%s", code, serverVersion(t, dbs[1]), out, errOut)
	}

	code, out, errOut = migrateCLI(t, storeURL, "migrate", "status", "--dir", dir, "--exclude", "cli-0.test")
	if code != 0 || strings.Contains(out, "cli-0.test") || !hasRow(out, "cli-1.test", "3", "3", "4,5", "ok") ||
		!strings.Contains(errOut, "2 up to date, 1 with pending migrations") {
		t.Errorf("status: exit %d\n%s%s", code, out, errOut)
	}

	// A tenant that cannot be reached fails the run: exit 1, named with
	// its cause, the password not shown; the others still finish with
	// --continue-on-error.
	if code, _, errOut := migrateCLI(t, storeURL, "tenants", "add", "cli-gone.test", "postgres://u:sekret@127.0.0.1:1/x?connect_timeout=2"); code != 0 {
		t.Fatal(errOut)
	}
	code, out, errOut = migrateCLI(t, storeURL, "migrate", "up", "--dir", dir, "--continue-on-error")
	if code != 1 || !strings.Contains(out, "cli-gone.test") || !strings.Contains(out, "FAILED") || strings.Contains(out+errOut, "sekret") {
		t.Errorf("failing tenant: exit %d\n%s%s", code, out, errOut)
	}
	if serverVersion(t, dbs[1]) != 5 {
		t.Errorf("cli-1 did not finish beside the failing tenant")
	}
}

// hasRow reports whether table, as the command prints it, has a row of
// these cells; "*" matches any one cell (a duration).
func hasRow(table string, cells ...string) bool {
	for line := range strings.Lines(table) {
		if slices.EqualFunc(strings.Fields(line), cells, func(got, want string) bool { return want == "*" || got == want }) {
			return true
		}
	}
	return false
}

func TestMigrateUsage(t *testing.T) {
	storeURL := "file:" + filepath.Join(t.TempDir(), "t.json") + "?create=true"
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"migrate"}, 2, "missing operation"},
		{[]string{"migrate", "sideways", "--dir", "."}, 2, "unknown operation"},
		{[]string{"migrate", "up"}, 2, "--dir is required"},
		{[]string{"migrate", "up-to", "--dir", "."}, 2, "wrong number of arguments"},
		{[]string{"migrate", "up-to", "x", "--dir", "."}, 2, "not a non-negative number"},
		{[]string{"migrate", "up", "--dir", ".", "--concurrency", "0"}, 2, "at least 1"},
		{[]string{"migrate", "up", "--dir", "/nonexistent"}, 1, "not a readable directory"},
		{[]string{"migrate", "up", "--dir", "."}, 1, "no migrations"},
		{[]string{"migrate", "up", "--dir", filepath.Join("..", "..", "testdata", "migrations"), "--tenant", "nobody.test"}, 1, "no such tenant"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := migrateCLI(t, storeURL, tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("exit %d (want %d), output does not say %q:\n%s%s", code, tt.code, tt.want, out, errOut)
			}
		})
	}
}

// Ctrl-C while a tenant waits for another run's lock on its database: the
// tenant stops waiting at once, is listed as interrupted, and the exit
// status is 1, so a script does not carry on as if the run had completed.
func TestMigrateInterrupted(t *testing.T) {
	db, id := testenv.Unique("tsql_cli_lock"), "cli-lock.test"
	testenv.EnsureDatabases(t, db)
	testenv.ResetSchema(t, db)
	storeURL := "file:" + filepath.Join(t.TempDir(), "tenants.json") + "?create=true"
	if code, _, errOut := migrateCLI(t, storeURL, "tenants", "add", id, testenv.DatabaseURL(t, db, "application_name", id)); code != 0 {
		t.Fatal(errOut)
	}
	// Another run holds goose's lock on the tenant's database.
	other, err := sql.Open("pgx", testenv.DatabaseURL(t, db, "application_name", "other-run"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "SELECT pg_advisory_lock($1)", lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}
	// Released however the test ends, so a run still waiting finishes.
	defer conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", lock.DefaultLockID)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code        int
		out, errOut string
	}
	done := make(chan result, 1)
	go func() {
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"--store", storeURL, "migrate", "up", "--dir", filepath.Join("..", "..", "testdata", "migrations")}, strings.NewReader(""), &out, &errOut, func(string) string { return "" })
		done <- result{code, out.String(), errOut.String()}
	}()
	// Ctrl-C once the tenant waits for the lock: its session has asked.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := other.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE '%pg_try_advisory_lock%'", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run never asked for the lock on the tenant's database")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case r := <-done:
		if r.code != 1 || !strings.Contains(r.errOut, "interrupted") || !strings.Contains(r.out, "INTERRUPTED") || !strings.Contains(r.errOut, "1 interrupted") {
			t.Errorf("exit %d; want 1, the tenant listed as interrupted\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errOut)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("10 s after Ctrl-C the run is still waiting for the lock")
	}
	if v := serverVersion(t, db); v > 0 {
		t.Errorf("the interrupted tenant is at version %d, want nothing applied", v)
	}
}

// TestMigrateFailureExplained checks how a tenant that cannot be migrated
// is reported: the cause first, what the run was doing after it, printed
// once (not in the progress line and the table too), with a hint, and
// without the layers of wrapping ("migrate up: tenant ...: migrate: ...:
// tenantsql: tenant ...: failed to connect ...") that put it last.
func TestMigrateFailureExplained(t *testing.T) {
	missing := testenv.Unique("tsql_cli_missing") // never created
	tests := []struct {
		name, url string
		cause     string // in the message, once in the whole output
		hint      string
	}{
		{"unreachable", "postgres://u:sekret@127.0.0.1:1/x?connect_timeout=2", "connection refused", "check the host and port"},
		{"no database", testenv.DatabaseURL(t, missing), fmt.Sprintf("database %q does not exist (SQLSTATE 3D000)", missing), "--create-database"},
	}
	dir := filepath.Join("..", "..", "testdata", "migrations")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storeURL := "file:" + filepath.Join(t.TempDir(), "tenants.json") + "?create=true"
			if code, _, errOut := migrateCLI(t, storeURL, "tenants", "add", "b.test", tt.url); code != 0 {
				t.Fatal(errOut)
			}
			code, out, errOut := migrateCLI(t, storeURL, "migrate", "up", "--dir", dir)
			all := out + errOut
			if code != 1 {
				t.Errorf("exit %d, want 1\n%s", code, all)
			}
			var msgs, hints []string
			for line := range strings.Lines(errOut) {
				switch {
				case strings.HasPrefix(line, `tenantsql: tenant "b.test": `):
					msgs = append(msgs, line)
				case strings.HasPrefix(line, "  hint: "):
					hints = append(hints, line)
				}
			}
			if len(msgs) != 1 || !strings.HasPrefix(msgs[0], `tenantsql: tenant "b.test": cannot connect: `) ||
				!strings.HasSuffix(msgs[0], "(while trying to look for the version table goose_db_version)\n") || !strings.Contains(msgs[0], tt.cause) {
				t.Errorf("want one line: the tenant, cannot connect: %s, then the step; got %q\n%s", tt.cause, msgs, all)
			}
			if n := strings.Count(all, tt.cause); n != 1 {
				t.Errorf("the cause %q is printed %d times, want once:\n%s", tt.cause, n, all)
			}
			if len(hints) != 1 || !strings.Contains(hints[0], tt.hint) || !strings.Contains(hints[0], "tenants get b.test") {
				t.Errorf("want one hint about %q; got %q", tt.hint, hints)
			}
			for _, bad := range []string{"migrate up: tenant", "migrate: ", "failed to connect", "sekret"} {
				if strings.Contains(all, bad) {
					t.Errorf("the output holds %q:\n%s", bad, all)
				}
			}
		})
	}
}

// TestMigrateFailedMigrationExplained: a migration that fails on the
// server is reported by the server's error, then which migration, once;
// the one before it is applied, on the server, and listed under RAN.
func TestMigrateFailedMigrationExplained(t *testing.T) {
	db := testenv.Unique("tsql_cli_badmig")
	testenv.EnsureDatabases(t, db)
	testenv.ResetSchema(t, db)
	dir := t.TempDir()
	for name, body := range map[string]string{
		"00001_ok.sql":  "-- +goose Up\nCREATE TABLE cli_ok (i int);\n-- +goose Down\nDROP TABLE cli_ok;\n",
		"00002_bad.sql": "-- +goose Up\nSELEC 1;\n-- +goose Down\nSELECT 1;\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	storeURL := "file:" + filepath.Join(t.TempDir(), "tenants.json") + "?create=true"
	if code, _, errOut := migrateCLI(t, storeURL, "tenants", "add", "m.test", testenv.DatabaseURL(t, db)); code != 0 {
		t.Fatal(errOut)
	}
	code, out, errOut := migrateCLI(t, storeURL, "migrate", "up", "--dir", dir)
	const cause = `ERROR: syntax error at or near "SELEC" (SQLSTATE 42601)`
	want := `tenantsql: tenant "m.test": ` + cause + " (migration 00002_bad.sql, up, version 2); those that ran before it stay applied (RAN)\n"
	if code != 1 || !strings.Contains(errOut, want) || strings.Count(out+errOut, cause) != 1 || !hasRow(out, "m.test", "0", "1", "1", "*", "FAILED") {
		t.Errorf("exit %d; want 1, once:\n%s\ngot:\n%s%s", code, want, out, errOut)
	}
	if v := serverVersion(t, db); v != 1 {
		t.Errorf("the server is at version %d, want 1 (the migration before the failed one)", v)
	}
}
