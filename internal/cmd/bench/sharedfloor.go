package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantsql/tenantsql/internal/benchkit"
)

// sharedFloor (-shared-floor) takes the shared path apart with pgx alone,
// no database/sql and no tenantsql: the statements tenantsql sends for a
// shared tenant (see driver/shared.go and driver/settings.go), one piece
// added at a time, on 16 pgx connections used by 64 goroutines, so that the
// cost of each piece, on the server and in the client, can be read off.
// It is the lowest a design that sends these statements can cost.
func sharedFloor(ctx context.Context, w io.Writer, appURL string, o sharedOpts) error {
	base, err := benchkit.DatabaseURL(appURL, sharedDB, "")
	if err != nil {
		return err
	}
	rls, err := benchkit.DatabaseURL(appURL, rlsDB, "")
	if err != nil {
		return err
	}
	// pipe sends the statements in one pipeline and one Sync: a name
	// that a step's prep gave (ts_...) as that prepared statement,
	// anything else as an unnamed statement.
	pipe := func(c *pgx.Conn, names []string, params [][][]byte) error {
		p := c.PgConn().StartPipeline(ctx)
		for i, s := range names {
			if strings.HasPrefix(s, "ts_") {
				p.SendQueryPrepared(s, params[i], nil, nil)
			} else {
				p.SendQueryParams(s, params[i], nil, nil, nil)
			}
		}
		p.SendPipelineSync()
		if err := p.Flush(); err != nil {
			p.Close()
			return err
		}
		for range names {
			res, err := p.GetResults()
			if err != nil {
				p.Close()
				return err
			}
			if rr, ok := res.(*pgconn.ResultReader); ok {
				if _, err := rr.Close(); err != nil {
					p.Close()
					return err
				}
			}
		}
		return p.Close()
	}
	// The statements of driver/settings.go for one setting (the error
	// settings renamed; they are never reached here).
	const (
		apply   = "select pg_catalog.set_config($1, $2, true), case when pg_catalog.to_regnamespace($3) is null then pg_catalog.current_setting('x.missing') end"
		clean   = "select pg_catalog.pg_advisory_unlock_all(), pg_catalog.set_config($1, $2, true), case when pg_catalog.to_regnamespace($3) is null then pg_catalog.current_setting('x.missing') end, case when pg_catalog.pg_my_temp_schema() <> 0 or current_user <> $4 or session_user <> $4 or exists (select from pg_catalog.pg_listening_channels()) then pg_catalog.current_setting('x.unclean') end"
		applyR  = "select pg_catalog.set_config($1, $2, true)"
		cleanR  = "select pg_catalog.pg_advisory_unlock_all(), pg_catalog.set_config($1, $2, true), case when pg_catalog.pg_my_temp_schema() <> 0 or current_user <> $3 or session_user <> $3 or exists (select from pg_catalog.pg_listening_channels()) then pg_catalog.current_setting('x.unclean') end"
		setPath = "search_path"
	)
	arg := []byte("7")
	role := []byte(sharedRole)
	schema := func(r *rand.Rand, n int) []byte { return []byte(schemaName(r.IntN(n))) }
	type step struct {
		name string
		url  string
		run  func(c *pgx.Conn, r *rand.Rand) error
		prep map[string]string // statements prepared on each connection first, by name
	}
	prepSchema := map[string]string{"ts_apply": apply, "ts_reset": "reset all", "ts_clean": clean}
	prepRLS := map[string]string{"ts_apply": applyR, "ts_reset": "reset all", "ts_clean": cleanR, "ts_q": sharedQuery}
	query := func(c *pgx.Conn, args ...any) error {
		var n int32
		var t string
		return c.QueryRow(ctx, sharedQuery, args...).Scan(&n, &t)
	}
	steps := []step{
		{name: "prepared query (what plain pgx sends)", url: base, run: func(c *pgx.Conn, r *rand.Rand) error { return query(c, 7) }},
		{name: "unnamed query, parsed each time", url: base, run: func(c *pgx.Conn, r *rand.Rand) error { return query(c, pgx.QueryExecModeExec, 7) }},
		{name: "+ settings statement, 1 schema (same tenant)", url: base, run: func(c *pgx.Conn, r *rand.Rand) error {
			s := schema(r, 1)
			return pipe(c, []string{apply, sharedQuery}, [][][]byte{{[]byte(setPath), s, s}, {arg}})
		}},
		{name: "+ settings statement, 1,000 schemas at random", url: base, run: func(c *pgx.Conn, r *rand.Rand) error {
			s := schema(r, 1000)
			return pipe(c, []string{apply, sharedQuery}, [][][]byte{{[]byte(setPath), s, s}, {arg}})
		}},
		{name: "+ RESET ALL and the clean statement, 1,000 schemas", url: base, run: func(c *pgx.Conn, r *rand.Rand) error {
			s := schema(r, 1000)
			return pipe(c, []string{"reset all", clean, sharedQuery}, [][][]byte{nil, {[]byte(setPath), s, s, role}, {arg}})
		}},
		{name: "+ settings statement, 10,000 schemas at random", url: base, run: func(c *pgx.Conn, r *rand.Rand) error {
			s := schema(r, maxTenants)
			return pipe(c, []string{apply, sharedQuery}, [][][]byte{{[]byte(setPath), s, s}, {arg}})
		}},
		{name: "+ RESET ALL and the clean statement, 10,000 schemas", url: base, run: func(c *pgx.Conn, r *rand.Rand) error {
			s := schema(r, maxTenants)
			return pipe(c, []string{"reset all", clean, sharedQuery}, [][][]byte{nil, {[]byte(setPath), s, s, role}, {arg}})
		}},
		{name: "RLS: + settings statement, 1,000 tenants", url: rls, run: func(c *pgx.Conn, r *rand.Rand) error {
			return pipe(c, []string{applyR, sharedQuery}, [][][]byte{{[]byte("app.tenant_id"), fmt.Append(nil, r.IntN(1000))}, {arg}})
		}},
		{name: "RLS: + RESET ALL and the clean statement, 1,000", url: rls, run: func(c *pgx.Conn, r *rand.Rand) error {
			return pipe(c, []string{"reset all", cleanR, sharedQuery}, [][][]byte{nil, {[]byte("app.tenant_id"), fmt.Append(nil, r.IntN(1000)), role}, {arg}})
		}},
		{name: "prepared settings statement, unnamed query, 1,000 schemas", url: base, prep: prepSchema, run: func(c *pgx.Conn, r *rand.Rand) error {
			s := schema(r, 1000)
			return pipe(c, []string{"ts_apply", sharedQuery}, [][][]byte{{[]byte(setPath), s, s}, {arg}})
		}},
		{name: "prepared RESET ALL, clean, unnamed query, 1,000 schemas", url: base, prep: prepSchema, run: func(c *pgx.Conn, r *rand.Rand) error {
			s := schema(r, 1000)
			return pipe(c, []string{"ts_reset", "ts_clean", sharedQuery}, [][][]byte{nil, {[]byte(setPath), s, s, role}, {arg}})
		}},
		{name: "RLS: prepared settings statement, prepared query, 1,000", url: rls, prep: prepRLS, run: func(c *pgx.Conn, r *rand.Rand) error {
			return pipe(c, []string{"ts_apply", "ts_q"}, [][][]byte{{[]byte("app.tenant_id"), fmt.Append(nil, r.IntN(1000))}, {arg}})
		}},
		{name: "RLS: prepared settings statement, unnamed query, 1,000", url: rls, prep: prepRLS, run: func(c *pgx.Conn, r *rand.Rand) error {
			return pipe(c, []string{"ts_apply", sharedQuery}, [][][]byte{{[]byte("app.tenant_id"), fmt.Append(nil, r.IntN(1000))}, {arg}})
		}},
		{name: "RLS: prepared RESET ALL, clean, query, 1,000", url: rls, prep: prepRLS, run: func(c *pgx.Conn, r *rand.Rand) error {
			return pipe(c, []string{"ts_reset", "ts_clean", "ts_q"}, [][][]byte{nil, {[]byte("app.tenant_id"), fmt.Append(nil, r.IntN(1000)), role}, {arg}})
		}},
		{name: "RLS: prepared clean (no RESET ALL), query, 1,000", url: rls, prep: prepRLS, run: func(c *pgx.Conn, r *rand.Rand) error {
			return pipe(c, []string{"ts_clean", "ts_q"}, [][][]byte{{[]byte("app.tenant_id"), fmt.Append(nil, r.IntN(1000)), role}, {arg}})
		}},
		{name: "SET search_path, then prepared query, 1,000 schemas", url: base, run: func(c *pgx.Conn, r *rand.Rand) error {
			if _, err := c.Exec(ctx, "set search_path to "+schemaName(r.IntN(1000))); err != nil {
				return err
			}
			return query(c, 7)
		}},
		{name: "SET search_path, then prepared query, 10,000 schemas", url: base, run: func(c *pgx.Conn, r *rand.Rand) error {
			if _, err := c.Exec(ctx, "set search_path to "+schemaName(r.IntN(maxTenants))); err != nil {
				return err
			}
			return query(c, 7)
		}},
	}
	fmt.Fprintf(w, "\nThe shared path taken apart with pgx alone (%d pgx connections, %d goroutines, %v + %v, one round):\n\n", o.pool, o.workers, o.warm, o.d)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "statements per query\tqueries/s\tCPU µs/query: bench process\trest of machine\terrors\t")
	for _, s := range steps {
		if o.floorOnly != nil && !o.floorOnly.MatchString(s.name) {
			continue
		}
		conns := make(chan *pgx.Conn, o.pool)
		for range o.pool {
			c, err := pgx.Connect(ctx, s.url)
			if err != nil {
				return err
			}
			for name, sql := range s.prep {
				if _, err := c.Prepare(ctx, name, sql); err != nil {
					return fmt.Errorf("prepare %s: %w", name, err)
				}
			}
			conns <- c
		}
		var ops, errs atomic.Int64
		run := func(d time.Duration) {
			var wg sync.WaitGroup
			deadline := time.Now().Add(d)
			for g := range o.workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(g), 5))
					for time.Now().Before(deadline) {
						c := <-conns
						err := s.run(c, r)
						conns <- c
						if err != nil {
							errs.Add(1)
						} else {
							ops.Add(1)
						}
					}
				}()
			}
			wg.Wait()
		}
		run(o.warm)
		ops.Store(0)
		errs.Store(0)
		c0, b0, t0 := processCPU(), machineBusy(), time.Now()
		run(o.d)
		el := time.Since(t0)
		self, all := processCPU()-c0, machineBusy()-b0
		n := max(ops.Load(), 1)
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%d\t\n", s.name, float64(ops.Load())/el.Seconds(),
			float64(self.Microseconds())/float64(n), float64((all-self).Microseconds())/float64(n), errs.Load())
		for range o.pool {
			(<-conns).Close(ctx)
		}
	}
	tw.Flush()
	return nil
}
