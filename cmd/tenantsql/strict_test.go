package main

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

// TestBadTenantsRefused checks that the command refuses the deploy info
// the admin API refuses (api.TestBadTenantsShared runs the same table),
// with the same message, in add, update and load, and writes nothing.
func TestBadTenantsRefused(t *testing.T) {
	for _, tt := range testenv.BadTenants {
		t.Run(tt.Name, func(t *testing.T) {
			args := []string{tt.DeployInfo[store.KeyPostgresURL]}
			for _, k := range slices.Sorted(maps.Keys(tt.DeployInfo)) {
				if k != store.KeyPostgresURL {
					args = append(args, k+"="+tt.DeployInfo[k])
				}
			}
			want := "tenantsql: " + tt.Want + "\n"
			for _, sub := range []string{"add", "update"} {
				f := newFixture(t, tenantA)
				r := f.run(t, "", append([]string{"tenants", sub, tenantA.ID}, args...)...)
				if r.code != exitError || r.stderr != want || r.stdout != "" {
					t.Errorf("tenants %s: want exit 1 and stderr %q\n%v", sub, want, r)
				}
				f.unchanged(t)
				if strings.Contains(r.stderr, testenv.BadTenantPassword) {
					t.Errorf("tenants %s shows the password:\n%v", sub, r)
				}
			}

			f := newFixture(t, tenantA)
			config, err := json.Marshal(map[string]any{"tenants": map[string]any{"t1.test": map[string]any{"deploy_info": tt.DeployInfo}}})
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(f.dir, "tenant_config.json")
			if err := os.WriteFile(file, config, 0o600); err != nil {
				t.Fatal(err)
			}
			r := f.run(t, "", "tenants", "load", file)
			// The file store's own reader may refuse the file first (an
			// invalid URL is invalid wherever it is read): then with the
			// same words, naming the file.
			if r.code != exitError || !strings.Contains(r.stderr, tt.Want) || strings.Contains(r.stdout, "created") {
				t.Errorf("tenants load: want exit 1 and stderr holding %q\n%v", tt.Want, r)
			}
			f.unchanged(t)
		})
	}
}

// TestGlobalFlagsAnywhere runs every command with --store (and -v) before
// the command, after it, and at the end of the line: each gives the same
// result, and the store is the one named (the seeded tenant is found, or
// the new one lands in it).
func TestGlobalFlagsAnywhere(t *testing.T) {
	commands := []struct {
		args []string // "$DIR" is the fixture's directory
		code int
	}{
		{[]string{"tenants", "list"}, exitOK},
		{[]string{"tenants", "list", "--json"}, exitOK},
		{[]string{"tenants", "get", tenantA.ID}, exitOK},
		{[]string{"tenants", "add", "tenant-n.test", urlNew, "PLAN=gold"}, exitOK},
		{[]string{"tenants", "update", tenantA.ID, urlNew, "--version", "1"}, exitOK},
		{[]string{"tenants", "rm", tenantA.ID}, exitOK},
		{[]string{"tenants", "load", "$DIR/tenant_config.json"}, exitOK},
		{[]string{"tenants", "load", "$DIR/tenant_config.json", "--dry-run"}, exitOK},
		{[]string{"tenants", "resync"}, exitError}, // a file store has nothing to resync, but was opened
		{[]string{"migrate", "status", "--dir", filepath.Join("..", "..", "testdata", "migrations"), "--tenant", "nobody.test"}, exitError},
	}
	config := `{"tenants": {"tenant-c.test": {"deploy_info": {"POSTGRES_URL": "postgres://app:hunter2@db/c"}}}}`
	duration := regexp.MustCompile(`\([0-9.]+[µnm]?s\)`)
	for _, cmd := range commands {
		name := strings.Join(cmd.args[:2], " ")
		if last := cmd.args[len(cmd.args)-1]; strings.HasPrefix(last, "--") {
			name += " " + last
		}
		var first *result
		for _, place := range []string{"before", "after the command", "at the end", "as --store=URL at the end", "-v at the end", "-v first"} {
			t.Run(name+"/"+place, func(t *testing.T) {
				f := newFixture(t, tenantA)
				if err := os.WriteFile(filepath.Join(f.dir, "tenant_config.json"), []byte(config), 0o600); err != nil {
					t.Fatal(err)
				}
				var args []string
				for _, a := range cmd.args {
					args = append(args, strings.ReplaceAll(a, "$DIR", f.dir))
				}
				switch place {
				case "before":
					args = append([]string{"--store", f.url}, args...)
				case "after the command":
					args = append([]string{args[0], "--store", f.url}, args[1:]...)
				case "at the end":
					args = append(args, "--store", f.url)
				case "as --store=URL at the end":
					args = append(args, "--store="+f.url)
				case "-v at the end":
					args = append(append([]string{"--store", f.url}, args...), "-v")
				case "-v first":
					args = append([]string{"-v", "--store", f.url}, args...)
				}
				// The environment names a store that does not exist: only
				// the flag can have led to this one.
				r := runCLI(t, map[string]string{"TENANTSQL_STORE": "file:/nonexistent/tenants.json"}, "", args...)
				if r.code != cmd.code || strings.Contains(r.stderr, "usage:") || strings.Contains(r.stderr, "nonexistent") {
					t.Fatalf("tenantsql %s: exit %d, want %d\n%v", strings.Join(args, " "), r.code, cmd.code, r)
				}
				r.stdout = strings.ReplaceAll(r.stdout, f.dir, "$DIR")
				r.stderr = duration.ReplaceAllString(strings.ReplaceAll(r.stderr, f.dir, "$DIR"), "(D)")
				if strings.Contains(r.stdout, "UPDATED") || strings.HasPrefix(name, "tenants get") || strings.Contains(r.stdout, "updated_at") {
					// Timestamps differ between fixtures.
					r.stdout = regexp.MustCompile(`\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)`).ReplaceAllString(r.stdout, "T")
				}
				if first == nil {
					first = &r
					return
				}
				if r.stdout != first.stdout || r.stderr != first.stderr {
					t.Errorf("tenantsql %s differs from --store first:\n%v\nwas:\n%v", strings.Join(args, " "), r, *first)
				}
			})
		}
	}
}

func TestGlobalFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tenants", "list", "--store"}, "flag needs an argument: --store"},
		{[]string{"-v=1", "tenants", "list"}, "-v takes no value"},
		{[]string{"--bogus", "tenants", "list"}, "flag provided but not defined: --bogus"},
	} {
		r := runCLI(t, nil, "", tc.args...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, "tenantsql: "+tc.want+"\n") {
			t.Errorf("tenantsql %s: want exit 2 and %q\n%v", strings.Join(tc.args, " "), tc.want, r)
		}
	}
}

// TestUnreachableRedisQuiet runs the command as a process (go-redis logs
// to the process's stderr, not to the command's writer) against a Redis
// port where nothing listens: without -v, stderr holds the command's one
// message and nothing of go-redis's own logger; with -v or
// TENANTSQL_DEBUG=1, go-redis's lines are there too.
func TestUnreachableRedisQuiet(t *testing.T) {
	const storeURL = "redis://127.0.0.1:1/0" // port 1: nothing listens
	for _, tc := range []struct {
		name string
		args []string
		env  string
		loud bool
	}{
		{"quiet", []string{"tenants", "list", "--store", storeURL}, "", false},
		{"-v", []string{"tenants", "list", "--store", storeURL, "-v"}, "", true},
		{"TENANTSQL_DEBUG=1", []string{"--store", storeURL, "tenants", "list"}, "TENANTSQL_DEBUG=1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], tc.args...)
			cmd.Env = append(os.Environ(), runMainEnv+"=1", "TENANTSQL_STORE=", "TENANTSQL_DEBUG=")
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitError {
				t.Fatalf("exit: %v, want status 1\nstderr:\n%s", err, stderr.String())
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			ours := 0
			for _, l := range lines {
				if strings.HasPrefix(l, "tenantsql: store: redis redis://127.0.0.1:1/0: ") && strings.Contains(l, "connection refused") {
					ours++
				}
			}
			if ours != 1 {
				t.Errorf("stderr does not hold the command's message once:\n%s", stderr.String())
			}
			if !tc.loud && len(lines) != 1 {
				t.Errorf("stderr holds more than the command's one message:\n%s", stderr.String())
			}
			if tc.loud && !strings.Contains(stderr.String(), "redis: connection pool: failed to dial") {
				t.Errorf("with %s, go-redis's own log is missing:\n%s", tc.name, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: %s", stdout.String())
			}
		})
	}
}
