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
	"github.com/tenantsql/tenantsql/tenantctx"
)

// The tests here run a second OS process: the test binary itself, started
// with TENANTSQL_CHILD set, which opens a tenantsql *sql.DB on the store
// URL it is given and obeys commands on stdin:
//
//	Q SEQ TENANT              -> A SEQ DB APP | E SEQ ERROR
//	LOAD TENANT WORKERS MS    -> L OK ERRS WRONG UNKNOWN DB=N,DB=N
//	QUIT
//
// It prints READY once the tenants are loaded, and HOOK KIND TENANT
// UNIXNANO for every post-phase hook, the moment it runs.
func TestMain(m *testing.M) {
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
				ctx, cancel := context.WithTimeout(tenantctx.WithTenant(context.Background(), f[2]), 10*time.Second)
				defer cancel()
				if err := db.QueryRowContext(ctx, whereAmI).Scan(&d, &a); err != nil {
					out.printf("E %s %s\n", f[1], strings.ReplaceAll(err.Error(), "\n", " "))
					return
				}
				out.printf("A %s %s %s\n", f[1], d, a)
			}()
		case "LOAD":
			workers, _ := strconv.Atoi(f[2])
			ms, _ := strconv.Atoi(f[3])
			go childLoad(db, out, f[1], workers, time.Duration(ms)*time.Millisecond)
		case "QUIT":
			db.Close()
			s.Close()
			return 0
		}
	}
	return 0
}

func childLoad(db *sql.DB, out *lockedWriter, id string, workers int, d time.Duration) {
	var ok, errs, wrong, unknown atomic.Int64
	var mu sync.Mutex
	dbs := map[string]int{}
	firstErr := ""
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := tenantctx.WithTenant(context.Background(), id)
			for time.Now().Before(deadline) {
				var dbname, app string
				err := db.QueryRowContext(ctx, whereAmI).Scan(&dbname, &app)
				switch {
				case errors.Is(err, driver.ErrUnknownTenant):
					unknown.Add(1)
				case err != nil:
					errs.Add(1)
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
				case app != id:
					wrong.Add(1)
				default:
					ok.Add(1)
					mu.Lock()
					dbs[dbname]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	var parts []string
	for k, v := range dbs {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	out.printf("L %d %d %d %d %s %s\n", ok.Load(), errs.Load(), wrong.Load(), unknown.Load(), strings.Join(parts, ","), strings.ReplaceAll(firstErr, " ", "_"))
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
	if l := c.next(30 * time.Second); l != "READY" {
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
	l := c.next(15 * time.Second)
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
	dbs                      string
	firstErr                 string
}

func (c *child) startLoad(id string, workers int, d time.Duration) func() loadResult {
	fmt.Fprintf(c.in, "LOAD %s %d %d\n", id, workers, d.Milliseconds())
	return func() loadResult {
		c.t.Helper()
		l := c.next(d + 30*time.Second)
		f := strings.Fields(l)
		if len(f) < 5 || f[0] != "L" {
			c.t.Fatalf("child answered %q to LOAD", l)
		}
		var r loadResult
		r.ok, _ = strconv.ParseInt(f[1], 10, 64)
		r.errs, _ = strconv.ParseInt(f[2], 10, 64)
		r.wrong, _ = strconv.ParseInt(f[3], 10, 64)
		r.unknown, _ = strconv.ParseInt(f[4], 10, 64)
		if len(f) > 5 {
			r.dbs = f[5]
		}
		if len(f) > 6 {
			r.firstErr = f[6]
		}
		return r
	}
}
