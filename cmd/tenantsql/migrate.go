package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/migrate"
)

const migrateUsage = `usage: tenantsql [--store URL] [-v] migrate OP [VERSION] --dir DIR [flags]
       tenantsql migrate create NAME [--dir DIR] [--sql|--go] [--sequential]

Operations:
  create NAME        write a new migration file in DIR (default: the current directory),
                     named and versioned as goose create does: --sql (the default) or
                     --go, a timestamp version unless --sequential; needs no store
  up                 apply every pending migration
  up-to VERSION      apply pending migrations up to and including VERSION
  down               roll back the last migration
  down-to VERSION    roll back migrations down to (not including) VERSION
  status             show applied and pending migrations

Flags:
  --dir DIR              directory of goose migrations (required, but for create)
  --concurrency N        tenants migrated at once (default 4)
  --tenant ID            only this tenant (repeatable)
  --exclude ID           not this tenant (repeatable)
  --continue-on-error    go on with the other tenants when one fails
  --dry-run              show what would be applied, change nothing
  --store URL            tenant store (default $TENANTSQL_STORE), anywhere on the line
  -v                     also show the logs of the libraries underneath

Ctrl-C starts no more tenants and no more migrations, and lets the migrations in
flight finish; a second Ctrl-C aborts. The exit status is 1 if any tenant failed or
the run was interrupted.
`

