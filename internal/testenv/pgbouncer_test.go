package testenv

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if os.Getenv("TENANTSQL_TESTENV_PGBOUNCER_CHILD") != "" {
		os.Exit(pgBouncerChild())
	}
	Main(m)
}

// The test PgBouncer answers, in transaction mode, with the pool size it
// is meant to have, forwards a database name to the same database on the
// test server, passes application_name on, and is one per binary.
func TestPgBouncer(t *testing.T) {
	u := PgBouncer(t)
	if again := PgBouncer(t); again != u {
		t.Fatalf("a second PgBouncer call gave %s, the first %s: want one per binary", again, u)
	}
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	if got := pu.Query().Get("default_query_exec_mode"); got != PgBouncerExecMode {
		t.Errorf("URL %s has default_query_exec_mode %q, want %q", u, got, PgBouncerExecMode)
	}
	direct, err := url.Parse(PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	if pu.Host == direct.Host {
		t.Fatalf("the PgBouncer URL %s names the test server itself (%s)", u, direct.Host)
	}

	app := fmt.Sprintf("tsql-pgb-%d", os.Getpid())
	db, err := sql.Open("pgx", PgBouncerURL(t, "postgres", "application_name", app))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var name, gotApp string
	var n int
	// A parameter, so the extended protocol in exec mode is what runs.
	if err := db.QueryRowContext(ctx, "SELECT current_database(), current_setting('application_name'), $1::int + 1", 41).Scan(&name, &gotApp, &n); err != nil {
		t.Fatalf("query through PgBouncer: %v\nits output:\n%s", err, PgBouncerLog(t))
	}
	if name != "postgres" || gotApp != app || n != 42 {
		t.Errorf("through PgBouncer: database %q, application_name %q, %d; want postgres, %q, 42", name, gotApp, n, app)
	}

	var pool map[string]string
	for _, r := range PgBouncerShow(t, "POOLS") {
		if r["database"] == "postgres" {
			pool = r
		}
	}
	if pool == nil || pool["pool_mode"] != "transaction" {
		t.Errorf("SHOW POOLS: pool of database postgres is %v, want one in transaction mode", pool)
	}
	conf := map[string]string{}
	for _, r := range PgBouncerShow(t, "CONFIG") {
		conf[r["key"]] = r["value"]
	}
	if want := strconv.Itoa(PgBouncerPoolSize); conf["default_pool_size"] != want || conf["pool_mode"] != "transaction" {
		t.Errorf("SHOW CONFIG: default_pool_size %q, pool_mode %q; want %s, transaction", conf["default_pool_size"], conf["pool_mode"], want)
	}
	found := false
	for _, r := range PgBouncerShow(t, "CLIENTS") {
		if r["application_name"] == app && r["database"] == "postgres" {
			found = true
		}
	}
	if !found {
		t.Errorf("SHOW CLIENTS has no client %q: the query did not go through PgBouncer", app)
	}
}

// A port someone else took between choosing it and pgbouncer's listen is
// told apart, so that another one is tried.
func TestPgBouncerPortTaken(t *testing.T) {
	upstream := PostgresURL(t)
	bin, up, cred, err := pgBouncerSetup(upstream)
	if err != nil {
		CannotRun(t, "%v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p, err := tryPgBouncer(bin, l.Addr().(*net.TCPAddr).Port, up, cred)
	if !errors.Is(err, errPortTaken) {
		if p != nil {
			p.cmd.Process.Kill()
		}
		t.Fatalf("pgbouncer on a taken port: got %v, want errPortTaken", err)
	}
}

// A test binary that ends without Main (the driver package's TestMain
// does not call it), even by os.Exit, leaves no PgBouncer running.
func TestPgBouncerEndsWithBinary(t *testing.T) {
	PgBouncer(t) // skips, or fails under CI, as the child would
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TENANTSQL_TESTENV_PGBOUNCER_CHILD=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var port int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "PORT "); ok {
			port, _ = strconv.Atoi(p)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if port == 0 {
		t.Fatal("the child printed no PORT")
	}
	Eventually(t, 30*time.Second, fmt.Sprintf("the child's PgBouncer on port %d to stop", port), func() bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
}

// pgBouncerChild starts the PgBouncer, prints its port once it answers,
// and exits at once: no Main, no cleanup.
func pgBouncerChild() int {
	upstream := os.Getenv(EnvPostgres)
	if upstream == "" {
		upstream = defaultPostgres
	}
	p, err := startPgBouncer(upstream)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.show(ctx, "VERSION"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("PORT %d\n", p.port)
	return 0
}

// Session settings as startup parameters are refused, not ignored: an
// ignored search_path would run the tenant's queries in another schema.
func TestPgBouncerRefusesSettings(t *testing.T) {
	for _, param := range []string{"search_path", "app.tenant_id"} {
		db, err := sql.Open("pgx", PgBouncerURL(t, "postgres", param, "x"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var got string
		err = db.QueryRowContext(ctx, "SELECT current_setting('"+param+"', true)").Scan(&got)
		cancel()
		db.Close()
		if err == nil || !strings.Contains(err.Error(), "unsupported startup parameter") {
			t.Errorf("%s=x as a startup parameter through PgBouncer: got %q, err %v; want the connection refused (unsupported startup parameter)", param, got, err)
		}
	}
}
