package main

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/internal/readme"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// TestReadmeTutorial follows README.md's "## Tutorial" literally: it runs
// every command of its sh blocks through bash, in order, from the
// repository root, and compares what each prints with the "# ..." lines
// under it ("..." stands for any text, such as a timestamp). A command
// with no such lines must exit 0 and not print a JSON error. Each block
// runs against the example that the last `make run-example...` named in
// the text before it starts, started as that Makefile target starts it
// (its tenant file copied into a directory of its own, the token
// dev-token).
//
// So that runs side by side, and a developer's own `make run-example`,
// never meet, the commands are rewritten before they run, in these ways
// only (rewrite):
//
//   - localhost:8000 is the port of the example the test started; other
//     ports of the form 80NN (the Redis part's :8001 and :8002) are free
//     ports of the test's choosing;
//   - postgres://postgres:postgres@127.0.0.1:5432/NAME is database NAME
//     with this test process's suffix (testenv.Unique) on the test
//     server, its query kept;
//   - redis://127.0.0.1:6379/0?prefix=NAME is the test Redis with a
//     prefix of this test's own;
//   - examples/hospital/FILE.json is a copy of it with its URLs rewritten
//     as above (the example's tenant files, used by make run-example and
//     by "tenants load");
//   - go run ./cmd/tenantsql and go run ./examples/hospital are binaries
//     built from them once, and "go run ./examples/hospital ARGS &"
//     returns once the instance listens, as a reader would wait for it
//     before the next command.
//
// Tenant ids, schema names, the token and everything else are as written.
// At the end every database the tutorial's URLs name must exist on the
// server: the example created them, and DELETE keeps them.
func TestReadmeTutorial(t *testing.T) {
	testenv.PostgresURL(t)
	md, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	tut := &tutorial{t: t, dir: t.TempDir(), dbs: map[string]bool{}}
	var blocks []readme.Block
	for _, b := range readme.Blocks(md) {
		if b.Lang == "sh" && b.Section == "Tutorial" {
			blocks = append(blocks, b)
		}
	}
	if len(blocks) < 3 {
		t.Fatalf("README.md's ## Tutorial has %d sh blocks: the README or the parser is broken", len(blocks))
	}
	lines := strings.Split(string(md), "\n")
	for _, b := range blocks {
		target := lastTarget(lines[:b.Line-1])
		if target == "" {
			t.Fatalf("README.md:%d: no `make run-example...` before this block says which example it runs against", b.Line)
		}
		t.Run(fmt.Sprintf("README.md:%d", b.Line), func(t *testing.T) {
			tut.runBlock(t, b, target)
		})
	}
	for db := range tut.dbs {
		if !databaseExists(t, db) {
			t.Errorf("database %s, named by the tutorial, does not exist on the server after it: the example should have created it, and DELETE keeps it", db)
		}
	}
}

var targetRE = regexp.MustCompile("`make (run-example[a-z-]*)`")

// lastTarget returns the last `make run-example...` target lines name.
func lastTarget(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if m := targetRE.FindAllStringSubmatch(lines[i], -1); m != nil {
			return m[len(m)-1][1]
		}
	}
	return ""
}

type tutorial struct {
	t   *testing.T
	dir string

	mu      sync.Mutex
	dbs     map[string]bool    // databases the rewritten URLs name
	servers map[string]*server // by make target
	ports   map[string]int     // the port each target's example listens on
	cli     string             // the tenantsql binary
	redis   string             // the rewritten Redis URL
}