type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func (c *cli) migrate(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {}
	dir := fs.String("dir", "", "")
	conc := fs.Int("concurrency", 4, "")
	var include, exclude stringsFlag
	fs.Var(&include, "tenant", "")
	fs.Var(&exclude, "exclude", "")
	cont := fs.Bool("continue-on-error", false, "")
	dry := fs.Bool("dry-run", false, "")
	asSQL := fs.Bool("sql", false, "")
	asGo := fs.Bool("go", false, "")
	sequential := fs.Bool("sequential", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return c.parseError(err, migrateUsage)
	}
	if len(pos) == 0 {
		fmt.Fprintf(c.stderr, "tenantsql: migrate: missing operation\n\n%s", migrateUsage)
		return exitUsage
	}
	if pos[0] == "create" {
		return c.create(pos[1:], *dir, *asSQL, *asGo, *sequential)
	}
	if *asSQL || *asGo || *sequential {
		fmt.Fprintf(c.stderr, "tenantsql: migrate %s: --sql, --go and --sequential apply to migrate create only\n\n%s", pos[0], migrateUsage)
		return exitUsage
	}
	ops := map[string]migrate.Op{"up": migrate.Up, "up-to": migrate.UpTo, "down": migrate.Down, "down-to": migrate.DownTo, "status": migrate.Status}
	op, ok := ops[pos[0]]
	if !ok {
		fmt.Fprintf(c.stderr, "tenantsql: migrate: unknown operation %q\n\n%s", pos[0], migrateUsage)
		return exitUsage
	}
	var version int64
	wantArgs := 1
	if op == migrate.UpTo || op == migrate.DownTo {
		wantArgs = 2
		if len(pos) >= 2 {
			if version, err = strconv.ParseInt(pos[1], 10, 64); err != nil || version < 0 {
				fmt.Fprintf(c.stderr, "tenantsql: migrate %s: version %q is not a non-negative number\n", pos[0], pos[1])
				return exitUsage
			}
		}
	}
	if len(pos) != wantArgs {
		fmt.Fprintf(c.stderr, "tenantsql: migrate %s: wrong number of arguments\n\n%s", pos[0], migrateUsage)
		return exitUsage
	}
	if *dir == "" {
		fmt.Fprintf(c.stderr, "tenantsql: migrate: --dir is required\n\n%s", migrateUsage)
		return exitUsage
	}
	if *conc < 1 {
		fmt.Fprintf(c.stderr, "tenantsql: migrate: --concurrency must be at least 1\n")
		return exitUsage
	}
	if fi, err := os.Stat(*dir); err != nil || !fi.IsDir() {
		return c.fail(fmt.Errorf("migrations directory %s: not a readable directory", *dir))
	}

	s, err := c.open(ctx)
	if err != nil {
		return c.fail(err)
	}
	defer s.Close()
	// Migrations change the shared tables of row-level-security tenants
	// and are typically run as their owner, to whom no policy applies;
	// the check that refuses such roles guards serving tenants, not this.
	conn, err := driver.NewConnector(s, driver.WithHooks(nil), driver.WithMaxConns(2**conc+2), driver.WithBypassRLS(true))
	if err != nil {
		return c.fail(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	// Each running tenant holds a connection; Go migrations without a
	// transaction take a second one.
	db.SetMaxOpenConns(2**conc + 2)
	db.SetMaxIdleConns(2**conc + 2)

	pr := newProgress(c.stderr, isTerminal(c.stderr))
	opts := []migrate.Option{
		migrate.WithConcurrency(*conc),
		migrate.WithContinueOnError(*cont),
		migrate.WithDryRun(*dry),
		migrate.WithProgress(pr.update),
	}
	if len(include) > 0 {
		opts = append(opts, migrate.WithTenants(include...))
	}
	if len(exclude) > 0 {
		opts = append(opts, migrate.WithExclude(exclude...))
	}
	m, err := migrate.New(db, s, os.DirFS(*dir), opts...)
	if err != nil {
		return c.fail(err)
	}
	rep, runErr := m.Run(ctx, op, version)
	pr.finish()
	if rep == nil {
		return c.fail(runErr)
	}
	c.summary(rep)
	if ctx.Err() != nil {
		// Interrupted, even if every tenant got to the end: the operator
		// stopped the run, and a script must not carry on as if it were
		// complete.
		_, _, _, skipped := rep.Counts()
		fmt.Fprintf(c.stderr, "tenantsql: interrupted: %d tenants stopped waiting for a lock; %d not started (listed as skipped)\n", interrupted(rep), skipped)
		return exitError
	}
	if runErr != nil {
		return exitError
	}
	return exitOK
}

// create scaffolds a migration file: migrate create NAME [--dir DIR]
// [--sql|--go] [--sequential]. It needs no store.
func (c *cli) create(pos []string, dir string, asSQL, asGo, sequential bool) int {
	if len(pos) != 1 {
		fmt.Fprintf(c.stderr, "tenantsql: migrate create: want one NAME, such as add_users_table\n\n%s", migrateUsage)
		return exitUsage
	}
	if asSQL && asGo {
		fmt.Fprintf(c.stderr, "tenantsql: migrate create: give --sql or --go, not both\n\n%s", migrateUsage)
		return exitUsage
	}
	if dir == "" {
		dir = "." // as goose create
	}
	kind := "sql"
	if asGo {
		kind = "go"
	}
	path, err := createMigration(dir, pos[0], kind, sequential)
	if errors.Is(err, errBadMigrationName) {
		fmt.Fprintf(c.stderr, "tenantsql: migrate create: %v\n", err)
		return exitUsage
	}
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "created %s (schema version %s)\n", path, migrationVersion(path))
	if asGo {
		// The command runs .sql files only: a Go migration is code, run
		// by the program it is compiled into.
		fmt.Fprintln(c.stderr, "note: a Go migration is code: it runs in a program that imports its package (its init registers it with goose) "+
			"and migrates with hooks.Migrate or migrate.New; tenantsql migrate runs .sql migrations only")
	}
	return exitOK
}

// isInterrupted reports a tenant stopped by the end of the run's context.
func isInterrupted(r migrate.TenantResult) bool {
	return r.Err != nil && (errors.Is(r.Err, context.Canceled) || errors.Is(r.Err, context.DeadlineExceeded))
}

func interrupted(rep *migrate.Report) int {
	n := 0
	for _, r := range rep.Results {
		if isInterrupted(r) {
			n++
		}
	}
	return n
}

// summary prints a table of the tenants that changed, failed or were
// skipped (all tenants for status and dry runs), then each failure with
// its cause and a hint, then the counts. A failure is printed here once;
// the table and the progress lines only say FAILED.
//
// Each word means one thing: APPLIED is the number of migrations applied
// (status), RAN the versions this run applied or rolled back; the
// versions in the columns are schema versions (goose's), never the
// tenant's store version that tenants list shows.
func (c *cli) summary(rep *migrate.Report) {
	changed, unchanged, failed, skipped := rep.Counts()
	down := rep.Op == migrate.Down || rep.Op == migrate.DownTo
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	switch {
	case rep.Op == migrate.Status:
		fmt.Fprintln(tw, "TENANT\tSCHEMA_VERSION\tAPPLIED\tPENDING\tRESULT")
	case rep.DryRun:
		fmt.Fprintln(tw, "TENANT\tSCHEMA_VERSION\tWOULD_"+map[bool]string{true: "ROLL_BACK", false: "APPLY"}[down]+"\tRESULT")
	default:
		fmt.Fprintln(tw, "TENANT\tSCHEMA_BEFORE\tSCHEMA_AFTER\tRAN\tDURATION\tRESULT")
	}
	rows := 0
	var failures []failure
	pending := 0 // status: tenants with migrations not applied
	for _, r := range rep.Results {
		result := "ok"
		switch {
		case r.Skipped:
			result = "skipped"
		case isInterrupted(r):
			result = "INTERRUPTED"
		case r.Err != nil:
			result = "FAILED"
			failures = append(failures, explainMigrate(r.Err))
		}
		switch {
		case rep.Op == migrate.Status:
			applied := 0
			for _, m := range r.Migrations {
				if m.Applied {
					applied++
				}
			}
			if r.Err == nil && !r.Skipped && len(r.Pending) > 0 {
				pending++
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", tenantCell(r), ver(r.After), applied, versions(r.Pending), result)
		case rep.DryRun:
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", tenantCell(r), ver(r.Before), versions(r.Pending), result)
		case r.Skipped:
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%s\n", tenantCell(r), result)
		case r.Err != nil || len(r.Applied) > 0:
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", tenantCell(r), ver(r.Before), ver(r.After), versions(appliedVersions(r)), r.Duration.Round(time.Millisecond), result)
		default:
			continue
		}
		rows++
	}
	if rows > 0 {
		tw.Flush()
	}
	// Tenants that share their tables were migrated once, through the
	// first: say which.
	tenants := 0
	for _, r := range rep.Results {
		tenants += len(r.Tenants())
		if len(r.Covers) > 1 {
			fmt.Fprintf(c.stdout, "%s: shared tables (one database and search_path), for %s\n", r.Tenant, strings.Join(r.Covers, ", "))
		}
	}
	hints := map[string]bool{}
	for _, f := range failures {
		fmt.Fprintf(c.stderr, "tenantsql: %s\n", f.msg)
		if f.hint != "" && !hints[f.hint] {
			// Once per kind: a hundred unreachable tenants need it once.
			hints[f.hint] = true
			fmt.Fprintf(c.stderr, "  hint: %s\n", f.hint)
		}
	}
	stopped := ""
	if n := interrupted(rep); n > 0 {
		failed -= n
		stopped = fmt.Sprintf(", %d interrupted", n)
	}
	who := plural(tenants, "tenant")
	if tenants != len(rep.Results) {
		// Counted below per set of tables, not per tenant.
		sets := "1 set of tables"
		if len(rep.Results) != 1 {
			sets = fmt.Sprintf("%d sets of tables", len(rep.Results))
		}
		who += " (" + sets + ")"
	}
	// For status and dry runs, Counts' changed is always 0 and unchanged
	// means "did not fail": count what the words say instead.
	var counts string
	switch {
	case rep.Op == migrate.Status:
		counts = fmt.Sprintf("%d up to date, %d with pending migrations", unchanged-pending, pending)
	case rep.DryRun:
		would := 0
		for _, r := range rep.Results {
			if r.Err == nil && !r.Skipped && len(r.Pending) > 0 {
				would++
			}
		}
		if down {
			counts = fmt.Sprintf("%d would be rolled back, %d with nothing to roll back", would, unchanged-would)
		} else {
			counts = fmt.Sprintf("%d would be migrated, %d already up to date", would, unchanged-would)
		}
	case down:
		counts = fmt.Sprintf("%d rolled back, %d with nothing to roll back", changed, unchanged)
	default:
		counts = fmt.Sprintf("%d migrated, %d already up to date", changed, unchanged)
	}
	fmt.Fprintf(c.stderr, "migrate %s: %s: %s, %d failed%s, %d skipped (%v)\n",
		rep.Op, who, counts, failed, stopped, skipped, rep.Duration.Round(time.Millisecond))
}

// tenantCell names a result's tenant, and how many others share its
// tables (listed under the table).
func tenantCell(r migrate.TenantResult) string {
	if len(r.Covers) > 1 {
		return fmt.Sprintf("%s (+%d)", r.Tenant, len(r.Covers)-1)
	}
	return r.Tenant
}

// appliedVersions lists the versions r ran, in the order they ran.
func appliedVersions(r migrate.TenantResult) []int64 {
	var vs []int64
	for _, a := range r.Applied {
		vs = append(vs, a.Version)
	}
	return vs
}

func ver(v int64) string {
	if v < 0 {
		return "?"
	}
	return strconv.FormatInt(v, 10)
}

func versions(vs []int64) string {
	if len(vs) == 0 {
		return "-"
	}
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.FormatInt(v, 10)
	}
	return strings.Join(s, ",")
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// progress shows a bar on a terminal and a line per tenant elsewhere.
type progress struct {
	w      io.Writer
	tty    bool
	mu     sync.Mutex
	failed int
	drawn  bool
}

func newProgress(w io.Writer, tty bool) *progress { return &progress{w: w, tty: tty} }

func (p *progress) update(pr migrate.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := pr.Result
	if r.Err != nil {
		p.failed++
	}
	if !p.tty {
		status := "ok"
		switch {
		case isInterrupted(pr.Result):
			status = "INTERRUPTED: " + oneLine(r.Err)
		case r.Err != nil:
			// The cause follows the table, once, with a hint.
			status = "FAILED (the cause is printed at the end)"
		case len(r.Applied) > 0:
			status = fmt.Sprintf("ok, ran %s", versions(appliedVersions(r)))
		case len(r.Pending) > 0:
			status = "pending " + versions(r.Pending)
		default:
			status = "up to date"
		}
		fmt.Fprintf(p.w, "[%d/%d] %s: schema version %s -> %s: %s (%v)\n", pr.Done, pr.Total, tenantCell(r), ver(r.Before), ver(r.After), status, r.Duration.Round(time.Millisecond))
		return
	}
	const width = 30
	filled := width * pr.Done / max(pr.Total, 1)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d tenants, %d failed ", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), pr.Done, pr.Total, p.failed)
	p.drawn = true
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
