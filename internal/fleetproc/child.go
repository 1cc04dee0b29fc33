// Package fleetproc runs tenantsql processes side by side for the fleet
// budget's multi-process test and benchmark (driver.WithFleetBudget): a
// binary that calls Main first thing becomes, when Start runs it again, a
// child process with a connector of its own on a shared Redis store, which
// runs a load over the tenants it is given and reports what the server
// answered. Children are real OS processes, so one can be killed
// (SIGKILL) as a crash would end it: its sockets close, its lease stays
// until it expires.
package fleetproc

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// envConfig carries a child's Config, as JSON, from Start to Main.
const envConfig = "TENANTSQL_FLEETPROC"

// Config is what a child process runs.
type Config struct {
	// Name names the process: its sessions' application_name is
	// Name/TENANT, which is how the server tells whose they are. Keep it
	// short: PostgreSQL cuts application_name at 63 bytes.
	Name string
	// StoreURL is the tenant store (store.Open): a Redis URL for a fleet
	// budget.
	StoreURL string
	// Budget is the server budget (driver.WithMaxConns); with Fleet, the
	// fleet's budget, shared with the other processes on the store.
	Budget int
	Fleet  bool
	// TTL is the fleet lease's (driver.WithFleetTTL); 0 is the default.
	TTL time.Duration
	// Tenants are those the load picks from, at random, each with the
	// database its queries must answer from.
	Tenants []Tenant
	// Hot, when above 0, sends 9 queries in 10 to the first Hot tenants
	// and the rest to all of them: a load with a working set, whose
	// sessions are mostly reused, and a tail that keeps evicting them.
	// 0 picks uniformly, so that nearly every query dials when the
	// tenants outnumber the sessions.
	Hot int
	// PerTenant caps each tenant's sessions (driver.WithMaxConnsPerTenant);
	// 0 is the driver's default, the budget.
	PerTenant int
	// Hold is how long each query keeps its session (pg_sleep).
	Hold time.Duration
	// QueryTimeout ends a query that hangs (default a minute); it only
	// catches a hang.
	QueryTimeout time.Duration
}

// Tenant is a tenant of the store and the database it is routed to.
type Tenant struct {
	ID string
	DB string
}

