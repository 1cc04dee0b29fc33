package driver

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// How a statement runs on a shared session (a target whose tenants are
// told apart by their settings: search_path, custom settings).
//
// Each statement goes out in one pipeline, one round trip, one implicit
// transaction: the tenant's settings for that transaction only
// (settings.apply), then the statement. Nothing of them stays on the
// session, so neither the next tenant nor, behind a transaction pooler,
// another client's transaction on the same server connection can see
// them; and whatever a statement did to search_path (SET, RESET ALL,
// DISCARD ALL) is overridden by the next statement's own settings. In an
// explicit transaction every statement carries them too.
//
// When a session goes from one tenant to another, the first statement
// also cleans up after the previous one: RESET ALL (its session SETs),
// then settings.clean, which releases its advisory locks and fails if the
// session holds what cannot be undone in a transaction (temporary objects,
// LISTEN, another role): then the statement is not run, the session is
// closed, and the statement runs on another. The session becomes the new
// tenant's only once that pipeline has committed: a failed statement rolls
// its RESET ALL back, and the next statement cleans again. Statements that
// leave what neither can see (PREPARE, cursors WITH HOLD, DISCARD) mark
// the session to be closed when it is released (leavesState).
//
// Statements are kept prepared on the session as pgx would, except a
// schema tenant's own statements, which are parsed and described afresh
// (unnamed): see shared_stmts.go.

// runShared sends the statement with the tenant's settings and returns the
// pipeline positioned at the statement's result.
//
// A session that cannot be cleaned is closed and the statement tries the
// next one. Other tenants may have left such sessions (LISTEN, temporary
// tables) all over the pool, so it goes on until one is clean: each try
// closes a session, so there are at most as many bad ones as the server's
// budget allows, and a fresh session needs no cleaning. The bound only
// stops a loop against sessions made unclean faster than they are closed.
//
// The statement is sent below pgx.Conn's Query and Exec, which would call
// the session's tracer (WithQueryTracer, WithBeforeConnect's): so it calls
// it itself, once per statement however many sessions it tries, and
// pipeline.finish ends the trace.
func (vc *Conn) runShared(ctx context.Context, query string, args []driver.NamedValue) (*pipeline, error) {
	conn := vc.pc.sc.Conn()
	tracer := vc.pc.tracer
	if tracer != nil {
		ctx = tracer.TraceQueryStart(ctx, conn, pgx.TraceQueryStartData{SQL: query, Args: namedArgs(args)})
	}
	tries := vc.t.tg.b.max + 2
	for try := 1; ; try++ {
		pc := vc.pc
		conn = pc.sc.Conn()
		if conn.IsClosed() {
			return nil, traceEnd(ctx, tracer, conn, driver.ErrBadConn)
		}
		p, err := vc.sendShared(ctx, conn, query, args)
		if err == nil {
			p.tracer, p.tctx, p.conn = tracer, ctx, conn
			return p, nil
		}
		if !errors.Is(err, errNotClean) || try >= tries {
			return nil, traceEnd(ctx, tracer, conn, err)
		}
		// Another session, for the same tenant.
		if err := vc.rebind(ctx); err != nil {
			return nil, traceEnd(ctx, tracer, conn, err)
		}
	}
}

// traceEnd ends the trace of a statement that failed before its result,
// if there is a tracer, and returns err.
func traceEnd(ctx context.Context, tracer pgx.QueryTracer, conn *pgx.Conn, err error) error {
	if tracer != nil {
		tracer.TraceQueryEnd(ctx, conn, pgx.TraceQueryEndData{Err: err})
	}
	return err
}

// errNotClean reports a session holding another tenant's state that
// cannot be undone.
var errNotClean = errors.New("tenantsql: session holds state of another tenant")

// pipeline is a statement's pipeline once its settings have been read.
type pipeline struct {
	p     *pgconn.Pipeline
	pc    *physConn
	owner string // the tenant the session is the new owner of, on success
	query string
	named bool // the statement was sent as a statement prepared on the session

	// The session's tracer, if any, the context its TraceQueryStart
	// returned, and the statement's command tag, for finish.
	tracer pgx.QueryTracer
	tctx   context.Context
	conn   *pgx.Conn
	tag    pgconn.CommandTag
}

