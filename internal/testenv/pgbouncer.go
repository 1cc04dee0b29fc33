package testenv

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// PgBouncerPoolSize is the default_pool_size of the test PgBouncer: at most
// this many server connections per database (all tests log in as one
// user), so that its clients really do share them.
const PgBouncerPoolSize = 4 // keep equal to default_pool_size in pgbouncer.ini (TestPgBouncer checks it)

// PgBouncerExecMode is the pgx default_query_exec_mode the URLs behind the
// test PgBouncer carry. PgBouncer before 1.21 (Debian 12 has 1.18) does
// not track protocol-level prepared statements in transaction mode, so
// pgx's default, cache_statement, fails behind it: a statement prepared on
// one server connection is missing on the next. exec uses the unnamed
// statement, parse, bind and execute in one round trip (one Sync, so one
// server connection), and caches nothing that a schema change or another
// tenant's search_path could make wrong, as cache_describe does;
// simple_protocol interpolates parameters on the client, which pgx advises
// against when exec works. scripts/pgbouncer.sh says the same at length.
const PgBouncerExecMode = "exec"

// The test binary's PgBouncer: started on first use, once.
var (
	pgbOnce sync.Once
	pgbErr  error
	pgb     *pgBouncer
)

type pgBouncer struct {
	port  int
	url   string        // database postgres, as clients use it
	admin string        // the admin console, database pgbouncer
	cmd   *exec.Cmd     //
	done  chan struct{} // closed once the process has exited
	log   *tailBuffer
}

// PgBouncer returns the URL of database postgres behind a private
// PgBouncer in transaction mode, in front of the test PostgreSQL server
// (PostgresURL), with default_query_exec_mode=exec (see
// PgBouncerExecMode). The PgBouncer is started once per test binary, on a
// free port of 127.0.0.1, with a wildcard database entry (a client asking
// for database D gets D on the test server) and PgBouncerPoolSize server
// connections per database. It is stopped by Main, or, in a binary whose
// TestMain does not call Main, by the kernel when the binary exits
// (it runs with a parent-death signal); its files are removed as soon
// as it has started.
//
// Without the pgbouncer program (Debian package pgbouncer: `make test`
// installs it as root, as does scripts/pgbouncer.sh install), or when it
// cannot be started, the test is skipped, or fails when CI is set.
func PgBouncer(t testing.TB) string {
	t.Helper()
	return startedPgBouncer(t).url
}

func startedPgBouncer(t testing.TB) *pgBouncer {
	t.Helper()
	upstream := PostgresURL(t)
	pgbOnce.Do(func() { pgb, pgbErr = startPgBouncer(upstream) })
	if pgbErr != nil {
		CannotRun(t, "a private PgBouncer in front of the test PostgreSQL: %v", pgbErr)
	}
	select {
	case <-pgb.done:
		t.Fatalf("the test PgBouncer on 127.0.0.1:%d has exited (%v); its output:\n%s", pgb.port, pgb.cmd.ProcessState, pgb.log)
	default:
	}
	return pgb
}

// PgBouncerURL returns the URL of database name behind the test PgBouncer
// (PgBouncer), with extra query parameters as key, value pairs
// (application_name, ...).
func PgBouncerURL(t testing.TB, name string, params ...string) string {
	t.Helper()
	if len(params)%2 != 0 {
		t.Fatalf("PgBouncerURL: params must be key, value pairs")
	}
	return withDatabase(t, PgBouncer(t), name, params)
}

// PgBouncerShow runs SHOW what (POOLS, CLIENTS, SERVERS, STATS, ...) on
// the test PgBouncer's admin console and returns its rows, each a map from
// column name to text.
func PgBouncerShow(t testing.TB, what string) []map[string]string {
	t.Helper()
	p := startedPgBouncer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := p.show(ctx, what)
	if err != nil {
		t.Fatalf("SHOW %s on the test PgBouncer: %v", what, err)
	}
	return rows
}

// PgBouncerLog returns what the test PgBouncer has written lately (its
// log goes to the test binary, which keeps the last 256 KiB).
func PgBouncerLog(t testing.TB) string {
	t.Helper()
	return startedPgBouncer(t).log.String()
}