// runBlock runs b's commands in one bash process against the example of
// the make target.
func (tut *tutorial) runBlock(t *testing.T, b readme.Block, target string) {
	port := tut.example(t, target)
	cmds := readme.Commands(b.Text)
	ports := map[string]string{"8000": strconv.Itoa(port)}
	var script strings.Builder
	logs := t.TempDir()
	fmt.Fprintf(&script, "HOSPITAL_BIN=%q; TENANTSQL_BIN=%q; LOGS=%q; n=0\n", build(t), tut.cliBinary(t), logs)
	// A background instance is up when it prints its address; wait for
	// that (at most a minute), as a reader would before the next command.
	script.WriteString(`start_hospital() {
  n=$((n+1))
  "$HOSPITAL_BIN" "$@" >"$LOGS/hospital.$n.log" 2>&1 &
  for i in $(seq 1200); do
    grep -q '^listening on ' "$LOGS/hospital.$n.log" && return 0
    kill -0 $! 2>/dev/null || break
    sleep 0.05
  done
  echo "the example did not start:" >&2; cat "$LOGS/hospital.$n.log" >&2; return 1
}
`)
	for i, c := range cmds {
		if w := c.Words(); len(w) > 0 && w[0] == "make" {
			// make run-example and the like serve until stopped: the
			// blocks run against the example the test starts instead.
			t.Fatalf("README.md:%d: `%s`: the Tutorial's sh blocks are run as written, and a make target would not return. Name it in the prose, as `make run-example` is (TestReadmeTutorial starts the example it names), or teach examples/hospital/readme_test.go how to run it", b.Line, strings.TrimSpace(c.Text))
		}
		fmt.Fprintf(&script, "%s\nprintf '\\n@@readme-end %d %%s\\n' \"$?\"\n", tut.rewrite(t, c.Text, ports), i)
	}

	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "TENANTSQL_ADMIN_TOKEN=", "STORE=")
	// Its own process group, so that the instances it starts in the
	// background end with the block.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	defer func() {
		stopGroup(pgid)
		if t.Failed() {
			for _, f := range must(filepath.Glob(filepath.Join(logs, "*.log"))) {
				b, _ := os.ReadFile(f)
				t.Logf("%s:\n%s", filepath.Base(f), b)
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("bash: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("the block did not finish within 5 minutes; output so far:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}

	outs := splitOutputs(stdout.String())
	for i, c := range cmds {
		where := fmt.Sprintf("README.md:%d: `%s`", b.Line, strings.TrimSpace(c.Text))
		o, ok := outs[i]
		if !ok {
			t.Errorf("%s: did not run (stderr:\n%s)", where, stderr.String())
			continue
		}
		if o.status != "0" {
			t.Errorf("%s: exit status %s; it printed %q (stderr:\n%s)", where, o.status, o.text, stderr.String())
			continue
		}
		got := strings.Split(strings.TrimSpace(o.text), "\n")
		if len(c.Output) == 0 {
			if strings.HasPrefix(strings.TrimSpace(o.text), `{"error"`) {
				t.Errorf("%s: answered with an error: %s", where, o.text)
			}
			continue
		}
		if len(got) != len(c.Output) {
			t.Errorf("%s printed %d lines, the README shows %d:\n got: %s\nwant: %s", where, len(got), len(c.Output), strings.Join(got, "\n      "), strings.Join(c.Output, "\n      "))
			continue
		}
		for j, want := range c.Output {
			if !readme.Match(want, got[j]) {
				t.Errorf("%s printed\n  %s\nthe README shows (\"...\" is any text)\n  %s", where, got[j], want)
			}
		}
	}
}

type output struct{ text, status string }

// splitOutputs splits the block's standard output at the marker each
// command is followed by.
func splitOutputs(s string) map[int]output {
	out := map[int]output{}
	re := regexp.MustCompile(`(?m)^@@readme-end (\d+) (\d+)$`)
	prev := 0
	for _, m := range re.FindAllStringSubmatchIndex(s, -1) {
		i, _ := strconv.Atoi(s[m[2]:m[3]])
		out[i] = output{text: s[prev:m[0]], status: s[m[4]:m[5]]}
		prev = m[1]
	}
	return out
}

// stopGroup ends the process group pgid: SIGTERM (the example shuts down
// cleanly on it), then SIGKILL if it is still there after 15 s.
func stopGroup(pgid int) {
	if syscall.Kill(-pgid, syscall.SIGTERM) != nil {
		return
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
			return
		}
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
}

var (
	pgURLRE    = regexp.MustCompile(`postgres://postgres:postgres@127\.0\.0\.1:5432/([a-z0-9_]+)(\?[^\s"'\\]*)?`)
	redisURLRE = regexp.MustCompile(`redis://127\.0\.0\.1:6379/0(\?prefix=[a-z0-9_-]+)?`)
	portRE     = regexp.MustCompile(`(localhost)?:(80\d\d)\b`)
	fileRE     = regexp.MustCompile(`examples/hospital/([a-z_]+\.json)`)
	startRE    = regexp.MustCompile(`(?m)^go run \./examples/hospital (.*)&\s*$`)
)

// rewrite applies the rewrites of TestReadmeTutorial's documentation to
// a command; ports maps the README's ports to the test's.
func (tut *tutorial) rewrite(t *testing.T, s string, ports map[string]string) string {
	s = portRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := portRE.FindStringSubmatch(m)
		p, ok := ports[sub[2]]
		if !ok {
			p = strconv.Itoa(freePort(t))
			ports[sub[2]] = p
		}
		return sub[1] + ":" + p
	})
	s = fileRE.ReplaceAllStringFunc(s, func(m string) string {
		return tut.rewrittenFile(t, fileRE.FindStringSubmatch(m)[1])
	})
	s = startRE.ReplaceAllString(s, "start_hospital $1")
	s = strings.ReplaceAll(s, "go run ./cmd/tenantsql", `"$TENANTSQL_BIN"`)
	return tut.rewriteURLs(t, s)
}

