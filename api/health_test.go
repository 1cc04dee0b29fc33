package api

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

func TestHealthStoreOnly(t *testing.T) {
	e := newEnv(t, nil)
	mustCreate(t, e.s, "t1.test", pgURL("10.0.0.1/one"))
	w := e.do(request{method: "GET", path: "/health-check/"})
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"status":"ok","store":{"result":true,"msg":"ok"}}` {
		t.Errorf("memory store: %d %s", w.Code, w.Body)
	}

	synced := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		status store.Status
		want   int
		body   string
	}{
		{"following", store.Status{Connected: true, Version: 7, LastSync: synced}, 200,
			`{"status":"ok","store":{"result":true,"msg":"ok","connected":true,"version":7,"last_sync":"2026-01-02T03:04:05Z","last_error":"","data_loss":false}}`},
		{"never synced", store.Status{Connected: false, LastError: "store: redis: connection refused"}, 200,
			`{"status":"ok","store":{"result":true,"msg":"ok","connected":false,"version":0,"last_error":"store: redis: connection refused","data_loss":false}}`},
		{"data loss", store.Status{Connected: true, Version: 2, LastSync: synced, DataLoss: true}, 503,
			`{"status":"unavailable","store":{"result":false,"msg":"the store came back without data it had (data_loss): restore the tenants, or accept the loss","connected":true,"version":2,"last_sync":"2026-01-02T03:04:05Z","last_error":"","data_loss":true}}`},
	}
	for _, tt := range tests {
		e := newEnv(t, reportingStore{Store: store.NewMemory(), status: tt.status})
		w := e.do(request{method: "GET", path: "/health-check"})
		if w.Code != tt.want || strings.TrimSpace(w.Body.String()) != tt.body {
			t.Errorf("%s: %d %s\nwant %d %s", tt.name, w.Code, w.Body, tt.want, tt.body)
		}
	}
}

// TestHealthWithoutTenants needs no database: with no tenants, or a store
// that cannot list them, nothing is probed.
func TestHealthWithoutTenants(t *testing.T) {
	unused := &sql.DB{}
	e := newEnv(t, nil, WithHealth(unused))
	w := e.do(request{method: "GET", path: "/health-check/"})
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"status":"ok","store":{"result":true,"msg":"ok"},"tenants":{}}` {
		t.Errorf("no tenants: %d %s", w.Code, w.Body)
	}
	e = newEnv(t, failingStore{store.NewMemory()}, WithHealth(unused))
	w = e.do(request{method: "GET", path: "/health-check/"})
	if w.Code != 503 || strings.TrimSpace(w.Body.String()) != `{"status":"unavailable","store":{"result":false,"msg":"the tenant store is unreachable (the cause is in the server log)"}}` {
		t.Errorf("failing store: %d %s", w.Code, w.Body)
	}
}

type healthAnswerForTest struct {
	Status  string
	Store   struct{ Result bool }
	Tenants map[string]struct {
		Result           bool
		Msg              string
		MigrationVersion *int64 `json:"migration_version"`
	}
}

