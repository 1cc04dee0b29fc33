package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

// The secrets the tenants of these tests hold. No command may print them.
var secrets = []string{"hunter2", "s3cret"}

const (
	urlA   = "postgres://app:hunter2@db/a"
	urlB   = "postgres://app:hunter2@db/b"
	urlNew = "postgres://app:hunter2@db/x"

	shownA   = "postgres://app:xxxxx@db/a"
	shownNew = "postgres://app:xxxxx@db/x"
)

var (
	tenantA = store.Tenant{ID: "tenant-a.test", DeployInfo: map[string]string{store.KeyPostgresURL: urlA, "API_TOKEN": "s3cret", "PLAN": "gold"}}
	tenantB = store.Tenant{ID: "tenant-b.test", DeployInfo: map[string]string{store.KeyPostgresURL: urlB}}
)

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit code %d\nstdout:\n%sstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the command and fails the test if a secret shows up in what
// it printed.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(stdin), &stdout, &stderr, func(k string) string { return env[k] })
	r := result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	for _, s := range secrets {
		if strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s) {
			t.Errorf("tenantsql %s printed the secret %q:\n%v", strings.Join(args, " "), s, r)
		}
	}
	return r
}

// fixture is a file store in a temporary directory.
type fixture struct {
	dir, path, url string
	seeded         []byte // the file as seeded, nil if there is none
}

func newFixture(t *testing.T, seed ...store.Tenant) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir, path: filepath.Join(dir, "tenants.json")}
	f.url = "file:" + f.path + "?create=true"
	if len(seed) == 0 {
		return f
	}
	s := f.open(t)
	for _, tn := range seed {
		if _, err := s.Create(t.Context(), tn); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	var err error
	if f.seeded, err = os.ReadFile(f.path); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) open(t *testing.T) *store.File {
	t.Helper()
	s, err := store.OpenFile(t.Context(), f.path, store.WithFileCreate(true), store.WithFilePollInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) get(t *testing.T, id string) (store.Tenant, bool) {
	t.Helper()
	s := f.open(t)
	defer s.Close()
	tn, err := s.Get(t.Context(), id)
	if err != nil {
		return store.Tenant{}, false
	}
	return tn, true
}

func (f *fixture) ids(t *testing.T) []string {
	t.Helper()
	s := f.open(t)
	defer s.Close()
	ts, err := s.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tn := range ts {
		ids = append(ids, tn.ID)
	}
	return ids
}

// run runs the command against the fixture's store.
func (f *fixture) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runCLI(t, nil, stdin, append([]string{"--store", f.url}, args...)...)
}

