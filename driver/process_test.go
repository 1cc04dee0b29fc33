package driver_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/internal/fleetproc"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// The tests here run a second OS process: the test binary itself, started
// with TENANTSQL_CHILD set, which opens a tenantsql *sql.DB on the store
// URL it is given and obeys commands on stdin:
//
//	Q SEQ TENANT              -> A SEQ DB APP | E SEQ ERROR
//	LOAD TENANT WORKERS       (starts queries for TENANT, until STOP)
//	PROGRESS TENANT           -> P OK ERRS WRONG UNKNOWN DB=N,DB=N FIRSTERR
//	STOP TENANT               -> L OK ERRS WRONG UNKNOWN DB=N,DB=N FIRSTERR
//	QUIT
//
// It prints READY once the tenants are loaded, and HOOK KIND TENANT
// UNIXNANO for every post-phase hook, the moment it runs.
func TestMain(m *testing.M) {
	fleetproc.Main() // a child of the fleet budget's process tests (budget_fleet_process_test.go)
	if os.Getenv("TENANTSQL_CHILD") != "" {
		os.Exit(childMain(os.Getenv("TENANTSQL_CHILD_STORE")))
	}
	os.Exit(m.Run())
}

func childMain(storeURL string) int {
	out := &lockedWriter{w: bufio.NewWriter(os.Stdout)}
	reg := hooks.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, k := range []hooks.Kind{hooks.PostCreate, hooks.PostUpdate, hooks.PostDelete} {
		reg.Subscribe(k, func(ctx context.Context, ev hooks.Event) error {
			out.printf("HOOK %s %s %d\n", ev.Kind, ev.Tenant.ID, time.Now().UnixNano())
			return nil
		})
	}
	s, err := openStore(storeURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := driver.NewConnector(s, driver.WithHooks(reg), driver.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	if err := db.Ping(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out.printf("READY\n")
	loads := map[string]*childLoad{}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "Q":
			go func() {
				var d, a string
				ctx, cancel := context.WithTimeout(tenantctx.WithTenant(context.Background(), f[2]), loadWait)
				defer cancel()
				if err := db.QueryRowContext(ctx, whereAmI).Scan(&d, &a); err != nil {
					out.printf("E %s %s\n", f[1], strings.ReplaceAll(err.Error(), "\n", " "))
					return
				}
				out.printf("A %s %s %s\n", f[1], d, a)
			}()
		case "LOAD":
			workers, _ := strconv.Atoi(f[2])
			loads[f[1]] = startChildLoad(db, f[1], workers)
		case "PROGRESS":
			out.printf("P %s\n", loads[f[1]].counts())
		case "STOP":
			l := loads[f[1]]
			delete(loads, f[1])
			go func() {
				if l != nil {
					l.stop()
				}
				out.printf("L %s\n", l.counts())
			}()
		case "QUIT":
			db.Close()
			s.Close()
			return 0
		}
	}
	return 0
}

// childLoad runs queries for one tenant on several workers until stopped,
// and counts how they end.
type childLoad struct {
	ok, errs, wrong, unknown atomic.Int64
	mu                       sync.Mutex
	dbs                      map[string]int
	firstErr                 string
	cancel                   context.CancelFunc
	wg                       sync.WaitGroup
}

func startChildLoad(db *sql.DB, id string, workers int) *childLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &childLoad{dbs: map[string]int{}, cancel: cancel}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			qctx := tenantctx.WithTenant(context.Background(), id)
			for ctx.Err() == nil {
				var dbname, app string
				err := db.QueryRowContext(qctx, whereAmI).Scan(&dbname, &app)
				switch {
				case errors.Is(err, driver.ErrUnknownTenant):
					l.unknown.Add(1)
				case err != nil:
					l.errs.Add(1)
					l.mu.Lock()
					if l.firstErr == "" {
						l.firstErr = err.Error()
					}
					l.mu.Unlock()
				case app != id:
					l.wrong.Add(1)
				default:
					l.ok.Add(1)
					l.mu.Lock()
					l.dbs[dbname]++
					l.mu.Unlock()
				}
			}
		}()
	}
	return l
}