// rewriteURLs rewrites the PostgreSQL and Redis URLs of s.
func (tut *tutorial) rewriteURLs(t *testing.T, s string) string {
	s = pgURLRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := pgURLRE.FindStringSubmatch(m)
		name := testenv.Unique("tsql_tut_" + sub[1])
		var params []string
		q, err := url.ParseQuery(strings.TrimPrefix(sub[2], "?"))
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		for _, k := range slices.Sorted(maps.Keys(q)) {
			params = append(params, k, q.Get(k))
		}
		tut.mu.Lock()
		if !tut.dbs[name] {
			tut.dbs[name] = true
			testenv.DropDatabase(t, name) // a killed run's leftover
			tut.t.Cleanup(func() { testenv.DropDatabase(tut.t, name) })
		}
		tut.mu.Unlock()
		return testenv.DatabaseURL(t, name, params...)
	})
	return redisURLRE.ReplaceAllStringFunc(s, func(string) string {
		if tut.redis == "" {
			tut.redis = testenv.WithQuery(testenv.RedisURL(t), "prefix", testenv.RedisPrefix(t))
		}
		return tut.redis
	})
}

// rewrittenFile returns the path of a copy of examples/hospital/name
// with its URLs rewritten.
func (tut *tutorial) rewrittenFile(t *testing.T, name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("the tutorial names examples/hospital/%s: %v", name, err)
	}
	path := filepath.Join(tut.dir, "rewritten", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(tut.rewriteURLs(t, string(b))), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var (
	makeCopyRE = regexp.MustCompile(`\bcp (examples/hospital/[a-z_]+\.json) \.run/([a-z_]+\.json)`)
	makeRunRE  = regexp.MustCompile(`\bexec \./hospital\b(.*)$`)
)

// example starts, once, the example as the make target does, and returns
// the port it listens on. The target's recipe copies a tenant file into
// .run/ and runs the example there; the test does the same in a
// directory of its own, with the file's URLs rewritten and the example
// built to listen on a free port instead of 8000.
func (tut *tutorial) example(t *testing.T, target string) int {
	tut.mu.Lock()
	port, ok := tut.ports[target]
	tut.mu.Unlock()
	if ok {
		return port
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	recipe := regexp.MustCompile(`(?ms)^` + regexp.QuoteMeta(target) + `:[^\n]*\n((?:\t[^\n]*\n)+)`).FindSubmatch(mk)
	if recipe == nil {
		t.Fatalf("the README names `make %s`, which the Makefile does not define", target)
	}
	var file, dest string
	var args []string
	for _, l := range strings.Split(string(recipe[1]), "\n") {
		if m := makeCopyRE.FindStringSubmatch(l); m != nil {
			file, dest = m[1], m[2]
		}
		if m := makeRunRE.FindStringSubmatch(l); m != nil {
			args = strings.Fields(m[1])
		}
	}
	if file == "" || args == nil && !makeRunRE.Match(recipe[1]) {
		t.Fatalf("make %s's recipe no longer copies examples/hospital/FILE.json to .run/ and execs ./hospital, built from ./examples/hospital, there:\n%s\nTeach TestReadmeTutorial (examples/hospital/readme_test.go) how it starts the example now.", target, recipe[1])
	}
	dir := filepath.Join(tut.dir, target)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tut.rewrittenFile(t, strings.TrimPrefix(file, "examples/hospital/")), filepath.Join(dir, dest)); err != nil {
		t.Fatal(err)
	}
	port = freePort(t)
	s := startBinaryIn(tut.t, buildWithPort(t, port), dir, []string{"TENANTSQL_ADMIN_TOKEN=dev-token"}, args...)
	tut.mu.Lock()
	if tut.ports == nil {
		tut.ports, tut.servers = map[string]int{}, map[string]*server{}
	}
	tut.ports[target], tut.servers[target] = port, s
	tut.mu.Unlock()
	return port
}

// cliBinary builds ./cmd/tenantsql once.
func (tut *tutorial) cliBinary(t *testing.T) string {
	if tut.cli != "" {
		return tut.cli
	}
	bin := filepath.Join(tut.dir, "tenantsql")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tenantsql")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tenantsql: %v\n%s", err, out)
	}
	tut.cli = bin
	return bin
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