// unchanged fails the test if the store file is not as seeded.
func (f *fixture) unchanged(t *testing.T) {
	t.Helper()
	got, err := os.ReadFile(f.path)
	if f.seeded == nil {
		if err == nil {
			t.Errorf("the store file was created:\n%s", got)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, f.seeded) {
		t.Errorf("the store file changed:\n%s\nwas:\n%s", got, f.seeded)
	}
}

// wantTenant fails the test unless the store holds id with exactly info at
// version.
func (f *fixture) wantTenant(t *testing.T, id string, version int64, info map[string]string) {
	t.Helper()
	tn, ok := f.get(t, id)
	if !ok {
		t.Fatalf("the store has no tenant %q", id)
	}
	if tn.Version != version || !maps.Equal(tn.DeployInfo, info) {
		// Compare the real values, but print only redacted ones.
		t.Errorf("tenant %s = %v, want version %d and deploy info %v", id, tn, version, store.Tenant{DeployInfo: info})
	}
}

type cliCase struct {
	name   string
	seed   []store.Tenant
	files  map[string]string // written to the fixture's directory; "$DIR" in args names it
	env    map[string]string // "$STORE" in a value is the store URL
	noFlag bool              // do not pass --store
	args   []string
	stdin  string

	code       int
	stdout     []string // substrings of stdout
	stderr     []string // substrings of stderr
	notStdout  []string
	emptyOut   bool // stdout must be empty
	usageOnErr bool // stderr holds the usage text
	check      func(t *testing.T, f *fixture, r result)
}

func runCases(t *testing.T, cases []cliCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.seed...)
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(f.dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var args []string
			if !tc.noFlag {
				args = append(args, "--store", f.url)
			}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "$DIR", f.dir))
			}
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = strings.ReplaceAll(v, "$STORE", f.url)
			}
			r := runCLI(t, env, tc.stdin, args...)
			if r.code != tc.code {
				t.Errorf("exit code %d, want %d\n%v", r.code, tc.code, r)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(r.stdout, strings.ReplaceAll(s, "$DIR", f.dir)) {
					t.Errorf("stdout does not contain %q\n%v", s, r)
				}
			}
			for _, s := range tc.notStdout {
				if strings.Contains(r.stdout, s) {
					t.Errorf("stdout contains %q\n%v", s, r)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(r.stderr, strings.ReplaceAll(s, "$DIR", f.dir)) {
					t.Errorf("stderr does not contain %q\n%v", s, r)
				}
			}
			if tc.emptyOut && r.stdout != "" {
				t.Errorf("stdout is not empty\n%v", r)
			}
			if tc.usageOnErr && !strings.Contains(r.stderr, usage) {
				t.Errorf("stderr does not hold the usage text\n%v", r)
			}
			if r.code == exitError && !strings.HasPrefix(r.stderr, "tenantsql: ") {
				t.Errorf("a failure's message does not start with \"tenantsql: \"\n%v", r)
			}
			if tc.check != nil {
				tc.check(t, f, r)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	cases := []cliCase{
		{name: "no arguments", noFlag: true, code: exitUsage, usageOnErr: true, emptyOut: true},
		{name: "only --store", code: exitUsage, usageOnErr: true, emptyOut: true},
		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage, usageOnErr: true, emptyOut: true, stderr: []string{`unknown command "frobnicate"`}},
		{name: "unknown global flag", args: []string{"--bogus", "tenants", "list"}, code: exitUsage, usageOnErr: true, emptyOut: true},
		{name: "tenants without subcommand", args: []string{"tenants"}, code: exitUsage, usageOnErr: true, emptyOut: true, stderr: []string{"missing subcommand"}},
		{name: "unknown tenants subcommand", args: []string{"tenants", "frob"}, code: exitUsage, usageOnErr: true, emptyOut: true, stderr: []string{`unknown subcommand "frob"`}},
		{name: "list with an argument", args: []string{"tenants", "list", "x"}, code: exitUsage, usageOnErr: true, emptyOut: true, stderr: []string{"tenants list: wrong number of arguments"}},
		{name: "get without id", args: []string{"tenants", "get"}, code: exitUsage, usageOnErr: true, emptyOut: true, stderr: []string{"tenants get: wrong number of arguments"}},
		{name: "get with two ids", args: []string{"tenants", "get", "a", "b"}, code: exitUsage, usageOnErr: true, emptyOut: true},
		{name: "add without url", args: []string{"tenants", "add", "a"}, code: exitUsage, usageOnErr: true, emptyOut: true, stderr: []string{"tenants add: wrong number of arguments"}},
		{name: "add without anything", args: []string{"tenants", "add"}, code: exitUsage, usageOnErr: true, emptyOut: true},
		{name: "update without url", args: []string{"tenants", "update", "a"}, code: exitUsage, usageOnErr: true, emptyOut: true},
		{name: "rm without id", args: []string{"tenants", "rm"}, code: exitUsage, usageOnErr: true, emptyOut: true},
		{name: "rm with two ids", args: []string{"tenants", "rm", "a", "b"}, code: exitUsage, usageOnErr: true, emptyOut: true},
		{name: "load without file", args: []string{"tenants", "load"}, code: exitUsage, usageOnErr: true, emptyOut: true},
		{name: "load with two files", args: []string{"tenants", "load", "a.json", "b.json"}, code: exitUsage, usageOnErr: true, emptyOut: true},
		{name: "resync with an argument", args: []string{"tenants", "resync", "now"}, code: exitUsage, usageOnErr: true, emptyOut: true},
		{name: "wrong count needs no store", noFlag: true, args: []string{"tenants", "get"}, code: exitUsage, usageOnErr: true, emptyOut: true},
		{
			name: "add with --version", args: []string{"tenants", "add", "--version", "3", "tenant-n.test", urlNew},
			code: exitUsage, usageOnErr: true, emptyOut: true, stderr: []string{"--version applies to update only"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{name: "unknown subcommand flag", args: []string{"tenants", "list", "--bogus"}, code: exitUsage, emptyOut: true, stderr: []string{"-bogus"}},
		{name: "help", noFlag: true, args: []string{"help"}, code: exitOK, stdout: []string{usage}},
	}
	// Asking for help is not an error: the usage goes to stdout (to be
	// paged or grepped) and the exit status is 0.
	help := func(text string) func(t *testing.T, f *fixture, r result) {
		return func(t *testing.T, f *fixture, r result) {
			if r.stdout != text || r.stderr != "" {
				t.Errorf("want exactly the usage on stdout and nothing on stderr\n%v", r)
			}
		}
	}
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"-help"}, {"--store", "file:x.json", "--help"},
		{"tenants", "--help"}, {"tenants", "-h"}, {"tenants", "list", "--help"}, {"tenants", "add", "-h"},
	} {
		cases = append(cases, cliCase{name: strings.Join(args, " "), noFlag: true, args: args, code: exitOK, check: help(usage)})
	}
	for _, args := range [][]string{
		{"migrate", "--help"}, {"migrate", "-h"}, {"migrate", "up", "--help"}, {"migrate", "up-to", "--dir", "x", "-h"},
	} {
		cases = append(cases, cliCase{name: strings.Join(args, " "), noFlag: true, args: args, code: exitOK, check: help(migrateUsage)})
	}
	runCases(t, cases)
}

