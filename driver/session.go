package driver

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/stdlib"
)

// session is one server session as the budget sees it. The budget decides
// who gets which session and when one is opened or closed; the session
// does the I/O. pgSession is the real one; the budget's tests use a fake,
// so that its rules can be driven step by step without a server.
type session interface {
	// reset prepares the session for its next checkout (pgx pings one
	// that sat unused for more than a second); an error means it must be
	// closed.
	reset(ctx context.Context) error
	// released reports, when a checkout ends, whether the session was
	// found dead (closed by the server, the network or a cancellation)
	// and whether it can be given to anyone else.
	released() (dead, reusable bool)
	// terminate ends the session and returns once the server has seen
	// it end.
	terminate()
}

// dialFunc opens a session for a pool's tenant.
type dialFunc func(ctx context.Context) (session, error)

// pgSession is a pgx connection, kept with its *stdlib.Conn wrapper for
// its whole life: building a wrapper per checkout costs 8 allocations.
type pgSession struct {
	sc *stdlib.Conn
	// The session's pgx tracer (WithQueryTracer's, WithBeforeConnect's),
	// read once at dial: pgx.Conn.Config copies the whole configuration,
	// too dear for each statement of a shared target, which calls it
	// itself (runShared).
	tracer pgx.QueryTracer
}

func (s *pgSession) reset(ctx context.Context) error { return s.sc.ResetSession(ctx) }

func (s *pgSession) released() (dead, reusable bool) {
	conn := s.sc.Conn()
	dead = conn.IsClosed()
	// As pgxpool does: a connection still busy or inside a transaction
	// cannot be given to anyone else.
	return dead, !dead && !conn.PgConn().IsBusy() && conn.PgConn().TxStatus() == 'I'
}

// terminateTimeout bounds how long closing a session waits for the server
// to confirm it ended.
const terminateTimeout = 5 * time.Second

// terminate ends the session and returns once the server has closed it, so
// its slot under the server's max_connections is free again. pgx's own
// Close only sends Terminate and closes the socket; the backend may then
// linger for a moment, and a new session dialled in that moment would make
// the server see one more than the cap.
func (s *pgSession) terminate() {
	pgc := s.sc.Conn().PgConn()
	if pgc.IsClosed() {
		// pgx closed it after an error or a cancellation; its cleanup
		// (cancel request, Terminate, drain) may still be running.
		waitCleanup(pgc.CleanupDone())
		return
	}
	if pgc.IsBusy() {
		s.sc.Close()
		waitCleanup(pgc.CleanupDone())
		return
	}
	hc, err := pgc.Hijack()
	if err != nil {
		s.sc.Close()
		return
	}
	nc := hc.Conn
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(terminateTimeout))
	msg, err := (&pgproto3.Terminate{}).Encode(nil)
	if err != nil {
		return
	}
	if _, err := nc.Write(msg); err != nil {
		return
	}
	// The server closes the socket when the backend exits, after it has
	// released its slot.
	io.Copy(io.Discard, nc)
}

func waitCleanup(done <-chan struct{}) {
	t := time.NewTimer(terminateTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// pgDialer parses the tenant's URL and returns the dial function of its
// pool: pgx's stdlib connector, then WithAfterConnect. It runs when a pool
// is created, not when the tenant is registered, so ten thousand
// registered tenants hold only their URLs.
func (t *target) pgDialer() (dialFunc, error) {
	cc, err := parseDSN(t.name, t.cfg.urlKey, t.dsn)
	if err != nil {
		return nil, err
	}
	var tracer pgx.QueryTracer
	if f := t.cfg.queryTracer; f != nil {
		info := PoolInfo{Server: t.b.server, Database: cc.Database}
		if !t.shared {
			info.Tenant = t.name
		}
		tracer = f(info)
	}
	var opts []stdlib.OptionOpenDB
	if before := t.cfg.beforeConnect; before != nil || tracer != nil {
		opts = append(opts, stdlib.OptionBeforeConnect(func(ctx context.Context, cc *pgx.ConnConfig) error {
			if before != nil {
				// pgx hands each dial a shallow copy: RuntimeParams and
				// the other maps and slices are shared by the tenant's
				// concurrent dials, which the callback may change.
				*cc = *cc.Copy()
				if err := before(ctx, t.tenantOf(ctx), cc); err != nil {
					return err
				}
			}
			// Set after the callback, so that a tracer it sets does not
			// silence the one of WithQueryTracer (the metrics of every
			// query): both run. Tracers are not compared, which would
			// panic on a tracer of an uncomparable type.
			switch {
			case tracer == nil:
			case cc.Tracer == nil:
				cc.Tracer = tracer
			default:
				cc.Tracer = multitracer.New(tracer, cc.Tracer)
			}
			return nil
		}))
	}
	// WithAfterConnect is not passed to pgx: pgx's stdlib connector returns
	// an AfterConnect error without closing the new connection, leaving a
	// live session outside the budget until the garbage collector finds it.
	connector := stdlib.GetConnector(*cc, opts...)
	hasTracer := cc.Tracer != nil || len(opts) > 0 // a callback may set one
	after := t.cfg.afterConnect
	return func(ctx context.Context) (session, error) {
		dc, err := connector.Connect(ctx)
		if err != nil {
			return nil, err
		}
		s := &pgSession{sc: dc.(*stdlib.Conn)}
		if hasTracer {
			s.tracer = s.sc.Conn().Config().Tracer
		}
		if t.rls && !t.cfg.allowBypassRLS {
			if err := refuseBypassRLS(ctx, s.sc.Conn()); err != nil {
				s.terminate()
				return nil, err
			}
		}
		if after != nil {
			if err := after(ctx, t.tenantOf(ctx), s.sc.Conn()); err != nil {
				// The session is up: end it, and wait for the server to
				// see it end, before its slot goes to anyone else.
				s.terminate()
				return nil, fmt.Errorf("after connect: %w", err)
			}
		}
		return s, nil
	}, nil
}

// refuseBypassRLS fails for a session whose role bypasses row-level
// security: every tenant told apart by its settings would see every
// tenant's rows (see WithBypassRLS).
func refuseBypassRLS(ctx context.Context, conn *pgx.Conn) error {
	var role string
	var bypass bool
	err := conn.QueryRow(ctx, "select current_user::text, rolsuper or rolbypassrls from pg_catalog.pg_roles where rolname = current_user", pgx.QueryExecModeExec).Scan(&role, &bypass)
	if err != nil {
		return fmt.Errorf("check the role for row-level security: %w", err)
	}
	if bypass {
		return fmt.Errorf("%w: its sessions log in as %q, a superuser or BYPASSRLS role, to which no row-level security policy applies: every tenant of this database would see every tenant's rows; log in as a role without them, or accept this with WithBypassRLS(true)", ErrTenantConfig, role)
	}
	return nil
}
