package driver

import (
	"context"
	"database/sql/driver"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// Conn is the connection database/sql pools. It is virtual: it holds no
// database session of its own. The first operation of each checkout reads
// the tenant from that operation's context and binds a physical connection
// from the tenant's pool; the binding lasts until database/sql takes the
// Conn back (so Rows, a Tx and a *sql.Conn keep one session), then the
// physical connection returns to its pool.
//
// Code that needs pgx itself gets a *Conn from (*sql.Conn).Raw:
//
//	err := sqlConn.Raw(func(dc any) error {
//		pgxConn, err := dc.(*driver.Conn).PgxConn(ctx)
//		...
//	})
type Conn struct {
	c    *Connector
	pc   *physConn // bound physical connection, nil between checkouts
	id   string    // tenant of pc
	t    *tenant   // its configuration; t.set != nil: a shared session (shared.go)
	last *physConn // the physical connection bound last, tried first next time
	dead bool      // a bound connection died: let database/sql discard this one
}

var (
	_ driver.Conn               = (*Conn)(nil)
	_ driver.ConnBeginTx        = (*Conn)(nil)
	_ driver.ConnPrepareContext = (*Conn)(nil)
	_ driver.ExecerContext      = (*Conn)(nil)
	_ driver.QueryerContext     = (*Conn)(nil)
	_ driver.Pinger             = (*Conn)(nil)
	_ driver.NamedValueChecker  = (*Conn)(nil)
	_ driver.SessionResetter    = (*Conn)(nil)
	_ driver.Validator          = (*Conn)(nil)
)

// bind returns the physical connection for an operation run with ctx,
// checking one out of the tenant's pool if none is bound. It fails closed:
// no tenant, an unknown tenant or another tenant than the bound one is an
// error, never a fallback.
func (vc *Conn) bind(ctx context.Context) (*stdlib.Conn, error) {
	id, ok := tenantctx.TenantFrom(ctx)
	if vc.pc != nil {
		switch {
		case !ok:
			return nil, noTenantBound(vc.id)
		case id != vc.id:
			return nil, mismatch(vc.id, id)
		}
		return vc.pc.sc, nil
	}
	if !ok {
		return nil, ErrNoTenant
	}
	pc, t, err := vc.c.acquire(ctx, id, vc.last)
	if err != nil {
		return nil, err
	}
	vc.pc, vc.id, vc.t, vc.last = pc, id, t, pc
	return pc.sc, nil
}

func (vc *Conn) unbind() {
	if vc.pc == nil {
		return
	}
	pc := vc.pc
	vc.pc, vc.t = nil, nil
	if vc.c.release(pc) {
		vc.dead = true
		vc.last = nil
	}
}

// PgxConn returns the *pgx.Conn bound for ctx's tenant, binding one if
// needed, for pgx-only work (CopyFrom, batches, LISTEN). Call it inside
// (*sql.Conn).Raw; the connection stays bound to that *sql.Conn until it is
// closed, and must not be used after that.
func (vc *Conn) PgxConn(ctx context.Context) (*pgx.Conn, error) {
	sc, err := vc.bind(ctx)
	if err != nil {
		return nil, err
	}
	if vc.t.set != nil {
		if err := vc.setForSession(ctx); err != nil {
			return nil, err
		}
	}
	return sc.Conn(), nil
}

// Tenant reports the tenant the connection is bound to, if any.
func (vc *Conn) Tenant() (string, bool) { return vc.id, vc.pc != nil }

// ExecContext implements driver.ExecerContext.
func (vc *Conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	sc, err := vc.bind(ctx)
	if err != nil {
		return nil, err
	}
	if vc.t.set != nil {
		return vc.execShared(ctx, query, args)
	}
	return sc.ExecContext(ctx, query, args)
}

// QueryContext implements driver.QueryerContext.
func (vc *Conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	sc, err := vc.bind(ctx)
	if err != nil {
		return nil, err
	}
	if vc.t.set != nil {
		return vc.queryShared(ctx, query, args)
	}
	return sc.QueryContext(ctx, query, args)
}

// PrepareContext implements driver.ConnPrepareContext. The statement is
// checked by the server (so bad SQL fails here, as with pgx), but what is
// returned holds only the SQL text: database/sql keeps a prepared statement
// per pooled connection and reuses it for later callers of any tenant, so
// each execution runs on the connection bound for its own context, and
// pgx's per-connection statement cache does the preparing there.
func (vc *Conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	sc, err := vc.bind(ctx)
	if err != nil {
		return nil, err
	}
	if vc.t.set != nil {
		err = vc.prepareShared(ctx, query)
	} else {
		_, err = sc.Conn().PgConn().Prepare(ctx, "", query, nil)
	}
	if err != nil {
		return nil, err
	}
	return &stmt{vc: vc, query: query}, nil
}

// Prepare implements driver.Conn. Without a context there is no tenant.
func (vc *Conn) Prepare(query string) (driver.Stmt, error) {
	return vc.PrepareContext(context.Background(), query)
}

// BeginTx implements driver.ConnBeginTx. The transaction pins the bound
// connection until it ends; its operations must carry the same tenant.
func (vc *Conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	sc, err := vc.bind(ctx)
	if err != nil {
		return nil, err
	}
	if vc.t.set != nil {
		if err := vc.cleanShared(ctx); err != nil {
			return nil, err
		}
	}
	return sc.BeginTx(ctx, opts)
}

// Begin implements driver.Conn. Without a context there is no tenant.
func (vc *Conn) Begin() (driver.Tx, error) {
	return vc.BeginTx(context.Background(), driver.TxOptions{})
}

// Ping implements driver.Pinger. With a tenant in ctx it pings that
// tenant's database. Without one, on a Conn not bound to a tenant (what
// (*sql.DB).Ping gets), it reports whether the tenant store is usable and
// touches no tenant database: start-up code and ORMs (GORM's Open) ping
// before any request exists. A Conn bound to a tenant (a *sql.Conn already
// used) fails closed without one, as its other operations do: its caller
// asks about that tenant's session, which the store's health says nothing
// about.
func (vc *Conn) Ping(ctx context.Context) error {
	if _, ok := tenantctx.TenantFrom(ctx); !ok && vc.pc == nil {
		return vc.c.pingStore(ctx)
	}
	sc, err := vc.bind(ctx)
	if err != nil {
		return err
	}
	return sc.Ping(ctx)
}

// CheckNamedValue implements driver.NamedValueChecker. It runs before the
// operation and without a context, so before any binding; like pgx's it
// accepts every value and leaves conversion to pgx.
func (vc *Conn) CheckNamedValue(*driver.NamedValue) error { return nil }

// ResetSession implements driver.SessionResetter. database/sql calls it
// before reusing a pooled Conn, with the next caller's context; binding
// waits for that caller's first operation, so here the Conn must be
// unbound. Together with IsValid it lets database/sql keep the Conn after
// a rolled-back transaction.
func (vc *Conn) ResetSession(ctx context.Context) error {
	if vc.pc != nil || vc.dead {
		vc.unbind()
		return driver.ErrBadConn
	}
	return nil
}

// IsValid implements driver.Validator. database/sql calls it whenever it
// takes the Conn back, which is when the physical connection goes back to
// its tenant's pool.
func (vc *Conn) IsValid() bool {
	vc.unbind()
	return !vc.dead
}

// Close implements driver.Conn.
func (vc *Conn) Close() error {
	vc.unbind()
	vc.last = nil
	return nil
}