func (vc *Conn) sendShared(ctx context.Context, conn *pgx.Conn, query string, args []driver.NamedValue) (*pipeline, error) {
	set := vc.t.set
	pc := vc.pc
	ns := pc.stmts(conn)
	var sd *pgconn.StatementDescription
	if !set.path {
		sd = ns.userStmt(ctx, conn, query)
	}
	var eqb pgx.ExtendedQueryBuilder
	if err := eqb.Build(conn.TypeMap(), sd, namedArgs(args)); err != nil {
		return nil, err
	}
	clean := pc.owner != "" && pc.owner != vc.id
	if !clean {
		// Fresh, or already this tenant's: whatever this statement
		// leaves, even if it fails (a session advisory lock outlives
		// its statement's error), is this tenant's to be cleaned.
		pc.owner = vc.id
	}
	if leavesState(query) {
		pc.dirty = true
	}
	p := conn.PgConn().StartPipeline(ctx)
	var e expected
	if clean {
		ns.sendSettings(p, "reset all", nil, &e)
		ns.sendSettings(p, set.clean, set.params, &e)
	} else {
		ns.sendSettings(p, set.apply, set.params[:len(set.params)-1], &e)
	}
	if sd != nil {
		p.SendQueryStatement(sd, eqb.ParamValues, eqb.ParamFormats, eqb.ResultFormats)
	} else {
		p.SendQueryParams(query, eqb.ParamValues, nil, eqb.ParamFormats, eqb.ResultFormats)
	}
	p.SendPipelineSync()
	if err := p.Flush(); err != nil {
		p.Close()
		if ns.forget() {
			pc.dirty = true
		}
		return nil, err
	}
	for i := range e.n {
		if err := readOne(p); err != nil {
			p.Close()
			if ns.forget() {
				pc.dirty = true
			}
			return nil, vc.settingsError(err)
		}
		if st := e.what[i]; st != nil {
			st.sent = false
		}
	}
	return &pipeline{p: p, pc: pc, owner: vc.id, query: query, named: sd != nil}, nil
}

// readOne reads a result the caller does not want.
func readOne(p *pgconn.Pipeline) error {
	res, err := p.GetResults()
	if err != nil {
		return err
	}
	if rr, ok := res.(*pgconn.ResultReader); ok {
		_, err = rr.Close()
	}
	return err
}

// settingsError explains a failure of the settings statement.
func (vc *Conn) settingsError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42704" {
		switch {
		case strings.Contains(pgErr.Message, errNotCleanSetting):
			vc.pc.dirty = true
			return errNotClean
		case strings.Contains(pgErr.Message, errMissingSchema):
			return fmt.Errorf("%w: tenant %q: schema %s (the first of its search_path) does not exist in its database", ErrTenantConfig, vc.id, vc.t.set.schema)
		}
	}
	return err
}

// finish reads what is left of the pipeline after the statement's result
// and closes it. The session becomes the tenant's once the pipeline has
// committed.
// stmtErr is the statement's own error: a statement that failed rolled
// back its pipeline's cleaning, which the next statement must do again.
func (pl *pipeline) finish(stmtErr error) error {
	if pl.named && isPlanChanged(stmtErr) {
		pl.pc.named.drop(pl.query)
		pl.pc.dirty = true
	}
	err := pl.p.Close()
	if err == nil && stmtErr == nil && !pl.pc.sc.Conn().IsClosed() {
		pl.pc.owner = pl.owner
	}
	if pl.tracer != nil {
		traced := stmtErr
		if traced == nil {
			traced = err
		}
		pl.tracer.TraceQueryEnd(pl.tctx, pl.conn, pgx.TraceQueryEndData{CommandTag: pl.tag, Err: traced})
	}
	return err
}

func (vc *Conn) execShared(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	pl, err := vc.runShared(ctx, query, args)
	if err != nil {
		return nil, err
	}
	var tag pgconn.CommandTag
	res, err := pl.p.GetResults()
	if err == nil {
		if rr, ok := res.(*pgconn.ResultReader); ok {
			tag, err = rr.Close()
		}
	}
	pl.tag = tag
	if ferr := pl.finish(err); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	return driver.RowsAffected(tag.RowsAffected()), nil
}