func TestStoreSelection(t *testing.T) {
	cases := []cliCase{
		{
			name: "neither flag nor environment", noFlag: true, args: []string{"tenants", "list"},
			code: exitError, emptyOut: true, stderr: []string{"no tenant store", "--store", "TENANTSQL_STORE"},
		},
		{
			name: "empty environment variable", noFlag: true, env: map[string]string{"TENANTSQL_STORE": ""}, args: []string{"tenants", "list"},
			code: exitError, emptyOut: true, stderr: []string{"no tenant store"},
		},
		{
			name: "TENANTSQL_STORE", noFlag: true, seed: []store.Tenant{tenantA}, env: map[string]string{"TENANTSQL_STORE": "$STORE"},
			args: []string{"tenants", "list"}, code: exitOK, stdout: []string{"tenant-a.test"}, stderr: []string{"1 tenants"},
		},
		{
			name: "TENANTSQL_STORE for a write", noFlag: true, env: map[string]string{"TENANTSQL_STORE": "$STORE"},
			args: []string{"tenants", "add", "tenant-n.test", urlNew}, code: exitOK, stdout: []string{"created tenant-n.test"},
			check: func(t *testing.T, f *fixture, r result) {
				f.wantTenant(t, "tenant-n.test", 1, map[string]string{store.KeyPostgresURL: urlNew})
			},
		},
		{
			name: "--store wins over TENANTSQL_STORE", seed: []store.Tenant{tenantA}, env: map[string]string{"TENANTSQL_STORE": "file:/nonexistent/tenants.json"},
			args: []string{"tenants", "list"}, code: exitOK, stdout: []string{"tenant-a.test"},
		},
		{
			name: "bad store URL", noFlag: true, args: []string{"--store", "nope:x", "tenants", "list"},
			code: exitError, emptyOut: true, stderr: []string{`unsupported scheme "nope"`},
		},
		{
			name: "missing store file", noFlag: true, args: []string{"--store", "file:$DIR/missing.json", "tenants", "list"},
			code: exitError, emptyOut: true, stderr: []string{"$DIR/missing.json"},
		},
		{
			name: "malformed store file", noFlag: true, files: map[string]string{"broken.json": `{"tenants": {"x": {"deploy_info": {"POSTGRES_URL": "` + urlA + `"}}`},
			args: []string{"--store", "file:$DIR/broken.json", "tenants", "list"},
			code: exitError, emptyOut: true, stderr: []string{"$DIR/broken.json"},
		},
	}
	runCases(t, cases)
}

