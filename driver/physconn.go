package driver

import (
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

type connState uint8

const (
	stateInUse connState = iota
	stateIdle
	stateClosed
)

// physConn is one server session in a tenant's pool.
type physConn struct {
	sess    session
	sc      *stdlib.Conn    // sess's, for the checkout path; nil for a fake session
	tracer  pgx.QueryTracer // sess's pgx tracer, if any (pgSession.tracer)
	pool    *pool
	expires time.Time

	// Owned by the checkout that holds the connection (shared.go).
	owner string      // on a shared target: the tenant whose state the session may hold; "" when clean
	dirty bool        // holds what cannot be cleaned: close it when released
	named *namedStmts // the statements prepared on it by name (shared_stmts.go); nil until used

	// guarded by budget.mu
	state  connState
	idleAt time.Time
	lru    connLinks // in budget.idle
	pidle  connLinks // in pool.idle
}

func newPhysConn(s session, p *pool) *physConn {
	pc := &physConn{sess: s, pool: p, state: stateInUse}
	if ps, ok := s.(*pgSession); ok {
		pc.sc, pc.tracer = ps.sc, ps.tracer
	}
	return pc
}