func (p *pgBouncer) show(ctx context.Context, what string) ([]map[string]string, error) {
	// The admin console speaks the simple protocol only; pgconn's Exec is
	// a simple query.
	c, err := pgconn.Connect(ctx, p.admin)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	res, err := c.Exec(ctx, "SHOW "+what).ReadAll()
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, r := range res {
		if r.Err != nil {
			return nil, r.Err
		}
		for _, row := range r.Rows {
			m := make(map[string]string, len(row))
			for i, v := range row {
				m[r.FieldDescriptions[i].Name] = string(v)
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// stopPgBouncer stops the test PgBouncer if this binary started one.
func stopPgBouncer() {
	if pgb == nil {
		return
	}
	pgb.cmd.Process.Signal(syscall.SIGTERM) // immediate shutdown
	select {
	case <-pgb.done:
	case <-time.After(10 * time.Second):
		pgb.cmd.Process.Kill()
		<-pgb.done
	}
}

// lookPgBouncer finds the program, also in the sbin directories a
// non-root PATH lacks (Debian installs it as /usr/sbin/pgbouncer).
func lookPgBouncer() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(d, "pgbouncer")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("no pgbouncer program: install the Debian package pgbouncer (`make test` does as root, as does `scripts/pgbouncer.sh install`)")
}

var errPortTaken = errors.New("port taken")

func startPgBouncer(upstream string) (*pgBouncer, error) {
	bin, up, cred, err := pgBouncerSetup(upstream)
	if err != nil {
		return nil, err
	}
	// A free port is free only until someone takes it: pgbouncer then
	// exits with "Address already in use", and another port is tried.
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		p, err := tryPgBouncer(bin, port, up, cred)
		if errors.Is(err, errPortTaken) {
			continue
		}
		return p, err
	}
	return nil, errors.New("five free ports in a row were taken before pgbouncer could listen on them")
}

// pgBouncerSetup finds the program, parses the upstream URL and, as root,
// the user to run pgbouncer as (it refuses to run as root).
func pgBouncerSetup(upstream string) (bin string, up *url.URL, cred *runAs, err error) {
	bin, err = lookPgBouncer()
	if err != nil {
		return "", nil, nil, err
	}
	up, err = url.Parse(upstream)
	if err != nil {
		return "", nil, nil, fmt.Errorf("the test PostgreSQL URL: %w", err)
	}
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", nil, nil, fmt.Errorf("pgbouncer refuses to run as root, and there is no postgres user to run it as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &runAs{uid: uid, gid: gid}
	}
	return bin, up, cred, nil
}

// pgBouncerSettings are the settings every private PgBouncer of the
// project shares; default_pool_size there is PgBouncerPoolSize.
//
//go:embed pgbouncer.ini
var pgBouncerSettings string

// runAs is the user pgbouncer runs as, when not this process's.
type runAs struct{ uid, gid int }

func tryPgBouncer(bin string, port int, up *url.URL, cred *runAs) (*pgBouncer, error) {
	host, upPort := up.Hostname(), up.Port()
	if host == "" {
		host = "127.0.0.1"
	}
	if upPort == "" {
		upPort = "5432"
	}
	login := up.User.Username()
	if login == "" {
		login = "postgres"
	}
	password, _ := up.User.Password()

	// pgbouncer reads its configuration and auth_file when it starts (and
	// again only on RELOAD or SIGHUP, which nobody sends it): the
	// directory is removed once it has started, so that nothing is left
	// behind however the test binary ends.
	dir, err := os.MkdirTemp("", "tenantsql-pgbouncer-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ini := filepath.Join(dir, "pgbouncer.ini")
	auth := filepath.Join(dir, "userlist.txt")
	// The settings shared with scripts/pgbouncer.sh, which says why each
	// one. The log goes to stderr, kept by this binary (logfile empty),
	// and no unix socket, no pid file: nothing that needs the directory
	// later.
	conf := fmt.Sprintf("[databases]\n* = host=%s port=%s\n\n[pgbouncer]\n%slisten_port = %d\nlogfile =\npidfile =\nauth_file = %s\nadmin_users = %s\nstats_users = %s\n",
		host, upPort, pgBouncerSettings, port, auth, login, login)
	// auth_type trust still needs the user in auth_file; the password is
	// what pgbouncer gives the upstream if it asks for one.
	users := fmt.Sprintf("\"%s\" \"%s\"\n", strings.ReplaceAll(login, `"`, `""`), strings.ReplaceAll(password, `"`, `""`))
	if err := os.WriteFile(ini, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(auth, []byte(users), 0o600); err != nil {
		return nil, err
	}
	if cred != nil {
		for _, f := range []string{dir, ini, auth} {
			if err := os.Chown(f, cred.uid, cred.gid); err != nil {
				return nil, err
			}
		}
	}

	p := &pgBouncer{port: port, done: make(chan struct{}), log: &tailBuffer{max: 256 << 10}}
	userinfo := url.User(login)
	if password != "" {
		userinfo = url.UserPassword(login, password)
	}
	client := url.URL{Scheme: "postgres", User: userinfo, Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	client.Path = "/postgres"
	client.RawQuery = url.Values{"sslmode": {"disable"}, "default_query_exec_mode": {PgBouncerExecMode}}.Encode()
	p.url = client.String()
	client.Path = "/pgbouncer"
	client.RawQuery = url.Values{"sslmode": {"disable"}, "connect_timeout": {"5"}}.Encode()
	p.admin = client.String()

	p.cmd = exec.Command(bin, ini)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = pgBouncerProcAttr(cred)
	started := make(chan error, 1)
	go func() {
		// The parent-death signal goes to the child when the thread that
		// started it ends, not the process: this goroutine keeps its
		// thread for as long as pgbouncer runs (a locked goroutine's
		// thread ends with it, after pgbouncer has).
		runtime.LockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		// A pgbouncer that cannot listen exits at once: seen here before
		// a probe could reach whoever holds the port.
		select {
		case <-p.done:
			if strings.Contains(p.log.String(), "Address already in use") {
				return nil, errPortTaken
			}
			return nil, fmt.Errorf("pgbouncer exited at start (%v):\n%s", p.cmd.ProcessState, p.log)
		case <-time.After(20 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		rows, err := p.show(ctx, "VERSION")
		cancel()
		if err == nil && len(rows) == 1 && strings.Contains(fmt.Sprint(rows[0]), "PgBouncer") {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.cmd.Process.Kill()
			<-p.done
			return nil, fmt.Errorf("pgbouncer on 127.0.0.1:%d did not answer within 30s (last: %v, %v); its output:\n%s", port, rows, err, p.log)
		}
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   bytes.Buffer
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if over := w.b.Len() - w.max; over > 0 {
		w.b.Next(over)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