func TestAdd(t *testing.T) {
	cases := []cliCase{
		{
			name: "add", seed: []store.Tenant{tenantB}, args: []string{"tenants", "add", "tenant-n.test", urlNew},
			code: exitOK, stdout: []string{"created tenant-n.test (store version 1, POSTGRES_URL " + shownNew + ")"},
			check: func(t *testing.T, f *fixture, r result) {
				f.wantTenant(t, "tenant-n.test", 1, map[string]string{store.KeyPostgresURL: urlNew})
				l := f.run(t, "", "tenants", "list")
				if l.code != exitOK || !strings.Contains(l.stdout, "tenant-n.test") || !strings.Contains(l.stdout, shownNew) || !strings.Contains(l.stdout, "tenant-b.test") {
					t.Errorf("list after add:\n%v", l)
				}
			},
		},
		{
			name: "add to a new file", args: []string{"tenants", "add", "tenant-n.test", urlNew},
			code: exitOK, stdout: []string{"created tenant-n.test"},
			check: func(t *testing.T, f *fixture, r result) {
				fi, err := os.Stat(f.path)
				if err != nil {
					t.Fatal(err)
				}
				if perm := fi.Mode().Perm(); perm != 0o600 {
					t.Errorf("new store file has mode %v, want 0600", perm)
				}
			},
		},
		{
			name: "add with extras", args: []string{"tenants", "add", "tenant-n.test", urlNew, "API_TOKEN=s3cret", "PLAN=gold", "EMPTY="},
			code: exitOK, stdout: []string{"created tenant-n.test"},
			check: func(t *testing.T, f *fixture, r result) {
				f.wantTenant(t, "tenant-n.test", 1, map[string]string{store.KeyPostgresURL: urlNew, "API_TOKEN": "s3cret", "PLAN": "gold", "EMPTY": ""})
			},
		},
		{
			name: "add an existing id", seed: []store.Tenant{tenantA}, args: []string{"tenants", "add", "tenant-a.test", urlNew},
			code: exitError, emptyOut: true, stderr: []string{`"tenant-a.test"`, "already exists; use tenants update tenant-a.test to change it"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "add with an uppercase id", args: []string{"tenants", "add", "Tenant-A", urlNew},
			code: exitError, emptyOut: true, stderr: []string{"tenant_id", `"Tenant-A"`, "lowercase"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "add with a bad character in the id", args: []string{"tenants", "add", "tenant/a", urlNew},
			code: exitError, emptyOut: true, stderr: []string{"tenant_id", "[a-z0-9._-]"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "add with a mysql URL", args: []string{"tenants", "add", "tenant-n.test", "mysql://app:hunter2@db/x"},
			code: exitError, emptyOut: true, stderr: []string{"POSTGRES_URL", "postgres://"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "add with a key=value DSN", args: []string{"tenants", "add", "tenant-n.test", "host=db user=app password=hunter2"},
			code: exitError, emptyOut: true, stderr: []string{"POSTGRES_URL", "postgres://"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "add with an unparsable URL", args: []string{"tenants", "add", "tenant-n.test", "postgres://app:hunter2/x@db/x"},
			code: exitError, emptyOut: true, stderr: []string{"POSTGRES_URL", "not a URL"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "add with a password in the query", args: []string{"tenants", "add", "tenant-n.test", "postgres://db/x?sslmode=disable&password=hunter2"},
			code: exitOK, stdout: []string{"password=xxxxx"},
		},
		{
			name: "add with an extra that is not KEY=VALUE", args: []string{"tenants", "add", "tenant-n.test", urlNew, "API_TOKEN:s3cret"},
			code: exitError, emptyOut: true, stderr: []string{"argument 1 after POSTGRES_URL", "KEY=VALUE"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "add with an extra without a key", args: []string{"tenants", "add", "tenant-n.test", urlNew, "=s3cret"},
			code: exitError, emptyOut: true, stderr: []string{"KEY=VALUE"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "add with a bad extra key", args: []string{"tenants", "add", "tenant-n.test", urlNew, "api-token=s3cret"},
			code: exitError, emptyOut: true, stderr: []string{"deploy_info", `"api-token"`},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "add with POSTGRES_URL as an extra", args: []string{"tenants", "add", "tenant-n.test", urlNew, "POSTGRES_URL=" + urlA},
			code: exitError, emptyOut: true, stderr: []string{"POSTGRES_URL as the second argument"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "add reading the URL from stdin", args: []string{"tenants", "add", "tenant-n.test", "-", "PLAN=gold"}, stdin: urlNew + "\n",
			code: exitOK, stdout: []string{"created tenant-n.test (store version 1, POSTGRES_URL " + shownNew + ")"},
			check: func(t *testing.T, f *fixture, r result) {
				f.wantTenant(t, "tenant-n.test", 1, map[string]string{store.KeyPostgresURL: urlNew, "PLAN": "gold"})
			},
		},
		{
			name: "stdin without a newline, with spaces", args: []string{"tenants", "add", "tenant-n.test", "-"}, stdin: "  " + urlNew + " ",
			code: exitOK, stdout: []string{"created tenant-n.test"},
			check: func(t *testing.T, f *fixture, r result) {
				f.wantTenant(t, "tenant-n.test", 1, map[string]string{store.KeyPostgresURL: urlNew})
			},
		},
		{
			name: "stdin reads one line only", args: []string{"tenants", "add", "tenant-n.test", "-"}, stdin: urlNew + "\nsomething else\n",
			code: exitOK,
			check: func(t *testing.T, f *fixture, r result) {
				f.wantTenant(t, "tenant-n.test", 1, map[string]string{store.KeyPostgresURL: urlNew})
			},
		},
		{
			name: "empty stdin", args: []string{"tenants", "add", "tenant-n.test", "-"},
			code: exitError, emptyOut: true, stderr: []string{"reading POSTGRES_URL from standard input"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "blank line on stdin", args: []string{"tenants", "add", "tenant-n.test", "-"}, stdin: "\n",
			code: exitError, emptyOut: true, stderr: []string{"POSTGRES_URL"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
	}
	runCases(t, cases)
}

func TestUpdate(t *testing.T) {
	replaced := map[string]string{store.KeyPostgresURL: urlNew, "TIER": "free"}
	cases := []cliCase{
		{
			name: "update replaces the deploy info", seed: []store.Tenant{tenantA, tenantB},
			args: []string{"tenants", "update", "tenant-a.test", urlNew, "TIER=free"},
			code: exitOK, stdout: []string{"updated tenant-a.test (store version 2, POSTGRES_URL " + shownNew + ")"},
			check: func(t *testing.T, f *fixture, r result) {
				f.wantTenant(t, "tenant-a.test", 2, replaced) // API_TOKEN and PLAN are gone
				f.wantTenant(t, "tenant-b.test", 1, tenantB.DeployInfo)
				g := f.run(t, "", "tenants", "get", "tenant-a.test")
				if g.code != exitOK || !strings.Contains(g.stdout, "\nstore_version: 2\n") || strings.Contains(g.stdout, "PLAN") {
					t.Errorf("get after update:\n%v", g)
				}
			},
		},
		{
			name: "update twice", seed: []store.Tenant{tenantA},
			args: []string{"tenants", "update", "tenant-a.test", urlNew, "TIER=free"}, code: exitOK,
			check: func(t *testing.T, f *fixture, r result) {
				if r := f.run(t, "", "tenants", "update", "tenant-a.test", urlA); r.code != exitOK || !strings.Contains(r.stdout, "version 3") {
					t.Errorf("second update:\n%v", r)
				}
				f.wantTenant(t, "tenant-a.test", 3, map[string]string{store.KeyPostgresURL: urlA})
			},
		},
		{
			name: "update at the current version", seed: []store.Tenant{tenantA},
			args: []string{"tenants", "update", "tenant-a.test", urlNew, "TIER=free", "--version", "1"},
			code: exitOK, stdout: []string{"updated tenant-a.test (store version 2"},
			check: func(t *testing.T, f *fixture, r result) { f.wantTenant(t, "tenant-a.test", 2, replaced) },
		},
		{
			name: "update at a stale version", seed: []store.Tenant{tenantA},
			args: []string{"tenants", "update", "--version", "5", "tenant-a.test", urlNew},
			// As the admin API's answer: which version is current, and
			// what to do about it.
			code: exitError, emptyOut: true, stderr: []string{`"tenant-a.test"`, "conflict", "current is 1",
				"; read the tenant again (tenantsql tenants get tenant-a.test) and retry with --version set to its current version"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "update of a missing tenant", seed: []store.Tenant{tenantA},
			args: []string{"tenants", "update", "tenant-n.test", urlNew},
			code: exitError, emptyOut: true, stderr: []string{`"tenant-n.test"`, "not found"},
			check: func(t *testing.T, f *fixture, r result) {
				f.unchanged(t)
				if _, ok := f.get(t, "tenant-n.test"); ok {
					t.Error("update created the tenant")
				}
			},
		},
		{
			name: "update reading the URL from stdin", seed: []store.Tenant{tenantA},
			args: []string{"tenants", "update", "tenant-a.test", "-", "TIER=free"}, stdin: urlNew + "\n",
			code: exitOK, stdout: []string{"updated tenant-a.test (store version 2, POSTGRES_URL " + shownNew + ")"},
			check: func(t *testing.T, f *fixture, r result) { f.wantTenant(t, "tenant-a.test", 2, replaced) },
		},
		{
			name: "update with an invalid URL", seed: []store.Tenant{tenantA},
			args: []string{"tenants", "update", "tenant-a.test", "mysql://app:hunter2@db/x"},
			code: exitError, emptyOut: true, stderr: []string{"POSTGRES_URL"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "update with a version that is not a number", seed: []store.Tenant{tenantA},
			args: []string{"tenants", "update", "tenant-a.test", urlNew, "--version", "two"},
			code: exitUsage, emptyOut: true, stderr: []string{"-version"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
	}
	runCases(t, cases)
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("stdout is not the JSON expected: %v\n%s", err, s)
	}
	return v
}

func TestGetAndList(t *testing.T) {
	wantRedactedA := map[string]string{store.KeyPostgresURL: shownA, "API_TOKEN": "xxxxx", "PLAN": "gold"}
	checkGetJSON := func(t *testing.T, f *fixture, r result) {
		got := decodeJSON[store.Tenant](t, r.stdout)
		if got.ID != "tenant-a.test" || got.Version != 1 || got.CreatedAt.IsZero() || got.UpdatedAt.IsZero() || !maps.Equal(got.DeployInfo, wantRedactedA) {
			t.Errorf("get --json = %+v, want tenant-a.test version 1 with %v", got, wantRedactedA)
		}
	}
	cases := []cliCase{
		{
			name: "get", seed: []store.Tenant{tenantA, tenantB}, args: []string{"tenants", "get", "tenant-a.test"},
			code: exitOK,
			stdout: []string{
				"tenant_id: tenant-a.test\n", "version: 1\n", "created_at: ", "updated_at: ", "deploy_info:\n",
				"  API_TOKEN: xxxxx\n  PLAN: gold\n  POSTGRES_URL: " + shownA + "\n",
			},
			notStdout: []string{"tenant-b.test"},
		},
		{name: "get --json before the id", seed: []store.Tenant{tenantA}, args: []string{"tenants", "get", "--json", "tenant-a.test"}, code: exitOK, check: checkGetJSON},
		{name: "get --json after the id", seed: []store.Tenant{tenantA}, args: []string{"tenants", "get", "tenant-a.test", "--json"}, code: exitOK, check: checkGetJSON},
		{name: "get -json", seed: []store.Tenant{tenantA}, args: []string{"tenants", "get", "-json", "tenant-a.test"}, code: exitOK, check: checkGetJSON},
		{
			name: "get of a missing tenant", seed: []store.Tenant{tenantA}, args: []string{"tenants", "get", "tenant-n.test"},
			code: exitError, emptyOut: true, stderr: []string{`"tenant-n.test"`, "not found"},
		},
		{
			name: "list", seed: []store.Tenant{tenantB, tenantA}, args: []string{"tenants", "list"},
			code: exitOK, stderr: []string{"2 tenants"},
			check: func(t *testing.T, f *fixture, r result) {
				lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
				if len(lines) != 3 {
					t.Fatalf("list printed %d lines, want a header and 2 tenants:\n%s", len(lines), r.stdout)
				}
				if h := strings.Fields(lines[0]); !slices.Equal(h, []string{"ID", "STORE_VERSION", "UPDATED", "POSTGRES_URL", "OTHER"}) {
					t.Errorf("header = %q", lines[0])
				}
				a, b := strings.Fields(lines[1]), strings.Fields(lines[2])
				if len(a) != 6 || a[0] != "tenant-a.test" || a[1] != "1" || a[3] != shownA || a[4] != "API_TOKEN=xxxxx" || a[5] != "PLAN=gold" {
					t.Errorf("first row = %q", lines[1])
				}
				if len(b) != 4 || b[0] != "tenant-b.test" || b[3] != "postgres://app:xxxxx@db/b" {
					t.Errorf("second row = %q", lines[2])
				}
			},
		},
		{
			name: "list of an empty store", args: []string{"tenants", "list"},
			code: exitOK, stdout: []string{"ID"}, stderr: []string{"0 tenants"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "list --json", seed: []store.Tenant{tenantB, tenantA}, args: []string{"tenants", "list", "--json"},
			code: exitOK,
			check: func(t *testing.T, f *fixture, r result) {
				got := decodeJSON[[]store.Tenant](t, r.stdout)
				if len(got) != 2 || got[0].ID != "tenant-a.test" || got[1].ID != "tenant-b.test" {
					t.Fatalf("list --json = %v", got)
				}
				if !maps.Equal(got[0].DeployInfo, wantRedactedA) || got[1].PostgresURL() != "postgres://app:xxxxx@db/b" {
					t.Errorf("list --json deploy info = %v, %v", got[0].DeployInfo, got[1].DeployInfo)
				}
			},
		},
		{
			name: "list --json of an empty store", args: []string{"tenants", "list", "--json"},
			code: exitOK, stdout: []string{"[]"},
		},
	}
	runCases(t, cases)
}

func TestRm(t *testing.T) {
	cases := []cliCase{
		{
			name: "rm", seed: []store.Tenant{tenantA, tenantB}, args: []string{"tenants", "rm", "tenant-a.test"},
			code: exitOK, stdout: []string{"deleted tenant-a.test"},
			check: func(t *testing.T, f *fixture, r result) {
				if ids := f.ids(t); !slices.Equal(ids, []string{"tenant-b.test"}) {
					t.Errorf("after rm the store holds %v", ids)
				}
			},
		},
		{
			name: "rm of a missing tenant", seed: []store.Tenant{tenantA}, args: []string{"tenants", "rm", "tenant-n.test"},
			code: exitOK, stdout: []string{"tenant-n.test", "nothing deleted"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
	}
	runCases(t, cases)
}

func TestLoad(t *testing.T) {
	// tenant-a.test as seeded (unchanged), tenant-b.test with another URL
	// (updated), tenant-c.test new (created); tenant-z.test is only in the
	// store and stays.
	config := `{
  "tenants": {
    "tenant-a.test": {"deploy_info": {"POSTGRES_URL": "` + urlA + `", "API_TOKEN": "s3cret", "PLAN": "gold"}},
    "tenant-b.test": {"deploy_info": {"POSTGRES_URL": "postgres://app:hunter2@db/b2"}},
    "tenant-c.test": {"deploy_info": {"POSTGRES_URL": "postgres://app:hunter2@db/c", "API_TOKEN": "s3cret"}}
  }
}`
	tenantZ := store.Tenant{ID: "tenant-z.test", DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://app:hunter2@db/z"}}
	seed := []store.Tenant{tenantA, tenantB, tenantZ}
	files := map[string]string{"tenant_config.json": config}
	checkLoaded := func(t *testing.T, f *fixture, r result) {
		f.wantTenant(t, "tenant-a.test", 1, tenantA.DeployInfo)
		f.wantTenant(t, "tenant-b.test", 2, map[string]string{store.KeyPostgresURL: "postgres://app:hunter2@db/b2"})
		f.wantTenant(t, "tenant-c.test", 1, map[string]string{store.KeyPostgresURL: "postgres://app:hunter2@db/c", "API_TOKEN": "s3cret"})
		f.wantTenant(t, "tenant-z.test", 1, tenantZ.DeployInfo)
	}
	cases := []cliCase{
		{
			name: "load", seed: seed, files: files, args: []string{"tenants", "load", "$DIR/tenant_config.json"},
			code:   exitOK,
			stdout: []string{"updated tenant-b.test (POSTGRES_URL postgres://app:xxxxx@db/b2)", "created tenant-c.test (POSTGRES_URL postgres://app:xxxxx@db/c)"},
			stderr: []string{"1 created, 1 updated, 1 unchanged, 0 failed"}, notStdout: []string{"tenant-a.test", "tenant-z.test"},
			check: func(t *testing.T, f *fixture, r result) {
				checkLoaded(t, f, r)
				again := f.run(t, "", "tenants", "load", filepath.Join(f.dir, "tenant_config.json"))
				if again.code != exitOK || !strings.Contains(again.stderr, "0 created, 0 updated, 3 unchanged, 0 failed") || again.stdout != "" {
					t.Errorf("loading the same file again:\n%v", again)
				}
			},
		},
		{
			name: "load into an empty store", files: files, args: []string{"tenants", "load", "$DIR/tenant_config.json"},
			code: exitOK, stderr: []string{"3 created, 0 updated, 0 unchanged, 0 failed"},
			check: func(t *testing.T, f *fixture, r result) {
				if ids := f.ids(t); !slices.Equal(ids, []string{"tenant-a.test", "tenant-b.test", "tenant-c.test"}) {
					t.Errorf("after load the store holds %v", ids)
				}
			},
		},
		{
			name: "load --dry-run", seed: seed, files: files, args: []string{"tenants", "load", "--dry-run", "$DIR/tenant_config.json"},
			code:   exitOK,
			stdout: []string{"would update tenant-b.test", "would create tenant-c.test"},
			stderr: []string{"dry run: 1 created, 1 updated, 1 unchanged, 0 failed"},
			check:  func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "load --dry-run after the file", seed: seed, files: files, args: []string{"tenants", "load", "$DIR/tenant_config.json", "--dry-run"},
			code: exitOK, stderr: []string{"dry run: 1 created, 1 updated, 1 unchanged, 0 failed"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "load --dry-run into a store file that does not exist yet", files: files, args: []string{"tenants", "load", "--dry-run", "$DIR/tenant_config.json"},
			code: exitOK, stderr: []string{"dry run: 3 created"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "load of a malformed file", seed: seed,
			files: map[string]string{"broken.json": strings.TrimSuffix(config, "}")},
			args:  []string{"tenants", "load", "$DIR/broken.json"},
			code:  exitError, emptyOut: true, stderr: []string{"$DIR/broken.json"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "load of a file with an invalid tenant", seed: seed,
			files: map[string]string{"invalid.json": `{"tenants": {"tenant-n.test": {"deploy_info": {"POSTGRES_URL": "mysql://app:hunter2@db/x"}}}}`},
			args:  []string{"tenants", "load", "$DIR/invalid.json"},
			code:  exitError, emptyOut: true, stderr: []string{"$DIR/invalid.json", `"tenant-n.test"`, "POSTGRES_URL"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
		{
			name: "load of a missing file", seed: seed, args: []string{"tenants", "load", "$DIR/missing.json"},
			code: exitError, emptyOut: true, stderr: []string{"$DIR/missing.json"},
			check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
		},
	}
	runCases(t, cases)
}

func TestResyncOnFileStore(t *testing.T) {
	runCases(t, []cliCase{{
		name: "resync", seed: []store.Tenant{tenantA}, args: []string{"tenants", "resync"},
		code: exitError, emptyOut: true, stderr: []string{"resync applies to a Redis store"},
		check: func(t *testing.T, f *fixture, r result) { f.unchanged(t) },
	}})
}

// TestRedis runs the commands against the test Redis server, under a key
// prefix of its own.
func TestRedis(t *testing.T) {
	url := testenv.WithQuery(testenv.RedisURL(t), "prefix", testenv.RedisPrefix(t))
	env := map[string]string{"TENANTSQL_STORE": url}
	steps := []struct {
		args   []string
		stdin  string
		code   int
		stdout []string
		stderr []string
	}{
		{args: []string{"tenants", "list"}, stdout: []string{"ID"}, stderr: []string{"0 tenants"}},
		{args: []string{"tenants", "add", "tenant-a.test", urlA, "API_TOKEN=s3cret"}, stdout: []string{"created tenant-a.test (store version 1, POSTGRES_URL " + shownA + ")"}},
		{args: []string{"tenants", "add", "tenant-n.test", "-"}, stdin: urlNew + "\n", stdout: []string{"created tenant-n.test"}},
		{args: []string{"tenants", "add", "tenant-a.test", urlA}, code: exitError, stderr: []string{"already exists"}},
		{args: []string{"tenants", "list"}, stdout: []string{"tenant-a.test", "tenant-n.test", shownA, "API_TOKEN=xxxxx"}, stderr: []string{"2 tenants"}},
		{args: []string{"tenants", "update", "tenant-a.test", urlNew, "--version", "1"}, stdout: []string{"updated tenant-a.test (store version 2"}},
		{args: []string{"tenants", "update", "tenant-a.test", urlA, "--version", "1"}, code: exitError, stderr: []string{"conflict"}},
		{args: []string{"tenants", "get", "--json", "tenant-a.test"}, stdout: []string{`"tenant_id": "tenant-a.test"`, `"version": 2`, shownNew}},
		{args: []string{"tenants", "resync"}, stdout: []string{"every process will now resync"}},
		{args: []string{"tenants", "list", "--json"}, stdout: []string{`"tenant-a.test"`, `"tenant-n.test"`}},
		{args: []string{"tenants", "rm", "tenant-n.test"}, stdout: []string{"deleted tenant-n.test"}},
		{args: []string{"tenants", "rm", "tenant-n.test"}, stdout: []string{"nothing deleted"}},
		{args: []string{"tenants", "list"}, stderr: []string{"1 tenants"}},
	}
	for _, st := range steps {
		r := runCLI(t, env, st.stdin, st.args...)
		if r.code != st.code {
			t.Fatalf("tenantsql %s: exit code %d, want %d\n%v", strings.Join(st.args, " "), r.code, st.code, r)
		}
		for _, s := range st.stdout {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("tenantsql %s: stdout does not contain %q\n%v", strings.Join(st.args, " "), s, r)
			}
		}
		for _, s := range st.stderr {
			if !strings.Contains(r.stderr, s) {
				t.Errorf("tenantsql %s: stderr does not contain %q\n%v", strings.Join(st.args, " "), s, r)
			}
		}
	}
}