// stop ends the load once the queries under way have ended: none is cut
// short, so every one counts.
func (l *childLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// counts is OK ERRS WRONG UNKNOWN DB=N,DB=N FIRSTERR.
func (l *childLoad) counts() string {
	if l == nil {
		return "0 0 0 0 - no_load"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for k, v := range l.dbs {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	dbs, firstErr := strings.Join(parts, ","), strings.ReplaceAll(l.firstErr, " ", "_")
	if dbs == "" {
		dbs = "-"
	}
	if firstErr == "" {
		firstErr = "-"
	}
	return fmt.Sprintf("%d %d %d %d %s %s", l.ok.Load(), l.errs.Load(), l.wrong.Load(), l.unknown.Load(), dbs, firstErr)
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
	l.w.Flush()
}

// child is the parent's handle on a child process.
type child struct {
	t     testing.TB
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	mu    sync.Mutex
	hooks map[string]int64 // "KIND TENANT" -> unixnano of the latest
	seq   int
}

func startChild(t testing.TB, storeURL string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TENANTSQL_CHILD=1", "TENANTSQL_CHILD_STORE="+storeURL)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, in: in, lines: make(chan string, 1024), hooks: map[string]int64{}}
	go func() {
		sc := bufio.NewScanner(outp)
		for sc.Scan() {
			line := sc.Text()
			if f := strings.Fields(line); len(f) == 4 && f[0] == "HOOK" {
				n, _ := strconv.ParseInt(f[3], 10, 64)
				c.mu.Lock()
				c.hooks[f[1]+" "+f[2]] = n
				c.mu.Unlock()
				continue
			}
			c.lines <- line
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		fmt.Fprintln(in, "QUIT")
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	if l := c.next(loadWait); l != "READY" {
		t.Fatalf("child said %q, want READY", l)
	}
	return c
}

func (c *child) next(timeout time.Duration) string {
	c.t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			c.t.Fatal("child exited")
		}
		return l
	case <-time.After(timeout):
		c.t.Fatalf("child silent for %v", timeout)
	}
	return ""
}

// hookAt returns when the child ran a post hook of kind for tenant, or 0.
func (c *child) hookAt(kind hooks.Kind, id string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hooks[kind.String()+" "+id]
}

// query asks the child to run whereAmI for tenant id.
func (c *child) query(id string) (answer, error) {
	c.t.Helper()
	c.seq++
	fmt.Fprintf(c.in, "Q %d %s\n", c.seq, id)
	l := c.next(loadWait + 30*time.Second) // the child gives up on the query after loadWait
	f := strings.SplitN(l, " ", 3)
	if len(f) == 3 && f[0] == "A" {
		p := strings.Fields(f[2])
		return answer{DB: p[0], App: p[1]}, nil
	}
	if len(f) == 3 && f[0] == "E" {
		return answer{}, errors.New(f[2])
	}
	c.t.Fatalf("child answered %q", l)
	return answer{}, nil
}

type loadResult struct {
	ok, errs, wrong, unknown int64
	dbs                      string           // DB=N,DB=N
	byDB                     map[string]int64 // answers per database
	firstErr                 string
}

func (r loadResult) String() string {
	return fmt.Sprintf("%d answered (%s), %d failed, %d unknown tenant, %d wrong", r.ok, r.dbs, r.errs, r.unknown, r.wrong)
}

// load is a load the child runs for one tenant until stopped.
type load struct {
	c  *child
	id string
}

// startLoad has the child query tenant id on workers goroutines until stop.
func (c *child) startLoad(id string, workers int) *load {
	fmt.Fprintf(c.in, "LOAD %s %d\n", id, workers)
	return &load{c: c, id: id}
}

// progress returns the load's counts so far.
func (l *load) progress() loadResult {
	l.c.t.Helper()
	fmt.Fprintf(l.c.in, "PROGRESS %s\n", l.id)
	return l.c.parseLoad(l.c.next(loadWait), "P")
}

// loadWait is how long a load, a query or the child may take to reach a
// state the test waits for. It only catches a hang: the test moves on as
// soon as the state is reached, however slow the machine.
const loadWait = time.Minute

// waitFor polls the load until cond holds, and fails the test, saying
// what it waited for and where the load got to, if it does not within
// loadWait.
func (l *load) waitFor(what string, cond func(loadResult) bool) loadResult {
	l.c.t.Helper()
	deadline := time.Now().Add(loadWait)
	for {
		r := l.progress()
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			l.c.t.Fatalf("waited %v for %s; the load has: %v", loadWait, what, r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop ends the load and returns its final counts.
func (l *load) stop() loadResult {
	l.c.t.Helper()
	fmt.Fprintf(l.c.in, "STOP %s\n", l.id)
	return l.c.parseLoad(l.c.next(loadWait), "L")
}

func (c *child) parseLoad(line, kind string) loadResult {
	c.t.Helper()
	f := strings.Fields(line)
	if len(f) < 7 || f[0] != kind {
		c.t.Fatalf("child answered %q, want %s and the load's counts", line, kind)
	}
	var r loadResult
	r.ok, _ = strconv.ParseInt(f[1], 10, 64)
	r.errs, _ = strconv.ParseInt(f[2], 10, 64)
	r.wrong, _ = strconv.ParseInt(f[3], 10, 64)
	r.unknown, _ = strconv.ParseInt(f[4], 10, 64)
	r.byDB = map[string]int64{}
	if f[5] != "-" {
		r.dbs = f[5]
		for _, p := range strings.Split(f[5], ",") {
			k, v, _ := strings.Cut(p, "=")
			r.byDB[k], _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if f[6] != "-" {
		r.firstErr = f[6]
	}
	return r
}