func TestHealthTenants(t *testing.T) {
	testenv.PostgresURL(t)
	testenv.EnsureDatabases(t, "tsql_api_0", "tsql_api_1")
	testenv.ResetSchema(t, "tsql_api_0")
	testenv.ResetSchema(t, "tsql_api_1")
	ctx := context.Background()

	// tsql_api_0 has been migrated to 20240315 (goose keeps version 0
	// and rolled-back rows too); tsql_api_1 never was, but has a table
	// of its own in schema app.
	admin0, err := sql.Open("pgx", testenv.DatabaseURL(t, "tsql_api_0"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin0.Close()
	if _, err := admin0.ExecContext(ctx, `
		CREATE TABLE goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp DEFAULT now());
		INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true), (20240101, true), (20240315, true)`); err != nil {
		t.Fatal(err)
	}
	admin1, err := sql.Open("pgx", testenv.DatabaseURL(t, "tsql_api_1"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin1.Close()
	if _, err := admin1.ExecContext(ctx, `
		DROP SCHEMA IF EXISTS app CASCADE;
		CREATE SCHEMA app;
		CREATE TABLE app."Versions" (version_id bigint NOT NULL);
		INSERT INTO app."Versions" VALUES (3), (4)`); err != nil {
		t.Fatal(err)
	}

	const down = "sekret"
	mem := store.NewMemory()
	mustCreate(t, mem, "db0.test", testenv.DatabaseURL(t, "tsql_api_0", "application_name", "tsql_api_health"))
	mustCreate(t, mem, "db1.test", testenv.DatabaseURL(t, "tsql_api_1", "application_name", "tsql_api_health"))
	mustCreate(t, mem, "down.test", "postgres://u:"+down+"@127.0.0.1:1/x?connect_timeout=2")

	logs := &logBuffer{}
	c, err := driver.NewConnector(mem, driver.WithHooks(nil), driver.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	defer func() { assertNoSecret(t, "driver log", strings.ReplaceAll(logs.String(), down, secret)) }()

	e := newEnv(t, mem, WithHealth(db, WithHealthTimeout(10*time.Second)))
	w := e.do(request{method: "GET", path: "/health-check/"})
	if strings.Contains(w.Body.String(), down) {
		t.Errorf("answer holds the password: %s", w.Body)
	}
	var ans healthAnswerForTest
	decode(t, w, &ans)
	if w.Code != http.StatusServiceUnavailable || ans.Status != "unavailable" || !ans.Store.Result || len(ans.Tenants) != 3 {
		t.Fatalf("health with a tenant down: %d %s", w.Code, w.Body)
	}
	if got := ans.Tenants["db0.test"]; !got.Result || got.Msg != "ok" || got.MigrationVersion == nil || *got.MigrationVersion != 20240315 {
		t.Errorf("db0.test: %+v, want ok and version 20240315", got)
	}
	if got := ans.Tenants["db1.test"]; !got.Result || got.Msg != "ok" || got.MigrationVersion != nil {
		t.Errorf("db1.test: %+v, want ok and no version", got)
	}
	if got := ans.Tenants["down.test"]; got.Result || got.Msg == "" || got.Msg == "ok" || got.MigrationVersion != nil {
		t.Errorf("down.test: %+v, want a failure", got)
	}
	if !strings.Contains(w.Body.String(), `"migration_version":null`) {
		t.Errorf("a missing version is not null: %s", w.Body)
	}
	t.Logf("down.test: %s", ans.Tenants["down.test"].Msg)
	if strings.Contains(e.logs.String(), down) {
		t.Errorf("log holds the password:\n%s", e.logs)
	}

	// Without the broken tenant all is well.
	if _, err := mem.Delete(ctx, "down.test"); err != nil {
		t.Fatal(err)
	}
	w = e.do(request{method: "GET", path: "/health-check"})
	ans = healthAnswerForTest{}
	decode(t, w, &ans)
	if w.Code != http.StatusOK || ans.Status != "ok" || len(ans.Tenants) != 2 {
		t.Errorf("health when all is well: %d %s", w.Code, w.Body)
	}

	// Another table, quoted: found in tsql_api_1; tsql_api_0 has no
	// schema app, which counts as never migrated.
	e = newEnv(t, mem, WithHealth(db, WithMigrationTable(`app.Versions`)))
	w = e.do(request{method: "GET", path: "/health-check/"})
	ans = healthAnswerForTest{}
	decode(t, w, &ans)
	if w.Code != http.StatusOK {
		t.Fatalf("health with app.Versions: %d %s", w.Code, w.Body)
	}
	if got := ans.Tenants["db1.test"].MigrationVersion; got == nil || *got != 4 {
		t.Errorf("db1.test with app.Versions: %s", w.Body)
	}
	if got := ans.Tenants["db0.test"]; !got.Result || got.MigrationVersion != nil {
		t.Errorf("db0.test with app.Versions: %s", w.Body)
	}
}

// TestHealthTimeoutAndConcurrency points tenants at a server that accepts
// connections and never answers.
func TestHealthTimeoutAndConcurrency(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()

	const n, timeout = 4, 300 * time.Millisecond
	mem := store.NewMemory()
	for i := range n {
		mustCreate(t, mem, fmt.Sprintf("hung%d.test", i), pgURL(l.Addr().String()+"/x?sslmode=disable"))
	}
	c, err := driver.NewConnector(mem, driver.WithHooks(nil), driver.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()

	for _, conc := range []int{1, n} {
		e := newEnv(t, mem, WithHealth(db, WithHealthTimeout(timeout), WithHealthConcurrency(conc)))
		start := time.Now()
		w := e.do(request{method: "GET", path: "/health-check/"})
		took := time.Since(start)
		var ans healthAnswerForTest
		decode(t, w, &ans)
		if w.Code != http.StatusServiceUnavailable || len(ans.Tenants) != n {
			t.Fatalf("concurrency %d: %d %s", conc, w.Code, w.Body)
		}
		for id, th := range ans.Tenants {
			if th.Result || th.Msg != "no answer within 300ms" {
				t.Errorf("concurrency %d, %s: %+v", conc, id, th)
			}
		}
		// One at a time takes n timeouts; all at once about one.
		if conc == 1 && took < n*timeout {
			t.Errorf("concurrency 1 took %v, less than %d timeouts", took, n)
		}
		if conc == n && took >= n*timeout {
			t.Errorf("concurrency %d took %v, as long as one at a time", n, took)
		}
	}
}

// TestHealthShowsCauseWithoutPassword adds, through the API, a tenant
// whose password is also its user name, as in the README's
// postgres:postgres, and whose role the server does not know: the health
// check shows the server's own cause, with the password (and so the
// user name) masked, instead of withholding it.
func TestHealthShowsCauseWithoutPassword(t *testing.T) {
	testenv.EnsureDatabases(t, "tsql_api_0")
	const pw = "tsql_no_such_role"
	u, err := url.Parse(testenv.DatabaseURL(t, "tsql_api_0", "application_name", "tsql_api_health"))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(pw, pw)

	mem := store.NewMemory()
	c, err := driver.NewConnector(mem, driver.WithHooks(nil), driver.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	e := newEnv(t, mem, WithHealth(db, WithHealthTimeout(10*time.Second)))
	if w := e.do(request{method: "POST", path: "/tenant/", body: createBody("norole.test", u.String())}); w.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}

	w := e.do(request{method: "GET", path: "/health-check/"})
	var ans healthAnswerForTest
	decode(t, w, &ans)
	got := ans.Tenants["norole.test"]
	t.Logf("norole.test: %s", got.Msg)
	if w.Code != http.StatusServiceUnavailable || got.Result {
		t.Fatalf("health: %d %s, want 503 and a failure", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), pw) {
		t.Errorf("answer holds the password: %s", w.Body)
	}
	// The server's cause: the role does not exist (28000), or, on a
	// server that asks for a password first, authentication failed
	// (28P01); either way quoting the role, masked.
	for _, want := range []string{"failed to connect to", "user=xxxxx", "SQLSTATE 28", "xxxxx"} {
		if !strings.Contains(got.Msg, want) {
			t.Errorf("message %q lacks %q", got.Msg, want)
		}
	}
	if strings.Contains(got.Msg, "withheld") {
		t.Errorf("message %q withholds the cause", got.Msg)
	}
	// The log shows the tenant's URL, redacted: the user name stays (it
	// is no secret there, where it is not in a password's place).
	if strings.Contains(e.logs.String(), ":"+pw+"@") {
		t.Errorf("log holds the password:\n%s", e.logs)
	}
}
