package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// These tests do the tutorial for real: they build the example, start it
// as a separate process on a random port, and talk to it over HTTP only.

const token = "e2e-token"

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hospital-e2e")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "hospital")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// buildWithPort builds the example with port as its default port (the
// one it listens on without --addr), for this test alone.
func buildWithPort(t *testing.T, port int) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hospital")
	out, err := exec.Command("go", "build", "-o", bin, "-ldflags", fmt.Sprintf("-X main.defaultPort=%d", port), ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// server is a running example process.
type server struct {
	t    *testing.T
	url  string
	cmd  *exec.Cmd
	logs *lockedBuffer
}

// log returns what the process wrote to its standard error so far.
func (s *server) log() string {
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	return s.logs.b.String()
}

func start(t *testing.T, storeURL string, extra ...string) *server {
	t.Helper()
	return startWith(t, nil, append([]string{"--store", storeURL, "--addr", "127.0.0.1:0"}, extra...)...)
}

// startWith starts the example with exactly args, and env added to the
// environment.
func startWith(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	return startBinary(t, build(t), env, args...)
}

// startBinary starts the example built as bin with exactly args, and env
// added to the environment.
func startBinary(t *testing.T, bin string, env []string, args ...string) *server {
	t.Helper()
	return startBinaryIn(t, bin, "", env, args...)
}

// startBinaryIn is startBinary in the working directory dir ("": the
// test's).
func startBinaryIn(t *testing.T, bin, dir string, env []string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "TENANTSQL_ADMIN_TOKEN="+token), env...)
	logs := &lockedBuffer{b: &bytes.Buffer{}}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, logs: logs}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.log())
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				lines <- u
			}
		}
	}()
	select {
	case s.url = <-lines:
	case <-time.After(60 * time.Second):
		t.Fatalf("the example did not start:\n%s", s.log())
	}
	return s
}

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// do sends a request and decodes the JSON answer.
func (s *server) do(method, path, tenant string, body any, auth bool) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tenant != "" {
		req.Header.Set("x-tenant-id", tenant)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	if strings.Contains(string(raw), "postgres:postgres@") || strings.Contains(string(raw), "sekret") {
		s.t.Errorf("%s %s answered with a password: %s", method, path, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		s.t.Fatalf("%s %s: %d, not JSON: %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func tenantURL(t *testing.T, db string) string { return testenv.DatabaseURL(t, db) }

func writeConfig(t *testing.T, tenants map[string]string) string {
	t.Helper()
	doc := map[string]any{"tenants": map[string]any{}}
	for id, u := range tenants {
		doc["tenants"].(map[string]any)[id] = map[string]any{"deploy_info": map[string]string{"POSTGRES_URL": u}}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tenant_config.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return "file:" + path
}

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	var ok bool
	if err := testenv.Admin(t).QueryRow("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func serverTables(t *testing.T, db string) []string {
	t.Helper()
	return schemaTables(t, db, "public")
}

// schemaTables returns the names of the tables in a schema of a database
// of the test server, in order.
func schemaTables(t *testing.T, db, schema string) []string {
	t.Helper()
	c, err := sql.Open("pgx", testenv.DatabaseURL(t, db))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rows, err := c.Query("SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1", schema)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// countRows runs a count query on a database of the test server.
func countRows(t *testing.T, db, query string) int {
	t.Helper()
	c, err := sql.Open("pgx", testenv.DatabaseURL(t, db))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var n int
	if err := c.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s on %s: %v", query, db, err)
	}
	return n
}

// The tutorial, part 3, on the file store: add tenant-2 over HTTP with a
// database that does not exist yet; the next request for it is answered
// from its own, already migrated, database.
func TestTutorial(t *testing.T) {
	testenv.PostgresURL(t)
	testenv.DropDatabase(t, testenv.Unique("tsql_hosp_1"))
	testenv.DropDatabase(t, testenv.Unique("tsql_hosp_2"))
	s := start(t, writeConfig(t, map[string]string{"tenant-1.test.com": tenantURL(t, testenv.Unique("tsql_hosp_1"))}))

	// tenant-1 was known at start-up: created and migrated then.
	code, body := s.do("POST", "/hospital/", "tenant-1.test.com", map[string]string{"name": "St. Mary", "city": "Leeds"}, false)
	if code != http.StatusCreated {
		t.Fatalf("POST /hospital/ for tenant-1: %d %v", code, body)
	}

	code, body = s.do("POST", "/api/tenant/", "", map[string]any{
		"tenant_id":   "tenant-2.test.com",
		"deploy_info": map[string]string{"POSTGRES_URL": tenantURL(t, testenv.Unique("tsql_hosp_2"))},
	}, true)
	if code != http.StatusCreated || body["tenant_id"] != "tenant-2.test.com" || body["lifecycle_event"] != "tenant_create" {
		t.Fatalf("POST /api/tenant/: %d %v", code, body)
	}

	// The very next request, with no wait: the tutorial's promise.
	code, body = s.do("GET", "/hospital/", "tenant-2.test.com", nil, false)
	if code != http.StatusOK || fmt.Sprint(body["data"]) != "[]" || body["tenant_id"] != "tenant-2.test.com" {
		t.Fatalf(`GET /hospital/ for tenant-2: %d %v; want {"data": [], "tenant_id": "tenant-2.test.com"}`, code, body)
	}
	if !databaseExists(t, testenv.Unique("tsql_hosp_2")) || !strings.Contains(strings.Join(serverTables(t, testenv.Unique("tsql_hosp_2")), ","), "hospital") {
		t.Fatalf("tenant-2's database was not created and migrated: tables %v", serverTables(t, testenv.Unique("tsql_hosp_2")))
	}

	// tenant-1 still answers its own rows, and only its own.
	code, body = s.do("GET", "/hospital/", "tenant-1.test.com", nil, false)
	data, _ := body["data"].([]any)
	if code != http.StatusOK || len(data) != 1 || data[0].(map[string]any)["name"] != "St. Mary" {
		t.Fatalf("GET /hospital/ for tenant-1: %d %v", code, body)
	}
	if code, body := s.do("POST", "/hospital/", "tenant-2.test.com", map[string]string{"name": "General"}, false); code != http.StatusCreated {
		t.Fatalf("POST for tenant-2: %d %v", code, body)
	}
	_, body = s.do("GET", "/hospital/", "tenant-1.test.com", nil, false)
	if data, _ := body["data"].([]any); len(data) != 1 {
		t.Fatalf("tenant-1 sees %d hospitals after tenant-2 added one", len(data))
	}

	// The tutorial's move: PUT tenant-2 to a database that does not exist
	// yet; the very next request is answered from it, created and
	// migrated, not from the old one and not before its tables exist.
	testenv.DropDatabase(t, testenv.Unique("tsql_hosp_2b"))
	code, body = s.do("PUT", "/api/tenant/tenant-2.test.com/", "", map[string]any{
		"deploy_info": map[string]string{"POSTGRES_URL": tenantURL(t, testenv.Unique("tsql_hosp_2b"))},
	}, true)
	if code != http.StatusOK || body["lifecycle_event"] != "tenant_update" {
		t.Fatalf("PUT /api/tenant/tenant-2.test.com/: %d %v", code, body)
	}
	code, body = s.do("GET", "/hospital/", "tenant-2.test.com", nil, false)
	if code != http.StatusOK || fmt.Sprint(body["data"]) != "[]" {
		t.Fatalf(`GET /hospital/ for tenant-2 right after its move: %d %v; want {"data": [], ...} from the new database`, code, body)
	}
	if code, body := s.do("POST", "/hospital/", "tenant-2.test.com", map[string]string{"name": "Moved"}, false); code != http.StatusCreated {
		t.Fatalf("POST for tenant-2 after its move: %d %v", code, body)
	}
	if n := countRows(t, testenv.Unique("tsql_hosp_2b"), "SELECT count(*) FROM hospital WHERE name = 'Moved'"); n != 1 {
		t.Fatalf("the row written after the move is not in the new database (%d rows there)", n)
	}
	if n := countRows(t, testenv.Unique("tsql_hosp_2"), "SELECT count(*) FROM hospital WHERE name = 'Moved'"); n != 0 {
		t.Fatalf("the row written after the move is in the old database")
	}

	// The edges of the tutorial.
	if code, body := s.do("GET", "/hospital/", "", nil, false); code != http.StatusBadRequest {
		t.Errorf("no x-tenant-id: %d %v", code, body)
	}
	if code, body := s.do("GET", "/hospital/", "tenant-9.test.com", nil, false); code != http.StatusNotFound {
		t.Errorf("unknown tenant: %d %v", code, body)
	}
	if code, body := s.do("POST", "/api/tenant/", "", map[string]any{"tenant_id": "x.test"}, false); code != http.StatusUnauthorized {
		t.Errorf("admin API without a token: %d %v", code, body)
	}
	code, body = s.do("GET", "/api/health-check/", "", nil, true)
	if code != http.StatusOK {
		t.Errorf("health check: %d %v", code, body)
	}
	if !strings.Contains(fmt.Sprint(body), "tenant-2.test.com") {
		t.Errorf("health check does not list tenant-2: %v", body)
	}
}

// Two instances on one Redis: a tenant created through one is served by
// the other; an update and a delete through the API take effect on both.
func TestTwoInstancesOnRedis(t *testing.T) {
	testenv.PostgresURL(t)
	redisURL := testenv.WithQuery(testenv.RedisURL(t), "prefix", testenv.RedisPrefix(t))
	for _, db := range []string{testenv.Unique("tsql_hosp_r2"), testenv.Unique("tsql_hosp_r3")} {
		testenv.DropDatabase(t, db)
	}
	a := start(t, redisURL)
	b := start(t, redisURL)
	const id = "tenant-r.test.com"

	if code, body := a.do("POST", "/api/tenant/", "", map[string]any{"tenant_id": id, "deploy_info": map[string]string{"POSTGRES_URL": tenantURL(t, testenv.Unique("tsql_hosp_r2"))}}, true); code != http.StatusCreated {
		t.Fatalf("create through a: %d %v", code, body)
	}
	if code, body := b.do("POST", "/hospital/", id, map[string]string{"name": "in r2"}, false); code != http.StatusCreated {
		t.Fatalf("first request through b: %d %v", code, body)
	}
	if code, body := a.do("GET", "/hospital/", id, nil, false); code != http.StatusOK || len(body["data"].([]any)) != 1 {
		t.Fatalf("a does not see what b wrote: %d %v", code, body)
	}

	// Move the tenant to a new database through b.
	if code, body := b.do("PUT", "/api/tenant/"+id+"/", "", map[string]any{"deploy_info": map[string]string{"POSTGRES_URL": tenantURL(t, testenv.Unique("tsql_hosp_r3"))}}, true); code != http.StatusOK || body["lifecycle_event"] != "tenant_update" {
		t.Fatalf("update through b: %d %v", code, body)
	}
	for _, s := range []*server{a, b} {
		eventually(t, 20*time.Second, "both instances to serve the new, empty database", func() bool {
			code, body := s.do("GET", "/hospital/", id, nil, false)
			data, ok := body["data"].([]any)
			return code == http.StatusOK && ok && len(data) == 0
		})
	}

	if code, body := a.do("DELETE", "/api/tenant/"+id+"/", "", nil, true); code != http.StatusOK || body["lifecycle_event"] != "tenant_delete" {
		t.Fatalf("delete through a: %d %v", code, body)
	}
	for _, s := range []*server{a, b} {
		eventually(t, 10*time.Second, "both instances to refuse the deleted tenant", func() bool {
			code, _ := s.do("GET", "/hospital/", id, nil, false)
			return code == http.StatusNotFound
		})
	}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, timeout, what, cond)
}