func (vc *Conn) queryShared(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	pl, err := vc.runShared(ctx, query, args)
	if err != nil {
		return nil, err
	}
	res, err := pl.p.GetResults()
	if err != nil {
		pl.finish(err)
		return nil, err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		err := fmt.Errorf("tenantsql: unexpected pipeline result %T", res)
		pl.finish(err)
		return nil, err
	}
	conn := vc.pc.sc.Conn()
	r := &rows{conn: conn, rows: pgx.RowsFromResultReader(conn.TypeMap(), rr), done: pl.finish}
	if pl.tracer != nil {
		// The trace ends with the rows' command tag (SELECT n), known
		// once they are closed.
		r.done = func(err error) error {
			pl.tag = r.rows.CommandTag()
			return pl.finish(err)
		}
	}
	// As stdlib does: read the first row now, so that an error of the
	// statement comes from the query, not from the first Next.
	r.skipNextMore = r.rows.Next()
	r.skipNext = true
	if err := r.rows.Err(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// prepareShared checks a statement with the tenant's settings in effect,
// as PrepareContext does for a database of its own.
func (vc *Conn) prepareShared(ctx context.Context, query string) error {
	conn := vc.pc.sc.Conn()
	set := vc.t.set
	p := conn.PgConn().StartPipeline(ctx)
	p.SendQueryParams(set.apply, set.params[:len(set.params)-1], nil, nil, nil)
	p.SendPrepare("", query, nil)
	p.SendPipelineSync()
	if err := p.Flush(); err != nil {
		p.Close()
		return err
	}
	if err := readOne(p); err != nil {
		p.Close()
		return vc.settingsError(err)
	}
	if _, err := p.GetResults(); err != nil {
		p.Close()
		return err
	}
	return p.Close()
}

// cleanShared cleans the session for a transaction: BEGIN goes through
// pgx, and its statements carry the settings; the cleaning must commit
// on its own, or a rolled-back transaction would roll it back too.
func (vc *Conn) cleanShared(ctx context.Context) error {
	if vc.pc.owner == "" || vc.pc.owner == vc.id {
		return nil
	}
	pl, err := vc.runShared(ctx, "select", nil)
	if err != nil {
		return err
	}
	err = readOne(pl.p)
	if ferr := pl.finish(err); err == nil {
		err = ferr
	}
	return err
}

// setForSession sets the tenant's settings on the session itself, for
// pgx-level work (PgxConn) whose statements do not carry them. Such a
// session is closed when released, and is not safe behind a transaction
// pooler.
func (vc *Conn) setForSession(ctx context.Context) error {
	if err := vc.cleanShared(ctx); err != nil {
		return err
	}
	set := vc.t.set
	conn := vc.pc.sc.Conn()
	vc.pc.dirty = true
	var q strings.Builder
	q.WriteString("select ")
	args := make([]any, 0, len(set.names)*2)
	for i, n := range set.names {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "pg_catalog.set_config($%d, $%d, false)", 2*i+1, 2*i+2)
		args = append(args, n, set.values[i])
	}
	_, err := conn.Exec(ctx, q.String(), append([]any{pgx.QueryExecModeExec}, args...)...)
	return err
}

// rebind swaps a session that cannot be cleaned for another of the same
// tenant.
func (vc *Conn) rebind(ctx context.Context) error {
	vc.unbind() // dirty: closed, not pooled
	vc.last = nil
	_, err := vc.bind(ctx)
	return err
}

// leavesState reports whether a statement may leave on the session what
// no cleaning can see or undo in a transaction: a statement prepared with
// PREPARE, a cursor WITH HOLD, a DISCARD or DEALLOCATE (which drop the
// statements prepared on the session).
// It looks for the words anywhere, as whole words, so it errs towards
// closing a session that was fine.
func leavesState(query string) bool {
	for _, w := range [...]string{"prepare", "hold", "discard", "deallocate"} {
		for i := 0; ; {
			j := indexFold(query[i:], w)
			if j < 0 {
				break
			}
			j += i
			end := j + len(w)
			if (j == 0 || !isWordByte(query[j-1])) && (end == len(query) || !isWordByte(query[end])) {
				return true
			}
			i = end
		}
	}
	return false
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'z' || c >= 0x80
}

// indexFold is strings.Index for an ASCII lowercase word, ignoring case.
func indexFold(s, word string) int {
	for i := 0; i+len(word) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(word)], word) {
			return i
		}
	}
	return -1
}

// namedArgs converts database/sql's arguments as pgx's stdlib does.
func namedArgs(args []driver.NamedValue) []any {
	out := make([]any, len(args))
	for i, v := range args {
		out[i] = v.Value
	}
	return out
}
