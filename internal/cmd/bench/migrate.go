package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/benchkit"
	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/store"
)

// migrateSuite measures migrating n tenants (each its own database) with
// the project's test migrations at several concurrencies, and the no-op
// rerun after each.
func migrateSuite(ctx context.Context, adminURL string, n int, concurrencies []int) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	fsys := os.DirFS(filepath.Join(root, "testdata", "migrations"))
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("tsql_mbench_%03d", i)
	}
	fmt.Fprintf(os.Stderr, "creating %d databases (once)...\n", n)
	if err := benchkit.EnsureDatabases(ctx, adminURL, names); err != nil {
		return err
	}

	s := store.NewMemory()
	for i, name := range names {
		u, err := benchkit.DatabaseURL(adminURL, name, "")
		if err != nil {
			return err
		}
		if _, err := s.Create(ctx, store.Tenant{ID: fmt.Sprintf("mbench-%03d.test", i), DeployInfo: map[string]string{store.KeyPostgresURL: u}}); err != nil {
			return err
		}
	}

	type row struct {
		label            string
		conc             int
		applied, changed int
		failed           int
		d                time.Duration
	}
	var rows []row
	for _, conc := range concurrencies {
		fmt.Fprintf(os.Stderr, "resetting %d schemas...\n", n)
		if err := forEach(names, 8, func(name string) error { return resetSchema(ctx, adminURL, name) }); err != nil {
			return err
		}
		c, err := driver.NewConnector(s, driver.WithHooks(nil), driver.WithMaxConns(2*conc+2))
		if err != nil {
			return err
		}
		db := sql.OpenDB(c)
		db.SetMaxOpenConns(2*conc + 2)
		db.SetMaxIdleConns(2*conc + 2)
		m, err := migrate.New(db, s, fsys, migrate.WithConcurrency(conc), migrate.WithContinueOnError(true))
		if err != nil {
			db.Close()
			return err
		}
		for _, label := range []string{"migrate", "no-op rerun"} {
			rep, err := m.Run(ctx, migrate.Up, 0)
			if rep == nil {
				db.Close()
				return err
			}
			r := row{label: label, conc: conc, d: rep.Duration}
			for _, res := range rep.Results {
				r.applied += len(res.Applied)
				if len(res.Applied) > 0 {
					r.changed++
				}
				if res.Err != nil {
					r.failed++
				}
			}
			rows = append(rows, r)
			fmt.Fprintf(os.Stderr, "%-12s concurrency %d: %v\n", label, conc, rep.Duration.Round(time.Millisecond))
		}
		db.Close()
	}
	// The no-op reruns above open a session to every tenant's database
	// (the pool is capped at 2 x concurrency + 2, as the CLI does); a
	// process that keeps its connections pays only the version checks.
	{
		conc := concurrencies[len(concurrencies)-1]
		c, err := driver.NewConnector(s, driver.WithHooks(nil), driver.WithMaxConns(n+10))
		if err != nil {
			return err
		}
		db := sql.OpenDB(c)
		db.SetMaxOpenConns(n + 10)
		db.SetMaxIdleConns(n + 10)
		m, err := migrate.New(db, s, fsys, migrate.WithConcurrency(conc))
		if err != nil {
			db.Close()
			return err
		}
		if _, err := m.Run(ctx, migrate.Up, 0); err != nil { // opens the sessions
			db.Close()
			return err
		}
		rep, err := m.Run(ctx, migrate.Up, 0)
		db.Close()
		if err != nil {
			return err
		}
		rows = append(rows, row{label: "no-op rerun, sessions kept", conc: conc, d: rep.Duration})
	}
	fmt.Printf("\n%d tenants, one database each, %d migrations (testdata/migrations), goose v3 session lock per database\n\n", n, 5)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tconcurrency\ttenants changed\tmigrations applied\tfailed\twall time\tper tenant\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%v\t%v\t\n", r.label, r.conc, r.changed, r.applied, r.failed, r.d.Round(time.Millisecond), (r.d / time.Duration(n)).Round(10*time.Microsecond))
	}
	return tw.Flush()
}

func resetSchema(ctx context.Context, adminURL, name string) error {
	u, err := benchkit.DatabaseURL(adminURL, name, "")
	if err != nil {
		return err
	}
	db, err := sql.Open("pgx", u)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
	return err
}

// forEach runs f on every item, n at a time, and returns the first error.
func forEach(items []string, n int, f func(string) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		slots = make(chan struct{}, n)
	)
	for _, it := range items {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			if err := f(it); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("%s: %w", it, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}