// Main makes the process a child when Start started it, and never
// returns then; otherwise it returns at once. Call it first thing in main
// or TestMain.
func Main() {
	raw, ok := os.LookupEnv(envConfig)
	if !ok {
		return
	}
	var cfg Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "fleetproc: %s: %v\n", envConfig, err)
		os.Exit(2)
	}
	if err := runChild(cfg, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "fleetproc %s: %v\n", cfg.Name, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// The child's protocol. It reads commands, one a line:
//
//	LOAD N   run N workers from now on (0 stops the load)
//	QUIT     end the workers, close the connector (which gives the lease
//	         back), answer CLOSED and exit
//
// and writes READY once its connector is open, then every reportEvery
// "P OK OPEN LEASED FALLBACK" (answers so far, sessions open, slots
// leased, 1 if the lease has fallen back to the fallback share), and
// at once for every failed query "E KIND TENANT MESSAGE", KIND being
// toomany (53300) or other, and for every wrong answer
// "W TENANT DB APP": a crash loses none of them.
const reportEvery = 50 * time.Millisecond

// query is what every worker asks: the server says which database and
// whose session answered.
const query = "SELECT current_database(), current_setting('application_name') FROM pg_sleep($1::float8)"

func runChild(cfg Config, in io.Reader, w io.Writer) error {
	if cfg.QueryTimeout == 0 {
		cfg.QueryTimeout = time.Minute
	}
	if len(cfg.Tenants) == 0 {
		return errors.New("no tenants")
	}
	out := &lineWriter{w: bufio.NewWriter(w)}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.QueryTimeout)
	s, err := store.Open(ctx, cfg.StoreURL)
	cancel()
	if err != nil {
		return err
	}
	defer s.Close()
	opts := []driver.Option{
		driver.WithMaxConns(cfg.Budget),
		driver.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))),
		driver.WithBeforeConnect(func(ctx context.Context, tenant string, pc *pgx.ConnConfig) error {
			pc.RuntimeParams["application_name"] = cfg.Name + "/" + tenant
			return nil
		}),
	}
	if cfg.PerTenant > 0 {
		opts = append(opts, driver.WithMaxConnsPerTenant(cfg.PerTenant))
	}
	if cfg.Fleet {
		opts = append(opts, driver.WithFleetBudget())
		if cfg.TTL > 0 {
			opts = append(opts, driver.WithFleetTTL(cfg.TTL))
		}
	}
	c, err := driver.NewConnector(s, opts...)
	if err != nil {
		return err
	}
	db := sql.OpenDB(c)
	defer db.Close()
	// database/sql's own pool never limits: the driver's budget does.
	db.SetMaxIdleConns(256)

	var ok atomic.Int64
	var wg sync.WaitGroup
	var stops []context.CancelFunc
	hold := cfg.Hold.Seconds()
	work := func(ctx context.Context) {
		defer wg.Done()
		for ctx.Err() == nil {
			pick := len(cfg.Tenants)
			if cfg.Hot > 0 && rand.IntN(10) < 9 {
				pick = min(cfg.Hot, pick)
			}
			t := cfg.Tenants[rand.IntN(pick)]
			// Not ctx: a query under way when the load stops ends on its
			// own, so that every one counts.
			qctx, cancel := context.WithTimeout(tenantctx.WithTenant(context.Background(), t.ID), cfg.QueryTimeout)
			var dbname, app string
			err := db.QueryRowContext(qctx, query, hold).Scan(&dbname, &app)
			cancel()
			switch {
			case err != nil:
				kind := "other"
				if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "53300" {
					kind = "toomany"
				}
				out.printf("E %s %s %s\n", kind, t.ID, strings.ReplaceAll(err.Error(), "\n", " "))
				// Not a flood of errors when the server is gone.
				time.Sleep(10 * time.Millisecond)
			case dbname != t.DB || app != cfg.Name+"/"+t.ID:
				out.printf("W %s %s %s\n", t.ID, dbname, app)
			default:
				ok.Add(1)
			}
		}
	}
	setLoad := func(n int) {
		for len(stops) < n {
			ctx, cancel := context.WithCancel(context.Background())
			stops = append(stops, cancel)
			wg.Add(1)
			go work(ctx)
		}
		for len(stops) > n {
			stops[len(stops)-1]()
			stops = stops[:len(stops)-1]
		}
	}
	report := func() {
		var open, leased, fallback int
		for _, ss := range c.Stats().Servers {
			open += ss.Open
			if ss.Fleet != nil {
				leased += ss.Fleet.Leased
				if ss.Fleet.Fallback {
					fallback = 1
				}
			}
		}
		out.printf("P %d %d %d %d\n", ok.Load(), open, leased, fallback)
	}
	done := make(chan struct{})
	var reporter sync.WaitGroup
	reporter.Go(func() {
		tick := time.NewTicker(reportEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				report()
			}
		}
	})
	defer func() { close(done); reporter.Wait() }()

	ctx, cancel = context.WithTimeout(context.Background(), cfg.QueryTimeout)
	err = db.PingContext(tenantctx.WithTenant(ctx, cfg.Tenants[0].ID))
	cancel()
	if err != nil {
		return err
	}
	out.printf("READY\n")
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "LOAD":
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 0 {
				return fmt.Errorf("LOAD %q: want a count of workers", f[1])
			}
			setLoad(n)
		case len(f) == 1 && f[0] == "QUIT":
			setLoad(0)
			wg.Wait()
			report()
			if err := db.Close(); err != nil {
				return err
			}
			out.printf("CLOSED\n")
			return nil
		default:
			return fmt.Errorf("unknown command %q", sc.Text())
		}
	}
	// The parent went away without QUIT: end as if told to.
	setLoad(0)
	wg.Wait()
	return sc.Err()
}

// lineWriter writes whole lines from several goroutines.
type lineWriter struct {
	mu sync.Mutex // guards w
	w  *bufio.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
	l.w.Flush()
}
