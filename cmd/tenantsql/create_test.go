package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// TestMigrateCreate scaffolds migrations as goose create does and checks
// that goose then runs them: the SQL files through tenantsql migrate up,
// on a tenant's database, whose goose_db_version is read on the server;
// the Go file by compiling it, since it runs only in a program.
func TestMigrateCreate(t *testing.T) {
	db := testenv.Unique("tsql_cli_create")
	testenv.EnsureDatabases(t, db)
	testenv.ResetSchema(t, db)
	storeURL := "file:" + filepath.Join(t.TempDir(), "tenants.json") + "?create=true"
	if code, _, errOut := migrateCLI(t, storeURL, "tenants", "add", "c.test", testenv.DatabaseURL(t, db)); code != 0 {
		t.Fatal(errOut)
	}

	// Sequential: 1, then 2, whatever the clock.
	seq := t.TempDir()
	for i, name := range []string{"add_users", "Add-Orders"} {
		code, out, errOut := migrateCLI(t, storeURL, "migrate", "create", name, "--dir", seq, "--sequential")
		want := []string{"00001_add_users.sql", "00002_add_orders.sql"}[i]
		if code != 0 || out != "created "+filepath.Join(seq, want)+" (schema version "+[]string{"1", "2"}[i]+")\n" {
			t.Fatalf("create %s: exit %d\n%s%s", name, code, out, errOut)
		}
		body, err := os.ReadFile(filepath.Join(seq, want))
		if err != nil || !strings.HasPrefix(string(body), "-- +goose Up\n") || !strings.Contains(string(body), "-- +goose Down\n") {
			t.Fatalf("%s: %v\n%s", want, err, body)
		}
	}
	if code, out, errOut := migrateCLI(t, storeURL, "migrate", "up", "--dir", seq); code != 0 || serverVersion(t, db) != 2 {
		t.Fatalf("migrate up of the created files: exit %d, server at version %d\n%s%s", code, serverVersion(t, db), out, errOut)
	}

	// Timestamped, the default: goose's 14 digits, after the sequential
	// ones, and run as well.
	code, out, errOut := migrateCLI(t, storeURL, "migrate", "create", "add_index", "--dir", seq, "--sql")
	m := regexp.MustCompile(`^created (.*/(\d{14})_add_index\.sql) \(schema version (\d{14})\)\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil || m[2] != m[3] {
		t.Fatalf("create add_index: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := migrateCLI(t, storeURL, "migrate", "up", "--dir", seq); code != 0 || serverVersion(t, db) < 20000101000000 {
		t.Fatalf("migrate up of the timestamped file: exit %d, server at version %d\n%s%s", code, serverVersion(t, db), out, errOut)
	}

	// A Go migration: it compiles, in a package of its own.
	// Under the module, for its go.mod; "_" keeps it out of ./... patterns.
	pkg, err := os.MkdirTemp(".", "_create-go-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pkg) })
	code, out, errOut = migrateCLI(t, storeURL, "migrate", "create", "backfill_names", "--dir", pkg, "--go")
	if code != 0 || !regexp.MustCompile(`^created .*/\d{14}_backfill_names\.go `).MatchString(out) || !strings.Contains(errOut, "tenantsql migrate runs .sql migrations only") {
		t.Fatalf("create --go: exit %d\n%s%s", code, out, errOut)
	}
	build := exec.CommandContext(t.Context(), "go", "build", "./"+filepath.ToSlash(pkg))
	if b, err := build.CombinedOutput(); err != nil {
		t.Errorf("the Go migration does not compile: %v\n%s", err, b)
	}
}

func TestMigrateCreateRefuses(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"empty name", []string{""}, exitUsage, "not a migration name"},
		{"space", []string{"add users"}, exitUsage, `"add users": use 1 to 100 letters, digits, '_' and '-', starting with a letter`},
		{"leading digit", []string{"1st"}, exitUsage, "not a migration name"},
		{"path", []string{"../x"}, exitUsage, "not a migration name"},
		{"extension", []string{"x.sql"}, exitUsage, "not a migration name"},
		{"no name", nil, exitUsage, "want one NAME"},
		{"two names", []string{"a", "b"}, exitUsage, "want one NAME"},
		{"sql and go", []string{"a", "--sql", "--go"}, exitUsage, "--sql or --go, not both"},
		{"missing directory", []string{"a", "--dir", "/nonexistent/migrations"}, exitError, "migrations directory /nonexistent/migrations does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"migrate", "create"}, tt.args...)
			if !strings.Contains(strings.Join(tt.args, " "), "--dir") {
				args = append(args, "--dir", dir)
			}
			r := runCLI(t, nil, "", args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
				t.Errorf("exit %d (want %d), stderr without %q\n%v", r.code, tt.code, tt.want, r)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("files were written: %v", entries)
			}
		})
	}
	// The flags of create are refused elsewhere.
	if r := runCLI(t, nil, "", "migrate", "up", "--dir", ".", "--sql"); r.code != exitUsage || !strings.Contains(r.stderr, "apply to migrate create only") {
		t.Errorf("migrate up --sql:\n%v", r)
	}
}
